"""Benchmark of the counter-based generator against torch's CPU generator.

Prints ratios measured in one run on the same tensors (best of a few
repetitions): fills of 64M float32 values (uniform, normal, truncated
normal) against ``Tensor.uniform_``, ``Tensor.normal_`` and
``nn.init.trunc_normal_``; the scaling from 1 thread to all cores; the ratio
to a plain memory fill (``Tensor.fill_``, the bandwidth bound); and an end to
end materialization of a transformer-shaped model built on the meta device.

    python benchmarks/bench_rng.py            # 64M values, 1B-parameter model
    python benchmarks/bench_rng.py --quick    # 4M values, ~60M-parameter model
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import time
from collections.abc import Callable

import torch
from torch import nn

import initlab
from initlab.plan.sharded import init_sharded
from initlab.rng import Keyed, use_backend


def best_time(function: Callable[[], object], repeats: int) -> float:
    function()  # warm up: compilation, page faults
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def fills(count: int, repeats: int) -> list[str]:
    lines = []
    out = torch.empty(count, dtype=torch.float32)
    stream = Keyed(0).child("bench")
    cores = os.cpu_count() or 1
    fill_time = best_time(lambda: out.fill_(1.0), repeats)
    cases: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
        ("uniform", lambda: stream.uniform_(out, -1.0, 1.0), lambda: out.uniform_(-1.0, 1.0), repeats),
        ("normal", lambda: stream.normal_(out, 0.0, 0.02), lambda: out.normal_(0.0, 0.02), repeats),
        (
            "truncated normal (+-2 sigma)",
            lambda: stream.truncated_normal_(out, 0.0, 0.02, -2.0, 2.0),
            lambda: nn.init.trunc_normal_(out, 0.0, 0.02, -0.04, 0.04),
            1,
        ),
    ]
    lines.append(f"{count / 2**20:.0f}M float32 values, {cores} cores, numba threads = {initlab.rng.get_threads()}")
    lines.append(f"plain memory fill (Tensor.fill_): {fill_time * 1e3:.1f} ms")
    lines.append("| distribution | initlab Keyed (all cores) | torch | speed-up vs torch | initlab 1 thread | scaling 1 -> all | x memory fill |")
    lines.append("|---|---|---|---|---|---|---|")
    for name, ours, theirs, torch_repeats in cases:
        ours_all = best_time(ours, repeats)
        initlab.rng.set_threads(1)
        ours_one = best_time(ours, repeats)
        initlab.rng.set_threads(cores)
        reference = best_time(theirs, torch_repeats)
        lines.append(
            f"| {name} | {ours_all * 1e3:.1f} ms ({count / ours_all / 1e6:.0f} M/s) | {reference * 1e3:.1f} ms "
            f"({count / reference / 1e6:.0f} M/s) | {reference / ours_all:.1f}x | {ours_one * 1e3:.1f} ms | "
            f"{ours_one / ours_all:.2f}x | {ours_all / fill_time:.1f}x |"
        )
    small = min(count, 1 << 20)
    part = out[:small]
    with use_backend("torch"):
        fallback = best_time(lambda: stream.normal_(part), 1)
    lines.append(
        f"pure-PyTorch fallback (same bits), normal: {small / fallback / 1e6:.1f} M/s "
        f"on {small / 2**20:.0f}M values"
    )
    return lines


class Block(nn.Module):
    """A pre-norm transformer block's parameters (attention and a 4x MLP)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)


class Transformer(nn.Module):
    def __init__(self, vocab: int, width: int, depth: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)


def llm_plan(name: str, param: torch.Tensor) -> object:
    if param.dim() >= 2:
        return initlab.truncated_normal(std=0.02)
    return initlab.ones() if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight" else initlab.zeros()


def end_to_end(vocab: int, width: int, depth: int, torch_trunc: bool, device: str = "cpu") -> list[str]:
    with torch.device("meta"):
        model = Transformer(vocab, width, depth)
    count = sum(p.numel() for p in model.parameters())
    lines = [f"transformer-shaped model: vocab {vocab}, width {width}, depth {depth}: {count / 1e9:.2f}B parameters, "
             f"on {device}"]

    def finished() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()

    # warm-ups, untimed: the device's context, the compiled kernels (numba's cache, Triton's compiler)
    torch.empty(1 << 15, device=device).uniform_()
    Keyed(0).child("warm-up").truncated_normal_(torch.empty(1 << 15, device=device), 0.0, 0.02, -2.0, 2.0)
    finished()

    start = time.perf_counter()
    model.to_empty(device=device)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()  # type: ignore[operator]
    torch_default = finished() - start
    lines.append(f"torch to_empty + reset_parameters: {torch_default:.2f} s")
    if torch_trunc:
        start = time.perf_counter()
        for param in model.parameters():
            if param.dim() >= 2:
                nn.init.trunc_normal_(param, 0.0, 0.02, -0.04, 0.04)
        torch_own = finished() - start
        lines.append(f"torch trunc_normal_(std=0.02) on every matrix (after to_empty): {torch_own:.2f} s")
    del model
    gc.collect()

    with torch.device("meta"):
        model = Transformer(vocab, width, depth)
    start = time.perf_counter()
    model.to_empty(device=device)
    rows = init_sharded(model, llm_plan, seed=0)
    first = finished() - start
    # the same again on the materialized model: what every later init in the process costs
    start = time.perf_counter()
    init_sharded(model, llm_plan, seed=0)
    ours = finished() - start
    lines.append(
        f"initlab to_empty + Keyed truncated normal plan ({len(rows)} parameters): {first:.2f} s at the first call, "
        f"{ours:.2f} s again = {torch_default / ours:.1f}x faster than reset_parameters"
        + (f", {torch_own / ours:.1f}x faster than trunc_normal_" if torch_trunc else "")
    )
    del model
    gc.collect()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (4M values, ~60M-parameter model)")
    parser.add_argument("--skip-model", action="store_true", help="only the fill benchmarks")
    parser.add_argument("--skip-torch-trunc", action="store_true", help="skip torch's trunc_normal_ on the whole model")
    parser.add_argument("--skip-fills", action="store_true", help="only the whole-model benchmark")
    parser.add_argument("--device", default="cpu", help="device of the whole-model benchmark (default cpu)")
    args = parser.parse_args()
    count = (1 << 22) if args.quick else (1 << 26)
    repeats = 2 if args.quick else 3
    lines = [f"torch {torch.__version__}, backend {initlab.rng.get_backend()}, {os.cpu_count()} cores"]
    if not args.skip_fills:
        lines += fills(count, repeats)
    if not args.skip_model:
        if args.quick:
            lines += end_to_end(32_000, 512, 6, not args.skip_torch_trunc, args.device)
        else:
            lines += end_to_end(50_304, 2_048, 18, not args.skip_torch_trunc, args.device)
    if not args.skip_fills:
        lines += gpu_fills(count, repeats) if torch.cuda.is_available() else ["GPU: not measured (no GPU on this machine)"]
    print("\n".join(lines))


def gpu_fills(count: int, repeats: int) -> list[str]:
    """Keyed on the GPU (the PyTorch path) against torch's CUDA generator, and its bits against the CPU's."""
    device = torch.device("cuda")
    out = torch.empty(count, dtype=torch.float32, device=device)
    stream = Keyed(0).child("bench")

    def timed(function: Callable[[], object]) -> float:
        def run() -> None:
            function()
            torch.cuda.synchronize()

        return best_time(run, repeats)

    fill_time = timed(lambda: out.fill_(1.0))
    # a fill writes 4 bytes per value: the bandwidth bound of any generator
    lines = [f"GPU: {torch.cuda.get_device_name()}, {count / 2**20:.0f}M float32 values",
             f"plain memory fill (Tensor.fill_): {fill_time * 1e3:.2f} ms ({4 * count / fill_time / 1e9:.0f} GB/s)",
             "| distribution | initlab Keyed | torch (Philox, CUDA) | speed-up vs torch | share of the fill's bandwidth |",
             "|---|---|---|---|---|"]
    cases = [
        ("uniform", lambda: stream.uniform_(out, -1.0, 1.0), lambda: out.uniform_(-1.0, 1.0)),
        ("normal", lambda: stream.normal_(out, 0.0, 0.02), lambda: out.normal_(0.0, 0.02)),
        ("truncated normal (+-2 sigma)", lambda: stream.truncated_normal_(out, 0.0, 0.02, -2.0, 2.0),
         lambda: nn.init.trunc_normal_(out, 0.0, 0.02, -0.04, 0.04)),
    ]
    for name, ours, theirs in cases:
        mine, reference = timed(ours), timed(theirs)
        lines.append(f"| {name} | {mine * 1e3:.2f} ms ({count / mine / 1e6:.0f} M/s) | {reference * 1e3:.2f} ms "
                     f"({count / reference / 1e6:.0f} M/s) | {reference / mine:.2f}x | {fill_time / mine:.0%} |")
    small = 1 << 22
    for name, method in (("uniform", "uniform_"), ("normal", "normal_"), ("truncated normal", "truncated_normal_")):
        on_gpu = getattr(stream, method)(torch.empty(small, device=device)).cpu()
        on_cpu = getattr(stream, method)(torch.empty(small))
        same = torch.equal(on_gpu.view(torch.int32), on_cpu.view(torch.int32))
        lines.append(f"{name}: GPU and CPU give the same bits on {small / 2**20:.0f}M values: {same}")
    return lines


if __name__ == "__main__":
    main()
