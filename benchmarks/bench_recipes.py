"""The gpt2 recipe on a meta-device GPT-2: init_model against raw sampling and transformers' own init.

Five ways to a GPT-2 model with GPT-2's init, on CPU, in one process, taking
turns (the best of ``--repeats`` runs of each):

* ``init_model(meta_model, plan="gpt2")``: the model built from
  ``GPT2Config`` under ``torch.device("meta")``, then materialized and filled
  by initlab (knobs read from the config, coverage checked with
  ``strict=True``, the report with measured stats);
* raw sampling, the least work that gives the same values (checked equal):
  ``to_empty`` on the meta model, then a loop that fills each parameter in
  place with the scheme the recipe gives it and the same per-parameter
  generator (``initlab.rng.derive_generator(seed, name)``);
* both again with ``rng="counter"``: initlab's counter-based generator
  (``initlab.rng.Keyed(seed).child(name)``), whose numba kernels fill in
  parallel chunks: the fastest initlab fill path on a CPU (other values, the
  same distributions);
* ``transformers.GPT2LMHeadModel(config)`` on CPU: the library building the
  model and running its own ``_init_weights``.

The machine may be shared: the 1-minute load average is printed before and
after the timings.

    .venv/bin/python benchmarks/bench_recipes.py               # GPT-2 small: 12 x 768, 124M parameters (~1 min)
    .venv/bin/python benchmarks/bench_recipes.py --size xl     # GPT-2 XL: 48 x 1600, 1.56B parameters (~5 min, 7 GB)
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import initlab
from initlab.rng import GeneratorLike, Keyed, derive_generator

SIZES = {"small": (12, 768, 12), "xl": (48, 1600, 25)}
RNGS = ("torch", "counter")


def config(size: str) -> Any:
    import transformers

    layers, width, heads = SIZES[size]
    return transformers.GPT2Config(n_layer=layers, n_embd=width, n_head=heads, vocab_size=50257, n_positions=1024)


def meta_model(size: str) -> Any:
    import transformers

    with torch.device("meta"):
        return transformers.GPT2LMHeadModel(config(size))


def with_recipe(size: str, seed: int, rng: str = "torch") -> nn.Module:
    model = meta_model(size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        initlab.init_model(model, "gpt2", seed, rng=rng, strict=True)
    return model


def warm_up(seed: int) -> None:
    """The recipe once on a tiny GPT-2 with each generator, untimed: imports and compiled kernels (numba's cache)."""
    import transformers

    for rng in ("torch", "counter"):
        tiny = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16,
                                                                    n_positions=8, bos_token_id=0, eos_token_id=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            initlab.init_model(tiny, "gpt2", seed, rng=rng, strict=True)


def stream(rng: str, seed: int, name: str) -> GeneratorLike:
    """The per-parameter generator init_model uses for ``rng``."""
    return derive_generator(seed, name) if rng == "torch" else Keyed(seed).child(name)


def fill_raw(name: str, param: torch.Tensor, layers: int, seed: int, rng: str) -> None:
    """What the gpt2 recipe puts in one GPT-2 parameter, with the recipe's scheme and generator."""
    if name.endswith("c_proj.weight"):
        initlab.normal(std=0.02 / math.sqrt(2 * layers))(param, generator=stream(rng, seed, name))
    elif param.dim() == 2:
        initlab.normal(std=0.02)(param, generator=stream(rng, seed, name))
    elif name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
        param.fill_(1.0)
    else:
        param.zero_()


def raw(size: str, seed: int, rng: str = "torch") -> nn.Module:
    """to_empty, then every parameter filled in place with the recipe's scheme and generator."""
    model = meta_model(size)
    model.to_empty(device="cpu")
    model.tie_weights()
    with torch.no_grad():
        for name, param in model.named_parameters():
            fill_raw(name, param, SIZES[size][0], seed, rng)
    return model


def same_as_raw(model: nn.Module, size: str, seed: int, rng: str) -> bool:
    """Whether every parameter equals the raw loop's value (one parameter in memory at a time)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            expected = torch.empty_like(param)
            fill_raw(name, expected, SIZES[size][0], seed, rng)
            if not torch.equal(param, expected):
                return False
    return True


def library(size: str, seed: int) -> nn.Module:
    import transformers

    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(config(size))


def best_of(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each run; the runs take turns, and each model is freed before the next run."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            gc.collect()
            start = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - start)
            del result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="small",
                        help="small: GPT-2 small (124M parameters, default); xl: GPT-2 XL (1.56B, about 7 GB of memory)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = args.size
    seed = 0

    warm_up(seed)
    same = {}
    for rng in RNGS:
        ours = with_recipe(size, seed, rng)
        count = sum(p.numel() for p in ours.parameters())
        same[rng] = same_as_raw(ours, size, seed, rng)
        del ours
    load_before = os.getloadavg()[0]
    runs: dict[str, Callable[[], object]] = {}
    for rng in RNGS:
        runs[f"recipe {rng}"] = lambda rng=rng: with_recipe(size, seed, rng)  # type: ignore[misc]
        runs[f"raw {rng}"] = lambda rng=rng: raw(size, seed, rng)  # type: ignore[misc]
    runs["library"] = lambda: library(size, seed)
    best = best_of(args.repeats, runs)
    load_after = os.getloadavg()[0]

    layers, width, _ = SIZES[size]
    t_library = best["library"]
    print(f"model: GPT-2 {size.upper()} ({layers} x {width}), {count / 1e9:.3f}B parameters, float32, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} cores")
    for rng in RNGS:
        t_raw, t_recipe = best[f"raw {rng}"], best[f"recipe {rng}"]
        print(f"rng={rng!r}: init_model values equal the raw loop's: {same[rng]}")
        print(f"  raw sampling after to_empty                {t_raw:8.2f} s")
        print(f"  init_model(meta model, plan='gpt2')        {t_recipe:8.2f} s   ratio to raw {t_recipe / t_raw:5.3f}"
              f"   {t_library / t_recipe:5.2f}x as fast as transformers")
    fastest = min(RNGS, key=lambda rng: best[f"raw {rng}"])
    print(f"transformers GPT2LMHeadModel(config), its own init  {t_library:8.2f} s   "
          f"ratio to the fastest raw fill (rng={fastest!r}) {t_library / best[f'raw {fastest}']:5.2f}")

if __name__ == "__main__":
    main()
