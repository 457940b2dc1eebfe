"""``initlab audit MODEL_SPEC --plan P --data D``: the table, the verdicts, the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from initlab.cli.main import main

SPEC = "mlp:*-48x4-*:tanh"


def test_audit_prints_vanishing_layers_of_small_random_init_and_writes_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    code = main(
        [
            "audit",
            SPEC,
            "--plan",
            "small_random",
            "--data",
            "digits",
            "--batch-size",
            "64",
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "vanishing" in printed and "hidden.1.act" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    verdicts = [row["verdict"] for row in report["rows"]]
    # 0.01 * sqrt(48) = 0.07 per layer: every layer after the first is below 1/10 of the input
    assert verdicts[2:] == ["vanishing"] * (len(verdicts) - 2)
    assert report["rows"][0]["expected_std"] is not None  # from the plan's InitReport
    for name in ("audit.png", "histograms.png", "init.json"):
        assert (tmp_path / name).stat().st_size > 1000


def test_audit_strict_exit_status_follows_the_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "audit",
                SPEC,
                "--plan",
                "small_random",
                "--data",
                "digits",
                "--batch-size",
                "32",
                "--strict",
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "audit",
                SPEC,
                "--plan",
                "lecun",
                "--data",
                "digits",
                "--batch-size",
                "32",
                "--strict",
                "--json",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    data = json.loads(printed[printed.index('{\n "title"') :])
    assert {row["verdict"] for row in data["rows"]} == {"healthy"}


def test_audit_compares_plans_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    code = main(
        [
            "audit",
            "mlp:*-32x3-*:relu",
            "--plan",
            "he",
            "--compare",
            "zeros",
            "--data",
            "circles",
            "--batch-size",
            "32",
            "--out",
            str(tmp_path),
            "--format",
            "svg",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "plan zeros" in printed and "symmetric" in printed
    assert "per-layer histograms under 2 inits" in (tmp_path / "compare.svg").read_text()


def test_audit_rejects_bad_arguments_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", SPEC, "--data", "digits", "--batch-size", "1"]) == 2
    assert "--batch-size must be >= 2" in capsys.readouterr().err
    assert main(["audit", SPEC, "--data", "no-such-data"]) == 2
    assert "unknown dataset" in capsys.readouterr().err
