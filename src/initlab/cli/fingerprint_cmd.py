"""``initlab fingerprint``: the init read back out of a checkpoint, and the plan that regenerates it.

    initlab fingerprint step0.safetensors
    initlab fingerprint model.pt --plan-out plan.yaml     # then init_model(model, plan="plan.yaml")
    initlab fingerprint step0.safetensors --json

Reads ``.safetensors`` (header checked against the file) or a torch file
with ``torch.load(weights_only=True)`` (never arbitrary objects); prints per
tensor the family, its std with a 95% error bound, the KS p-value and the
scheme that explains the std, then the plan.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help=".safetensors, .pt, .pth, .bin or .ckpt file")
    parser.add_argument("--plan-out", default=None, metavar="PLAN.yaml", help="write the regenerating plan here")
    parser.add_argument("--force", action="store_true", help="replace an existing --plan-out file")
    parser.add_argument("--sample-size", type=int, default=65536, help="values sampled per tensor (default 65536)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled values (default 0)")
    parser.add_argument("--json", action="store_true", help="print the fingerprint as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from initlab.diagnosis import fingerprint, load_tensors

    if args.plan_out is not None:
        out = Path(args.plan_out)
        if out.suffix.lower() not in (".yaml", ".yml"):
            raise ValueError(f"--plan-out {args.plan_out!r}: suffix must be .yaml or .yml")
        if out.exists() and not args.force:
            raise FileExistsError(f"--plan-out {args.plan_out!r} exists; pass --force to replace it")
    result = fingerprint(load_tensors(args.checkpoint), sample_size=args.sample_size, seed=args.seed)
    if args.json:
        print(result.to_json())
    else:
        print(result.table())
        print()
        print(result.plan_text(source=Path(args.checkpoint).name), end="")
    if args.plan_out is not None:
        written = result.save_plan(args.plan_out, source=Path(args.checkpoint).name, overwrite=args.force)
        if not args.json:
            print(f"wrote {written}")
    return 0
