"""``doctor(model, batch=None)``: every check, on the model as it is.

Order: read the structure (weight layers, block stacks, data flow), summarise
each parameter's values on a fixed-size sample, then run the value checks
(:mod:`~initlab.diagnosis.values`), the scale prediction
(:mod:`~initlab.diagnosis.scale`) and the recognised mistakes
(:mod:`~initlab.diagnosis.mistakes`). On the meta device only the structural
checks run. Nothing is written: the model's values, modes and hooks are as
before (the probe, with a batch, restores buffers and modes itself).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from initlab.diagnosis.findings import DoctorReport, Finding, LayerScale, sort_findings
from initlab.diagnosis.mistakes import (
    declared_tying_findings,
    fan_convention_findings,
    output_findings,
    reset_coverage_findings,
    residual_findings,
    truncation_findings,
)
from initlab.diagnosis.sample import SAMPLE_SIZE, TensorSummary, summarize
from initlab.diagnosis.scale import predict_scale
from initlab.diagnosis.structure import BlockStack, Layer, block_stacks, weight_layers
from initlab.diagnosis.values import value_findings
from initlab.plan import analyze, collect_targets
from initlab.rng.checks import check_int, check_seed

__all__ = ["doctor"]


def _check_sample_size(sample_size: Any) -> int:
    return check_int("sample_size", sample_size, minimum=16)


def _summaries(parameters: Mapping[str, torch.Tensor], sample_size: int, seed: int) -> dict[str, TensorSummary]:
    found = {}
    for name, tensor in parameters.items():
        if tensor.is_meta or not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        found[name] = summarize(tensor, size=sample_size, seed=seed, name=name)
    return found


def doctor(
    model: nn.Module | Mapping[str, torch.Tensor],
    batch: Any = None,
    *,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> DoctorReport:
    """Find init bugs in ``model`` (an ``nn.Module``, or a state dict: value checks only).

    ``batch``: an input for the model; the probe's measured std then stands
    beside the mean-field prediction, and models that ``torch.fx`` cannot
    trace get their data flow from a recorded forward pass. ``sample_size``
    values per tensor feed the statistics (default 65536; std to 0.28%).
    ``seed`` fixes which values are sampled.

    Returns a :class:`DoctorReport`; ``report.errors`` / ``report.warnings``
    list the findings of that severity. See docs/doctor.md for every finding.

    >>> import torch, initlab as il
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> torch.nn.init.zeros_(net[0].weight)  # doctest: +ELLIPSIS
    Parameter...
    >>> [f.code for f in il.doctor(net).errors]
    ['zero_weights']
    """
    sample_size = _check_sample_size(sample_size)
    check_seed(seed)
    if isinstance(model, Mapping):
        return _doctor_tensors(model, sample_size, seed)
    if not isinstance(model, nn.Module):
        raise TypeError(f"doctor: model must be a torch.nn.Module or a state dict, got {type(model).__name__}")
    parameters, aliases = _inventory(model)
    structure_only = bool(parameters) and all(tensor.is_meta for tensor in parameters.values())
    summaries = _summaries(parameters, sample_size, seed)
    layers = weight_layers(model)
    stacks = block_stacks(model)
    notes: list[str] = []
    findings: list[Finding] = []
    findings.extend(reset_coverage_findings(model, structure_only))
    findings.extend(declared_tying_findings(model))
    if structure_only:
        notes.append("every parameter is on the meta device: only the structure was checked")
        return DoctorReport(sort_findings(findings), (), True, len(parameters), tuple(notes))
    flow = None
    try:
        flow = analyze(model, example_input=batch, need_residual=True)
        if flow.method == "static" and flow.reason:
            notes.append(f"data flow from registration order: {flow.reason}")
    except Exception as error:  # a model that cannot even be read statically still gets its value checks
        notes.append(f"no data flow ({type(error).__name__}: {str(error)[:120]})")
    output_layers = list(flow.output_layers) if flow is not None else []
    design_zero = _design_zero(layers, stacks, output_layers, flow)
    findings.extend(
        value_findings(parameters, summaries, layers, design_zero=design_zero, model=model, seed=seed)
    )
    rows, scale_findings, scale_notes = predict_scale(
        model, layers, summaries, flow, batch, stop_at=tuple(stack.name for stack in stacks)
    )
    findings.extend(scale_findings)
    notes.extend(scale_notes)
    findings.extend(fan_convention_findings(layers, summaries))
    findings.extend(truncation_findings(model, layers, summaries))
    findings.extend(residual_findings(stacks, summaries))
    predicted_input = _input_mean_squares(rows, output_layers)
    findings.extend(output_findings(model, output_layers, layers, summaries, aliases, predicted_input))
    return DoctorReport(sort_findings(findings), tuple(rows), False, len(parameters), tuple(notes))


def _inventory(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, tuple[str, ...]]]:
    """{name: tensor} of every parameter once (tied ones under their first name) and {name: other names}."""
    lazy = [name for name, p in model.named_parameters() if isinstance(p, UninitializedParameter)]
    if lazy:
        raise ValueError(
            f"doctor: lazy modules have uninitialized parameters ({', '.join(lazy)}); their shapes are unknown "
            "until a forward pass: run model(example) once, then call doctor"
        )
    try:
        targets = collect_targets(model)
    except ValueError:  # hook-based weight_norm / spectral_norm: read the raw parameters instead
        names: dict[int, list[str]] = {}
        tensors: dict[int, torch.Tensor] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(param), []).append(name)
            tensors[id(param)] = param
        return (
            {found[0]: tensors[key] for key, found in names.items()},
            {found[0]: tuple(found[1:]) for found in names.values()},
        )
    return {t.name: t.tensor for t in targets}, {t.name: t.aliases for t in targets}


def _design_zero(layers: list[Layer], stacks: list[BlockStack], output_layers: list[str], flow: Any) -> set[str]:
    """Weights for which a zero start is a known design: output layers, last layers of residual branches."""
    by_name = {layer.name: layer for layer in layers}
    found = {by_name[name].weight for name in output_layers if name in by_name}
    for stack in stacks:
        for block in stack.projections:
            found.update(block)
    for branch in getattr(flow, "residual_branches", None) or []:
        if branch and branch[-1] in by_name:
            found.add(by_name[branch[-1]].weight)
    return found


def _input_mean_squares(rows: list[LayerScale], output_layers: list[str]) -> dict[str, float]:
    """The predicted mean square of the input each output layer reads, where the mean-field chain reaches it."""
    return {
        row.name: row.input_mean_square
        for row in rows
        if row.name in output_layers and row.input_mean_square is not None and math.isfinite(row.input_mean_square)
    }


def _doctor_tensors(state: Mapping[str, torch.Tensor], sample_size: int, seed: int) -> DoctorReport:
    """Value checks on a bare state dict: no structure, so constant tensors are warnings, not errors."""
    parameters = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"doctor: a state dict maps names (str) to tensors, got {type(name).__name__} -> {type(tensor).__name__}"
            )
        parameters[name] = tensor
    summaries = _summaries(parameters, sample_size, seed)
    findings = value_findings(parameters, summaries, [], design_zero=set(), model=None, seed=seed)
    findings = [
        Finding(f.code, "warning", f.message + " (roles unknown in a bare state dict)", f.parameters, f.evidence, f.fix, f.reference)
        if f.code in ("zero_weights", "constant_weights") and f.severity == "error"
        else f
        for f in findings
    ]
    notes = ("a state dict without its model: value checks only (no fans, roles or data flow)",)
    return DoctorReport(sort_findings(findings), (), False, len(parameters), notes)
