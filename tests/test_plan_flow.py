"""The data flow: auto gains, output/input layers, residual branches (fixup), fallbacks."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.plan import analyze, find_activations, init_model, output_layer
from test_plan_models import ResNet


def test_auto_picks_sqrt2_after_relu_the_tanh_gain_after_tanh_and_1_before_nothing() -> None:
    model = nn.Sequential(
        nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 256), nn.Tanh(),
        nn.Linear(256, 256),
        nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 10),
    )
    report = init_model(model, "auto", seed=0)
    assert report.flow == "fx"
    assert report["0.weight"].gain == pytest.approx(math.sqrt(2.0), abs=1e-12)
    assert report["2.weight"].gain == pytest.approx(initlab.gain("tanh"), abs=1e-12)
    assert report["4.weight"].gain == 1.0
    assert report["5.weight"].gain == pytest.approx(math.sqrt(2.0), abs=1e-12)
    assert report.output_layer == "7" and report["7.weight"].rule == "auto: output=lecun_normal"
    for name, gain in (("0", math.sqrt(2.0)), ("2", initlab.gain("tanh")), ("4", 1.0)):
        measured = model.get_parameter(f"{name}.weight").std().item()
        assert measured == pytest.approx(gain / 16.0, rel=0.05)  # 65k elements: sample std within 0.5%


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.c = nn.Linear(8, 8)
        self.d = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.a(x), 0.2)
        h = self.b(x)
        x = h * torch.sigmoid(h)
        x = F.gelu(F.dropout(self.c(x), 0.1, self.training), approximate="tanh")
        x = self.d(x).view(-1, 8).relu()
        return self.head(x)


def test_functional_activations_are_found_with_their_parameters() -> None:
    found = find_activations(Functional())
    assert isinstance(found["a"], nn.LeakyReLU) and found["a"].negative_slope == 0.2
    assert found["b"] == "silu"
    assert isinstance(found["c"], nn.GELU) and found["c"].approximate == "tanh"
    assert found["d"] == "relu"
    assert found["head"] is None
    report = init_model(Functional(), "auto")
    assert report["a.weight"].gain == pytest.approx(math.sqrt(2.0 / 1.04))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 3)
        self.first = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1e9:
            x = x * 0
        return self.head(torch.tanh(self.first(x)))


def test_auto_records_a_forward_pass_when_tracing_fails() -> None:
    report = init_model(Untraceable(), "auto", example_input=torch.randn(4, 8))
    assert report.flow == "recorded"
    assert report["first.weight"].gain == pytest.approx(initlab.gain("tanh"))
    assert report.output_layer == "head"


def test_without_example_input_auto_falls_back_to_registration_order_and_warns() -> None:
    with pytest.warns(UserWarning, match="torch.fx could not trace.*registration order"):
        report = init_model(Untraceable(), "auto")
    assert report.flow == "static"
    assert report["first.weight"].gain == 1.0  # no sibling activation module to read


def test_the_activation_is_found_through_norms_identity_and_residual_additions() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Identity(), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    assert isinstance(find_activations(model)["0"], nn.ReLU)

    class UntraceableBody(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.Identity(), nn.ReLU(), nn.Linear(4, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) if x.sum() > 0 else self.body(-x)

    static = analyze(UntraceableBody())  # registration order skips Identity too
    assert static.method == "static" and isinstance(static.activations["body.0"], nn.ReLU)
    found = find_activations(ResNet())
    assert found["layers.0.conv2"] == "relu"  # conv2 -> bn2 -> (+ skip) -> relu
    assert found["layers.2.shortcut"] == "relu"
    assert found["fc"] is None


def test_output_layer_follows_execution_not_registration_order() -> None:
    assert output_layer(Untraceable(), torch.randn(2, 8)) == "head"
    assert output_layer(ResNet()) == "fc"


def test_fixup_zeroes_each_branch_end_and_the_output_and_scales_the_others() -> None:
    model = ResNet(channels=64, blocks=3, downsample=False)
    report = init_model(model, "fixup", seed=0)
    flow = analyze(model, need_residual=True)
    assert flow.residual_branches == [[f"layers.{i}.conv1", f"layers.{i}.conv2"] for i in range(3)]
    scale = 3 ** (-1.0 / (2 * 2 - 2))  # L = 3 branches of m = 2 layers
    for i in range(3):
        assert torch.count_nonzero(model.layers[i].conv2.weight) == 0
        row = report[f"layers.{i}.conv1.weight"]
        assert row.rule == "fixup: residual=fixup"
        expected = math.sqrt(2.0 / (64 * 9)) * scale
        assert row.expected_std == pytest.approx(expected)
        assert model.layers[i].conv1.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert torch.count_nonzero(model.fc.weight) == 0
    assert report["stem.weight"].rule == "fixup: default he_normal"


def test_fixup_needs_the_flow_and_says_how_to_give_it() -> None:
    class Branchy(Untraceable):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 1e9:
                x = x * 0
            h = self.first(x)
            return self.head(h + torch.relu(h))

    with pytest.raises(ValueError, match="example_input"):
        init_model(Branchy(), "fixup")


class ScaledResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(32, 32)
        self.alpha = nn.Parameter(torch.ones(()))
        self.beta = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.alpha * torch.relu(self.inner(x))
        return x + self.beta * x


@pytest.mark.parametrize("plan", ["skipinit", "rezero"])
def test_skipinit_and_rezero_zero_the_residual_scalars(plan: str) -> None:
    model = ScaledResidual()
    report = init_model(model, plan)
    assert model.alpha.item() == 0.0 and model.beta.item() == 0.0
    assert report["alpha"].rule == f"{plan}: scalar=zeros"
    assert torch.count_nonzero(model.inner.weight) > 0


def test_mup_output_layer_has_std_one_over_fan_in() -> None:
    model = nn.Sequential(nn.Embedding(100, 512), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 64))
    report = init_model(model, "mup")
    assert report["3.weight"].expected_std == pytest.approx(1.0 / 512)
    assert model[3].weight.std().item() == pytest.approx(1.0 / 512, rel=0.05)
    assert report["1.weight"].expected_std == pytest.approx(1.0 / math.sqrt(512))
    assert report["0.weight"].expected_std == pytest.approx(1.0)


def test_transformer_layers_inside_torch_containers_get_their_activation() -> None:
    layer = nn.TransformerEncoderLayer(32, 4, 64, activation="gelu", batch_first=True)
    model = nn.Sequential(nn.Linear(16, 32), layer, nn.Linear(32, 2))
    found = find_activations(model)
    assert found["1.linear1"] == "gelu" and found["1.linear2"] is None
    assert found["1.self_attn.out_proj"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = init_model(model, "auto")
    assert report["1.linear1.weight"].gain == pytest.approx(initlab.gain("gelu"))
