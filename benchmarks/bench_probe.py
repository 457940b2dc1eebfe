"""Overhead and memory of ``initlab.probe`` against plain training steps, measured side by side.

For a 20-layer width-256 ReLU MLP (batch 256) and a small CNN, one training
step (forward, backward, SGD step) is timed

* plain -- no hooks (the reference);
* probe every=10 -- the default: every 10th step recorded (effective rank and
  cosine on every 10th recorded step), the others pay one attribute check per
  hook;
* probe every=1 -- every step recorded (the worst case);
* the same with every histogram counted on one thread, for the side-by-side
  with the count on numba's threads (tensors of ``PARALLEL_MIN`` values or more);

in interleaved rounds on the same model and batch, and the median step time of
each is divided by the plain one. Memory: a probe (every=1, history 200) runs
1000 steps; the bytes held by its buffers, the Python heap (tracemalloc) and
the process RSS after 10 steps are compared with those after 1000.

    .venv/bin/python benchmarks/bench_probe.py           # full sizes
    .venv/bin/python benchmarks/bench_probe.py --quick   # small sizes, for a smoke run

Prints ratios, never pass/fail; ``--write docs/bench/probe.md`` stores them.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import initlab as il
from initlab.probe import histogram
from timing import MIN_REPEATS, Timing, interleaved, machine_line, uptime_line


def mlp(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cnn(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * 8 * 8, 10),
    )


def make_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer
) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def loop(
    model: nn.Module, step: Callable[[], None], steps: int, every: int | None, optimizer: torch.optim.Optimizer
) -> Callable[[], None]:
    """A whole training loop of ``steps`` steps, as a user runs it: with a fresh Probe (every=N) or without."""

    def run() -> None:
        if every is None:
            for _ in range(steps):
                step()
            return
        with il.Probe(model, every=every, optimizer=optimizer):
            for _ in range(steps):
                step()

    return run


def overhead(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, steps: int
) -> dict[str, Timing]:
    device = x.device
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    step = make_step(model, x, y, optimizer)
    runs = {
        "plain": loop(model, step, steps, None, optimizer),
        "probe every=10": loop(model, step, steps, 10, optimizer),
        "probe every=1": loop(model, step, steps, 1, optimizer),
        SERIAL: one_thread_histograms(loop(model, step, steps, 1, optimizer)),
    }
    for every in (None, 10, 1):
        loop(model, step, 10, every, optimizer)()  # warm-up, untimed: compiled kernels, buffers, caches
    timings = interleaved(runs, repeats, device=device, warmup=0)
    audit = interleaved({"audit (one batch)": lambda: il.audit(model, x, target=y)}, MIN_REPEATS, device=device)
    timings.update(audit)
    plain = timings["plain"].median
    print(f"\n{name}: {repeats} interleaved repeats of whole {steps}-step training loops")
    for key, timing in timings.items():
        per = steps if key != "audit (one batch)" else 1
        # the audit is one call: compared with one plain step
        ratio = timing.median / plain * (steps if per == 1 else 1)
        print(f"  {key:18s} {ratio:5.2f}x plain   {timing.line(1e3 / per, 'ms' + ('/step' if per > 1 else ''))}")
    recorded = timings["probe every=1"].median / plain
    print(f"  component: one recorded step = {recorded:.2f}x one plain step (every=1 loop / plain loop)")
    serial = timings[SERIAL].median / plain
    print(f"  component: with one-thread histograms (the count before it used numba's threads) = {serial:.2f}x")
    return timings


SERIAL = "every=1, 1-thread hist"


def one_thread_histograms(run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with every histogram counted on one thread (``PARALLEL_MIN`` out of reach), for the side-by-side."""

    def serial() -> None:
        before = histogram.PARALLEL_MIN
        histogram.PARALLEL_MIN = 1 << 62
        try:
            run()
        finally:
            histogram.PARALLEL_MIN = before

    return serial


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return 0


def memory(
    width: int, depth: int, batch: int, total_steps: int, device: torch.device
) -> dict[str, tuple[int, int]]:
    torch.manual_seed(0)
    model = mlp(width, depth).to(device)
    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    step = make_step(model, x, y, optimizer)
    with il.Probe(model, every=1, optimizer=optimizer, history=200):
        for _ in range(20):
            step()  # warm torch's and Python's own caches before anything is measured
    tracemalloc.start()
    with il.Probe(model, every=1, optimizer=optimizer, history=200) as session:

        def held() -> int:
            return sum(r.records.numel() * 8 + r.hists.numel() * 8 for r in session._rings.values())

        def device_bytes() -> int:
            return torch.cuda.memory_allocated(device) if device.type == "cuda" else rss_bytes()

        for _ in range(10):
            step()
        gc.collect()
        early = (held(), tracemalloc.get_traced_memory()[0], device_bytes())
        for _ in range(total_steps - 10):
            step()
        gc.collect()
        late = (held(), tracemalloc.get_traced_memory()[0], device_bytes())
        session.report()
    tracemalloc.stop()
    result = {
        "probe buffers": (early[0], late[0]),
        "python heap": (early[1], late[1]),
        ("CUDA allocated" if device.type == "cuda" else "process RSS"): (early[2], late[2]),
    }
    print(f"\nmemory of a probe (every=1, history=200) after 10 and after {total_steps} steps")
    for key, (a, b) in result.items():
        print(
            f"  {key:14s} {a / 2**20:9.2f} MiB -> {b / 2**20:9.2f} MiB   ({b / a if a else float('nan'):.3f}x)"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short loops")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu), e.g. cuda")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed training loop (200)")
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS, help=f"interleaved repeats (>= {MIN_REPEATS})")
    parser.add_argument("--skip-memory", action="store_true", help="time the loops only")
    parser.add_argument(
        "--write", default=None, metavar="FILE.md", help="also write the figures as Markdown"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.quick:
        sizes = (128, 20, 128, 8, 16, 20, 100)
    else:
        sizes = (256, 20, 256, 16, 64, 200, 1000)
    width, depth, batch, channels, image_batch, steps, total = sizes
    steps = args.steps or steps
    repeats = max(args.repeats, MIN_REPEATS)
    machine = machine_line()
    print(machine)
    print(platform.processor() or platform.machine())
    mlp_times = overhead(
        f"MLP {depth}x{width} ReLU, batch {batch}",
        mlp(width, depth),
        torch.randn(batch, width, device=device),
        torch.randint(0, 10, (batch,), device=device),
        repeats,
        steps,
    )
    cnn_times = overhead(
        f"CNN 3 conv ({channels}/{channels}/{2 * channels} channels), 32x32 images, batch {image_batch}",
        cnn(channels),
        torch.randn(image_batch, 3, 32, 32, device=device),
        torch.randint(0, 10, (image_batch,), device=device),
        repeats,
        steps,
    )
    uptime = uptime_line()
    print(f"uptime after the loops: {uptime}")
    held = None if args.skip_memory else memory(width, depth, batch, total, device)
    if args.write:
        write(args.write, device, args.quick, machine, uptime, steps, repeats,
              [(f"MLP {depth}x{width}, batch {batch}", mlp_times), (f"small CNN, batch {image_batch}", cnn_times)],
              held, total)


def write(
    path: str, device: torch.device, quick: bool, machine: str, uptime: str, steps: int, repeats: int,
    models: list[tuple[str, dict[str, Timing]]], held: dict[str, tuple[int, int]] | None, total: int,
) -> None:
    lines = [
        "# Probe overhead and memory",
        "",
        f"`benchmarks/bench_probe.py{' --quick' if quick else ''}` on {device}. {machine}.",
        f"`uptime` beside the figures: `{uptime}`.",
        "",
        f"**End to end**: a whole {steps}-step training loop (forward, backward, SGD step) as a user runs it, "
        "the probe created and closed inside the timed run, against the same loop without a probe; "
        f"{repeats} interleaved repeats, ratio of medians, spread = slowest / fastest repeat - 1. "
        "**Component**: one recorded step against one plain step, read from the every=1 loop; "
        "the audit is one call on one batch.",
        "",
        "| model | plain loop (end to end) | probe every=10 (end to end) | recorded step (component, every=1) "
        "| recorded step, one-thread histograms (component) | audit (one batch, end to end) |",
        "|---|---|---|---|---|---|",
    ]
    for label, times in models:
        plain = times["plain"]
        cells = [f"{plain.median / steps * 1e3:.1f} ms/step (spread {100 * plain.spread:.0f}%)"]
        for key in ("probe every=10", "probe every=1", SERIAL, "audit (one batch)"):
            scale = steps if key == "audit (one batch)" else 1  # one audit call against one plain step
            cells.append(f"{times[key].median / plain.median * scale:.2f}x (spread {100 * times[key].spread:.0f}%)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if held is not None:
        lines += [
            "",
            f"Memory of a probe (every=1, history=200) after 10 and after {total} steps:",
            "",
            f"| what | after 10 | after {total} | ratio |",
            "|---|---|---|---|",
        ]
        for key, (a, b) in held.items():
            lines.append(
                f"| {key} | {a / 2**20:.2f} MiB | {b / 2**20:.2f} MiB | {b / a if a else float('nan'):.3f}x |"
            )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
