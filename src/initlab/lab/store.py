"""The result store of a sweep: one JSON record per finished run, written atomically.

Layout of a sweep directory::

    manifest.json                  config, sweep id, versions, timings
    records/<init>/seed-<k>.json   one finished run (status, final metrics, history)
    results.csv                    tidy rows: one per run x logged step
    leaderboard.csv, leaderboard.md, loss_curves.png, final_accuracy.png

A record file appears only once its run has finished: it is written to a
temporary file in the same folder and renamed (``os.replace`` is atomic), so
a sweep killed at any moment leaves either the whole record or none, and
``--resume`` skips exactly the runs that finished. A record read back is
checked against the record schema (:func:`record_problem`); one that fails
is reported by file name and its run is done again.

The manifest lists every file the sweep may write (``written``), before it
writes them: ``--force`` deletes only those, and a file initlab did not
write is never deleted or overwritten. While a sweep runs it holds
``.initlab.lock`` (its pid and host); a second sweep on the same folder is
refused, and a lock left by a process that no longer runs is reported with
the way to clear it (:func:`sweep_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "atomic_write_text", "sweep_id", "record_problem", "sweep_lock", "check_unlocked", "check_out_dir",
           "MANIFEST", "RECORDS", "LOCK", "STATUSES"]

MANIFEST = "manifest.json"
RECORDS = "records"
LOCK = ".initlab.lock"
# the files a sweep writes at the top of its folder, besides the manifest (results.parquet: the
# tidy results of sweeps of initlab 0.1, which wrote Parquet when pyarrow was installed)
OUTPUTS = ("results.csv", "results.parquet", "leaderboard.csv", "leaderboard.md", "loss_curves.png",
           "final_accuracy.png")
STATUSES = ("ok", "diverged", "stalled", "failed")
FINAL_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
_RECORD_NAME = re.compile(r"records/(?!\.+/)[A-Za-z0-9_.-]+/seed-[0-9]+\.json")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(handle, _file_mode())  # mkstemp makes 0600; a result file reads like any other file
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_mode() -> int:
    """0666 less the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a Path, or a ValueError when no sweep folder can be made there.

    Refused: an empty name, a path that is (or runs through) a file, and a
    folder (or the nearest existing parent) this process cannot write to.
    Nothing is created.
    """
    if not isinstance(out_dir, str | os.PathLike):
        raise TypeError(f"the output folder must be a path, got {type(out_dir).__name__}")
    if not str(out_dir).strip():
        raise ValueError("the output folder (--out) must be a folder name, got an empty string")
    path = Path(out_dir)
    if "\x00" in str(path):
        raise ValueError(f"the output folder (--out) {str(path)!r} holds a NUL byte")
    if path.exists() and not path.is_dir():
        raise ValueError(f"the output folder (--out) {str(path)!r} is a file, not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"the output folder (--out) {str(path)!r} runs through the file {str(existing)!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"the output folder (--out) {str(path)!r} cannot be written: no write permission on "
                         f"{str(existing)!r}")
    return path


def _json_safe(value: Any) -> Any:
    """NaN/inf become None so the files are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _restore_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _restore_nan(v) if k not in ("diverged_at", "error") else v for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_nan(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def record_problem(record: Any) -> str:
    """What makes ``record`` (a parsed record file) unusable, or "" when it is a finished run.

    A finished run is an object with ``init`` (str), ``seed`` (int >= 0),
    ``sweep_id`` (str), ``status`` (one of :data:`STATUSES`), ``final`` (the
    four metrics of :data:`FINAL_METRICS`, numbers or null for NaN), ``info``
    (an object; ``steps_per_epoch`` a positive int if given) and ``history``
    (rows with an int ``step`` and a numeric ``loss``; empty only for a run
    that failed before training).
    """
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("init"), str) or not record["init"]:
        return "has no init name"
    seed = record.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        return f"has seed {seed!r}, not an int >= 0"
    if not isinstance(record.get("sweep_id"), str):
        return "has no sweep_id"
    if record.get("status") not in STATUSES:
        return f"has status {record.get('status')!r}, not one of {', '.join(STATUSES)}"
    final = record.get("final")
    if not isinstance(final, dict):
        return "lacks 'final' (the final metrics)"
    for key in FINAL_METRICS:
        if key not in final or not _is_number(final[key]):
            return f"has final {key} {final.get(key)!r}, not a number"
    info = record.get("info", {})
    if not isinstance(info, dict):
        return "has an 'info' that is not an object"
    steps = info.get("steps_per_epoch", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        return f"has info steps_per_epoch {steps!r}, not a positive int"
    history = record.get("history")
    if not isinstance(history, list):
        return "lacks 'history' (the logged steps)"
    if not history and record["status"] != "failed":
        return "has an empty history"
    for row in history:
        if not isinstance(row, dict):
            return "has a history row that is not an object"
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            return f"has a history step {step!r}, not an int"
        if not _is_number(row.get("loss", "missing")):
            return f"has history loss {row.get('loss', 'missing')!r} at step {step}, not a number"
        for key in ("epoch", "accuracy", "test_loss", "test_accuracy"):
            if key in row and not _is_number(row[key]):
                return f"has history {key} {row[key]!r} at step {step}, not a number"
    return ""


def dumps(data: Any) -> str:
    """Strict JSON (NaN written as null), sorted keys, two-space indent."""
    return json.dumps(_json_safe(data), indent=2, sort_keys=True)


def sweep_id(identity: dict[str, Any]) -> str:
    """A short stable hash of the settings that make runs comparable."""
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=6).hexdigest()


def slug(name: str) -> str:
    """A file-name-safe form of an init name (a hash suffix keeps distinct names distinct)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "init"
    if clean == name:
        return clean
    return f"{clean[:60]}-{hashlib.blake2b(name.encode(), digest_size=3).hexdigest()}"


class ResultStore:
    """The files of one sweep directory: manifest and per-run records."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def record_path(self, init: str, seed: int) -> Path:
        """Where the record of run (init, seed) lives."""
        return self.root / RECORDS / slug(init) / f"seed-{int(seed)}.json"

    # -- manifest
    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None for a folder that holds no sweep."""
        if not self.manifest_path.exists():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise ValueError(
                f"{self.manifest_path} is not valid JSON ({type(error).__name__}), so initlab cannot tell which "
                "files there are its own; move the folder's files away or choose another --out"
            ) from None
        if not isinstance(manifest, dict):
            raise ValueError(f"{self.manifest_path} holds a JSON {type(manifest).__name__}, not an initlab manifest; "
                             "move the folder's files away or choose another --out")
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_path, dumps(manifest))

    def holds_sweep(self) -> bool:
        """Whether the folder has a manifest or any record."""
        return self.manifest_path.exists() or any(self.iter_record_paths())

    def entries(self) -> list[str]:
        """Names in the folder other than the lock (empty for a folder that does not exist)."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir() if entry.name != LOCK)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def planned(self, pairs: Iterable[tuple[str, int]], outputs: Iterable[str]) -> list[str]:
        """Relative paths a sweep over ``pairs`` writes: manifest, one record per pair, the outputs."""
        return [MANIFEST, *(self.relative(self.record_path(init, seed)) for init, seed in pairs), *outputs]

    def owned(self, manifest: dict[str, Any] | None) -> set[str]:
        """Relative paths the manifest says initlab wrote, kept to names a sweep writes (no '..', no other file).

        Manifests written before ``written`` existed name their records through
        ``inits`` and ``seeds``.
        """
        if manifest is None:
            return set()
        listed = manifest.get("written")
        if not isinstance(listed, list):
            inits, seeds = manifest.get("inits"), manifest.get("seeds")
            pairs = [(i, s) for i in inits for s in seeds] if isinstance(inits, list) and isinstance(seeds, list) else []
            listed = self.planned([(i, s) for i, s in pairs if isinstance(i, str) and isinstance(s, int)], OUTPUTS)
        return {name for name in listed
                if isinstance(name, str) and (name == MANIFEST or name in OUTPUTS or _RECORD_NAME.fullmatch(name))}

    def clear(self, owned: set[str]) -> None:
        """Delete the files of ``owned`` (see :meth:`owned`) and the record folders they leave empty."""
        inside = self.root.resolve()
        for name in sorted(owned):
            path = self.root / name
            if not path.parent.resolve().is_relative_to(inside):
                continue  # a linked folder leads outside: what lies there is not the sweep's
            if path.is_file() or path.is_symlink():
                path.unlink()
        records = self.root / RECORDS
        if records.is_dir():
            for folder in sorted(records.iterdir()):
                if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                    folder.rmdir()
            if not any(records.iterdir()):
                records.rmdir()

    # -- records
    def write_record(self, record: dict[str, Any]) -> Path:
        """Write one finished run atomically; returns its path."""
        path = self.record_path(record["init"], record["seed"])
        atomic_write_text(path, dumps(record))
        return path

    def iter_record_paths(self) -> Iterator[Path]:
        folder = self.root / RECORDS
        if folder.is_dir():
            yield from sorted(folder.glob("*/seed-*.json"))

    def scan_records(self) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
        """(records that pass :func:`record_problem`, (path, problem) of every record file that does not).

        A record must also lie where its own init and seed say it belongs.
        """
        records: list[dict[str, Any]] = []
        problems: list[tuple[Path, str]] = []
        for path in self.iter_record_paths():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                problems.append((path, f"cannot be read as JSON ({type(error).__name__})"))
                continue
            problem = record_problem(data)
            if not problem and self.record_path(data["init"], data["seed"]) != path:
                problem = f"belongs to {data['init']!r} seed {data['seed']}, not to this file"
            if problem:
                problems.append((path, problem))
            else:
                records.append(_restore_nan(data))
        return records, problems

    def read_records(self) -> list[dict[str, Any]]:
        """Every record that passes the schema (:func:`record_problem`); the others cannot be finished runs."""
        return self.scan_records()[0]

    def finished(self, sweep: str | None = None, *, retry_failed: bool = False) -> set[tuple[str, int]]:
        """(init, seed) pairs with a valid record (of sweep id ``sweep`` if given; not failed ones if ``retry_failed``)."""
        return {
            (r["init"], int(r["seed"])) for r in self.read_records()
            if (sweep is None or r.get("sweep_id") == sweep) and not (retry_failed and r["status"] == "failed")
        }


# ---------------------------------------------------------------- the lock


def _holder_state(holder: dict[str, Any]) -> str:
    """'running', 'gone' (no such process on this host) or 'unknown' (another host, or unreadable)."""
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 1 or host != socket.gethostname():
        return "unknown"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "running"  # a process of another user holds that pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return "gone"  # a zombie left by a killed sweep
    except (OSError, IndexError):
        pass
    return "running"


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def check_unlocked(root: str | os.PathLike[str], *, break_stale: bool = False) -> bool:
    """FileExistsError if a sweep holds ``root``; True when a stale lock is there and ``break_stale`` allows removing it.

    A lock whose process no longer runs on this host is *stale*: it is
    reported with the way to clear it, never removed silently. A lock from
    another host cannot be checked and counts as stale only for
    ``break_stale``. The lock of a running process is never broken.
    """
    path = Path(root) / LOCK
    if not path.exists():
        return False
    holder = _read_holder(path)
    if holder is None:
        raise FileExistsError(
            f"{path} exists but is not a readable initlab lock; if no sweep runs in {path.parent}, delete {path}"
        )
    state = _holder_state(holder)
    started = holder.get("started", 0)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started if isinstance(started, int | float) else 0))
    who = f"pid {holder.get('pid')} on {holder.get('host')} (since {since})"
    if state == "running":
        raise FileExistsError(f"{path.parent} is in use by a running sweep, {who}; wait for it to end or choose "
                              "another --out")
    if break_stale:
        return True
    why = f"a stale lock: {who} no longer runs (killed?)" if state == "gone" else \
        f"a lock of {who}, which cannot be checked from here"
    raise FileExistsError(f"{path.parent} holds {why}; if no sweep runs there, rerun with --break-lock (or delete "
                          f"{path}); finished runs are kept either way")


@contextlib.contextmanager
def sweep_lock(root: str | os.PathLike[str], *, break_stale: bool = False) -> Iterator[Path]:
    """Hold ``root/.initlab.lock`` (pid, host, start time) while the block runs; FileExistsError if taken.

    The lock file is created with O_EXCL, so of two sweeps that start at once
    exactly one gets it; a lock already there is handled by
    :func:`check_unlocked` (a stale one is removed only with ``break_stale``,
    ``--break-lock``). The lock is removed when the block ends, also by an
    exception, if it is still this sweep's.
    """
    path = Path(root) / LOCK
    token = secrets.token_hex(8)
    content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                          "token": token})
    for attempt in range(2):
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _file_mode())
        except FileExistsError:
            if check_unlocked(root, break_stale=break_stale and attempt == 0):
                path.unlink(missing_ok=True)
                continue
            raise  # pragma: no cover - check_unlocked raised or the lock vanished and came back
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        break
    try:
        yield path
    finally:
        holder = _read_holder(path)
        if holder is not None and holder.get("token") == token:
            path.unlink(missing_ok=True)
