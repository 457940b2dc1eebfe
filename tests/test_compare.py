"""`initlab compare`: tidy results, leaderboard, figures, atomic resumable store, executors, refusals."""

from __future__ import annotations

import argparse
import csv
import json
import math

import pytest

from initlab.cli import compare_cmd
from initlab.lab.compare import CompareConfig, run_compare
from initlab.lab.store import ResultStore

TINY = dict(dataset="circles", dataset_options={"n_samples": 200}, model="mlp:*-16-*:tanh",
            inits=("zeros", "he_normal"), seeds=(0, 1), steps=30, batch_size=None, lr=0.5, executor="inline")


class Interrupt(Exception):
    """Stands for the sweep being killed."""


def test_compare_writes_tidy_rows_leaderboard_manifest_and_plots(tmp_path) -> None:
    result = run_compare(CompareConfig(**TINY), tmp_path / "sweep")
    out = tmp_path / "sweep"
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 30  # runs x logged steps
    assert set(rows[0]) >= {"init", "seed", "step", "loss", "accuracy", "status"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["config"]["model"] == "mlp:*-16-*:tanh"
    assert "torch" in manifest["versions"] and manifest["timings"]["wall_seconds"] > 0
    board = {row.init: row for row in result.leaderboard}
    # a zero init keeps every hidden unit identical: it cannot beat a variance-scaled init
    assert board["he_normal"].rank == 1 and board["zeros"].rank == 2
    assert board["zeros"].stalled_fraction == 1.0
    assert board["he_normal"].test_accuracy_mean > board["zeros"].test_accuracy_mean
    assert (out / "loss_curves.png").stat().st_size > 1000 and (out / "final_accuracy.png").stat().st_size > 1000
    assert "| 1 | he_normal |" in (out / "leaderboard.md").read_text()


def test_an_interrupted_sweep_resumes_without_losing_a_finished_run(tmp_path) -> None:
    out = tmp_path / "sweep"
    config = CompareConfig(**{**TINY, "seeds_per_task": 1})

    def kill_after_three(record, done, total):
        if done == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_compare(config, out, on_record=kill_after_three)
    store = ResultStore(out)
    finished = store.finished()
    assert len(finished) == 3
    stamps = {p: p.stat().st_mtime_ns for p in store.iter_record_paths()}
    with pytest.raises(FileExistsError, match="--resume"):
        run_compare(config, out)
    result = run_compare(config, out, resume=True)
    assert result.skipped == 3 and result.ran == 1 and len(result.records) == 4
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert not list(out.rglob("*.tmp"))


def test_a_folder_holding_a_different_sweep_is_refused_unless_forced(tmp_path) -> None:
    out = tmp_path / "sweep"
    run_compare(CompareConfig(**{**TINY, "inits": ("zeros",), "seeds": (0,)}), out, plots=False)
    other = CompareConfig(**{**TINY, "inits": ("zeros",), "seeds": (0,), "lr": 0.1})
    with pytest.raises(FileExistsError, match="different sweep"):
        run_compare(other, out, resume=True)
    (out / "notes.txt").write_text("mine")
    result = run_compare(other, out, force=True, plots=False)
    assert result.ran == 1 and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [({"inits": ("zeros", "bogus")}, ValueError, "unknown init.*valid: .*he_normal"),
     ({"model": "mlp:3-8-2"}, ValueError, "takes 3 input features"),
     ({"model": "mlp:*-8-5"}, ValueError, "5 outputs but the data set has 2 classes"),
     ({"dataset": "imagenet"}, ValueError, "valid names: digits"),
     ({"dataset": "mnist", "dataset_options": {"path": "/nonexistent/mnist"}}, FileNotFoundError, "IDX")],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, change, error, message) -> None:
    with pytest.raises(error, match=message):
        run_compare(CompareConfig(**{**TINY, **change}), tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_cli_runs_a_sweep_and_prints_the_leaderboard(tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser()
    compare_cmd.add_arguments(parser)
    args = parser.parse_args([
        "--dataset", "xor", "--data-option", "n_samples=200", "--model", "mlp:*-8-*:tanh",
        "--inits", "he_normal(mode=fan_in, nonlinearity=tanh),zeros", "--seeds", "2", "--steps", "10",
        "--batch-size", "full", "--executor", "inline", "--quiet", "--no-plots", "--out", str(tmp_path / "s"),
    ])
    assert compare_cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert "| rank | init |" in printed and "zeros" in printed
    records = ResultStore(tmp_path / "s").read_records()
    assert {r["init"] for r in records} == {"he_normal(mode=fan_in, nonlinearity=tanh)", "zeros"}


@pytest.mark.slow
def test_local_process_pool_gives_the_numbers_of_inline_execution(tmp_path) -> None:
    config = CompareConfig(**{**TINY, "seeds": (0,), "executor": "local", "workers": 2})
    pooled = run_compare(config, tmp_path / "pool", plots=False)
    inline = run_compare(CompareConfig(**{**TINY, "seeds": (0,)}), tmp_path / "inline", plots=False)
    for a, b in zip(sorted(pooled.records, key=lambda r: r["init"]), sorted(inline.records, key=lambda r: r["init"])):
        assert a["final"]["train_loss"] == pytest.approx(b["final"]["train_loss"], rel=1e-5) or (
            math.isnan(a["final"]["train_loss"]) and math.isnan(b["final"]["train_loss"]))


@pytest.mark.ray
def test_ray_executor_runs_the_sweep_on_a_local_ray_instance(tmp_path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'initlab[ray]')")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        result = run_compare(CompareConfig(**{**TINY, "seeds": (0,), "executor": "ray"}), tmp_path / "ray",
                             plots=False)
    finally:
        ray.shutdown()
    assert len(result.records) == 2 and {r["init"] for r in result.records} == {"zeros", "he_normal"}
    assert result.manifest["executor"] == "ray"
