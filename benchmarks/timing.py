"""Shared timing for the benchmarks: whole runs, taking turns, with their spread and the machine's load.

Every benchmark times what a user pays (a training loop, the public call
end to end) the same way:

* ``interleaved(runs, repeats)`` calls each run once per round, in turn, for
  ``repeats`` rounds (at least ``MIN_REPEATS``), so a change of machine load
  hits all of them alike; each call is timed whole.
* A :class:`Timing` keeps every repeat: best, median and mean, and the spread
  (max / min - 1) that says how far one figure can be trusted.
* ``machine_line()`` gives the 1-minute load average per core and warns above
  ``QUIET_LOAD`` per core: figures taken on a busy machine are not the
  machine's figures. ``uptime_line()`` prints what ``uptime`` prints.

Component timings (one stage, one step) use the same helper and say so in
their label.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

__all__ = [
    "MIN_REPEATS",
    "QUIET_LOAD",
    "Timing",
    "interleaved",
    "machine_line",
    "uptime_line",
    "spread_table",
]

MIN_REPEATS = 5
QUIET_LOAD = 0.5  # 1-minute load average per core above which figures are flagged


@dataclass(frozen=True)
class Timing:
    """Wall seconds of each repeat of one run."""

    name: str
    seconds: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def spread(self) -> float:
        """max / min - 1: 0.1 means the slowest repeat took 10% longer than the fastest."""
        return max(self.seconds) / min(self.seconds) - 1.0

    def line(self, scale: float = 1.0, unit: str = "s") -> str:
        """``median (best-worst, spread) over n``, times ``scale`` in ``unit``."""
        low, high = self.best * scale, max(self.seconds) * scale
        return (
            f"median {self.median * scale:.4g} {unit} (best {low:.4g}, worst {high:.4g}, "
            f"spread {100 * self.spread:.0f}%, {len(self.seconds)} repeats)"
        )


def _synchronize(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    runs: Mapping[str, Callable[[], object]],
    repeats: int = MIN_REPEATS,
    *,
    setup: Callable[[str], object] | None = None,
    device: torch.device | None = None,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Time each run whole, the runs taking turns, ``repeats`` rounds (``MIN_REPEATS`` at least).

    ``setup(name)``, if given, runs untimed before each timed call (a fresh
    model copy, say). ``warmup`` untimed rounds come first. On a CUDA
    ``device`` the clock stops after the device has finished.
    """
    repeats = max(repeats, MIN_REPEATS)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(warmup + repeats):
        for name, run in runs.items():
            if setup is not None:
                setup(name)
            _synchronize(device)
            start = time.perf_counter()
            run()
            _synchronize(device)
            if round_index >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return {name: Timing(name, tuple(values)) for name, values in seconds.items()}


def machine_line() -> str:
    """Load average per core, torch's thread count, and a warning when the machine is busy."""
    cores = os.cpu_count() or 1
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not Unix
        return f"{cores} cores, load average unknown"
    line = (
        f"{cores} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {one:.2f} (1 min) {five:.2f} (5 min) = {one / cores:.2f} per core"
    )
    if one / cores > QUIET_LOAD:
        line += (
            f"\nWARNING: load {one / cores:.2f} per core is above {QUIET_LOAD}: other processes "
            "share the cores, so absolute times are inflated and ratios are noisy; re-measure quiet"
        )
    return line


def uptime_line() -> str:
    """What ``uptime`` prints (time, uptime, load averages), or the load average if it is missing."""
    try:
        done = subprocess.run(["uptime"], capture_output=True, text=True, check=True, timeout=5)
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def spread_table(
    timings: Mapping[str, Timing], reference: str, *, kind: Mapping[str, str] | None = None
) -> list[str]:
    """Markdown rows: run, kind (end to end / component), median, best, spread, ratio of medians to ``reference``."""
    lines = [
        "| run | what | median | best | spread | ratio to " + reference + " (medians) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = timings[reference].median
    for name, timing in timings.items():
        what = (kind or {}).get(name, "end to end")
        lines.append(
            f"| {name} | {what} | {timing.median:.4g} s | {timing.best:.4g} s | "
            f"{100 * timing.spread:.0f}% | {timing.median / base:.3g}x |"
        )
    return lines
