"""Figures of probe reports (matplotlib with the Agg backend; PNG, SVG or PDF by file extension).

* :func:`plot_report` -- one report: output std and gradient norm versus
  depth, the signed log histogram of every layer, and (for a probe with
  history) heatmaps of histograms over training steps;
* :func:`compare_histograms` -- the classic figure of per-layer activation
  histograms side by side for several initializations (one row per init,
  one column per layer), e.g. "5-layer ReLU MLP under three initializations";
* :func:`plot_depth` -- std and gradient norm versus depth for several reports;
* :func:`plot_heatmap` -- histograms over training steps, one panel per layer.

The histogram axis is the signed log scale of :class:`HistogramBins`: the
zero bin in the middle, one tick per 4 decades, negative values mirrored on
the left. Bars give the percentage of the layer's entries in each bin.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from initlab.probe.report import LayerStats, ProbeReport

__all__ = ["plot_report", "compare_histograms", "plot_depth", "plot_heatmap"]

_FORMATS = (".png", ".svg", ".pdf")


def _check_path(path: str | Path) -> Path:
    target = Path(path)
    if target.suffix.lower() not in _FORMATS:
        raise ValueError(
            f"path must end in {', '.join(_FORMATS)} (the figure format), got {str(path)!r}"
        )
    if not target.parent.exists():
        raise FileNotFoundError(f"directory {str(target.parent)!r} of the figure does not exist")
    return target


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:  # pragma: no cover - matplotlib is in the lab extra
        raise ImportError("probe plots need matplotlib (pip install matplotlib)") from error
    if matplotlib.get_backend().lower() not in (
        "agg",
        "svg",
        "pdf",
        "module://matplotlib_inline.backend_inline",
    ):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, target: Path, dpi: int) -> Path:
    plt = _pyplot()
    with warnings.catch_warnings():
        # constrained layout gives up on some colorbar grids and falls back to the tight box
        warnings.filterwarnings("ignore", message="constrained_layout not applied")
        figure.savefig(target, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return target


def _default_layers(report: ProbeReport, limit: int) -> list[LayerStats]:
    rows = report.select("activation") or list(report.rows)
    if len(rows) > limit:
        picks = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
        rows = [rows[i] for i in picks]
    return rows


def _chosen(report: ProbeReport, layers: Sequence[str] | None, limit: int) -> list[LayerStats]:
    if layers is None:
        return _default_layers(report, limit)
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list of layer names, got the string {layers!r}")
    return [report[name] for name in layers]


def _occupied_limit(items: Sequence[tuple[ProbeReport, LayerStats]]) -> float:
    """Half-width of the signed log axis that shows every occupied bin of ``items`` (plus a margin)."""
    reach = 1.0
    for report, row in items:
        bins = report.bins
        counts = np.asarray(row.hist[: bins.num_bins], dtype=float)
        occupied = np.abs(bins.signed_log_centers()[counts > 0])
        if occupied.size:
            reach = max(reach, float(occupied.max()))
    return reach + 1.0


def _draw_histogram(
    axis: Any,
    report: ProbeReport,
    row: LayerStats,
    *,
    labels: bool = True,
    limit: float | None = None,
) -> None:
    bins = report.bins
    counts = np.asarray(row.hist[: bins.num_bins], dtype=float)
    total = counts.sum() + row.hist[bins.nan_slot]
    percent = 100.0 * counts / total if total > 0 else counts
    centers = bins.signed_log_centers()
    axis.bar(centers, percent, width=1.0 / bins.per_decade, color="tab:blue", linewidth=0)
    positions, tick_labels = bins.tick_positions(every=4 if limit is None or limit > 6 else 2)
    axis.set_xticks(positions)
    axis.set_xticklabels(tick_labels, rotation=90, fontsize=6)
    reach = _occupied_limit([(report, row)]) if limit is None else limit
    axis.set_xlim(-reach, reach)
    axis.tick_params(axis="y", labelsize=7)
    std = "-" if row.act_std is None else f"{row.act_std:.3g}"
    nan = f", {row.hist[bins.nan_slot]} NaN" if row.hist[bins.nan_slot] else ""
    axis.set_title(f"{row.name} ({row.module_type})\nstd {std}, {row.verdict}{nan}", fontsize=8)
    if labels:
        axis.set_xlabel("output value (signed log bins)", fontsize=7)
        axis.set_ylabel("entries (%)", fontsize=7)


def _depth_series(rows: Sequence[LayerStats], attribute: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(row.index, getattr(row, attribute)) for row in rows]
    pairs = [(i, v) for i, v in pairs if v is not None and math.isfinite(v) and v > 0]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pairs)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _row_groups(report: ProbeReport) -> list[tuple[str, list[LayerStats]]]:
    """Activation rows and the other rows as separate series (they alternate in an MLP)."""
    activations = [row for row in report.rows if row.kind == "activation"]
    others = [row for row in report.rows if row.kind != "activation"]
    if activations and others:
        return [("activations", activations), ("pre-activations", others)]
    return [("", list(report.rows))]


def _draw_depth(axis_std: Any, axis_grad: Any, reports: Mapping[str, ProbeReport]) -> None:
    markers = {"activations": "o", "pre-activations": "s", "": "o"}
    for label, report in reports.items():
        colour = None
        for group, rows in _row_groups(report):
            name = ", ".join(part for part in (label, group) if part) or "measured"
            style = "-" if group != "pre-activations" else ":"
            x, y = _depth_series(rows, "act_std")
            (line,) = axis_std.plot(
                x, y, style, marker=markers[group], markersize=3, color=colour, label=name
            )
            colour = line.get_color()
            for attribute, kind in (("expected_std", "expected"), ("predicted_std", "mean-field")):
                ex, ey = _depth_series(rows, attribute)
                if len(ex):
                    axis_std.plot(
                        ex,
                        ey,
                        "x" if kind == "expected" else "--",
                        color=colour,
                        alpha=0.7,
                        label=f"{name}: {kind}",
                    )
            gx, gy = _depth_series(rows, "grad_norm")
            if len(gx):
                axis_grad.plot(
                    gx, gy, style, marker=markers[group], markersize=3, color=colour, label=name
                )
    axis_std.set_yscale("log")
    axis_std.set_xlabel("layer (forward order)")
    axis_std.set_ylabel("output std (input units)")
    axis_std.set_title("activation std versus depth")
    axis_std.legend(fontsize=7)
    axis_std.grid(True, which="both", alpha=0.3)
    axis_grad.set_yscale("log")
    axis_grad.set_xlabel("layer (forward order)")
    axis_grad.set_ylabel("|dL/d output| (loss units per output unit)")
    axis_grad.set_title("output-gradient norm versus depth")
    if axis_grad.lines:
        axis_grad.legend(fontsize=7)
    else:
        axis_grad.text(
            0.5,
            0.5,
            "no backward pass\n(no loss given)",
            ha="center",
            va="center",
            transform=axis_grad.transAxes,
        )
    axis_grad.grid(True, which="both", alpha=0.3)


def _draw_heatmap(axis: Any, report: ProbeReport, name: str, figure: Any) -> None:
    bins = report.bins
    counts = np.asarray(report.hist_history[name], dtype=float)
    steps = report.history[name]["step"]
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.where(
        totals > 0, counts[:, : bins.num_bins] / np.where(totals > 0, totals, 1.0), 0.0
    )
    image = np.log10(np.maximum(fractions, 1e-6)).T
    centers = bins.signed_log_centers()
    half = 0.5 / bins.per_decade
    extent = (
        float(steps[0]) - 0.5 if len(steps) else 0.0,
        float(steps[-1]) + 0.5 if len(steps) else 1.0,
        centers[0] - half,
        centers[-1] + half,
    )
    mesh = axis.imshow(
        image,
        aspect="auto",
        origin="lower",
        extent=extent,
        cmap="viridis",
        vmin=-6,
        vmax=0,
        interpolation="nearest",
    )
    positions, labels = bins.tick_positions(every=4)
    axis.set_yticks(positions)
    axis.set_yticklabels(labels, fontsize=6)
    axis.set_xlabel("training step")
    axis.set_ylabel("output value (signed log bins)")
    axis.set_title(f"{name}: histogram over steps", fontsize=9)
    colorbar = figure.colorbar(mesh, ax=axis)
    colorbar.set_label("log10 fraction of entries", fontsize=7)


def plot_report(
    report: ProbeReport, path: str | Path, *, layers: Sequence[str] | None = None, dpi: int = 120
) -> Path:
    """The summary figure of one report (see :meth:`ProbeReport.plot`)."""
    if not isinstance(report, ProbeReport):
        raise TypeError(f"report must be a ProbeReport, got {type(report).__name__}")
    target = _check_path(path)
    plt = _pyplot()
    shown = _chosen(report, layers, 12)
    limit = _occupied_limit([(report, row) for row in shown])
    columns = min(6, max(1, len(shown)))
    histogram_rows = max(1, math.ceil(len(shown) / columns))
    heat = (
        [name for name in (s.name for s in shown) if name in report.hist_history][:3]
        if report.hist_history
        else []
    )
    rows = 1 + histogram_rows + (1 if heat else 0)
    figure = plt.figure(figsize=(3.0 * columns + 1, 3.2 * rows), constrained_layout=True)
    grid = figure.add_gridspec(rows, columns * 2 if columns > 1 else 2)
    half = max(1, columns)
    axis_std = figure.add_subplot(grid[0, :half])
    axis_grad = figure.add_subplot(grid[0, half:])
    _draw_depth(axis_std, axis_grad, {"": report})
    for position, row in enumerate(shown):
        r, c = divmod(position, columns)
        span = 2 if columns > 1 else 2
        axis = figure.add_subplot(
            grid[1 + r, c * span : (c + 1) * span] if columns > 1 else grid[1 + r, :]
        )
        _draw_histogram(axis, report, row, labels=c == 0, limit=limit)
    if heat:
        width = (columns * 2 if columns > 1 else 2) // len(heat)
        for position, name in enumerate(heat):
            axis = figure.add_subplot(grid[rows - 1, position * width : (position + 1) * width])
            _draw_heatmap(axis, report, name, figure)
    figure.suptitle(report.title or "per-layer statistics", fontsize=12)
    return _save(figure, target, dpi)


def compare_histograms(
    reports: Mapping[str, ProbeReport],
    path: str | Path,
    *,
    layers: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Per-layer histograms side by side: one row per report (init), one column per layer.

    ``layers`` names the columns (default: the activation layers of the first
    report, at most 8). The classic use: the same 5-layer ReLU MLP under
    three initializations, one audit each.
    """
    if not isinstance(reports, Mapping) or not reports:
        raise ValueError("reports must be a non-empty mapping {label: ProbeReport}")
    for label, report in reports.items():
        if not isinstance(report, ProbeReport):
            raise TypeError(
                f"reports[{label!r}] must be a ProbeReport, got {type(report).__name__}"
            )
    target = _check_path(path)
    plt = _pyplot()
    first = next(iter(reports.values()))
    names = [row.name for row in _chosen(first, layers, 8)]
    shared = [
        (report, report[name])
        for report in reports.values()
        for name in names
        if name in report.names
    ]
    limit = _occupied_limit(shared)
    figure, axes = plt.subplots(
        len(reports),
        len(names),
        figsize=(2.6 * len(names) + 1, 2.4 * len(reports) + 0.6),
        squeeze=False,
        constrained_layout=True,
    )
    for r, (label, report) in enumerate(reports.items()):
        for c, name in enumerate(names):
            axis = axes[r][c]
            try:
                row = report[name]
            except KeyError:
                axis.set_axis_off()
                axis.set_title(f"{name}: not in this report", fontsize=8)
                continue
            _draw_histogram(axis, report, row, labels=r == len(reports) - 1 and c == 0, limit=limit)
            if c == 0:
                axis.set_ylabel(f"{label}\nentries (%)", fontsize=8)
    figure.suptitle(
        title or f"per-layer output histograms under {len(reports)} initializations", fontsize=12
    )
    return _save(figure, target, dpi)


def plot_depth(
    reports: Mapping[str, ProbeReport],
    path: str | Path,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Output std and gradient norm versus depth, one line per report."""
    if not isinstance(reports, Mapping) or not reports:
        raise ValueError("reports must be a non-empty mapping {label: ProbeReport}")
    target = _check_path(path)
    plt = _pyplot()
    figure, (axis_std, axis_grad) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    _draw_depth(axis_std, axis_grad, reports)
    figure.suptitle(title or "std and gradient norm versus depth", fontsize=12)
    return _save(figure, target, dpi)


def plot_heatmap(
    report: ProbeReport, path: str | Path, *, layers: Sequence[str] | None = None, dpi: int = 120
) -> Path:
    """Heatmaps of the signed log histogram over training steps, one panel per layer."""
    if not report.hist_history:
        raise ValueError(
            "the report has no history of histograms; it comes from initlab.Probe(...).report()"
        )
    target = _check_path(path)
    plt = _pyplot()
    names = [row.name for row in _chosen(report, layers, 6) if row.name in report.hist_history]
    if not names:
        raise ValueError(f"none of the layers {layers!r} has a recorded history")
    figure, axes = plt.subplots(
        len(names), 1, figsize=(8, 2.6 * len(names) + 0.6), squeeze=False, constrained_layout=True
    )
    for axis, name in zip(axes[:, 0], names):
        _draw_heatmap(axis, report, name, figure)
    figure.suptitle(report.title or "activation histograms over training", fontsize=12)
    return _save(figure, target, dpi)
