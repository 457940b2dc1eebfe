"""Gains: 1 / sqrt(E[phi(z)^2]) by quadrature, against closed forms and scipy's adaptive integration."""

from __future__ import annotations

import math

import pytest
import scipy.integrate
import scipy.special
import torch
from torch import nn

import initlab as il


def reference_gain(phi) -> float:  # type: ignore[no-untyped-def]
    """1 / sqrt(E[phi(z)^2]) with scipy.integrate.quad at tight tolerances."""
    def integrand(z: float) -> float:
        return phi(z) ** 2 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    second, _ = scipy.integrate.quad(integrand, -math.inf, math.inf, epsabs=1e-14, epsrel=1e-13, limit=200)
    return 1.0 / math.sqrt(second)


def test_closed_form_gains_are_exact() -> None:
    assert il.gain("relu") == math.sqrt(2.0)
    assert il.gain("linear") == il.gain("identity") == il.gain(None) == 1.0
    for slope in (0.01, 0.2, 0.5, 1.0):
        assert il.gain("leaky_relu", slope) == pytest.approx(math.sqrt(2.0 / (1.0 + slope**2)), rel=1e-15)
    assert il.gain(nn.ReLU()) == math.sqrt(2.0)
    assert il.gain(nn.LeakyReLU(0.3)) == pytest.approx(math.sqrt(2.0 / 1.09), rel=1e-15)


def test_quadrature_matches_closed_forms_for_relu_written_as_a_function() -> None:
    assert il.gain(lambda x: torch.clamp(x, min=0.0)) == pytest.approx(math.sqrt(2.0), rel=1e-12)
    assert il.gain(lambda x: 3.0 * x) == pytest.approx(1.0 / 3.0, rel=1e-12)
    # SELU is normalised to unit second moment by construction
    assert il.gain("selu") == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "activation,phi",
    [
        ("tanh", math.tanh),
        ("gelu", lambda z: 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))),
        ("silu", lambda z: z * scipy.special.expit(z)),
        ("sigmoid", scipy.special.expit),
        ("elu", lambda z: z if z > 0 else math.expm1(z)),
        ("softsign", lambda z: z / (1.0 + abs(z))),
        ("mish", lambda z: z * math.tanh(math.log1p(math.exp(z)) if z < 30 else z)),
    ],
)
def test_quadrature_gain_matches_adaptive_integration(activation: str, phi) -> None:  # type: ignore[no-untyped-def]
    assert il.gain(activation) == pytest.approx(reference_gain(phi), rel=1e-8)


def test_gain_accepts_modules_and_callables() -> None:
    assert il.gain(nn.GELU()) == pytest.approx(il.gain("gelu"), rel=1e-15)
    assert il.gain(nn.GELU(approximate="tanh")) == pytest.approx(il.gain("gelu_tanh"), rel=1e-15)
    assert il.gain(nn.SiLU()) == pytest.approx(il.gain(lambda x: x * torch.sigmoid(x)), rel=1e-12)
    assert il.gain(nn.ELU(alpha=0.5)) == pytest.approx(il.gain("elu", 0.5), rel=1e-15)

    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    assert il.gain(Square()) == pytest.approx(1.0 / math.sqrt(3.0), rel=1e-12)  # E[z^4] = 3


def test_torch_convention_returns_torch_table_values() -> None:
    assert il.gain("tanh", convention="torch") == 5.0 / 3.0
    assert il.gain("selu", convention="torch") == 0.75
    assert il.gain("leaky_relu", 0.2, convention="torch") == math.sqrt(2.0 / (1 + 0.2**2))
    assert il.gain(nn.Tanh(), convention="torch") == 5.0 / 3.0
    with pytest.raises(ValueError, match="torch's calculate_gain has no value"):
        il.gain("gelu", convention="torch")


def test_gaussian_expectation_is_vectorised_over_scale() -> None:
    scales = torch.tensor([0.5, 1.0, 2.0])
    second = il.schemes.gaussian_expectation(lambda x: x * x, scales)
    torch.testing.assert_close(second, scales.double() ** 2, rtol=1e-12, atol=0.0)


def test_he_schemes_use_the_exact_gain_unless_told_otherwise() -> None:
    assert il.he_normal(nonlinearity="tanh").gain == pytest.approx(il.gain("tanh"), rel=1e-15)
    assert il.he_normal(nonlinearity="tanh", convention="torch").gain == 5.0 / 3.0
    std = il.he_normal(nonlinearity="gelu").describe((10, 100)).expected_std
    assert std == pytest.approx(il.gain("gelu") / 10.0, rel=1e-15)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: il.gain("rleu"), ValueError, "did you mean relu"),
        (lambda: il.gain("relu", 0.1), ValueError, "takes no parameter"),
        (lambda: il.gain("tanh", convention="keras"), ValueError, "convention must be"),
        (lambda: il.gain(3.0), TypeError, "activation must be"),  # type: ignore[arg-type]
        (lambda: il.gain(lambda x: x * 0.0), ValueError, "finite positive second moment"),
        (lambda: il.he_normal(nonlinearity="tanh", negative_slope=0.2), ValueError, "negative_slope"),
    ],
)
def test_bad_activations_raise_with_the_accepted_values(call, error: type[Exception], message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()
