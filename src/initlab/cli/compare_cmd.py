"""``initlab compare``: train a model under several inits and seeds, with a leaderboard.

    initlab compare --dataset digits --model mlp:64-128x3-10:relu \\
        --inits zeros,small_random,glorot_uniform,he_normal,orthogonal,lsuv \\
        --seeds 8 --epochs 20 --out runs/NAME
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _seeds(text: str) -> tuple[int, ...]:
    """``8`` -> seeds 0..7; ``3,5,9`` -> those seeds; ``10:20`` -> 10..19."""
    try:
        if "," in text:
            return tuple(int(part) for part in text.split(",") if part.strip())
        if ":" in text:
            start, stop = (int(part) for part in text.split(":"))
            return tuple(range(start, stop))
        return tuple(range(int(text)))
    except (ValueError, OverflowError, MemoryError):
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count (8), a list (0,3,5) or a range (10:20), got {text!r}"
        ) from None


def _dataset_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--data-option takes KEY=VALUE, got {pair!r}")
        parsed: Any = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                continue
        options[key] = parsed
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", help="data set name (default digits)")
    parser.add_argument("--data-path", default=None, help="folder or .npz of mnist / fashion-mnist files")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="loader option, e.g. n_samples=2000 (repeatable)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the train/test split (default 0)")
    parser.add_argument("--model", default="mlp:*-128x3-*:relu", help="model spec (default mlp:*-128x3-*:relu) or package.module:factory (a class or "
                        "function defined outside Python's standard library; stdlib modules are refused)")
    parser.add_argument("--inits", default="zeros,small_random,glorot_uniform,he_normal,orthogonal,lsuv",
                        help="comma-separated plan names for initlab.init_model")
    parser.add_argument("--seeds", type=_seeds, default=tuple(range(8)), help="count, list or start:stop (default 8)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20)")
    length.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    parser.add_argument("--optimizer", default="sgd", help="sgd (default), momentum, nesterov, adam, adamw")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.1 SGD, 1e-3 Adam)")
    parser.add_argument("--batch-size", default="64", help="minibatch size or 'full' (default 64)")
    parser.add_argument("--log-every", type=int, default=1, help="log training loss every N steps (default 1)")
    parser.add_argument("--loss-threshold", type=float, default=0.5,
                        help="leaderboard: steps until the epoch-mean training loss reaches this (default 0.5)")
    parser.add_argument("--no-batch", action="store_true", help="train seeds one by one instead of seed-batched")
    parser.add_argument("--executor", default="local", choices=("local", "inline", "ray"),
                        help="local process pool (default), inline (this process) or ray")
    parser.add_argument("--workers", type=int, default=None, help="local workers (default: the machine's cores)")
    parser.add_argument("--ray-address", default=None, help="address of a Ray cluster (default: start a local one)")
    parser.add_argument("--out", required=True, help="output folder of the sweep")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the sweep in --out: finished runs are kept, failed and unreadable ones run again")
    again.add_argument("--force", action="store_true",
                       help="start over in --out: delete the files its manifest lists (never any other file)")
    parser.add_argument("--no-retry-failed", action="store_true", help="with --resume, keep runs that failed as failed")
    parser.add_argument("--break-lock", action="store_true",
                        help="clear a lock left in --out by a sweep that no longer runs (one that runs is never broken)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace) -> Any:
    from initlab.lab.compare import CompareConfig

    batch = None if str(args.batch_size).strip().lower() == "full" else args.batch_size
    if batch is not None:
        try:
            batch = int(batch)
        except ValueError:
            batch = 0
        if batch < 1:
            raise ValueError(f"--batch-size takes a positive int or 'full', got {args.batch_size!r}")
    inits = tuple(name.strip() for name in _split_inits(args.inits) if name.strip())
    options = _dataset_options(args.data_option)
    if args.data_path is not None:
        options["path"] = args.data_path
    return CompareConfig(
        dataset=args.dataset, model=args.model, inits=inits, seeds=tuple(args.seeds),
        epochs=None if args.steps is not None else (args.epochs if args.epochs is not None else 20),
        steps=args.steps, optimizer=args.optimizer, lr=args.lr, batch_size=batch, log_every=args.log_every,
        data_seed=args.data_seed, dataset_options=options, loss_threshold=args.loss_threshold,
        batched=not args.no_batch, executor=args.executor, workers=args.workers, ray_address=args.ray_address,
    )


def _split_inits(text: str) -> list[str]:
    """Split on commas outside parentheses: ``he_normal(mode=fan_out, nonlinearity=relu),zeros``."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return parts


def run(args: argparse.Namespace) -> int:
    from initlab.lab.compare import check_config, run_compare

    config = _config(args)
    check_config(config)  # bad names and missing files are reported before the progress bar starts
    total = len(config.inits) * len(config.seeds)
    progress: Any = None
    task_id: Any = None
    on_record = None
    if not args.quiet:
        try:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            progress = Progress(TextColumn("[bold]compare"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.description}"), transient=False)
        except ImportError:
            progress = None

        def on_record(record: dict[str, Any], done: int, count: int) -> None:
            text = f"{record['init']} seed {record['seed']}: {record['status']}"
            if progress is not None:
                from rich.markup import escape

                progress.update(task_id, completed=done, description=escape(text))  # init names are not markup
            else:
                print(f"[{done}/{count}] {text}", file=sys.stderr)

    def on_notice(text: str) -> None:
        print(f"initlab compare: {text}", file=sys.stderr)

    options = dict(resume=args.resume, force=args.force, retry_failed=not args.no_retry_failed,
                   break_lock=args.break_lock, on_record=on_record, on_notice=on_notice, plots=not args.no_plots)
    if progress is not None:
        with progress:
            task_id = progress.add_task("starting", total=total)
            result = run_compare(config, args.out, **options)
            progress.update(task_id, completed=total)
    else:
        result = run_compare(config, args.out, **options)
    if result.skipped:
        print(f"resumed: {result.skipped} finished run(s) kept, {result.ran} run now")
    print(result.leaderboard_markdown, end="")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    print(f"manifest: {result.out_dir / 'manifest.json'}")
    return 0
