"""The doctor on a 7B decoder's meta-device structure, and the fingerprint of a 125M checkpoint.

1. ``doctor`` on a LLaMA-7B-shaped decoder built on the meta device (hidden
   4096, 32 blocks, MLP 11008, vocabulary 32000: 6.74B parameters), built
   from initlab's own small decoder class and, when transformers is
   installed, as ``transformers.LlamaForCausalLM(LlamaConfig())``. Target:
   < 2 s and no parameter memory; the resident set size (RSS) and Python's
   tracemalloc peak are read around the call. Reference: building the meta
   model itself.
2. ``fingerprint`` of a GPT-2 small (124M) step-0 checkpoint written as
   safetensors (``GPT2LMHeadModel(GPT2Config())`` when transformers is
   installed, else a GPT-2-shaped model of this file with the same init),
   read back with ``initlab.diagnosis.load_tensors``. Target: < 30 s on the
   2-core machine. Reference: reading every tensor once in full (a sum over
   each), the least any whole-checkpoint analysis does.

The machine is shared: the load average is printed before and after.

    .venv/bin/python benchmarks/bench_doctor.py
    .venv/bin/python benchmarks/bench_doctor.py --quick    # a 1.3B decoder, a GPT-2 with 4 blocks
    .venv/bin/python benchmarks/bench_doctor.py --figures  # fingerprint accuracy on the test checkpoints
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from initlab.diagnosis import doctor, fingerprint, load_tensors
from timing import machine_line


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(dim)
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.post_attention_layernorm = nn.RMSNorm(dim)
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)


class Decoder(nn.Module):
    """A LLaMA-shaped decoder (structure only: the benchmark never runs it)."""

    def __init__(self, vocab: int, dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([Block(dim, hidden) for _ in range(layers)])
        self.norm = nn.RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(first call, best of the later calls, last result)."""
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return first, best, result


def bench_meta(quick: bool, repeats: int) -> None:
    dims = (32000, 2048, 5504, 24) if quick else (32000, 4096, 11008, 32)
    builders: dict[str, Callable[[], nn.Module]] = {"Decoder of this file": lambda: Decoder(*dims)}
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        config = transformers.LlamaConfig(
            vocab_size=dims[0], hidden_size=dims[1], intermediate_size=dims[2], num_hidden_layers=dims[3]
        )
        builders["transformers LlamaForCausalLM"] = lambda: transformers.LlamaForCausalLM(config)
    except ImportError:
        print("transformers not installed: the HF LLaMA row is skipped")
    for label, build in builders.items():
        def meta_build(build: Callable[[], nn.Module] = build) -> nn.Module:
            with torch.device("meta"):
                return build()

        build_first, build_best, model = best_of(repeats, meta_build)
        count = sum(p.numel() for p in model.parameters())
        rss_before = rss_mb()
        tracemalloc.start()
        first, best, report = best_of(repeats, lambda model=model: doctor(model))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = rss_mb()
        print(f"{label}: {count / 1e9:.2f}B parameters on the meta device")
        print(f"  build on meta        first {build_first:.3f} s, best {build_best:.3f} s")
        print(f"  doctor               first {first:.3f} s, best {best:.3f} s   ratio to the meta build {best / build_best:.2f}")
        print(f"  memory               RSS {rss_before:.0f} -> {rss_after:.0f} MB (+{rss_after - rss_before:.1f} MB); "
              f"tracemalloc peak {peak / 2**20:.1f} MB; parameters in float32 would take {4 * count / 2**30:.1f} GiB")
        print(f"  findings             {len(report.findings)} ({', '.join(sorted(report.codes)) or 'none'}); "
              f"structure only: {report.structure_only}")


class GPTBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.mlp_proj = nn.Linear(4 * dim, dim)


class GPT(nn.Module):
    def __init__(self, layers: int, dim: int = 768, vocab: int = 50257, positions: int = 1024) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(positions, dim)
        self.h = nn.ModuleList([GPTBlock(dim) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
            nn.init.normal_(p, std=std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)


def gpt2_state(quick: bool) -> tuple[str, dict[str, torch.Tensor]]:
    layers = 4 if quick else 12
    torch.manual_seed(0)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=layers))
        label = f"transformers GPT2LMHeadModel(GPT2Config(n_layer={layers}))"
        state = {name: p.detach().contiguous() for name, p in model.named_parameters()}
    except ImportError:
        label = f"GPT-2-shaped model of this file ({layers} blocks)"
        state = {name: p.detach().contiguous() for name, p in GPT(layers).named_parameters()}
    return label, state


def write_safetensors(state: dict[str, torch.Tensor], path: str) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError:
        torch.save(state, path.replace(".safetensors", ".pt"))
        return
    save_file(state, path)


def bench_fingerprint(quick: bool, repeats: int) -> None:
    label, state = gpt2_state(quick)
    count = sum(t.numel() for t in state.values())
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "step0.safetensors")
        write_safetensors(state, path)
        if not os.path.exists(path):
            path = path.replace(".safetensors", ".pt")
        size = os.path.getsize(path) / 2**20
        del state

        def read_all() -> float:
            return float(sum(float(t.double().sum()) for t in load_tensors(path).values()))

        def run() -> Any:
            return fingerprint(load_tensors(path))

        read_first, read_best, _ = best_of(repeats, read_all)
        first, best, result = best_of(repeats, run)
    families: dict[str, int] = {}
    for row in result.tensors:
        families[row.family] = families.get(row.family, 0) + 1
    explained = sum(row.explanation is not None for row in result.tensors)
    print(f"{label}: {count / 1e6:.1f}M parameters, {len(result.tensors)} tensors, {size:.0f} MB {os.path.splitext(path)[1]}")
    print(f"  read every tensor    first {read_first:.2f} s, best {read_best:.2f} s")
    print(f"  fingerprint          first {first:.2f} s, best {best:.2f} s   ratio to reading {best / read_best:.2f}")
    print(f"  sample               {result.sample_size} values per tensor; a normal's std to "
          f"+-{100 * 1.96 / math.sqrt(2 * result.sample_size):.2f}% (95%)")
    print(f"  families             {families}; explained {explained} of {len(result.tensors)}")


def figures() -> None:
    """The shares tests/test_fingerprint.py asserts, per checkpoint: family and std, and KS of the regenerated weights.

    ``random``: the tensors drawn at random (not zeros/ones); ``raw std``: how many of them have the
    fitted std (before an explanation sets it to the scheme's exact value) within 2%.
    """
    import sys
    from pathlib import Path

    from scipy import stats

    from initlab.plan import init_model

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import test_fingerprint as cases

    totals = [0, 0, 0, 0, 0]
    print(f"{'checkpoint':<62} {'tensors':>7} {'family+std':>10} {'KS p>0.01':>9} {'random':>6} {'raw std':>7}")
    for name in sorted(cases.CHECKPOINTS):
        torch.manual_seed(0)
        model, truth = cases.CHECKPOINTS[name]()
        original = cases._state(model)
        fp = fingerprint(original)
        accurate = sum(cases._accurate(fp, truth))
        with tempfile.TemporaryDirectory() as directory:
            init_model(model, plan=str(fp.save_plan(Path(directory) / "plan.yaml")), seed=1)
        regenerated = cases._state(model)
        passed = 0
        for tensor in truth:
            a, b = original[tensor].flatten().double().numpy(), regenerated[tensor].flatten().double().numpy()
            exact = truth[tensor][0] in ("zeros", "ones")
            passed += bool((a == b).all()) if exact else bool(stats.ks_2samp(a, b).pvalue > 0.01)
        random = [t for t, (family, _) in truth.items() if family not in ("zeros", "ones")]
        raw = sum(abs(fp[t].fitted_std / truth[t][1] - 1) <= cases.STD_TOLERANCE for t in random)
        row = [len(truth), accurate, passed, len(random), raw]
        totals = [a + b for a, b in zip(totals, row)]
        print(f"{name:<62} {row[0]:>7} {row[1]:>10} {row[2]:>9} {row[3]:>6} {row[4]:>7}")
    print(f"{'all':<62} {totals[0]:>7} {totals[1]:>10} {totals[2]:>9} {totals[3]:>6} {totals[4]:>7}   "
          f"({100 * totals[1] / totals[0]:.1f}%, {100 * totals[2] / totals[0]:.1f}%; "
          f"raw std of the random tensors {100 * totals[4] / totals[3]:.1f}%)")


def main() -> None:
    print(machine_line())  # load average per core; a warning when the machine is busy
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 1.3B decoder and a 4-block GPT-2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--figures", action="store_true", help="only the fingerprint accuracy of tests/test_fingerprint.py")
    args = parser.parse_args()
    if args.figures:
        figures()
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load()}")
    bench_meta(args.quick, args.repeats)
    print(f"after the doctor: {load()}")
    bench_fingerprint(args.quick, args.repeats)
    print(f"after the fingerprint: {load()}")


if __name__ == "__main__":
    main()
