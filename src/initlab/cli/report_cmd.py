"""``initlab report DIR``: rebuild the self-contained HTML report of a finished claims or compare run."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="DIR", help="run folder holding results.json (and figures/)")
    parser.add_argument("--output", metavar="FILE", default=None, help="where to write the HTML (default DIR/report.html)")


def run(args: argparse.Namespace) -> int:
    from initlab.lab.report import write_report

    path = write_report(args.run_dir, args.output)
    print(f"report: {path}")
    return 0
