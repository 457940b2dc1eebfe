"""What the doctor reports: findings with severity, evidence and a fix, and the report that holds them.

A :class:`Finding` names one problem: a code (``nonfinite``,
``fan_convention``, ...), a severity, the parameters concerned, the
evidence as numbers, the fix as a plan line (``NAME=SCHEME`` in the syntax of
``initlab.init_model``) and the reference that explains why it matters.

Severities:

=========  ===============================================================
``error``  the values are broken or the network cannot learn from them
           (NaN/inf, uninitialised memory, constant hidden weights)
``warning`` a recognised mistake that changes training (a wrong fan
           convention, a signal that vanishes with depth, a large head)
``info``   worth knowing, not wrong by itself (zero-initialised output
           layers, structure the doctor could not read)
=========  ===============================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SEVERITIES", "Finding", "LayerScale", "DoctorReport", "jsonable"]

SEVERITIES = ("error", "warning", "info")
_RANK = {name: index for index, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    """One problem the doctor found."""

    code: str
    severity: str
    message: str
    parameters: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fix: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class LayerScale:
    """The std a layer's output is predicted to have (mean field), and the measured one when a batch was given."""

    name: str
    kind: str
    predicted_std: float | None
    measured_std: float | None = None
    activation: str | None = None
    input_mean_square: float | None = None  # predicted mean square of the layer's input
    note: str = ""


@dataclass(frozen=True)
class DoctorReport:
    """Findings in order of severity, and the per-layer scale table."""

    findings: tuple[Finding, ...]
    layers: tuple[LayerScale, ...] = ()
    structure_only: bool = False
    parameters_checked: int = 0
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def of(self, code: str) -> list[Finding]:
        """The findings with ``code``."""
        return [finding for finding in self.findings if finding.code == code]

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "warning"]

    @property
    def codes(self) -> set[str]:
        return {finding.code for finding in self.findings}

    @property
    def worst(self) -> str | None:
        """The most severe severity present, None without findings."""
        if not self.findings:
            return None
        return min((finding.severity for finding in self.findings), key=_RANK.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "structure_only": self.structure_only,
                "parameters_checked": self.parameters_checked,
                "counts": {severity: sum(f.severity == severity for f in self.findings) for severity in SEVERITIES},
                "findings": [asdict(finding) for finding in self.findings],
                "layers": [asdict(layer) for layer in self.layers],
                "notes": list(self.notes),
            }
        )

    def to_json(self, *, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """The findings as text, most severe first, then the scale table."""
        counts = ", ".join(f"{sum(f.severity == s for f in self.findings)} {s}s" for s in SEVERITIES)
        mode = " (meta device: structure only)" if self.structure_only else ""
        lines = [f"initlab doctor: {self.parameters_checked} parameters{mode}; {counts}"]
        for finding in self.findings:
            lines.append("")
            lines.append(f"[{finding.severity}] {finding.code}: {finding.message}")
            if finding.parameters:
                shown = ", ".join(finding.parameters[:6])
                more = f" (+{len(finding.parameters) - 6} more)" if len(finding.parameters) > 6 else ""
                lines.append(f"  parameters: {shown}{more}")
            if finding.evidence:
                evidence = ", ".join(f"{key}={_short(value)}" for key, value in finding.evidence.items())
                lines.append(f"  evidence:   {evidence}")
            if finding.fix:
                lines.append(f"  fix:        {finding.fix}")
            if finding.reference:
                lines.append(f"  reference:  {finding.reference}")
        if self.layers:
            lines.append("")
            measured = any(layer.measured_std is not None for layer in self.layers)
            header = f"  {'layer':<32} {'activation':<12} {'predicted std':>14}"
            lines.append("scale without data (mean field):")
            lines.append(header + (f" {'measured std':>13}" if measured else ""))
            for layer in self.layers:
                row = f"  {layer.name:<32} {layer.activation or '-':<12} {_short(layer.predicted_std):>14}"
                if measured:
                    row += f" {_short(layer.measured_std):>13}"
                if layer.note:
                    row += f"  {layer.note}"
                lines.append(row)
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def sort_findings(findings: list[Finding]) -> tuple[Finding, ...]:
    """Errors first, then warnings, then info; stable within a severity."""
    return tuple(sorted(findings, key=lambda finding: _RANK[finding.severity]))


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_short(v) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]"
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings and tuples as lists, for json.dumps."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
