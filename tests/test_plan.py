"""init_model: seeding, skipping, atomicity, autograd, parametrizations, stages, bad input."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

import initlab
from initlab.plan import InitReport, init_model, register_stage
from initlab.rng import Keyed, derive_generator


def _quiet(model: nn.Module, plan: object = "he", seed: int = 0, **options: object) -> InitReport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return init_model(model, plan, seed, **options)  # type: ignore[arg-type]


class Three(nn.Module):
    def __init__(self, extra: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        if extra:
            self.extra = nn.Linear(32, 32)
        self.hidden = nn.Linear(32, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        if hasattr(self, "extra"):
            x = torch.relu(self.extra(x))
        return self.out(torch.relu(self.hidden(x)))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_inserting_a_layer_leaves_the_other_layers_values_bit_for_bit() -> None:
    plain, extended = Three(), Three(extra=True)
    _quiet(plain, "he", 3)
    _quiet(extended, "he", 3)
    for name, value in plain.state_dict().items():
        assert torch.equal(value, extended.state_dict()[name]), name


def test_inserting_a_layer_keeps_values_with_the_counter_stream_too() -> None:
    pytest.importorskip("initlab.rng", reason="counter streams live in initlab.rng")
    if not hasattr(initlab.rng, "Keyed"):
        pytest.skip("initlab.rng.Keyed is not available")
    plain, extended = Three(), Three(extra=True)
    _quiet(plain, "he", 3, rng="counter")
    _quiet(extended, "he", 3, rng="counter")
    for name, value in plain.state_dict().items():
        assert torch.equal(value, extended.state_dict()[name]), name


def test_the_counter_stream_gives_each_packed_block_its_own_stream_on_any_device() -> None:
    if not hasattr(initlab.rng, "Keyed"):
        pytest.skip("initlab.rng.Keyed is not available")
    built = nn.LSTM(8, 16)
    with torch.device("meta"):
        on_meta = nn.LSTM(8, 16)
    report = _quiet(built, "lecun_normal", 2, rng="counter")
    _quiet(on_meta, "lecun_normal", 2, rng="counter")
    gates = built.weight_ih_l0.detach().chunk(4)
    assert all(not torch.equal(gates[0], gate) for gate in gates[1:])
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), on_meta.state_dict().values()))
    assert report.rng.startswith("counter (philox4x32-10")


def test_each_parameter_stream_is_derived_from_seed_and_qualified_name() -> None:
    model = Three()
    _quiet(model, "he_normal", 11, rng="torch")
    expected = initlab.he_normal().sample((32, 16), generator=derive_generator(11, "inp.weight"))
    assert torch.equal(model.inp.weight.detach(), expected)
    other = Three()
    _quiet(other, "he_normal", 12, rng="torch")
    assert not torch.equal(other.inp.weight, model.inp.weight)


def test_the_default_stream_is_the_counter_stream_of_seed_and_qualified_name() -> None:
    model = Three()
    report = _quiet(model, "he_normal", 11)
    expected = initlab.he_normal().sample((32, 16), generator=Keyed(11).child("inp.weight"))
    assert torch.equal(model.inp.weight.detach(), expected)
    assert report.rng.startswith("counter")


def test_torch_default_plan_reproduces_reset_parameters_for_the_same_generator() -> None:
    model = nn.Sequential(nn.Linear(20, 30), nn.Conv2d(3, 6, 3))
    _quiet(model, "torch_default", 5, rng="torch")
    reference = nn.Sequential(nn.Linear(20, 30), nn.Conv2d(3, 6, 3))
    with torch.no_grad():
        for name, param in reference.named_parameters():
            generator = derive_generator(5, name)
            if name.endswith("weight"):
                nn.init.kaiming_uniform_(param, a=math.sqrt(5), generator=generator)
            else:
                weight = reference.get_parameter(name.replace("bias", "weight"))
                bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(weight)[0])
                nn.init.uniform_(param, -bound, bound, generator=generator)
    for (name, value), ref in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(value, ref), name


def test_init_model_never_calls_reset_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: nn.Module) -> None:
        raise AssertionError("reset_parameters was called")

    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 8), nn.Conv1d(2, 2, 3), nn.LayerNorm(8), nn.Embedding(4, 8))
    for cls in (nn.Linear, nn.Conv1d, nn.LayerNorm, nn.Embedding):
        monkeypatch.setattr(cls, "reset_parameters", refuse)
    report = _quiet(model, "torch_default")
    assert all(row.status == "initialized" for row in report)
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_frozen_parameters_are_skipped_unless_included() -> None:
    model = Three()
    model.inp.weight.requires_grad_(False)
    before = model.inp.weight.detach().clone()
    report = _quiet(model, "zeros")
    assert report["inp.weight"].status == "frozen"
    assert torch.equal(model.inp.weight, before)
    assert torch.count_nonzero(model.hidden.weight) == 0
    report = _quiet(model, "zeros", include_frozen=True)
    assert report["inp.weight"].status == "initialized"
    assert torch.count_nonzero(model.inp.weight) == 0


def test_non_float_parameters_are_skipped_and_reported() -> None:
    model = Three()
    model.register_parameter("steps", nn.Parameter(torch.arange(4), requires_grad=False))
    report = _quiet(model, "he", include_frozen=True)
    assert report["steps"].status == "non-float"
    assert torch.equal(model.steps, torch.arange(4))


def test_a_model_without_parameters_gives_an_empty_report() -> None:
    report = init_model(nn.Sequential(nn.ReLU(), nn.Flatten()), "auto")
    assert len(report) == 0 and report.warnings == []
    assert "plan: auto" in report.table()


def test_init_under_autograd_records_no_graph() -> None:
    model = Three()
    with torch.enable_grad():
        _quiet(model, "orthogonal")
    for param in model.parameters():
        assert param.is_leaf and param.grad_fn is None and param.grad is None and param.requires_grad


def test_a_failing_rule_leaves_every_parameter_unchanged() -> None:
    model = Three()
    before = _state(model)
    with pytest.raises(ValueError, match="out.bias"):
        _quiet(model, "he_normal; out.bias=orthogonal")
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_a_rule_that_would_change_a_shape_is_refused_before_any_write() -> None:
    model = Three()
    before = _state(model)
    with pytest.raises(ValueError, match=r"change the shape of parameter hidden.weight from \(32, 32\) to \(3, 3\)"):
        _quiet(model, {"default": "he_normal", "hidden.weight": torch.zeros(3, 3)})
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_given_values_and_callables_fill_parameters() -> None:
    model = Three()
    values = torch.full((32, 32), 0.5)
    report = _quiet(model, {"default": "he_normal", "hidden.weight": values,
                            "out.weight": lambda shape, generator: torch.ones(shape)})
    assert torch.equal(model.hidden.weight.detach(), values)
    assert torch.equal(model.out.weight.detach(), torch.ones(4, 32))
    assert report["hidden.weight"].scheme == "given values"


def test_lazy_modules_are_refused_until_materialized() -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="lazy modules.*forward pass"):
        init_model(model, "he")
    model(torch.zeros(1, 5))
    assert _quiet(model, "he")["0.weight"].status == "initialized"


def test_weight_norm_parametrization_keeps_the_planned_effective_weight() -> None:
    plain = nn.Sequential(nn.Linear(200, 100))
    normed = nn.Sequential(parametrizations.weight_norm(nn.Linear(200, 100)))
    _quiet(plain, "he_normal", 4)
    report = _quiet(normed, "he_normal", 4)
    assert torch.allclose(normed[0].weight, plain[0].weight, atol=1e-6)
    row = report["0.weight"]
    assert set(row.aliases) == {"0.parametrizations.weight.original0", "0.parametrizations.weight.original1"}
    assert "parametrized" in row.note


def test_spectral_norm_parametrization_is_written_through_its_right_inverse() -> None:
    model = nn.Sequential(parametrizations.spectral_norm(nn.Linear(64, 64)))
    report = _quiet(model, "orthogonal(gain=3.0)")
    # orthogonal * 3 has every singular value 3; spectral norm divides by the largest one
    singular = torch.linalg.svdvals(model[0].weight.detach())
    assert torch.allclose(singular, torch.ones(64), atol=2e-2)
    assert report["0.weight"].status == "initialized"


def test_hook_based_weight_norm_is_refused_with_the_parametrization_to_use() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nn.Sequential(nn.utils.weight_norm(nn.Linear(4, 4)))
    with pytest.raises(ValueError, match="parametrizations.weight_norm"):
        init_model(model, "he")


def test_untouched_parameters_are_listed_and_an_unmatched_rule_warns() -> None:
    model = Three()
    model.register_parameter("temperature", nn.Parameter(torch.ones(3, 3)))
    with pytest.warns(UserWarning, match="rule Conv=zeros matched no parameter"):
        report = init_model(model, "he; Conv=zeros")
    assert [row.name for row in report.untouched] == ["temperature"]
    assert "no rule matched" in report["temperature"].note


def test_report_converts_to_dict_and_json() -> None:
    report = _quiet(Three(), "he")
    data = report.to_dict()
    assert [row["name"] for row in data["rows"]] == [row.name for row in report]
    assert data["rows"][0]["shape"] == [32, 16]
    import json

    assert json.loads(report.to_json())["plan"] == "he"
    table = report.table()
    assert "inp.weight" in table and "expected_std" in table


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        init_model("model", "he")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rng must be one of torch, counter"):
        init_model(Three(), "he", rng="numpy")
    with pytest.raises(TypeError, match="seed"):
        init_model(Three(), "he", seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="plan must be"):
        init_model(Three(), 3.5)


# -- stages --------------------------------------------------------------------------------------
def _double_weights(model: nn.Module, batch: torch.Tensor, factor: float = 2.0) -> dict[str, float]:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight"):
                param.mul_(factor)
    return {"factor": factor, "batch": float(batch.shape[0])}


def _failing_stage(model: nn.Module, batch: torch.Tensor) -> None:
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(123.0)
    raise RuntimeError("stage failed on purpose")


register_stage("test_double", _double_weights, replace=True)
register_stage("test_failing", _failing_stage, replace=True)


def test_a_registered_stage_runs_after_the_base_rules_and_its_report_lands() -> None:
    base, staged = Three(), Three()
    _quiet(base, "he", 1)
    report = _quiet(staged, "he; stage=test_double(factor=3.0)", 1, batch=torch.zeros(5, 16))
    assert torch.equal(staged.inp.weight, base.inp.weight * 3.0)
    assert report.stage_reports["test_double"] == {"factor": 3.0, "batch": 5.0}
    assert report["inp.weight"].measured_std == pytest.approx(3.0 * base.inp.weight.std(correction=0).item(), rel=1e-4)


def test_a_stage_name_alone_is_a_plan_with_its_base_rules() -> None:
    report = _quiet(Three(), "test_double", 1, batch=torch.zeros(5, 16))
    assert report.plan == "test_double" and "test_double" in report.stage_reports


def test_a_failing_stage_restores_the_parameters() -> None:
    model = Three()
    before = _state(model)
    with pytest.raises(RuntimeError, match="on purpose"):
        _quiet(model, "he; stage=test_failing", batch=torch.zeros(2, 16))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_stages_need_a_batch_and_unknown_stages_are_listed() -> None:
    with pytest.raises(ValueError, match="need batch="):
        init_model(Three(), "he; stage=test_double")
    with pytest.raises(ValueError, match="unknown data-driven stage 'nope'.*test_double"):
        init_model(Three(), "he; stage=nope", batch=torch.zeros(1, 16))


def test_lsuv_plan_is_orthogonal_then_the_lsuv_stage() -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
    batch = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    report = _quiet(model, "lsuv", batch=batch)
    assert "lsuv" in report.stage_reports
    assert report["0.weight"].rule.startswith("lsuv: default orthogonal")
