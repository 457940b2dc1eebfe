"""init_model overhead over raw sampling on a ~100M-parameter model.

Reference ("raw sampling"): a loop over the same parameters that fills each
one in place with the same scheme and the same per-parameter generator
(``initlab.rng.derive_generator(seed, name)``), i.e. the least work that
gives the same values; also ``torch.nn.init.kaiming_normal_`` with those
generators. init_model adds plan matching, validation, the report (expected
and measured statistics) and, for ``auto``, a torch.fx trace; the plan
``keep`` times that bookkeeping alone, without any sampling. Both run on the
same model in one process, taking turns; the best of ``--repeats`` runs of
each is reported.

    .venv/bin/python benchmarks/bench_plan.py            # 24 x Linear(2048, 2048): 100.7M parameters
    .venv/bin/python benchmarks/bench_plan.py --quick    # 24 x Linear(640, 640): 9.8M parameters
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import torch
from torch import nn

import initlab
from initlab.plan import init_model
from initlab.rng import derive_generator
from timing import MIN_REPEATS, Timing, interleaved, machine_line, uptime_line


def build(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def raw_initlab(model: nn.Module, seed: int) -> None:
    scheme, zeros = initlab.he_normal(), initlab.zeros()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2:
                scheme(param, layout="linear", generator=derive_generator(seed, name))
            else:
                zeros(param, layout="vector")


def raw_torch(model: nn.Module, seed: int) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2:
                nn.init.kaiming_normal_(param, nonlinearity="relu", generator=derive_generator(seed, name))
            else:
                nn.init.zeros_(param)


def best_of(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, Timing]:
    """Each run timed whole, the runs taking turns (``benchmarks/timing.py``)."""
    return interleaved(runs, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~10M parameters instead of ~100M")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    width, depth = (640, 24) if args.quick else (2048, 24)
    model = build(width, depth)
    count = sum(p.numel() for p in model.parameters())
    seed = 0

    raw_initlab(model, seed)  # touch the memory once so that no timing pays first-touch page faults
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        init_model(model, "he", seed, rng="torch")
    same = all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())

    best = best_of(args.repeats, {
        "raw": lambda: raw_initlab(model, seed),
        "torch": lambda: raw_torch(model, seed),
        "he": lambda: init_model(model, "he", seed, rng="torch"),
        "auto": lambda: init_model(model, "auto", seed, rng="torch"),
        "keep": lambda: init_model(model, "keep; bias=keep", seed, rng="torch"),
    })
    t_raw, t_torch, t_he, t_auto, t_keep = (best[k].best for k in ("raw", "torch", "he", "auto", "keep"))

    print(machine_line())
    print(f"model: {depth} x Linear({width}, {width}), {count / 1e6:.1f}M parameters, "
          f"{torch.get_num_threads()} threads, end to end (each a whole call), best of {max(args.repeats, MIN_REPEATS)} "
          "interleaved repeats")
    for name, timing in best.items():
        print(f"  {name:6s} {timing.line()}")
    print(f"init_model(plan='he') values equal the raw loop's: {same}")
    print(f"raw sampling, initlab schemes      {t_raw:8.3f} s")
    print(f"raw sampling, torch.nn.init        {t_torch:8.3f} s   ratio to initlab raw {t_torch / t_raw:5.3f}")
    print(f"init_model(plan='he')              {t_he:8.3f} s   ratio to initlab raw {t_he / t_raw:5.3f}   "
          f"overhead {100 * (t_he / t_raw - 1):+.1f}%")
    print(f"init_model(plan='auto', fx trace)  {t_auto:8.3f} s   ratio to initlab raw {t_auto / t_raw:5.3f}   "
          f"overhead {100 * (t_auto / t_raw - 1):+.1f}%")
    print(f"bookkeeping alone (plan 'keep')    {t_keep:8.3f} s   ratio to initlab raw {t_keep / t_raw:5.3f}   "
          "(matching, validation, report, measured stats; no sampling)")
    print(f"uptime: {uptime_line()}")


if __name__ == "__main__":
    main()
