"""Timings of ``initlab claims``: seconds per claim, and seed-stacked training against a sequential loop.

Run: ``python benchmarks/bench_claims.py [--quick] [--only ID,...]``. Prints
figures measured in this one run; nothing is pass/fail.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from initlab.lab.claims import registered_claims
from initlab.lab.claims._nets import InitSpec, StackedMLP, digits, train_stacked
from initlab.lab.claims.runner import run_one
from initlab.schemes import glorot_uniform


def stacked_vs_sequential(seeds: int, steps: int) -> tuple[float, float]:
    """Seconds to train `seeds` 64-64-10 tanh nets: one StackedMLP, and one nn.Sequential after another."""
    x, y, _, _ = digits(0)
    model = StackedMLP([64, 64, 10], "tanh", seeds)
    model.initialize([InitSpec("g", glorot_uniform())] * seeds, list(range(seeds)))
    started = time.perf_counter()
    train_stacked(model, x, y, steps=steps, lr=0.1, batch_size=64, seed=0)
    stacked = time.perf_counter() - started
    started = time.perf_counter()
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        generator = torch.Generator().manual_seed(0)
        for _ in range(steps):
            rows = torch.randint(0, x.shape[0], (64,), generator=generator)
            optimizer.zero_grad()
            F.cross_entropy(net(x[rows]), y[rows]).backward()
            optimizer.step()
    sequential = time.perf_counter() - started
    return stacked, sequential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="time the quick-mode claims only, small reference")
    parser.add_argument("--full", action="store_true", help="also time every claim in full mode (tens of minutes)")
    parser.add_argument("--only", default=None, help="comma-separated claim ids")
    args = parser.parse_args()
    ids = [c.id for c in registered_claims()]
    if args.only:
        ids = [part.strip() for part in args.only.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    seeds, steps = (8, 200) if args.quick else (16, 500)
    stacked, sequential = stacked_vs_sequential(seeds, steps)
    print(f"\n{seeds} seeds x {steps} SGD steps, 64-64-10 tanh on digits:")
    print(f"  stacked (one batched model) {stacked:7.2f} s")
    print(f"  sequential nn.Sequential    {sequential:7.2f} s   ratio sequential/stacked = {sequential / stacked:.1f}x")
    modes = [True] + ([False] if args.full else [])
    for quick in modes:
        label = "quick" if quick else "full"
        print(f"\nclaims, {label} mode: seconds per claim")
        total = 0.0
        for claim_id in ids:
            started = time.perf_counter()
            result = run_one(claim_id, quick=quick, seed=0, figure_dir=None)
            seconds = time.perf_counter() - started
            total += seconds
            print(f"  {claim_id:<14} {seconds:7.1f} s  {result.verdict}")
        print(f"  {'total':<14} {total:7.1f} s")


if __name__ == "__main__":
    main()
