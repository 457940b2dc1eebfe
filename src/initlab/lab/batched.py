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
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

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

__all__ = ["train_batched", "train_stacked", "InitLike"]

# an init is a plan name for initlab.init_model, or a callable (model, seed) -> None
InitLike = str | Callable[[nn.Module, int], Any]


def train_stacked(
    models: Sequence[nn.Module],
    dataset: Dataset | Sequence[Dataset],
    seeds: Sequence[int],
    *,
    optimizer: str = "sgd",
    lr: float | Sequence[float] | None = None,
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
    loss: str = "cross_entropy",
    lr_scale: Mapping[str, float] | None = None,
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
    models = list(models)
    seeds = [int(s) for s in seeds]
    if not models:
        raise ValueError("models must hold at least one model")
    if len(seeds) != len(models):
        raise ValueError(f"seeds must give one seed per model: {len(seeds)} seeds for {len(models)} models")
    for model in models:
        if not isinstance(model, nn.Module):
            raise TypeError(f"models must be torch.nn.Module objects, got {type(model).__name__}")
    datasets = _per_model_datasets(dataset, len(models))
    shapes = [tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in models]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("models of one batched run must share one architecture (same parameter names and shapes)")
    if infos is not None and len(infos) != len(models):
        raise ValueError(f"infos must give one dict per model: {len(infos)} for {len(models)} models")
    count = len(models)
    rates = _per_model_rates(lr, count)
    # with one rate per model the optimizer steps with rate 1 and the gradients carry the rates
    shared_lr = 1.0 if rates is not None else cast(float | None, lr)
    config = TrainConfig.make(
        len(datasets[0].y_train), optimizer=optimizer, lr=shared_lr, momentum=momentum,
        weight_decay=weight_decay, steps=steps, epochs=epochs, batch_size=batch_size, log_every=log_every,
        eval_every=eval_every, stall_tolerance=stall_tolerance, diverge_loss=diverge_loss, loss=loss,
    )
    device = next((p.device for p in models[0].parameters()), torch.device("cpu"))
    dtype = input_dtype(models[0])
    for model in models:
        model.train()
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")
    factors = _gradient_factors(params, rates, lr_scale, config)

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    own_data = len(datasets) > 1
    if own_data:
        # every copy its own rows: (M, n, features) and (M, n)
        x_train = torch.stack([d.x_train for d in datasets]).to(device, dtype)
        y_train = torch.stack([d.y_train for d in datasets]).to(device)
        x_test = torch.stack([d.x_test for d in datasets]).to(device, dtype)
        y_test = torch.stack([d.y_test for d in datasets]).to(device)
    else:
        x_train, y_train = datasets[0].x_train.to(device, dtype), datasets[0].y_train.to(device)
        x_test, y_test = datasets[0].x_test.to(device, dtype), datasets[0].y_test.to(device)
    num_train = y_train.shape[-1]
    # the written-out backward computes cross-entropy's gradient; other losses go through autograd
    engine = StackedMLP.of(models[0]) if config.loss == "cross_entropy" else None
    if engine is not None:
        shared_batch = own_batch = _engine_forward(engine)
    else:
        shared_batch = vmap(forward, in_dims=(0, 0, None), randomness="different")
        own_batch = vmap(forward, in_dims=(0, 0, 0), randomness="different")
    test_batch = own_batch if own_data else shared_batch
    parameters = list(params.values())
    opt = make_optimizer(parameters, config, foreach=True)
    # plain SGD is one multi-tensor add, without the optimizer's per-step bookkeeping
    plain_sgd = config.optimizer == "sgd" and not config.momentum and not config.weight_decay
    copies = torch.arange(count, device=device).unsqueeze(1)

    # per step and copy: the training loss, and the batch accuracy of logged steps
    loss_table = torch.full((config.steps, count), NAN, device=device)
    accuracy_table = torch.full((config.steps, count), NAN, device=device)
    test_at: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    started = time.perf_counter()
    step = 0
    for step, rows in enumerate(batch_orders(num_train, config, seeds), start=1):
        if rows is None:
            x, targets = x_train, (y_train if own_data else y_train.expand(count, -1))
        elif own_data:
            rows = rows.to(device)
            x, targets = x_train[copies, rows], y_train[copies, rows]
        else:
            index = rows.to(device).reshape(-1)
            x = x_train.index_select(0, index).view(count, -1, *x_train.shape[1:])
            targets = y_train.index_select(0, index).view(count, -1)
        if engine is not None:
            # forward and backward written out: no graph, buffers reused, gradients in .grad
            losses, logits = engine.loss_and_grad(params, x, targets)
        else:
            logits = (shared_batch if rows is None and not own_data else own_batch)(params, buffers, x)
            losses = per_example_loss(logits, targets, config.loss).mean(dim=1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        if factors is not None:
            with torch.no_grad():
                for parameter, factor in zip(parameters, factors):
                    parameter.grad.mul_(factor)  # type: ignore[union-attr]
        if plain_sgd:
            with torch.no_grad():
                torch._foreach_add_(parameters, [p.grad for p in parameters], alpha=-config.lr)
        else:
            opt.step()
        loss_table[step - 1] = losses.detach()
        if config.logged(step):
            torch.mean(torch.eq(logits.detach().argmax(dim=2), targets), dim=1, dtype=accuracy_table.dtype,
                       out=accuracy_table[step - 1])
            if config.evaluated(step):
                test_at[step] = _evaluate(base, test_batch, params, buffers, x_test, y_test, config.loss)
        if on_step is not None:
            on_step(step)
        # a sync every few steps lets a sweep stop once every copy has diverged
        if step % 32 == 0 and bool(_divergent(loss_table[:step], config).any(dim=0).all()):
            break
    wall = time.perf_counter() - started

    train_final = _evaluate(base, test_batch, params, buffers, x_train, y_train, config.loss)
    # the last step is always evaluated, unless the loop stopped early
    test_final = test_at.get(step) or _evaluate(base, test_batch, params, buffers, x_test, y_test, config.loss)
    _copy_back(models, params, buffers)

    bad = _divergent(loss_table[:step], config)
    first_bad_list = torch.where(bad.any(dim=0), bad.int().argmax(dim=0) + 1, config.steps + 1).cpu().tolist()
    logged_steps = [s for s in range(1, step + 1) if config.logged(s)]
    losses_table = loss_table[[s - 1 for s in logged_steps]].cpu().tolist()  # [logged step][model]
    accuracies = accuracy_table[[s - 1 for s in logged_steps]].cpu().tolist()
    step_losses = loss_table[:step].cpu().tolist()
    tests = {s: (loss.cpu().tolist(), acc.cpu().tolist()) for s, (loss, acc) in test_at.items()}
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
                "accuracy": NAN if logged_step == diverged_at else accuracies[row_index][i],
                "test_loss": NAN, "test_accuracy": NAN,
            }
            if logged_step in tests and logged_step != diverged_at:
                row["test_loss"], row["test_accuracy"] = tests[logged_step][0][i], tests[logged_step][1][i]
            history.append(row)
        if diverged_at is not None and (not history or history[-1]["step"] != diverged_at):
            history.append({
                "step": diverged_at, "epoch": (diverged_at - 1) // config.steps_per_epoch + 1,
                "loss": step_losses[diverged_at - 1][i], "accuracy": NAN,
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
            info={**config_info(config), **({"lr": rates[i]} if rates is not None else {}), "seed": seeds[i],
                  "batched": count, **(dict(infos[i]) if infos is not None else {})},
        ))
    return results


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


def _per_model_rates(lr: float | Sequence[float] | None, count: int) -> list[float] | None:
    """One learning rate per model, or None when ``lr`` is one number (or the default)."""
    if lr is None or isinstance(lr, int | float):
        return None
    if isinstance(lr, str) or not isinstance(lr, Sequence):
        raise TypeError(f"lr must be a number or one number per model, got {type(lr).__name__}")
    rates = list(lr)
    if len(rates) != count:
        raise ValueError(f"lr must give one learning rate per model: {len(rates)} for {count} models")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"every per-model lr must be a positive finite number, got {rate!r}")
    return [float(rate) for rate in rates]


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
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"lr_scale[{name!r}] must be a positive finite number, got {value!r}")
    factors = []
    for name, tensor in params.items():
        factor = torch.full((tensor.shape[0],), float(scale.get(name, 1.0)), dtype=tensor.dtype, device=tensor.device)
        if rates is not None:
            factor = factor * torch.tensor(rates, dtype=tensor.dtype, device=tensor.device)
        factors.append(factor.view(-1, *([1] * (tensor.dim() - 1))))
    return factors


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
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seeds must be ints >= 0, got {seed!r}")
    pairs = [(init, seed) for init in inits for seed in seeds]
    models = [make_model(spec, dataset, init, seed, init_batch_size=init_batch_size) for init, seed in pairs]
    infos = [{"init": init_name(init), "model": spec, "dataset": dataset.name} for init, _ in pairs]
    return train_stacked(models, dataset, [seed for _, seed in pairs], infos=infos, **options)
