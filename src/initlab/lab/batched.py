"""Seed-batched training: many copies of one architecture trained as one model.

S seeds x I inits of the same spec differ only in their parameter values, so
their parameters are stacked along a new leading axis
(``torch.func.stack_module_state``) and one ``torch.func.vmap`` of
``functional_call`` runs all of them in each step: one forward, one backward,
one optimizer step over a handful of stacked tensors instead of S x I small
ones. Each copy sees exactly what :func:`initlab.lab.trainer.train` would
show it -- its own minibatch order (derived from its seed), its own loss --
and SGD/Adam act elementwise, so the numbers agree with one-by-one training
to float tolerance. The summed loss gives each copy the gradient of its own
loss only; a copy that diverges is marked at that step and its later values
are ignored, so the others go on.

Dropout draws differ from one-by-one training (vmap uses
``randomness="different"``); everything else matches.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from initlab.lab import torch_private
from initlab.lab.data import Dataset
from initlab.lab.fused import StackedMLP
from initlab.lab.trainer import (
    NAN,
    RunResult,
    TrainConfig,
    batch_orders,
    config_info,
    make_optimizer,
    run_status,
)
from initlab.rng.checks import check_seed

__all__ = ["train_batched", "train_stacked", "InitLike"]

# an init is a plan name for initlab.init_model, or a callable (model, seed) -> None
InitLike = str | Callable[[nn.Module, int], Any]


def train_stacked(
    models: Sequence[nn.Module],
    dataset: Dataset,
    seeds: Sequence[int],
    *,
    infos: Sequence[dict[str, Any]] | None = None,
    on_step: Callable[[int], None] | None = None,
    **options: Any,
) -> list[RunResult]:
    """Train already-initialized ``models`` (same architecture) together; one RunResult each.

    ``seeds[i]`` sets model i's minibatch order, as ``train(..., seed=seeds[i])``
    would. The trained values are copied back into ``models``. Options are
    those of :func:`initlab.lab.trainer.train`.
    """
    models, seeds = _checked(models, seeds, dataset, infos)
    config = TrainConfig.make(len(dataset.y_train), **options)
    stack = _Stack.of(models)
    device = stack.device
    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)
    tables = _Tables.empty(config, len(models), device)
    started = time.perf_counter()
    step = _train_loop(stack, config, (x_train, y_train, x_test, y_test), seeds, tables, on_step)
    wall = time.perf_counter() - started
    train_final = stack.evaluate(x_train, y_train)
    # the last step is always evaluated, unless the loop stopped early
    test_final = tables.test_at.get(step) or stack.evaluate(x_test, y_test)
    _copy_back(models, stack.params, stack.buffers)
    finals = [t.cpu().tolist() for t in (*train_final, *test_final)]
    host = tables.host(step, config)
    return [
        _result(i, host, finals, step, config, wall / len(models),
                {"seed": seeds[i], "batched": len(models), **(dict(infos[i]) if infos is not None else {})})
        for i in range(len(models))
    ]


def _checked(
    models: Sequence[nn.Module], seeds: Sequence[int], dataset: Dataset, infos: Sequence[dict[str, Any]] | None
) -> tuple[list[nn.Module], list[int]]:
    """The models and seeds as lists, after checking that they fit one stacked run."""
    models = list(models)
    seeds = [int(s) for s in seeds]
    if not models:
        raise ValueError("models must hold at least one model")
    if len(seeds) != len(models):
        raise ValueError(f"seeds must give one seed per model: {len(seeds)} seeds for {len(models)} models")
    for model in models:
        if not isinstance(model, nn.Module):
            raise TypeError(f"models must be torch.nn.Module objects, got {type(model).__name__}")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an initlab.lab.data.Dataset, got {type(dataset).__name__}")
    shapes = [tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in models]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("models of one batched run must share one architecture (same parameter names and shapes)")
    if infos is not None and len(infos) != len(models):
        raise ValueError(f"infos must give one dict per model: {len(infos)} for {len(models)} models")
    return models, seeds


@dataclass
class _Stack:
    """M copies of one architecture as stacked parameters, with a forward for a shared and a per-copy batch."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    engine: StackedMLP | None
    shared_batch: Callable[..., torch.Tensor]
    own_batch: Callable[..., torch.Tensor]

    @classmethod
    def of(cls, models: list[nn.Module]) -> _Stack:
        for model in models:
            model.train()
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        engine = StackedMLP.of(models[0])
        if engine is not None:
            return cls(base, params, buffers, engine, _engine_forward(engine), _engine_forward(engine))

        def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (x,))

        shared = vmap(forward, in_dims=(0, 0, None), randomness="different")
        own = vmap(forward, in_dims=(0, 0, 0), randomness="different")
        return cls(base, params, buffers, None, shared, own)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device if self.params else torch.device("cpu")

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _evaluate(self.base, self.shared_batch, self.params, self.buffers, x, y)


@dataclass
class _Tables:
    """Per step and copy: the training loss, the batch accuracy of logged steps, the test metrics."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    test_at: dict[int, tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def empty(cls, config: TrainConfig, count: int, device: torch.device) -> _Tables:
        return cls(torch.full((config.steps, count), NAN, device=device),
                   torch.full((config.steps, count), NAN, device=device), {})

    def host(self, step: int, config: TrainConfig) -> _HostTables:
        """The tables up to ``step`` as Python lists, in one pass per table."""
        bad = _divergent(self.loss[:step], config)
        logged = [s for s in range(1, step + 1) if config.logged(s)]
        return _HostTables(
            first_bad=torch.where(bad.any(dim=0), bad.int().argmax(dim=0) + 1, config.steps + 1).cpu().tolist(),
            logged_steps=logged,
            losses=self.loss[[s - 1 for s in logged]].cpu().tolist(),
            accuracies=self.accuracy[[s - 1 for s in logged]].cpu().tolist(),
            step_losses=self.loss[:step].cpu().tolist(),
            tests={s: (loss.cpu().tolist(), acc.cpu().tolist()) for s, (loss, acc) in self.test_at.items()},
        )


@dataclass(frozen=True)
class _HostTables:
    first_bad: list[int]  # per copy: first divergent step, steps + 1 if none
    logged_steps: list[int]
    losses: list[list[float]]  # [logged step][copy]
    accuracies: list[list[float]]
    step_losses: list[list[float]]  # [step - 1][copy]
    tests: dict[int, tuple[list[float], list[float]]]


def _train_loop(
    stack: _Stack, config: TrainConfig, data: tuple[torch.Tensor, ...], seeds: list[int], tables: _Tables,
    on_step: Callable[[int], None] | None,
) -> int:
    """Train every copy for ``config.steps`` steps (or until all have diverged); returns the last step."""
    x_train, y_train, x_test, y_test = data
    count = len(seeds)
    parameters = list(stack.params.values())
    opt = make_optimizer(parameters, config, foreach=True)
    # plain SGD is one multi-tensor add, without the optimizer's per-step bookkeeping
    plain_sgd = config.optimizer == "sgd" and not config.momentum and not config.weight_decay and torch_private.AVAILABLE
    step = 0
    for step, rows in enumerate(batch_orders(len(y_train), config, seeds), start=1):
        if rows is None:
            x, targets = x_train, y_train.expand(count, -1)
        else:
            index = rows.to(x_train.device).reshape(-1)
            x = x_train.index_select(0, index).view(count, -1, *x_train.shape[1:])
            targets = y_train.index_select(0, index).view(count, -1)
        if stack.engine is not None:
            # forward and backward written out: no graph, buffers reused, gradients in .grad
            losses, logits = stack.engine.loss_and_grad(stack.params, x, targets)
        else:
            logits = (stack.shared_batch if rows is None else stack.own_batch)(stack.params, stack.buffers, x)
            per_example = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
            losses = per_example.view(count, -1).mean(dim=1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        if plain_sgd:
            with torch.no_grad():
                # a copy without a gradient is left as it is, as torch.optim.SGD leaves it
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
                torch_private.foreach_add_(parameters, grads, alpha=-config.lr)
        else:
            opt.step()
        tables.loss[step - 1] = losses.detach()
        if config.logged(step):
            torch.mean(torch.eq(logits.detach().argmax(dim=2), targets), dim=1, dtype=tables.accuracy.dtype,
                       out=tables.accuracy[step - 1])
            if config.evaluated(step):
                tables.test_at[step] = stack.evaluate(x_test, y_test)
        if on_step is not None:
            on_step(step)
        # a sync every few steps lets a sweep stop once every copy has diverged
        if step % 32 == 0 and bool(_divergent(tables.loss[:step], config).any(dim=0).all()):
            break
    return step


def _history(i: int, host: _HostTables, diverged_at: int | None, config: TrainConfig) -> list[dict[str, float]]:
    """Copy i's logged rows, up to and including the step where it diverged."""
    history = []
    for row_index, logged_step in enumerate(host.logged_steps):
        if diverged_at is not None and logged_step > diverged_at:
            break
        row = {
            "step": logged_step, "epoch": (logged_step - 1) // config.steps_per_epoch + 1,
            "loss": host.losses[row_index][i],
            "accuracy": NAN if logged_step == diverged_at else host.accuracies[row_index][i],
            "test_loss": NAN, "test_accuracy": NAN,
        }
        if logged_step in host.tests and logged_step != diverged_at:
            row["test_loss"], row["test_accuracy"] = host.tests[logged_step][0][i], host.tests[logged_step][1][i]
        history.append(row)
    if diverged_at is not None and (not history or history[-1]["step"] != diverged_at):
        history.append({
            "step": diverged_at, "epoch": (diverged_at - 1) // config.steps_per_epoch + 1,
            "loss": host.step_losses[diverged_at - 1][i], "accuracy": NAN,
            "test_loss": NAN, "test_accuracy": NAN,
        })
    return history


def _result(
    i: int, host: _HostTables, finals: list[list[float]], step: int, config: TrainConfig, wall: float,
    info: dict[str, Any],
) -> RunResult:
    """Copy i's RunResult; ``finals`` = [train loss, train accuracy, test loss, test accuracy] per copy."""
    diverged_at = host.first_bad[i] if host.first_bad[i] <= config.steps else None
    history = _history(i, host, diverged_at, config)
    if diverged_at is None and not math.isfinite(finals[0][i]):
        diverged_at = step
    names = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    final = {name: NAN if diverged_at is not None else values[i] for name, values in zip(names, finals)}
    return RunResult(
        status=run_status(host.losses[0][i], final["train_loss"], diverged_at is not None, config),
        history=history, final=final, steps=diverged_at if diverged_at is not None else step,
        wall_time=wall, diverged_at=diverged_at, info={**config_info(config), **info},
    )


def _engine_forward(engine: StackedMLP) -> Callable[..., torch.Tensor]:
    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return engine.forward(p, x)

    return forward


def _divergent(losses: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Where a loss ends its run: NaN, inf or above ``config.diverge_loss`` (elementwise)."""
    return ~torch.isfinite(losses) | (losses > config.diverge_loss)


@torch.no_grad()
def _evaluate(
    base: nn.Module, batched: Callable[..., torch.Tensor], params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model (loss, accuracy) in eval mode, as two (M,) tensors."""
    base.eval()
    try:
        logits = batched(params, buffers, x)
    finally:
        base.train()
    count = logits.shape[0]
    loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(count), reduction="none").view(count, -1).mean(1)
    accuracy = (logits.argmax(dim=2) == y).float().mean(dim=1)
    return loss, accuracy


@torch.no_grad()
def _copy_back(models: Sequence[nn.Module], params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
    for i, model in enumerate(models):
        for name, parameter in model.named_parameters():
            parameter.copy_(params[name][i])
        for name, tensor in model.named_buffers():
            if name in buffers:
                tensor.copy_(buffers[name][i])


def initialize(model: nn.Module, init: InitLike, seed: int, batch: torch.Tensor | None) -> Any:
    """Apply ``init`` to ``model``: a plan name via ``initlab.init_model`` or a callable(model, seed)."""
    if callable(init):
        return init(model, seed)
    if not isinstance(init, str):
        raise TypeError(f"an init is a plan name or a callable(model, seed), got {type(init).__name__}")
    from initlab.plan import init_model

    return init_model(model, plan=init, seed=seed, batch=batch)


def init_batch(dataset: Dataset, seed: int, size: int = 256) -> torch.Tensor:
    """The training rows a data-driven init sees: ``size`` rows chosen by ``seed``."""
    from initlab.rng import derive_generator

    count = len(dataset.y_train)
    if size >= count:
        return dataset.x_train
    rows = torch.randperm(count, generator=derive_generator(seed, "lab.init_batch"))[:size]
    return dataset.x_train[rows.sort().values]


def make_model(spec: str, dataset: Dataset, init: InitLike, seed: int, *, init_batch_size: int = 256) -> nn.Module:
    """Build ``spec`` for ``dataset`` and initialize it with ``init`` under ``seed``."""
    from initlab.lab.models import build_model

    model = build_model(spec, dataset.input_shape, dataset.num_classes)
    initialize(model, init, seed, init_batch(dataset, seed, init_batch_size))
    return model


def init_name(init: InitLike) -> str:
    """A printable name of an init (the plan name, or the callable's name)."""
    return init if isinstance(init, str) else getattr(init, "__name__", type(init).__name__)


def train_batched(
    spec: str,
    dataset: Dataset,
    inits: Sequence[InitLike],
    seeds: Sequence[int],
    *,
    init_batch_size: int = 256,
    **options: Any,
) -> list[RunResult]:
    """Train every (init, seed) pair of ``spec`` on ``dataset`` as one batched model.

    Results come in the order ``[(init, seed) for init in inits for seed in
    seeds]``, each with ``info["init"]`` and ``info["seed"]``. The model of
    (init, seed) is built by ``build_model(spec, ...)`` and initialized by
    ``initlab.init_model(model, plan=init, seed=seed, batch=...)`` (or
    ``init(model, seed)`` for a callable), exactly as a one-by-one run with
    :func:`make_model` and :func:`initlab.lab.trainer.train` would.
    ``options`` are those of ``train``.
    """
    if isinstance(inits, str) or not isinstance(inits, Sequence) or not inits:
        raise ValueError(f"inits must be a non-empty list of plan names or callables, got {inits!r}")
    if isinstance(seeds, int) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    for seed in seeds:
        check_seed(seed, "seeds")
    pairs = [(init, seed) for init in inits for seed in seeds]
    models = [make_model(spec, dataset, init, seed, init_batch_size=init_batch_size) for init, seed in pairs]
    infos = [{"init": init_name(init), "model": spec, "dataset": dataset.name} for init, _ in pairs]
    return train_stacked(models, dataset, [seed for _, seed in pairs], infos=infos, **options)
