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

Each copy may also have its own data set (the same sizes; e.g. the split
of ``load_dataset(name, seed=s)`` for copy s), its own learning rate, and
per-parameter learning-rate factors (``lr_scale``, e.g. the width-dependent
rates of muP); with SGD these are exact, since the update of plain or
momentum SGD is linear in the gradient.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
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
    input_dtype,
    make_optimizer,
    per_example_loss,
    run_status,
)
from initlab.rng.checks import check_number, check_seed

__all__ = ["train_batched", "train_stacked", "InitLike"]

# an init is a plan name for initlab.init_model, or a callable (model, seed) -> None
InitLike = str | Callable[[nn.Module, int], Any]


def train_stacked(
    models: Sequence[nn.Module],
    dataset: Dataset | Sequence[Dataset],
    seeds: Sequence[int],
    *,
    infos: Sequence[dict[str, Any]] | None = None,
    on_step: Callable[[int], None] | None = None,
    lr_scale: Mapping[str, float] | None = None,
    **options: Any,
) -> list[RunResult]:
    """Train already-initialized ``models`` (same architecture) together; one RunResult each.

    ``seeds[i]`` sets model i's minibatch order, as ``train(..., seed=seeds[i])``
    would. The trained values are copied back into ``models``. Options are
    those of :func:`initlab.lab.trainer.train`, and three of seed batching:
    ``dataset`` may be one data set per model (equal sizes and classes);
    ``lr`` may be one learning rate per model; ``lr_scale`` maps parameter
    names to factors on their learning rate. The last two need SGD (plain,
    momentum or nesterov) without weight decay.
    """
    models, seeds = _checked(models, seeds, infos)
    datasets = _per_model_datasets(dataset, len(models))
    rates = _per_model_rates(options.get("lr"), len(models))
    if rates is not None:  # the optimizer steps with rate 1 and the gradients carry the rates
        options["lr"] = 1.0
    config = TrainConfig.make(len(datasets[0].y_train), **options)
    stack = _Stack.of(models, len(datasets) > 1, config.loss)
    data = _stacked_data(datasets, stack.device, input_dtype(models[0]))
    tables = _Tables.empty(config, len(models), stack.device)
    factors = _gradient_factors(stack.params, rates, lr_scale, config)
    started = time.perf_counter()
    step = _train_loop(stack, config, data, seeds, tables, on_step, factors)
    wall = time.perf_counter() - started
    train_final = stack.evaluate(data[0], data[1], config.loss)
    # the last step is always evaluated, unless the loop stopped early
    test_final = tables.test_at.get(step) or stack.evaluate(data[2], data[3], config.loss)
    _copy_back(models, stack.params, stack.buffers)
    finals = [t.cpu().tolist() for t in (*train_final, *test_final)]
    host = tables.host(step, config)
    return [
        _result(i, host, finals, step, config, wall / len(models),
                {**({"lr": rates[i]} if rates is not None else {}), "seed": seeds[i], "batched": len(models),
                 **(dict(infos[i]) if infos is not None else {})})
        for i in range(len(models))
    ]


def _checked(
    models: Sequence[nn.Module], seeds: Sequence[int], infos: Sequence[dict[str, Any]] | None
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
    shapes = [tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in models]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("models of one batched run must share one architecture (same parameter names and shapes)")
    if infos is not None and len(infos) != len(models):
        raise ValueError(f"infos must give one dict per model: {len(infos)} for {len(models)} models")
    return models, seeds


def _per_model_datasets(dataset: Dataset | Sequence[Dataset], count: int) -> list[Dataset]:
    """``[dataset]`` for a shared data set, or the checked list of one data set per model."""
    if isinstance(dataset, Dataset):
        return [dataset]
    if isinstance(dataset, str) or not isinstance(dataset, Sequence):
        raise TypeError(
            f"dataset must be an initlab.lab.data.Dataset or one per model, got {type(dataset).__name__}"
        )
    datasets = list(dataset)
    if len(datasets) != count:
        raise ValueError(f"dataset must give one data set per model: {len(datasets)} for {count} models")
    for item in datasets:
        if not isinstance(item, Dataset):
            raise TypeError(f"dataset must hold initlab.lab.data.Dataset objects, got {type(item).__name__}")
    first = datasets[0]
    for item in datasets[1:]:
        if (item.x_train.shape, item.x_test.shape, item.num_classes) != (
            first.x_train.shape, first.x_test.shape, first.num_classes
        ):
            raise ValueError(
                "the data sets of one batched run must have equal sizes and classes: "
                f"{tuple(first.x_train.shape)}/{tuple(first.x_test.shape)}/{first.num_classes} and "
                f"{tuple(item.x_train.shape)}/{tuple(item.x_test.shape)}/{item.num_classes}"
            )
    return datasets if len(datasets) > 1 else [first]


def _stacked_data(datasets: list[Dataset], device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test) on ``device``: shared, or one data set per copy stacked as (M, n, ...)."""
    if len(datasets) == 1:
        (data,) = datasets
        return data.x_train.to(device, dtype), data.y_train.to(device), data.x_test.to(device, dtype), data.y_test.to(device)
    return (
        torch.stack([d.x_train for d in datasets]).to(device, dtype),
        torch.stack([d.y_train for d in datasets]).to(device),
        torch.stack([d.x_test for d in datasets]).to(device, dtype),
        torch.stack([d.y_test for d in datasets]).to(device),
    )


def _per_model_rates(lr: float | Sequence[float] | None, count: int) -> list[float] | None:
    """One learning rate per model, or None when ``lr`` is one number (or the default)."""
    if lr is None or isinstance(lr, int | float):
        return None
    if isinstance(lr, str) or not isinstance(lr, Sequence):
        raise TypeError(f"lr must be a number or one number per model, got {type(lr).__name__}")
    rates = list(lr)
    if len(rates) != count:
        raise ValueError(f"lr must give one learning rate per model: {len(rates)} for {count} models")
    return [check_number("every per-model lr", rate, minimum=0.0, strict=True) for rate in rates]


def _gradient_factors(
    params: dict[str, torch.Tensor], rates: list[float] | None, lr_scale: Mapping[str, float] | None,
    config: TrainConfig,
) -> list[torch.Tensor] | None:
    """Per-parameter factors on the gradients that give each model and parameter its own SGD rate.

    SGD's update (plain, momentum or nesterov, without weight decay) is linear
    in the gradient, so scaling the gradient by r is a learning rate times r.
    """
    if rates is None and not lr_scale:
        return None
    if config.optimizer not in ("sgd", "momentum", "nesterov") or config.weight_decay:
        raise ValueError(
            "per-model lr and lr_scale need SGD (sgd, momentum or nesterov) without weight decay; "
            f"got optimizer={config.optimizer!r}, weight_decay={config.weight_decay}"
        )
    scale = dict(lr_scale or {})
    unknown = sorted(set(scale) - set(params))
    if unknown:
        raise ValueError(f"lr_scale names unknown parameters {unknown}; parameters: {', '.join(params)}")
    for name, value in scale.items():
        check_number(f"lr_scale[{name!r}]", value, minimum=0.0, strict=True)
    factors = []
    for name, tensor in params.items():
        factor = torch.full((tensor.shape[0],), float(scale.get(name, 1.0)), dtype=tensor.dtype, device=tensor.device)
        if rates is not None:
            factor = factor * torch.tensor(rates, dtype=tensor.dtype, device=tensor.device)
        factors.append(factor.view(-1, *([1] * (tensor.dim() - 1))))
    return factors


@dataclass
class _Stack:
    """M copies of one architecture as stacked parameters, with a forward for a shared and a per-copy batch."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    engine: StackedMLP | None
    shared_batch: Callable[..., torch.Tensor]
    own_batch: Callable[..., torch.Tensor]
    own_data: bool  # every copy has its own data set

    @classmethod
    def of(cls, models: list[nn.Module], own_data: bool, loss: str) -> _Stack:
        for model in models:
            model.train()
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        # the written-out backward computes cross-entropy's gradient; other losses go through autograd
        engine = StackedMLP.of(models[0]) if loss == "cross_entropy" else None
        if engine is not None:
            return cls(base, params, buffers, engine, _engine_forward(engine), _engine_forward(engine), own_data)

        def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (x,))

        shared = vmap(forward, in_dims=(0, 0, None), randomness="different")
        own = vmap(forward, in_dims=(0, 0, 0), randomness="different")
        return cls(base, params, buffers, None, shared, own, own_data)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device if self.params else torch.device("cpu")

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
        batched = self.own_batch if self.own_data else self.shared_batch
        return _evaluate(self.base, batched, self.params, self.buffers, x, y, loss)


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


def _batch(data: tuple[torch.Tensor, ...], rows: torch.Tensor | None, count: int, own_data: bool
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and targets of one step for every copy: the full set (rows None) or each copy's rows."""
    x_train, y_train = data[0], data[1]
    if rows is None:
        return x_train, (y_train if own_data else y_train.expand(count, -1))
    rows = rows.to(x_train.device)
    if own_data:
        copies = torch.arange(count, device=x_train.device).unsqueeze(1)
        return x_train[copies, rows], y_train[copies, rows]
    index = rows.reshape(-1)
    return (x_train.index_select(0, index).view(count, -1, *x_train.shape[1:]),
            y_train.index_select(0, index).view(count, -1))


def _train_loop(
    stack: _Stack, config: TrainConfig, data: tuple[torch.Tensor, ...], seeds: list[int], tables: _Tables,
    on_step: Callable[[int], None] | None, factors: list[torch.Tensor] | None,
) -> int:
    """Train every copy for ``config.steps`` steps (or until all have diverged); returns the last step."""
    count = len(seeds)
    parameters = list(stack.params.values())
    opt = make_optimizer(parameters, config, foreach=True)
    # plain SGD is one multi-tensor add, without the optimizer's per-step bookkeeping
    plain_sgd = config.optimizer == "sgd" and not config.momentum and not config.weight_decay and torch_private.AVAILABLE
    step = 0
    for step, rows in enumerate(batch_orders(data[1].shape[-1], config, seeds), start=1):
        x, targets = _batch(data, rows, count, stack.own_data)
        if stack.engine is not None:
            # forward and backward written out: no graph, buffers reused, gradients in .grad
            losses, logits = stack.engine.loss_and_grad(stack.params, x, targets)
        else:
            forward = stack.shared_batch if rows is None and not stack.own_data else stack.own_batch
            logits = forward(stack.params, stack.buffers, x)
            losses = per_example_loss(logits, targets, config.loss).mean(dim=1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        # a copy without a gradient is left as it is, as torch.optim.SGD leaves it
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        if factors is not None:
            with torch.no_grad():
                for grad, factor in zip(grads, factors):
                    grad.mul_(factor)
        if plain_sgd:
            with torch.no_grad():
                torch_private.foreach_add_(parameters, grads, alpha=-config.lr)
        else:
            opt.step()
        tables.loss[step - 1] = losses.detach()
        if config.logged(step):
            torch.mean(torch.eq(logits.detach().argmax(dim=2), targets), dim=1, dtype=tables.accuracy.dtype,
                       out=tables.accuracy[step - 1])
            if config.evaluated(step):
                tables.test_at[step] = stack.evaluate(data[2], data[3], config.loss)
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
    buffers: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model (loss, accuracy) in eval mode, as two (M,) tensors; ``y`` is shared ``(n,)`` or ``(M, n)``."""
    base.eval()
    try:
        logits = batched(params, buffers, x)
    finally:
        base.train()
    targets = y.expand(logits.shape[0], -1) if y.ndim == 1 else y
    loss_values = per_example_loss(logits, targets, loss).mean(dim=1)
    accuracy = (logits.argmax(dim=2) == targets).float().mean(dim=1)
    return loss_values, accuracy


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
