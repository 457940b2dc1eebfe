"""Benchmark of the counter-based generator against torch's CPU generator, and of whole-model init.

Components, each one fill of one tensor, all taking turns
(``benchmarks/timing.py``: at least 5 repeats, medians and spread): fills of
64M float32 values (uniform, normal, truncated normal) against
``Tensor.uniform_``, ``Tensor.normal_`` and ``nn.init.trunc_normal_``; the
scaling from 1 thread to all cores; the ratio to a plain memory fill
(``Tensor.fill_`` in the same rounds, the bandwidth bound).

End to end: a transformer-shaped model built on the meta device and
materialized by ``init_model(model, plan, rng="counter")`` against torch's
``to_empty`` + ``reset_parameters``, a fresh meta model for every call; then
the shares of ``init_model`` on the materialized model (its fills alone, its
bookkeeping and report alone with the plan ``keep``, and the first touch of
fresh memory alone).

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

import numpy as np
import torch
from torch import nn

import initlab
from initlab.plan import init_model
from initlab.rng import Keyed, use_backend
from timing import MIN_REPEATS, interleaved, machine_line, uptime_line


def best_time(function: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` calls after one warm-up (the GPU section's single-run figures)."""
    function()  # warm up: compilation, page faults
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def one_thread(function: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        cores = initlab.rng.get_threads()
        initlab.rng.set_threads(1)
        try:
            function()
        finally:
            initlab.rng.set_threads(cores)

    return run


def fills(count: int, repeats: int) -> list[str]:
    lines = []
    out = torch.empty(count, dtype=torch.float32)
    stream = Keyed(0).child("bench")
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("uniform", lambda: stream.uniform_(out, -1.0, 1.0), lambda: out.uniform_(-1.0, 1.0)),
        ("normal", lambda: stream.normal_(out, 0.0, 0.02), lambda: out.normal_(0.0, 0.02)),
        (
            "truncated normal (+-2 sigma)",
            lambda: stream.truncated_normal_(out, 0.0, 0.02, -2.0, 2.0),
            lambda: nn.init.trunc_normal_(out, 0.0, 0.02, -0.04, 0.04),
        ),
    ]
    lines.append(
        f"{count / 2**20:.0f}M float32 values, {os.cpu_count()} cores, numba threads = {initlab.rng.get_threads()}; "
        f"component timings (one fill of one tensor), {max(repeats, MIN_REPEATS)} interleaved repeats each, medians"
    )
    lines.append("| distribution | initlab Keyed (all cores) | torch | speed-up vs torch | initlab 1 thread | scaling 1 -> all | x `fill_` (same run) | spread initlab / torch / fill_ |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, ours, theirs in cases:
        timings = interleaved(
            {"fill_": lambda: out.fill_(1.0), "initlab": ours, "initlab 1 thread": one_thread(ours), "torch": theirs},
            repeats,
        )
        mine, alone, reference, fill = (timings[k].median for k in ("initlab", "initlab 1 thread", "torch", "fill_"))
        spreads = " / ".join(f"{100 * timings[k].spread:.0f}%" for k in ("initlab", "torch", "fill_"))
        lines.append(
            f"| {name} | {mine * 1e3:.1f} ms ({count / mine / 1e6:.0f} M/s) | {reference * 1e3:.1f} ms "
            f"({count / reference / 1e6:.0f} M/s) | {reference / mine:.1f}x | {alone * 1e3:.1f} ms | "
            f"{alone / mine:.2f}x | {mine / fill:.1f}x ({fill * 1e3:.1f} ms) | {spreads} |"
        )
        print(lines[-1], flush=True)
    lines += floors(out, repeats)
    small = min(count, 1 << 20)
    part = out[:small]
    with use_backend("torch"):
        fallback = best_time(lambda: stream.normal_(part), 1)
    lines.append(
        f"pure-PyTorch fallback (same bits), normal: {small / fallback / 1e6:.1f} M/s "
        f"on {small / 2**20:.0f}M values"
    )
    return lines


def floors(out: torch.Tensor, repeats: int) -> list[str]:
    """The two stages of a float32 normal fill timed apart, on all cores, against ``fill_`` in the same rounds.

    The stream's values are made in two stages per chunk of Philox blocks:
    the words (Philox4x32-10, which every distribution of the stream needs,
    one 32-bit word per float32 value) and the transform of the words into
    values (Box-Muller for the normal). Each stage alone, over as many values
    as ``out`` holds, bounds from below what any fill of this stream costs.
    """
    from initlab.rng import kernels

    if not kernels.available():
        return ["stages of the fill: not measured (numba is not installed)"]
    stages = _stage_kernels()
    count = out.numel()
    chunk = 4 * kernels.CHUNK_BLOCKS
    chunks = count // chunk
    threads = initlab.rng.get_threads()
    k0, k1 = kernels.key_words(12345, 678)
    flat = out.numpy()
    timings = interleaved({
        "fill_": lambda: out.fill_(1.0),
        "words": lambda: stages[0](chunks, threads, k0, k1),
        "transform": lambda: stages[1](flat, chunks, threads, k0, k1),
        "normal": lambda: Keyed(0).child("bench").normal_(out, 0.0, 0.02),
    }, repeats)
    fill = timings["fill_"].median
    lines = [f"stages of a float32 fill, {count / 2**20:.0f}M values, {threads} threads, medians of the same rounds:"]
    for name, what in (("words", "Philox4x32-10 words alone (every distribution of the stream needs them)"),
                       ("transform", "normal transform alone (words in cache, values written to the tensor)"),
                       ("normal", "normal fill, both stages")):
        lines.append(f"  {what}: {timings[name].median * 1e3:.1f} ms = {timings[name].median / fill:.1f}x `fill_` "
                     f"({fill * 1e3:.1f} ms)")
    print("\n".join(lines), flush=True)
    return lines


def _stage_kernels() -> tuple[Callable[..., None], Callable[..., None]]:
    """Compiled loops that run one stage of the float32 normal kernel over whole chunks, on numba's threads."""
    from numba import njit, prange

    from initlab.rng import kernels

    fill_words, normal_values, blocks = kernels._fill_words, kernels._normal32_values, kernels.CHUNK_BLOCKS

    @njit(parallel=True, error_model="numpy")
    def words_only(chunks, threads, k0, k1):  # type: ignore[no-untyped-def]
        scratch = np.empty((threads, 4 * blocks), dtype=np.uint32)
        for thread in prange(threads):
            for chunk in range(thread, chunks, threads):
                fill_words(scratch[thread], chunk * blocks, blocks, k0, k1)

    @njit(parallel=True, error_model="numpy")
    def transform_only(out, chunks, threads, k0, k1):  # type: ignore[no-untyped-def]
        scratch = np.empty((threads, 4 * blocks), dtype=np.uint32)
        for thread in prange(threads):
            fill_words(scratch[thread], thread * blocks, blocks, k0, k1)
            for chunk in range(thread, chunks, threads):
                normal_values(out[chunk * 4 * blocks : (chunk + 1) * 4 * blocks], scratch[thread], 4 * blocks, 0.0, 0.02)

    return words_only, transform_only


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


LLM_PLAN = "truncated_normal(std=0.02); bias=zeros"


def end_to_end(vocab: int, width: int, depth: int, torch_trunc: bool, repeats: int, device: str = "cpu") -> list[str]:
    """``init_model`` against ``reset_parameters`` from the meta device, whole calls taking turns; then the shares."""
    with torch.device("meta"):
        count = sum(p.numel() for p in Transformer(vocab, width, depth).parameters())
    lines = [f"transformer-shaped model: vocab {vocab}, width {width}, depth {depth}: {count / 1e9:.2f}B parameters, "
             f"built on the meta device, materialized on {device}; {max(repeats, MIN_REPEATS)} interleaved repeats"]
    sync = torch.device(device) if device.startswith("cuda") else None
    # warm-ups, untimed: the device's context, the compiled kernels (numba's cache, Triton's compiler)
    torch.empty(1 << 15, device=device).uniform_()
    Keyed(0).child("warm-up").truncated_normal_(torch.empty(1 << 15, device=device), 0.0, 0.02, -2.0, 2.0)
    held: dict[str, nn.Module] = {}

    def fresh(name: str) -> None:
        held.clear()
        gc.collect()
        with torch.device("meta"):
            held[name] = Transformer(vocab, width, depth)

    def torch_default() -> None:
        model = held["reset_parameters"].to_empty(device=device)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()  # type: ignore[operator]

    def ours() -> None:
        init_model(held["init_model"], LLM_PLAN, 0, rng="counter", device=device)

    timings = interleaved({"reset_parameters": torch_default, "init_model": ours}, repeats, setup=fresh, device=sync)
    held.clear()
    gc.collect()
    for name, what in (("reset_parameters", "torch: to_empty + reset_parameters"),
                       ("init_model", f"initlab: init_model(model, {LLM_PLAN!r}, rng='counter')")):
        lines.append(f"end to end, {what}: {timings[name].line()}")
    ratio = timings["init_model"].median / timings["reset_parameters"].median
    lines.append(f"end to end, init_model / reset_parameters (medians): {ratio:.2f}x")
    lines += shares(vocab, width, depth, repeats, device, sync)
    if torch_trunc:
        with torch.device("meta"):
            model = Transformer(vocab, width, depth)
        model.to_empty(device=device)
        start = time.perf_counter()
        for param in model.parameters():
            if param.dim() >= 2:
                nn.init.trunc_normal_(param, 0.0, 0.02, -0.04, 0.04)
        lines.append(f"torch trunc_normal_(std=0.02) on every matrix (after to_empty, one run): {time.perf_counter() - start:.2f} s")
        del model
        gc.collect()
    return lines


def shares(vocab: int, width: int, depth: int, repeats: int, device: str, sync: torch.device | None) -> list[str]:
    """Components on a materialized model: init_model warm, its fills alone, its bookkeeping and report alone."""
    with torch.device("meta"):
        model = Transformer(vocab, width, depth)
    model.to_empty(device=device)
    parameters = len(init_model(model, LLM_PLAN, 0, rng="counter").rows)

    def fills_alone() -> None:
        space = Keyed(0)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.dim() >= 2:
                    space.child(name).truncated_normal_(param, 0.0, 0.02, -2.0, 2.0)
                else:
                    param.fill_(1.0 if name.endswith("weight") else 0.0)

    timings = interleaved({
        "init_model, materialized model": lambda: init_model(model, LLM_PLAN, 0, rng="counter"),
        "fills alone": fills_alone,
        "bookkeeping + report (plan 'keep')": lambda: init_model(model, "keep; bias=keep", 0, rng="counter"),
        "fresh memory: to_empty + zero_": lambda: _materialize(vocab, width, depth, device),
    }, repeats, device=sync)
    whole = timings["init_model, materialized model"].median
    lines = [f"components, each on the materialized model ({parameters} parameters):"]
    for name, timing in timings.items():
        lines.append(f"  {name:38s} {timing.line()}   = {timing.median / whole:.0%} of init_model on a materialized model")
    return lines


def _materialize(vocab: int, width: int, depth: int, device: str) -> None:
    with torch.device("meta"):
        model = Transformer(vocab, width, depth)
    model.to_empty(device=device)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()  # fresh memory is mapped at its first write: the page faults every first init pays
    del model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (4M values, ~60M-parameter model)")
    parser.add_argument("--skip-model", action="store_true", help="only the fill benchmarks")
    parser.add_argument("--skip-torch-trunc", action="store_true", help="skip torch's trunc_normal_ on the whole model")
    parser.add_argument("--skip-fills", action="store_true", help="only the whole-model benchmark")
    parser.add_argument("--device", default="cpu", help="device of the whole-model benchmark (default cpu)")
    args = parser.parse_args()
    count = (1 << 22) if args.quick else (1 << 26)
    repeats = MIN_REPEATS
    lines = [machine_line(), f"backend {initlab.rng.get_backend()}"]
    print("\n".join(lines), flush=True)
    if not args.skip_fills:
        lines += fills(count, repeats)
    if not args.skip_model:
        if args.quick:
            lines += end_to_end(32_000, 512, 6, not args.skip_torch_trunc, repeats, args.device)
        else:
            lines += end_to_end(50_304, 2_048, 18, not args.skip_torch_trunc, repeats, args.device)
    if not args.skip_fills:
        lines += gpu_fills(count, repeats) if torch.cuda.is_available() else ["GPU: not measured (no GPU on this machine)"]
    lines.append(f"`uptime` after the runs: {uptime_line()}")
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
