"""Figures of a sweep: loss curves with seed bands, final-accuracy distributions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_loss_curves", "plot_final_accuracy"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ValueError("plots need matplotlib (pip install 'initlab[lab]')") from error
    return plt


def _plain(text: str) -> str:
    """``text`` shown as written: matplotlib reads "$...$" as mathtext, and a malformed one fails the whole figure."""
    return text.replace("$", r"\$")


def _by_init(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (r["init"], r["seed"])):
        groups.setdefault(record["init"], []).append(record)
    return groups


def plot_loss_curves(records: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Training loss against step, one colour per init: median over seeds and the min-max band.

    A seed that diverged stops contributing at its divergent step (its
    curve ends there), so the band shows the runs still alive.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for init, runs in _by_init(records).items():
        steps = sorted({row["step"] for run in runs for row in run.get("history", [])})
        if not steps:
            continue
        column = {step: i for i, step in enumerate(steps)}
        table = np.full((len(runs), len(steps)), np.nan)
        for r, run in enumerate(runs):
            for row in run.get("history", []):
                loss = row["loss"]
                table[r, column[row["step"]]] = loss if math.isfinite(loss) else np.nan
        alive = ~np.all(np.isnan(table), axis=0)
        if not alive.any():
            continue
        x = np.asarray(steps)[alive]
        values = table[:, alive]
        median = np.nanmedian(values, axis=0)
        (line,) = axis.plot(x, median, label=_plain(f"{init} (n={len(runs)})"), linewidth=1.6)
        axis.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(),
                          alpha=0.2, linewidth=0)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (median, min-max over seeds)")
    axis.set_title(_plain(title) or "loss curves")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_final_accuracy(records: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Final test accuracy of every run, one column per init (box plot and the seeds as dots).

    Diverged or failed runs are drawn as crosses at 0 so they stay visible.
    """
    plt = _pyplot()
    groups = _by_init(records)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) + 2), 4.5))
    jitter = np.random.default_rng(0)
    for position, runs in enumerate(groups.values(), start=1):
        values = [run["final"].get("test_accuracy", math.nan) for run in runs]
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            axis.boxplot([finite], positions=[position], widths=0.5, showfliers=False)
            axis.scatter(position + jitter.uniform(-0.12, 0.12, len(finite)), finite, s=14, alpha=0.7)
        failures = len(values) - len(finite)
        if failures:
            axis.scatter([position] * failures, [0.0] * failures, marker="x", color="red", s=30,
                         label="diverged / failed" if position == 1 else None)
    axis.set_xticks(range(1, len(groups) + 1))
    axis.set_xticklabels([_plain(name) for name in groups], rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("final test accuracy")
    axis.set_ylim(-0.05, 1.05)
    axis.set_title(_plain(title) or "final accuracy over seeds")
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
