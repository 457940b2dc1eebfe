"""Between-layer scale calibration (Kraehenbuehl, Doersch, Donahue & Darrell 2016,
"Data-dependent initializations of convolutional neural networks").

SGD changes layer k's weights at a relative rate proportional to

    C_k = |grad W_k|^2 / |W_k|^2,

so layers with a large C_k race ahead while others barely move. The
calibration rescales each layer by

    r_k = (C_k / geometric_mean(C))^(1/4)

(weights times r_k, biases times the product of r_1..r_k over the layers in
forward order) and repeats until max C / min C <= 1 + tol. For a chain of
positively homogeneous layers (ReLU, leaky ReLU, max pooling) the product of
all r_k is 1 and the network's function is unchanged, while C_k becomes
C_k / r_k^4: one step equalizes them. Other activations need a few steps.

Gradients come from ``loss_fn(model(batch), target)`` when a target is
given, otherwise from a random linear loss sum(model(batch) * R) / n with
R ~ N(0, 1) drawn once from ``seed`` (the output gradient is then
independent of the weights). The model runs in eval mode; no ``.grad`` is
left behind.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from initlab.datainit._common import (
    DataInitReport,
    bias_of,
    call_model,
    call_order,
    check_batch,
    covered_layers,
    evaluation,
    output_tensor,
    restore,
    scaled_weight,
    snapshot,
)
from initlab.rng.checks import check_int, check_number
from initlab.rng.deprecation import keyword_only, renamed_keywords

__all__ = ["CalibrationRow", "calibrate_gradients", "gradient_ratios"]


@dataclass
class CalibrationRow:
    """One layer: |grad W|^2 / |W|^2 before and after, and the total weight scale applied."""

    name: str
    kind: str
    ratio_before: float
    ratio_after: float
    scale: float


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_plain_weights(layers: list[tuple[str, nn.Module]]) -> None:
    """TypeError for a layer without a weight tensor or with a parametrized (weight-normed) one."""
    for name, module in layers:
        owner = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
        if parametrize.is_parametrized(owner, "weight") or hasattr(owner, "weight_g"):
            raise TypeError(
                f"calibrate_gradients: layer {name!r} has a parametrized weight; calibrate the plain model "
                "or use weight_norm_init"
            )
        scaled_weight(module)


def _default_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if target.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and output.dim() == target.dim() + 1:
        return nn.functional.cross_entropy(output, target)
    return nn.functional.mse_loss(output, target.to(output.dtype))


@keyword_only("gradient_ratios", 3, ("loss_fn",))
def gradient_ratios(
    model: nn.Module,
    batch: Any,
    target: torch.Tensor | None = None,
    *,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    layers: list[tuple[str, nn.Module]] | None = None,
) -> dict[str, float]:
    """|grad W_k|^2 / |W_k|^2 for every covered layer (see the module docstring for the loss)."""
    chosen = layers if layers is not None else covered_layers(model, "gradient_ratios")
    check_batch(batch, "gradient_ratios")
    _check_plain_weights(chosen)
    with evaluation(model):
        ratios = _ratios(model, batch, chosen, target, loss_fn, seed)
    return {name: ratio for (name, _), ratio in zip(chosen, ratios)}


def _ratios(
    model: nn.Module,
    batch: Any,
    layers: list[tuple[str, nn.Module]],
    target: torch.Tensor | None,
    loss_fn: LossFn | None,
    seed: int,
) -> list[float]:
    """C_k of every layer, with the weights the forward pass used.

    The weight is read when its layer is called: on a plain model that is the
    parameter itself; on an FSDP2-sharded model it is the gathered weight,
    whose gradient (and square norm) every rank computes in full from the
    same global batch, as one process does. A layer never called keeps its
    parameter (no gradient: C_k = 0).
    """
    used: dict[int, torch.Tensor] = {}
    norms: dict[int, float] = {}

    def record(module: nn.Module, args: Any) -> None:
        if id(module) not in used:
            weight = used[id(module)] = scaled_weight(module)
            norms[id(module)] = float(weight.detach().double().pow(2).sum())

    handles = [module.register_forward_pre_hook(record) for _, module in layers]
    try:
        with torch.enable_grad():
            output = output_tensor(call_model(model, batch))
    finally:
        for handle in handles:
            handle.remove()
    with torch.enable_grad():
        if target is not None:
            loss = (loss_fn or _default_loss)(output, target)
        else:
            generator = torch.Generator(device=output.device).manual_seed(seed)
            direction = torch.randn(output.shape, generator=generator, device=output.device, dtype=output.dtype)
            loss = (output * direction).sum() / output.shape[0]
        keys = list(used)
        found = torch.autograd.grad(loss, [used[key] for key in keys], allow_unused=True) if keys else ()
        grads = dict(zip(keys, found))
    ratios = []
    for _, module in layers:
        norm = norms[id(module)] if id(module) in norms else _square_norm(scaled_weight(module))
        grad = grads.get(id(module))
        grad_norm = 0.0 if grad is None else float(grad.double().pow(2).sum())
        ratios.append(grad_norm / norm if norm > 0 else math.nan)
    return ratios


def _square_norm(weight: torch.Tensor) -> float:
    """|W|^2 in float64 (a DTensor gathered first, so that the sum runs in one process's order)."""
    full = getattr(weight, "full_tensor", None)
    values = full() if callable(full) else weight
    return float(values.detach().double().pow(2).sum())


@keyword_only("calibrate_gradients", 3, ("loss_fn",))
@renamed_keywords("calibrate_gradients", {"iterations": "max_iter"})
def calibrate_gradients(
    model: nn.Module,
    batch: Any,
    target: torch.Tensor | None = None,
    *,
    loss_fn: LossFn | None = None,
    max_iter: int = 10,
    tol: float = 0.05,
    seed: int = 0,
) -> DataInitReport:
    """Equalize |grad W_k| / |W_k| across layers by rescaling them, in place; returns the report.

    ``max_iter`` bounds the rescaling rounds (each one forward and one
    backward pass); stops early when max C / min C <= 1 + ``tol``. Layers
    with zero weights or no gradient are left alone and named in a warning.
    """
    check_int("calibrate_gradients: max_iter", max_iter, minimum=1)
    check_number("calibrate_gradients: tol", tol, minimum=0)
    if target is not None and not isinstance(target, torch.Tensor):
        raise TypeError(f"calibrate_gradients: target must be a tensor or None, got {type(target).__name__}")
    layers = covered_layers(model, "calibrate_gradients")
    check_batch(batch, "calibrate_gradients")
    _check_plain_weights(layers)
    saved = snapshot([module for _, module in layers])
    totals = [1.0] * len(layers)
    rounds = 0
    try:
        with evaluation(model):
            ordered = call_order(model, batch, layers)
            position = {id(module): i for i, (_, module) in enumerate(layers)}
            before = _ratios(model, batch, layers, target, loss_fn, seed)
            current = before
            for _ in range(max_iter):
                usable = [i for i, c in enumerate(current) if math.isfinite(c) and c > 0]
                if len(usable) < 2 or _spread(current, usable) <= 1.0 + tol:
                    break
                log_mean = sum(math.log(current[i]) for i in usable) / len(usable)
                factors = [1.0] * len(layers)
                for i in usable:
                    factors[i] = math.exp(0.25 * (math.log(current[i]) - log_mean))
                _apply(ordered, position, factors)
                totals = [t * f for t, f in zip(totals, factors)]
                rounds += 1
                current = _ratios(model, batch, layers, target, loss_fn, seed)
    except BaseException:
        restore(saved)
        raise
    rows = [
        CalibrationRow(name, type(module).__name__, before[i], current[i], totals[i])
        for i, (name, module) in enumerate(layers)
    ]
    skipped = [row.name for row in rows if not (math.isfinite(row.ratio_before) and row.ratio_before > 0)]
    if skipped:
        warnings.warn(
            f"calibrate_gradients: layers with zero weights or no gradient left unscaled: {', '.join(skipped)}",
            RuntimeWarning,
            stacklevel=2,
        )
    usable = [i for i, c in enumerate(current) if math.isfinite(c) and c > 0]
    summary = {
        "rounds": rounds,
        "spread_before": _spread(before, usable),
        "spread_after": _spread(current, usable),
        "tol": float(tol),
        "converged": _spread(current, usable) <= 1.0 + tol,
        "loss": "given" if target is not None else "random linear",
    }
    return DataInitReport("calibrate", rows, summary)


def _spread(values: list[float], usable: list[int]) -> float:
    if not usable:
        return math.nan
    chosen = [values[i] for i in usable]
    return max(chosen) / min(chosen)


def _apply(ordered: list[tuple[str, nn.Module]], position: dict[int, int], factors: list[float]) -> None:
    """Weights of layer k times r_k; biases times the running product of r along the forward order."""
    running = 1.0
    with torch.no_grad():
        for _, module in ordered:
            factor = factors[position[id(module)]]
            running *= factor
            scaled_weight(module).mul_(factor)
            bias = bias_of(module)
            if bias is not None:
                bias.mul_(running)
