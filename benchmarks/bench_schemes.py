"""Sampling speed of initlab's schemes against torch.nn.init, on the same tensors in one run.

    .venv/bin/python benchmarks/bench_schemes.py            # 64M values, 4096 x 4096 orthogonal
    .venv/bin/python benchmarks/bench_schemes.py --quick    # 4M values, 1024 x 1024

Each pair is timed alternately, in alternating order, on the same
preallocated tensor and the best of ``--repeats`` runs is kept; the ratio
is reference time / initlab time, so > 1 means initlab is faster. The
figures are printed and written as a Markdown table (``--out``).
"""

from __future__ import annotations

import argparse
import math
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import initlab as il
from timing import MIN_REPEATS, interleaved, machine_line, uptime_line


def compare(
    reference: Callable[[], object], ours: Callable[[], object], repeats: int
) -> tuple[float, float, float]:
    """Best times of the two, taking turns (``benchmarks/timing.py``), and the larger of their spreads."""
    timings = interleaved({"torch": reference, "initlab": ours}, repeats)
    spread = max(timing.spread for timing in timings.values())
    return timings["torch"].best, timings["initlab"].best, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (4M values, 1024 x 1024)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per method for the fills (default 15; at most 4 for the slow cases)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file for the figures (default docs/bench/schemes.md unless --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    values = 4 * 2**20 if args.quick else 64 * 2**20
    side = 1024 if args.quick else 4096
    repeats = args.repeats or 15
    slow_repeats = min(repeats, MIN_REPEATS)
    columns = 4096
    x = torch.empty(values // columns, columns)
    square = torch.empty(side, side)
    generator = torch.Generator().manual_seed(0)

    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("normal(0, 1)", lambda: nn.init.normal_(x, generator=generator),
         lambda: il.normal()(x, generator=generator)),
        ("uniform(-1, 1)", lambda: nn.init.uniform_(x, -1.0, 1.0, generator=generator),
         lambda: il.uniform(-1.0, 1.0)(x, generator=generator)),
        ("he_normal vs kaiming_normal_", lambda: nn.init.kaiming_normal_(x, generator=generator),
         lambda: il.he_normal()(x, generator=generator)),
        ("glorot_uniform vs xavier_uniform_", lambda: nn.init.xavier_uniform_(x, generator=generator),
         lambda: il.glorot_uniform()(x, generator=generator)),
        ("truncated_normal(+-2 sigma) vs trunc_normal_", lambda: nn.init.trunc_normal_(x, generator=generator),
         lambda: il.truncated_normal()(x, generator=generator)),
        (f"orthogonal {side}x{side}", lambda: nn.init.orthogonal_(square, generator=generator),
         lambda: il.orthogonal()(square, generator=generator)),
    ]

    header = (
        f"initlab {il.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads; {values / 2**20:.0f}M float32 values "
        f"({tuple(x.shape)}), component timings (one call on one tensor), best of {repeats} interleaved "
        f"repeats ({slow_repeats} for truncated normal and orthogonal)"
    )
    machine = machine_line()
    print(machine)
    print(header)
    rows = []
    for name, reference, ours in cases:
        slow = name.startswith(("orthogonal", "truncated"))
        reference_s, ours_s, spread = compare(reference, ours, slow_repeats if slow else repeats)
        count = square.numel() if name.startswith("orthogonal") else x.numel()
        ratio = reference_s / ours_s
        rows.append((name, reference_s, ours_s, count / ours_s / 1e6, ratio, spread))
        print(
            f"{name:<46} torch {reference_s * 1e3:9.1f} ms   initlab {ours_s * 1e3:9.1f} ms   "
            f"{count / ours_s / 1e6:8.1f} M/s   ratio {ratio:6.2f}   spread {100 * spread:.0f}%"
        )
    uptime = uptime_line()
    print(f"uptime: {uptime}")

    out = args.out if args.out is not None else (None if args.quick else Path("docs/bench/schemes.md"))
    if out is not None:
        lines = [
            "# Schemes: sampling speed against torch.nn.init",
            "",
            "`.venv/bin/python benchmarks/bench_schemes.py" + (" --quick" if args.quick else "") + "`",
            "",
            header + ". Ratio = torch time / initlab time on the same tensor "
            "(> 1: initlab faster); torch and initlab take turns on the same tensor; spread = "
            "slowest / fastest repeat - 1, the larger of the two.",
            "",
            f"{machine}. `uptime`: `{uptime}`.",
            "",
            "| case (component: one fill) | torch (ms) | initlab (ms) | initlab M values/s | ratio | spread |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, reference_s, ours_s, rate, ratio, spread in rows:
            lines.append(
                f"| {name} | {reference_s * 1e3:.1f} | {ours_s * 1e3:.1f} | {rate:.1f} | {ratio:.2f} | {100 * spread:.0f}% |"
            )
        lines += [
            "",
            "Targets: normal and uniform >= 0.9; truncated normal >= 5 (64M values); "
            "orthogonal 4096 x 4096 >= 1.0 within noise (the same QR, so the same bits as torch).",
            "",
        ]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
        print(f"wrote {out}")
    assert all(math.isfinite(row[4]) for row in rows)


if __name__ == "__main__":
    main()
