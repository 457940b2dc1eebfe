"""Weight-norm init, gradient calibration, layer-wise pre-training and GradInit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

import initlab
from initlab.datainit import (
    calibrate_gradients,
    gradient_ratios,
    gradinit,
    layerwise_pretrain,
    weight_norm_init,
)
from initlab.datainit.weightnorm import unit_statistics


def _pre_activation_stats(model: nn.Module, batch: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):

            def hook(module: nn.Module, args: object, output: torch.Tensor, name: str = name) -> None:
                stats[name] = unit_statistics(output, 1 if output.dim() > 2 else output.dim() - 1)

            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(batch)
    for handle in handles:
        handle.remove()
    return stats


def test_weight_norm_init_gives_unit_pre_activations_on_the_batch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), weight_norm(nn.Linear(8 * 6 * 6, 32)), nn.Tanh(), nn.Linear(32, 4)
    )
    batch = torch.randn(64, 3, 8, 8) * 2 + 0.5
    report = weight_norm_init(model, batch)
    assert [row.status for row in report.rows] == ["ok", "ok", "ok"]
    stats = _pre_activation_stats(model, batch)
    assert len(stats) == 3
    for name, (mean, std) in stats.items():
        assert float(mean.abs().max()) <= 1e-5, name
        assert float((std - 1).abs().max()) <= 1e-4, name
    # the weight-normed layer keeps its parametrization; its magnitude g carried the change
    assert hasattr(model[3], "parametrizations")


def test_weight_norm_init_reports_dead_units_without_dividing_by_zero() -> None:
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[1].zero_()
    with pytest.warns(RuntimeWarning, match="not fully normalized"):
        report = weight_norm_init(model, torch.randn(32, 5))
    assert report.rows[0].dead_units == 1 and report.rows[0].status == "dead_units"
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_calibration_equalizes_gradient_ratios_and_keeps_a_relu_network_function() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight.mul_(8.0)
        model[2].weight.mul_(0.1)
        model[0].bias.normal_()
        model[2].bias.normal_()
    batch = torch.randn(64, 16)
    before_output = model(batch).detach()
    ratios = gradient_ratios(model, batch)
    assert max(ratios.values()) / min(ratios.values()) > 100
    report = calibrate_gradients(model, batch, tol=0.01)
    assert report.summary["converged"] and report.summary["spread_after"] <= 1.01
    after = gradient_ratios(model, batch)
    assert max(after.values()) / min(after.values()) <= 1.01
    # positively homogeneous layers, product of scales 1, biases scaled along: same function
    assert torch.allclose(model(batch), before_output, rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_layerwise_pretraining_lowers_reconstruction_loss_within_its_step_budget() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    latent = torch.randn(400, 4)
    data = latent @ torch.randn(4, 12)  # low-rank data an autoencoder can learn
    output_before = model[4].weight.detach().clone()
    report = layerwise_pretrain(model, data, steps=150, lr=0.01, batch_size=64)
    statuses = {row.name: row.status for row in report.rows}
    assert statuses == {"0": "trained", "2": "trained", "4": "output_layer"}
    for row in report.rows[:2]:
        assert row.steps == 150
        assert row.loss_end < 0.5 * row.loss_start, row
    assert report.rows[0].activation == "Tanh" and report.rows[1].activation == "ReLU"
    assert torch.equal(model[4].weight, output_before)


def test_layerwise_pretraining_handles_convolutions() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    report = layerwise_pretrain(model, torch.randn(64, 1, 10, 10), steps=40, lr=0.01)
    row = report.row("0")
    assert row.status == "trained" and row.loss_end < row.loss_start


def test_layerwise_pretraining_is_a_function_of_its_seed_and_leaves_the_global_generator_alone() -> None:
    import copy

    torch.manual_seed(0)
    start = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    data = torch.randn(200, 4) @ torch.randn(4, 12)

    def pretrained(seed: int, global_state: int) -> list[torch.Tensor]:
        torch.manual_seed(global_state)  # whatever ran before in the process
        torch.randn(global_state + 1)
        model = copy.deepcopy(start)
        before = torch.get_rng_state()
        layerwise_pretrain(model, data, steps=20, lr=0.01, batch_size=32, noise=0.1, seed=seed)
        assert torch.equal(torch.get_rng_state(), before), "the call drew from torch's global generator"
        return [p.detach().clone() for p in model.parameters()]

    first, again = pretrained(3, 1), pretrained(3, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other = pretrained(4, 1)
    assert not torch.equal(first[0], other[0])  # the seed does reach the result
    with pytest.raises(ValueError, match="layerwise_pretrain: seed must be in"):
        layerwise_pretrain(copy.deepcopy(start), data, steps=1, seed=-1)


def _one_step_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    loss = nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    stepped = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
    return float(nn.functional.cross_entropy(torch.func.functional_call(model, stepped, (x,)), y).detach())


def test_gradinit_learns_scales_that_lower_the_loss_after_one_step() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
    with torch.no_grad():
        model[2].weight.mul_(6.0)
    x = torch.randn(256, 10)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    before = _one_step_loss(model, x, y, lr=0.1)
    weights_before = [model[i].weight.detach().clone() for i in (0, 2, 4)]
    report = gradinit(model, x, y, steps=40, lr=0.1, scale_lr=0.05)
    after = _one_step_loss(model, x, y, lr=0.1)
    assert after < before
    for row, index, weight in zip(report.rows, (0, 2, 4), weights_before):
        assert row.scale >= 0.01
        assert torch.allclose(model[index].weight, weight * row.scale)


@pytest.mark.parametrize(
    "method",
    [weight_norm_init, calibrate_gradients, layerwise_pretrain, gradinit],
    ids=["wn", "calibrate", "pretrain", "gradinit"],
)
def test_every_method_rejects_tiny_or_nonfinite_batches_and_layerless_models(method) -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        method(model, torch.randn(1, 4))
    bad = torch.randn(8, 4)
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        method(model, bad)
    with pytest.raises(ValueError, match="no supported layers"):
        method(nn.Sequential(nn.ReLU()), torch.randn(8, 4))


@pytest.mark.parametrize("plan", ["wn", "calibrate", "gradinit"])
def test_data_driven_methods_are_plan_stages(plan: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    report = initlab.init_model(model, plan=plan, batch=torch.randn(32, 6), seed=0)
    assert plan in report.stage_reports
    assert report.stage_reports[plan].rows


def test_gradinit_with_adam_inner_step_commits_its_scales_and_respects_the_floor() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    weights_before = [model[i].weight.detach().clone() for i in (0, 2)]
    report = gradinit(model, torch.randn(64, 8), steps=10, inner="adam", min_scale=0.5, scale_lr=0.2)
    assert report.summary["target"] == "random labels"
    for row, index, weight in zip(report.rows, (0, 2), weights_before):
        assert row.scale >= 0.5
        assert torch.allclose(model[index].weight, weight * row.scale)
    with pytest.raises(ValueError, match="inner must be one of sgd, adam"):
        gradinit(model, torch.randn(64, 8), inner="lbfgs")
