"""``initlab doctor``: init bugs in a model spec, a Python factory or a checkpoint, before training.

    initlab doctor 'mlp:64-128x20-10:relu' --plan small_random
    initlab doctor mypkg.models:make_net --meta            # structure only, nothing allocated
    initlab doctor model.py:build --data digits            # with a batch: the probe's stds beside the prediction
    initlab doctor step0.safetensors --strict --json       # value checks of a checkpoint; exit 1 on errors

A ``SPEC_OR_FILE`` is a model spec of ``initlab.lab.models`` (``mlp:...``,
``cnn:...``, ``package.module:factory``), a Python file with a factory
(``path/to/file.py:function``, called without arguments) or a checkpoint
(``.safetensors``, ``.pt``, ``.pth``, ``.bin``, ``.ckpt``; read with
``weights_only=True``). ``--strict`` exits with status 1 when any finding is
an error.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="SPEC_OR_FILE",
        help="model spec (mlp:64-128x3-10:relu, package.module:factory), file.py:factory, or a checkpoint",
    )
    parser.add_argument("--plan", default=None, help="initialise with this plan first (default: leave the model as built)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the plan, the batch and the sampled values (default 0)")
    parser.add_argument("--meta", action="store_true", help="build the model on the meta device: structure only")
    parser.add_argument("--input-shape", default=None, help="input shape without batch for a spec, e.g. 64 or 1x8x8")
    parser.add_argument("--num-classes", type=int, default=None, help="outputs of a spec whose output is '*'")
    parser.add_argument("--data", default=None, help="data set for one batch (digits, mnist1d, ...): measured stds")
    parser.add_argument("--batch-size", type=int, default=256, help="samples in the batch (default 256)")
    parser.add_argument("--sample-size", type=int, default=65536, help="values sampled per tensor (default 65536)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 on any error-level finding")


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--input-shape must be integers like 64 or 1x8x8, got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"--input-shape must be positive integers like 64 or 1x8x8, got {text!r}")
    return dims


def _from_file(target: str) -> Any:
    path_text, _, attribute = target.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path_text!r} does not exist")
    if not attribute.isidentifier():
        raise ValueError(f"a model file is given as path/to/file.py:function, got {target!r}")
    spec = importlib.util.spec_from_file_location(f"_initlab_doctor_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path_text!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file may fail in any way
        raise ValueError(f"importing {path_text!r} failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{path_text!r} has no callable {attribute!r}")
    return factory


def _build(args: argparse.Namespace, dataset: Any) -> Any:
    import torch

    target = args.target
    if target.partition(":")[0].endswith(".py"):
        factory = _from_file(target)
        build = factory
    else:
        from initlab.lab.models import build_model

        input_shape = _shape(args.input_shape) if args.input_shape else (dataset.input_shape if dataset else None)
        num_classes = args.num_classes if args.num_classes is not None else (dataset.num_classes if dataset else None)

        def build() -> Any:
            return build_model(target, input_shape=input_shape, num_classes=num_classes)

    torch.manual_seed(args.seed)
    try:
        if args.meta:
            with torch.device("meta"):
                model = build()
        else:
            model = build()
    except (ValueError, TypeError, FileNotFoundError):
        raise
    except Exception as error:  # a factory may fail in any way
        raise ValueError(f"building {target!r} failed: {type(error).__name__}: {error}") from None
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{target!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def _batch(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.data is None:
        return None, None
    import torch

    from initlab.lab.data import load_dataset

    if args.batch_size < 2:
        raise ValueError(f"--batch-size must be >= 2, got {args.batch_size}")
    dataset = load_dataset(args.data, seed=args.seed)
    x_train = torch.as_tensor(dataset.x_train, dtype=torch.float32)
    generator = torch.Generator().manual_seed(args.seed)
    index = torch.randperm(x_train.shape[0], generator=generator)[: args.batch_size]
    return dataset, x_train[index]


def run(args: argparse.Namespace) -> int:
    from initlab.diagnosis import doctor, load_tensors

    if Path(args.target).suffix.lower() in CHECKPOINT_SUFFIXES:
        if args.plan or args.meta or args.data:
            raise ValueError("--plan, --meta and --data apply to a model, not to a checkpoint")
        report = doctor(load_tensors(args.target), sample_size=args.sample_size, seed=args.seed)
    else:
        if args.meta and (args.plan or args.data):
            raise ValueError("--meta builds the structure only; it excludes --plan and --data")
        dataset, batch = _batch(args)
        model = _build(args, dataset)
        if args.plan is not None:
            from initlab.plan import init_model

            init_model(model, plan=args.plan, seed=args.seed, batch=batch)
        report = doctor(model, batch, sample_size=args.sample_size, seed=args.seed)
    print(report.to_json() if args.json else report.table())
    sys.stdout.flush()
    if args.strict and report.errors:
        return 1
    return 0
