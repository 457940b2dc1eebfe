"""LSUV: initlab.datainit.lsuv against the ``lsuv`` package from PyPI, side by side in one run.

End to end: the public call as a user makes it on a fresh copy of the same
model (``il.lsuv(model, batch)`` with its orthonormal start, against
``lsuv.lsuv_with_singlebatch(model, batch)`` with the package's). Components:
the LSUV stage alone (both given the same orthonormal start, their own
orthonormal step skipped) and initlab's orthonormal start alone. Same batch,
same target std and tolerance; all runs take turns (``benchmarks/timing.py``),
median, best and spread of the repeats, the speed-up as a ratio of medians
against the package run of the same kind, and the accuracy of each result:
max and mean |std - target| over every covered layer's output, measured the
same way for all (one forward pass, hooks). Also checks that il.lsuv's values
equal, bit for bit, one QR per weight followed by the same correction.

    .venv/bin/python benchmarks/bench_lsuv.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
from collections.abc import Callable

import torch
from torch import nn

from initlab.datainit import covered_layers, orthonormal_
from initlab.datainit import lsuv as initlab_lsuv
from timing import MIN_REPEATS, interleaved, machine_line, uptime_line

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


def run_reference(model: nn.Module, batch: torch.Tensor, orthonormal: bool) -> None:
    import lsuv

    with contextlib.redirect_stdout(io.StringIO()):
        lsuv.lsuv_with_singlebatch(model, batch, needed_std=TARGET, std_tol=TOL, max_attempts=10, do_orthonorm=orthonormal, verbose=False)


def one_qr_per_weight(model: nn.Module, seed: int = 0) -> None:
    """The orthonormal start as it was drawn before batching: one QR per weight, same streams."""
    from initlab.rng import derive_generator
    from initlab.schemes import get

    scheme = get("orthogonal")
    with torch.no_grad():
        for name, module in covered_layers(model, "bench"):
            weight = module.weight
            fresh = torch.empty(weight.shape)
            scheme(fresh.reshape(weight.shape[0], -1), layout="linear", generator=derive_generator(seed, f"{name}.weight"))
            weight.copy_(fresh)
            if module.bias is not None:
                module.bias.zero_()


def compare(title: str, base: nn.Module, batch: torch.Tensor, repeats: int) -> list[str]:
    started = copy.deepcopy(base)
    orthonormal_(covered_layers(started, "bench"), seed=0)
    models: dict[str, nn.Module] = {}
    stage = dict(target_std=TARGET, tol=TOL, max_iter=10, orthonormal=False)
    runs: dict[str, Callable[[], object]] = {
        # end to end: the public call on a fresh copy of the model, orthonormal start included
        "lsuv package": lambda: run_reference(models["lsuv package"], batch, orthonormal=True),
        "il.lsuv": lambda: initlab_lsuv(models["il.lsuv"], batch, target_std=TARGET, tol=TOL, max_iter=10),
        # components: the same orthonormal start given to both, the LSUV stage alone
        "lsuv package, stage": lambda: run_reference(models["lsuv package, stage"], batch, orthonormal=False),
        "il.lsuv single_pass, stage": lambda: initlab_lsuv(models["il.lsuv single_pass, stage"], batch, mode="single_pass", **stage),
        "il.lsuv truncated, stage": lambda: initlab_lsuv(models["il.lsuv truncated, stage"], batch, mode="truncated", **stage),
        "il orthonormal start": lambda: orthonormal_(covered_layers(models["il orthonormal start"], "bench"), seed=0),
    }

    def setup(name: str) -> None:
        models[name] = copy.deepcopy(started if name.endswith("stage") else base)

    timings = interleaved(runs, repeats, setup=setup)
    errors = {name: layer_std_errors(model, batch) for name, model in models.items() if name != "il orthonormal start"}
    # bit-identity: il.lsuv's result against one QR per weight followed by the same single-pass correction
    reference = copy.deepcopy(base)
    one_qr_per_weight(reference)
    initlab_lsuv(reference, batch, **stage)
    same = all(torch.equal(a, b) for a, b in zip(models["il.lsuv"].parameters(), reference.parameters()))
    kind = {name: "end to end" if name in ("lsuv package", "il.lsuv") else "component" for name in runs}
    lines = [
        f"### {title}",
        "",
        "| run | what | median (s) | best (s) | spread | lsuv package / this (medians, same kind) | max abs(std - 1) | mean abs(std - 1) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, timing in timings.items():
        reference_name = "lsuv package" if kind[name] == "end to end" else "lsuv package, stage"
        ratio = timings[reference_name].median / timing.median
        ratio_cell = "-" if name == "il orthonormal start" else f"{ratio:.1f}x"
        errs = errors.get(name)
        cells = [f"{max(errs):.2e}", f"{sum(errs) / len(errs):.2e}"] if errs else ["-", "-"]
        lines.append(
            f"| {name} | {kind[name]} | {timing.median:.4f} | {timing.best:.4f} | {100 * timing.spread:.0f}% | "
            f"{ratio_cell} | " + " | ".join(cells) + " |"
        )
    lines += ["", f"il.lsuv values equal one QR per weight (the unbatched start) + the same correction, bit for bit: {same}"]
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = max(args.repeats or MIN_REPEATS, MIN_REPEATS)
    machine = machine_line()
    print(machine, flush=True)
    torch.manual_seed(0)
    width, samples = (64, 128) if args.quick else (256, 512)
    channels, images, side = (8, 16, 16) if args.quick else (16, 64, 32)
    lines = [machine, f"{repeats} interleaved repeats, each run on a fresh copy of the model; target std {TARGET}, tol {TOL}", ""]
    lines += compare(f"20-layer tanh MLP, width {width}, batch {samples}", mlp(20, width, 64), torch.randn(samples, 64), repeats)
    lines.append("")
    lines += compare(f"6-layer CNN ({channels}-{4 * channels} channels), batch {images}x3x{side}x{side}", cnn(channels), torch.randn(images, 3, side, side), repeats)
    lines += ["", f"`uptime` after the runs: `{uptime_line()}`"]
    print(lines[-1])


if __name__ == "__main__":
    main()
