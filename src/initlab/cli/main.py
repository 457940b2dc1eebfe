"""Entry point of the ``initlab`` command.

Each sub-command lives in its own module of this package with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Modules import the heavy
layers inside ``run`` so that ``initlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from initlab.lab.executors import WorkerLost

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("initlab.cli.list_cmd", "print the catalogue of initializers"),
    "describe": ("initlab.cli.describe_cmd", "describe a scheme on a shape, or a plan on a model"),
    "recommend": ("initlab.cli.recommend_cmd", "the init plan for a model, from its structure, with the reason"),
    "audit": ("initlab.cli.audit_cmd", "one-batch per-layer diagnostics of an initialized model"),
    "theory": ("initlab.cli.theory_cmd", "mean-field signal propagation: fixed points, depth scales, phase diagram"),
    "lsuv": ("initlab.cli.lsuv_cmd", "data-driven initialization of a model spec (LSUV and friends)"),
    "compare": ("initlab.cli.compare_cmd", "train a model under several inits and seeds, with a leaderboard"),
    "claims": ("initlab.cli.claims_cmd", "run the claims about initialization as pre-registered experiments"),
    "report": ("initlab.cli.report_cmd", "write the HTML report of a finished run directory"),
    "doctor": ("initlab.cli.doctor_cmd", "find init bugs in a model or checkpoint before training"),
    "fingerprint": ("initlab.cli.fingerprint_cmd", "read the init back out of a checkpoint, with a plan that regenerates it"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="initlab",
        description="Neural-network weight initialization: schemes, plans, diagnostics, theory and experiments.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, OSError, WorkerLost) as error:
        # bad input, files that cannot be read or written, a lost worker: one line, exit 2 (exit 1 is --strict)
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"initlab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"initlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
