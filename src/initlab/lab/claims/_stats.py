"""Uncertainty of the claims' measurements: percentile-bootstrap confidence intervals over seeds.

Every training claim repeats its experiment over seeds, each seed drawing
its own init, minibatch order and train/test split. A reported number is a
statistic of those per-seed values (a mean, a difference of means, a ratio,
a slope), and its uncertainty is a 95 % percentile-bootstrap interval
(Efron & Tibshirani 1993, ch. 13): resample the seeds with replacement
``RESAMPLES`` times, recompute the statistic, take the 2.5th and 97.5th
percentiles (nearest rank, rounded outwards). The resampling generator has a fixed seed, so the same values
always give the same interval.

Paired designs (arms that share a seed's split, batch order and shared
parts of the init) pass one array with a column per arm, so the seeds are
resampled as whole rows; independent groups pass one array each and are
resampled separately. Statistics take arrays with a leading resample axis:
``statistic(a)`` gets ``a`` of shape ``(resamples, seeds, ...)`` and returns
``(resamples,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from initlab.lab.claims.base import Measurement

__all__ = [
    "BOOTSTRAP_SEED",
    "LEVEL",
    "RESAMPLES",
    "bootstrap",
    "difference",
    "exact",
    "geometric_mean",
    "mean",
    "ratio",
    "slope",
]

BOOTSTRAP_SEED = 20_100_613  # fixed: the same per-seed values always give the same interval
RESAMPLES = 10_000
LEVEL = 0.95

Statistic = Callable[..., np.ndarray]


def _as_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(f"{name} needs at least one value per seed, got shape {array.shape}")
    return array


def bootstrap(statistic: Statistic, *groups: Sequence[float] | np.ndarray, what: str = "seeds") -> Measurement:
    """The statistic of ``groups`` and its 95 % percentile-bootstrap interval over their first axis.

    A group with one row (one seed) gives the point value as its interval.
    A NaN anywhere makes the interval NaN (the rules then say "unclear").
    """
    arrays = [_as_array(group, "bootstrap") for group in groups]
    if not arrays:
        raise ValueError("bootstrap needs at least one group of values")
    value = float(statistic(*(array[None] for array in arrays))[0])
    sizes = [array.shape[0] for array in arrays]
    method = _method(sizes, what)
    if max(sizes) == 1:
        return Measurement(value, value, value, n=1, method=method, samples=_samples(arrays))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    resampled = [array[rng.integers(0, array.shape[0], size=(RESAMPLES, array.shape[0]))] for array in arrays]
    estimates = np.asarray(statistic(*resampled), dtype=np.float64)
    if np.isnan(estimates).any() or math.isnan(value):
        low = high = math.nan
    else:
        # nearest-rank percentiles, rounded outwards: an infinite resample (a diverged run) gives an
        # infinite bound instead of the NaN that interpolating between inf and a number would
        tail = (1.0 - LEVEL) / 2.0 * 100.0
        low = float(np.percentile(estimates, tail, method="lower"))
        high = float(np.percentile(estimates, 100.0 - tail, method="higher"))
    return Measurement(value, low, high, n=max(sizes), method=method, samples=_samples(arrays))


def _method(sizes: list[int], what: str) -> str:
    if len(sizes) == 1:
        return f"bootstrap {LEVEL:.0%} CI over {sizes[0]} {what}"
    return f"bootstrap {LEVEL:.0%} CI over {' and '.join(str(s) for s in sizes)} {what} (independent groups)"


def _samples(arrays: list[np.ndarray]) -> tuple[tuple[float, ...], ...]:
    """Per-seed values kept with the measurement (rows flattened to their first column or mean)."""
    kept = []
    for array in arrays:
        flat = array if array.ndim == 1 else array.reshape(array.shape[0], -1)
        kept.append(tuple(float(v) for v in (flat if flat.ndim == 1 else flat.mean(axis=1))))
    return tuple(kept)


def exact(value: float, n: int = 1, method: str = "exact (no sampling)") -> Measurement:
    """A value without sampling error: arithmetic, an identity, or a deterministic computation."""
    value = float(value)
    return Measurement(value, value, value, n=n, method=method)


def mean(values: Sequence[float] | np.ndarray, what: str = "seeds") -> Measurement:
    """The mean over seeds."""
    return bootstrap(lambda a: a.mean(axis=1), values, what=what)


def geometric_mean(values: Sequence[float] | np.ndarray, what: str = "seeds") -> Measurement:
    """exp(mean(log values)) over seeds, for positive quantities that multiply (ratios, growth factors)."""
    log_mean = bootstrap(lambda a: np.log(a).mean(axis=1), values, what=what)
    return Measurement(math.exp(log_mean.value), math.exp(log_mean.low), math.exp(log_mean.high), log_mean.n,
                       "geometric mean; " + log_mean.method, log_mean.samples)


def difference(
    first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray, *, paired: bool = True,
    what: str = "seeds",
) -> Measurement:
    """mean(first) - mean(second); ``paired``: seed i of both arms shares split, batch order and init parts."""
    a, b = _as_array(first, "difference"), _as_array(second, "difference")
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"a paired difference needs arms of one shape, got {a.shape} and {b.shape}")
        return bootstrap(lambda d: d.mean(axis=1), a - b, what=f"{what} (paired)")
    return bootstrap(lambda x, y: x.mean(axis=1) - y.mean(axis=1), a, b, what=what)


def ratio(
    numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray, *, paired: bool = True,
    what: str = "seeds",
) -> Measurement:
    """mean(numerator) / mean(denominator), resampling seeds as pairs when ``paired``."""
    a, b = _as_array(numerator, "ratio"), _as_array(denominator, "ratio")
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"a paired ratio needs arms of one shape, got {a.shape} and {b.shape}")
        both = np.stack([a, b], axis=1)
        return bootstrap(lambda r: r[:, :, 0].mean(axis=1) / r[:, :, 1].mean(axis=1), both,
                         what=f"{what} (paired)")
    return bootstrap(lambda x, y: x.mean(axis=1) / y.mean(axis=1), a, b, what=what)


def slope(x: Sequence[float] | np.ndarray, rows: np.ndarray, what: str = "seeds") -> Measurement:
    """Least-squares slope of mean(rows, over seeds) against ``x``; ``rows`` is (seeds, len(x))."""
    xs = np.asarray(x, dtype=np.float64)
    table = _as_array(rows, "slope")
    if table.ndim != 2 or table.shape[1] != xs.size or xs.size < 2:
        raise ValueError(f"slope needs rows of shape (seeds, {xs.size}) with at least 2 points, got {table.shape}")
    centred = xs - xs.mean()

    def fit(resampled: np.ndarray) -> np.ndarray:
        curve = resampled.mean(axis=1)  # (R, len(x))
        return ((curve - curve.mean(axis=1, keepdims=True)) * centred).sum(axis=1) / (centred**2).sum()

    return bootstrap(fit, table, what=what)
