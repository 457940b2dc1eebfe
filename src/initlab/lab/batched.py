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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from initlab.lab.data import Dataset
from initlab.lab.trainer import (
    NAN,
    RunResult,
    TrainConfig,
    batch_order,
    config_info,
    make_optimizer,
    run_status,
)

__all__ = ["train_batched", "train_stacked", "InitLike"]

# an init is a plan name for initlab.init_model, or a callable (model, seed) -> None
InitLike = str | Callable[[nn.Module, int], Any]


def train_stacked(
    models: Sequence[nn.Module],
    dataset: Dataset,
    seeds: Sequence[int],
    *,
    optimizer: str = "sgd",
    lr: float | None = None,
    momentum: float | None = None,
    weight_decay: float = 0.0,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    log_every: int = 1,
    eval_every: int | None = None,
    stall_tolerance: float = 0.05,
    diverge_loss: float = 1e4,
    infos: Sequence[dict[str, Any]] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[RunResult]:
    """Train already-initialized ``models`` (same architecture) together; one RunResult each.

    ``seeds[i]`` sets model i's minibatch order, as ``train(..., seed=seeds[i])``
    would. The trained values are copied back into ``models``. Options are
    those of :func:`initlab.lab.trainer.train`.
    """
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
    count = len(models)
    config = TrainConfig.make(
        len(dataset.y_train), optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
        steps=steps, epochs=epochs, batch_size=batch_size, log_every=log_every, eval_every=eval_every,
        stall_tolerance=stall_tolerance, diverge_loss=diverge_loss,
    )
    device = next((p.device for p in models[0].parameters()), torch.device("cpu"))
    for model in models:
        model.train()
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)
    direct = _direct_mlp_forward(models[0])
    if direct is not None:
        shared_batch = own_batch = direct
    else:
        shared_batch = vmap(forward, in_dims=(0, 0, None), randomness="different")
        own_batch = vmap(forward, in_dims=(0, 0, 0), randomness="different")
    opt = make_optimizer(list(params.values()), config)
    orders = [batch_order(len(y_train), config, seed) for seed in seeds]

    logged_steps: list[int] = []
    logged_loss: list[torch.Tensor] = []
    logged_accuracy: list[torch.Tensor] = []
    test_at: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    first_bad = torch.full((count,), config.steps + 1, dtype=torch.long, device=device)
    started = time.perf_counter()
    step = 0
    for step in range(1, config.steps + 1):
        rows = [next(order) for order in orders]
        if rows[0] is None:
            logits = shared_batch(params, buffers, x_train)
            targets = y_train.expand(count, -1)
        else:
            index = torch.stack([r for r in rows if r is not None]).to(device)
            logits = own_batch(params, buffers, x_train[index])
            targets = y_train[index]
        per_example = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        losses = per_example.view(count, -1).mean(dim=1)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        detached = losses.detach()
        bad = ~torch.isfinite(detached) | (detached > config.diverge_loss)
        first_bad = torch.where(bad & (first_bad > step), torch.full_like(first_bad, step), first_bad)
        if config.logged(step):
            logged_steps.append(step)
            logged_loss.append(detached)
            logged_accuracy.append((logits.detach().argmax(dim=2) == targets).float().mean(dim=1))
            if config.evaluated(step):
                test_at[step] = _evaluate(base, shared_batch, params, buffers, x_test, y_test)
        if on_step is not None:
            on_step(step)
        # a sync every few steps lets a sweep stop once every copy has diverged
        if step % 32 == 0 and bool((first_bad <= step).all()):
            break
    wall = time.perf_counter() - started

    train_final = _evaluate(base, shared_batch, params, buffers, x_train, y_train)
    test_final = _evaluate(base, shared_batch, params, buffers, x_test, y_test)
    _copy_back(models, params, buffers)

    losses_table = torch.stack(logged_loss).cpu().tolist()  # [logged step][model]
    accuracy_table = torch.stack(logged_accuracy).cpu().tolist()
    tests = {s: (loss.cpu().tolist(), acc.cpu().tolist()) for s, (loss, acc) in test_at.items()}
    first_bad_list = first_bad.cpu().tolist()
    train_final_list = [t.cpu().tolist() for t in train_final]
    test_final_list = [t.cpu().tolist() for t in test_final]
    results = []
    for i in range(count):
        diverged_at = first_bad_list[i] if first_bad_list[i] <= config.steps else None
        history = []
        for row_index, logged_step in enumerate(logged_steps):
            if diverged_at is not None and logged_step > diverged_at:
                break
            loss_value = losses_table[row_index][i]
            row = {
                "step": logged_step, "epoch": (logged_step - 1) // config.steps_per_epoch + 1,
                "loss": loss_value,
                "accuracy": NAN if logged_step == diverged_at else accuracy_table[row_index][i],
                "test_loss": NAN, "test_accuracy": NAN,
            }
            if logged_step in tests and logged_step != diverged_at:
                row["test_loss"], row["test_accuracy"] = tests[logged_step][0][i], tests[logged_step][1][i]
            history.append(row)
        if diverged_at is not None and (not history or history[-1]["step"] != diverged_at):
            history.append({
                "step": diverged_at, "epoch": (diverged_at - 1) // config.steps_per_epoch + 1,
                "loss": _loss_at(logged_steps, losses_table, i, diverged_at), "accuracy": NAN,
                "test_loss": NAN, "test_accuracy": NAN,
            })
        if diverged_at is None and not math.isfinite(train_final_list[0][i]):
            diverged_at = step
        if diverged_at is None:
            final = {"train_loss": train_final_list[0][i], "train_accuracy": train_final_list[1][i],
                     "test_loss": test_final_list[0][i], "test_accuracy": test_final_list[1][i]}
        else:
            final = {"train_loss": NAN, "train_accuracy": NAN, "test_loss": NAN, "test_accuracy": NAN}
        first_loss = losses_table[0][i]
        results.append(RunResult(
            status=run_status(first_loss, final["train_loss"], diverged_at is not None, config),
            history=history, final=final, steps=diverged_at if diverged_at is not None else step,
            wall_time=wall / count, diverged_at=diverged_at,
            info={**config_info(config), "seed": seeds[i], "batched": count,
                  **(dict(infos[i]) if infos is not None else {})},
        ))
    return results


def _direct_mlp_forward(model: nn.Module) -> Callable[..., torch.Tensor] | None:
    """Batched matmuls for a plain lab MLP (no norm, no dropout), else None (vmap is used).

    ``baddbmm`` runs the M stacked layers as one call each, forward and
    backward, which is cheaper than vmap's generic batching rules. The
    numbers are those of the per-model ``nn.Linear`` up to float rounding.
    """
    from initlab.lab.models import MLP

    if type(model) is not MLP or any(hasattr(b, "norm") or hasattr(b, "dropout") for b in model.hidden):
        return None
    blocks: list[tuple[str, Any, bool]] = [
        (f"hidden.{i}.linear", block.act, bool(block.residual)) for i, block in enumerate(model.hidden)
    ]

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        count = p["output.weight"].shape[0]
        h = x.reshape(*x.shape[:-1], -1) if x.ndim == 3 else x.reshape(x.shape[0], -1).expand(count, -1, -1)
        for prefix, act, residual in [*blocks, ("output", None, False)]:
            weight = p[prefix + ".weight"].transpose(1, 2)
            bias = p.get(prefix + ".bias")
            out = torch.bmm(h, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), h, weight)
            if act is not None:
                out = act(out)
            h = h + out if residual else out
        return h

    return forward


def _loss_at(logged_steps: list[int], table: list[list[float]], model: int, step: int) -> float:
    # the divergent step may fall between logged steps; its loss is then not kept
    return table[logged_steps.index(step)][model] if step in logged_steps else NAN


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
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seeds must be ints >= 0, got {seed!r}")
    pairs = [(init, seed) for init in inits for seed in seeds]
    models = [make_model(spec, dataset, init, seed, init_batch_size=init_batch_size) for init, seed in pairs]
    infos = [{"init": init_name(init), "model": spec, "dataset": dataset.name} for init, _ in pairs]
    return train_stacked(models, dataset, [seed for _, seed in pairs], infos=infos, **options)
