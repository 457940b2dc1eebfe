"""``initlab claims``: run the claims about weight initialization as pre-registered experiments.

Prints the verdict table, writes ``results.json``, the figures and
``report.html`` into the run folder, and exits 1 when an experiment raised
(its row says ``error`` and why).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from initlab.lab.claims import ClaimResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 5 seeds per training claim (about a minute on 2 CPU cores)")
    parser.add_argument("--only", metavar="ID,...", default=None,
                        help="comma-separated claim ids (1..17, he2015, glorot2010, dlai-circles, matmul100, mup, "
                             "residual-zero, saxe2014)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="run folder for results.json, figures/ and report.html (default: runs/claims-quick or runs/claims)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every experiment (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS threads for the run (default 1: the verdicts do not depend on it, and "
                             "one thread is fastest on a busy machine)")
    parser.add_argument("--workers", type=int, default=None,
                        help="claims run at once in separate processes (default: 2 on a machine with 2 or more "
                             "cores, else 1; the verdicts do not depend on it)")
    parser.add_argument("--list", action="store_true", help="list the claim ids and exit")
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from initlab.lab.claims import registered_claims, run_claims
    from initlab.lab.report import write_report

    if args.list:
        for entry in registered_claims():
            print(f"{entry.id:<14} {entry.group:<13} {entry.title}")
        return 0
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
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
        if args.quiet:
            return
        row = result.headline
        measured = row["measured"]["text"] if row and row.get("measured") else "-"
        print(f"  -> {result.id}: {result.verdict} ({measured}, {result.seconds:.1f} s)",
              file=sys.stderr, flush=True)

    claims_run = run_claims(only, quick=args.quick, seed=args.seed, threads=args.threads, workers=workers,
                            out_dir=out, log=progress, on_result=finished)
    print(claims_run.table())
    print(f"\nresults: {out}/results.json")
    if not args.no_report:
        path = write_report(out)
        print(f"report:  {path}")
    if claims_run.errors:
        names = ", ".join(result.id for result in claims_run.errors)
        print(f"error: {len(claims_run.errors)} experiment(s) raised ({names}); see their rows above", file=sys.stderr)
        return 1
    return 0
