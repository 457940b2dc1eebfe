"""``audit``: one forward (and, where a loss can be formed, one backward) pass, one report.

The audit leaves the model as it found it: weights untouched, ``.grad``
untouched (gradients come from ``torch.autograd.grad``), BatchNorm running
statistics restored, every module's train/eval flag restored, every hook
removed -- also when the forward pass raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from initlab.probe.build import build_report, record_of, row_meta, symmetry_of, to_host
from initlab.probe.collector import Collector, first_tensor
from initlab.probe.expected import (
    batch_size_of,
    check_expected_names,
    normalise_expected,
    residual_parameters,
)
from initlab.probe.histogram import DEFAULT_BINS, HistogramBins
from initlab.probe.layers import ModuleSelector
from initlab.probe.report import ProbeReport
from initlab.probe.verdicts import Thresholds
from initlab.rng.checks import check_choice
from initlab.rng.deprecation import warn_deprecated

__all__ = ["audit", "call_model", "form_loss"]

LossFn = Callable[..., torch.Tensor]
_MODES = ("keep", "train", "eval")


def call_model(model: nn.Module, batch: Any) -> Any:
    """``model(batch)`` for a tensor, ``model(*batch)`` for a tuple/list, ``model(**batch)`` for a dict."""
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, tuple | list):
        return model(*batch)
    if isinstance(batch, Mapping):
        return model(**batch)
    raise TypeError(
        "batch must be a tensor (model(batch)), a tuple/list of model arguments (model(*batch)) "
        f"or a dict of keyword arguments (model(**batch)); got {type(batch).__name__}"
    )


def _primary_output(output: Any) -> torch.Tensor:
    if isinstance(output, Mapping):
        for key in ("logits", "output", "out", "loss"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
    tensor = first_tensor(output)
    if tensor is None:
        raise ValueError(
            f"the model's output holds no tensor to form a loss from (got {type(output).__name__})"
        )
    return tensor


def form_loss(output: Any, loss_fn: LossFn | None, target: Any) -> torch.Tensor | None:
    """The scalar loss of ``output``, or None when none can be formed.

    ``loss_fn(output, target)`` (or ``loss_fn(output)`` without target);
    without ``loss_fn``: cross-entropy for an integer target, mean squared
    error for a floating target of the output's shape; no target, no loss.
    """
    if loss_fn is not None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        loss = loss_fn(output) if target is None else loss_fn(output, target)
    elif target is None:
        return None
    else:
        prediction = _primary_output(output)
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a tensor, got {type(target).__name__}")
        if not target.is_floating_point():
            loss = functional.cross_entropy(prediction, target)
        elif target.shape == prediction.shape:
            loss = functional.mse_loss(prediction, target)
        else:
            raise ValueError(
                f"target of shape {tuple(target.shape)} fits neither cross-entropy (integer classes) nor "
                f"mean squared error (same shape as the output, {tuple(prediction.shape)}); pass loss_fn="
            )
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
    return loss.reshape(())


def _set_mode(model: nn.Module, mode: str) -> dict[nn.Module, bool]:
    saved = {module: module.training for module in model.modules()}
    if mode == "train":
        model.train()
    elif mode == "eval":
        model.eval()
    return saved


def _grad_input(batch: Any) -> Any:
    """A floating tensor batch as a leaf that requires grad, so frozen models still get gradients."""
    if isinstance(batch, torch.Tensor) and batch.is_floating_point() and not batch.requires_grad:
        return batch.detach().requires_grad_(True)
    return batch


def _loss_first_is_deprecated(function: Callable[..., ProbeReport]) -> Callable[..., ProbeReport]:
    """Accept the old order ``audit(model, batch, loss_fn, target)``, with a warning."""

    @functools.wraps(function)
    def wrapper(model: Any, batch: Any, *args: Any, **options: Any) -> ProbeReport:
        old_order = len(args) == 2 or (len(args) == 1 and callable(args[0]) and not isinstance(args[0], torch.Tensor))
        if old_order:
            warn_deprecated("audit(model, batch, loss_fn, target)", "audit(model, batch, target, loss_fn=loss_fn)")
            if "loss_fn" in options:
                raise TypeError("audit got loss_fn both by position and by keyword")
            options["loss_fn"], args = args[0], args[1:]
        return function(model, batch, *args, **options)

    return wrapper


@_loss_first_is_deprecated
def audit(
    model: nn.Module,
    batch: Any,
    target: Any = None,
    *,
    loss_fn: LossFn | None = None,
    expected: Any = None,
    modules: ModuleSelector = None,
    mode: str = "keep",
    thresholds: Thresholds | None = None,
    bins: HistogramBins = DEFAULT_BINS,
    rank_samples: int = 64,
    title: str = "",
) -> ProbeReport:
    """Per-layer statistics of ``model`` on one ``batch``, with verdicts.

    Runs ``model(batch)`` once with hooks on the selected layers (see
    :func:`initlab.probe.layers.select_layers`); if a loss can be formed
    (``loss_fn`` and/or ``target``, see :func:`form_loss`) also one backward
    pass for gradient statistics. ``expected`` gives the scheme's expected
    std per parameter or layer (a mapping, or the ``InitReport`` of
    ``initlab.init_model``). ``mode`` is ``"keep"`` (default), ``"train"`` or
    ``"eval"``; the model's own flags are restored afterwards.

    >>> import torch, initlab as il
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh())
    >>> report = il.audit(net, torch.randn(32, 8))
    >>> [row.verdict for row in report.rows]
    ['healthy', 'healthy']
    """
    thresholds = _check_arguments(model, batch, mode, thresholds)
    expected_map = normalise_expected(expected)
    check_expected_names(model, expected_map)
    batch = _grad_input(batch)
    saved_modes = _set_mode(model, mode)
    saved_buffers = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    collector = Collector(
        model,
        modules,
        bins=bins,
        saturation_threshold=thresholds.saturation_derivative,
        rank_samples=rank_samples,
    )
    try:
        collector.recording = True
        loss = form_loss(call_model(model, batch), loss_fn, target)
        grads = _gradients(model, batch, loss)
        collector.recording = False
        rows = list(collector.iter_recorded())
        symmetry = symmetry_of(collector, rows, grads, thresholds.symmetry_tol)
        loss_value = loss.detach() if loss is not None and loss.requires_grad else None
        host = _to_host(rows, collector.input_acc, loss_value)
    finally:
        collector.close()
        with torch.no_grad():
            for buffer, value in saved_buffers:
                buffer.copy_(value)
        for module, training in saved_modes.items():
            module.training = training
    count = len(rows)
    input_sums = host[2 * count] if collector.input_acc is not None else None
    return build_report(
        [row_meta(row) for row in rows],
        host[:count],
        host[count : 2 * count],
        input_sums=input_sums,
        thresholds=thresholds,
        expected=expected_map,
        branch_parameters=residual_parameters(expected),
        symmetry=symmetry,
        bins=bins,
        loss=float(host[-1][0]) if loss_value is not None else None,
        title=title,
    )


def _check_arguments(model: Any, batch: Any, mode: Any, thresholds: Any) -> Thresholds:
    """The thresholds to use, once model, batch and mode are checked."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("mode", mode, _MODES)
    if batch_size_of(batch) == 0:
        raise ValueError("batch holds 0 samples (dim 0 of its first tensor); an audit needs at least 1 sample")
    if thresholds is None:
        return Thresholds()
    if not isinstance(thresholds, Thresholds):
        raise TypeError(f"thresholds must be a Thresholds, got {type(thresholds).__name__}")
    return thresholds


def _gradients(model: nn.Module, batch: Any, loss: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    """d loss / d parameter for every trainable parameter ({} without a loss that has a graph)."""
    if loss is None or not loss.requires_grad:
        return {}
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    inputs: list[torch.Tensor] = [p for _, p in named]
    if isinstance(batch, torch.Tensor) and batch.requires_grad and batch.is_leaf:
        inputs.append(batch)
    if not inputs:
        return {}
    gradients = torch.autograd.grad(loss, inputs, allow_unused=True)
    return {name: g for (name, _), g in zip(named, gradients)}


def _to_host(rows: list[Any], input_acc: torch.Tensor | None, loss: torch.Tensor | None) -> list[np.ndarray]:
    """In one transfer: every row's statistics vector, then its histogram, the input sums and the loss."""
    records = [record_of(row) for row in rows]
    tensors: list[torch.Tensor] = [vector for vector, _ in records] + [hist for _, hist in records]
    if input_acc is not None:
        tensors.append(input_acc)
    if loss is not None:
        tensors.append(loss.reshape(1))
    return to_host(tensors)
