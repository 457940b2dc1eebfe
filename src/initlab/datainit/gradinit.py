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


def _weight_names(model: nn.Module, layers: list[tuple[str, nn.Module]]) -> list[str]:
    """The parameter name of each covered layer's weight (the tensor its scale multiplies)."""
    names_by_id = {id(p): n for n, p in model.named_parameters()}
    weight_names = []
    for name, module in layers:
        owner = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
        if parametrize.is_parametrized(owner, "weight") or id(scaled_weight(module)) not in names_by_id:
            raise TypeError(f"gradinit: layer {name!r} has no plain weight parameter to scale")
        weight_names.append(names_by_id[id(scaled_weight(module))])
    return weight_names


@dataclass(frozen=True)
class _Problem:
    """The model as a function of its per-layer scales: parameters, buffers, batch and loss."""

    model: nn.Module
    base: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    weight_names: list[str]
    batch: Any
    loss_of: LossFn

    @property
    def device(self) -> torch.device:
        return next(iter(self.base.values())).device

    def loss(self, params: dict[str, torch.Tensor], rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rows = rows.to(self.device)
        return self.loss_of(_run(self.model, {**params, **self.buffers}, select(self.batch, rows)), target[rows])

    def objective(
        self, scales: torch.Tensor, target: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
        *, lr: float, gamma: float, inner: str,
    ) -> torch.Tensor:
        """The loss on S' after one inner step (SGD or sign/Adam-like) on S, or the gradient norm above gamma."""
        params = {n: t.clone().requires_grad_(True) if n not in self.weight_names else t.clone()
                  for n, t in self.base.items()}
        for k, name in enumerate(self.weight_names):
            params[name] = scales[k].to(self.base[name].dtype) * self.base[name]
        trainable = [n for n, p in params.items() if p.is_floating_point()]
        loss = self.loss(params, first, target)
        grads = torch.autograd.grad(loss, [params[n] for n in trainable], create_graph=True, allow_unused=True)
        pairs = [(n, g) for n, g in zip(trainable, grads) if g is not None]
        if inner == "sgd":
            norm = torch.stack([(g.double() ** 2).sum() for _, g in pairs]).sum().sqrt()
        else:
            norm = torch.stack([g.double().abs().sum() for _, g in pairs]).sum()
        if float(norm.detach()) > gamma:
            return norm
        stepped = dict(params)
        for n, g in pairs:
            stepped[n] = params[n] - lr * (g if inner == "sgd" else torch.sign(g))
        return self.loss(stepped, second, target)


def _labels(problem: _Problem, target: torch.Tensor | None, samples: int, generator: torch.Generator) -> torch.Tensor:
    """``target``, checked, or random class labels for a model with (samples, classes) outputs."""
    if target is not None:
        if not isinstance(target, torch.Tensor) or target.shape[0] != samples:
            raise ValueError(f"gradinit: target must be a tensor with {samples} samples along dim 0, got {target!r}")
        return target
    with torch.no_grad(), evaluation(problem.model):
        logits = _run(problem.model, {**problem.base, **problem.buffers}, problem.batch)
    if logits.dim() != 2:
        raise ValueError(
            f"gradinit: without a target the model must output (samples, classes) logits, got shape "
            f"{tuple(logits.shape)}; pass target="
        )
    return torch.randint(0, logits.shape[1], (samples,), generator=generator).to(problem.device)


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
    size = check_int("gradinit: batch_size", samples // 2 if batch_size is None else batch_size, minimum=1, maximum=samples)
    base = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    problem = _Problem(model, base, buffers, _weight_names(model, layers), batch, loss_fn or _default_loss)
    generator = torch.Generator().manual_seed(seed)
    random_labels = target is None
    target = _labels(problem, target, samples, generator)
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
                objective = problem.objective(scales, target, first, second, lr=lr, gamma=gamma, inner=inner)
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
