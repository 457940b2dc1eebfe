"""Helpers shared by the claim modules: means with standard errors, figures, formatting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["mean_se", "difference_se", "figure", "fmt", "spearman"]


def mean_se(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for a single value)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    if array.size == 1:
        return float(array[0]), 0.0
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def difference_se(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """mean(a) - mean(b) and its standard error (independent samples)."""
    mean_a, se_a = mean_se(a)
    mean_b, se_b = mean_se(b)
    return mean_a - mean_b, math.sqrt(se_a**2 + se_b**2)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when a side is constant."""
    from scipy.stats import spearmanr

    result = spearmanr(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return float(result.statistic if hasattr(result, "statistic") else result[0])


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kwargs: Any) -> Any:
    """A matplotlib figure and axes on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    return fig, axes


def fmt(value: float, digits: int = 3) -> str:
    """A number for a table cell."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"
