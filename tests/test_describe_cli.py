"""``initlab describe``: a scheme on a shape, a plan's rules, a plan on a model spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from initlab.cli import describe_cmd

FACTORY = '''
import torch.nn as nn

def make():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
'''


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    describe_cmd.add_arguments(parser)
    return describe_cmd.run(parser.parse_args(argv))


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "describe_cli_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "describe_cli_models:make"


def test_describe_a_scheme_prints_fans_and_std(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["he_normal", "--shape", "256,512", "--layout", "linear"]) == 0
    out = capsys.readouterr().out
    assert "fan_in=512 fan_out=256" in out and "0.0625" in out


def test_describe_a_framework_scheme_is_a_scheme_not_a_module_factory(capsys: pytest.CaptureFixture[str]) -> None:
    # keras:he_normal is Keras' truncated He normal on Keras' (in, out) kernel, never the module keras
    assert _run(["keras:he_normal", "--shape", "64,32", "--layout", "keras"]) == 0
    out = capsys.readouterr().out
    assert "truncated_normal" in out and "fan_in=64 fan_out=32" in out


def test_describe_a_model_factory_prints_the_init_report(factory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([factory, "--plan", "he_normal; output=zeros", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "0.weight" in out and "output=zeros" in out and "seed: 3" in out


def test_describe_json_lists_every_parameter(factory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([factory, "--plan", "auto", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in data["rows"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert data["rows"][0]["gain"] == pytest.approx(2**0.5)


def test_describe_a_named_plan_lists_its_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["fixup"]) == 0
    out = capsys.readouterr().out
    assert "residual_last" in out and "zeros" in out


def test_describe_bad_input_raises_a_clear_error(factory: str) -> None:
    with pytest.raises(ValueError, match="is not a role"):
        _run([factory, "--plan", "he; bogus=zeros"])
    with pytest.raises(ValueError, match="--shape must be"):
        _run(["he_normal", "--shape", "a,b"])
    with pytest.raises(ValueError, match="factory"):
        _run(["no_such_module_xyz:make", "--plan", "he"])


def test_describe_a_model_draws_from_counter_streams_unless_told_torch(factory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([factory, "--plan", "he", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rng"].startswith("counter")
    assert _run([factory, "--plan", "he", "--json", "--rng", "torch"]) == 0
    assert json.loads(capsys.readouterr().out)["rng"].startswith("torch")
