"""The shared helpers of the lowest layer: the normal-mass formula and the argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from initlab.rng import check_choice, check_int, check_number, normal_mass
from initlab.schemes.variance import truncated_mean_shift, truncated_std_factor

# (a, b) in sigma units: across 0, one-sided, far in either tail, infinite ends
INTERVALS = [(-2.0, 2.0), (-1.0, 3.0), (0.0, 1.0), (8.0, 9.0), (20.0, 21.0), (-9.0, -8.0), (-37.0, -36.0),
             (-math.inf, 0.5), (3.0, math.inf), (-math.inf, math.inf)]


@pytest.mark.parametrize(("a", "b"), INTERVALS)
def test_normal_mass_keeps_full_relative_precision_in_both_tails(a: float, b: float) -> None:
    # scipy's survival/cdf functions are accurate in the tails; a difference of erf values is not
    expected = stats.norm.sf(a) - stats.norm.sf(b) if a >= 0 else stats.norm.cdf(b) - stats.norm.cdf(a)
    assert expected > 0
    assert normal_mass(a, b) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("a", "b"), [(-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0), (6.0, 7.0), (-math.inf, 1.0)])
def test_truncated_normal_moments_match_scipy(a: float, b: float) -> None:
    truncated = stats.truncnorm(a, b)
    assert truncated_std_factor(a, b) == pytest.approx(truncated.std(), rel=1e-9)
    assert truncated_mean_shift(a, b) == pytest.approx(truncated.mean(), rel=1e-9, abs=1e-12)


def test_checks_return_plain_values_and_accept_numpy_scalars() -> None:
    assert check_number("x", np.float32(0.5), minimum=0.0) == 0.5
    assert type(check_int("n", np.int64(3), minimum=1)) is int
    assert check_choice("mode", "fan_in", ("fan_in", "fan_out")) == "fan_in"
    assert check_number("bound", -math.inf, finite=False) == -math.inf


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: check_number("lr", "0.1"), TypeError, "lr must be a number"),
        (lambda: check_number("lr", True), TypeError, "lr must be a number"),
        (lambda: check_number("lr", math.nan), ValueError, "lr must be finite"),
        (lambda: check_number("bound", math.nan, finite=False), ValueError, "bound must not be NaN"),
        (lambda: check_number("lr", 0.0, minimum=0.0, strict=True), ValueError, "lr must be > 0.0"),
        (lambda: check_number("p", 1.5, minimum=0.0, maximum=1.0), ValueError, "p must be >= 0.0 and <= 1.0"),
        (lambda: check_int("steps", 2.0), TypeError, "steps must be an int"),
        (lambda: check_int("steps", 0, minimum=1), ValueError, "steps must be an int >= 1"),
        (lambda: check_choice("mode", "fan", ("fan_in", "fan_out")), ValueError, "mode must be one of fan_in, fan_out"),
    ],
)
def test_checks_name_the_argument_and_what_is_accepted(call: Callable[[], object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()
