"""The doctor's own contract: it reads without writing, reports by severity, and each check fires on its cause only."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch
from torch import nn

import initlab
from initlab.diagnosis import doctor
from initlab.plan import init_model


def mlp(depth: int = 3, width: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def test_top_level_names_reach_the_doctor_and_stay_functions_after_the_package_is_imported() -> None:
    package = importlib.import_module("initlab.diagnosis")
    from initlab.diagnosis import fingerprint

    assert initlab.fingerprint is fingerprint
    assert initlab.doctor is doctor
    assert initlab.diagnosis is package and initlab.doctor is not package


def test_doctor_writes_nothing() -> None:
    torch.manual_seed(0)
    model = mlp()
    model.eval()
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    doctor(model, torch.randn(16, 64))
    assert not model.training
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_meta_models_get_structure_checks_and_stay_on_meta() -> None:
    with torch.device("meta"):
        model = mlp(depth=4, width=1024)
    report = doctor(model)
    assert report.structure_only and report.layers == ()
    assert all(p.is_meta for p in model.parameters())


def test_nonfinite_values_are_counted_exactly() -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight[0, :3] = float("nan")
        model[2].weight[1, 0] = float("inf")
    (finding,) = doctor(model).of("nonfinite")
    assert finding.severity == "error" and finding.evidence["nonfinite"] == 4


def test_half_precision_weights_are_not_mistaken_for_raw_memory() -> None:
    torch.manual_seed(0)
    model = mlp(width=256).half()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
    summaries = [f.code for f in doctor(model).findings]
    assert "uninitialized_memory" not in summaries


def test_partly_duplicated_units_are_a_warning_fully_constant_an_error() -> None:
    torch.manual_seed(0)
    model = mlp()
    with torch.no_grad():
        model[2].weight[5] = model[2].weight[3]
    (finding,) = doctor(model).of("symmetric_units")
    assert finding.severity == "warning" and finding.evidence["duplicated_units"] == 2
    nn.init.constant_(model[2].weight, 0.1)
    assert [f.severity for f in doctor(model).of("constant_weights")] == ["error"]


def test_equal_columns_make_a_rank_one_layer() -> None:
    torch.manual_seed(0)
    model = mlp()
    with torch.no_grad():
        model[2].weight.copy_(torch.randn(64, 1).expand(64, 64))
    (finding,) = doctor(model).of("symmetric_inputs")
    assert finding.severity == "warning" and finding.evidence["inputs"] == 64


def test_zero_output_layer_is_a_known_design_not_an_error() -> None:
    torch.manual_seed(0)
    model = mlp()
    init_model(model, plan="he; output=zeros", seed=0)
    report = doctor(model)
    assert [(f.code, f.severity) for f in report.findings] == [("zero_output", "info")]


def test_large_output_layer_is_a_warning_and_he_on_the_head_is_not() -> None:
    torch.manual_seed(0)
    model = mlp(width=256)
    init_model(model, plan="he", seed=0)
    assert doctor(model).of("large_output_init") == []
    nn.init.normal_(model[-1].weight, std=1.0)
    (finding,) = doctor(model).of("large_output_init")
    assert finding.evidence["predicted_logit_std"] > 10 and finding.fix == "6.weight=lecun_normal"


def test_vanishing_signal_reports_the_depth_and_measured_values_with_a_batch() -> None:
    torch.manual_seed(0)
    model = mlp(depth=12, width=128)
    init_model(model, plan="small_random", seed=0)
    report = doctor(model, torch.randn(64, 128))
    (finding,) = report.of("vanishing_signal")
    assert finding.evidence["depth"] == 2  # 0.01 * sqrt(128 / 2) = 0.08 per layer
    assert all(row.measured_std is not None for row in report.layers)
    first = report.layers[0]
    assert first.measured_std == pytest.approx(first.predicted_std, rel=0.1)


def test_conv_transpose_with_torch_defaults_is_only_noted() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose2d(64, 16, 4, stride=2), nn.ReLU(), nn.Conv2d(16, 3, 3))
    findings = doctor(model).of("fan_convention")
    assert [f.severity for f in findings] == ["info"]


def test_depth_scaled_residual_projections_pass_and_unscaled_shallow_ones_are_info() -> None:
    from doctor_fixtures import TinyGPT, gpt_init

    torch.manual_seed(0)
    model = TinyGPT(layers=8)
    gpt_init(model)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * 8))
    assert doctor(model).of("residual_not_scaled") == []
    shallow = TinyGPT(layers=3)
    gpt_init(shallow)
    assert {f.severity for f in doctor(shallow).of("residual_not_scaled")} == {"info"}


def test_a_bare_state_dict_gets_value_checks_with_unknown_roles() -> None:
    report = doctor({"w": torch.zeros(8, 8), "v": torch.randn(8, 8)})
    assert [(f.code, f.severity) for f in report.findings] == [("zero_weights", "warning")]


def test_report_is_sorted_by_severity_and_serialises() -> None:
    torch.manual_seed(0)
    model = mlp(depth=12, width=64)
    init_model(model, plan="small_random", seed=0)
    nn.init.zeros_(model[4].weight)
    report = doctor(model)
    ranks = [("error", "warning", "info").index(f.severity) for f in report.findings]
    assert ranks == sorted(ranks) and report.worst == "error"
    data = json.loads(report.to_json())
    assert data["counts"]["error"] == len(report.errors)
    assert "zero_weights" in report.table()


def test_weight_norm_in_both_forms_is_read_and_lazy_modules_are_refused() -> None:
    torch.manual_seed(0)
    with pytest.warns(FutureWarning):
        hooked = nn.Sequential(nn.utils.weight_norm(nn.Linear(8, 8)), nn.ReLU(), nn.Linear(8, 2))
    assert doctor(hooked).parameters_checked == 5
    parametrized = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(8, 8)), nn.ReLU(), nn.Linear(8, 2))
    assert [row.name for row in doctor(parametrized).layers] == ["0", "2"]
    with pytest.raises(ValueError, match="lazy"):
        doctor(nn.Sequential(nn.LazyLinear(4)))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        doctor("not a model")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        doctor(mlp(), sample_size=3)
    with pytest.raises(ValueError):
        doctor(mlp(), seed=-1)
    with pytest.raises(TypeError):
        doctor({"w": [1, 2]})  # type: ignore[dict-item]
