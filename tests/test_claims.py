"""initlab claims: verdicts come from measurements against stated thresholds, and key claims hold in quick mode."""

from __future__ import annotations

import json
import math

import pytest

from initlab.lab.claims import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Check,
    combine_verdicts,
    get_claim,
    registered_claims,
    run_claims,
)
from initlab.lab.claims.runner import load_run, run_one

CLAIM_IDS = [str(n) for n in range(1, 18)]
REPRODUCTION_IDS = ["he2015", "glorot2010", "dlai-circles", "matmul100", "mup", "residual-zero"]


def test_every_claim_of_the_issue_is_registered_with_a_stable_id() -> None:
    ids = [entry.id for entry in registered_claims()]
    assert ids == CLAIM_IDS + REPRODUCTION_IDS
    for entry in registered_claims():
        assert entry.statement and entry.source and entry.title


def test_claim_ids_accept_padded_and_prefixed_forms() -> None:
    assert get_claim("01").id == "1"
    assert get_claim("c12").id == "12"
    with pytest.raises(ValueError, match="unknown claim id 'nope'"):
        get_claim("nope")


def test_check_status_follows_the_threshold_and_margin() -> None:
    assert Check("x", 0.3, "<", 0.5).status == "pass"
    assert Check("x", 0.7, "<", 0.5).status == "fail"
    assert Check("x", 0.52, "<", 0.5, margin=0.05).status == "unclear"
    assert Check("x", 1.5, "in", (1.0, 2.0)).status == "pass"
    assert Check("x", 2.05, "in", (1.0, 2.0), margin=0.1).status == "unclear"
    assert Check("x", 0.0, "==", 0.0).status == "pass"
    assert Check("x", 1e-15, "==", 0.0).status == "fail"
    assert Check("x", math.nan, ">", 1.0).status == "unclear"
    assert Check("x", math.inf, ">", 1.0, nonfinite_passes=True).status == "pass"


def test_verdict_is_not_supported_when_any_check_fails_and_inconclusive_when_unclear() -> None:
    passing = Check("a", 1.0, ">", 0.0)
    failing = Check("b", -1.0, ">", 0.0)
    unclear = Check("c", 0.01, ">", 0.0, margin=0.1)
    assert combine_verdicts([passing]) == SUPPORTED
    assert combine_verdicts([passing, unclear]) == INCONCLUSIVE
    assert combine_verdicts([passing, unclear, failing]) == NOT_SUPPORTED
    assert combine_verdicts([]) == INCONCLUSIVE


def test_bad_check_arguments_are_rejected_with_the_value_named() -> None:
    with pytest.raises(ValueError, match="op must be one of"):
        Check("x", 1.0, "~", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs threshold=\(low, high\)"):
        Check("x", 1.0, "in", 1.0)
    with pytest.raises(ValueError, match="margin must be"):
        Check("x", 1.0, "<", 1.0, margin=-1.0)


def _checks(result: object) -> dict[str, dict]:
    return {check["label"]: check for check in result.checks}  # type: ignore[attr-defined]


def test_constant_init_keeps_hidden_units_identical_exactly_in_float64() -> None:
    result = run_one("1", quick=True, seed=0, figure_dir=None)
    assert result.verdict == SUPPORTED, result.notes
    checks = _checks(result)
    assert checks["max |W1[i] - W1[0]| over constants 0, 0.5, -0.3"]["value"] == 0.0
    assert checks["smallest distance between two rows of W1, random init"]["value"] > 1e-3


def test_all_zero_tanh_network_gives_hidden_weights_zero_gradient() -> None:
    result = run_one("2", quick=True, seed=0, figure_dir=None)
    assert result.verdict == SUPPORTED, result.notes
    rows = {row["parameter"]: row for row in result.tables["parameters"]}
    assert rows["0.weight"]["max |gradient| over all steps"] == "0"
    assert rows["2.weight"]["max |gradient| over all steps"] == "0"
    assert rows["4.bias"]["moved"] != "0"


def test_hundred_matmuls_overflow_near_layer_28_vanish_with_001_and_hold_with_kaiming() -> None:
    result = run_one("matmul100", quick=True, seed=0, figure_dir=None)
    assert result.verdict == SUPPORTED, result.notes
    checks = _checks(result)
    first_nan = checks["randn: first matmul with a non-finite std"]["value"]
    assert 24 <= first_nan <= 32
    assert checks["randn*0.01: std after 100 matmuls"]["value"] < 1e-30


def test_orthogonal_init_gives_identity_gram_and_unit_jacobian_singular_values() -> None:
    result = run_one("12", quick=True, seed=0, figure_dir=None)
    assert result.verdict == SUPPORTED, result.notes
    checks = _checks(result)
    assert checks["max |W^T W - I|, u of svd(randn)"]["value"] < 1e-12
    assert checks["max |s - 1| over Jacobian singular values, 30 orthogonal layers"]["value"] < 1e-9


def test_dlai_circles_reproduces_the_course_numbers() -> None:
    result = run_one("dlai-circles", quick=True, seed=0, figure_dir=None)
    rows = {row["init"]: row for row in result.tables["runs"]}
    assert rows["zeros"]["final cost"] == f"{math.log(2):.6f}"
    assert float(rows["zeros"]["train accuracy"]) == 0.5
    assert float(rows["He: randn*sqrt(2/n_prev)"]["train accuracy"]) >= 0.95
    assert result.verdict == SUPPORTED


def test_residual_zero_init_is_the_identity_where_he_branches_explode() -> None:
    result = run_one("residual-zero", quick=True, seed=0, figure_dir=None)
    checks = _checks(result)
    assert checks["zero-init branches: max |stack(x) - x|"]["value"] == 0.0
    he = checks["He branches: std out / std in"]["value"]
    assert not math.isfinite(he) or he > 1e6


def test_run_claims_writes_results_json_and_figures(tmp_path) -> None:
    run = run_claims(["matmul100", "9"], quick=True, out_dir=tmp_path)
    assert [r.id for r in run.results] == ["9", "matmul100"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["mode"] == "quick" and len(data["claims"]) == 2
    for item in data["claims"]:
        assert item["figures"], item["id"]
        for name in item["figures"]:
            assert (tmp_path / name).is_file()
    again = load_run(tmp_path)
    assert [r.verdict for r in again.results] == [r.verdict for r in run.results]
    assert "matmul100" in run.table()


def test_a_failing_experiment_becomes_an_inconclusive_row_with_its_error(monkeypatch) -> None:
    from initlab.lab.claims import base

    entry = base.get_claim("matmul100")

    def broken(ctx: base.Context) -> base.Outcome:
        raise RuntimeError("boom")

    monkeypatch.setitem(base._REGISTRY, "matmul100", base.Claim(
        entry.id, entry.title, entry.statement, entry.source, entry.kind, broken, entry.order))
    result = run_one("matmul100", quick=True, seed=0, figure_dir=None)
    assert result.verdict == INCONCLUSIVE
    assert "boom" in result.notes and "RuntimeError" in result.error


def test_claims_command_prints_the_table_and_writes_the_report(tmp_path, capsys) -> None:
    import argparse

    from initlab.cli import claims_cmd

    parser = argparse.ArgumentParser()
    claims_cmd.add_arguments(parser)
    code = claims_cmd.run(parser.parse_args(["--quick", "--only", "matmul100", "--out", str(tmp_path), "--quiet"]))
    assert code == 0
    out = capsys.readouterr().out
    assert "matmul100" in out and "supported" in out
    assert (tmp_path / "report.html").is_file()
    with pytest.raises(ValueError, match="unknown claim id"):
        claims_cmd.run(parser.parse_args(["--quick", "--only", "99x", "--out", str(tmp_path), "--quiet"]))
