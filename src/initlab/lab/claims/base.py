"""Claims as pre-registered experiments: hypotheses, decision rules fixed in code, controls, verdicts.

A claim is a statement about initialization from the literature, turned into
a hypothesis that an experiment can refute. Everything that decides its
verdict is declared where the claim is registered, before anything runs:

* the **hypothesis**, in plain words;
* its **design**: the stated principle that fixes the settings a verdict
  could hinge on (a learning rate, a step budget), where there is one;
* its **amendments**: every change of its design made after results had
  been seen, with the date and the reason -- the record a pre-registration
  keeps, listed in docs/claims.md;
* its **rules**: each names a measurement, the side of a threshold the
  claim predicts, and a role:

  - ``primary``: what the claim predicts in its own setting;
  - ``control``: the same experiment in a condition where the claim predicts
    the *opposite* outcome (or where a rival explanation would show up);
    it must come out as predicted, or the experiment cannot tell the claim
    from its alternative;
  - ``demonstration``: an identity, a determinism check or a check that the
    experiment set up its condition (e.g. that large weights do saturate
    the units). It cannot refute the claim and is never counted as support.

The experiment returns one :class:`Measurement` per rule: a value with its
95 % confidence interval over seeds (or an exact value). A rule compares the
interval, not the value, with its threshold: ``pass`` when the whole
interval is on the predicted side, ``fail`` when it is entirely on the
other side, ``unclear`` when it contains the threshold. The verdict follows
(:func:`decide`):

* ``demonstration``: the claim has only demonstrations, and they hold;
* ``invalid``: a control (or a demonstration of a tested claim) failed, so
  the experiment does not discriminate and nothing is concluded;
* ``not supported``: a primary rule failed;
* ``inconclusive``: a primary rule or a control is unclear;
* ``supported``: every primary rule and control passed;
* ``error``: the experiment raised; the message is kept.
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
    "INVALID",
    "ERROR",
    "DEMONSTRATION",
    "VERDICTS",
    "ROLES",
    "Measurement",
    "Rule",
    "Amendment",
    "Outcome",
    "Claim",
    "ClaimResult",
    "Context",
    "claim",
    "decide",
    "registered_claims",
    "get_claim",
]

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
INVALID = "invalid"
ERROR = "error"
DEMONSTRATION = "demonstration"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, INVALID, DEMONSTRATION, ERROR)

Role = Literal["primary", "control", "demonstration"]
ROLES = ("primary", "control", "demonstration")
Comparison = Literal["<", ">", "in", "=="]
_COMPARISONS = ("<", ">", "in", "==")
GROUPS = ("claim", "reproduction")

# tick labels, legends and titles of every figure are at least this large (points)
MIN_FONT_SIZE = 8.0


def format_number(value: float) -> str:
    """A number for a table cell: 4 significant digits, scientific outside [1e-3, 1e5)."""
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
class Measurement:
    """A measured value and its confidence interval [low, high] (equal to the value when exact).

    ``n`` is the number of independent units behind it (seeds, networks),
    ``method`` says how the interval was made, ``samples`` keeps the
    per-unit values of each group.
    """

    value: float
    low: float
    high: float
    n: int = 1
    method: str = "exact (no sampling)"
    samples: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def exact(self) -> bool:
        return self.low == self.high == self.value

    def text(self) -> str:
        """``0.123 [0.101, 0.140]``, or the value alone when exact."""
        if self.exact or (math.isnan(self.low) and math.isnan(self.high) and self.n <= 1):
            return format_number(self.value)
        return f"{format_number(self.value)} [{format_number(self.low)}, {format_number(self.high)}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _json_number(self.value), "low": _json_number(self.low), "high": _json_number(self.high),
            "n": self.n, "method": self.method, "text": self.text(),
            "samples": [[_json_number(v) for v in group] for group in self.samples],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            float(data["value"]), float(data["low"]), float(data["high"]), int(data.get("n", 1)),
            str(data.get("method", "")), tuple(tuple(float(v) for v in group) for group in data.get("samples", [])),
        )


@dataclass(frozen=True)
class Rule:
    """A decision rule fixed before the run: measurement ``key`` against ``threshold``.

    ``op``: ``>`` / ``<`` (the claim predicts the interval above / below the
    threshold), ``in`` (inside ``(low, high)``), ``==`` (exactly equal: for
    identities). ``predicts`` says, for a control, the condition and what the
    claim predicts there; ``why`` where the threshold comes from.
    """

    key: str
    label: str
    op: Comparison
    threshold: float | tuple[float, float]
    role: Role = "primary"
    predicts: str = ""
    why: str = ""

    def __post_init__(self) -> None:
        if self.op not in _COMPARISONS:
            raise ValueError(f"Rule {self.key!r}: op must be one of {', '.join(_COMPARISONS)}, got {self.op!r}")
        if self.role not in ROLES:
            raise ValueError(f"Rule {self.key!r}: role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.op == "in":
            if not (isinstance(self.threshold, tuple) and len(self.threshold) == 2
                    and self.threshold[0] <= self.threshold[1]):
                raise ValueError(f"Rule {self.key!r}: op 'in' needs threshold=(low, high), got {self.threshold!r}")
        elif isinstance(self.threshold, tuple) or not math.isfinite(float(self.threshold)):
            raise ValueError(f"Rule {self.key!r}: op {self.op!r} needs one finite threshold, got {self.threshold!r}")
        if self.role == "control" and not self.predicts:
            raise ValueError(f"Rule {self.key!r}: a control must say what the claim predicts (predicts=...)")

    def status(self, measurement: Measurement) -> str:
        """``pass``, ``fail`` or ``unclear`` of the interval against the threshold."""
        low, high = measurement.low, measurement.high
        if math.isnan(low) or math.isnan(high):
            return "unclear"
        if self.op == "in":
            bottom, top = self.threshold  # type: ignore[misc]
            if bottom <= low and high <= top:
                return "pass"
            return "fail" if high < bottom or low > top else "unclear"
        threshold = float(self.threshold)  # type: ignore[arg-type]
        if self.op == "==":
            return "pass" if low == high == threshold else "fail"
        if self.op == ">":
            return "pass" if low > threshold else "fail" if high <= threshold else "unclear"
        return "pass" if high < threshold else "fail" if low >= threshold else "unclear"

    def threshold_text(self) -> str:
        if self.op == "in":
            bottom, top = self.threshold  # type: ignore[misc]
            return f"in [{format_number(bottom)}, {format_number(top)}]"
        sign = "=" if self.op == "==" else self.op
        return f"{sign} {format_number(float(self.threshold))}"  # type: ignore[arg-type]

    def decision_text(self) -> str:
        """The rule in words, e.g. 'pass when the whole interval lies above 0.05; fail when ...'."""
        if self.op == "==":
            return f"pass when the value equals {format_number(float(self.threshold))} exactly, else fail"  # type: ignore[arg-type]
        if self.op == "in":
            bottom, top = self.threshold  # type: ignore[misc]
            return (f"pass when the whole interval lies in [{format_number(bottom)}, {format_number(top)}]; "
                    "fail when it lies entirely outside; otherwise unclear")
        side, other = ("above", "at or below") if self.op == ">" else ("below", "at or above")
        value = format_number(float(self.threshold))  # type: ignore[arg-type]
        return (f"pass when the whole interval lies {side} {value}; fail when it lies entirely {other} it; "
                "unclear when it contains it")

    def to_dict(self) -> dict[str, Any]:
        threshold: Any = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        return {
            "key": self.key, "label": self.label, "role": self.role, "op": self.op, "threshold": threshold,
            "threshold_text": self.threshold_text(), "decision": self.decision_text(), "predicts": self.predicts,
            "why": self.why,
        }


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Amendment:
    """A change of a claim's design made after results had been seen: the date (``YYYY-MM-DD``), what, why.

    A pre-registration keeps these: a claim's verdict can only be read with
    the changes that were made once its numbers were known.
    """

    date: str
    change: str
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.date, str) or not _DATE.match(self.date):
            raise ValueError(f"an amendment's date is YYYY-MM-DD, got {self.date!r}")
        for name in ("change", "reason"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"an amendment needs a non-empty {name}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, str]:
        return {"date": self.date, "change": self.change, "reason": self.reason}


def decide(statuses: Sequence[tuple[Role, str]]) -> str:
    """The verdict from (role, status) pairs of a claim's rules (see the module docstring)."""
    primary = [s for role, s in statuses if role == "primary"]
    control = [s for role, s in statuses if role == "control"]
    demonstration = [s for role, s in statuses if role == "demonstration"]
    if not primary and not control:
        if not demonstration:
            return INCONCLUSIVE
        return DEMONSTRATION if all(s == "pass" for s in demonstration) else NOT_SUPPORTED
    if "fail" in control or "fail" in demonstration:
        return INVALID
    if "fail" in primary:
        return NOT_SUPPORTED
    if "unclear" in primary or "unclear" in control or "unclear" in demonstration:
        return INCONCLUSIVE
    return SUPPORTED


@dataclass
class Outcome:
    """What an experiment returns: one measurement per rule key, and what the report shows with them.

    ``measurement`` says in one sentence what was measured; ``notes`` states
    what the numbers mean (computed from them, never typed in advance);
    ``reference`` gives the published figure or number a reproduction is
    compared with; ``seeds`` is the number of seeds per arm.
    """

    measurement: str
    values: dict[str, Measurement]
    figures: list[str | None] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: str = ""
    reference: str = ""
    setting: str = ""
    seeds: int = 1


@dataclass(frozen=True)
class Claim:
    """A registered claim: stable id, statement, references, the pre-registered hypothesis and rules."""

    id: str
    title: str
    statement: str
    references: tuple[str, ...]
    group: str
    hypothesis: str
    rules: tuple[Rule, ...]
    run: Callable[[Context], Outcome]
    order: int
    design: str = ""
    amendments: tuple[Amendment, ...] = ()

    @property
    def demonstration_only(self) -> bool:
        return all(rule.role == "demonstration" for rule in self.rules)

    def preregistration(self) -> dict[str, Any]:
        """Hypothesis, design, decision rules and amendments as fixed in code (recorded beside the numbers)."""
        return {"hypothesis": self.hypothesis, "design": self.design,
                "rules": [rule.to_dict() for rule in self.rules],
                "amendments": [amendment.to_dict() for amendment in self.amendments]}


@dataclass
class ClaimResult:
    """One claim of a run: its pre-registration, measurements, verdict and everything the report shows."""

    id: str
    title: str
    statement: str
    references: list[str]
    group: str
    hypothesis: str
    verdict: str
    measurement: str
    rules: list[dict[str, Any]]
    figures: list[str]
    tables: dict[str, list[dict[str, Any]]]
    notes: str
    reference: str
    setting: str
    seeds: int
    seconds: float
    quick: bool
    error: str = ""
    cpu_seconds: float = 0.0
    design: str = ""
    amendments: list[dict[str, str]] = field(default_factory=list)

    @property
    def headline(self) -> dict[str, Any] | None:
        """The first primary rule's row (the first rule's for demonstrations), or None."""
        for row in self.rules:
            if row["role"] == "primary":
                return row
        return self.rules[0] if self.rules else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimResult:
        if not isinstance(data, dict):
            raise ValueError(f"a claim result is a JSON object, got {type(data).__name__}")
        missing = {"id", "verdict"} - set(data)
        if missing:
            raise ValueError(f"a claim result needs the keys {sorted(missing)}; got {sorted(data)}")
        names = set(cls.__dataclass_fields__)
        values = {key: data[key] for key in names if key in data}
        defaults: dict[str, Any] = {
            "title": "", "statement": "", "references": [], "group": "claim", "hypothesis": "", "measurement": "",
            "rules": [], "figures": [], "tables": {}, "notes": "", "reference": "", "setting": "", "seeds": 0,
            "seconds": 0.0, "quick": False, "design": "", "amendments": [],
        }
        for key, default in defaults.items():
            values.setdefault(key, default)
        return cls(**values)


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


class Context:
    """What an experiment gets: the mode, a base seed, a figure folder and a progress callback."""

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

    def seeds(self, quick: int = 5, full: int = 10) -> list[int]:
        """The seeds of a training claim: each one sets an init, a minibatch order and a train/test split."""
        return [self.seed + index for index in range(self.pick(quick, full))]

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(f"[{self.claim_id}] {message}" if self.claim_id else message)

    def save_figure(self, figure: Any, name: str) -> str | None:
        """Save a matplotlib figure as ``<figure_dir>/<claim id>-<name>.png`` and close it.

        Tick labels, legends, titles and axis labels smaller than
        ``MIN_FONT_SIZE`` points are raised to it first. Returns the file name
        relative to the run folder (``figures/...``), or None when this
        context has no figure folder.
        """
        import matplotlib.pyplot as plt

        try:
            if self.figure_dir is None:
                return None
            readable_fonts(figure)
            self.figure_dir.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.claim_id}-{name}").strip("-")
            path = self.figure_dir / f"{stem}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            return f"{self.figure_dir.name}/{path.name}"
        finally:
            plt.close(figure)


def readable_fonts(figure: Any, minimum: float = MIN_FONT_SIZE) -> None:
    """Raise every text of ``figure`` below ``minimum`` points (ticks, offsets, legends, labels) to it."""
    for text in figure.findobj(lambda artist: hasattr(artist, "get_fontsize") and hasattr(artist, "set_fontsize")):
        if text.get_fontsize() < minimum:
            text.set_fontsize(minimum)


_REGISTRY: dict[str, Claim] = {}
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def claim(
    claim_id: str,
    *,
    title: str,
    statement: str,
    references: Sequence[str],
    hypothesis: str,
    rules: Sequence[Rule],
    group: str = "claim",
    order: int,
    design: str = "",
    amendments: Sequence[Amendment] = (),
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Decorator: register an experiment with its hypothesis, decision rules, design and amendments under a stable id.

    ``design`` states the principle that fixes settings a verdict could hinge
    on; ``amendments`` lists every change of the design made after results
    had been seen (oldest first).
    """
    if not _ID_PATTERN.match(claim_id):
        raise ValueError(f"claim id must be lower-case letters, digits and '-', got {claim_id!r}")
    if group not in GROUPS:
        raise ValueError(f"claim group must be one of {', '.join(GROUPS)}, got {group!r}")
    if not rules:
        raise ValueError(f"claim {claim_id!r} needs at least one rule")
    keys = [rule.key for rule in rules]
    if len(set(keys)) != len(keys):
        raise ValueError(f"claim {claim_id!r}: rule keys must be unique, got {keys}")
    tested = any(rule.role == "primary" for rule in rules)
    if tested and not any(rule.role == "control" for rule in rules):
        raise ValueError(f"claim {claim_id!r}: a tested claim needs at least one control rule")
    if not all(isinstance(amendment, Amendment) for amendment in amendments):
        raise TypeError(f"claim {claim_id!r}: amendments must be Amendment records")
    dates = [amendment.date for amendment in amendments]
    if dates != sorted(dates):
        raise ValueError(f"claim {claim_id!r}: amendments are listed oldest first, got dates {dates}")

    def register(function: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if claim_id in _REGISTRY:
            raise ValueError(f"claim id {claim_id!r} is registered twice")
        _REGISTRY[claim_id] = Claim(claim_id, title, statement, tuple(references), group, hypothesis,
                                    tuple(rules), function, order, design, tuple(amendments))
        return function

    return register


def registered_claims() -> list[Claim]:
    """Every registered claim, claims first (by number), then reproductions."""
    return sorted(_REGISTRY.values(), key=lambda c: (c.group != "claim", c.order, c.id))


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
