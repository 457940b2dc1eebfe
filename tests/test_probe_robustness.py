"""The probe survives real models and leaves them as it found them; the training probe stays bounded."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import initlab as il
from initlab.probe import Probe


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(x)
        return h, h.detach().argmax(1)


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = TupleOut()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden, _ = self.encoder(x)
        return {"logits": self.head(hidden), "hidden": hidden}


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(8, 8)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shared(self.act(self.shared(x))))


def _hooks(model: nn.Module) -> int:
    total = 0
    for module in model.modules():
        total += (
            len(module._forward_hooks)
            + len(module._forward_pre_hooks)
            + len(module._backward_hooks)
        )
    for parameter in model.parameters():
        total += len(parameter._backward_hooks or {})
    return total


def test_tuple_and_dict_outputs_are_measured_and_the_loss_uses_the_logits() -> None:
    torch.manual_seed(0)
    model = DictNet()
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    report = il.audit(model, x, target=y)
    assert report.names == ["encoder.fc", "head"]
    logits = model(x)["logits"]
    assert report.loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-6)
    assert report["head"].act_std == pytest.approx(
        logits.detach().std(unbiased=False).item(), rel=1e-6
    )
    assert report["encoder.fc"].grad_norm is not None


def test_inplace_activations_get_input_and_gradient_statistics() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(inplace=True), nn.Linear(20, 2))
    x = torch.randn(32, 10)
    report = il.audit(net, x, target=torch.randn(32, 2))
    pre = net[0](x).detach()
    # the linear row saw its output before the in-place ReLU overwrote it
    assert report["0"].act_std == pytest.approx(pre.std(unbiased=False).item(), rel=1e-6)
    assert report["1"].in_rms == pytest.approx(pre.square().mean().sqrt().item(), rel=1e-6)
    assert report["1"].act_min == 0.0
    assert report["0"].grad_norm is not None and report["1"].grad_norm is not None
    assert _hooks(net) == 0


def test_a_module_called_twice_adds_both_calls_to_its_row() -> None:
    torch.manual_seed(0)
    model = Twice()
    x = torch.randn(16, 8)
    report = il.audit(model, x)
    assert report["shared"].calls == 2 and report["act"].calls == 2
    first = model.shared(x)
    second = model.shared(torch.tanh(first))
    both = torch.cat([first, second]).detach()
    assert report["shared"].act_std == pytest.approx(both.std(unbiased=False).item(), rel=1e-6)
    assert sum(report["shared"].hist) == both.numel()


def test_audit_keeps_weights_grads_modes_and_batchnorm_buffers() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2)
    )
    net.eval()
    net[3].train()  # a mixed state must survive too
    net[4].weight.grad = torch.full_like(net[4].weight, 7.0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    report = il.audit(net, torch.randn(32, 5), target=torch.randint(0, 2, (32,)), mode="train")
    assert report["1"].act_std == pytest.approx(1.0, rel=0.01)  # batch statistics were used
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert [m.training for m in net] == [False, False, False, True, False]
    assert torch.equal(net[4].weight.grad, torch.full_like(net[4].weight, 7.0))
    assert net[0].weight.grad is None


def test_hooks_are_removed_when_the_forward_pass_raises() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(5, 2))
    net.train()
    with pytest.raises(RuntimeError):
        il.audit(net, torch.randn(3, 4), mode="eval")
    assert _hooks(net) == 0
    assert net.training and all(m.training for m in net)
    with pytest.raises(RuntimeError), il.Probe(net, every=1):
        net(torch.randn(3, 4))
    assert _hooks(net) == 0


@contextlib.contextmanager
def _no_host_sync() -> Iterator[None]:
    """Make every Python-level way of reading a tensor on the host raise."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the probe read a tensor on the host inside a hook")

    names = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")
    saved = {name: getattr(torch.Tensor, name) for name in names}
    try:
        for name in names:
            setattr(torch.Tensor, name, refuse)
        yield
    finally:
        for name, value in saved.items():
            setattr(torch.Tensor, name, value)


def test_hooks_accumulate_on_the_device_without_reading_values_on_the_host(monkeypatch) -> None:
    from initlab.probe import collector, histogram

    # the path of every device but the CPU (where the hooks read floats), checked on the CPU;
    # the compiled kernels take CPU tensors only, so they are off as on any other device
    monkeypatch.setattr(collector, "HOST_DEVICES", ())
    monkeypatch.setattr(collector, "compiled_kernels", lambda values: None)
    monkeypatch.setattr(histogram, "compiled_kernels", lambda values: None)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(inplace=True), nn.Linear(16, 3)
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    with il.Probe(net, every=1, optimizer=optimizer) as session:
        for _ in range(3):
            optimizer.zero_grad()
            with _no_host_sync():
                loss = nn.functional.cross_entropy(net(x), y)
                loss.backward()
            optimizer.step()
        report = session.report()
    assert report.steps == [0, 1, 2]
    assert report["2"].grad_norm is not None and report["3"].dead_fraction is not None


def test_probe_records_every_nth_step_and_keeps_a_bounded_history() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(16, 4), torch.randn(16, 1)

    def train(session: Probe, steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            optimizer.step()

    def held_bytes(session: Probe) -> int:
        rings = session._rings.values()
        return sum(r.records.numel() * 8 + r.hists.numel() * 8 + len(r.steps) for r in rings)

    with il.Probe(net, every=3, optimizer=optimizer, history=4) as session:
        train(session, 10)
        after_10 = held_bytes(session)
        report = session.report()
        assert report.steps == [0, 3, 6, 9]
        train(session, 90)
        assert held_bytes(session) == after_10
        report = session.report()
    assert report.steps == [90, 93, 96, 99]
    assert report.step == 99
    assert list(report.history["0"]["step"]) == report.steps
    assert report.hist_history["0"].shape == (4, report.bins.num_bins + 1)
    assert _hooks(net) == 0


def test_update_ratio_of_sgd_is_learning_rate_times_grad_over_weight() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2))
    lr = 0.05
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    x, y = torch.randn(20, 6), torch.randint(0, 2, (20,))
    with il.Probe(net, every=1, optimizer=optimizer) as session:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        grad = net[0].weight.grad.norm().item()
        optimizer.step()
        weight_after = net[0].weight.norm().item()
        report = session.report()
    row = report["0"]
    assert row.update_weight_ratio == pytest.approx(lr * grad / weight_after, rel=1e-5)
    assert row.grad_weight_ratio == pytest.approx(grad / weight_after, rel=1e-5)
    assert report.history["0"]["update_weight_ratio"][0] == pytest.approx(row.update_weight_ratio)


def test_without_optimizer_a_step_ends_at_the_next_training_forward_and_eval_is_skipped() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
    with il.Probe(net, every=2) as session:
        for step in range(5):
            net(torch.randn(8, 3)).sum().backward()
            with torch.no_grad():
                net(torch.randn(100, 3) * 1000)  # evaluation: neither a step nor recorded
            assert session.current_step == step
        live = session.report()
        assert live.step == 4  # the step in progress is reported while it is being recorded
    report = session.report()
    assert report.steps == [0, 2, 4]
    assert max(report.history["1"]["act_rms"]) < 1.0  # the x1000 evaluation batches never entered


def test_manual_steps_with_auto_step_off() -> None:
    net = nn.Sequential(nn.Linear(3, 3))
    with il.Probe(net, every=1, auto_step=False) as session:
        net(torch.randn(4, 3))
        net(torch.randn(4, 3))
        session.step()
        net(torch.randn(4, 3))
    report = session.report()
    assert report.steps == [0, 1]
    assert report.history["0"]["act_rms"].shape == (2,)
    assert report["0"].calls == 1
    with pytest.raises(RuntimeError, match="closed"):
        session.step()


def test_bad_arguments_raise_errors_that_name_them() -> None:
    net = nn.Sequential(nn.Linear(3, 3))
    x = torch.randn(4, 3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        il.audit("net", x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be one of keep, train, eval"):
        il.audit(net, x, mode="test")
    with pytest.raises(TypeError, match="batch must be a tensor"):
        il.audit(net, 3.0)
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        il.audit(net, x, loss_fn=lambda out: out)
    with pytest.raises(ValueError, match="fits neither cross-entropy"):
        il.audit(net, x, target=torch.randn(4, 7))
    with pytest.raises(ValueError, match="expected\\['0.weight'\\] must be >= 0"):
        il.audit(net, x, expected={"0.weight": -1.0})
    with pytest.raises(TypeError, match="expected must be a mapping"):
        il.audit(net, x, expected=[0.1])
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        il.Probe(net, every=0)
    with pytest.raises(ValueError, match="history must be an int >= 1"):
        il.Probe(net, history=0)
    with pytest.raises(TypeError, match="optimizer must be"):
        il.Probe(net, optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank_samples"):
        il.audit(net, x, rank_samples=-1)
    assert _hooks(net) == 0


def test_probe_is_a_class_and_calling_the_package_still_works_with_a_deprecation_warning() -> None:
    import initlab.probe as package

    assert il.probe is package and package.probe is package and il.Probe is package.Probe
    net = nn.Sequential(nn.Linear(2, 2))
    with il.Probe(net, every=1) as session:
        net(torch.randn(3, 2))
    assert isinstance(session, Probe) and session.report().steps == [0]
    with pytest.warns(DeprecationWarning, match="initlab.Probe"), il.probe(net, every=1) as old:
        net(torch.randn(3, 2))
    assert isinstance(old, Probe) and old.report().steps == [0]
    with pytest.warns(DeprecationWarning, match="by position"):
        positional = il.Probe(net, 3)
    assert positional.every == 3


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.up = nn.ConvTranspose1d(8, 4, 3)
        self.act = nn.GELU()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.act(self.up(self.embed(tokens).transpose(1, 2)))


def test_bfloat16_models_and_integer_inputs_are_measured_without_errors() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4)).to(torch.bfloat16)
    x = torch.randn(32, 16).to(torch.bfloat16)
    report = il.audit(net, x, target=torch.randint(0, 4, (32,)))
    reference = net[0](x).float()
    assert report["0"].act_std == pytest.approx(reference.std(unbiased=False).item(), rel=1e-3)
    assert report["2"].params[0].grad_norm is not None
    tokens = il.audit(TokenNet(), torch.randint(0, 20, (6, 10)))
    assert tokens.names == ["embed", "up", "act"]
    assert tokens["up"].shape == (6, 4, 12) and tokens["up"].symmetric_groups == ()
    assert tokens["act"].activation == "gelu"



@pytest.mark.parametrize("size", [10, 40_000])
@pytest.mark.parametrize("poison", [False, True])
def test_update_size_is_the_sum_of_squares_of_the_finite_changes(size: int, poison: bool) -> None:
    # 40 000 values take the compiled one-pass route on the CPU (when numba is installed), 10 the PyTorch one
    from initlab.probe.collector import PARAM, ParamState

    generator = torch.Generator().manual_seed(1)
    parameter = nn.Parameter(torch.randn(size, generator=generator))
    state = ParamState("w", "weight", parameter, torch.zeros(PARAM.SIZE, dtype=torch.float64))
    before = parameter.detach().clone()
    state.snapshot = before.clone()
    with torch.no_grad():
        parameter.add_(torch.randn(size, generator=generator), alpha=0.01)
        if poison:
            parameter[:3] = torch.tensor([math.nan, math.inf, -math.inf])
    state.add_update()
    change = (before - parameter.detach()).double()
    expected = float(change[torch.isfinite(change)].square().sum())
    assert state.acc[PARAM.UPDATES].item() == 1.0
    assert state.acc[PARAM.UPDATE_SUMSQ].item() == pytest.approx(expected, rel=1e-5)
    assert state.snapshot is None


def test_parameter_snapshots_reuse_their_buffers_within_the_budget_measure_the_same_updates_and_go_on_close(monkeypatch) -> None:
    from initlab.probe import collector

    def run(budget: int) -> tuple[list[float], dict[str, list[int]]]:
        monkeypatch.setattr(collector, "SNAPSHOT_KEEP_BYTES", budget)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        x, y = torch.randn(16, 32), torch.randint(0, 8, (16,))
        buffers: dict[str, list[int]] = {}
        with il.Probe(net, every=1, optimizer=optimizer) as session:
            for _ in range(3):
                optimizer.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                optimizer.step()
                for row in session._collector.rows:
                    for param in row.params:
                        buffers.setdefault(param.name, []).append(-1 if param.spare is None else param.spare.data_ptr())
            ratios = [row.update_weight_ratio for row in session.report().rows if row.update_weight_ratio is not None]
        # a closed probe holds no snapshot buffer, and its report stays readable
        params = [param for row in session._collector.rows for param in row.params]
        assert all(param.spare is None and param.snapshot is None for param in params)
        assert session.report().steps == [0, 1, 2]
        return ratios, buffers

    cloned, none_kept = run(0)
    kept, all_kept = run(1 << 30)
    first_only, partly = run(32 * 64 * 4)  # room for the first weight alone
    assert len(cloned) == 2 and cloned == kept == first_only  # the same update sizes, bit for bit
    assert all(pointers == [-1, -1, -1] for pointers in none_kept.values())
    assert all(len(set(pointers)) == 1 and pointers[0] != -1 for pointers in all_kept.values())
    assert partly["0.weight"][0] != -1 and len(set(partly["0.weight"])) == 1
    assert partly["2.weight"] == [-1, -1, -1]

