"""``initlab list``: the catalogue of initializers (name, formula, reference)."""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", default=None, help="show only schemes whose name or alias contains this text")
    parser.add_argument("--names", action="store_true", help="print only the names")
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")


def run(args: argparse.Namespace) -> int:
    from initlab.schemes import list_schemes

    rows = list_schemes()
    query = args.query
    if query:
        needle = query.lower()
        rows = [row for row in rows if any(needle in name for name in (row.name, *row.aliases))]
    if args.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return 0
    if args.names:
        for row in rows:
            print(row.name)
        return 0
    if not rows:
        print(f"no scheme matches {query!r}")
        return 1
    width = max(len(row.name) for row in rows)
    for row in rows:
        aliases = f"  (also {', '.join(row.aliases)})" if row.aliases else ""
        parameters = f"({', '.join(row.parameters)})" if row.parameters else "()"
        print(f"{row.name:<{width}}  {parameters}{aliases}")
        print(f"{'':<{width}}  {row.formula}")
        print(f"{'':<{width}}  {row.reference}")
    return 0
