"""Seed-batched training against the same trainer run once per seed.

16 seeds of a digits MLP 64-128x3-10 (He init, SGD, minibatches), trained
(a) one after another through ``initlab.lab.trainer.train`` and (b) together
through ``initlab.lab.batched.train_stacked``, from the same initial weights.
Prints wall times and the ratio of one run of each, interleaved and repeated
(the fastest repeat of each is kept), and how far the batched losses are from
the one-by-one losses. For scale, the one-by-one runs are repeated on one
thread: float sums in another order move a loss by as much, since a ReLU unit
whose input sits within a rounding error of 0 sends a run down another path.

    .venv/bin/python benchmarks/bench_trainer.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

import initlab
from initlab.lab.batched import train_stacked
from initlab.lab.data import load_dataset
from initlab.lab.models import build_model
from initlab.lab.trainer import train
from timing import machine_line


def main() -> None:
    print(machine_line())  # load average per core; a warning when the machine is busy
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 repeat")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--batch-sizes", default="8,16,32,64")
    parser.add_argument("--device", default="cpu", help="torch device of the models and data (default cpu)")
    args = parser.parse_args()
    epochs, repeats = (1, 1) if args.quick else (3, 3)
    data = load_dataset("digits", seed=0)
    seeds = list(range(args.seeds))
    models = []
    for seed in seeds:
        model = build_model("mlp:64-128x3-10:relu", data.input_shape, data.num_classes)
        initlab.init_model(model, plan="he_normal", seed=seed)
        models.append(model.to(args.device))
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{threads} threads"
    print(f"digits MLP 64-128x3-10, {len(seeds)} seeds, SGD lr 0.1, {epochs} epoch(s), best of {repeats}, "
          f"{where}, torch {torch.__version__}")
    print("| batch size | steps/run | 16 sequential runs (s) | one batched run (s) | speed-up "
          "| runs within 1e-4 of one-by-one: batched | same, one-by-one on 1 thread | max |loss diff| (batched) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        sequential_times, batched_times = [], []
        for _ in range(repeats):
            copies = [copy.deepcopy(m) for m in models]
            start = time.perf_counter()
            one_by_one = [train(m, data, epochs=epochs, batch_size=batch_size, seed=s) for m, s in zip(copies, seeds)]
            sequential_times.append(time.perf_counter() - start)
            copies = [copy.deepcopy(m) for m in models]
            start = time.perf_counter()
            together = train_stacked(copies, data, seeds, epochs=epochs, batch_size=batch_size)
            batched_times.append(time.perf_counter() - start)
        torch.set_num_threads(1)
        try:
            single = [train(copy.deepcopy(m), data, epochs=epochs, batch_size=batch_size, seed=s)
                      for m, s in zip(models, seeds)]
        finally:
            torch.set_num_threads(threads)
        batched_gaps, thread_gaps = _gaps(one_by_one, together), _gaps(one_by_one, single)
        sequential, batched = min(sequential_times), min(batched_times)
        print(f"| {batch_size} | {one_by_one[0].steps} | {sequential:.2f} | {batched:.2f} | "
              f"{sequential / batched:.1f}x | {sum(g <= 1e-4 for g in batched_gaps)}/{len(seeds)} | "
              f"{sum(g <= 1e-4 for g in thread_gaps)}/{len(seeds)} | {max(batched_gaps):.1e} |")


def _gaps(runs: list, others: list) -> list[float]:
    """Per run: the largest |loss difference| over the logged steps."""
    return [max(abs(a["loss"] - b["loss"]) for a, b in zip(x.history, y.history)) for x, y in zip(runs, others)]


if __name__ == "__main__":
    main()
