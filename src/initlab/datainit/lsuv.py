"""Layer-sequential unit-variance initialization (Mishkin & Matas 2016, "All you need is a good init").

Start from orthonormal weights (optional), then for each Linear, Conv,
ConvTranspose and attention output projection, in the order the forward
pass reaches them, scale the weight until the layer's output std on the
batch is ``target_std`` within ``tol``:

    w <- w * target_std / std(layer output),   repeated at most max_iter times.

Two ways to run it, both equal to the sequential algorithm:

* ``mode="single_pass"`` (default): one forward pass. When a layer's output
  arrives, its scale is fitted on that output (a layer's output is affine in
  its weight's scale: s * (y - b) + b) and the rescaled output is handed on,
  so every later layer is measured exactly as after a re-run. Cost: one
  forward pass, whatever the depth.
* ``mode="truncated"``: weights are rescaled in place and the forward pass
  is re-run only up to the layer being fixed (a hook stops it there), for
  every correction. Use it when a layer's weight is also read outside its
  own call (e.g. tied embeddings).

Weights are only committed once every layer is done; on an exception every
parameter (orthonormal re-init included) is restored. Layers whose output
std is zero or non-finite are reported and left alone; layers that miss the
tolerance are named in a warning.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from initlab.datainit._common import (
    DataInitReport,
    StopForward,
    bias_of,
    bias_view,
    call_model,
    call_order,
    call_with_hooks,
    channel_dim,
    check_batch,
    covered_layers,
    evaluation,
    output_tensor,
    replace_output,
    restore,
    scale_weight_,
    snapshot,
    std_of,
)
from initlab.rng import derive_generator
from initlab.rng.checks import check_choice, check_int, check_number
from initlab.rng.deprecation import keyword_only

__all__ = ["LSUVRow", "LSUVReport", "lsuv", "orthonormal_"]

MODES = ("single_pass", "truncated")


@dataclass
class LSUVRow:
    """One covered layer: iterations used, std before/after, the scale applied and the outcome.

    ``status``: converged, not_converged, zero_std, nonfinite or not_called.
    """

    name: str
    kind: str
    iterations: int
    initial_std: float
    final_std: float
    scale: float
    status: str


class LSUVReport(DataInitReport):
    """Per-layer LSUV outcome; ``converged`` is True when every called layer met the tolerance."""

    @property
    def converged(self) -> bool:
        return all(row.status in ("converged", "not_called") for row in self.rows)

    @property
    def missed(self) -> list[str]:
        """Layers that did not reach target_std within tol (any status but converged/not_called)."""
        return [row.name for row in self.rows if row.status not in ("converged", "not_called")]


@dataclass
class _Fit:
    scale: float = 1.0
    iterations: int = 0
    initial_std: float = math.nan
    fitted_std: float = math.nan
    status: str = "not_called"
    done: bool = False
    has_bias: bool = False


def _check_options(target_std: Any, tol: Any, max_iter: Any, mode: Any) -> None:
    check_number("lsuv: target_std", target_std, minimum=0, strict=True)
    check_number("lsuv: tol", tol, minimum=0)
    check_int("lsuv: max_iter", max_iter, minimum=0)
    check_choice("lsuv: mode", mode, MODES)


def orthonormal_(layers: list[tuple[str, nn.Module]], seed: int = 0) -> None:
    """Orthonormal weights and zero biases for every layer; each weight's stream from (seed, name).

    Weights of one shape, dtype and device are drawn each from its own stream
    and decomposed in one batched QR (``orthogonal_stack_``): the same values
    as one QR per weight, with the per-call cost paid once per shape.
    """
    scheme = _orthogonal_scheme()
    targets: list[tuple[str, nn.Module, str]] = []
    with torch.no_grad():
        for name, module in layers:
            if isinstance(module, nn.MultiheadAttention):
                if module.in_proj_weight is not None:
                    targets.append((f"{name}.in_proj_weight", module, "in_proj_weight"))
                else:
                    targets.extend((f"{name}.{key}", module, key) for key in ("q_proj_weight", "k_proj_weight", "v_proj_weight"))
                targets.append((f"{name}.out_proj.weight", module.out_proj, "weight"))
                biases: list[torch.Tensor | None] = [module.in_proj_bias, module.out_proj.bias]
            else:
                targets.append((f"{name}.weight", module, "weight"))
                biases = [getattr(module, "bias", None)]
            for bias in biases:
                if bias is not None:
                    bias.zero_()
        groups: dict[tuple[tuple[int, ...], torch.device], list[tuple[str, nn.Module, str]]] = {}
        for target in targets:
            current = getattr(target[1], target[2])
            groups.setdefault((tuple(current.shape), current.device), []).append(target)
        for (shape, device), members in groups.items():
            fresh = _orthonormal_group(scheme, shape, device, [(seed, key) for key, _, _ in members])
            for (_, owner, attribute), values in zip(members, fresh):
                current = getattr(owner, attribute)
                if parametrize.is_parametrized(owner, attribute):
                    setattr(owner, attribute, values.to(current.dtype))
                else:
                    current.copy_(values)


def _orthonormal_group(
    scheme: Any, shape: tuple[int, ...], device: torch.device, streams: list[tuple[int, str]]
) -> torch.Tensor:
    """Orthonormal float32 weights of ``shape``, one per (seed, name) stream, stacked on dim 0."""
    fresh = torch.empty((len(streams), *shape), dtype=torch.float32, device=device)
    if fresh.numel() == 0:
        return fresh
    generators = [derive_generator(seed, key, device) for seed, key in streams]
    if scheme is not None and len(shape) >= 2:
        from initlab.schemes.structured import orthogonal_stack_

        # rows = first axis, columns = the rest, whatever the layer's layout
        orthogonal_stack_(fresh.view(len(streams), shape[0], -1), generators, scheme.method)
        if scheme.gain != 1.0:
            fresh.mul_(scheme.gain)
        return fresh
    for matrix, generator in zip(fresh, generators):
        _fill_orthogonal(scheme, matrix, generator)
    return fresh


def _orthogonal_scheme() -> Any:
    from initlab.schemes import get

    try:
        return get("orthogonal")
    except ValueError:
        return None


def _fill_orthogonal(scheme: Any, out: torch.Tensor, generator: torch.Generator) -> None:
    if out.numel() == 0:
        return
    if scheme is not None:
        # rows = first axis, columns = the rest, whatever the layer's layout
        flat = out.reshape(out.shape[0], -1)
        scheme(flat, layout="linear", generator=generator)
        return
    nn.init.orthogonal_(out, generator=generator)


@keyword_only("lsuv", 2, ("target_std", "tol", "max_iter", "orthonormal"))
def lsuv(
    model: nn.Module,
    batch: Any,
    *,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    orthonormal: bool = True,
    seed: int = 0,
    mode: str = "single_pass",
    verify: bool = False,
    train_mode: bool = False,
) -> LSUVReport:
    """Layer-sequential unit-variance init of ``model`` on ``batch``, in place; returns the per-layer report.

    ``batch`` is the model's input: a tensor, a tuple of positional inputs or a
    dict of keyword inputs, with at least 2 samples and no NaN/inf.
    ``orthonormal`` first draws orthonormal weights (streams derived from
    ``seed`` and each weight's name) and zeroes biases. ``final_std`` is the
    std each layer's output has once its scale is applied (exact up to float
    rounding in single-pass mode, measured in truncated mode); ``verify=True``
    re-measures every layer with the committed weights in one more forward pass.
    The model runs in eval mode (``train_mode=True`` for train mode); modes
    are restored afterwards.

    >>> import torch, initlab as il
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    >>> report = il.lsuv(model, torch.randn(256, 16))
    >>> all(abs(row.final_std - 1.0) <= 0.1 for row in report.rows)
    True
    """
    _check_options(target_std, tol, max_iter, mode)
    layers = covered_layers(model, "lsuv")
    samples = check_batch(batch, "lsuv")
    target, tolerance = float(target_std), float(tol)
    saved = snapshot([module for _, module in layers])
    started = time.perf_counter()
    try:
        with evaluation(model, train=train_mode), torch.no_grad():
            if orthonormal:
                orthonormal_(layers, seed)
            if mode == "single_pass":
                fits = _single_pass(model, batch, layers, target, tolerance, max_iter)
                for _, module in layers:
                    fit = fits[id(module)]
                    if fit.scale != 1.0:
                        scale_weight_(module, fit.scale)
            else:
                fits = _truncated(model, batch, layers, target, tolerance, max_iter)
            final = _measure(model, batch, layers) if verify else {}
    except BaseException:
        restore(saved)
        raise
    elapsed = time.perf_counter() - started
    rows = []
    for name, module in layers:
        fit = fits[id(module)]
        final_std = final.get(id(module), fit.fitted_std)
        status = fit.status
        if status == "converged" and verify and not abs(final_std - target) <= tolerance:
            status = "not_converged"
        rows.append(LSUVRow(name, type(module).__name__, fit.iterations, fit.initial_std, final_std, fit.scale, status))
    report = LSUVReport(
        "lsuv",
        rows,
        {
            "target_std": target,
            "tol": tolerance,
            "max_iter": max_iter,
            "mode": mode,
            "orthonormal": bool(orthonormal),
            "samples": samples,
            "layers": len(rows),
            "seconds": elapsed,
        },
    )
    _warn(report, target, tolerance)
    return report


def _fit(output: torch.Tensor, bias: torch.Tensor | None, axis: int, target: float, tol: float, max_iter: int) -> _Fit:
    """Scale s with std(s * (y - b) + b) = target within tol, by the LSUV update s <- s * target / std.

    Without a bias the std scales with s. With one, c = y - b gives
    Var(s c + b) = s^2 Var(c) + 2 s Cov(c, b) + Var(b) from five sums over the
    output, taken once, so the iterations cost nothing.
    """
    values = output.detach()
    if bias is not None and not bool(bias.any()):
        bias = None
    count = values.numel()
    fit = _Fit(done=True, has_bias=bias is not None)
    if bias is None:
        base = float(values.std())
        sums = None
    else:
        shape = [1] * values.dim()
        shape[axis] = bias.numel()
        offset = bias.detach().to(values.dtype).reshape(shape)
        centred = values - offset
        flat = centred.reshape(-1)
        per_element = count / bias.numel()
        bias64 = bias.detach().double()
        sums = (
            float(flat.sum(dtype=torch.float64)),
            float(torch.dot(flat, flat)),
            float((centred * offset).sum(dtype=torch.float64)),
            float(bias64.sum()) * per_element,
            float((bias64 * bias64).sum()) * per_element,
        )
        base = math.nan

    def std_at(scale: float) -> float:
        if sums is None:
            return scale * base
        c_sum, cc_sum, cb_sum, b_sum, bb_sum = sums
        total = scale * c_sum + b_sum
        square = scale * scale * cc_sum + 2 * scale * cb_sum + bb_sum
        return math.sqrt(max(square - total * total / count, 0.0) / max(count - 1, 1))

    initial = std_at(1.0)
    fit.initial_std = fit.fitted_std = initial
    if not math.isfinite(initial) or (sums is not None and not all(math.isfinite(v) for v in sums)):
        fit.initial_std = fit.fitted_std = math.nan
        fit.status = "nonfinite"
        return fit
    centred_spread = initial if sums is None else sums[1] - sums[0] * sums[0] / count
    if initial == 0.0 or centred_spread <= 0.0:
        fit.status = "zero_std"
        return fit
    scale, current = 1.0, initial
    while abs(current - target) > tol and fit.iterations < max_iter:
        scale *= target / current
        fit.iterations += 1
        current = std_at(scale)
        if not math.isfinite(current) or current == 0.0:
            break
    fit.scale, fit.fitted_std = scale, current
    fit.status = "converged" if abs(current - target) <= tol else "not_converged"
    return fit


def _rescale_(output: torch.Tensor, bias: torch.Tensor | None, scale: float) -> torch.Tensor:
    """s * (y - b) + b, written into ``y`` (a fresh layer output under no_grad)."""
    if bias is None:
        return output.mul_(scale)
    return torch.add(bias.to(output.dtype) * (1.0 - scale), output, alpha=scale, out=output)


def _single_pass(model: nn.Module, batch: Any, layers: list[tuple[str, nn.Module]], target: float, tol: float, max_iter: int) -> dict[int, _Fit]:
    fits = {id(module): _Fit() for _, module in layers}

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        tensor = output_tensor(output)
        fit = fits[id(module)]
        axis = channel_dim(module, tensor)
        bias = bias_of(module)
        if not fit.done:
            fit = fits[id(module)] = _fit(tensor, bias, axis, target, tol, max_iter)
        if fit.scale == 1.0:
            return None
        shift = bias_view(module, tensor) if fit.has_bias else None
        return replace_output(output, _rescale_(tensor, shift, fit.scale))

    call_with_hooks(model, batch, (module for _, module in layers), hook)
    return fits


def _truncated(model: nn.Module, batch: Any, layers: list[tuple[str, nn.Module]], target: float, tol: float, max_iter: int) -> dict[int, _Fit]:
    fits = {id(module): _Fit() for _, module in layers}
    for _, module in call_order(model, batch, layers):
        fit = fits[id(module)]
        fit.scale = 1.0
        while True:
            output = _forward_until(model, batch, module)
            if output is None:
                fit.status = "not_called"
                break
            current = std_of(output)
            if fit.iterations == 0:
                fit.initial_std = current
            fit.fitted_std = current
            if not math.isfinite(current):
                fit.status = "nonfinite"
                break
            if current == 0.0:
                fit.status = "zero_std"
                break
            if abs(current - target) <= tol:
                fit.status = "converged"
                break
            if fit.iterations >= max_iter:
                fit.status = "not_converged"
                break
            step = target / current
            scale_weight_(module, step)
            fit.scale *= step
            fit.iterations += 1
    return fits


def _forward_until(model: nn.Module, batch: Any, layer: nn.Module) -> torch.Tensor | None:
    """The output of ``layer``'s first call, running the forward pass no further than that."""
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        captured.append(output_tensor(output).detach())
        raise StopForward

    handle = layer.register_forward_hook(hook)
    try:
        call_model(model, batch)
    except StopForward:
        pass
    finally:
        handle.remove()
    return captured[0] if captured else None


def _measure(model: nn.Module, batch: Any, layers: list[tuple[str, nn.Module]]) -> dict[int, float]:
    """Std of each layer's first output in one forward pass."""
    stds: dict[int, float] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        stds.setdefault(id(module), std_of(output_tensor(output)))

    call_with_hooks(model, batch, (module for _, module in layers), hook)
    return stds


def _warn(report: LSUVReport, target: float, tol: float) -> None:
    by_status: dict[str, list[str]] = {}
    for row in report.rows:
        if row.status != "converged":
            by_status.setdefault(row.status, []).append(row.name)
    messages = []
    if "not_converged" in by_status:
        messages.append(f"missed std {target:g} +- {tol:g}: {', '.join(by_status['not_converged'])}")
    if "zero_std" in by_status:
        messages.append(f"zero output std (left unscaled): {', '.join(by_status['zero_std'])}")
    if "nonfinite" in by_status:
        messages.append(f"non-finite output (left unscaled): {', '.join(by_status['nonfinite'])}")
    if "not_called" in by_status:
        messages.append(f"never called by the forward pass: {', '.join(by_status['not_called'])}")
    if messages:
        warnings.warn("lsuv: " + "; ".join(messages), RuntimeWarning, stacklevel=3)
