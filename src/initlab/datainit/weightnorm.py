"""Data-dependent initialization of weight-normalized layers (Salimans & Kingma 2016).

For each layer, in the order the forward pass reaches it, with the earlier
layers already initialized: measure the per-unit mean mu_j and std sigma_j of
the pre-activation t_j on the batch, then set

    g_j <- target_std / sigma_j   (w_j scaled by target_std / sigma_j)
    b_j <- (b_j - mu_j) * target_std / sigma_j

so that every unit's pre-activation has mean 0 and std ``target_std`` on the
batch. Weight-normed layers (``torch.nn.utils.parametrizations.weight_norm``
or the legacy ``weight_g``/``weight_v``) get their magnitude g changed; plain
layers get each output row of w scaled, which is the same function. Units
with zero or non-finite std are left alone and counted; layers without a
bias get only the scale (their mean stays). Std here is the population std
(divide by the sample count), as in the paper.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.datainit._common import (
    DataInitReport,
    bias_of,
    call_with_hooks,
    channel_dim,
    check_batch,
    covered_layers,
    evaluation,
    output_tensor,
    replace_output,
    restore,
    scale_units_,
    scale_weight_,
    snapshot,
)
from initlab.rng.checks import check_number
from initlab.rng.deprecation import keyword_only

__all__ = ["WNRow", "weight_norm_init", "unit_statistics"]


@dataclass
class WNRow:
    """One layer: units, the worst |mean| and |std - target| after init, dead units, outcome."""

    name: str
    kind: str
    units: int
    max_abs_mean: float
    max_std_error: float
    dead_units: int
    status: str


@dataclass
class _Normalizer:
    scale: torch.Tensor
    shift: torch.Tensor
    dead: int
    has_bias: bool


def unit_statistics(output: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit mean and population std over every axis but ``axis``, in float64."""
    moved = output.detach().double().movedim(axis, 0).reshape(output.shape[axis], -1)
    mean = moved.mean(dim=1)
    std = (moved - mean[:, None]).pow(2).mean(dim=1).sqrt()
    return mean, std


def _unit_shape(output: torch.Tensor, axis: int) -> list[int]:
    shape = [1] * output.dim()
    shape[axis] = output.shape[axis]
    return shape


@keyword_only("weight_norm_init", 2, ("target_std",))
def weight_norm_init(
    model: nn.Module,
    batch: Any,
    *,
    target_std: float = 1.0,
    verify: bool = True,
    train_mode: bool = False,
) -> DataInitReport:
    """Set every covered layer's per-unit pre-activation to mean 0, std ``target_std`` on ``batch``.

    Covered: Linear, Conv, ConvTranspose and attention output projections.
    Nothing is changed until every layer is fitted; on an exception the
    model is left as it was.
    """
    check_number("weight_norm_init: target_std", target_std, minimum=0, strict=True)
    layers = covered_layers(model, "weight_norm_init")
    samples = check_batch(batch, "weight_norm_init")
    target = float(target_std)
    saved = snapshot([module for _, module in layers])
    fits: dict[int, _Normalizer] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        tensor = output_tensor(output)
        axis = channel_dim(module, tensor)
        fit = fits.get(id(module))
        if fit is None:
            mean, std = unit_statistics(tensor, axis)
            alive = torch.isfinite(std) & torch.isfinite(mean) & (std > 0)
            scale = torch.where(alive, target / torch.where(alive, std, torch.ones_like(std)), torch.ones_like(std))
            has_bias = bias_of(module) is not None
            shift = torch.where(alive, -mean * scale, torch.zeros_like(mean)) if has_bias else torch.zeros_like(mean)
            fit = fits[id(module)] = _Normalizer(scale, shift, int((~alive).sum()), has_bias)
        shape = _unit_shape(tensor, axis)
        adjusted = tensor * fit.scale.to(tensor.dtype).reshape(shape) + fit.shift.to(tensor.dtype).reshape(shape)
        return replace_output(output, adjusted)

    try:
        with evaluation(model, train=train_mode), torch.no_grad():
            call_with_hooks(model, batch, (module for _, module in layers), hook)
            for _, module in layers:
                fit = fits.get(id(module))
                if fit is None:
                    continue
                scale_weight_(module, fit.scale)
                bias = bias_of(module)
                if bias is not None:
                    scale_units_(bias, fit.scale, fit.shift)
            final = _measure_units(model, batch, layers) if verify else {}
    except BaseException:
        restore(saved)
        raise

    rows = []
    for name, module in layers:
        fit = fits.get(id(module))
        if fit is None:
            rows.append(WNRow(name, type(module).__name__, 0, math.nan, math.nan, 0, "not_called"))
            continue
        mean, std = final.get(id(module), (torch.zeros(1), torch.full((1,), target)))
        alive = std > 0
        max_mean = float(mean[alive].abs().max()) if bool(alive.any()) else math.nan
        max_error = float((std[alive] - target).abs().max()) if bool(alive.any()) else math.nan
        status = "ok" if fit.has_bias else "no_bias"
        if fit.dead:
            status = "dead_units"
        rows.append(WNRow(name, type(module).__name__, int(fit.scale.numel()), max_mean, max_error, fit.dead, status))
    missed = [row.name for row in rows if row.status != "ok"]
    if missed:
        warnings.warn(
            "weight_norm_init: layers not fully normalized (no bias, dead units or never called): "
            + ", ".join(missed),
            RuntimeWarning,
            stacklevel=2,
        )
    return DataInitReport("wn", rows, {"target_std": target, "samples": samples, "layers": len(rows)})


def _measure_units(model: nn.Module, batch: Any, layers: list[tuple[str, nn.Module]]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if id(module) not in stats:
            tensor = output_tensor(output)
            stats[id(module)] = unit_statistics(tensor, channel_dim(module, tensor))

    call_with_hooks(model, batch, (module for _, module in layers), hook)
    return stats
