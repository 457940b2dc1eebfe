"""Uninitialised or broken values: NaN/inf, memory signatures, constant and duplicated units, padding rows.

No initializer draws these, so each is a bug:

* **non-finite** values (NaN, inf): the first forward pass is NaN;
* **uninitialised memory** (``torch.empty`` never written, ``to_empty``
  without a fill): subnormal numbers (more than ``SUBNORMAL_LIMIT`` of the
  non-zero values and ten times what a normal of the same std puts there: a
  float16 N(0, 0.02) has 0.24% below 6.1e-5; or most of the values),
  magnitudes above ``HUGE_MAGNITUDE``,
  one bit pattern repeated across a large share of the tensor;
* **equal columns**: every unit weighs all its inputs alike (rank one);
* **constant** hidden weights (zero included): every unit computes the same
  function and receives the same gradient (Goodfellow, Bengio & Courville
  2016, sec. 8.4). Zero or constant *output* layers and last layers of
  residual branches are a known design (Fixup, zero heads) and only noted;
* **duplicated units**: two output units with identical incoming weights
  stay identical; parameters of different layers holding bit-identical
  values (``copy.deepcopy`` of one initialised layer);
* ``nn.Embedding`` **padding rows** that are not zero.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch
from torch import nn

from initlab.diagnosis.findings import Finding
from initlab.diagnosis.sample import TensorSummary, sample_values
from initlab.diagnosis.structure import Layer

__all__ = ["HUGE_MAGNITUDE", "value_findings", "rule"]

# no initializer of a float parameter draws above this; float32 garbage is typically 1e20..1e38
HUGE_MAGNITUDE = 1e4
# share of subnormal numbers among the non-zero values above which memory was never written
SUBNORMAL_LIMIT = 1e-3
# share of one repeated non-zero value (outside constant tensors) that no continuous draw produces
REPEAT_LIMIT = 0.2
# columns read to find candidate duplicate rows before whole rows are compared
_SIGNATURE_COLUMNS = 16


def rule(name: str, value: str) -> str:
    """A plan rule ``KEY=VALUE`` selecting exactly the parameter ``name``."""
    key = name if "." in name else f"name:{name}"
    return f"{key}={value}"


def _units(tensor: torch.Tensor, layout: str) -> torch.Tensor | None:
    """(units, incoming) view of a weight: rows are what one output unit reads."""
    if tensor.dim() < 2:
        return None
    if layout == "conv_transpose":
        return tensor.detach().transpose(0, 1).reshape(tensor.shape[1], -1)
    if layout == "keras" and tensor.dim() == 2:
        return tensor.detach().t()
    return tensor.detach().reshape(tensor.shape[0], -1)


def duplicate_rows(rows: torch.Tensor, seed: int = 0) -> list[list[int]]:
    """Groups (size >= 2) of exactly equal non-zero rows; rows first bucketed by a few random columns."""
    count, width = rows.shape
    if count < 2 or width == 0:
        return []
    generator = torch.Generator().manual_seed(seed)
    columns = torch.randint(0, width, (min(_SIGNATURE_COLUMNS, width),), generator=generator)
    signature = rows[:, columns.to(rows.device)].to(device="cpu", dtype=torch.float64)
    _, inverse, counts = torch.unique(signature, dim=0, return_inverse=True, return_counts=True)
    groups: list[list[int]] = []
    for bucket in torch.nonzero(counts > 1).flatten().tolist():
        members = torch.nonzero(inverse == bucket).flatten().tolist()
        block = rows[members].to(device="cpu", dtype=torch.float64)
        if not bool(block.abs().sum(dim=1).ne(0).any()):
            continue  # all-zero rows: padding or pruning, not symmetry
        _, local, local_counts = torch.unique(block, dim=0, return_inverse=True, return_counts=True)
        for index in torch.nonzero(local_counts > 1).flatten().tolist():
            group = [members[i] for i in torch.nonzero(local == index).flatten().tolist()]
            if bool(block[torch.nonzero(local == index).flatten()[0]].abs().sum() > 0):
                groups.append(group)
    return groups


def _uninitialised(summary: TensorSummary) -> dict[str, float] | None:
    signs: dict[str, float] = {}
    fraction = summary.subnormal_fraction
    if fraction > 0.5 or fraction > max(SUBNORMAL_LIMIT, 10 * summary.subnormal_expected):
        signs["subnormal_fraction"] = summary.subnormal_fraction
    if math.isfinite(summary.abs_max) and summary.abs_max > HUGE_MAGNITUDE:
        signs["abs_max"] = summary.abs_max
    if not summary.constant and summary.mode_fraction > REPEAT_LIMIT:
        signs["repeated_value_fraction"] = summary.mode_fraction
    return signs or None


def value_findings(
    parameters: Mapping[str, torch.Tensor],
    summaries: Mapping[str, TensorSummary],
    layers: list[Layer],
    *,
    design_zero: set[str],
    model: nn.Module | None = None,
    seed: int = 0,
) -> list[Finding]:
    """Findings about the values of ``parameters`` (name -> tensor, tied ones once).

    ``design_zero``: weights for which a zero or constant start is a known
    design (output layers, last layers of residual branches).
    """
    findings: list[Finding] = []
    layout_of = {layer.weight: layer.layout for layer in layers}
    kind_of = {layer.weight: layer.kind for layer in layers}
    broken: set[str] = set()
    for name, summary in summaries.items():
        if summary.nonfinite:
            broken.add(name)
            findings.append(
                Finding(
                    code="nonfinite",
                    severity="error",
                    message=f"{name} holds {summary.nonfinite} NaN/inf values of {summary.numel}: the first forward pass is NaN",
                    parameters=(name,),
                    evidence={"nonfinite": summary.nonfinite, "numel": summary.numel},
                    fix=rule(name, _default_scheme(name, kind_of, summaries)),
                )
            )
            continue
        signs = _uninitialised(summary)
        if signs is not None:
            broken.add(name)
            findings.append(
                Finding(
                    code="uninitialized_memory",
                    severity="error",
                    message=(
                        f"{name} looks like memory that was never written (torch.empty, to_empty without a fill): "
                        + ", ".join(f"{key} {value:.3g}" for key, value in signs.items())
                    ),
                    parameters=(name,),
                    evidence={**signs, "std": summary.std, "sampled": summary.sampled},
                    fix=rule(name, _default_scheme(name, kind_of, summaries)),
                    reference="torch.empty / Module.to_empty leave storage unwritten",
                )
            )
    findings.extend(_constant_findings(parameters, summaries, kind_of, design_zero, broken))
    findings.extend(_duplicate_unit_findings(parameters, summaries, layout_of, broken, seed))
    findings.extend(_identical_copies(parameters, summaries, broken, seed))
    if model is not None:
        findings.extend(_padding_rows(model))
    return findings


def _matrix_like(tensor: torch.Tensor) -> bool:
    """At least two dims longer than 1: a weight matrix or kernel, not a vector in disguise (a (1, 1, d) token)."""
    return sum(size > 1 for size in tensor.shape) >= 2


def _default_scheme(name: str, kind_of: Mapping[str, str], summaries: Mapping[str, TensorSummary]) -> str:
    kind = kind_of.get(name)
    if kind in ("linear", "conv", "conv_transpose"):
        return "auto"
    if kind == "embedding":
        return "normal(mean=0.0, std=1.0)"
    if name.endswith("bias"):
        return "zeros"
    return "module_default"


def _constant_findings(
    parameters: Mapping[str, torch.Tensor],
    summaries: Mapping[str, TensorSummary],
    kind_of: Mapping[str, str],
    design_zero: set[str],
    broken: set[str],
) -> list[Finding]:
    findings = []
    for name, summary in summaries.items():
        tensor = parameters[name]
        if name in broken or not summary.constant or not _matrix_like(tensor):
            continue
        value = summary.mean
        zero = value == 0.0
        by_design = name in design_zero
        what = "all zero" if zero else f"constant ({value:.4g})"
        if by_design:
            findings.append(
                Finding(
                    code="zero_output" if zero else "constant_output",
                    severity="info",
                    message=(
                        f"{name} is {what}: an output layer or the last layer of a residual branch; a known design "
                        "(Fixup, zero-initialised heads), its gradient is not zero"
                    ),
                    parameters=(name,),
                    evidence={"value": value, "numel": summary.numel},
                    reference="Zhang, Dauphin & Ma 2019 (Fixup); Goyal et al. 2017 (zero-init last BN gamma)",
                )
            )
            continue
        kind = kind_of.get(name, "parameter")
        findings.append(
            Finding(
                code="zero_weights" if zero else "constant_weights",
                severity="error",
                message=(
                    f"{name} ({kind}) is {what}: its units compute the same function, and where they need "
                    "random values to differ no gradient step makes them differ"
                ),
                parameters=(name,),
                evidence={"value": value, "numel": summary.numel},
                fix=rule(name, _default_scheme(name, kind_of, summaries)),
                reference="Goodfellow, Bengio & Courville 2016, sec. 8.4 (breaking symmetry)",
            )
        )
    return findings


def _duplicate_unit_findings(
    parameters: Mapping[str, torch.Tensor],
    summaries: Mapping[str, TensorSummary],
    layout_of: Mapping[str, str],
    broken: set[str],
    seed: int,
) -> list[Finding]:
    findings = []
    for name, summary in summaries.items():
        tensor = parameters[name]
        if name in broken or summary.constant or not _matrix_like(tensor):
            continue
        rows = _units(tensor, layout_of.get(name, "linear"))
        if rows is None:
            continue
        if rows.shape[1] > 1 and bool((rows == rows[:, :1]).all()):
            findings.append(
                Finding(
                    code="symmetric_inputs",
                    severity="warning",
                    message=(
                        f"{name}: every unit gives all {rows.shape[1]} of its inputs one and the same weight (equal "
                        "columns): the layer is rank one, each unit sees only the sum of its inputs"
                    ),
                    parameters=(name,),
                    evidence={"units": int(rows.shape[0]), "inputs": int(rows.shape[1])},
                    fix=rule(name, "auto" if layout_of.get(name) in ("linear", "conv", "conv_transpose") else "module_default"),
                    reference="Goodfellow, Bengio & Courville 2016, sec. 8.4 (breaking symmetry)",
                )
            )
            continue
        groups = duplicate_rows(rows, seed)
        if not groups:
            continue
        duplicated = sum(len(group) for group in groups)
        every = len(groups) == 1 and duplicated == rows.shape[0]
        findings.append(
            Finding(
                code="symmetric_units",
                severity="error" if every else "warning",
                message=(
                    f"{name}: {duplicated} of {rows.shape[0]} units share their incoming weights exactly with "
                    f"another unit ({len(groups)} groups); identical units stay identical under training"
                ),
                parameters=(name,),
                evidence={"units": int(rows.shape[0]), "duplicated_units": duplicated, "groups": len(groups),
                          "first_group": groups[0][:8]},
                fix=rule(name, "auto" if layout_of.get(name) in ("linear", "conv", "conv_transpose") else "module_default"),
                reference="Goodfellow, Bengio & Courville 2016, sec. 8.4 (breaking symmetry)",
            )
        )
    return findings


def _identical_copies(
    parameters: Mapping[str, torch.Tensor],
    summaries: Mapping[str, TensorSummary],
    broken: set[str],
    seed: int,
) -> list[Finding]:
    buckets: dict[tuple[tuple[int, ...], str], list[str]] = {}
    for name, summary in summaries.items():
        tensor = parameters[name]
        if name in broken or summary.constant or tensor.dim() < 2 or tensor.numel() < 16:
            continue
        values = sample_values(tensor, size=4096, seed=seed, name="identical-copies")
        digest = hashlib.blake2b(values.numpy().tobytes(), digest_size=16).hexdigest()
        buckets.setdefault((tuple(tensor.shape), digest), []).append(name)
    findings = []
    for (_, _), names in buckets.items():
        if len(names) < 2:
            continue
        first = parameters[names[0]]
        same = [n for n in names if torch.equal(parameters[n].detach(), first.detach())]
        if len(same) < 2:
            continue
        findings.append(
            Finding(
                code="identical_copies",
                severity="warning",
                message=(
                    f"{len(same)} parameters of different layers hold bit-identical values ({same[0]}, {same[1]}, ...): "
                    "copies of one initialised layer (copy.deepcopy) rather than independent draws; they are not tied, "
                    "so training separates them, but every layer starts as the same function"
                ),
                parameters=tuple(same),
                evidence={"copies": len(same), "shape": list(first.shape)},
                fix="; ".join(rule(n, "auto") for n in same[1:3]) + ("; ..." if len(same) > 3 else ""),
                reference="pytorch/pytorch#72253 (nn.TransformerEncoder deep-copies its layer)",
            )
        )
    return findings


def _padding_rows(model: nn.Module) -> list[Finding]:
    findings = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Embedding) or module.padding_idx is None:
            continue
        weight = module.weight
        if weight.is_meta:
            continue
        row = weight.detach()[module.padding_idx]
        if bool((row == 0).all()):
            continue
        qualified = f"{name}.weight" if name else "weight"
        findings.append(
            Finding(
                code="padding_row_nonzero",
                severity="warning",
                message=(
                    f"{qualified}: row {module.padding_idx} (padding_idx) is not zero (RMS {float(row.double().pow(2).mean().sqrt()):.3g}); "
                    "nn.Embedding zeroes it only in its own reset_parameters, a custom init overwrote it, so padding tokens "
                    "feed a random vector into the model"
                ),
                parameters=(qualified,),
                evidence={"padding_idx": int(module.padding_idx), "row_rms": float(row.double().pow(2).mean().sqrt())},
                fix=f"with torch.no_grad(): {qualified}[{module.padding_idx}].zero_()  (after the init)",
                reference="pytorch/pytorch#6411",
            )
        )
    return findings
