"""Run claims, collect their verdicts, and write ``results.json`` and the figures of a run folder."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab.lab.claims.base import (
    INCONCLUSIVE,
    VERDICTS,
    ClaimResult,
    Context,
    combine_verdicts,
    get_claim,
    registered_claims,
)
from initlab.lab.environment import environment

__all__ = ["ClaimsRun", "run_claims", "load_run", "RESULTS_FILE", "FIGURE_DIR"]

RESULTS_FILE = "results.json"
FIGURE_DIR = "figures"
FORMAT = "initlab-claims/1"


@dataclass
class ClaimsRun:
    """The results of one ``initlab claims`` run."""

    results: list[ClaimResult]
    quick: bool
    seed: int
    seconds: float
    started: str
    environment: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {verdict: sum(r.verdict == verdict for r in self.results) for verdict in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": "claims",
            "mode": "quick" if self.quick else "full",
            "quick": self.quick,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "started": self.started,
            "environment": self.environment,
            "counts": self.counts(),
            "claims": [result.to_dict() for result in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimsRun:
        if not isinstance(data, dict) or "claims" not in data:
            raise ValueError("a claims results file is a JSON object with a 'claims' list")
        return cls(
            results=[ClaimResult.from_dict(row) for row in data["claims"]],
            quick=bool(data.get("quick", data.get("mode") == "quick")),
            seed=int(data.get("seed", 0)),
            seconds=float(data.get("seconds", 0.0)),
            started=str(data.get("started", "")),
            environment=dict(data.get("environment", {})),
        )

    def table(self) -> str:
        """The claims table as plain text: id, verdict, number vs threshold, claim, source."""
        lines = []
        header = f"{'id':<13} {'verdict':<14} {'number':<12} {'threshold':<36} claim"
        lines.append(header)
        lines.append("-" * len(header))
        for result in self.results:
            lines.append(
                f"{result.id:<13} {result.verdict:<14} {result.number:<12} {result.threshold[:36]:<36} "
                f"{result.title}"
            )
        counts = self.counts()
        lines.append("")
        lines.append(
            f"{len(self.results)} claims: {counts['supported']} supported, {counts['not supported']} not supported, "
            f"{counts['inconclusive']} inconclusive ({'quick' if self.quick else 'full'} mode, {self.seconds:.0f} s)"
        )
        return "\n".join(lines)


def select_claims(only: Sequence[str] | None = None) -> list[str]:
    """Ids to run: all registered ones, or those named in ``only`` (checked, in registry order)."""
    import initlab.lab.claims  # noqa: F401  (registers every claim module)

    if not only:
        return [c.id for c in registered_claims()]
    wanted = {get_claim(name).id for name in only}
    return [c.id for c in registered_claims() if c.id in wanted]


def run_one(claim_id: str, *, quick: bool, seed: int, figure_dir: Path | None,
            log: Callable[[str], None] | None = None) -> ClaimResult:
    """Run one claim; an exception becomes an ``inconclusive`` result that carries the error."""
    entry = get_claim(claim_id)
    context = Context(quick=quick, seed=seed, figure_dir=figure_dir, log=log, claim_id=entry.id)
    started = time.perf_counter()
    try:
        outcome = entry.run(context)
    except Exception as error:  # an experiment that breaks is reported, not fatal to the run
        seconds = time.perf_counter() - started
        return ClaimResult(
            id=entry.id, title=entry.title, statement=entry.statement, source=entry.source, kind=entry.kind,
            verdict=INCONCLUSIVE, measurement="the experiment did not finish", number="-", threshold="-",
            checks=[], figures=[], tables={}, notes=f"error: {type(error).__name__}: {error}", reference="",
            setting="", seconds=seconds, quick=quick,
            error="".join(traceback.format_exception(type(error), error, error.__traceback__))[-4000:],
        )
    seconds = time.perf_counter() - started
    headline = outcome.checks[0] if outcome.checks else None
    return ClaimResult(
        id=entry.id,
        title=entry.title,
        statement=entry.statement,
        source=entry.source,
        kind=entry.kind,
        verdict=combine_verdicts(outcome.checks),
        measurement=outcome.measurement,
        number=headline.value_text() if headline else "-",
        threshold=headline.threshold_text() if headline else "-",
        checks=[check.to_dict() for check in outcome.checks],
        figures=[name for name in outcome.figures if name],
        tables=outcome.tables,
        notes=outcome.notes,
        reference=outcome.reference,
        setting=outcome.setting,
        seconds=seconds,
        quick=quick,
    )


def run_claims(
    only: Sequence[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
    on_result: Callable[[ClaimResult], None] | None = None,
) -> ClaimsRun:
    """Run the selected claims (all by default); with ``out_dir`` write figures and ``results.json``.

    ``quick`` uses the small sizes (the whole set in a few minutes on two
    CPU cores); the full run uses the sizes documented in docs/claims.md.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    ids = select_claims(only)
    figure_dir = Path(out_dir) / FIGURE_DIR if out_dir is not None else None
    started_wall = time.strftime("%Y-%m-%d %H:%M:%S")
    started = time.perf_counter()
    results = []
    for claim_id in ids:
        if log is not None:
            log(f"running claim {claim_id}: {get_claim(claim_id).title}")
        result = run_one(claim_id, quick=quick, seed=seed, figure_dir=figure_dir, log=log)
        results.append(result)
        if on_result is not None:
            on_result(result)
    run = ClaimsRun(results=results, quick=quick, seed=seed, seconds=time.perf_counter() - started,
                    started=started_wall, environment=environment())
    if out_dir is not None:
        write_run(run, out_dir)
    return run


def write_run(run: ClaimsRun, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` into ``out_dir`` (created if needed); returns its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESULTS_FILE
    path.write_text(json.dumps(run.to_dict(), indent=2, default=str), encoding="utf-8")
    return path


def load_run(path: str | os.PathLike[str]) -> ClaimsRun:
    """A :class:`ClaimsRun` from a run folder or its ``results.json``."""
    target = Path(path)
    if target.is_dir():
        target = target / RESULTS_FILE
    if not target.exists():
        raise FileNotFoundError(f"no claims results at {target}")
    return ClaimsRun.from_dict(json.loads(target.read_text(encoding="utf-8")))
