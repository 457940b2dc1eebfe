"""``initlab audit``: one-batch per-layer diagnostics of an initialized model spec.

    initlab audit 'mlp:*-500x10-*:tanh' --plan small_random --data digits --out runs/audit

builds the model (``initlab.lab.models.build_model``), initializes it
(``initlab.init_model``; data-driven plans get the batch), takes one batch of
the data set's training split, runs :func:`initlab.probe.audit` with the
plan's expected stds, prints the per-layer table (the compact columns that
fit the terminal; ``--wide`` for all) and a short "what to try" section with
the likely cause of each flagged layer and the plan that fixes it. ``--fix``
audits the suggested plan on the same batch and prints both side by side.
With ``--out`` it writes ``audit.png`` (std and gradient norm versus depth,
histograms), ``histograms.png`` (the per-layer histogram row),
``report.json`` and ``init.json``. ``--compare P2 P3`` audits further plans
on the same batch and draws them side by side in ``compare.png``.
``--strict`` turns any verdict other than healthy into exit status 1 (the
fixed audit's verdicts with ``--fix``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from initlab.cli import add_model_argument

LOSSES = ("auto", "cross_entropy", "mse", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, "mlp:*-500x10-*:tanh")
    parser.add_argument(
        "--plan",
        default="auto",
        help="init plan or scheme name (default auto), e.g. he, glorot, small_random",
    )
    parser.add_argument(
        "--data",
        default="digits",
        help="data set name (default digits): digits, mnist1d, circles, gaussian, ...",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write audit.png, histograms.png, report.json here",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        default=(),
        metavar="PLAN",
        help="also audit these plans; side-by-side histograms",
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="samples in the audited batch (default 256)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the weights and of the batch (default 0)"
    )
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default="auto",
        help="loss for the backward pass (default auto: cross-entropy)",
    )
    parser.add_argument(
        "--mode",
        choices=("train", "eval"),
        default="train",
        help="module mode for the pass (default train)",
    )
    parser.add_argument(
        "--format", choices=("png", "svg"), default="png", help="figure format (default png)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of the table"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a layer is not healthy"
    )
    parser.add_argument("--wide", action="store_true", help="print every column of the table")
    parser.add_argument(
        "--fix",
        action="store_true",
        help="re-run the audit with the plan the remedies suggest and show before and after side by side",
    )


def _audit_plan(
    args: argparse.Namespace, plan: str, dataset: Any, batch: Any, target: Any
) -> tuple[Any, Any]:
    import torch

    import initlab
    from initlab.lab.models import build_model
    from initlab.probe import audit

    torch.manual_seed(args.seed)
    model = build_model(
        args.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes
    )
    init_report = initlab.init_model(model, plan=plan, seed=args.seed, batch=batch)
    loss_target = None if args.loss == "none" else target
    loss_fn = None
    if args.loss == "mse":
        num_classes = dataset.num_classes

        def loss_fn(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.mse_loss(
                output, torch.nn.functional.one_hot(labels, num_classes).to(output.dtype)
            )

    report = audit(
        model,
        batch,
        loss_target,
        loss_fn=loss_fn,
        expected=init_report,
        mode=args.mode,
        title=f"{args.model} | plan {plan} | {args.data}",
    )
    return report, init_report


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.lab.data import load_dataset
    from initlab.probe import compare_histograms

    if args.batch_size < 2:
        raise ValueError(
            f"--batch-size must be >= 2 (a std needs two samples), got {args.batch_size}"
        )
    out = None
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"--out {str(out)!r} exists and is not a directory")
    dataset = load_dataset(args.data, seed=args.seed)
    x_train = torch.as_tensor(dataset.x_train, dtype=torch.float32)
    y_train = torch.as_tensor(dataset.y_train).long()
    generator = torch.Generator().manual_seed(args.seed)
    index = torch.randperm(x_train.shape[0], generator=generator)[: args.batch_size]
    batch, target = x_train[index], y_train[index]
    plans = [args.plan, *[p for p in args.compare if p != args.plan]]
    reports = {}
    init_reports = {}
    for plan in plans:
        reports[plan], init_reports[plan] = _audit_plan(args, plan, dataset, batch, target)
    main_report = reports[args.plan]
    fixed = _fix(args, main_report, dataset, batch, target) if args.fix else None
    _print(args, plans, reports, fixed)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        suffix = args.format
        written = [main_report.plot(out / f"audit.{suffix}")]
        written.append(compare_histograms({args.plan: main_report}, out / f"histograms.{suffix}"))
        if len(plans) > 1:
            written.append(
                compare_histograms(
                    reports,
                    out / f"compare.{suffix}",
                    title=f"{args.model}: per-layer histograms under {len(plans)} inits",
                )
            )
        main_report.to_json(out / "report.json")
        written.append(out / "report.json")
        if fixed is not None:
            fixed[1].to_json(out / "fix.json")
            written.append(out / "fix.json")
        init_json = getattr(init_reports[args.plan], "to_json", None)
        if callable(init_json):
            (out / "init.json").write_text(str(init_json()) + "\n", encoding="utf-8")
            written.append(out / "init.json")
        if not args.json:
            print("wrote " + ", ".join(str(path) for path in written))
    judged = fixed[1] if fixed is not None else main_report
    if args.strict and set(judged.verdicts().values()) - {"healthy"}:
        return 1
    return 0


def _fix(args: argparse.Namespace, report: Any, dataset: Any, batch: Any, target: Any) -> tuple[str, Any] | None:
    """(plan, report) of the audit under the plan the remedies suggest; None when every layer is healthy."""
    plan = report.suggested_plan
    if plan is None:
        return None
    fixed, _ = _audit_plan(args, plan, dataset, batch, target)
    return plan, fixed


def _print(args: argparse.Namespace, plans: list[str], reports: dict[str, Any], fixed: tuple[str, Any] | None) -> None:
    from initlab.probe import side_by_side

    main_report = reports[args.plan]
    if args.json:
        if not args.fix:
            print(main_report.to_json())
            return
        after = fixed[1].to_dict() if fixed is not None else None
        print(json.dumps({"before": main_report.to_dict(), "fix_plan": fixed[0] if fixed else None, "after": after}, indent=1))
        return
    if not args.fix:
        for plan in plans:
            print(reports[plan].table(wide=args.wide))
            print()
        if main_report.suggested_plan is not None:
            print(f"--fix audits plan {main_report.suggested_plan!r} on the same batch, side by side with this one")
        return
    if fixed is None:
        print(main_report.table(wide=args.wide))
        print("\n--fix: every layer is healthy, nothing to change")
        return
    print(main_report.what_to_try())
    print()
    plan, after = fixed
    print(side_by_side(main_report, after, labels=(f"plan {args.plan}", f"plan {plan}")))
    flagged = [row.name for row in after.rows if row.verdict != "healthy"]
    if flagged:
        print()
        print(after.what_to_try())
    else:
        print(f"\nafter --fix: all {len(after.rows)} layers healthy with plan {plan!r}")
