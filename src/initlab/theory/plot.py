"""The phase diagram figure: ordered and chaotic regions of (sigma_w2, sigma_b2), with the critical line."""

from __future__ import annotations

from typing import Any

import numpy as np

from initlab.theory.meanfield import PhaseDiagram

__all__ = ["plot_phase_diagram"]


def plot_phase_diagram(
    diagram: PhaseDiagram,
    path: str | None = None,
    *,
    mark: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """Colour log(chi1) over the grid (blue ordered, red chaotic), draw the critical line.

    ``mark`` = (sigma_w2, sigma_b2) adds a point; the figure is saved to
    ``path`` when given (PNG, SVG or PDF by extension) and returned.
    Uses matplotlib's Agg backend, so no display is needed.
    """
    if not isinstance(diagram, PhaseDiagram):
        raise TypeError(f"diagram must be a PhaseDiagram (initlab.theory.phase_diagram), got {type(diagram).__name__}")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    log_chi = np.log(diagram.chi1)
    # clip the colour scale so the contrast sits near the critical line
    limit = min(float(np.nanmax(np.abs(log_chi))), 1.0) if np.isfinite(log_chi).any() else 1.0
    figure, axes = plt.subplots(figsize=(6.4, 5.2))
    mesh = axes.pcolormesh(
        diagram.sigma_w2,
        diagram.sigma_b2,
        np.ma.masked_invalid(log_chi),
        cmap="coolwarm",
        vmin=-limit,
        vmax=limit,
        shading="auto",
    )
    figure.colorbar(mesh, ax=axes, label="log chi1  (< 0 ordered, > 0 chaotic)")
    line = diagram.critical_sigma_w2
    finite = np.isfinite(line)
    axes.plot(line[finite], diagram.sigma_b2[finite], color="black", linewidth=2, label="critical line (chi1 = 1)")
    if mark is not None:
        axes.plot([mark[0]], [mark[1]], marker="*", color="gold", markersize=14, markeredgecolor="black", label="chosen")
    x_low, x_high = float(diagram.sigma_w2.min()), float(diagram.sigma_w2.max())
    y_high = float(diagram.sigma_b2.max())
    axes.text(x_low + 0.05 * (x_high - x_low), 0.5 * y_high, "ordered", color="navy", fontsize=12)
    axes.text(x_high - 0.3 * (x_high - x_low), 0.1 * y_high, "chaotic", color="darkred", fontsize=12)
    axes.set_xlabel("sigma_w^2  (weight variance x fan_in)")
    axes.set_ylabel("sigma_b^2  (bias variance)")
    axes.set_title(title or f"mean-field phase diagram, {diagram.activation}")
    axes.set_xlim(x_low, x_high)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
        plt.close(figure)
    return figure
