"""Jacobian spectra: exact for small models, estimated by probes and power iteration for large ones."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.theory import is_isometric, jacobian_singular_values


def _deep_linear(depth: int, width: int, orthogonal: bool, seed: int = 0) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(depth):
        layer = nn.Linear(width, width, bias=False).double()
        with torch.no_grad():
            if orthogonal:
                nn.init.orthogonal_(layer.weight, generator=generator)
            else:
                layer.weight.normal_(0.0, 1.0 / math.sqrt(width), generator=generator)
        layers.append(layer)
    return nn.Sequential(*layers)


def test_deep_orthogonal_linear_network_has_every_singular_value_one() -> None:
    model = _deep_linear(depth=32, width=32, orthogonal=True)
    batch = torch.randn(4, 32, dtype=torch.float64)
    spectrum = jacobian_singular_values(model, batch)
    assert spectrum.exact and spectrum.singular_values is not None
    assert spectrum.singular_values.shape == (4, 32)
    assert float((spectrum.singular_values - 1).abs().max()) <= 1e-5
    assert is_isometric(model, batch, tol=1e-5)


def test_gaussian_one_over_n_weights_at_depth_64_are_badly_conditioned() -> None:
    model = _deep_linear(depth=64, width=64, orthogonal=False)
    batch = torch.randn(2, 64, dtype=torch.float64)
    spectrum = jacobian_singular_values(model, batch)
    # the mean square stays O(1) (variance preserving) while the spread explodes
    assert 0.1 < spectrum.mean_squared < 10
    assert spectrum.condition_number > 1e3
    assert spectrum.max > 3.0
    assert not is_isometric(model, batch, tol=0.5)


def test_estimates_agree_with_exact_spectrum() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 40), nn.Tanh(), nn.Linear(40, 24), nn.Tanh(), nn.Linear(24, 16)).double()
    batch = torch.randn(6, 24, dtype=torch.float64)
    exact = jacobian_singular_values(model, batch, exact=True)
    probes = 32
    estimate = jacobian_singular_values(model, batch, exact=False, probes=probes, iterations=120)
    assert not estimate.exact and estimate.singular_values is None
    values = exact.singular_values.double() ** 2
    # Hutchinson with Gaussian probes: std of the trace estimate is sqrt(2 sum sigma^4 / probes)
    tolerance = 4 * math.sqrt(2 * float((values**2).sum()) / probes) / float(values.sum())
    assert estimate.mean_squared == pytest.approx(exact.mean_squared, rel=tolerance)
    assert estimate.max == pytest.approx(exact.max, rel=1e-3)
    # the smallest value comes from a Rayleigh quotient of the shifted operator: an upper bound
    assert exact.min * (1 - 1e-9) <= estimate.min
    assert estimate.min**2 <= exact.min**2 + 0.01 * exact.max**2


def test_convolutional_model_jacobian_has_input_and_output_dimensions() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 7))
    spectrum = jacobian_singular_values(model, torch.randn(3, 2, 5, 5))
    assert (spectrum.input_dim, spectrum.output_dim, spectrum.samples) == (50, 7, 3)
    assert spectrum.singular_values.shape == (3, 7)


def test_bad_batches_are_rejected_with_clear_errors() -> None:
    model = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        jacobian_singular_values(model, torch.tensor([[0.0, math.nan, 1.0]]))
    with pytest.raises(TypeError, match="floating"):
        jacobian_singular_values(model, torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="tol"):
        is_isometric(model, torch.ones(2, 3), tol=-1)


def test_the_estimate_passes_on_no_torchscript_deprecation_warning() -> None:
    # torch loads its jvp decompositions once per process, through torch.jit.script: a fresh process sees it
    code = (
        "import warnings, torch\n"
        "from initlab.theory import jacobian_singular_values\n"
        "warnings.simplefilter('error')\n"
        "model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))\n"
        "jacobian_singular_values(model, torch.randn(4, 8), exact=False, probes=2, iterations=2)\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
