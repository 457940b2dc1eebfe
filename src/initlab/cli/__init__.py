"""The ``initlab`` command line (a thin shell over the library)."""

from __future__ import annotations

import argparse

__all__ = ["add_model_argument"]


def add_model_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """The positional MODEL_SPEC argument the commands that build a model share."""
    parser.add_argument(
        "model",
        metavar="MODEL_SPEC",
        help=f"model spec, e.g. {example!r} or 'package.module:factory' (a class or function "
        "defined outside Python's standard library; stdlib modules are refused)",
    )
