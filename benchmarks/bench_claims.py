"""Timings of ``initlab claims``: wall and CPU seconds per claim, and seed batching against one-by-one training.

Run: ``python benchmarks/bench_claims.py [--full] [--only ID,...] [--threads N]``.
Prints figures measured in this one run, with the load average before and
after each timing (the machine may be shared); nothing is pass/fail. CPU
seconds of one thread barely depend on other load, wall seconds do.

``--compare-threads`` instead runs every claim in quick mode on 1 and on 2
threads per claim and compares each claim's verdict and rule statuses with
each other and with the committed quick run (docs/claims/results-quick.json):
the verdicts must be the same whatever the thread count and from run to run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from initlab.lab.batched import make_model, train_stacked
from initlab.lab.claims import load_run, registered_claims, run_claims
from initlab.lab.claims.runner import pinned, run_one
from initlab.lab.data import load_dataset
from initlab.lab.trainer import train
from timing import machine_line


def load() -> str:
    """The 1-minute load average, as text."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def stacked_vs_one_by_one(seeds: int, steps: int) -> tuple[float, float]:
    """Seconds to train ``seeds`` 64-64-10 tanh nets on digits: one seed-batched run, and one run per seed."""
    data = load_dataset("digits", seed=0)
    spec = "mlp:*-64-*:tanh"
    models = [make_model(spec, data, "glorot_uniform", seed) for seed in range(seeds)]
    started = time.perf_counter()
    train_stacked(models, data, list(range(seeds)), steps=steps, batch_size=64, lr=0.1, eval_every=steps)
    stacked = time.perf_counter() - started
    started = time.perf_counter()
    for seed in range(seeds):
        train(make_model(spec, data, "glorot_uniform", seed), data, seed=seed, steps=steps, batch_size=64, lr=0.1,
              eval_every=steps)
    return stacked, time.perf_counter() - started


COMMITTED_QUICK = Path(__file__).resolve().parent.parent / "docs" / "claims" / "results-quick.json"


def compare_threads(only: list[str] | None) -> int:
    """Quick mode on 1 and on 2 threads per claim (2 workers), against the committed quick run; 1 on a difference."""
    runs = {"committed": load_run(COMMITTED_QUICK)}
    for threads in (1, 2):
        before = load()
        run = run_claims(only, quick=True, threads=threads, workers=2)
        runs[f"{threads} thread(s)"] = run
        print(f"quick mode, {threads} thread(s) per claim, 2 workers: {run.seconds:.1f} s (load {before} -> {load()})")
    ids = [result.id for result in runs["1 thread(s)"].results]
    differences = 0
    print(f"\n{'claim':<14} " + " ".join(f"{name:<16}" for name in runs) + " rule statuses")
    for claim_id in ids:
        picked = {name: next(r for r in run.results if r.id == claim_id) for name, run in runs.items()}
        statuses = {name: tuple(row["status"] for row in result.rules) for name, result in picked.items()}
        same = len({r.verdict for r in picked.values()}) == 1 and len(set(statuses.values())) == 1
        differences += not same
        print(f"{claim_id:<14} " + " ".join(f"{r.verdict:<16}" for r in picked.values())
              + (" identical" if same else f" DIFFER: {statuses}"))
    print(f"\n{len(ids)} claims, {differences} with a different verdict or rule status")
    return 1 if differences else 0


def main() -> None:
    print(machine_line())  # load average per core; a warning when the machine is busy
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="time the full-mode claims instead (tens of minutes)")
    parser.add_argument("--only", default=None, help="comma-separated claim ids")
    parser.add_argument("--threads", type=int, default=1, help="threads per claim (default 1, as initlab claims)")
    parser.add_argument("--compare-threads", action="store_true",
                        help="quick mode on 1 and 2 threads against the committed quick run, verdict by verdict")
    args = parser.parse_args()
    ids = [c.id for c in registered_claims()]
    if args.only:
        ids = [part.strip() for part in args.only.split(",")]
    if args.compare_threads:
        raise SystemExit(compare_threads(ids if args.only else None))
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {args.threads} thread(s) per claim, "
          f"load average {load()}")
    with pinned(args.threads):
        seeds, steps = 16, 500
        before = load()
        stacked, sequential = stacked_vs_one_by_one(seeds, steps)
        print(f"\n{seeds} seeds x {steps} SGD steps, 64-64-10 tanh on digits (load {before} -> {load()}):")
        print(f"  seed-batched (train_stacked)  {stacked:7.2f} s")
        print(f"  one by one (train)            {sequential:7.2f} s   ratio one-by-one / batched = "
              f"{sequential / stacked:.1f}x")
    label = "full" if args.full else "quick"
    print(f"\nclaims, {label} mode, one after another: wall and CPU seconds per claim")
    wall_total = cpu_total = 0.0
    for claim_id in ids:
        before = load()
        result = run_one(claim_id, quick=not args.full, seed=0, figure_dir=None, threads=args.threads)
        wall_total += result.seconds
        cpu_total += result.cpu_seconds
        print(f"  {claim_id:<14} wall {result.seconds:7.1f} s  cpu {result.cpu_seconds:7.1f} s  "
              f"load {before} -> {load()}  {result.verdict}")
    print(f"  {'total':<14} wall {wall_total:7.1f} s  cpu {cpu_total:7.1f} s")


if __name__ == "__main__":
    main()
