"""LSUV: initlab.datainit.lsuv against the ``lsuv`` package from PyPI, side by side in one run.

Same model (the same orthonormal starting weights, drawn once; both runs
then skip their own orthonormal step), same batch, same target std and
tolerance. Prints wall time (best of the repeats, as timeit does), the speed-up, and the
accuracy of the result: max and mean |std - target| over every covered
layer's output, measured the same way for both (one forward pass, hooks).

    .venv/bin/python benchmarks/bench_lsuv.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import time
from collections.abc import Callable

import torch
from torch import nn

from initlab.datainit import covered_layers, orthonormal_
from initlab.datainit import lsuv as initlab_lsuv

TARGET, TOL = 1.0, 0.1


def mlp(depth: int, width: int, inputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inputs, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cnn(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * channels, 4 * channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * channels, 10),
    )  # fmt: skip


def layer_std_errors(model: nn.Module, batch: torch.Tensor) -> list[float]:
    errors: list[float] = []
    handles = [
        m.register_forward_hook(lambda m, a, out: errors.append(abs(float(out.double().std()) - TARGET)))
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    model.eval()
    with torch.no_grad():
        model(batch)
    for handle in handles:
        handle.remove()
    return errors


def run_reference(model: nn.Module, batch: torch.Tensor) -> None:
    import lsuv

    with contextlib.redirect_stdout(io.StringIO()):
        lsuv.lsuv_with_singlebatch(model, batch, needed_std=TARGET, std_tol=TOL, max_attempts=10, do_orthonorm=False, verbose=False)


def measure(name: str, base: nn.Module, batch: torch.Tensor, fn: Callable[[nn.Module, torch.Tensor], object], repeats: int) -> tuple[float, list[float]]:
    times = []
    errors: list[float] = []
    for _ in range(repeats):
        model = copy.deepcopy(base)
        start = time.perf_counter()
        fn(model, batch)
        times.append(time.perf_counter() - start)
        errors = layer_std_errors(model, batch)
    return min(times), errors


def compare(title: str, base: nn.Module, batch: torch.Tensor, repeats: int) -> list[str]:
    orthonormal_(covered_layers(base, "bench"), seed=0)
    runs = {
        "lsuv (PyPI 0.3.0)": lambda m, b: run_reference(m, b),
        "initlab single_pass": lambda m, b: initlab_lsuv(m, b, target_std=TARGET, tol=TOL, max_iter=10, orthonormal=False, mode="single_pass"),
        "initlab truncated": lambda m, b: initlab_lsuv(m, b, target_std=TARGET, tol=TOL, max_iter=10, orthonormal=False, mode="truncated"),
    }
    results = {name: measure(name, base, batch, fn, repeats) for name, fn in runs.items()}
    reference_time = results["lsuv (PyPI 0.3.0)"][0]
    lines = [f"### {title}", "", "| implementation | time (s) | speed-up vs lsuv | max abs(std - 1) | mean abs(std - 1) |", "|---|---|---|---|---|"]
    for name, (seconds, errors) in results.items():
        lines.append(
            f"| {name} | {seconds:.4f} | {reference_time / seconds:.1f}x | {max(errors):.2e} | {sum(errors) / len(errors):.2e} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    torch.manual_seed(0)
    width, samples = (64, 128) if args.quick else (256, 512)
    channels, images, side = (8, 16, 16) if args.quick else (16, 64, 32)
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {repeats} run(s); target std {TARGET}, tol {TOL}", ""]
    lines += compare(f"20-layer tanh MLP, width {width}, batch {samples}", mlp(20, width, 64), torch.randn(samples, 64), repeats)
    lines.append("")
    lines += compare(f"6-layer CNN ({channels}-{4 * channels} channels), batch {images}x3x{side}x{side}", cnn(channels), torch.randn(images, 3, side, side), repeats)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
