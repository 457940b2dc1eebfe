"""From device sums to :class:`LayerStats` rows: one transfer, then plain arithmetic on the host.

A row's state is packed into one float64 *record* vector (its accumulator,
its dead-unit count, and per parameter the gradient sums, the update and the
weight's sums) plus its histogram. The probe stores records in its ring
buffer; ``audit`` and ``probe.report()`` turn records into rows here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from initlab.probe.collector import (
    ACC,
    HOST_DEVICES,
    PARAM,
    Collector,
    ParamState,
    RowState,
    host_moments,
)
from initlab.probe.expected import ChainRow, expected_stds, mean_field_predictions
from initlab.probe.layers import LayerInfo
from initlab.probe.remedies import attach_remedies
from initlab.probe.report import LayerStats, ParamStats, ProbeReport
from initlab.probe.symmetry import symmetric_groups, unit_rows
from initlab.probe.verdicts import Evidence, Thresholds, judge

__all__ = ["record_of", "record_size", "to_host", "build_report", "RowMeta"]

_DEAD = ACC.SIZE  # dead units, units
_PARAM_START = ACC.SIZE + 2
_WEIGHT = PARAM.SIZE  # weight sum, sum of squares, count
_PARAM_WIDTH = PARAM.SIZE + 3


def record_size(row: RowState) -> int:
    """Length of a row's record vector."""
    return _PARAM_START + _PARAM_WIDTH * len(row.params)


def record_of(row: RowState) -> tuple[torch.Tensor, torch.Tensor]:
    """(record vector, histogram) of a row's current sums, on the row's device (no sync)."""
    assert row.acc is not None and row.hist is not None
    if row.host is not None and row.hist.device.type in HOST_DEVICES and all(_on_host(param) for param in row.params):
        record = _host_record(row)
        _split_finite(record.numpy(), row, row.hist.numpy()[row.bins.nan_slot])
        return record, row.hist
    record = _device_record(row)
    _split_finite(record, row, row.hist[row.bins.nan_slot])
    return record, row.hist


def _split_finite(record: Any, row: RowState, nonfinite: Any) -> None:
    """Finite and non-finite output counts from the histogram's non-finite slot (the hooks leave them to it)."""
    record[ACC.NONFINITE] = nonfinite
    record[ACC.FINITE] = record[ACC.N] - nonfinite
    if row.info.saturating:
        record[ACC.SATURATION_N] = record[ACC.FINITE]


def _on_host(param: ParamState) -> bool:
    values = param.parameter.detach()  # a plain tensor, unless the parameter is a DTensor or another subclass
    return (param.host is not None and type(values) is torch.Tensor and values.device.type in HOST_DEVICES
            and values.dtype in (torch.float32, torch.float64))


def _host_record(row: RowState) -> torch.Tensor:
    """The record of a row whose sums and parameters are all in host memory: NumPy, no torch dispatch.

    The same entries as :func:`_device_record`; the weight sums are float64
    (the device path squares float32 weights in float32).
    """
    assert row.host is not None
    record = np.empty(record_size(row))
    record[: ACC.SIZE] = row.host
    if row.active is not None:
        active = row.active.numpy()
        record[_DEAD] = float(active.size - np.count_nonzero(active))
        record[_DEAD + 1] = float(active.size)
    else:
        record[_DEAD : _DEAD + 2] = (0.0, -1.0)
    start = _PARAM_START
    for param in row.params:
        assert param.host is not None
        sums = param.current_sums()
        if sums is None:
            _, total, squares, _, _ = host_moments(param.parameter.detach(), bounds=False)
        else:
            total, squares = sums
        record[start : start + PARAM.SIZE] = param.host
        record[start + _WEIGHT : start + _PARAM_WIDTH] = (total, squares, float(param.parameter.numel()))
        start += _PARAM_WIDTH
    return torch.from_numpy(record)


def _device_record(row: RowState) -> torch.Tensor:
    """The record of a row from torch operations on its device (no host read)."""
    assert row.acc is not None
    device = row.acc.device
    parts = [row.acc]
    if row.active is not None:
        units = row.active.numel()
        parts.append(
            torch.stack([(~row.active).sum().to(torch.float64), row.acc.new_full((), float(units))])
        )
    else:
        parts.append(torch.cat([row.acc.new_zeros(1), row.acc.new_full((1,), -1.0)]))
    for param in row.params:
        # float32 is exact enough for weights (an overflow needs |w| > 1e19)
        values = param.parameter.detach().reshape(-1)
        values = values if values.dtype in (torch.float32, torch.float64) else values.float()
        moments = torch.stack(
            [
                values.sum(dtype=torch.float64),
                torch.dot(values, values).to(torch.float64),
                row.acc.new_full((), float(values.numel())),
            ]
        )
        parts.append(param.acc.to(device))
        parts.append(moments.to(device))
    return torch.cat(parts)


def to_host(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """float64 NumPy copies of ``tensors`` with one transfer per device."""
    by_device: dict[torch.device, list[int]] = {}
    for position, tensor in enumerate(tensors):
        by_device.setdefault(tensor.device, []).append(position)
    result: list[np.ndarray | None] = [None] * len(tensors)
    for positions in by_device.values():
        flat = (
            torch.cat([tensors[p].reshape(-1).to(torch.float64) for p in positions]).cpu().numpy()
        )
        start = 0
        for p in positions:
            size = tensors[p].numel()
            result[p] = flat[start : start + size].reshape(tuple(tensors[p].shape))
            start += size
    return [array if array is not None else np.zeros(0) for array in result]


@dataclass(frozen=True)
class RowMeta:
    """Host-side facts of a recorded row that are not numbers on the device."""

    info: LayerInfo
    module: Any
    source: str | None
    output_shape: tuple[int, ...] | None
    params: tuple[tuple[str, str, tuple[int, ...]], ...]  # (qualified name, local name, shape)


def row_meta(row: RowState) -> RowMeta:
    return RowMeta(
        info=row.info,
        module=row.module,
        source=None if row.source_ambiguous else row.source,
        output_shape=row.output_shape,
        params=tuple((p.name, p.local_name, tuple(p.parameter.shape)) for p in row.params),
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return None
    return numerator / denominator


def _moments(
    count: float, total: float, squares: float
) -> tuple[float | None, float | None, float | None]:
    if count <= 0:
        return None, None, None
    mean = total / count
    mean_square = squares / count
    return mean, math.sqrt(max(mean_square - mean * mean, 0.0)), math.sqrt(max(mean_square, 0.0))


@dataclass
class _Decoded:
    meta: RowMeta
    vector: np.ndarray
    hist: np.ndarray

    def acc(self, index: int) -> float:
        return float(self.vector[index])

    @property
    def rms(self) -> float | None:
        return _moments(self.acc(ACC.FINITE), self.acc(ACC.SUM), self.acc(ACC.SUMSQ))[2]

    @property
    def grad_rms(self) -> float | None:
        return _moments(
            self.acc(ACC.GRAD_FINITE), self.acc(ACC.GRAD_SUM), self.acc(ACC.GRAD_SUMSQ)
        )[2]

    def param(self, index: int) -> np.ndarray:
        start = _PARAM_START + _PARAM_WIDTH * index
        return self.vector[start : start + _PARAM_WIDTH]


def build_report(
    metas: Sequence[RowMeta],
    vectors: Sequence[np.ndarray],
    hists: Sequence[np.ndarray],
    *,
    input_sums: np.ndarray | None,
    thresholds: Thresholds,
    expected: Mapping[str, float],
    symmetry: Mapping[str, list[tuple[int, ...]] | None],
    bins: Any,
    loss: float | None = None,
    step: int | None = None,
    title: str = "",
    branch_parameters: frozenset[str] = frozenset(),
) -> ProbeReport:
    """The report of one batch/step from decoded records (host arrays).

    ``branch_parameters``: weights a plan placed inside residual branches
    (:func:`initlab.probe.expected.residual_parameters`); a small output of
    their rows that matches the expected std is by design.
    """
    decoded = [_Decoded(meta, vector, hist) for meta, vector, hist in zip(metas, vectors, hists)]
    input_ms = None
    input_rms = None
    if input_sums is not None and input_sums[1] > 0:
        input_ms = float(input_sums[0] / input_sums[1])
        input_rms = math.sqrt(input_ms)
    chain = [_chain_row(d) for d in decoded]
    expected_out = expected_stds(chain, expected)
    predicted = mean_field_predictions(chain, input_ms)
    last_grad_rms = None
    for d in reversed(decoded):
        if d.acc(ACC.GRAD_FINITE) > 0:
            last_grad_rms = d.grad_rms
            break
    rows = []
    network = _Network(input_rms, last_grad_rms, expected, thresholds)
    reference_rms, reference_name = input_rms, "input"
    designs = _designs(decoded, expected_out, branch_parameters)
    for index, d in enumerate(decoded, start=1):
        row = _layer_stats(
            index,
            d,
            network,
            reference=(reference_rms, reference_name),
            expected_std=expected_out.get(d.meta.info.name),
            predicted_std=predicted.get(d.meta.info.name),
            groups=symmetry.get(d.meta.info.name),
            design=designs[index - 1],
        )
        rows.append(row)
        if d.meta.info.kind == "norm" and row.act_rms:
            reference_rms, reference_name = row.act_rms, f"{d.meta.info.name} (norm)"
    return ProbeReport(
        rows=attach_remedies(rows, thresholds),
        bins=bins,
        thresholds=thresholds,
        input_rms=input_rms,
        loss=loss,
        step=step,
        title=title,
    )


@dataclass(frozen=True)
class _Design:
    """What the plan meant a row to start as (see the verdicts' "zero by design")."""

    zero: bool = False  # expected std 0, in a residual branch or the output layer
    zero_after: bool = False  # a later row is zero by design: the gradient stops there at first
    in_branch: bool = False  # the plan placed the row in a residual branch


def _designs(
    decoded: Sequence[_Decoded], expected_out: Mapping[str, float], branch_parameters: frozenset[str]
) -> list[_Design]:
    """Per row: zero by design, behind a zero-by-design row, inside a residual branch.

    Zero is by design only where the design is known: the last layer of a
    residual branch (Fixup) and the output layer (the last weight row). A
    plan that zeroes a hidden layer elsewhere is the classic mistake, and
    keeps its verdict.
    """
    weight_rows = [d.meta.info.name for d in decoded if d.meta.info.layout is not None]
    output = weight_rows[-1] if weight_rows else None
    branch: set[str] = set()
    zero: set[str] = set()
    for d in decoded:
        name, source = d.meta.info.name, d.meta.source
        if any(local == "weight" and p in branch_parameters for p, local, _ in d.meta.params):
            branch.add(name)
        elif d.meta.info.kind == "activation" and source in branch:
            branch.add(name)
        reads_zero = d.meta.info.kind == "activation" and source in zero
        if expected_out.get(name) == 0.0 and (name in branch or name == output or reads_zero):
            zero.add(name)
    designs = []
    later_zero = False
    for d in reversed(decoded):
        name = d.meta.info.name
        designs.append(_Design(zero=name in zero, zero_after=later_zero, in_branch=name in branch))
        later_zero = later_zero or name in zero
    return designs[::-1]


def _chain_row(d: _Decoded) -> ChainRow:
    info = d.meta.info
    weight_shape = None
    weight_ms = bias_ms = None
    for index, (_, local, shape) in enumerate(d.meta.params):
        values = d.param(index)
        count = values[_WEIGHT + 2]
        mean_square = float(values[_WEIGHT + 1] / count) if count > 0 else None
        if local == "weight":
            weight_shape, weight_ms = shape, mean_square
        elif local == "bias":
            bias_ms = mean_square
    in_n = d.acc(ACC.IN_N)
    return ChainRow(
        name=info.name,
        kind=info.kind,
        module=d.meta.module,
        source=d.meta.source,
        layout=info.layout,
        groups=info.groups,
        weight_shape=weight_shape,
        weight_mean_square=weight_ms,
        bias_mean_square=bias_ms,
        input_mean_square=d.acc(ACC.IN_SUMSQ) / in_n if in_n > 0 else None,
    )


@dataclass(frozen=True)
class _Units:
    """Dead and total units of a layer's output, and the units of its weight (for symmetry counts)."""

    dead: int
    total: int
    dead_fraction: float | None
    weight_units: int


def _units(d: _Decoded) -> _Units:
    info = d.meta.info
    dead, total = int(d.vector[_DEAD]), int(d.vector[_DEAD + 1])
    dead_fraction = dead / total if info.dying and total > 0 else None
    if total < 0:
        dead, total = 0, 0
    shape = d.meta.output_shape
    if total <= 0 and shape is not None and len(shape) >= 2:
        total = shape[info.unit_dim]
    weight_units = total
    for _, local, weight_shape in d.meta.params:
        if local == "weight" and len(weight_shape) >= 2 and info.layout is not None:
            weight_units = weight_shape[1 if info.layout == "conv_transpose" else 0]
    return _Units(dead, total, dead_fraction, weight_units)


@dataclass(frozen=True)
class _Gradients:
    """Statistics of the gradient with respect to a layer's output."""

    mean: float | None
    std: float | None
    norm: float | None
    nonfinite: int
    ratio: float | None  # RMS relative to the last layer's


def _gradients(d: _Decoded, last_grad_rms: float | None) -> _Gradients:
    finite = d.acc(ACC.GRAD_FINITE)
    mean, std, _ = _moments(finite, d.acc(ACC.GRAD_SUM), d.acc(ACC.GRAD_SUMSQ))
    norm = math.sqrt(d.acc(ACC.GRAD_SUMSQ)) if finite > 0 else None
    ratio = _ratio(d.grad_rms or 0.0, last_grad_rms) if finite > 0 and last_grad_rms else None
    return _Gradients(mean, std, norm, int(d.acc(ACC.GRAD_NONFINITE)), ratio)


def _scales(
    d: _Decoded, rms: float | None, input_rms: float | None, reference_rms: float | None
) -> tuple[float | None, float | None, float | None]:
    """(RMS of the layer's input, log10 of RMS(out) / RMS(network input), RMS(out) / RMS(reference layer))."""
    in_n = d.acc(ACC.IN_N)
    in_rms = math.sqrt(d.acc(ACC.IN_SUMSQ) / in_n) if in_n > 0 else None
    log_gain = None
    if rms is not None and input_rms:
        log_gain = math.log10(rms / input_rms) if rms > 0 else -math.inf
    scale_ratio = _ratio(rms, reference_rms) if rms is not None and reference_rms else None
    return in_rms, log_gain, scale_ratio


def _symmetry_evidence(groups: list[tuple[int, ...]] | None, units: _Units) -> tuple[int, int, int, int]:
    """(units, symmetric units, groups, largest group) of a layer's evidence.

    The symmetric groups are counted among the weight's units, dead units among the output's.
    """
    sizes = [len(group) for group in groups or ()]
    return units.weight_units if groups else units.total, sum(sizes), len(sizes), max(sizes, default=0)


@dataclass(frozen=True)
class _Network:
    """What every layer's row is measured against: the input, the last gradient, the expectations."""

    input_rms: float | None
    last_grad_rms: float | None
    expected: Mapping[str, float]
    thresholds: Thresholds


def _as_expected(std: float | None, expected_std: float | None) -> bool:
    """Whether a measured std is within a factor of 2 of the expected one."""
    if std is None or expected_std is None or expected_std <= 0:
        return False
    return 0.5 <= std / expected_std <= 2.0


def _evidence(
    d: _Decoded,
    units: _Units,
    grads: _Gradients,
    scale: tuple[float | None, str],
    *,
    groups: list[tuple[int, ...]] | None,
    design: _Design,
) -> Evidence:
    """The numbers the verdict of one row is drawn from; ``scale`` is (RMS / reference RMS, reference name)."""
    finite = d.acc(ACC.FINITE)
    saturation_n = d.acc(ACC.SATURATION_N)
    gram_calls = d.acc(ACC.GRAM_CALLS)
    all_zero = finite > 0 and d.acc(ACC.SUMSQ) == 0.0
    unit_count, symmetric, group_count, largest = _symmetry_evidence(groups, units)
    return Evidence(
        nonfinite=int(d.acc(ACC.NONFINITE)),
        grad_nonfinite=grads.nonfinite,
        scale_ratio=scale[0],
        reference=scale[1],
        grad_ratio=grads.ratio,
        saturated_fraction=(
            d.acc(ACC.SATURATED) / saturation_n if d.meta.info.saturating and saturation_n > 0 else None
        ),
        dead_fraction=units.dead_fraction,
        dead_units=units.dead,
        mean_cosine=d.acc(ACC.COSINE) / gram_calls if gram_calls > 0 else None,
        all_zero=all_zero,
        output_rms=d.rms,
        effective_rank=d.acc(ACC.ERANK) / gram_calls if gram_calls > 0 else None,
        zero_by_design=all_zero and design.zero,
        gradient_blocked=design.zero_after and d.acc(ACC.GRAD_FINITE) > 0 and d.acc(ACC.GRAD_SUMSQ) == 0.0,
        units=unit_count,
        symmetric_units=symmetric,
        symmetric_group_count=group_count,
        largest_group=largest,
    )


def _layer_stats(
    index: int,
    d: _Decoded,
    network: _Network,
    *,
    reference: tuple[float | None, str],
    expected_std: float | None,
    predicted_std: float | None,
    groups: list[tuple[int, ...]] | None,
    design: _Design,
) -> LayerStats:
    """One layer's row; ``reference`` is the (RMS, name) of the layer its scale is compared with.

    ``design``: what the plan meant the row to start as.
    """
    info = d.meta.info
    mean, std, rms = _moments(d.acc(ACC.FINITE), d.acc(ACC.SUM), d.acc(ACC.SUMSQ))
    in_rms, log_gain, scale_ratio = _scales(d, rms, network.input_rms, reference[0])
    units = _units(d)
    grads = _gradients(d, network.last_grad_rms)
    params = tuple(_param_stats(d, i, network.expected) for i in range(len(d.meta.params)))
    main = next((p for p in params if p.name.rsplit(".", 1)[-1] == "weight"), params[0] if params else None)
    evidence = _evidence(
        d, units, grads, (scale_ratio, reference[1]), groups=groups, design=design
    )
    if design.in_branch and not evidence.zero_by_design and _as_expected(std, expected_std):
        evidence = replace(evidence, scaled_by_design=True)
    verdict, reason, flags = judge(evidence, network.thresholds)
    if expected_std is not None and std is not None and expected_std > 0:
        reason += f"; std {std:.3g} vs expected {expected_std:.3g}"
    seen = d.acc(ACC.N) > 0
    return LayerStats(
        name=info.name,
        module_type=info.module_type,
        kind=info.kind,
        index=index,
        activation=info.activation,
        calls=int(d.acc(ACC.CALLS)),
        shape=d.meta.output_shape,
        act_mean=mean,
        act_std=std,
        act_rms=rms,
        act_min=d.acc(ACC.MIN) if seen else None,
        act_max=-d.acc(ACC.NEG_MAX) if seen else None,
        nonfinite=evidence.nonfinite,
        in_rms=in_rms,
        gain=_ratio(rms, in_rms) if rms is not None and in_rms is not None else None,
        log_gain_cum=log_gain,
        scale_ratio=scale_ratio,
        saturated_fraction=evidence.saturated_fraction,
        dead_fraction=units.dead_fraction,
        dead_units=units.dead if info.dying else 0,
        units=units.total,
        effective_rank=evidence.effective_rank,
        mean_cosine=evidence.mean_cosine,
        grad_mean=grads.mean,
        grad_std=grads.std,
        grad_norm=grads.norm,
        grad_nonfinite=grads.nonfinite,
        grad_weight_ratio=main.grad_weight_ratio if main else None,
        update_weight_ratio=main.update_weight_ratio if main else None,
        symmetric_groups=tuple(groups) if groups is not None else None,
        hist=tuple(int(round(c)) for c in d.hist),
        expected_std=expected_std,
        predicted_std=predicted_std,
        verdict=verdict,
        reason=reason,
        flags=flags,
        params=params,
    )


def _param_stats(d: _Decoded, index: int, expected: Mapping[str, float]) -> ParamStats:
    name, _, shape = d.meta.params[index]
    values = d.param(index)
    w_count = values[_WEIGHT + 2]
    w_mean, w_std, w_rms = _moments(w_count, values[_WEIGHT], values[_WEIGHT + 1])
    weight_norm = math.sqrt(max(values[_WEIGHT + 1], 0.0))
    g_finite = values[PARAM.GRAD_FINITE]
    grad_std = grad_norm = None
    if values[PARAM.GRAD_N] > 0 and g_finite > 0:
        _, grad_std, _ = _moments(g_finite, values[PARAM.GRAD_SUM], values[PARAM.GRAD_SUMSQ])
        grad_norm = math.sqrt(values[PARAM.GRAD_SUMSQ])
    update = math.sqrt(values[PARAM.UPDATE_SUMSQ]) if values[PARAM.UPDATES] > 0 else None
    return ParamStats(
        name=name,
        shape=shape,
        weight_mean=w_mean if w_mean is not None else 0.0,
        weight_std=w_std if w_std is not None else 0.0,
        weight_norm=weight_norm,
        expected_std=expected.get(name),
        grad_std=grad_std,
        grad_norm=grad_norm,
        grad_nonfinite=int(values[PARAM.GRAD_NONFINITE]),
        grad_weight_ratio=_ratio(grad_norm, weight_norm) if grad_norm is not None else None,
        update_weight_ratio=_ratio(update, weight_norm) if update is not None else None,
    )


def symmetry_of(
    collector: Collector,
    rows: Sequence[RowState],
    grads: Mapping[str, torch.Tensor | None],
    tol: float,
) -> dict[str, list[tuple[int, ...]] | None]:
    """Symmetric unit groups of every weight row (None for rows without unit-shaped weights)."""
    result: dict[str, list[tuple[int, ...]] | None] = {}
    for row in rows:
        info = row.info
        if info.kind not in ("linear", "conv", "conv_transpose"):
            result[info.name] = None
            continue
        by_local = {p.local_name: p for p in row.params}
        weight = by_local.get("weight")
        if weight is None:
            result[info.name] = None
            continue
        bias = by_local.get("bias")
        layout = info.layout or "linear"
        weights = unit_rows(
            weight.parameter,
            bias.parameter if bias is not None else None,
            layout=layout,
            groups=info.groups,
        )
        if weights is None:
            result[info.name] = None
            continue
        weight_grad = grads.get(weight.name)
        grad_rows = None
        if weight_grad is not None:
            bias_grad = grads.get(bias.name) if bias is not None else None
            if bias is not None and bias_grad is None:
                bias_grad = torch.zeros_like(bias.parameter)
            grad_rows = unit_rows(weight_grad, bias_grad, layout=layout, groups=info.groups)
        result[info.name] = symmetric_groups(weights, grad_rows, tol=tol, groups=info.groups)
    return result
