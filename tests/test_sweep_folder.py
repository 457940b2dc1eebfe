"""The files of ``--out``: a folder initlab did not create is refused, ``--force`` deletes only what the
manifest lists, one sweep at a time holds the folder's lock, everything is checked before the first
write, and ``--resume`` checks every record against the schema and runs failed ones again."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from initlab.cli.main import main
from initlab.lab.compare import CompareConfig, run_compare
from initlab.lab.leaderboard import LeaderRow, leaderboard_markdown, write_table
from initlab.lab.store import LOCK, ResultStore, sweep_lock
from initlab.plan import register_stage
from processes import alive

TINY = dict(dataset="circles", dataset_options={"n_samples": 120}, model="mlp:*-8-*:tanh",
            inits=("zeros", "he_normal"), seeds=(0, 1), steps=8, batch_size=None, lr=0.5, executor="inline")
CLI = ["--dataset", "circles", "--data-option", "n_samples=120", "--model", "mlp:*-8-*:tanh", "--seeds", "1",
       "--steps", "4", "--batch-size", "full", "--executor", "inline", "--quiet", "--no-plots"]


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what a test compares before and after)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initlab compare: error: ") and "Traceback" not in captured.err
    return lines[0]


# ---------------------------------------------------------------- folders initlab did not create


def test_a_folder_initlab_did_not_create_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my,own\n1,2\n")
    (out / "leaderboard.md").write_text("# my notes\n")
    before = _tree(out)
    with pytest.raises(FileExistsError, match="not empty and holds no initlab sweep"):
        run_compare(CompareConfig(**TINY), out, plots=False)
    # --force does not overwrite them either: they are in the way of the sweep's own files
    with pytest.raises(FileExistsError, match="results.csv, leaderboard.md, which initlab did not write"):
        run_compare(CompareConfig(**TINY), out, force=True, plots=False)
    assert _tree(out) == before and not (out / LOCK).exists()


def test_force_writes_beside_the_user_s_files_and_deletes_only_what_its_manifest_lists(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run_compare(CompareConfig(**{**TINY, "inits": ("zeros",)}), out, plots=False)
    mine = {"notes.txt": "mine", "records/zeros/notes.txt": "mine too", "records/he_normal/seed-7.json": "{}",
            "records/mine/seed-0.json": "[]"}
    for name, text in mine.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    result = run_compare(CompareConfig(**{**TINY, "lr": 0.1}), out, force=True, plots=False)
    assert result.ran == 4
    assert {name: (out / name).read_text() for name in mine} == mine


def test_force_never_deletes_a_file_a_crafted_manifest_points_at(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run_compare(CompareConfig(**{**TINY, "inits": ("zeros",), "seeds": (0,)}), out, plots=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "notes.txt").write_text("keep")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["written"] += ["../victim.txt", "records/../notes.txt", str(victim), "notes.txt"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    run_compare(CompareConfig(**{**TINY, "inits": ("zeros",), "seeds": (0,), "lr": 0.1}), out, force=True,
                plots=False)
    assert victim.read_text() == "keep" and (out / "notes.txt").read_text() == "keep"


def test_a_manifest_json_that_initlab_did_not_write_gives_no_ownership(tmp_path: Path) -> None:
    out = tmp_path / "webapp"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "my web app", "icons": []}))
    (out / "results.csv").write_text("mine\n")
    before = _tree(out)
    for options in ({"force": True}, {"resume": True}, {}):
        with pytest.raises(FileExistsError, match="manifest.json that initlab did not write"):
            run_compare(CompareConfig(**TINY), out, plots=False, **options)
    assert _tree(out) == before


# ---------------------------------------------------------------- one sweep at a time


def test_a_second_sweep_on_a_folder_in_use_is_refused_even_with_force(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    config = CompareConfig(**{**TINY, "seeds_per_task": 1})
    first_record, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow(record, done, total) -> None:  # type: ignore[no-untyped-def]
        first_record.set()
        release.wait(60)

    def first_sweep() -> None:
        try:
            run_compare(config, out, on_record=slow, plots=False)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    worker = threading.Thread(target=first_sweep)
    worker.start()
    try:
        assert first_record.wait(60)
        stored = _tree(out)
        for other, options in ((CompareConfig(**{**TINY, "lr": 0.1}), {"force": True}), (config, {"resume": True}),
                               (config, {"force": True, "break_lock": True})):
            with pytest.raises(FileExistsError, match="in use by a running sweep, pid"):
                run_compare(other, out, plots=False, **options)
        assert _tree(out) == stored
    finally:
        release.set()
        worker.join(120)
    assert not errors and len(ResultStore(out).read_records()) == 4 and not (out / LOCK).exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_stale_lock_is_reported_not_stolen_and_cleared_only_on_request(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    lock = out / LOCK
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": 0.0}))
    with pytest.raises(FileExistsError, match=r"stale lock: pid \d+ .* no longer runs.*--break-lock"):
        run_compare(CompareConfig(**TINY), out, plots=False)
    assert lock.exists() and not (out / "manifest.json").exists()
    result = run_compare(CompareConfig(**TINY), out, plots=False, break_lock=True)
    assert result.ran == 4 and not lock.exists()


def test_the_lock_of_a_running_process_is_never_broken(tmp_path: Path) -> None:
    with sweep_lock(tmp_path):
        with pytest.raises(FileExistsError, match="in use by a running sweep"):
            with sweep_lock(tmp_path, break_stale=True):
                pass  # pragma: no cover
        assert (tmp_path / LOCK).exists()
    assert not (tmp_path / LOCK).exists()


# ---------------------------------------------------------------- everything checked before the first write


@pytest.mark.parametrize(("arguments", "message"), [
    (["--workers", "0", "--executor", "local"], "workers must be an int >= 1, got 0"),
    (["--inits", "he_normal(mode=fan_inn)"], "init 'he_normal\\(mode=fan_inn\\)'.*mode must be one of fan_in, fan_out"),
    (["--inits", "zeros,orthogonal; stage=lsuv(tl=0.1)"], "unexpected keyword argument 'tl'"),
    (["--inits", "zeros,he_normal; bias=zeros; bias=ones"], "rule key 'bias' twice"),
    (["--batch-size", "0"], "--batch-size takes a positive int or 'full', got '0'"),
    (["--seeds", "1,1"], "seeds must not repeat"),
    (["--loss-threshold", "nan"], "loss_threshold must be a positive number"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path, capsys, arguments, message) -> None:
    out = tmp_path / "sweep"
    assert main(["compare", *CLI, "--inits", "zeros", *arguments, "--out", str(out)]) == 2
    assert re.search(message, _one_line_error(capsys))
    assert not out.exists()


def test_ray_requested_but_not_installed_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch,
                                                                                capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    out = tmp_path / "sweep"
    assert main(["compare", *CLI, "--inits", "zeros", "--executor", "ray", "--out", str(out)]) == 2
    assert "needs Ray" in _one_line_error(capsys) and not out.exists()


@pytest.mark.parametrize("where", ["empty", "through a file", "unwritable"])
def test_an_output_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path: Path, capsys, where) -> None:
    (tmp_path / "a-file").write_text("x")
    out = {"empty": "", "through a file": str(tmp_path / "a-file" / "sweep"), "unwritable": "/proc/initlab-sweep"}[where]
    before = _tree(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # an empty --out must not mean the current folder
    try:
        assert main(["compare", *CLI, "--inits", "zeros", "--out", out]) == 2
    finally:
        os.chdir(cwd)
    assert "output folder (--out)" in _one_line_error(capsys)
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- resume checks every record


def _damage(path: Path, how: str) -> None:
    """Break a record file the way a hand edit, a bad copy or another program would."""
    record = json.loads(path.read_text())
    if how == "a list":
        record = []
    elif how == "no final":
        record.pop("final")
    elif how == "an empty history":
        record["history"] = []
    elif how == "a text metric":
        record["final"]["test_accuracy"] = "0.9"
    elif how == "a text loss":
        record["history"][0]["loss"] = "low"
    path.write_text("{not json" if how == "not JSON" else json.dumps(record))


DAMAGES = ["a list", "no final", "an empty history", "a text metric", "a text loss", "not JSON"]


def test_resume_reports_records_that_fail_the_schema_and_runs_them_again(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    config = CompareConfig(**{**TINY, "seeds": tuple(range(3)), "seeds_per_task": 1})
    run_compare(config, out, plots=False)
    store = ResultStore(out)
    paths = list(store.iter_record_paths())
    for path, how in zip(paths, DAMAGES):
        _damage(path, how)
    notices: list[str] = []
    result = run_compare(config, out, resume=True, plots=False, on_notice=notices.append)
    assert result.ran == len(DAMAGES) and result.skipped == len(paths) - len(DAMAGES)
    named = {store.relative(path) for path in paths[:len(DAMAGES)]}
    assert {notice.split()[1] for notice in notices} == named
    assert {name for name, _ in result.rerun} == named
    assert len(result.records) == len(paths) and all(r["history"] for r in result.records)
    assert {row.init for row in result.leaderboard} == {"zeros", "he_normal"}
    assert len(store.read_records()) == len(paths)


def test_a_record_that_fails_the_schema_never_counts_as_finished(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run_compare(CompareConfig(**TINY), out, plots=False)
    store = ResultStore(out)
    first = next(store.iter_record_paths())
    _damage(first, "an empty history")
    assert len(store.finished()) == 3 and len(store.read_records()) == 3


_FLAG = {"fail": True}


def _flaky_stage(model, batch):  # type: ignore[no-untyped-def]
    if _FLAG["fail"]:
        raise RuntimeError("flaky stage failed")
    return {}


register_stage("test_flaky", _flaky_stage, replace=True)


@pytest.mark.parametrize("retry", [True, False])
def test_runs_that_failed_are_run_again_on_resume_unless_told_not_to(tmp_path: Path, retry: bool) -> None:
    out = tmp_path / "sweep"
    config = CompareConfig(**{**TINY, "inits": ("zeros", "he_normal; stage=test_flaky")})
    _FLAG["fail"] = True
    first = run_compare(config, out, plots=False)
    assert sum(r["status"] == "failed" for r in first.records) == 2
    _FLAG["fail"] = False
    again = run_compare(config, out, resume=True, retry_failed=retry, plots=False)
    failed = sum(r["status"] == "failed" for r in again.records)
    assert (again.ran, failed) == ((2, 0) if retry else (0, 2))


# ---------------------------------------------------------------- Markdown of user-supplied names


def test_leaderboard_markdown_shows_hostile_init_names_as_text_in_one_cell() -> None:
    name = "<img src=x onerror=alert(1)> | *bold* [link](javascript:x) `code`\nnext | row"
    row = LeaderRow(1, name, 2, 0.5, 0.1, 3.0, 1.0, 0.0, 0.0, 0.0, 0.4, 0.5)
    lines = leaderboard_markdown([row], 0.5).splitlines()
    assert len(lines) == 3
    cells = re.split(r"(?<!\\)\|", lines[2])
    assert len(cells) == 10  # 8 columns between the outer pipes
    assert "<img" not in lines[2] and "&lt;img" in lines[2]
    assert "\\*bold\\*" in lines[2] and "\\[link\\]" in lines[2] and "\\`code\\`" in lines[2]


def test_csv_tables_quote_text_a_spreadsheet_would_run_as_a_formula(tmp_path) -> None:
    rows = [{"init": "=HYPERLINK(\"http://x\",\"y\")", "score": -0.5},
            {"init": "@SUM(A1)", "score": float("nan")},
            {"init": "he_normal", "score": 1.0}]
    path = write_table(tmp_path / "t.csv", rows, ["init", "score"])
    read = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["init"] for r in read] == ["'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(A1)", "he_normal"]
    assert [r["score"] for r in read] == ["-0.5", "", "1.0"]  # numbers are never quoted


# ---------------------------------------------------------------- pool workers and a killed parent

PARENT = """
import os, sys, time
from pathlib import Path
from initlab.lab.executors import execute

def task(spec):
    Path(spec["folder"], f"worker-{os.getpid()}").write_text("")
    time.sleep(120)
    return []

if __name__ == "__main__":
    folder = sys.argv[1]
    for _ in execute(task, [{"folder": folder}, {"folder": folder}], executor="local", workers=2):
        pass
"""


@pytest.mark.slow
def test_pool_workers_end_within_seconds_of_their_parent_being_killed(tmp_path: Path) -> None:
    import signal
    import time

    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("worker-*"))) < 2:
            assert time.monotonic() < deadline and parent.poll() is None, "the pool did not start"
            time.sleep(0.1)
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        killed = time.monotonic()
        while any(alive(pid) for pid in workers) and time.monotonic() - killed < 10:
            time.sleep(0.1)
        survivors = [pid for pid in workers if alive(pid)]
        assert survivors == [], f"workers {survivors} outlived their killed parent by 10 s"
    finally:
        parent.kill()
        for path in tmp_path.glob("worker-*"):
            pid = int(path.name.split("-")[1])
            if alive(pid):
                os.kill(pid, 9)


def test_an_init_name_with_dollar_signs_does_not_break_the_figures(tmp_path: Path) -> None:
    # "$\frac{$" would be read as malformed mathtext by matplotlib and fail the sweep after every run
    init = "he_normal; name:$\\frac{$=zeros"
    result = run_compare(CompareConfig(**{**TINY, "inits": (init,), "seeds": (0,)}), tmp_path / "sweep")
    assert result.files["loss_curves"].stat().st_size > 1000 and result.files["final_accuracy"].stat().st_size > 1000


@pytest.mark.slow
def test_a_worker_that_dies_ends_the_sweep_with_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    import initlab.lab.compare as compare_module
    from initlab.lab.executors import execute

    (tmp_path / "dying_worker.py").write_text("import os\n\ndef crash(task):\n    os._exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the parent's sys.path
    import dying_worker

    def dying_pool(run, tasks, **options):  # type: ignore[no-untyped-def]
        return execute(dying_worker.crash, tasks, executor="local", workers=2)

    monkeypatch.setattr(compare_module, "execute", dying_pool)
    out = tmp_path / "sweep"
    argv = [a for a in CLI if a not in ("--executor", "inline")]
    assert main(["compare", *argv, "--inits", "zeros,he_normal", "--out", str(out)]) == 2
    error = _one_line_error(capsys)
    assert "a worker process of the local pool died" in error and "--resume" in error
    assert not (out / LOCK).exists()


@pytest.mark.slow
def test_a_sweep_killed_by_sigkill_leaves_whole_records_and_a_stale_lock_that_resume_reports(tmp_path: Path,
                                                                                           capsys) -> None:
    import signal
    import time

    out = tmp_path / "sweep"
    inits = "zeros,he_normal,glorot_uniform,orthogonal"
    argv = [a if a != "4" else "40" for a in CLI] + ["--inits", inits, "--out", str(out)]
    sweep = subprocess.Popen([sys.executable, "-m", "initlab.cli.main", "compare", *argv],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("records/*/seed-*.json")):
            assert time.monotonic() < deadline and sweep.poll() is None, "the sweep did not start"
            time.sleep(0.05)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(10)
    finally:
        sweep.kill()
    store = ResultStore(out)
    kept = {path: path.read_bytes() for path in store.iter_record_paths()}
    assert kept and len(store.read_records()) == len(kept) and not list(out.rglob("seed-*.json.*"))
    assert (out / LOCK).exists()
    assert main(["compare", *argv, "--resume"]) == 2
    assert "stale lock" in _one_line_error(capsys) and (out / LOCK).exists()
    assert main(["compare", *argv, "--resume", "--break-lock"]) == 0
    assert "finished run(s) kept" in capsys.readouterr().out
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert len(store.read_records()) == 4 and not (out / LOCK).exists()
