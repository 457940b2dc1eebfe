"""Hooks that turn a model's forward and backward passes into per-layer sums on the device.

One :class:`Collector` serves both the one-batch :func:`~initlab.probe.audit`
and the training :func:`~initlab.probe.probe`. For every selected module it
registers

* a forward pre-hook: the mean square of the input (for the gain), before an
  in-place activation can overwrite it;
* a forward hook: sums of the output (count, sum, sum of squares, min, max,
  non-finite count), the signed log histogram, saturated entries, per-unit
  activity, and a Gram matrix of a few samples (effective rank, cosine);
* on the output tensor, a *tensor* hook (not a module backward hook, which
  refuses in-place activations) that adds the same sums for the gradient
  w.r.t. the output;
* on each of the module's own parameters, a tensor hook for the parameter's
  gradient.

Every statistic is a float64 tensor on the module's device that the hooks
add to in place; nothing calls ``.item()`` or keeps an activation, and
constants are made with fill kernels (``new_full``), never copied from the
host, so a CUDA stream is never synchronised by a hook. The host
reads all rows with one transfer when a report is built. Sums are float64,
so activations near the float32 limit (1e38) do not overflow when squared.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from initlab.probe.histogram import CPU_CHUNK, DEFAULT_BINS, HistogramBins, cpu_scratch
from initlab.probe.layers import (
    LayerInfo,
    ModuleSelector,
    describe_module,
    saturated_count,
    select_layers,
)
from initlab.rng.checks import check_int, check_number

__all__ = ["Collector", "RowState", "ParamState", "first_tensor", "ACC", "PARAM"]


class ACC:
    """Positions in a row's accumulator vector (all float64)."""

    N = 0  # output entries seen
    FINITE = 1  # finite output entries (filled from the histogram when a record is made)
    SUM = 2
    SUMSQ = 3
    NONFINITE = 4
    IN_SUMSQ = 5  # finite input entries: sum of squares
    IN_N = 6
    SATURATED = 7  # entries with relative derivative below the threshold
    SATURATION_N = 8  # finite entries of saturating activations
    ERANK = 9  # sum over calls of the participation-ratio effective rank
    COSINE = 10  # sum over calls of the mean pairwise cosine similarity
    GRAM_CALLS = 11
    GRAD_N = 12
    GRAD_FINITE = 13
    GRAD_SUM = 14
    GRAD_SUMSQ = 15
    GRAD_NONFINITE = 16
    CALLS = 17
    MIN = 18
    NEG_MAX = 19  # minus the maximum, so that both bounds combine with one minimum
    SIZE = 20


class PARAM:
    """Positions in a parameter's accumulator vector (all float64)."""

    GRAD_N = 0
    GRAD_FINITE = 1
    GRAD_SUM = 2
    GRAD_SUMSQ = 3
    GRAD_NONFINITE = 4
    UPDATE_SUMSQ = 5
    UPDATES = 6
    SIZE = 7


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in ``value`` (a tensor, or tuples/lists/dicts of them, depth first)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    elif isinstance(value, dict):
        for item in value.values():
            found = first_tensor(item)
            if found is not None:
                return found
    return None


_Produced = tuple["weakref.ref[torch.Tensor]", str, torch.Tensor]


def _data_key(tensor: torch.Tensor) -> tuple[int, int, torch.dtype, torch.device]:
    """Identity of a tensor's values: address of its first element, size, dtype, device."""
    return (tensor.data_ptr(), tensor.numel(), tensor.dtype, tensor.device)


def _new_acc(device: torch.device) -> torch.Tensor:
    acc = torch.zeros(ACC.SIZE, dtype=torch.float64, device=device)
    acc[ACC.MIN :] = float("inf")
    return acc


def _sums(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(finite count, sum, sum of squares) of ``values`` in float64, non-finite entries dropped.

    Squares are summed in float64 so that values near the float32 limit do
    not overflow.
    """
    count, total, squares = _moments(values, bounds=False).unbind()
    return count, total, squares


def _moments(values: torch.Tensor, *, bounds: bool) -> torch.Tensor:
    """float64 ``[finite count, sum, sum of squares]``, then ``min, -max`` with ``bounds``.

    Non-finite entries are left out of the sums; the bounds keep +-inf (so
    an overflowing layer shows max = inf) and read NaN as 0. Large CPU
    tensors go through in cache-sized chunks and a per-thread float64
    scratch buffer (see :mod:`initlab.probe.histogram`): a full-size float64
    copy per recorded step costs more in page faults than the sums do.
    """
    flat = values.reshape(-1)
    if flat.device.type != "cpu" or flat.numel() <= CPU_CHUNK:
        return _chunk_moments(flat.to(torch.float64, copy=True), bounds)
    scratch, _ = cpu_scratch(torch.float64, CPU_CHUNK)
    parts = []
    for start in range(0, flat.numel(), CPU_CHUNK):
        part = flat[start : start + CPU_CHUNK]
        chunk = scratch[: part.numel()]
        chunk.copy_(part)
        parts.append(_chunk_moments(chunk, bounds))
    stacked = torch.stack(parts)
    sums = stacked[:, :3].sum(dim=0)
    return torch.cat([sums, stacked[:, 3:].amin(dim=0)]) if bounds else sums


def _chunk_moments(chunk: torch.Tensor, bounds: bool) -> torch.Tensor:
    """:func:`_moments` of one float64 chunk, which it overwrites."""
    # abs() < inf is false for NaN and +-inf alike (and several times faster than isfinite on CPU)
    pieces = [(chunk.abs() < float("inf")).sum(dtype=torch.float64)]
    if bounds:
        torch.nan_to_num_(chunk, nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        low, high = torch.aminmax(chunk)
    torch.nan_to_num_(chunk, nan=0.0, posinf=0.0, neginf=0.0)
    pieces += [chunk.sum(), torch.dot(chunk, chunk)]
    if bounds:
        pieces += [low, -high]
    return torch.stack(pieces)


@dataclass(eq=False)
class ParamState:
    """Gradient and update sums of one parameter (float64 on its device)."""

    name: str  # qualified name in the model
    local_name: str  # name inside its module ("weight", "bias")
    parameter: nn.Parameter
    acc: torch.Tensor
    snapshot: torch.Tensor | None = None

    def reset(self) -> None:
        self.acc.zero_()

    def add_grad(self, grad: torch.Tensor) -> None:
        values = grad.detach()
        if not values.is_floating_point():
            return
        count, total, squares = _sums(values)
        numel = float(values.numel())
        update = torch.stack([count.new_full((), numel), count, total, squares, numel - count])
        self.acc[: PARAM.UPDATE_SUMSQ].add_(update)


@dataclass(eq=False)
class RowState:
    """Running sums of one row (one module) for the current step."""

    info: LayerInfo
    module: nn.Module
    bins: HistogramBins
    params: list[ParamState]
    acc: torch.Tensor | None = None
    hist: torch.Tensor | None = None
    active: torch.Tensor | None = None  # per-unit: was the unit ever > 0 this step
    units_mismatch: bool = False
    order: int | None = None  # position of the first call in the forward pass
    source: str | None = None  # row (or "<input>") whose output this module read
    source_ambiguous: bool = False
    unit_dim: int = -1
    output_shape: tuple[int, ...] | None = None
    touched: bool = False  # called while recording since the last reset

    def ensure(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.acc is None or self.hist is None:
            self.acc = _new_acc(device)
            self.hist = torch.zeros(self.bins.num_bins + 1, dtype=torch.float64, device=device)
        return self.acc, self.hist

    def reset(self) -> None:
        if self.acc is not None and self.hist is not None:
            self.acc.zero_()
            self.acc[ACC.MIN :] = float("inf")
            self.hist.zero_()
        self.active = None
        self.units_mismatch = False
        self.touched = False
        for param in self.params:
            param.reset()


class Collector:
    """Installs the hooks and owns the per-row sums; ``close()`` removes every hook.

    ``recording`` switches the hooks on and off (the probe records every N-th
    step); while off, a hook costs one attribute lookup.
    """

    def __init__(
        self,
        model: nn.Module,
        modules: ModuleSelector = None,
        *,
        bins: HistogramBins = DEFAULT_BINS,
        saturation_threshold: float = 0.1,
        rank_samples: int = 64,
        track_parameters: bool = True,
        on_root_forward: Callable[[], None] | None = None,
        record_no_grad: bool = True,
    ) -> None:
        if not isinstance(bins, HistogramBins):
            raise TypeError(f"bins must be a HistogramBins, got {type(bins).__name__}")
        check_int("rank_samples", rank_samples, minimum=0)
        check_number("saturation_threshold", saturation_threshold, minimum=0.0, maximum=1.0, strict=True)
        self.model = model
        self.bins = bins
        self.saturation_threshold = float(saturation_threshold)
        self.rank_samples = rank_samples
        # the probe switches the Gram statistics (effective rank, cosine) off on most steps
        self.gram_enabled = rank_samples > 0
        self.record_no_grad = record_no_grad
        self.recording = False
        self.closed = False
        self._on_root_forward = on_root_forward
        self._handles: list[RemovableHandle] = []
        self._order = 0
        self._producers: dict[int, _Produced] = {}
        self._views: dict[tuple[int, int, torch.dtype, torch.device], _Produced] = {}
        self.input_acc: torch.Tensor | None = None
        self.rows: list[RowState] = []
        param_names = {id(p): n for n, p in model.named_parameters()}
        for name, module in select_layers(model, modules):
            info = describe_module(name, module)
            params = []
            if track_parameters:
                for local, parameter in module.named_parameters(recurse=False):
                    params.append(
                        ParamState(
                            name=param_names.get(
                                id(parameter), f"{name}.{local}" if name else local
                            ),
                            local_name=local,
                            parameter=parameter,
                            acc=torch.zeros(
                                PARAM.SIZE, dtype=torch.float64, device=parameter.device
                            ),
                        )
                    )
            self.rows.append(
                RowState(info=info, module=module, bins=bins, params=params, unit_dim=info.unit_dim)
            )
        try:
            self._install()
        except BaseException:
            self.close()
            raise

    # -- hook installation ---------------------------------------------------------
    def _install(self) -> None:
        self._handles.append(
            self.model.register_forward_pre_hook(self._root_pre_hook, with_kwargs=True)
        )
        for row in self.rows:
            self._handles.append(
                row.module.register_forward_pre_hook(self._make_pre_hook(row), with_kwargs=True)
            )
            self._handles.append(
                row.module.register_forward_hook(self._make_hook(row), with_kwargs=True)
            )
            for param in row.params:
                if param.parameter.requires_grad:
                    self._handles.append(
                        param.parameter.register_hook(self._make_param_hook(param))
                    )

    def close(self) -> None:
        """Remove every hook; hooks still attached to live graphs become no-ops."""
        self.closed = True
        self.recording = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._producers.clear()
        self._views.clear()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _active(self) -> bool:
        return (
            self.recording and not self.closed and (self.record_no_grad or torch.is_grad_enabled())
        )

    # -- the hooks -----------------------------------------------------------------
    def _root_pre_hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self._on_root_forward is not None and not self.closed:
            self._on_root_forward()
        if not self._active():
            return
        self._producers.clear()
        self._views.clear()
        inputs = first_tensor((args, kwargs))
        if inputs is None or not inputs.is_floating_point():
            return
        if self.input_acc is None:
            self.input_acc = torch.zeros(2, dtype=torch.float64, device=inputs.device)
        count, _, squares = _sums(inputs.detach())
        sums = torch.stack([squares, count])
        self.input_acc.add_(sums)
        self._remember(inputs, "<input>", sums)

    def _remember(self, tensor: torch.Tensor, name: str, sums: torch.Tensor) -> None:
        """Note that ``tensor`` (with [sum of squares, finite count] ``sums``) came from row ``name``."""
        entry = (weakref.ref(tensor), name, sums)
        self._producers[id(tensor)] = entry
        # a reshaped view (x.flatten(1), x.view(n, -1)) holds the same values: find it by its data
        self._views[_data_key(tensor)] = entry

    def _producer_of(self, tensor: torch.Tensor) -> tuple[str, torch.Tensor] | None:
        """(row name, [sum of squares, finite count]) of the row whose output ``tensor`` is."""
        entry = self._producers.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1], entry[2]
        entry = self._views.get(_data_key(tensor))
        if entry is not None and entry[0]() is not None:
            return entry[1], entry[2]
        return None

    def _make_pre_hook(self, row: RowState) -> Callable[..., None]:
        def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not self._active():
                return
            inputs = first_tensor((args, kwargs))
            if inputs is None:
                return
            produced = self._producer_of(inputs)
            producer = produced[0] if produced is not None else None
            if row.order is None:
                row.order = self._order
                self._order += 1
                row.source = producer
            elif producer != row.source:
                row.source_ambiguous = True
            if producer is not None and row.info.kind == "activation":
                upstream = self._row_named(producer)
                if upstream is not None:
                    row.unit_dim = upstream.unit_dim
            if inputs.is_floating_point():
                acc, _ = row.ensure(inputs.device)
                if produced is not None and produced[1].device == acc.device:
                    # the producing row measured this very tensor a moment ago
                    acc[ACC.IN_SUMSQ : ACC.IN_N + 1].add_(produced[1])
                else:
                    count, _, squares = _sums(inputs.detach())
                    acc[ACC.IN_SUMSQ : ACC.IN_N + 1].add_(torch.stack([squares, count]))

        return pre_hook

    def _row_named(self, name: str) -> RowState | None:
        for row in self.rows:
            if row.info.name == name:
                return row
        return None

    def _make_hook(self, row: RowState) -> Callable[..., None]:
        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
        ) -> None:
            if not self._active():
                return
            tensor = first_tensor(output)
            if tensor is None or not tensor.is_floating_point():
                return
            row.touched = True
            sums = self._forward_stats(row, tensor.detach())
            self._remember(tensor, row.info.name, sums)
            if tensor.requires_grad and torch.is_grad_enabled():
                tensor.register_hook(self._make_grad_hook(row))

        return hook

    def _make_grad_hook(self, row: RowState) -> Callable[[torch.Tensor], None]:
        def grad_hook(grad: torch.Tensor) -> None:
            if self.closed or row.acc is None:
                return
            values = grad.detach()
            count, total, squares = _sums(values)
            numel = float(values.numel())
            row.acc[ACC.GRAD_N : ACC.GRAD_NONFINITE + 1].add_(
                torch.stack([count.new_full((), numel), count, total, squares, numel - count])
            )

        return grad_hook

    def _make_param_hook(self, param: ParamState) -> Callable[[torch.Tensor], None]:
        def param_hook(grad: torch.Tensor) -> None:
            # backward runs with grad mode off, so only the recording switch counts here
            if self.recording and not self.closed:
                param.add_grad(grad)

        return param_hook

    # -- forward statistics -----------------------------------------------------------
    def _forward_stats(self, row: RowState, output: torch.Tensor) -> torch.Tensor:
        """Add the output's statistics to the row; returns [sum of squares, finite count]."""
        acc, hist = row.ensure(output.device)
        values = output if output.dtype in (torch.float32, torch.float64) else output.float()
        numel = values.numel()
        if numel == 0:
            acc[ACC.CALLS] += 1.0
            return acc.new_zeros(2)
        # finite and non-finite counts come from the histogram's last slot when the row is read
        moments = _moments(values, bounds=True)
        total, squares, bounds = moments[1], moments[2], moments[3:]
        entries = acc.new_full((), float(numel))
        zero = acc.new_zeros(())
        saturated = zero
        if row.info.saturating:
            saturated = saturated_count(
                row.info.activation or "", values, self.saturation_threshold, row.module
            )
        if self.gram_enabled:
            erank, cosine, gram_calls = self._gram_stats(values)
        else:
            erank = cosine = gram_calls = zero
        update = torch.stack(
            [
                entries,
                zero,
                total,
                squares,
                zero,
                zero,
                zero,
                saturated,
                zero,
                erank,
                cosine,
                gram_calls,
            ]
        )
        acc[: ACC.GRAM_CALLS + 1].add_(update)
        acc[ACC.CALLS] += 1.0
        torch.minimum(acc[ACC.MIN :], bounds, out=acc[ACC.MIN :])
        row.bins.count_into_(hist, values)
        row.output_shape = tuple(values.shape)
        if row.info.dying:
            self._track_activity(row, values)
        return torch.stack([squares, entries])

    def _gram_stats(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zero = torch.zeros((), dtype=torch.float64, device=values.device)
        samples = min(self.rank_samples, values.shape[0]) if values.dim() >= 2 else 0
        if samples < 2 or values[0].numel() == 0:
            return zero, zero, zero
        block = torch.nan_to_num(
            values[:samples].reshape(samples, -1), nan=0.0, posinf=0.0, neginf=0.0
        )
        block = block.to(torch.float64)
        # rescaled so that squares of huge activations stay finite; both statistics are scale-free
        block = block / block.abs().amax().clamp_min(1e-300)
        gram = block @ block.T
        norms = gram.diagonal().sqrt()
        outer = norms[:, None] * norms[None, :]
        cosines = gram / outer.clamp_min(1e-300)
        mean_cosine = (cosines.sum() - cosines.diagonal().sum()) / (samples * (samples - 1))
        centred = gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()
        trace = centred.diagonal().sum()
        frobenius = centred.square().sum()
        # identical samples leave only rounding noise after centring: rank 0, not the noise's rank
        varied = trace > 1e-10 * gram.diagonal().sum()
        erank = torch.where(varied, trace * trace / frobenius.clamp_min(1e-300), 0.0)
        return erank, mean_cosine, zero + 1.0

    def _track_activity(self, row: RowState, values: torch.Tensor) -> None:
        if values.dim() < 2:
            return
        unit_dim = row.unit_dim % values.dim()
        if unit_dim == 0:
            unit_dim = values.dim() - 1
        reduce_dims = [d for d in range(values.dim()) if d != unit_dim]
        active = (values > 0).amax(dim=reduce_dims)
        if row.active is None and not row.units_mismatch:
            row.active = active
        elif row.active is not None and row.active.shape == active.shape:
            torch.logical_or(row.active, active, out=row.active)
        else:
            row.active = None
            row.units_mismatch = True

    # -- reading -------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero every sum (start of a new step)."""
        for row in self.rows:
            row.reset()
        if self.input_acc is not None:
            self.input_acc.zero_()

    def iter_recorded(self) -> Iterator[RowState]:
        """Rows called while recording since the last reset, in forward order."""
        called = [
            row
            for row in self.rows
            if row.touched and row.order is not None and row.acc is not None
        ]
        return iter(sorted(called, key=lambda row: row.order if row.order is not None else 0))
