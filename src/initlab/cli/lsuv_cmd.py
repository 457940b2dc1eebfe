"""``initlab lsuv``: data-driven initialization of a model spec on a data set (LSUV and friends).

The methods and their order come from ``initlab.datainit.METHODS``; each
option below reaches the methods whose functions accept it.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

from initlab.cli import add_model_argument
from initlab.datainit import METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, "mlp:*-64x20-*:tanh")
    parser.add_argument("--data", default="digits", help="data set name (default digits, as audit): digits, mnist1d, circles, ...")
    parser.add_argument("--method", choices=list(METHODS), default="lsuv", help="data-driven init (default lsuv)")
    parser.add_argument("--out", default=None, metavar="FILE.pt", help="save the initialized state_dict here")
    parser.add_argument("--batch-size", type=int, default=256, help="samples in the init batch (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the batch, the weights and the method (default 0)")
    parser.add_argument("--target-std", type=float, default=None, help="lsuv/wn: target output std (default 1)")
    parser.add_argument("--tol", type=float, default=None, help="lsuv: std tolerance (default 0.1); calibrate: spread (0.05)")
    parser.add_argument("--max-iter", type=int, default=None, help="lsuv: corrections per layer (10); calibrate: rounds (10)")
    parser.add_argument("--steps", type=int, default=None, help="pretrain: steps per layer (200); gradinit: steps (50)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _options(args: argparse.Namespace, function: Any) -> dict[str, Any]:
    """The options given on the command line that ``function`` accepts (the others keep its defaults)."""
    given = {"target_std": args.target_std, "tol": args.tol, "max_iter": args.max_iter, "steps": args.steps, "seed": args.seed}
    accepted = inspect.signature(function).parameters
    return {name: value for name, value in given.items() if value is not None and name in accepted}


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.lab.data import load_dataset
    from initlab.lab.models import build_model

    if args.batch_size < 2:
        raise ValueError(f"--batch-size must be >= 2 (a std needs two samples), got {args.batch_size}")
    if args.out:
        folder = Path(args.out).parent
        if not folder.is_dir() or Path(args.out).is_dir():
            raise ValueError(f"--out {args.out!r}: the file cannot be written there (no folder {str(folder)!r}, "
                             "or the name is a folder)")
    method = METHODS[args.method]
    dataset = load_dataset(args.data, seed=args.seed)
    torch.manual_seed(args.seed)
    model = build_model(args.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    generator = torch.Generator().manual_seed(args.seed)
    index = torch.randperm(dataset.x_train.shape[0], generator=generator)[: args.batch_size]
    batch = torch.as_tensor(dataset.x_train, dtype=torch.float32)[index]
    target = (torch.as_tensor(dataset.y_train)[index].long(),) if method.uses_target else ()
    report = method.function(model, batch, *target, **_options(args, method.function))
    print(report.to_json() if args.json else report.table())
    if args.out:
        try:
            torch.save(model.state_dict(), args.out)
        except (OSError, RuntimeError) as error:  # torch reports a file it cannot open as a RuntimeError
            raise ValueError(f"--out {args.out!r} cannot be written: {error}") from None
        if not args.json:
            print(f"\nstate_dict written to {args.out}")
    return 0
