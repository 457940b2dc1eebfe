"""InitReport: what ``init_model`` did to each parameter."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["InitRow", "InitReport", "STATUSES", "sample_stats", "MEASURE_SAMPLE"]

STATUSES = {
    "initialized": "filled by the matched rule",
    "kept": "matched a 'keep' rule (or a rule with nothing to draw), values unchanged",
    "untouched": "no rule matched, values unchanged",
    "frozen": "requires_grad=False, skipped (include_frozen=True initialises it)",
    "non-float": "integer or bool parameter, skipped",
}

# measured statistics use at most this many elements (exact below it), read as SEGMENTS evenly
# spaced contiguous runs; the relative std of the estimate is about 1 / sqrt(2 * MEASURE_SAMPLE)
# = 0.4%. Staying at torch's intra-op grain size keeps these reductions single-threaded, and
# contiguous runs touch few cache lines, so measuring costs microseconds per tensor.
MEASURE_SAMPLE = 2**15
SEGMENTS = 32


def _sample(flat: torch.Tensor) -> torch.Tensor:
    count = flat.numel()
    if count <= MEASURE_SAMPLE:
        return flat
    length = MEASURE_SAMPLE // SEGMENTS
    step = (count - length) // (SEGMENTS - 1)
    return flat.as_strided((SEGMENTS, length), (step, 1), flat.storage_offset()).reshape(-1)


def sample_stats(tensor: torch.Tensor) -> tuple[float | None, float | None]:
    """(mean, std) of ``tensor`` (population std), from up to MEASURE_SAMPLE elements.

    A DTensor is measured on this rank's shard (no communication).
    """
    to_local = getattr(tensor, "to_local", None)
    if callable(to_local):
        tensor = to_local()
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return None, None
    flat = tensor.detach().reshape(-1)
    # two passes in float64 on the sample (torch.std_mean is much slower on CPU)
    values = _sample(flat).to(torch.float64)
    mean = values.mean()
    centred = values - mean
    std = centred.square().mean().sqrt()
    return float(mean), float(std)


@dataclass(frozen=True)
class InitRow:
    """One parameter: where it is, the rule that matched, the promise and the measurement."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    rule: str
    scheme: str
    layout: str
    fan_in: int | None
    fan_out: int | None
    gain: float | None
    expected_mean: float | None
    expected_std: float | None
    measured_mean: float | None
    measured_std: float | None
    status: str
    aliases: tuple[str, ...] = ()
    blocks: int = 1
    note: str = ""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def std_ratio(self) -> float | None:
        """measured_std / expected_std (None where either is missing or expected is 0)."""
        if self.measured_std is None or not self.expected_std:
            return None
        return self.measured_std / self.expected_std


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after commas (or anywhere, for one long word)."""
    import textwrap

    return textwrap.wrap(text, max(width, 8), break_on_hyphens=False)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


_COLUMNS = ("name", "shape", "rule", "scheme", "fan_in", "fan_out", "gain", "expected_std", "measured_std", "status")


@dataclass
class InitReport:
    """One row per parameter (tied parameters once), plus what the plan and stages did.

    ``table()`` is plain text; ``to_dict()``/``to_json()`` carry every field.
    """

    rows: list[InitRow]
    plan: str
    seed: int
    rng: str
    # how the data flow was read ("fx", "recorded", "static"); None when no rule of the plan needs it
    flow: str | None = None
    output_layer: str | None = None
    warnings: list[str] = field(default_factory=list)
    stage_reports: dict[str, Any] = field(default_factory=dict)
    materialized: str | None = None

    def __iter__(self) -> Iterator[InitRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> InitRow:
        for row in self.rows:
            if row.name == name or name in row.aliases:
                return row
        raise KeyError(f"no parameter {name!r} in the report; parameters: {', '.join(r.name for r in self.rows)}")

    def by_status(self, status: str) -> list[InitRow]:
        """Rows with ``status`` (see ``STATUSES``)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        return [row for row in self.rows if row.status == status]

    @property
    def untouched(self) -> list[InitRow]:
        return self.by_status("untouched")

    def table(self, *, max_scheme: int = 60) -> str:
        """A plain-text table, one line per parameter, then the plan, rng, flow and warnings.

        A scheme longer than ``max_scheme`` characters wraps onto continuation lines
        (at its commas), never cut.
        """
        cells = [list(_COLUMNS)]
        scheme_column = _COLUMNS.index("scheme")
        for row in self.rows:
            scheme_lines = _wrap(row.scheme, max_scheme) or ["-"]
            name = row.name + (f" (= {', '.join(row.aliases)})" if row.aliases else "")
            cells.append([
                name,
                "x".join(str(d) for d in row.shape) or "()",
                row.rule or "-",
                scheme_lines[0],
                "-" if row.fan_in is None else str(row.fan_in),
                "-" if row.fan_out is None else str(row.fan_out),
                _number(row.gain),
                _number(row.expected_std),
                _number(row.measured_std),
                row.status,
            ])
            for more in scheme_lines[1:]:
                cells.append(["" if i != scheme_column else "  " + more for i in range(len(_COLUMNS))])
        widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append("")
        lines.append(f"plan: {self.plan}   seed: {self.seed}   rng: {self.rng}   flow: {self.flow or 'not read (no rule of this plan needs it)'}")
        if self.output_layer:
            lines.append(f"output layer: {self.output_layer}")
        if self.materialized:
            lines.append(f"materialized from the meta device on {self.materialized}")
        for name, report in self.stage_reports.items():
            lines.append(f"stage {name}: {type(report).__name__}")
        for warning in self.warnings:
            lines.append(f"warning: {warning}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values (stage reports via their own ``to_dict`` when they have one)."""
        stages: dict[str, Any] = {}
        for name, report in self.stage_reports.items():
            to_dict = getattr(report, "to_dict", None)
            stages[name] = to_dict() if callable(to_dict) else repr(report)
        return {
            "plan": self.plan,
            "seed": self.seed,
            "rng": self.rng,
            "flow": self.flow,
            "output_layer": self.output_layer,
            "materialized": self.materialized,
            "warnings": list(self.warnings),
            "rows": [{**asdict(row), "shape": list(row.shape), "aliases": list(row.aliases)} for row in self.rows],
            "stage_reports": stages,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)
