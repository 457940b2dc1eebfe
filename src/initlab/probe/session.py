"""``Probe``: the audit's statistics during training, every N steps, in bounded memory.

    with initlab.Probe(model, every=10, optimizer=opt) as p:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
    report = p.report()          # latest recorded step + history of the kept steps

Steps. With an ``optimizer`` a step ends when ``optimizer.step()`` returns
(so several forward/backward passes of gradient accumulation add into one
step); without one, a step ends when the next forward pass of the model
begins. ``p.step()`` ends a step by hand (``auto_step=False`` leaves it
entirely to the caller). Steps 0, every, 2*every, ... are recorded; on the
others a hook costs one attribute check. Forward passes run under
``torch.no_grad()`` (evaluation) are not recorded unless
``record_no_grad=True``.

Memory. Each recorded step is packed into one row of a preallocated ring
buffer per layer (``history`` steps, 200 by default): the statistics vector
and the histogram. Memory is allocated at the first recorded step and never
grows; older steps are overwritten. With an optimizer, the update/weight
ratio needs a copy of the probed parameters for the duration of a recorded
``optimizer.step()``.

The hooks are removed when the ``with`` block ends, also after an exception.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.probe.build import (
    _PARAM_START,
    _PARAM_WIDTH,
    _WEIGHT,
    RowMeta,
    build_report,
    record_of,
    record_size,
    row_meta,
    symmetry_of,
    to_host,
)
from initlab.probe.collector import ACC, PARAM, Collector, RowState
from initlab.probe.expected import check_expected_names, normalise_expected
from initlab.probe.histogram import DEFAULT_BINS, HistogramBins
from initlab.probe.layers import ModuleSelector
from initlab.probe.report import ProbeReport
from initlab.probe.verdicts import Thresholds
from initlab.rng.checks import check_int
from initlab.rng.deprecation import keyword_only

__all__ = ["Probe"]

# metrics kept per recorded step in the report's history (derived from the records)
HISTORY_METRICS = (
    "act_mean",
    "act_std",
    "act_rms",
    "nonfinite",
    "grad_norm",
    "grad_weight_ratio",
    "update_weight_ratio",
)


class _Ring:
    """Fixed-size ring of (record vector, histogram) rows for one layer, on the layer's device."""

    def __init__(
        self, capacity: int, record_length: int, hist_length: int, device: torch.device
    ) -> None:
        self.records = torch.zeros(capacity, record_length, dtype=torch.float64, device=device)
        self.hists = torch.zeros(capacity, hist_length, dtype=torch.float64, device=device)
        self.steps = [-1] * capacity

    def write(self, slot: int, step: int, record: torch.Tensor, hist: torch.Tensor) -> None:
        self.records[slot].copy_(record)
        self.hists[slot].copy_(hist)
        self.steps[slot] = step


class Probe:
    """A context manager that records per-layer statistics of ``model`` every ``every`` steps.

    ``modules`` selects the layers as in :func:`initlab.probe.audit`;
    ``optimizer`` adds update/weight ratios and makes ``optimizer.step()``
    the end of a step. ``history``: recorded steps kept (200);
    ``rank_samples`` (64) and ``rank_every`` (10): effective rank and cosine
    on every 10th recorded step; ``auto_step`` (True), ``record_no_grad``
    (False); ``expected``, ``thresholds``, ``bins`` as for ``audit``. Every
    option is a keyword. The hooks are removed when the ``with`` block ends.

    >>> import torch, initlab as il
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    >>> with il.Probe(net, every=1) as p:
    ...     for _ in range(3):
    ...         net(torch.randn(8, 4)).sum().backward()
    >>> p.report().steps
    [0, 1, 2]
    """

    @keyword_only("Probe", 2, ("every", "modules", "optimizer"))
    def __init__(
        self,
        model: nn.Module,
        *,
        every: int = 10,
        modules: ModuleSelector = None,
        optimizer: torch.optim.Optimizer | None = None,
        history: int = 200,
        expected: Any = None,
        thresholds: Thresholds | None = None,
        bins: HistogramBins = DEFAULT_BINS,
        rank_samples: int = 64,
        rank_every: int = 10,
        auto_step: bool = True,
        record_no_grad: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_int("every", every, minimum=1)
        check_int("rank_every", rank_every, minimum=1)
        check_int("history", history, minimum=1)
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
            )
        if thresholds is None:
            thresholds = Thresholds()
        elif not isinstance(thresholds, Thresholds):
            raise TypeError(f"thresholds must be a Thresholds, got {type(thresholds).__name__}")
        self.model = model
        self.every = every
        self.capacity = history
        self.optimizer = optimizer
        self.thresholds = thresholds
        self.bins = bins
        self.auto_step = auto_step
        self.rank_every = rank_every
        self._rank_samples = rank_samples
        self._expected = normalise_expected(expected)
        check_expected_names(model, self._expected)
        self._step = 0
        self._step_has_data = False
        self._forward_seen = False
        self._recorded = 0  # recorded steps written to the rings so far
        self._last_recorded_step: int | None = None
        self._rings: dict[str, _Ring] = {}
        self._metas: dict[str, RowMeta] = {}
        self._last_records: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._input_last: torch.Tensor | None = None
        self._optimizer_handles: list[Any] = []
        self._collector = Collector(
            model,
            modules,
            bins=bins,
            saturation_threshold=thresholds.saturation_derivative,
            rank_samples=rank_samples,
            on_root_forward=self._on_forward,
            record_no_grad=record_no_grad,
        )
        self._set_recording()
        if optimizer is not None:
            try:
                self._optimizer_handles.append(
                    optimizer.register_step_pre_hook(self._before_optimizer_step)
                )
                self._optimizer_handles.append(
                    optimizer.register_step_post_hook(self._after_optimizer_step)
                )
            except BaseException:
                self.close()
                raise
        self.closed = False

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the current step and remove every hook (idempotent)."""
        if getattr(self, "closed", False):
            return
        try:
            self._finish_step()
        finally:
            self._collector.close()
            for handle in self._optimizer_handles:
                handle.remove()
            self._optimizer_handles.clear()
            self.closed = True

    # -- steps -------------------------------------------------------------------------
    @property
    def current_step(self) -> int:
        """Index of the step in progress (0-based)."""
        return self._step

    def _should_record(self, step: int) -> bool:
        return step % self.every == 0

    def step(self) -> None:
        """End the current step by hand (flushes it to the history if it was recorded)."""
        if self.closed:
            raise RuntimeError("probe is closed; steps can only be advanced inside the with block")
        self._advance()

    def _advance(self) -> None:
        self._finish_step()
        self._step += 1
        self._forward_seen = False
        self._set_recording()

    def _set_recording(self) -> None:
        recording = self._should_record(self._step)
        self._collector.recording = recording
        # effective rank and cosine cost a Gram matrix per layer: every rank_every-th recorded step
        self._collector.gram_enabled = (
            recording
            and self._rank_samples > 0
            and (self._step // self.every) % self.rank_every == 0
        )

    def _on_forward(self) -> None:
        if not (self._collector.record_no_grad or torch.is_grad_enabled()):
            return
        if self.auto_step and self.optimizer is None and self._forward_seen:
            self._advance()
        self._forward_seen = True

    def _finish_step(self) -> None:
        collector = self._collector
        if not collector.recording:
            return
        wrote = False
        slot = self._recorded % self.capacity
        for row in collector.iter_recorded():
            record, hist = record_of(row)
            ring = self._ring_for(row)
            ring.write(slot, self._step, record, hist)
            self._metas[row.info.name] = row_meta(row)
            wrote = True
        if wrote:
            if collector.input_acc is not None:
                self._input_last = collector.input_acc.clone()
            self._recorded += 1
            self._last_recorded_step = self._step
        collector.reset()

    def _ring_for(self, row: RowState) -> _Ring:
        ring = self._rings.get(row.info.name)
        if ring is None:
            assert row.acc is not None
            ring = _Ring(self.capacity, record_size(row), self.bins.num_bins + 1, row.acc.device)
            self._rings[row.info.name] = ring
        return ring

    # -- optimizer hooks ------------------------------------------------------------------
    def _before_optimizer_step(
        self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any
    ) -> None:
        if not self._collector.recording or self._collector.closed:
            return
        self._collector.take_snapshots()

    def _after_optimizer_step(
        self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any
    ) -> None:
        if self._collector.closed:
            return
        if self._collector.recording:
            for row in self._collector.rows:
                for param in row.params:
                    param.add_update()
        if self.auto_step:
            self._advance()

    # -- reading ------------------------------------------------------------------------------
    def report(self, *, title: str = "") -> ProbeReport:
        """The latest recorded step as rows, plus the history of the kept steps."""
        collector = self._collector
        live = list(collector.iter_recorded()) if collector.recording else []
        live_has_data = bool(live) and not self.closed
        names: list[str] = []
        tensors: list[torch.Tensor] = []
        metas: list[RowMeta] = []
        if live_has_data:
            for row in live:
                record, hist = record_of(row)
                names.append(row.info.name)
                metas.append(row_meta(row))
                tensors += [record, hist]
        current_step: int | None = self._step
        if not live_has_data:
            current_step = self._last_recorded_step
            slot = (self._recorded - 1) % self.capacity
            if current_step is not None:
                for name, ring in self._rings.items():
                    if ring.steps[slot] != current_step:
                        continue
                    names.append(name)
                    metas.append(self._metas[name])
                    tensors += [ring.records[slot], ring.hists[slot]]
        input_acc = collector.input_acc if live_has_data else self._input_last
        extra = 0
        if input_acc is not None:
            tensors.append(input_acc)
            extra = 1
        ring_names = list(self._rings)
        for name in ring_names:
            tensors += [self._rings[name].records, self._rings[name].hists]
        host = to_host(tensors)
        # rows in forward order of the probed modules
        order = {
            row.info.name: (row.order if row.order is not None else 0) for row in collector.rows
        }
        position = sorted(range(len(names)), key=lambda i: order.get(names[i], 0))
        vectors = [host[2 * i] for i in position]
        hists = [host[2 * i + 1] for i in position]
        metas = [metas[i] for i in position]
        input_sums = host[2 * len(names)] if extra else None
        grads = {p.name: p.parameter.grad for row in collector.rows for p in row.params}
        by_name = {row.info.name: row for row in collector.rows}
        symmetry = symmetry_of(
            collector, [by_name[m.info.name] for m in metas], grads, self.thresholds.symmetry_tol
        )
        report = build_report(
            metas,
            vectors,
            hists,
            input_sums=input_sums,
            thresholds=self.thresholds,
            expected=self._expected,
            symmetry=symmetry,
            bins=self.bins,
            step=current_step,
            title=title,
        )
        self._attach_history(report, ring_names, host[2 * len(names) + extra :])
        return report

    def _attach_history(
        self, report: ProbeReport, ring_names: list[str], arrays: list[np.ndarray]
    ) -> None:
        kept = min(self._recorded, self.capacity)
        if kept == 0:
            return
        first = self._recorded - kept
        slots = [(first + i) % self.capacity for i in range(kept)]
        all_steps: set[int] = set()
        for index, name in enumerate(ring_names):
            records, hists = arrays[2 * index], arrays[2 * index + 1]
            ring = self._rings[name]
            chosen = [slot for slot in slots if ring.steps[slot] >= 0]
            steps = np.asarray([ring.steps[slot] for slot in chosen], dtype=np.int64)
            if not len(steps):
                continue
            metrics = _history_metrics(self._metas[name], records[chosen], report)
            metrics["step"] = steps
            report.history[name] = metrics
            report.hist_history[name] = hists[chosen]
            all_steps.update(steps.tolist())
        report.steps = sorted(all_steps)


def _history_metrics(
    meta: RowMeta, records: np.ndarray, report: ProbeReport
) -> dict[str, np.ndarray]:
    finite = records[:, ACC.FINITE]
    safe = np.where(finite > 0, finite, 1.0)
    mean = np.where(finite > 0, records[:, ACC.SUM] / safe, np.nan)
    mean_square = np.where(finite > 0, records[:, ACC.SUMSQ] / safe, np.nan)
    std = np.sqrt(np.maximum(mean_square - mean * mean, 0.0))
    grad_finite = records[:, ACC.GRAD_FINITE]
    grad_norm = np.where(grad_finite > 0, np.sqrt(records[:, ACC.GRAD_SUMSQ]), np.nan)
    metrics: dict[str, np.ndarray] = {
        "act_mean": mean,
        "act_std": std,
        "act_rms": np.sqrt(mean_square),
        "nonfinite": records[:, ACC.NONFINITE],
        "grad_norm": grad_norm,
    }
    weight_index = next(
        (i for i, (_, local, _) in enumerate(meta.params) if local == "weight"), None
    )
    if weight_index is not None:
        start = _PARAM_START + _PARAM_WIDTH * weight_index
        block = records[:, start : start + _PARAM_WIDTH]
        weight_norm = np.sqrt(np.maximum(block[:, _WEIGHT + 1], 0.0))
        safe_norm = np.where(weight_norm > 0, weight_norm, np.nan)
        grad = np.where(
            block[:, PARAM.GRAD_FINITE] > 0, np.sqrt(block[:, PARAM.GRAD_SUMSQ]), np.nan
        )
        update = np.where(
            block[:, PARAM.UPDATES] > 0, np.sqrt(block[:, PARAM.UPDATE_SUMSQ]), np.nan
        )
        metrics["weight_norm"] = weight_norm
        metrics["grad_weight_ratio"] = grad / safe_norm
        metrics["update_weight_ratio"] = update / safe_norm
    return metrics
