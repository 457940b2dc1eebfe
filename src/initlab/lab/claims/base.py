"""Claims as experiments: the registry, checks against stated thresholds, and verdicts.

A claim is a one-sentence statement from the seed texts (or a published
result to reproduce) together with a function that measures it. The function
returns an :class:`Outcome`: what was measured, one or more :class:`Check`
objects (a measured value, a comparison and the threshold it must meet) and
the figures it drew. The verdict is computed from the checks, never written
by hand:

* ``supported``: every check passes;
* ``not supported``: at least one check fails by more than its margin;
* ``inconclusive``: no check fails clearly but one lands inside its margin
  (or is not a finite number), or the experiment could not run.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "SUPPORTED",
    "NOT_SUPPORTED",
    "INCONCLUSIVE",
    "VERDICTS",
    "Check",
    "Outcome",
    "Claim",
    "ClaimResult",
    "Context",
    "claim",
    "registered_claims",
    "get_claim",
    "combine_verdicts",
]

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)

Comparison = Literal["<", "<=", ">", ">=", "==", "in"]
_COMPARISONS = ("<", "<=", ">", ">=", "==", "in")


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:.1f}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Check:
    """One measured value against a stated threshold.

    ``op`` is ``<``, ``<=``, ``>``, ``>=``, ``==`` (within ``margin``) or
    ``in`` (``threshold`` is a ``(low, high)`` interval). ``margin`` is the
    band around the threshold, in the value's units, inside which the check
    is inconclusive rather than passed or failed (for ``==`` it is the
    tolerance). A value that is NaN or infinite is inconclusive unless
    ``nonfinite_passes`` says what it means (True: pass, False: fail).
    """

    label: str
    value: float
    op: Comparison
    threshold: float | tuple[float, float]
    margin: float = 0.0
    nonfinite_passes: bool | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.op not in _COMPARISONS:
            raise ValueError(f"Check: op must be one of {', '.join(_COMPARISONS)}, got {self.op!r}")
        if self.op == "in":
            if not (isinstance(self.threshold, tuple) and len(self.threshold) == 2):
                raise ValueError(f"Check: op 'in' needs threshold=(low, high), got {self.threshold!r}")
        elif isinstance(self.threshold, tuple):
            raise ValueError(f"Check: op {self.op!r} needs a single number as threshold, got {self.threshold!r}")
        if self.margin < 0 or not math.isfinite(self.margin):
            raise ValueError(f"Check: margin must be a finite number >= 0, got {self.margin!r}")
        object.__setattr__(self, "value", float(self.value))

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``unclear``."""
        value = self.value
        if not math.isfinite(value):
            if self.nonfinite_passes is None:
                return "unclear"
            return "pass" if self.nonfinite_passes else "fail"
        margin = self.margin
        if self.op == "in":
            low, high = self.threshold  # type: ignore[misc]
            if low <= value <= high:
                return "pass"
            distance = low - value if value < low else value - high
            return "unclear" if distance <= margin else "fail"
        threshold = float(self.threshold)  # type: ignore[arg-type]
        if self.op == "==":
            return "pass" if abs(value - threshold) <= margin else "fail"
        holds = {
            "<": value < threshold,
            "<=": value <= threshold,
            ">": value > threshold,
            ">=": value >= threshold,
        }[self.op]
        if margin > 0 and abs(value - threshold) <= margin:
            return "unclear"
        return "pass" if holds else "fail"

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def threshold_text(self) -> str:
        """The comparison as text, e.g. ``<= 0.05`` or ``in [0.5, 2]``."""
        if self.op == "in":
            low, high = self.threshold  # type: ignore[misc]
            text = f"in [{_format_number(low)}, {_format_number(high)}]"
        elif self.op == "==":
            text = f"= {_format_number(float(self.threshold))}"  # type: ignore[arg-type]
            if self.margin:
                text += f" ± {_format_number(self.margin)}"
            return text
        else:
            text = f"{self.op} {_format_number(float(self.threshold))}"  # type: ignore[arg-type]
        if self.margin:
            text += f" (±{_format_number(self.margin)} inconclusive)"
        return text

    def value_text(self) -> str:
        return _format_number(self.value)

    def to_dict(self) -> dict[str, Any]:
        threshold: Any = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        return {
            "label": self.label,
            "value": _json_number(self.value),
            "value_text": self.value_text(),
            "op": self.op,
            "threshold": threshold,
            "threshold_text": self.threshold_text(),
            "margin": self.margin,
            "status": self.status,
            "why": self.why,
        }


def combine_verdicts(checks: Sequence[Check]) -> str:
    """``not supported`` if any check fails, else ``inconclusive`` if any is unclear, else ``supported``."""
    if not checks:
        return INCONCLUSIVE
    statuses = [check.status for check in checks]
    if "fail" in statuses:
        return NOT_SUPPORTED
    if "unclear" in statuses:
        return INCONCLUSIVE
    return SUPPORTED


@dataclass
class Outcome:
    """What an experiment returns: the measurement, its checks, figures and tables.

    ``measurement`` says in one sentence what was measured; ``checks[0]`` is
    the headline number shown in the table; ``notes`` explains the result
    (and, where the claim does not hold in this setting, why); ``reference``
    gives the published figure or number a reproduction is compared with.
    """

    measurement: str
    checks: list[Check]
    figures: list[str] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: str = ""
    reference: str = ""
    setting: str = ""


@dataclass(frozen=True)
class Claim:
    """A registered claim: stable id, one-sentence statement, source and the experiment."""

    id: str
    title: str
    statement: str
    source: str
    kind: str
    run: Callable[[Context], Outcome]
    order: int


@dataclass
class ClaimResult:
    """One row of the claims table, with everything the report shows."""

    id: str
    title: str
    statement: str
    source: str
    kind: str
    verdict: str
    measurement: str
    number: str
    threshold: str
    checks: list[dict[str, Any]]
    figures: list[str]
    tables: dict[str, list[dict[str, Any]]]
    notes: str
    reference: str
    setting: str
    seconds: float
    quick: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimResult:
        names = {f for f in cls.__dataclass_fields__}
        missing = {"id", "verdict"} - set(data)
        if missing:
            raise ValueError(f"a claim result needs the keys {sorted(missing)}; got {sorted(data)}")
        values = {key: data[key] for key in names if key in data}
        defaults: dict[str, Any] = {
            "title": "", "statement": "", "source": "", "kind": "claim", "measurement": "",
            "number": "", "threshold": "", "checks": [], "figures": [], "tables": {}, "notes": "",
            "reference": "", "setting": "", "seconds": 0.0, "quick": False,
        }
        for key, default in defaults.items():
            values.setdefault(key, default)
        return cls(**values)


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


class Context:
    """What an experiment gets: the mode, a seed, a figure folder and a progress callback."""

    def __init__(
        self,
        *,
        quick: bool = False,
        seed: int = 0,
        figure_dir: str | os.PathLike[str] | None = None,
        log: Callable[[str], None] | None = None,
        claim_id: str = "",
    ) -> None:
        self.quick = bool(quick)
        self.seed = int(seed)
        self.figure_dir = Path(figure_dir) if figure_dir is not None else None
        self._log = log
        self.claim_id = claim_id

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, ``full`` otherwise."""
        return quick if self.quick else full

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(f"[{self.claim_id}] {message}" if self.claim_id else message)

    def save_figure(self, figure: Any, name: str) -> str | None:
        """Save a matplotlib figure as ``<figure_dir>/<claim id>-<name>.png`` and close it.

        Returns the file name relative to the run folder (``figures/...``), or
        None when this context has no figure folder.
        """
        import matplotlib.pyplot as plt

        try:
            if self.figure_dir is None:
                return None
            self.figure_dir.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.claim_id}-{name}").strip("-")
            path = self.figure_dir / f"{stem}.png"
            figure.savefig(path, dpi=90, bbox_inches="tight")
            return f"{self.figure_dir.name}/{path.name}"
        finally:
            plt.close(figure)


_REGISTRY: dict[str, Claim] = {}
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def claim(
    claim_id: str,
    *,
    title: str,
    statement: str,
    source: str,
    kind: str = "claim",
    order: int,
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Decorator: register an experiment under a stable id."""
    if not _ID_PATTERN.match(claim_id):
        raise ValueError(f"claim id must be lower-case letters, digits and '-', got {claim_id!r}")
    if kind not in ("claim", "reproduction"):
        raise ValueError(f"claim kind must be 'claim' or 'reproduction', got {kind!r}")

    def register(function: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if claim_id in _REGISTRY:
            raise ValueError(f"claim id {claim_id!r} is registered twice")
        _REGISTRY[claim_id] = Claim(claim_id, title, statement, source, kind, function, order)
        return function

    return register


def registered_claims() -> list[Claim]:
    """Every registered claim, claims first (by number), then reproductions."""
    return sorted(_REGISTRY.values(), key=lambda c: (c.kind != "claim", c.order, c.id))


def get_claim(claim_id: str) -> Claim:
    """The claim with this id (``"1"``, ``"01"`` and ``"c1"`` name the same claim)."""
    key = normalise_id(claim_id)
    if key not in _REGISTRY:
        known = ", ".join(c.id for c in registered_claims())
        raise ValueError(f"unknown claim id {claim_id!r}; known ids: {known}")
    return _REGISTRY[key]


def normalise_id(claim_id: str) -> str:
    if not isinstance(claim_id, str):
        raise TypeError(f"a claim id is a string, got {type(claim_id).__name__}")
    key = claim_id.strip().lower()
    match = re.fullmatch(r"c?0*(\d+)", key)
    if match:
        return match.group(1)
    return key
