"""The ``initlab theory`` and ``initlab lsuv`` commands."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from initlab.cli import lsuv_cmd, theory_cmd


def _run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_theory_command_prints_fixed_point_chi1_depth_scales_and_draws_the_diagram(tmp_path, capsys) -> None:
    path = tmp_path / "phase.png"
    assert _run(theory_cmd, ["--activation", "tanh", "--sigma-b2", "0.05", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    for label in ("q*", "chi1", "depth scale q", "depth scale c", "gradient scale", "critical sigma_w2", "phase diagram"):
        assert label in out
    assert "1.76095" in out  # the critical sigma_w2 of tanh at sigma_b2 = 0.05
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_theory_command_json_reports_the_given_point(capsys) -> None:
    assert _run(theory_cmd, ["--activation", "relu", "--sigma-b2", "0.0", "--sigma-w2", "2.0", "--no-plot", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chi1"] == pytest.approx(1.0, rel=1e-12)
    assert data["phase"] == "critical" and data["sigma_w2_source"] == "given"


def test_theory_command_names_the_range_when_no_fixed_point_exists() -> None:
    with pytest.raises(ValueError, match="range searched"):
        _run(theory_cmd, ["--activation", "relu", "--sigma-b2", "0.0", "--sigma-w2", "3.0", "--no-plot"])


@pytest.mark.parametrize("method", ["lsuv", "wn"])
def test_lsuv_command_initializes_a_model_spec_on_digits_and_saves_it(tmp_path, capsys, method: str) -> None:
    path = tmp_path / "model.pt"
    argv = ["mlp:*-32x4-*:tanh", "--data", "digits", "--method", method, "--batch-size", "128", "--out", str(path), "--json"]
    assert _run(lsuv_cmd, argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == method and len(report["rows"]) == 5
    state = torch.load(path)
    assert all(torch.isfinite(value).all() for value in state.values())


def test_theory_writes_a_figure_only_where_out_says(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(theory_cmd, ["--activation", "tanh"]) == 0
    assert "phase diagram:" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing written unasked
    assert _run(theory_cmd, ["--activation", "tanh", "--out", "figures"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["figures"]
    assert (tmp_path / "figures" / "phase_diagram_tanh.png").read_bytes()[:4] == b"\x89PNG"


def test_lsuv_takes_digits_by_default_as_audit_does(capsys) -> None:
    assert _run(lsuv_cmd, ["mlp:*-32x3-*:tanh", "--batch-size", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]
