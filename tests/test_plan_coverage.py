"""Plans never skip a parameter silently: layouts of third-party layers, norms found by behaviour, warnings, strict."""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import initlab as il
from initlab.cli import describe_cmd
from initlab.cli.main import main as cli_main
from initlab.plan.layouts import normalising_role
from recipe_models import hf_bert, hf_gpt2, hf_llama

transformers = pytest.importorskip("transformers")

SENTINEL = 7.0
# a measured std within this many standard errors of the promised one; the standard error of a normal
# sample's std is std / sqrt(2 n)
Z = 5.0


def _quiet(model: nn.Module, plan: str, **options: object) -> il.InitReport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return il.init_model(model, plan, **options)  # type: ignore[arg-type]


def _fill_sentinel(model: nn.Module) -> None:
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(SENTINEL)


def _assert_std(values: torch.Tensor, std: float) -> None:
    n = values.numel()
    assert abs(values.std().item() - std) < Z * std / math.sqrt(2 * n)


# -- the regression: a plain plan on Hugging Face models ------------------------------------------
def test_a_plain_normal_plan_fills_every_gpt2_conv1d_with_fans_read_as_linear_t() -> None:
    model = hf_gpt2()
    _fill_sentinel(model)
    report = il.init_model(model, "normal(std=0.02)")
    assert report.warnings == []
    conv1d = [name for name, m in model.named_modules() if type(m).__name__ == "Conv1D"]
    assert len(conv1d) == 8
    for name in conv1d:
        row = report[f"{name}.weight"]
        nx, nf = model.get_submodule(name).weight.shape
        assert row.status == "initialized" and row.layout == "linear_t"
        assert (row.fan_in, row.fan_out) == (nx, nf)
        _assert_std(model.get_submodule(name).weight.detach(), 0.02)
        assert report[f"{name}.bias"].fan_in == nx  # a registered layer's bias takes its weight's fans
    assert not any(bool((p == SENTINEL).any()) for p in model.parameters())


def test_a_plain_normal_plan_sets_llama_rmsnorm_weights_to_one() -> None:
    model = hf_llama()
    _fill_sentinel(model)
    report = il.init_model(model, "normal(std=0.02)")
    assert report.warnings == []
    norms = [name for name, m in model.named_modules() if type(m).__name__ == "LlamaRMSNorm"]
    assert len(norms) == 5
    for name in norms:
        assert report[f"{name}.weight"].rule == "norm_scale=ones"
        assert torch.equal(model.get_submodule(name).weight.detach(), torch.ones(64))


def test_he_normal_on_gpt2_reads_conv1d_fans_from_dim_0() -> None:
    model = hf_gpt2()
    _quiet(model, "he_normal")
    # mlp.c_proj is (in=256, out=64): He normal std sqrt(2/256), not sqrt(2/64)
    _assert_std(model.transformer.h[0].mlp.c_proj.weight.detach(), math.sqrt(2 / 256))


# -- warnings and strict ------------------------------------------------------------------------
class Gated(nn.Module):
    """A layer initlab has no layout for: a 2-D kernel and a 3-D tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(8, 16))
        self.taps = nn.Parameter(torch.empty(2, 4, 4))


def _gated_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), Gated(), nn.Linear(8, 2))


def test_parameters_no_rule_covers_are_listed_with_the_way_to_cover_them() -> None:
    model = _gated_model()
    with pytest.warns(UserWarning, match="matched no rule"):
        report = il.init_model(model, "he")
    found = [w for w in report.warnings if "Gated.kernel" in w]
    assert len(found) == 1 and "1.kernel" in found[0] and "register_layout(Gated, 'kernel'" in found[0]
    assert any("1.taps" in w for w in report.warnings)
    assert {row.name for row in report.untouched} == {"1.kernel", "1.taps"}


def test_strict_raises_before_anything_is_written() -> None:
    model = _gated_model()
    _fill_sentinel(model)
    with pytest.raises(ValueError, match=r"strict=True.*1\.kernel"):
        il.init_model(model, "he", strict=True)
    assert all(bool((p == SENTINEL).all()) for p in model.parameters())
    with pytest.raises(TypeError, match="strict must be True or False"):
        il.init_model(model, "he", strict="yes")  # type: ignore[arg-type]


def test_strict_passes_when_every_parameter_is_covered() -> None:
    model = _gated_model()
    report = il.init_model(model, "he; 1.kernel=normal(std=0.1); 1.taps=zeros", strict=True)
    assert report.untouched == [] and report.warnings == []


def test_a_fan_rule_on_an_unknown_layout_is_a_guess_the_report_names() -> None:
    model = _gated_model()
    report = _quiet(model, "he; name:1.kernel=he_normal; 1.taps=zeros")
    assert any("layout of Gated.kernel is unknown" in w and "1.kernel" in w for w in report.warnings)
    with pytest.raises(ValueError, match="layout of Gated.kernel is unknown"):
        il.init_model(model, "he; name:1.kernel=he_normal; 1.taps=zeros", strict=True)
    with pytest.raises(ValueError, match=r"register_layout\(Gated, 'taps'"):
        il.init_model(model, "he; 1.kernel=zeros; 1.taps=he_normal")


# -- register_layout ----------------------------------------------------------------------------
class TransposedLinear(nn.Module):
    """y = x @ kernel + offset, kernel stored (in, out)."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(fan_in, fan_out))
        self.offset = nn.Parameter(torch.empty(fan_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.kernel + self.offset


class Gain(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.empty(size))


def test_register_layout_gives_a_custom_layer_its_fans_and_role() -> None:
    il.register_layout(TransposedLinear, "kernel", "linear_t")
    il.register_layout(TransposedLinear, "offset", "vector", role="bias")
    il.register_layout(Gain, "gain", "vector", role="norm_scale")
    model = nn.Sequential(TransposedLinear(400, 50), Gain(50))
    report = il.init_model(model, "lecun_normal", strict=True)
    assert (report["0.kernel"].fan_in, report["0.kernel"].fan_out) == (400, 50)
    _assert_std(model[0].kernel.detach(), 1 / math.sqrt(400))
    assert torch.equal(model[0].offset.detach(), torch.zeros(50))
    assert torch.equal(model[1].gain.detach(), torch.ones(50))


def test_register_layout_refuses_what_it_cannot_use() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module subclass"):
        il.register_layout(int, "weight", "linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout must be one of"):
        il.register_layout(Gain, "gain", "transposed")
    with pytest.raises(ValueError, match="data flow"):
        il.register_layout(Gain, "gain", "vector", role="output")
    with pytest.raises(ValueError, match="needs role="):
        il.register_layout(Gain, "gain", "vector")
    with pytest.raises(ValueError, match="param_name"):
        il.register_layout(Gain, "not a name", "linear")


def test_linear_t_makes_orthogonal_fill_the_columns() -> None:
    weight = il.orthogonal().sample((64, 32), layout="linear_t", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(weight.T @ weight, torch.eye(32), atol=1e-5)


# -- normalising modules, by behaviour ------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class GemmaNorm(RMSNorm):
    """(1 + weight) * normalised: the neutral weight is 0, so ones would be wrong."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class AffineLayerNorm(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Scale(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def test_modules_that_normalise_are_found_by_behaviour_and_others_are_not() -> None:
    assert normalising_role(RMSNorm(16), "weight") == "norm_scale"
    assert normalising_role(AffineLayerNorm(16), "weight") == "norm_scale"
    assert normalising_role(AffineLayerNorm(16), "bias") == "norm_shift"
    assert normalising_role(GemmaNorm(16), "weight") is None
    assert normalising_role(Scale(16), "weight") is None
    with torch.device("meta"):
        on_meta = RMSNorm(16)
    assert normalising_role(on_meta, "weight") == "norm_scale"


def test_a_gemma_style_norm_is_listed_not_set_to_one() -> None:
    model = nn.Sequential(nn.Linear(8, 8), GemmaNorm(8))
    report = _quiet(model, "he")
    assert report["1.weight"].status == "untouched"
    assert any("GemmaNorm.weight" in w for w in report.warnings)


# -- the data flow of Hugging Face models ------------------------------------------------------------
@pytest.mark.parametrize(("build", "output", "last"), [
    (hf_gpt2, "lm_head", "transformer.h.0.attn.c_proj.weight"),
    (hf_llama, "lm_head", "model.layers.0.mlp.down_proj.weight"),
    (hf_bert, "cls.predictions.decoder", "bert.encoder.layer.0.output.dense.weight"),
])
def test_hf_models_get_a_recorded_flow_from_their_dummy_inputs(build: object, output: str, last: str) -> None:
    model = build()  # type: ignore[operator]
    report = _quiet(model, "fixup")
    assert report.flow == "recorded" and report.output_layer == output
    assert report[last].rule == "fixup: residual_last=zeros"
    assert not any("no residual branches" in w for w in report.warnings)
    plain = _quiet(model, "normal(std=0.02)")  # no rule reads the flow: the report says so
    assert plain.flow is None and "flow: not read (no rule of this plan needs it)" in plain.table()


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.out(torch.relu(self.inp(x)))


def test_a_flow_read_from_registration_order_says_why() -> None:
    report = _quiet(Untraceable(), "he; output=zeros")
    assert report.flow == "static"
    assert any("torch.fx could not trace" in w and "registration order" in w for w in report.warnings)


# -- the CLI ----------------------------------------------------------------------------------------
FACTORY = '''
import torch
import torch.nn as nn

class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernel = nn.Parameter(torch.zeros(8, 8))

    def forward(self, x):
        return x @ self.kernel

def make():
    return nn.Sequential(nn.Linear(8, 8), Gated())
'''


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    describe_cmd.add_arguments(parser)
    return describe_cmd.run(parser.parse_args(argv))


def test_describe_prints_the_warnings_and_strict_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "coverage_cli_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _run(["coverage_cli_models:make", "--plan", "he"]) == 0
    assert "warning: 1 parameter(s) of Gated.kernel" in capsys.readouterr().out
    with pytest.raises(ValueError, match="strict=True"):
        _run(["coverage_cli_models:make", "--plan", "he", "--strict"])


def test_the_command_line_refuses_a_strict_plan_in_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "coverage_cli_strict.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_main(["describe", "coverage_cli_strict:make", "--plan", "he", "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = captured.err.strip().splitlines()
    assert len(error_lines) == 1 and "would skip parameters" in error_lines[0] and "1.kernel" in error_lines[0]


def test_describe_plan_explains_a_recipe_with_its_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["describe", "--plan", "gpt2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("gpt2: ") and "0.02/sqrt(2 n_layer)" in text
    assert "modeling_gpt2.py" in text and "nanoGPT@3adf61e154c3fe3fca428ad6bc3818b27a3b8291" in text
    assert "transformers#47458" in text
    assert cli_main(["describe", "--plan", "gpt2(n_layer=3)"]) == 0
    assert f"{0.02 / math.sqrt(6)!r}" in capsys.readouterr().out
