"""LSUV: unit output std per layer, forward passes that stop early, all-or-nothing commits."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import initlab
from initlab.datainit import lsuv

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.MultiheadAttention)


def _output_stds(model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
    """First-call output std of every covered layer, measured independently of the report."""
    inner = {id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    stds: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, LAYER_TYPES) and id(module) not in inner:

            def hook(module: nn.Module, args: object, output: object, name: str = name) -> None:
                tensor = output[0] if isinstance(output, tuple) else output
                stds.setdefault(name, float(tensor.double().std()))

            handles.append(module.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(batch)
    for handle in handles:
        handle.remove()
    return stds


def _mlp(depth: int = 8, width: int = 48) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(20, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 5))


class _ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.up(x))
        return self.head(x.mean(dim=(2, 3)))


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h, _ = self.attn(h, h, h)
        return self.out(h.mean(dim=1))


@pytest.mark.parametrize(
    "model, batch",
    [
        (_mlp(), torch.randn(128, 20)),
        (_ConvNet(), torch.randn(16, 3, 8, 8)),
        (_Attention(), torch.randn(16, 5, 6)),
    ],
    ids=["mlp", "cnn", "attention"],
)
@pytest.mark.parametrize("mode", ["single_pass", "truncated"])
def test_lsuv_leaves_every_covered_layer_std_within_tolerance(model: nn.Module, batch: torch.Tensor, mode: str) -> None:
    report = lsuv(model, batch, mode=mode, verify=True)
    assert report.converged and report.missed == []
    stds = _output_stds(model, batch)
    assert set(stds) == set(report.names)
    for name, std in stds.items():
        assert 0.9 <= std <= 1.1, (name, std)
        assert report.row(name).final_std == pytest.approx(std, rel=1e-5)


def test_single_pass_and_truncated_modes_give_the_same_weights() -> None:
    batch = torch.randn(64, 20)
    first, second = _mlp(), _mlp()
    second.load_state_dict(first.state_dict())
    lsuv(first, batch, tol=0.01, mode="single_pass")
    lsuv(second, batch, tol=0.01, mode="truncated")
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def _count_calls(model: nn.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            counts[name] = 0

            def hook(module: nn.Module, args: object, output: object, name: str = name) -> None:
                counts[name] += 1

            module.register_forward_hook(hook)
    return counts


def test_truncated_forward_stops_at_the_layer_being_fixed() -> None:
    model = _mlp(depth=10)
    counts = _count_calls(model)
    report = lsuv(model, torch.randn(64, 20), tol=0.001, mode="truncated")
    last = report.names[-1]
    # the last layer only sees its own passes (measure + one per correction) and the call-order pass
    assert counts[last] == report.row(last).iterations + 1 + 1
    # the first layer sees every pass: far more than the last one
    assert counts[report.names[0]] > 5 * counts[last]


def test_single_pass_runs_each_layer_once_whatever_the_depth() -> None:
    model = _mlp(depth=12)
    counts = _count_calls(model)
    lsuv(model, torch.randn(64, 20))
    assert set(counts.values()) == {1}  # one forward pass fits every layer


def test_zero_and_nonfinite_outputs_are_reported_not_divided_by() -> None:
    class Blowup(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / 0.0

    model = nn.Sequential(nn.Linear(10, 10), nn.Tanh(), nn.Linear(10, 10), Blowup(), nn.Linear(10, 3))
    with torch.no_grad():
        model[2].weight.zero_()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.warns(RuntimeWarning, match=r"zero output std \(left unscaled\): 2.*non-finite output \(left unscaled\): 4"):
        report = lsuv(model, torch.randn(32, 10), orthonormal=False)
    assert report.row("2").status == "zero_std" and report.row("4").status == "nonfinite"
    assert report.row("2").scale == 1.0 and report.row("4").scale == 1.0
    assert torch.equal(model[2].weight, before[2]) and torch.equal(model[4].weight, before[4])
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert not report.converged


def test_non_convergence_warns_with_layer_names_and_commits_consistent_scales() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32))
    with torch.no_grad():
        model[2].bias.copy_(torch.linspace(-6, 6, 32))  # bias spread alone exceeds the target std
    weight_before = model[2].weight.detach().clone()
    with pytest.warns(RuntimeWarning, match=r"missed std 1 \+- 0.1: 2"):
        report = lsuv(model, torch.randn(64, 10), orthonormal=False, max_iter=5)
    row = report.row("2")
    assert row.status == "not_converged" and row.iterations == 5
    assert report.missed == ["2"]
    assert torch.allclose(model[2].weight, weight_before * row.scale)


def test_an_exception_mid_way_restores_every_parameter() -> None:
    class Explode(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), Explode(), nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for mode in ("single_pass", "truncated"):
        with pytest.raises(RuntimeError, match="boom"):
            lsuv(model, torch.randn(16, 8), mode=mode)
        for key, value in model.state_dict().items():
            assert torch.equal(value, before[key]), key


def test_bad_input_is_rejected_before_anything_changes() -> None:
    model = _mlp(depth=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="at least 2 samples"):
        lsuv(model, torch.randn(1, 20))
    bad = torch.randn(8, 20)
    bad[3, 4] = math.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        lsuv(model, bad)
    with pytest.raises(ValueError, match="no supported layers"):
        lsuv(nn.Sequential(nn.Tanh()), torch.randn(4, 3))
    with pytest.raises(ValueError, match="mode must be one of single_pass, truncated"):
        lsuv(model, torch.randn(4, 20), mode="fast")
    with pytest.raises(ValueError, match="tol must be >= 0"):
        lsuv(model, torch.randn(4, 20), tol=-0.1)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_lsuv_is_a_plan_stage() -> None:
    model = _mlp(depth=5)
    batch = torch.randn(64, 20)
    report = initlab.init_model(model, plan="lsuv", batch=batch, seed=0)
    stage = report.stage_reports["lsuv"]
    assert stage.converged
    for std in _output_stds(model, batch).values():
        assert 0.9 <= std <= 1.1


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, torch.tensor(data.target)


def _train_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_twenty_layer_tanh_mlp_with_small_random_init_trains_on_digits_only_after_lsuv() -> None:
    x, y = _digits()
    x, y = x[:256], y[:256]

    def small_random_mlp() -> nn.Sequential:
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        widths = [64] + [64] * 19
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
        model = nn.Sequential(*layers, nn.Linear(64, 10))
        with torch.no_grad():
            for module in model:
                if isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, 0.01)
                    module.bias.zero_()
        return model

    plain = small_random_mlp()
    rescaled = small_random_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lsuv(rescaled, x, orthonormal=False)
    plain_accuracy = _train_accuracy(plain, x, y, steps=120)
    lsuv_accuracy = _train_accuracy(rescaled, x, y, steps=120)
    assert plain_accuracy < 0.25  # chance is 0.1: the signal dies in the first layers
    assert lsuv_accuracy > 0.9


def test_orthonormal_start_batches_same_shape_weights_with_each_weights_own_stream() -> None:
    from initlab.datainit import covered_layers, orthonormal_
    from initlab.rng import derive_generator
    from initlab.schemes.structured import orthogonal_matrices_, orthogonal_stack_

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 32), *[nn.Linear(32, 32) for _ in range(4)], nn.Linear(32, 3),
        nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3), nn.MultiheadAttention(8, 2),
    )  # fmt: skip
    orthonormal_(covered_layers(model, "test"), seed=5)
    checked = 0
    for name, param in model.named_parameters():
        if param.dim() < 2:
            assert not param.any(), name
            continue
        # one QR per weight, drawn from the stream of (seed, name): the values before batching
        single = torch.empty(1, param.shape[0], param[0].numel())
        orthogonal_matrices_(single, "qr", derive_generator(5, name))
        assert torch.equal(param.detach(), single.view_as(param)), name
        checked += 1
    assert checked == 11
    # 4x8 floats fill whole 64-byte lines (one batched QR); 5x7 and 7x5 do not (one QR each)
    for shape in ((4, 8), (8, 4), (5, 7), (7, 5), (32, 32)):
        generators = [derive_generator(1, f"w{i}") for i in range(3)]
        stacked = orthogonal_stack_(torch.empty(3, *shape), generators)
        for i in range(3):
            alone = orthogonal_matrices_(torch.empty(1, *shape), "qr", derive_generator(1, f"w{i}"))
            assert torch.equal(stacked[i], alone[0]), (shape, i)
    with pytest.raises(ValueError, match="n generators"):
        orthogonal_stack_(torch.empty(2, 5, 7), generators)
