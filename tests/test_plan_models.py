"""Whole-model init on real architectures: MLP, small ResNet, grouped/transposed CNN, transformer, LSTM, tied LM.

The model builders here are shared with the other plan tests.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.plan import init_model


def mlp(width: int = 128) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 10)
    )


class BasicBlock(nn.Module):
    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        out = channels * stride
        self.conv1 = nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.shortcut = nn.Conv2d(channels, out, 1, stride=stride, bias=False) if stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + skip)


class ResNet(nn.Module):
    def __init__(self, channels: int = 48, blocks: int = 2, classes: int = 10, downsample: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        layers = [BasicBlock(channels) for _ in range(blocks)]
        if downsample:
            layers.append(BasicBlock(channels, stride=2))
        self.layers = nn.Sequential(*layers)
        final = channels * (2 if downsample else 1)
        self.fc = nn.Linear(final, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class GroupedCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 64, 3, padding=1)
        self.grouped = nn.Conv2d(64, 128, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(128, 128, 3, padding=1, groups=128)
        self.up = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, groups=2)
        self.head = nn.Conv2d(64, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        x = F.relu(self.grouped(x))
        x = F.relu(self.depthwise(x))
        x = torch.tanh(self.up(x))
        return self.head(x)


def transformer() -> nn.Module:
    layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=256, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True)
        self.head = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class TiedLM(nn.Module):
    def __init__(self, vocab: int = 200, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.hidden = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.hidden(self.embed(tokens))))


BUILDERS = {
    "mlp": mlp,
    "resnet": ResNet,
    "grouped_cnn": GroupedCNN,
    "transformer": transformer,
    "lstm": LSTMNet,
    "tied_lm": TiedLM,
}


# ----------------------------------------------------------------------------------------------
# tests on the models above

MODEL_PLANS = {
    "mlp": "auto",
    "resnet": "fixup",
    "grouped_cnn": "he",
    "transformer": "glorot",
    "lstm": "lecun_normal; recurrent=orthogonal; forget_bias=ones",
    "tied_lm": "auto; embedding=normal(mean=0.0, std=0.02)",
}


def _init(name: str, plan: str | None = None, seed: int = 0) -> tuple[nn.Module, initlab.InitReport]:
    model = BUILDERS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = init_model(model, MODEL_PLANS[name] if plan is None else plan, seed)
    return model, report


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_parameter_is_covered_by_exactly_one_row(name: str) -> None:
    model, report = _init(name)
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    covered = [n for row in report for n in (row.name, *row.aliases)]
    assert sorted(covered) == sorted(set(names))
    assert len(covered) == len(set(covered))
    assert all(row.status == "initialized" for row in report)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_measured_std_is_within_10_percent_of_expected_for_large_tensors(name: str) -> None:
    model, report = _init(name)
    params = dict(model.named_parameters())
    large = [row for row in report if row.numel >= 10_000 and row.expected_std]
    assert large, "the model should have tensors with at least 10k elements"
    for row in large:
        # the std of a sample std over n >= 10k elements is about 0.7%, so 10% is > 10 sigma
        direct = params[row.name].detach().double().std(correction=0).item()
        # the report measures up to 2^15 evenly spaced elements: 0.4% relative error per sigma
        assert direct == pytest.approx(row.measured_std, rel=0.03)
        assert abs(direct / row.expected_std - 1.0) < 0.10, row


def test_grouped_and_transposed_convs_take_fans_per_group() -> None:
    _, report = _init("grouped_cnn")
    assert (report["grouped.weight"].fan_in, report["grouped.weight"].fan_out) == (16 * 9, 32 * 9)
    assert (report["depthwise.weight"].fan_in, report["depthwise.weight"].fan_out) == (9, 9)
    # ConvTranspose2d(128, 64, 4, groups=2): weight (128, 32, 4, 4); input channels per group 64
    assert (report["up.weight"].fan_in, report["up.weight"].fan_out) == (64 * 16, 32 * 16)
    assert report["up.weight"].expected_std == pytest.approx(math.sqrt(2.0 / (64 * 16)))


def test_attention_in_proj_initialises_q_k_v_as_three_blocks_with_their_own_fans() -> None:
    model, report = _init("transformer", plan="glorot_normal")
    weight = model.layers[0].self_attn.in_proj_weight.detach()
    embed = 128
    for block in weight.split(embed):
        # Glorot on an (E, E) block: std sqrt(2 / 2E); the packed (3E, E) matrix would give sqrt(2 / 4E)
        assert block.std().item() == pytest.approx(math.sqrt(1.0 / embed), rel=0.05)
    row = report["layers.0.self_attn.in_proj_weight"]
    assert row.blocks == 3 and (row.fan_in, row.fan_out) == (embed, embed)


def test_lstm_gates_get_orthogonal_recurrent_blocks_and_forget_bias() -> None:
    model, _ = _init("lstm")
    hidden = 64
    for layer in range(2):
        recurrent = getattr(model.lstm, f"weight_hh_l{layer}").detach()
        for gate in recurrent.split(hidden):
            assert torch.allclose(gate @ gate.T, torch.eye(hidden), atol=1e-4)
        bias_ih = getattr(model.lstm, f"bias_ih_l{layer}").detach().split(hidden)
        assert torch.equal(bias_ih[1], torch.ones(hidden))
        assert all(torch.equal(b, torch.zeros(hidden)) for i, b in enumerate(bias_ih) if i != 1)
        assert torch.equal(getattr(model.lstm, f"bias_hh_l{layer}").detach(), torch.zeros(4 * hidden))


def test_tied_embedding_and_output_weights_are_initialised_once_by_the_first_owner() -> None:
    model, report = _init("tied_lm")
    assert model.head.weight is model.embed.weight
    row = report["embed.weight"]
    assert row.aliases == ("head.weight",)
    assert row.rule == "embedding=normal(mean=0.0, std=0.02)"
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert len([r for r in report if "head.weight" in (r.name, *r.aliases)]) == 1


@pytest.mark.parametrize("name", ["mlp", "resnet", "transformer", "lstm", "tied_lm"])
def test_meta_device_model_materializes_to_the_values_of_the_cpu_model(name: str) -> None:
    cpu_model, _ = _init(name, plan="he")
    with torch.device("meta"):
        meta_model = BUILDERS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = init_model(meta_model, "he", 0)
    assert report.materialized == "cpu"
    if name == "tied_lm":
        assert meta_model.head.weight is meta_model.embed.weight
    cpu_state, meta_state = cpu_model.state_dict(), meta_model.state_dict()
    assert list(cpu_state) == list(meta_state)
    for key, value in cpu_state.items():
        assert meta_state[key].device.type == "cpu"
        assert torch.equal(value, meta_state[key]), key
