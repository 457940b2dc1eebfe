"""Input that used to be taken silently, or to end in a traceback, is a ValueError/TypeError that names the
argument and what is accepted (CLI: one line, exit 2)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import initlab
from initlab.cli.main import main
from initlab.plan import Plan, init_model
from initlab.schemes.fans import Fans


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr; return it."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# ---------------------------------------------------------------- a key given twice


@pytest.mark.parametrize("text", ["he_normal(mode=fan_in, mode=fan_out)", "orthogonal(gain=1.0, gain=2.0)"])
def test_a_parameter_given_twice_in_a_scheme_string_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="twice"):
        initlab.get(text)


@pytest.mark.parametrize("text", ["he_normal; bias=zeros; bias=ones", "he; Linear.bias=zeros; Linear.bias = ones",
                                  "he; stage=lsuv(tol=0.1, tol=0.2)"])
def test_a_key_given_twice_in_a_plan_string_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="twice"):
        Plan.parse(text)


@pytest.mark.parametrize(("suffix", "text"), [
    (".yaml", "default: he_normal\nbias: zeros\nbias: ones\n"),
    (".json", '{"default": "he_normal", "bias": "zeros", "bias": "ones"}'),
    (".toml", 'default = "he_normal"\nbias = "zeros"\nbias = "ones"\n'),
])
def test_a_key_given_twice_in_a_plan_file_is_refused_with_the_file_named(tmp_path: Path, capsys, suffix: str,
                                                                         text: str) -> None:
    path = tmp_path / f"plan{suffix}"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Plan.from_file(path)
    assert str(path) in _cli_error(capsys, ["describe", "mlp:4-8-2:relu", "--plan", str(path)])


@pytest.mark.parametrize("text", ["default: he_normal\nbias: [zeros\n", "default: !!python/object:os.system ls\n",
                                  "default: !!python/name:os.system\n", "\xff\xfe"])
def test_malformed_yaml_and_yaml_tags_are_one_line_naming_the_file(tmp_path: Path, capsys, text: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(text.encode("latin-1"))
    error = _cli_error(capsys, ["describe", "mlp:4-8-2:relu", "--plan", str(path)])
    assert f"plan file {str(path)!r} cannot be read" in error


# ---------------------------------------------------------------- numbers that silently went wrong


@pytest.mark.parametrize(("make", "message"), [
    (lambda: initlab.get("normal(std=1e308)").sample((4, 4)), r"std 1e\+308 overflow float32"),
    (lambda: initlab.get({"name": "uniform", "a": -1e308, "b": 1e308}).sample((4,)), "overflow float32"),
    (lambda: initlab.get({"name": "normal", "std": 1e5})(torch.empty(4, dtype=torch.float16)), "overflow float16"),
    (lambda: initlab.orthogonal(gain=1e308).sample((4, 4)), "overflow float32"),
    (lambda: initlab.he_normal().sample((4, 4), layout=Fans(0, 0, 1)), "fan_in is 0 for a tensor of shape"),
    (lambda: initlab.glorot_uniform().sample((3, 2), layout=Fans(0, 0, 1)), "fan_avg is 0"),
    (lambda: Fans(-1, 3, 1), "fan_in must be an int >= 0, got -1"),
    (lambda: initlab.fans((4, 4), "conv", groups=0), "groups must be an int >= 1"),
    (lambda: initlab.gain("leaky_relu", math.nan), "param must be a finite number, got nan"),
    (lambda: initlab.gain("leaky_relu", math.inf, convention="torch"), "param must be a finite number"),
    (lambda: initlab.gain(nn.LeakyReLU(math.nan)), "negative_slope must be a finite number"),
])
def test_parameters_that_would_fill_inf_or_zeros_or_nan_are_a_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("shape", [(4.5, 4), ("4", 4), (True, 4), "44", 4])
def test_a_shape_that_is_not_integers_is_a_type_error(shape) -> None:
    with pytest.raises(TypeError, match="shape must be a sequence of ints"):
        initlab.he_normal().sample(shape)


def test_a_plan_that_would_fill_inf_is_refused_before_the_first_write() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).to(torch.float16))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"cannot initialise 1\.weight .*overflow float16"):
        init_model(model, "normal(std=3e4)")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_audit_of_an_empty_batch_is_a_value_error_not_healthy() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
    with pytest.raises(ValueError, match="batch holds 0 samples"):
        initlab.audit(model, torch.zeros(0, 3))


def test_expected_stds_for_names_the_model_does_not_have_are_a_value_error() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
    with pytest.raises(ValueError, match="'no_such_layer' are not parameters or layers of the model"):
        initlab.audit(model, torch.randn(8, 3), expected={"no_such_layer": 1.0})
    report = initlab.audit(model, torch.randn(8, 3), expected={"0.weight": 0.5, "1": 0.3})  # real names still work
    assert report.rows[0].expected_std is not None


def test_cli_batch_size_zero_and_seed_counts_too_large_are_one_line_errors(tmp_path: Path, capsys) -> None:
    base = ["compare", "--dataset", "circles", "--seeds", "1", "--steps", "2", "--executor", "inline", "--quiet"]
    assert "--batch-size takes a positive int" in _cli_error(capsys, [*base, "--batch-size", "0",
                                                                         "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit):
        main([*base[:3], "--seeds", "99999999999999999999", "--out", str(tmp_path / "b")])
    assert "--seeds takes a count" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_output_files_that_cannot_be_written_are_one_line_errors(tmp_path: Path, capsys) -> None:
    error = _cli_error(capsys, ["lsuv", "mlp:*-8-*:tanh", "--data", "circles", "--out", "/proc/initlab/x.pt"])
    assert "--out '/proc/initlab/x.pt'" in error
    (tmp_path / "results.json").write_text('{"kind": "run"}')
    error = _cli_error(capsys, ["report", str(tmp_path), "--output", "/proc/initlab-report.html"])
    assert "cannot write the report to '/proc/initlab-report.html'" in error
