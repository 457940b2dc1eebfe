"""The result store of a sweep: one JSON record per finished run, written atomically.

Layout of a sweep directory::

    manifest.json                  config, sweep id, versions, timings
    records/<init>/seed-<k>.json   one finished run (status, final metrics, history)
    results.csv                    tidy rows: one per run x logged step
    leaderboard.csv, leaderboard.md, loss_curves.png, final_accuracy.png

A record file appears only once its run has finished: it is written to a
temporary file in the same folder and renamed (``os.replace`` is atomic), so
a sweep killed at any moment leaves either the whole record or none, and
``--resume`` skips exactly the runs that finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "atomic_write_text", "sweep_id", "MANIFEST", "RECORDS"]

MANIFEST = "manifest.json"
RECORDS = "records"
# files the store may delete with --force (never anything else in the folder); results.parquet
# comes from sweeps of initlab 0.1, which wrote it when pyarrow was installed
OUTPUTS = (MANIFEST, RECORDS, "results.csv", "results.parquet", "leaderboard.csv", "leaderboard.md",
           "loss_curves.png", "final_accuracy.png")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.manifest_path} is not valid JSON ({error}); use --force to start over") from error

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_path, dumps(manifest))

    def holds_sweep(self) -> bool:
        """Whether the folder has a manifest or any record."""
        return self.manifest_path.exists() or any(self.iter_record_paths())

    def clear(self) -> None:
        """Delete the store's own files (manifest, records, outputs); other files are left alone."""
        for name in OUTPUTS:
            target = self.root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

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

    def read_records(self) -> list[dict[str, Any]]:
        """Every finished run's record (unreadable files are skipped: they cannot be finished runs)."""
        records = []
        for path in self.iter_record_paths():
            try:
                records.append(_restore_nan(json.loads(path.read_text(encoding="utf-8"))))
            except (json.JSONDecodeError, OSError):
                continue
        return records

    def finished(self, sweep: str | None = None) -> set[tuple[str, int]]:
        """(init, seed) pairs with a record (of sweep id ``sweep`` if given)."""
        return {
            (r["init"], int(r["seed"])) for r in self.read_records()
            if sweep is None or r.get("sweep_id") == sweep
        }
