"""Benchmark: a 7B-parameter decoder materialized from the meta device by initlab, against a plain fill.

LLaMA-2-7B shapes (vocab 32000, width 4096, MLP 11008, 32 layers: 6.74B
parameters) in bfloat16, built on the meta device and materialized on the
CPU by ``init_model(part, "normal(std=0.02); *norm.weight=ones", seed)``
(counter streams, the default): the init transformers gives LLaMA models
(``LlamaPreTrainedModel._init_weights``: normal with ``initializer_range``
0.02, RMSNorm weights one; transformers 5.24.0,
src/transformers/models/llama/modeling_llama.py). The reference, in the same
run, is ``torch.empty(n, dtype=torch.bfloat16).fill_(1.0)`` on the same
sizes: fresh memory written once, the machine's memory-write rate. Both
include the first touch of fresh pages, as a materialization does.

The parts (embedding, each decoder layer, norm and head) are materialized
and freed one after another, so the run needs one layer's memory (0.4 GB),
not the model's 13.5 GB (``--whole`` holds the whole model, for machines
with the memory). Every figure is a ratio measured in this run.

With CUDA, the same layers are materialized on the GPU against
``torch.empty(..., device="cuda").fill_``; without, the GPU part prints one
line saying it was skipped.

    python benchmarks/bench_scale.py             # the 6.74B model, 2 threads
    python benchmarks/bench_scale.py --quick     # 4 layers (0.9B parameters)
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import warnings

import torch
from torch import nn

import initlab

PLAN = "normal(std=0.02); *norm.weight=ones"
VOCAB, WIDTH, MLP, LAYERS, HEADS = 32000, 4096, 11008, 32, 32
DTYPE = torch.bfloat16


class RMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))


class DecoderLayer(nn.Module):
    """The parameters of a LLaMA decoder layer: attention without biases, a gated MLP, two RMSNorms."""

    def __init__(self) -> None:
        super().__init__()
        self.input_norm = RMSNorm(WIDTH)
        self.q_proj = nn.Linear(WIDTH, WIDTH, bias=False)
        self.k_proj = nn.Linear(WIDTH, WIDTH, bias=False)
        self.v_proj = nn.Linear(WIDTH, WIDTH, bias=False)
        self.o_proj = nn.Linear(WIDTH, WIDTH, bias=False)
        self.post_norm = RMSNorm(WIDTH)
        self.gate_proj = nn.Linear(WIDTH, MLP, bias=False)
        self.up_proj = nn.Linear(WIDTH, MLP, bias=False)
        self.down_proj = nn.Linear(MLP, WIDTH, bias=False)


class Decoder(nn.Module):
    def __init__(self, layers: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, WIDTH)
        self.layers = nn.ModuleList(DecoderLayer() for _ in range(layers))
        self.norm = RMSNorm(WIDTH)
        self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)


def parts(model: Decoder) -> list[tuple[str, nn.Module]]:
    """The pieces materialized one after another: embedding, each layer, the norm and head together."""
    tail = nn.ModuleDict({"norm": model.norm, "lm_head": model.lm_head})
    return [("embed_tokens", model.embed_tokens), *((f"layers.{i}", layer) for i, layer in enumerate(model.layers)),
            ("norm, lm_head", tail)]


def _nbytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def materialize(part: nn.Module, device: str, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds for ``init_model`` to materialize and fill ``part`` (a meta module) on ``device``."""
    _synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        initlab.init_model(part, PLAN, seed, device=device)
    _synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu


def plain_fill(count: int, device: str) -> tuple[float, float]:
    """(wall, CPU) seconds for ``torch.empty(count).fill_`` on fresh memory of the same size and dtype."""
    _synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    out = torch.empty(count, dtype=DTYPE, device=device).fill_(1.0)
    _synchronize(device)
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    del out
    return elapsed


def _free(part: nn.Module) -> None:
    part.to_empty(device="meta")  # drop the storage; the next part reuses the memory
    gc.collect()


def run(layers: int, device: str, whole: bool, seed: int = 0) -> list[str]:
    with torch.device("meta"):
        model = Decoder(layers)
    total = sum(p.numel() for p in model.parameters())
    # warm-ups, untimed: compiled kernels, the allocator
    warm = nn.Linear(256, 256, device="meta").to(DTYPE)
    materialize(warm, device, seed)
    plain_fill(1 << 20, device)
    ours, reference = [0.0, 0.0], [0.0, 0.0]
    written = 0
    for _, part in parts(model):
        part.to(DTYPE)
        ours = [a + b for a, b in zip(ours, materialize(part, device, seed))]
        count = sum(p.numel() for p in part.parameters())
        written += _nbytes(part)
        if not whole:
            _free(part)
        reference = [a + b for a, b in zip(reference, plain_fill(count, device))]
    gigabytes = written / 1e9
    lines = [
        f"decoder: vocab {VOCAB}, width {WIDTH}, MLP {MLP}, {layers} layers: {total / 1e9:.2f}B parameters, "
        f"{str(DTYPE).replace('torch.', '')}, {gigabytes:.1f} GB, on {device}"
        + ("" if whole else ", materialized part by part (one layer resident at a time)"),
        f"torch threads {torch.get_num_threads()}, initlab threads {initlab.rng.get_threads()}, "
        f"backend {initlab.rng.get_backend()}",
        "| what | seconds | GB/s | share of the fill rate | CPU seconds (all threads) | share, in CPU time |",
        "|---|---|---|---|---|---|",
        f"| torch.empty(n).fill_(1.0), same sizes | {reference[0]:.2f} | {gigabytes / reference[0]:.2f} | 100% | "
        f"{reference[1]:.2f} | 100% |",
        f"| init_model(plan={PLAN!r}) from meta | {ours[0]:.2f} | {gigabytes / ours[0]:.2f} | "
        f"{100 * reference[0] / ours[0]:.0f}% | {ours[1]:.2f} | {100 * reference[1] / ours[1]:.0f}% |",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 layers instead of 32")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and initlab (default: 2)")
    parser.add_argument("--whole", action="store_true", help="keep every part resident (needs ~14 GB)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    initlab.rng.set_threads(args.threads)
    layers = 4 if args.quick else LAYERS
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for line in run(layers, "cpu", args.whole):
        print(line)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
        for line in run(layers, "cuda", args.whole):
            print(line)
    else:
        print("GPU: no CUDA device here; the GPU materialization figures were skipped (they await a GPU machine)")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()


