"""Learned per-layer weight scales (GradInit; Zhu, Ni, Xu, Kong, Huang & Goldstein 2021).

Every covered layer's weight W_k gets a scalar alpha_k (start 1). Each step
draws two minibatches S, S' and, with theta_alpha = {alpha_k W_k} and g the
gradient of the loss on S at theta_alpha,

    if |g| > gamma:   minimize |g|                                  (keep the first step bounded)
    else:             minimize L(S'; theta_alpha - eta * A[g])       (the loss after one step)

over alpha with Adam (learning rate ``scale_lr``), alpha >= ``min_scale``.
A[g] = g for an SGD inner step (|g| the 2-norm), sign(g) for Adam's first
step (|g| the 1-norm). The budget is ``steps``. The weights are multiplied
by the learned alpha once at the end (restored on an exception); running
statistics of norm layers are not touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from initlab.datainit._common import (
    DataInitReport,
    check_batch,
    covered_layers,
    evaluation,
    output_tensor,
    restore,
    scaled_weight,
    select,
    snapshot,
)
from initlab.rng.checks import check_choice, check_int, check_number
from initlab.rng.deprecation import keyword_only

__all__ = ["GradInitRow", "gradinit"]

INNER = ("sgd", "adam")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class GradInitRow:
    """One layer: the learned scale alpha and the weight std before and after."""

    name: str
    kind: str
    scale: float
    weight_std_before: float
    weight_std_after: float


def _default_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if not target.is_floating_point() and output.dim() == target.dim() + 1:
        return nn.functional.cross_entropy(output, target)
    return nn.functional.mse_loss(output, target.to(output.dtype))


def _run(model: nn.Module, params: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        out = functional_call(model, params, (batch,))
    elif isinstance(batch, dict):
        out = functional_call(model, params, (), batch)
    else:
        out = functional_call(model, params, tuple(batch))
    return output_tensor(out)


@keyword_only("gradinit", 3, ("loss_fn",))
def gradinit(
    model: nn.Module,
    batch: Any,
    target: torch.Tensor | None = None,
    *,
    loss_fn: LossFn | None = None,
    steps: int = 50,
    lr: float = 0.1,
    scale_lr: float = 0.01,
    gamma: float = 1.0,
    min_scale: float = 0.01,
    batch_size: int | None = None,
    inner: str = "sgd",
    seed: int = 0,
) -> DataInitReport:
    """Learn one scale per layer so that one optimizer step from the init lowers the loss most.

    ``target`` defaults to random class labels (drawn from ``seed``) for a
    model with (samples, classes) outputs, as in data-free meta-inits;
    ``loss_fn`` defaults to cross-entropy for integer targets, MSE
    otherwise. ``lr`` is the inner step eta, ``batch_size`` the size of S
    and S' (half the batch by default).
    """
    check_int("gradinit: steps", steps, minimum=0)
    for argument, value in (("lr", lr), ("scale_lr", scale_lr), ("gamma", gamma), ("min_scale", min_scale)):
        check_number(f"gradinit: {argument}", value, minimum=0, strict=True)
    check_choice("gradinit: inner", inner, INNER)
    layers = covered_layers(model, "gradinit")
    samples = check_batch(batch, "gradinit")
    size = samples // 2 if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= samples:
        raise ValueError(f"gradinit: batch_size must be an int in [1, {samples}], got {batch_size!r}")
    named = dict(model.named_parameters())
    names_by_id = {id(p): n for n, p in named.items()}
    weight_names = []
    for name, module in layers:
        owner = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
        if parametrize.is_parametrized(owner, "weight") or id(scaled_weight(module)) not in names_by_id:
            raise TypeError(f"gradinit: layer {name!r} has no plain weight parameter to scale")
        weight_names.append(names_by_id[id(scaled_weight(module))])
    generator = torch.Generator().manual_seed(seed)
    base = {n: p.detach() for n, p in named.items()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    device = next(iter(base.values())).device
    random_labels = target is None
    if target is None:
        with torch.no_grad(), evaluation(model):
            probe = _run(model, {**base, **buffers}, batch)
        if probe.dim() != 2:
            raise ValueError(
                f"gradinit: without a target the model must output (samples, classes) logits, got shape "
                f"{tuple(probe.shape)}; pass target="
            )
        target = torch.randint(0, probe.shape[1], (samples,), generator=generator).to(device)
    elif not isinstance(target, torch.Tensor) or target.shape[0] != samples:
        raise ValueError(f"gradinit: target must be a tensor with {samples} samples along dim 0, got {target!r}")
    loss_of = loss_fn or _default_loss
    scales = torch.ones(len(layers), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([scales], lr=scale_lr)
    history: list[float] = []
    saved = snapshot([module for _, module in layers])
    stds_before = [float(scaled_weight(m).detach().double().std()) for _, m in layers]
    try:
        with evaluation(model, train=True):
            for _ in range(steps):
                first = torch.randperm(samples, generator=generator)[:size]
                second = torch.randperm(samples, generator=generator)[:size]
                params = {n: p.requires_grad_(True) if n not in weight_names else p for n, p in ((n, t.clone()) for n, t in base.items())}
                for k, name in enumerate(weight_names):
                    params[name] = scales[k].to(base[name].dtype) * base[name]
                trainable = [n for n, p in params.items() if p.is_floating_point()]
                loss = loss_of(_run(model, {**params, **buffers}, select(batch, first.to(device))), target[first.to(device)])
                grads = torch.autograd.grad(loss, [params[n] for n in trainable], create_graph=True, allow_unused=True)
                pairs = [(n, g) for n, g in zip(trainable, grads) if g is not None]
                if inner == "sgd":
                    norm = torch.stack([(g.double() ** 2).sum() for _, g in pairs]).sum().sqrt()
                else:
                    norm = torch.stack([g.double().abs().sum() for _, g in pairs]).sum()
                if float(norm.detach()) > gamma:
                    objective = norm
                else:
                    stepped = dict(params)
                    for n, g in pairs:
                        step = g if inner == "sgd" else torch.sign(g)
                        stepped[n] = params[n] - lr * step
                    objective = loss_of(_run(model, {**stepped, **buffers}, select(batch, second.to(device))), target[second.to(device)])
                if not bool(torch.isfinite(objective)):
                    raise FloatingPointError("gradinit: the objective became non-finite; lower scale_lr or lr")
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                with torch.no_grad():
                    scales.clamp_(min=min_scale)
                history.append(float(objective.detach()))
        with torch.no_grad():
            for k, (_, module) in enumerate(layers):
                scaled_weight(module).mul_(float(scales[k].detach()))
    except BaseException:
        restore(saved)
        raise
    rows = [
        GradInitRow(name, type(module).__name__, float(scales[k].detach()), stds_before[k], float(scaled_weight(module).detach().double().std()))
        for k, (name, module) in enumerate(layers)
    ]
    summary = {
        "steps": steps,
        "inner": inner,
        "objective_first": history[0] if history else math.nan,
        "objective_last": history[-1] if history else math.nan,
        "target": "random labels" if random_labels else "given",
    }
    return DataInitReport("gradinit", rows, summary)
