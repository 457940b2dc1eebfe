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


# -- gains read the module's settings; breaks are panel edges -------------------------------
def _phi_of(module: nn.Module):  # type: ignore[no-untyped-def]
    """The module's own forward at one float64 point: the reference phi for scipy."""
    def phi(z: float) -> float:
        with torch.no_grad():
            return float(module.eval()(torch.tensor([z], dtype=torch.float64))[0])
    return phi


def reference_second_moment(phi, points: tuple[float, ...]) -> float:  # type: ignore[no-untyped-def]
    """E[phi(z)^2] by scipy's quad with a breakpoint at every jump and kink, on [-30, 30] (tails < 1e-190)."""
    def integrand(z: float) -> float:
        return phi(z) ** 2 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    second, _ = scipy.integrate.quad(integrand, -30.0, 30.0, points=sorted(points), epsabs=1e-14, epsrel=1e-13, limit=400)
    return second


@pytest.mark.parametrize(
    "module,points",
    [
        (nn.Softplus(beta=2.0), (10.0,)),
        (nn.Softplus(beta=0.5, threshold=3.0), (6.0,)),
        (nn.Hardtanh(-2.0, 2.0), (-2.0, 2.0)),
        (nn.Hardtanh(-0.3, 1.7), (-0.3, 1.7)),
        (nn.ReLU6(), (0.0, 6.0)),
        (nn.Threshold(0.1, 20.0), (0.1,)),
        (nn.Threshold(-0.37, 0.5), (-0.37,)),
        (nn.Hardshrink(0.3), (-0.3, 0.3)),
        (nn.Softshrink(0.7), (-0.7, 0.7)),
        (nn.CELU(0.5), (0.0,)),
        (nn.ELU(2.0), (0.0,)),
        (nn.LeakyReLU(0.2), (0.0,)),
        (nn.RReLU(0.1, 0.3), (0.0,)),
        (nn.PReLU(init=0.1).double(), (0.0,)),
        (nn.GELU(approximate="tanh"), ()),
        (nn.Hardswish(), (-3.0, 3.0)),
    ],
    ids=lambda value: repr(value) if isinstance(value, nn.Module) else "",
)
def test_gain_of_a_module_uses_its_settings_exactly_as_scipy_quad_with_breakpoints(module: nn.Module, points) -> None:  # type: ignore[no-untyped-def]
    expected = 1.0 / math.sqrt(reference_second_moment(_phi_of(module), points))
    assert il.gain(module) == pytest.approx(expected, rel=1e-8, abs=0.0)
    assert set(points) <= set(il.schemes.gains.activation_kinks(module))


def test_module_settings_change_the_gain_from_the_default_one() -> None:
    assert il.gain(nn.Softplus(beta=2.0)) == pytest.approx(1.3103050, rel=1e-6)
    assert il.gain(nn.Softplus(beta=2.0)) != pytest.approx(il.gain(nn.Softplus()), rel=1e-3)
    assert il.gain(nn.Hardtanh(-2.0, 2.0)) != pytest.approx(il.gain(nn.Hardtanh()), rel=1e-3)
    assert il.gain(nn.RReLU(0.1, 0.3)) == pytest.approx(math.sqrt(2.0 / 1.04), rel=1e-15)
    assert il.gain(nn.PReLU(8, init=0.1)) == pytest.approx(math.sqrt(2.0 / 1.01), rel=1e-15)
    assert il.gain("softplus", 2.0) == il.gain(nn.Softplus(beta=2.0))


def test_declared_kinks_make_a_jump_off_the_grid_exact() -> None:
    def jump(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0.13, x, torch.full_like(x, -0.8))

    expected = 1.0 / math.sqrt(reference_second_moment(lambda z: z if z > 0.13 else -0.8, (0.13,)))
    assert il.gain(jump, kinks=[0.13]) == pytest.approx(expected, rel=1e-8, abs=0.0)
    # without the edge the panel that holds the jump is integrated as if phi were smooth
    assert abs(il.gain(jump) / expected - 1.0) > 1e-6
    with pytest.raises(TypeError, match="kinks must be a sequence of numbers"):
        il.gain(jump, kinks=0.13)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        il.gain(jump, kinks=[math.inf])


def test_kinks_follow_the_scale_of_a_vectorised_expectation() -> None:
    def step(x: torch.Tensor) -> torch.Tensor:
        return (x > 0.5).to(x.dtype)

    scales = torch.tensor([0.25, 1.0, 3.0])
    probabilities = il.schemes.gaussian_expectation(step, scales, kinks=[0.5])
    expected = torch.tensor([scipy.special.ndtr(-0.5 / float(s)) for s in scales], dtype=torch.float64)
    torch.testing.assert_close(probabilities, expected, rtol=1e-12, atol=1e-15)


def test_plan_auto_inherits_the_gain_of_the_module_with_its_settings() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.Softplus(beta=2.0), nn.Linear(32, 8), nn.Hardtanh(-2.0, 2.0), nn.Linear(8, 4))
    report = il.init_model(model, plan="auto", seed=0)
    assert report["0.weight"].gain == pytest.approx(il.gain(nn.Softplus(beta=2.0)), rel=1e-12)
    assert report["2.weight"].gain == pytest.approx(il.gain(nn.Hardtanh(-2.0, 2.0)), rel=1e-12)
