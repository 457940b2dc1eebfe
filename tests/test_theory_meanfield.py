"""Mean-field theory: fixed points, the critical line, depth scales, the edge-of-chaos scheme."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import initlab
from initlab.theory import (
    EdgeOfChaos,
    MeanField,
    critical_line,
    critical_sigma_w2,
    phase_diagram,
    predict_layer_stats,
)


def test_relu_critical_point_is_sigma_w2_two_at_zero_bias() -> None:
    assert critical_line("relu", [0.0])[0] == pytest.approx(2.0, rel=1e-9)
    field = MeanField("relu", 2.0, 0.0)
    assert field.chi1 == pytest.approx(1.0, rel=1e-12)
    assert field.phase == "critical"
    with pytest.warns(UserWarning, match="no critical point"):
        assert math.isnan(critical_line("relu", [0.1])[0])


def test_relu_fixed_point_matches_closed_form_to_1e_minus_9() -> None:
    # q = sigma_w2 q / 2 + sigma_b2  =>  q* = sigma_b2 / (1 - sigma_w2 / 2)
    for sigma_w2, sigma_b2 in [(1.0, 0.1), (1.5, 0.3), (1.9, 0.01)]:
        expected = sigma_b2 / (1.0 - sigma_w2 / 2.0)
        assert MeanField("relu", sigma_w2, sigma_b2).q_star == pytest.approx(expected, rel=1e-9)


def test_erf_q_star_and_chi1_match_closed_forms_to_1e_minus_6() -> None:
    # E[erf(sqrt(q) z)^2] = (2/pi) asin(2q / (1 + 2q)),  E[erf'(sqrt(q) z)^2] = (4/pi) / sqrt(1 + 4q)
    field = MeanField("erf", 2.0, 0.1)
    q = field.q_star
    assert 2.0 * (2 / math.pi) * math.asin(2 * q / (1 + 2 * q)) + 0.1 == pytest.approx(q, rel=1e-10)
    assert field.chi1 == pytest.approx(2.0 * (4 / math.pi) / math.sqrt(1 + 4 * q), rel=1e-9)


def test_critical_line_points_have_chi1_equal_one() -> None:
    sigma_b2 = np.linspace(0.0, 0.5, 50)
    line = critical_line("tanh", sigma_b2)
    assert line[0] == pytest.approx(1.0, rel=1e-9)
    assert np.all(np.diff(line) > 0)
    for b, w in zip(sigma_b2[1::7], line[1::7]):
        assert MeanField("tanh", float(w), float(b)).chi1 == pytest.approx(1.0, abs=1e-9)
    # the value Schoenholz et al. 2017 plot for tanh at sigma_b2 = 0.05
    assert critical_sigma_w2("tanh", 0.05) == pytest.approx(1.76, abs=0.01)


def test_derivative_by_autograd_equals_given_derivative() -> None:
    def swish(x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)

    def swish_prime(x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x)
        return s + x * s * (1 - s)

    by_autograd = MeanField(swish, 2.0, 0.1)
    given = MeanField(swish, 2.0, 0.1, derivative=swish_prime)
    module = MeanField(nn.SiLU(), 2.0, 0.1)
    assert by_autograd.chi1 == pytest.approx(given.chi1, rel=1e-12)
    assert module.q_star == pytest.approx(given.q_star, rel=1e-12)


def test_maps_are_vectorised_over_q_and_c() -> None:
    field = MeanField("tanh", 1.5, 0.05)
    q = np.array([0.1, 0.5, 2.0])
    together = field.q_map(q)
    assert isinstance(together, np.ndarray) and together.shape == (3,)
    assert together == pytest.approx([field.q_map(float(v)) for v in q], rel=1e-14)
    assert field.q_map(torch.tensor([field.q_star], dtype=torch.float64))[0].item() == pytest.approx(field.q_star, rel=1e-12)
    assert field.c_map(1.0) == pytest.approx(1.0, rel=1e-10)


def test_relu_correlation_map_matches_arc_cosine_kernel() -> None:
    field = MeanField("relu", 2.0, 0.0)
    for c in (-0.5, 0.0, 0.3, 0.9):
        theta = math.acos(c)
        expected = (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / math.pi
        assert field.c_map(c) == pytest.approx(expected, abs=1e-9)


def test_chaotic_tanh_has_c_star_below_one_and_ordered_has_one() -> None:
    chaotic = MeanField("tanh", 3.0, 0.05)
    ordered = MeanField("tanh", 1.2, 0.3)
    assert chaotic.phase == "chaotic" and 0.0 < chaotic.c_star < 1.0
    assert chaotic.c_map(chaotic.c_star) == pytest.approx(chaotic.c_star, abs=1e-9)
    assert ordered.phase == "ordered" and ordered.c_star == 1.0
    assert ordered.depth_scale_c == pytest.approx(-1.0 / math.log(ordered.chi1), rel=1e-12)
    assert math.isinf(MeanField("relu", 2.0, 0.0).depth_scale_c)


def test_vanishing_signal_has_q_star_zero_and_no_fixed_point_raises_with_range() -> None:
    assert MeanField("tanh", 0.5, 0.0).q_star == 0.0
    with pytest.raises(ValueError, match=r"range searched \[1, 1e\+12\]"):
        _ = MeanField("relu", 2.5, 0.0).q_star
    with pytest.raises(ValueError, match="sigma_w2"):
        MeanField("tanh", -1.0, 0.0)
    with pytest.raises(ValueError, match="unknown activation"):
        MeanField("tahn", 1.0, 0.0)


def _deep_tanh_pre_activations(sigma_w2: float, sigma_b2: float, width: int, depth: int, samples: int) -> list[float]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(samples, width, generator=generator)
    mean_squares = []
    h = x
    for layer in range(depth):
        weight = torch.randn(width, width, generator=generator) * math.sqrt(sigma_w2 / width)
        bias = torch.randn(width, generator=generator) * math.sqrt(sigma_b2)
        pre = (h if layer == 0 else torch.tanh(h)) @ weight.T + bias
        mean_squares.append(float(pre.double().pow(2).mean()))
        h = pre
    return mean_squares


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(1.5, 0.05), (2.5, 0.1)])
def test_q_star_matches_empirical_width_1024_depth_50_network_within_5_percent(sigma_w2: float, sigma_b2: float) -> None:
    empirical = _deep_tanh_pre_activations(sigma_w2, sigma_b2, width=1024, depth=50, samples=16)
    q_star = MeanField("tanh", sigma_w2, sigma_b2).q_star
    assert empirical[-1] == pytest.approx(q_star, rel=0.05)
    predicted = predict_layer_stats("tanh", 50, 1.0, sigma_w2, sigma_b2)
    for layer in (0, 1, 2, 5):
        assert math.sqrt(empirical[layer]) == pytest.approx(predicted[layer], rel=0.05)


def test_predict_layer_stats_starts_from_input_and_settles_at_q_star() -> None:
    stds = predict_layer_stats("tanh", 30, 4.0, 1.5, 0.05)
    assert len(stds) == 30
    assert stds[0] == pytest.approx(math.sqrt(1.5 * 4.0 + 0.05), rel=1e-12)
    assert stds[-1] == pytest.approx(math.sqrt(MeanField("tanh", 1.5, 0.05).q_star), rel=1e-6)
    with pytest.raises(ValueError, match="depth"):
        predict_layer_stats("tanh", 0)


def test_phase_diagram_marks_ordered_left_and_chaotic_right_of_the_line() -> None:
    diagram = phase_diagram("tanh", np.linspace(0.5, 4.0, 15), np.linspace(0.0, 0.4, 6))
    assert diagram.chi1.shape == (6, 15)
    for i, line in enumerate(diagram.critical_sigma_w2):
        left = diagram.sigma_w2 < line - 1e-6
        right = diagram.sigma_w2 > line + 1e-6
        assert np.all(diagram.chi1[i, left] < 1) and np.all(diagram.chi1[i, right] > 1)


def test_phase_diagram_plot_writes_a_png(tmp_path) -> None:
    path = tmp_path / "phase.png"
    phase_diagram("tanh", np.linspace(0.5, 3.0, 10), np.linspace(0.0, 0.3, 5)).plot(str(path), mark=(1.76, 0.05))
    assert path.stat().st_size > 5000
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_edge_of_chaos_scheme_resolves_from_string_and_draws_critical_variance() -> None:
    scheme = initlab.get("edge_of_chaos(activation=tanh, sigma_b2=0.05)")
    assert isinstance(scheme, EdgeOfChaos)
    assert initlab.get(str(scheme)) == scheme
    assert scheme.sigma_w2 == pytest.approx(critical_sigma_w2("tanh", 0.05), rel=1e-12)
    weights = scheme.sample((512, 1024), generator=torch.Generator().manual_seed(0))
    expected = math.sqrt(scheme.sigma_w2 / 1024)
    # std of a std estimate from n normals is std / sqrt(2n); allow 5 of those
    assert float(weights.std()) == pytest.approx(expected, rel=5 / math.sqrt(2 * weights.numel()))
    assert scheme.describe((512, 1024)).expected_std == pytest.approx(expected, rel=1e-12)
    assert initlab.get("edge_of_chaos(activation=relu)").sigma_w2 == pytest.approx(2.0, rel=1e-9)
    with pytest.raises(ValueError, match="no edge of chaos"):
        initlab.get("edge_of_chaos(activation=relu, sigma_b2=0.1)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EdgeOfChaos("tanh", 0.0).bias_scheme().describe((4,), layout="vector").expected_std == 0.0


def test_an_edge_of_chaos_plan_draws_its_biases_from_sigma_b2_unless_a_rule_says_otherwise() -> None:
    model = nn.Sequential(nn.Linear(256, 512), nn.Tanh(), nn.Linear(512, 512), nn.Tanh(), nn.Linear(512, 10))
    initlab.init_model(model, plan="edge_of_chaos(activation=tanh, sigma_b2=0.05)", seed=0)
    biases = torch.cat([model[0].bias, model[2].bias])
    # std of a std estimate from n normals is std / sqrt(2n); allow 5 of those
    assert float(biases.std()) == pytest.approx(math.sqrt(0.05), rel=5 / math.sqrt(2 * biases.numel()))
    initlab.init_model(model, plan="edge_of_chaos(activation=tanh, sigma_b2=0.05); bias=zeros", seed=0)
    assert all(float(m.bias.abs().max()) == 0.0 for m in (model[0], model[2], model[4]))
