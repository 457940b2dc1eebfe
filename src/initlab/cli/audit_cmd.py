"""``initlab audit``: one-batch per-layer diagnostics of an initialized model spec.

    initlab audit 'mlp:*-500x10-*:tanh' --plan small_random --data digits --out runs/audit

builds the model (``initlab.lab.models.build_model``), initializes it
(``initlab.init_model``; data-driven plans get the batch), takes one batch of
the data set's training split, runs :func:`initlab.probe.audit` with the
plan's expected stds, prints the per-layer table and, with ``--out``, writes
``audit.png`` (std and gradient norm versus depth, histograms),
``histograms.png`` (the per-layer histogram row), ``report.json`` and
``init.json``. ``--compare P2 P3`` audits further plans on the same batch
and draws them side by side in ``compare.png``. ``--strict`` turns any
verdict other than healthy into exit status 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

LOSSES = ("auto", "cross_entropy", "mse", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL_SPEC",
        help="model spec, e.g. 'mlp:*-500x10-*:tanh' or 'package.module:factory' (a class or function "
        "defined outside Python's standard library; stdlib modules are refused)",
    )
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
    if args.json:
        print(main_report.to_json())
    else:
        for plan in plans:
            print(reports[plan].table())
            print()
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
        init_json = getattr(init_reports[args.plan], "to_json", None)
        if callable(init_json):
            (out / "init.json").write_text(str(init_json()) + "\n", encoding="utf-8")
            written.append(out / "init.json")
        if not args.json:
            print("wrote " + ", ".join(str(path) for path in written))
    if args.strict and set(main_report.verdicts().values()) - {"healthy"}:
        return 1
    return 0
