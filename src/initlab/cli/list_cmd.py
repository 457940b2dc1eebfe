"""``initlab list``: the catalogue of initializers."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--names", action="store_true", help="print only the names")


def run(args: argparse.Namespace) -> int:
    from initlab.schemes import list_schemes

    rows = list_schemes()
    if args.names:
        for row in rows:
            print(row.name)
        return 0
    width = max(len(row.name) for row in rows)
    for row in rows:
        aliases = f" (= {', '.join(row.aliases)})" if row.aliases else ""
        print(f"{row.name:<{width}}  {row.formula}{aliases}")
        print(f"{'':<{width}}  {row.reference}")
    return 0
