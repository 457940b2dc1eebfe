"""The statistical battery of the counter-based generator (docs/rng.md).

Fixed seeds; every threshold comes from the sampling distribution of the
statistic for the sample size used: 5 standard errors for moments and
correlations (a false alarm below 1e-6), p > 1e-4 for chi-square and
Kolmogorov-Smirnov tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from initlab.rng import Keyed

N = 1 << 20
Z = 5.0  # standard errors


def _uniform(name: str, seed: int = 0, count: int = N) -> np.ndarray:
    out = torch.empty(count, dtype=torch.float64)
    Keyed(seed).child(name).uniform_(out)
    return out.numpy()


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_values_pass_a_chi_square_test_on_1000_bins(dtype: torch.dtype) -> None:
    out = torch.empty(N, dtype=dtype)
    Keyed(0).child("chi").uniform_(out)
    counts = np.bincount((out.double().numpy() * 1000).astype(np.int64), minlength=1000)
    statistic, p_value = stats.chisquare(counts)
    assert p_value > 1e-4, f"chi-square {statistic:.1f} on 999 degrees of freedom"


def test_raw_words_have_uniform_bytes_in_every_position() -> None:
    words = Keyed(1).child("bytes").words(N // 4).numpy()
    for shift in (0, 8, 16, 24):
        counts = np.bincount((words >> shift) & 0xFF, minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-4


def test_successive_values_are_uncorrelated() -> None:
    values = _uniform("serial")
    for lag in (1, 2, 3, 4, 7, 8):
        assert abs(_correlation(values[:-lag], values[lag:])) < Z / math.sqrt(N - lag)


@pytest.mark.parametrize(
    "first,second",
    [
        ("layer.1.weight", "layer.2.weight"),
        ("a", "b"),
        ("encoder.weight", "encoder.weighT"),
        ("block.10.attn.q", "block.11.attn.q"),
    ],
)
def test_streams_whose_names_differ_by_one_character_are_uncorrelated(first: str, second: str) -> None:
    x, y = _uniform(first), _uniform(second)
    assert abs(_correlation(x, y)) < Z / math.sqrt(N)
    # shifted copies would hide from a plain correlation: check a few lags too
    for lag in (1, 4):
        assert abs(_correlation(x[:-lag], y[lag:])) < Z / math.sqrt(N - lag)


def test_adjacent_seeds_give_uncorrelated_streams() -> None:
    assert abs(_correlation(_uniform("w", 0), _uniform("w", 1))) < Z / math.sqrt(N)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_values_have_the_moments_and_shape_of_a_standard_normal(dtype: torch.dtype) -> None:
    out = torch.empty(N, dtype=dtype)
    Keyed(2).child("normal").normal_(out)
    values = out.double().numpy()
    assert abs(values.mean()) < Z / math.sqrt(N)
    assert abs(values.var() - 1.0) < Z * math.sqrt(2.0 / N)
    assert abs(stats.skew(values)) < Z * math.sqrt(6.0 / N)
    assert abs(stats.kurtosis(values)) < Z * math.sqrt(24.0 / N)
    assert stats.kstest(values[: N // 4], "norm").pvalue > 1e-4
    # the two values of a Box-Muller pair are independent
    assert abs(_correlation(values[0::2] ** 2, values[1::2] ** 2)) < Z / math.sqrt(N / 2)


def test_normal_tails_reach_the_probabilities_a_normal_gives() -> None:
    out = torch.empty(4 * N)
    Keyed(3).child("tails").normal_(out)
    beyond = float((out.abs() > 4.0).sum())
    expected = 4 * N * 2 * stats.norm.sf(4.0)
    assert abs(beyond - expected) < Z * math.sqrt(expected)


@pytest.mark.parametrize(
    "a,b",
    [(-2.0, 2.0), (-0.3, 0.2), (0.5, math.inf), (3.0, 3.5), (-9.0, -5.0), (-1.0, 6.0)],
)
def test_truncated_normal_values_follow_the_truncated_distribution(a: float, b: float) -> None:
    count = N // 2
    out = torch.empty(count, dtype=torch.float64)
    Keyed(4).child(f"trunc{a},{b}").truncated_normal_(out, 0.0, 1.0, a, b)
    values = out.numpy()
    assert values.min() >= a and values.max() <= b
    law = stats.truncnorm(a, b)
    assert abs(values.mean() - law.mean()) < Z * law.std() / math.sqrt(count)
    assert abs(values.var() / law.var() - 1.0) < Z * math.sqrt(2.0 / count) * 2
    assert stats.kstest(values[: count // 4], law.cdf).pvalue > 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_bounds_hold_and_are_reached_at_every_dtype(dtype: torch.dtype) -> None:
    stream = Keyed(5).child("bounds")
    count = 1 << 18
    out = torch.empty(count, dtype=dtype)
    low, high = -0.05, 0.05
    stream.uniform_(out, low, high)
    values = out.double()
    assert values.min() >= low and values.max() < high
    # the extremes come within a few spacings of the bounds (no range lost)
    resolution = max(torch.finfo(dtype).eps * high * 4, (high - low) * 20 / count)
    assert values.min() - low < resolution and high - values.max() < resolution
    mean, std = 0.01, 0.02
    stream.truncated_normal_(out, mean, std, -2.0, 2.0)
    values = out.double()
    lower, upper = mean - 2 * std, mean + 2 * std
    assert values.min() >= lower and values.max() <= upper
    tail_resolution = max(torch.finfo(dtype).eps * abs(upper) * 4, 4 * std * 1e-3)
    assert values.min() - lower < tail_resolution and upper - values.max() < tail_resolution


def test_bernoulli_frequency_matches_p() -> None:
    count = N // 4
    for p in (0.01, 0.5, 0.9):
        mask = torch.empty(count, dtype=torch.bool)
        Keyed(6).child(f"mask{p}").bernoulli_(mask, p)
        assert abs(mask.double().mean().item() - p) < Z * math.sqrt(p * (1 - p) / count)
