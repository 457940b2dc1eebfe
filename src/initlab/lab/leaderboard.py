"""Tidy result rows and the leaderboard of a sweep, computed from run records.

A record is the dict one finished run leaves in the store: ``init``,
``seed``, ``status``, ``final`` (train/test loss and accuracy), ``history``
(one row per logged step) and ``info`` (including ``steps_per_epoch``).
"""

from __future__ import annotations

import csv
import html
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LeaderRow", "tidy_rows", "leaderboard", "steps_to_threshold", "write_table", "leaderboard_markdown",
           "TIDY_COLUMNS", "markdown_cell"]

TIDY_COLUMNS = ("init", "seed", "step", "epoch", "loss", "accuracy", "test_loss", "test_accuracy", "status")


@dataclass(frozen=True)
class LeaderRow:
    """One init's line of the leaderboard (accuracies in [0, 1]; fractions of its runs)."""

    rank: int
    init: str
    runs: int
    test_accuracy_mean: float
    test_accuracy_std: float
    steps_to_threshold: float
    reached_fraction: float
    diverged_fraction: float
    stalled_fraction: float
    failed_fraction: float
    final_loss_mean: float
    score: float


def tidy_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run x logged step with the columns of :data:`TIDY_COLUMNS`."""
    rows = []
    for record in sorted(records, key=lambda r: (r["init"], r["seed"])):
        for entry in record.get("history", []):
            rows.append({
                "init": record["init"], "seed": record["seed"], "step": entry["step"],
                "epoch": entry.get("epoch", math.nan), "loss": entry["loss"],
                "accuracy": entry.get("accuracy", math.nan), "test_loss": entry.get("test_loss", math.nan),
                "test_accuracy": entry.get("test_accuracy", math.nan), "status": record["status"],
            })
    return rows


def steps_to_threshold(record: dict[str, Any], threshold: float) -> float:
    """First step at which the training loss, averaged over the last epoch's logged steps, is <= threshold.

    Averaging over an epoch keeps one lucky minibatch from counting; with
    full-batch training the window is one step. ``inf`` if never reached.
    """
    history = record.get("history", [])
    window = max(1, int(record.get("info", {}).get("steps_per_epoch", 1)))
    recent: list[tuple[int, float]] = []
    for entry in history:
        loss = entry["loss"]
        if not math.isfinite(loss):
            return math.inf
        recent.append((entry["step"], loss))
        recent = [(s, v) for s, v in recent if s > entry["step"] - window]
        if statistics.fmean(v for _, v in recent) <= threshold:
            return float(entry["step"])
    return math.inf


def leaderboard(
    records: Sequence[dict[str, Any]], *, loss_threshold: float = 0.5, num_classes: int | None = None
) -> list[LeaderRow]:
    """Rank inits by mean final test accuracy over their seeds.

    Runs that diverged or failed count at chance accuracy (1 / num_classes,
    or 0 if unknown) in the score, so an init cannot climb by dropping its
    failures; ``test_accuracy_mean``/``std`` are over the runs that finished
    with a finite accuracy. Ties go to the init reaching ``loss_threshold``
    sooner (median over runs that reach it).
    """
    chance = 1.0 / num_classes if num_classes else 0.0
    by_init: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_init.setdefault(record["init"], []).append(record)
    rows = []
    for init, runs in by_init.items():
        accuracies = [r["final"]["test_accuracy"] for r in runs
                      if math.isfinite(r["final"].get("test_accuracy", math.nan))]
        scored = [r["final"]["test_accuracy"] if math.isfinite(r["final"].get("test_accuracy", math.nan))
                  else chance for r in runs]
        losses = [r["final"]["train_loss"] for r in runs if math.isfinite(r["final"].get("train_loss", math.nan))]
        steps = [steps_to_threshold(r, loss_threshold) for r in runs]
        reached = [s for s in steps if math.isfinite(s)]
        count = len(runs)
        rows.append(dict(
            init=init, runs=count,
            test_accuracy_mean=statistics.fmean(accuracies) if accuracies else math.nan,
            test_accuracy_std=statistics.stdev(accuracies) if len(accuracies) > 1 else (0.0 if accuracies else math.nan),
            steps_to_threshold=statistics.median(reached) if reached else math.inf,
            reached_fraction=len(reached) / count,
            diverged_fraction=sum(r["status"] == "diverged" for r in runs) / count,
            stalled_fraction=sum(r["status"] == "stalled" for r in runs) / count,
            failed_fraction=sum(r["status"] == "failed" for r in runs) / count,
            final_loss_mean=statistics.fmean(losses) if losses else math.nan,
            score=statistics.fmean(scored),
        ))
    rows.sort(key=lambda row: (-row["score"], row["steps_to_threshold"], row["init"]))
    return [LeaderRow(rank=i + 1, **row) for i, row in enumerate(rows)]


# a spreadsheet reads a cell that starts with one of these as a formula (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell: NaN empty, text that a spreadsheet would run as a formula quoted with ``'``."""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_table(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows as CSV (NaN as empty cells, formula-like text quoted); returns the path."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return path


def leaderboard_dicts(rows: Sequence[LeaderRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


# Markdown punctuation that can start markup or end a table cell; "_" only where it can open emphasis
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~!#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def markdown_cell(text: object) -> str:
    """``text`` as literal content of one Markdown table cell.

    HTML is entity-escaped (``<b>`` shows as text), Markdown punctuation is
    backslash-escaped (no emphasis, links, code or images), ``|`` cannot end
    the cell and line breaks cannot end the row.
    """
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def _percent(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f}"


def leaderboard_markdown(rows: Sequence[LeaderRow], loss_threshold: float) -> str:
    """The leaderboard as a Markdown table (init names escaped with :func:`markdown_cell`)."""
    lines = [
        f"| rank | init | runs | test acc % (mean ± std) | steps to loss ≤ {loss_threshold:g} (median; reached) "
        f"| diverged | stalled | failed |",
        "|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for row in rows:
        steps = "never" if not math.isfinite(row.steps_to_threshold) else f"{row.steps_to_threshold:.0f}"
        lines.append(
            f"| {row.rank} | {markdown_cell(row.init)} | {row.runs} | {_percent(row.test_accuracy_mean)} ± "
            f"{_percent(row.test_accuracy_std)} | {steps} ({_percent(row.reached_fraction)} %) | "
            f"{_percent(row.diverged_fraction)} % | {_percent(row.stalled_fraction)} % | "
            f"{_percent(row.failed_fraction)} % |"
        )
    return "\n".join(lines) + "\n"
