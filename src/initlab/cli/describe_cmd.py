"""``initlab describe``: a scheme on a shape, a plan's rules, or a plan applied to a model.

    initlab describe he_normal --shape 256,512 --layout linear
    initlab describe fixup                       # the rules of a plan, in matching order
    initlab describe --plan gpt2                 # a recipe: its rules, knobs and sources
    initlab describe mlp:64-128x3-10:relu --plan auto --seed 0
    initlab describe mypkg.models:make_net --plan "he_normal; output=zeros" --json --strict

On a model the report's warnings (parameters no rule covers, layouts that
could not be read) are printed after the table; ``--strict`` refuses such a
plan instead (exit 2, nothing initialised).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        help="a scheme (he_normal, 'orthogonal(gain=2.0)'), a plan (fixup, 'he; output=zeros'), "
        "a framework's scheme (keras:he_normal, torch:kaiming_normal_), "
        "or a model spec (mlp:64-128x3-10:relu, package.module:factory: a class or function defined outside "
        "Python's standard library; stdlib modules are refused)",
    )
    parser.add_argument("--shape", help="scheme: tensor shape, comma-separated (e.g. 256,512)")
    parser.add_argument("--layout", default="linear", help="scheme: layout of the shape (default: linear)")
    parser.add_argument("--groups", type=int, default=1, help="scheme: conv groups (default: 1)")
    parser.add_argument("--plan", help="model: the plan to apply (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="model: seed (default: 0)")
    parser.add_argument("--rng", default="counter", choices=("torch", "counter"), help="model: random streams")
    parser.add_argument("--input-shape", help="model: input shape without batch, for the recorded forward pass")
    parser.add_argument("--num-classes", type=int, help="model: number of outputs passed to the model builder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--strict", action="store_true",
                        help="model: refuse a plan that would leave a parameter uninitialised or guess its layout")


def _shape(text: str, argument: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{argument} must be comma-separated integers like 256,512, got {text!r}") from None
    if not dims or any(d < 0 for d in dims):
        raise ValueError(f"{argument} must be non-negative integers like 256,512, got {text!r}")
    return dims


def _looks_like_model(text: str) -> bool:
    from initlab.schemes.registry import namespaces

    head = text.split("(", 1)[0]
    if head.split(":", 1)[0].strip() in namespaces():  # a framework's scheme: keras:he_normal, torch:dirac_
        return False
    return ":" in head and ";" not in text and "=" not in head


def _build(spec: str, input_shape: tuple[int, ...] | None, num_classes: int | None) -> Any:
    from initlab.lab.models import build_model

    return build_model(spec, input_shape=input_shape, num_classes=num_classes)


def _describe_scheme(args: argparse.Namespace) -> int:
    from initlab.schemes import get

    scheme = get(args.target)
    if args.shape is None:
        raise ValueError(f"describe {args.target!r}: a scheme needs --shape (e.g. --shape 256,512)")
    description = scheme.describe(_shape(args.shape, "--shape"), args.layout, args.groups)
    if args.json:
        data = dataclasses.asdict(description)
        print(json.dumps(data, indent=2, default=str))
    else:
        print(description)
    return 0


def _describe_model(args: argparse.Namespace) -> int:
    import torch

    from initlab.plan import init_model

    input_shape = _shape(args.input_shape, "--input-shape") if args.input_shape else None
    model = _build(args.target, input_shape, args.num_classes)
    example = torch.zeros((2, *input_shape)) if input_shape else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report carries the warnings
        report = init_model(model, args.plan or "auto", args.seed, rng=args.rng, example_input=example,
                            strict=args.strict)
    print(report.to_json() if args.json else report.table())
    if args.json:  # the table ends with the warnings; JSON readers get them on stderr as well
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from initlab.plan import Plan

    if args.target is None:
        if args.plan is None:
            raise ValueError("describe needs a scheme, a plan or a model spec (or --plan NAME to explain a plan)")
        plan = Plan.coerce(args.plan)
        print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.describe())
        return 0
    target = args.target.strip()
    if args.plan is not None or _looks_like_model(target):
        return _describe_model(args)
    if args.shape is not None:
        return _describe_scheme(args)
    plan = Plan.coerce(target)  # a scheme without --shape reads as the plan "SCHEME for all weights"
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.describe())
    return 0
