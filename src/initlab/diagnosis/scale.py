"""Scale without data: the mean-field prediction of each layer's output std from the actual weights.

Along the chain of Linear/Conv layers in execution order (``initlab.plan.
analyze``), the pre-activation variance of layer l is (Poole et al. 2016,
"Exponential expressivity in deep neural networks through transient chaos")::

    q_l = sigma_w2_l * m_{l-1} + sigma_b2_l,     m_{l-1} = E[phi_{l-1}(sqrt(q_{l-1}) z)^2]

with sigma_w2 = fan_in * mean(W^2) and sigma_b2 = mean(b^2) read from the
weights as they are, phi the activation that follows the layer (identity when
none does) and m_0 the input's mean square (1, a standardised input, without
a batch). A norm between two layers resets m to mean(gamma^2) + mean(beta^2);
the chain ends at the first layer inside a residual branch (the theory covers
plain chains). A layer whose input width is not the previous layer's output
width (q, k, v projections, parallel branches) starts a new segment from a
standardised input. The signal has *vanished* where the predicted std falls
below ``VANISH_RATIO`` times its segment's input std, *exploded* above
``EXPLODE_RATIO`` times.
With a batch, :func:`initlab.probe.audit` measures the same std beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from initlab.diagnosis.findings import Finding, LayerScale
from initlab.diagnosis.sample import TensorSummary
from initlab.diagnosis.structure import Layer, is_norm
from initlab.schemes.gains import activation_function, gaussian_expectation

__all__ = ["VANISH_RATIO", "EXPLODE_RATIO", "predict_scale"]

# a factor 100 in std: at this point fp16/bf16 activations and gradients lose most of their digits
VANISH_RATIO = 1e-2
EXPLODE_RATIO = 1e2


def _activation_label(activation: Any) -> str | None:
    if activation is None:
        return None
    if isinstance(activation, str):
        return activation
    return type(activation).__name__


def _second_moment(activation: Any, q: float) -> float:
    """E[phi(sqrt(q) z)^2], z ~ N(0, 1); identity when no activation follows."""
    if activation is None:
        return q
    phi = activation_function(activation)
    return float(gaussian_expectation(fn=lambda x: phi(x) ** 2, scale=math.sqrt(max(q, 0.0))))


def _input_mean_square(batch: Any) -> float | None:
    if isinstance(batch, torch.Tensor) and batch.is_floating_point() and batch.numel() > 0:
        values = batch.detach().to(torch.float64)
        return float((values * values).mean())
    return None


def _norm_output(module: nn.Module) -> float:
    """mean(gamma^2) + mean(beta^2) of a norm (1 without affine parameters)."""
    total = 0.0
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    if isinstance(weight, torch.Tensor) and not weight.is_meta and weight.numel():
        total += float(weight.detach().to(torch.float64).pow(2).mean())
    else:
        total += 1.0
    if isinstance(bias, torch.Tensor) and not bias.is_meta and bias.numel():
        total += float(bias.detach().to(torch.float64).pow(2).mean())
    return total


def _measured(model: nn.Module, batch: Any) -> tuple[dict[str, float], str]:
    """{layer: measured output std} from one probe pass on ``batch``."""
    from initlab.probe import audit

    try:
        report = audit(model=model, batch=batch)
    except Exception as error:  # a model may fail on the given batch in any way
        return {}, f"the probe could not run on the batch ({type(error).__name__}: {str(error)[:120]})"
    return {row.name: row.act_std for row in report.rows if row.act_std is not None}, ""


def _linked(previous: Layer, layer: Layer) -> bool:
    """Whether ``layer`` can read ``previous``'s output: the widths agree (a flattened conv output counts)."""
    if layer.in_width == previous.out_width:
        return True
    flattened = layer.kind == "linear" and previous.kind in ("conv", "conv_transpose")
    return flattened and previous.out_width > 0 and layer.in_width % previous.out_width == 0


def _sequential_only(model: nn.Module) -> bool:
    """Every module with children is an nn.Sequential: registration order is the data flow."""
    return all(isinstance(module, nn.Sequential) for module in model.modules() if next(module.children(), None) is not None)


def predict_scale(
    model: nn.Module,
    layers: list[Layer],
    summaries: Mapping[str, TensorSummary],
    flow: Any,
    batch: Any = None,
    *,
    stop_at: tuple[str, ...] = (),
) -> tuple[list[LayerScale], list[Finding], list[str]]:
    """Per-layer predicted (and measured) std, the vanishing/exploding findings, and notes.

    ``stop_at``: module names (block stacks) where the chain ends.
    """
    notes: list[str] = []
    if flow is None or (getattr(flow, "method", "") == "static" and not _sequential_only(model)):
        notes.append("no mean-field chain: the data flow is unknown (torch.fx could not trace the model; pass a batch)")
        return [], [], notes
    by_name = {layer.name: layer for layer in layers if layer.kind != "embedding"}
    order = [name for name in getattr(flow, "execution_order", []) if name in by_name]
    branch_layers = {name for branch in (getattr(flow, "residual_branches", None) or []) for name in branch}
    positions = {name: index for index, (name, _) in enumerate(model.named_modules())}
    norms = [(positions[name], module) for name, module in model.named_modules() if is_norm(module)]
    activations = getattr(flow, "activations", {})
    input_ms = _input_mean_square(batch)
    measured, reason = _measured(model, batch) if batch is not None else ({}, "")
    if reason:
        notes.append(reason)
    m_in = input_ms if input_ms is not None else 1.0
    rows: list[LayerScale] = []
    segments: list[tuple[float, list[LayerScale]]] = []
    previous: str | None = None
    q_prev = m_in
    for name in order:
        layer = by_name[name]
        if name in branch_layers or any(name == stop or name.startswith(f"{stop}.") for stop in stop_at):
            notes.append(f"the mean-field chain ends at {name}: it sits in a residual branch")
            break
        weight = summaries.get(layer.weight)
        if weight is None:
            break
        if weight.constant:
            notes.append(f"the mean-field chain ends at {name}: its weight is constant (a zero output layer, say)")
            break
        bias = summaries.get(layer.bias) if layer.bias else None
        note = ""
        if previous is not None and not _linked(by_name[previous], layer):
            previous, note = None, "new segment: its input is not the previous layer's output"
        m = m_in if not rows else 1.0
        if previous is not None:
            between = [module for position, module in norms if positions[previous] < position < positions[name]]
            q_before = _norm_output(between[-1]) if between else q_prev
            m = _second_moment(activations.get(previous), q_before)
        else:
            segments.append((math.sqrt(m), []))
        fan_in = layer.fans.fan_in
        sigma_w2 = fan_in * weight.rms**2
        sigma_b2 = bias.rms**2 if bias is not None and math.isfinite(bias.rms) else 0.0
        q = sigma_w2 * m + sigma_b2
        std = math.sqrt(q) if math.isfinite(q) and q >= 0 else math.inf
        row = LayerScale(
            name=name,
            kind=layer.kind,
            predicted_std=std,
            measured_std=measured.get(name),
            activation=_activation_label(activations.get(name)),
            input_mean_square=m,
            note=note,
        )
        rows.append(row)
        segments[-1][1].append(row)
        q_prev, previous = q, name
    findings: list[Finding] = []
    for index, (input_std, segment) in enumerate(segments):
        measured_input = index == 0 and input_ms is not None
        findings.extend(_depth_findings(segment, input_std, measured_input))
    return rows, findings, notes


def _depth_findings(rows: list[LayerScale], input_std: float, measured_input: bool) -> list[Finding]:
    source = "the batch's RMS" if measured_input else "1 (a standardised input)"
    for depth, row in enumerate(rows, start=1):
        std = row.predicted_std
        if std is None or input_std <= 0:
            continue
        ratio = std / input_std
        if ratio >= VANISH_RATIO and ratio <= EXPLODE_RATIO:
            continue
        vanished = ratio < VANISH_RATIO
        per_layer = ratio ** (1.0 / depth) if ratio > 0 and math.isfinite(ratio) else ratio
        names = [r.name for r in rows[:depth]]
        word = "vanishes" if vanished else "explodes"
        return [
            Finding(
                code="vanishing_signal" if vanished else "exploding_signal",
                severity="warning",
                message=(
                    f"the signal {word} with depth: by layer {depth} ({row.name}) the predicted std is "
                    f"{ratio:.3g} times the input's ({per_layer:.3g} per layer); each layer's "
                    "variance gain sigma_w2 * E[phi^2] / q is not 1"
                ),
                parameters=tuple(f"{n}.weight" if n else "weight" for n in names),
                evidence={
                    "layer": row.name,
                    "depth": depth,
                    "predicted_std": std,
                    "input_std": input_std,
                    "input_std_from": source,
                    "ratio": ratio,
                    "per_layer_factor": per_layer,
                },
                fix="auto",
                reference="Poole et al. 2016; He et al. 2015 (variance gain of each layer 1)",
            )
        ]
    return []
