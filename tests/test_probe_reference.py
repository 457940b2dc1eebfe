"""Textbook behaviours of random layers, reproduced by ``initlab.audit`` with tolerances derived from the width.

Small random tanh layers shrink the signal until it vanishes and LeCun's
1/fan_in keeps tanh near its variance (LeCun et al. 1998, 'Efficient
BackProp'; Glorot & Bengio 2010); He init keeps ReLU layers flat (He et al.
2015, sec. 2.2); a chain of randn matmuls overflows float32 near product 28,
one of randn * 0.01 underflows to zero and 1/sqrt(fan_in) keeps std near 1
(Dellinger 2019); a constant init leaves every hidden unit in one symmetry
group (Rumelhart, Hinton & Williams 1986).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import initlab as il

WIDTH = 500
DEPTH = 10
BATCH = 200

# Gauss-Hermite nodes for E[f(z)], z ~ N(0, 1): an independent check of the measured stds
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _tanh_moments(q: float) -> tuple[float, float]:
    values = np.tanh(math.sqrt(q) * _NODES)
    return float((values * _WEIGHTS).sum()), float((values**2 * _WEIGHTS).sum())


def _std_tolerance(width: int, directions: int = 20, sigmas: float = 5.0) -> float:
    """Relative tolerance of a measured layer std.

    The output variance of a random layer is a sum over ``width`` units of
    squared projections of the inputs; deep in the net the batch spans about
    ``directions`` effective directions, so the variance has relative error
    sqrt(2 / (width * directions)) and the std half of that.
    """
    return sigmas * math.sqrt(2.0 / (width * directions)) / 2.0


def _mlp(init: il.schemes.Initializer, activation: type[nn.Module], seed: int = 100) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(DEPTH):
        linear = nn.Linear(WIDTH, WIDTH, bias=False)
        init(linear.weight, generator=generator)
        layers += [linear, activation()]
    return nn.Sequential(*layers)


def _unit_gaussian(rows: int, columns: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed))


def test_small_random_tanh_shrinks_std_about_fivefold_per_layer_and_vanishes_from_layer_two() -> (
    None
):
    report = il.audit(_mlp(il.small_random(0.01), nn.Tanh), _unit_gaussian(BATCH, WIDTH))
    rows = report.select("activation")
    stds = [row.act_std for row in rows]
    tolerance = _std_tolerance(WIDTH)
    # layer 1: std of tanh(h), h ~ N(0, 500 * 0.01^2)
    _, second = _tanh_moments(WIDTH * 0.01**2)
    assert stds[0] == pytest.approx(math.sqrt(second), rel=tolerance)
    # then each layer multiplies the std by sqrt(500) * 0.01 = 0.224 (tanh is linear near 0)
    ratios = [after / before for before, after in zip(stds, stds[1:])]
    for ratio in ratios:
        assert ratio == pytest.approx(math.sqrt(WIDTH) * 0.01, rel=tolerance)
    # the figures quoted in the seed: 0.21, 0.047, 0.011
    assert stds[:3] == pytest.approx([0.21, 0.047, 0.011], rel=0.05)
    assert [row.verdict for row in rows] == ["healthy"] + ["vanishing"] * (DEPTH - 1)
    assert "input RMS" in rows[1].reason


def test_lecun_scaled_tanh_std_decays_slowly_from_063_to_023() -> None:
    report = il.audit(_mlp(il.lecun_normal(), nn.Tanh), _unit_gaussian(BATCH, WIDTH))
    stds = [row.act_std for row in report.select("activation")]
    expected = []
    q = 1.0
    for _ in range(DEPTH):
        first, second = _tanh_moments(q)
        expected.append(math.sqrt(second - first * first))
        q = second
    assert stds == pytest.approx(expected, rel=_std_tolerance(WIDTH))
    assert stds[0] == pytest.approx(0.63, abs=0.01)
    assert stds[-1] == pytest.approx(0.23, abs=0.01)
    assert set(report.verdicts().values()) == {"healthy"}


def test_he_initialized_relu_layers_keep_std_flat_within_15_percent() -> None:
    # A single finite-width net wanders: log q takes a random step of variance about 5 / width per
    # ReLU layer (Hanin & Nica 2019), i.e. 0.16 in log-std after 10 layers of width 500. Averaging
    # 6 independent nets brings that to 0.065, so a 15% band (0.14) is about 2 sigma at the deepest
    # layer; the flatness itself is the mean-field fixed point q = 2 of He init.
    seeds = 6
    stds = np.zeros((seeds, DEPTH))
    for seed in range(seeds):
        net = _mlp(il.he_normal(nonlinearity="relu"), nn.ReLU, seed=100 + seed)
        report = il.audit(
            net, _unit_gaussian(100, WIDTH, seed=seed), modules=[nn.ReLU], rank_samples=0
        )
        assert set(report.verdicts().values()) == {"healthy"}
        stds[seed] = [row.act_std for row in report.rows]
    mean = stds.mean(axis=0)
    assert mean.max() / mean.min() <= 1.15
    # and it sits at the theory value: std of relu(h), h ~ N(0, 2), is sqrt(1 - 1/pi)
    assert mean == pytest.approx(math.sqrt(1.0 - 1.0 / math.pi), rel=0.15)


def _matmul_chain(scale: float, depth: int = 100, width: int = 512, seed: int = 0) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(depth):
        linear = nn.Linear(width, width, bias=False)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(width, width, generator=generator) * scale)
        layers.append(linear)
    return nn.Sequential(*layers)


CHAIN_BATCH = 32


def test_chain_of_randn_matmuls_reports_first_nonfinite_layer_near_28() -> None:
    # std grows by sqrt(512) = 22.6 per layer; float32 overflows at 3.4e38 = 22.6^28.4
    report = il.audit(_matmul_chain(1.0), _unit_gaussian(CHAIN_BATCH, 512))
    first = report[report.first_nonfinite_layer]
    assert 27 <= first.index <= 29
    before = report.rows[: first.index - 1]
    assert all(row.nonfinite == 0 for row in before)
    assert [row.verdict for row in before[1:]] == ["exploding"] * (len(before) - 1)
    assert all(row.verdict == "non-finite" for row in report.rows[first.index - 1 :])
    assert report.rows[first.index].nonfinite == CHAIN_BATCH * 512  # everything after is NaN/inf
    assert report.rows[first.index - 2].act_max < 3.5e38 < float("inf")


def test_chain_of_small_matmuls_underflows_to_exact_zeros() -> None:
    # a small batch: the layers before the zeros compute on slow float32 denormals
    batch = 8
    report = il.audit(_matmul_chain(0.01), _unit_gaussian(batch, 512))
    assert report.first_nonfinite_layer is None
    zero_layers = [row.index for row in report.rows if row.act_std == 0.0]
    # std shrinks by 0.226 per layer: float32 denormals (1.4e-45) end near layer 69
    assert zero_layers and zero_layers == list(range(zero_layers[0], 101))
    assert 60 <= zero_layers[0] <= 75
    assert all(row.verdict == "vanishing" for row in report.rows[1:])
    assert "every output value is 0" in report.rows[-1].reason
    zero_bin = report.bins.center
    assert report.rows[-1].hist[zero_bin] == batch * 512


def test_chain_scaled_by_inverse_sqrt_fan_in_keeps_std_near_one() -> None:
    report = il.audit(_matmul_chain(512**-0.5), _unit_gaussian(CHAIN_BATCH, 512))
    stds = np.array([row.act_std for row in report.rows])
    # the log-std of a product of 100 random matrices wanders by about sqrt(depth / (width * batch))
    assert np.all(np.abs(np.log(stds)) < 0.25)
    assert set(report.verdicts().values()) == {"healthy"}


def _two_layer(init: il.schemes.Initializer | None, hidden: int = 16) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 3))
    if init is not None:
        for module in (net[0], net[2]):
            init(module.weight)
            il.zeros()(module.bias)
    return net


def test_constant_init_puts_every_hidden_unit_in_one_symmetry_group() -> None:
    net = _two_layer(il.constant(0.5))
    batch, target = (
        _unit_gaussian(40, 6),
        torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2)),
    )
    report = il.audit(net, batch, target=target)
    hidden = report["0"]
    assert hidden.symmetric_groups == (tuple(range(16)),)
    assert hidden.verdict == "symmetric"
    assert "16 of 16 units" in hidden.reason
    # the gradients agree too: the symmetry survives training
    weight = hidden.params[0]
    assert weight.grad_norm is not None and weight.grad_norm > 0


def test_random_init_leaves_no_symmetric_units() -> None:
    torch.manual_seed(3)
    net = _two_layer(None)
    batch, target = (
        _unit_gaussian(40, 6),
        torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2)),
    )
    report = il.audit(net, batch, target=target)
    assert report["0"].symmetric_groups == ()
    assert report["2"].symmetric_groups == ()
    assert "symmetric" not in report.verdicts().values()
