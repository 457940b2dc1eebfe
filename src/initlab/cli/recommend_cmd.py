"""``initlab recommend MODEL_SPEC``: the plan for a model, read from its structure.

Builds the model (``initlab.lab.models.build_model``), reads its structure
and prints the row of the advice table it matches
(``initlab.recommend``): what was found, the plan, the reason with its paper,
and the line to paste. A spec with ``*`` sizes takes them from ``--data``
(default digits); other specs and factories are built as they are.
"""

from __future__ import annotations

import argparse
import json
import shlex

from initlab.cli import add_model_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, "mlp:*-128x10-*:tanh")
    parser.add_argument(
        "--data",
        default=None,
        help="data set whose input shape and classes fill '*' sizes (default digits when the spec has '*')",
    )
    parser.add_argument(
        "--width-scaling",
        action="store_true",
        help="the model is one of a series of widths (a width-scaling experiment): recommend muP",
    )
    parser.add_argument("--json", action="store_true", help="print the advice as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.lab.data import load_dataset
    from initlab.lab.models import build_model
    from initlab.plan import recommend

    data = args.data if args.data is not None else ("digits" if "*" in args.model else None)
    example = None
    if data is None:
        model = build_model(args.model)
    else:
        dataset = load_dataset(data, seed=0)
        model = build_model(args.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
        example = torch.as_tensor(dataset.x_train[:8], dtype=torch.float32)
    advice = recommend(model, example, width_scaling=args.width_scaling)
    audit = f"initlab audit {shlex.quote(args.model)} --plan {shlex.quote(advice.plan)}"
    if args.json:
        print(json.dumps({
            "model": args.model,
            "kind": advice.kind,
            "plan": advice.plan,
            "reason": advice.advice.reason,
            "reference": advice.advice.reference,
            "paste": advice.advice.plan_line(),
            "audit": audit,
            "traits": advice.traits.describe(),
            "family": advice.traits.family,
        }, indent=1))
        return 0
    print(advice.text())
    print(f"check:     {audit}")
    return 0
