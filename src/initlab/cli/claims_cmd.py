"""``initlab claims``: run every claim of the seed texts as an experiment, print the table, write the report."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from initlab.lab.claims import ClaimResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole set in a few minutes on 2 CPU cores")
    parser.add_argument("--only", metavar="ID,...", default=None,
                        help="comma-separated claim ids (1..17, he2015, glorot2010, dlai-circles, matmul100, mup, residual-zero)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="run folder for results.json, figures/ and report.html (default: runs/claims-quick or runs/claims)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every experiment (default 0)")
    parser.add_argument("--list", action="store_true", help="list the claim ids and exit")
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for this run (default: torch's own choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from initlab.lab.claims import registered_claims, run_claims
    from initlab.lab.report import write_report

    if args.list:
        for entry in registered_claims():
            print(f"{entry.id:<14} {entry.kind:<13} {entry.title}")
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    only = None
    if args.only is not None:
        only = [part.strip() for part in args.only.split(",") if part.strip()]
        if not only:
            raise ValueError(f"--only needs at least one claim id, got {args.only!r}")
    out = args.out if args.out is not None else ("runs/claims-quick" if args.quick else "runs/claims")

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    def finished(result: ClaimResult) -> None:
        if not args.quiet:
            print(f"  -> {result.verdict} ({result.number} vs {result.threshold}, {result.seconds:.1f} s)",
                  file=sys.stderr, flush=True)

    claims_run = run_claims(only, quick=args.quick, seed=args.seed, out_dir=out, log=progress, on_result=finished)
    print(claims_run.table())
    print(f"\nresults: {out}/results.json")
    if not args.no_report:
        path = write_report(out)
        print(f"report:  {path}")
    return 0
