"""Hooks that turn a model's forward and backward passes into per-layer sums.

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

The layer hooks are attached only while ``recording`` is on: a step the
probe does not record runs the model without them. Every statistic is a
float64 accumulator on the module's device. Sums are float64, so activations
near the float32 limit (1e38) do not overflow when squared.

* On a GPU (any device but the CPU) the hooks add to the accumulators in
  place: nothing calls ``.item()`` or keeps an activation, and constants are
  made with fill kernels (``new_full``), never copied from the host, so a
  CUDA stream is never synchronised by a hook. The host reads all rows with
  one transfer when a report is built.
* On the CPU there is no stream to wait for, so the hooks read each sum as
  a Python float and add it through a NumPy view of the accumulator. That
  allows a branch on finiteness: a float64 sum is finite only when no value
  is NaN or inf, and a finite tensor (nearly always the case) then needs
  one float64 copy (in cache-sized chunks), its sum and dot product, and one
  ``aminmax``, instead of the passes that set NaN and inf aside.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from initlab.probe.histogram import (
    CPU_CHUNK,
    DEFAULT_BINS,
    HistogramBins,
    compiled_kernels,
    cpu_scratch,
)
from initlab.probe.layers import (
    LayerInfo,
    ModuleSelector,
    describe_module,
    saturated_count,
    select_layers,
)
from initlab.rng.checks import check_int, check_number

__all__ = ["Collector", "RowState", "ParamState", "first_tensor", "ACC", "PARAM", "HOST_DEVICES"]

SNAPSHOT_KEEP_BYTES = 64 << 20
"""Bytes of CPU parameter snapshots a probe keeps between recorded steps (see ``Collector.take_snapshots``)."""

HOST_DEVICES = ("cpu",)
"""Device types whose sums the hooks read as Python floats (see the module docstring)."""


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


# [sum of squares, finite count] of a tensor: floats on the host, a float64 pair on a device
_InputSums = tuple[float, float] | torch.Tensor
_Produced = tuple["weakref.ref[torch.Tensor]", str, _InputSums]


def _data_key(tensor: torch.Tensor) -> tuple[int, int, torch.dtype, torch.device]:
    """Identity of a tensor's values: address of its first element, size, dtype, device."""
    return (tensor.data_ptr(), tensor.numel(), tensor.dtype, tensor.device)


def _host_view(acc: torch.Tensor) -> np.ndarray | None:
    """The NumPy view the hooks add to, for accumulators on a host device; None elsewhere."""
    return acc.numpy() if acc.device.type in HOST_DEVICES else None


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


def host_moments(values: torch.Tensor, *, bounds: bool) -> tuple[float, float, float, float, float]:
    """(finite count, sum, sum of squares, min, max) of a CPU tensor as Python floats.

    The same sums as :func:`_moments` (float64, non-finite entries left out,
    bounds keeping +-inf and reading NaN as 0); without ``bounds`` min and
    max are NaN. A tensor whose float64 sum is finite holds no NaN or inf,
    so it takes the float64 copy's sum and dot product alone (and one
    ``aminmax`` for the bounds); any other goes through :func:`_moments`.
    """
    kernels = compiled_kernels(values)
    if kernels is not None:
        return _compiled_moments(kernels, values, bounds)
    flat = values.reshape(-1)
    scratch, _ = cpu_scratch(torch.float64, min(flat.numel(), CPU_CHUNK))
    total = squares = 0.0
    for start in range(0, flat.numel(), CPU_CHUNK):
        part = flat[start : start + CPU_CHUNK]
        chunk = scratch[: part.numel()]
        chunk.copy_(part)
        total += chunk.sum().item()
        squares += torch.dot(chunk, chunk).item()
    if math.isfinite(total) and math.isfinite(squares):
        low = high = math.nan
        if bounds and flat.numel():
            extremes = torch.aminmax(flat)
            low, high = extremes.min.item(), extremes.max.item()
        return float(flat.numel()), total, squares, low, high
    if not bounds:
        count, total, squares = _moments(flat, bounds=False).tolist()
        return count, total, squares, math.nan, math.nan
    count, total, squares, low, negated_high = _moments(flat, bounds=True).tolist()
    return count, total, squares, low, -negated_high


def _compiled_moments(kernels: Any, values: torch.Tensor, bounds: bool) -> tuple[float, float, float, float, float]:
    """:func:`host_moments` by the compiled kernels: one vectorised pass, a second one for the bounds.

    Without NaN or inf (a finite sum says so) the bounds come from torch's
    ``aminmax``, whose vector code is several times faster than a compiled
    scalar loop.
    """
    array = values.numpy().reshape(-1)  # compiled_kernels took only contiguous tensors: a view
    total, squares = kernels.sums(array)
    if math.isfinite(total) and math.isfinite(squares):
        low = high = math.nan
        if bounds:
            extremes = torch.aminmax(values)
            low, high = extremes.min.item(), extremes.max.item()
        return float(array.shape[0]), total, squares, low, high
    count, total, squares = kernels.finite_sums(array)
    low, high = kernels.bounds(array) if bounds else (math.nan, math.nan)
    return count, total, squares, low, high


def _device_block(values: torch.Tensor) -> torch.Tensor:
    """float64 [entries, finite count, sum, sum of squares, non-finite count] on the values' device."""
    count, total, squares = _sums(values)
    numel = float(values.numel())
    return torch.stack([count.new_full((), numel), count, total, squares, numel - count])


def _host_block(values: torch.Tensor) -> list[float]:
    """:func:`_device_block` as Python floats, for a CPU tensor."""
    count, total, squares, _, _ = host_moments(values, bounds=False)
    numel = float(values.numel())
    return [numel, count, total, squares, numel - count]


@dataclass(eq=False)
class ParamState:
    """Gradient and update sums of one parameter (float64 on its device)."""

    name: str  # qualified name in the model
    local_name: str  # name inside its module ("weight", "bias")
    parameter: nn.Parameter
    acc: torch.Tensor
    snapshot: torch.Tensor | None = None
    # a CPU buffer the snapshot is copied into, kept between steps (see Collector.take_snapshots)
    spare: torch.Tensor | None = None
    # (parameter version, sum, sum of squares) of the values after the last update, taken in its pass
    weight_sums: tuple[int, float, float] | None = None

    def __post_init__(self) -> None:
        self.host = _host_view(self.acc)

    def take_snapshot(self, keep: bool) -> None:
        """Copy the parameter before the optimizer step: into ``spare`` (made once) with ``keep``, else a clone."""
        current = self.parameter.detach()
        if not keep:
            self.spare = None
            self.snapshot = current.clone()
            return
        spare = self.spare
        if spare is None or spare.shape != current.shape or spare.dtype != current.dtype or spare.device != current.device:
            spare = self.spare = torch.empty_like(current, memory_format=torch.contiguous_format)
        self.snapshot = spare.copy_(current)

    def reset(self) -> None:
        self.acc.zero_()
        self.weight_sums = None

    def current_sums(self) -> tuple[float, float] | None:
        """(sum, sum of squares) of the parameter's values if its update pass took them and it has not changed since."""
        sums = self.weight_sums
        if sums is None or sums[0] != self.parameter._version:
            return None
        return sums[1], sums[2]

    def add_grad(self, grad: torch.Tensor) -> None:
        values = grad.detach()
        if not values.is_floating_point():
            return
        if self.host is not None and values.device.type in HOST_DEVICES:
            self.host[: PARAM.UPDATE_SUMSQ] += _host_block(values)
        else:
            self.acc[: PARAM.UPDATE_SUMSQ].add_(_device_block(values).to(self.acc.device))

    def add_update(self) -> None:
        """Add the sum of squares of (parameter - snapshot) and drop the snapshot."""
        if self.snapshot is None:
            return
        current = self.parameter.detach()
        host = self.host
        kernels = compiled_kernels(current) if host is not None else None
        if host is not None and kernels is not None and self.snapshot.dtype == current.dtype and self.snapshot.is_contiguous():
            # one pass over both, no difference tensor written; a non-finite change stays non-finite;
            # the same pass takes the new values' sums, which the step's record reads
            squares, total, weight_squares = kernels.change_and_sums(
                self.snapshot.numpy().reshape(-1), current.numpy().reshape(-1)
            )
            if math.isfinite(total) and math.isfinite(weight_squares):
                self.weight_sums = (self.parameter._version, total, weight_squares)
            host[PARAM.UPDATE_SUMSQ] += squares if math.isfinite(squares) else _finite_change_sumsq(self.snapshot, current)
            host[PARAM.UPDATES] += 1.0
            self.snapshot = None
            return
        change = torch.sub(self.snapshot, current, out=self.snapshot)
        if self.host is not None and change.device.type in HOST_DEVICES:
            self.host[PARAM.UPDATE_SUMSQ] += host_moments(change, bounds=False)[2]
            self.host[PARAM.UPDATES] += 1.0
        else:
            change = change.to(torch.float64)
            self.acc[PARAM.UPDATE_SUMSQ : PARAM.UPDATES + 1].add_(
                torch.stack([change.square().sum(), change.new_full((), 1.0)])
            )
        self.snapshot = None


def _finite_change_sumsq(snapshot: torch.Tensor, current: torch.Tensor) -> float:
    """Sum of squares of the finite entries of snapshot - current (the path of a change with NaN or inf)."""
    change = torch.sub(snapshot, current, out=snapshot)
    return host_moments(change, bounds=False)[2]


@dataclass(eq=False)
class RowState:
    """Running sums of one row (one module) for the current step."""

    info: LayerInfo
    module: nn.Module
    bins: HistogramBins
    params: list[ParamState]
    acc: torch.Tensor | None = None
    hist: torch.Tensor | None = None
    host: np.ndarray | None = None  # NumPy view of acc where the hooks add host floats
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
            self.host = _host_view(self.acc)
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

    ``recording`` switches the statistics on and off (the probe records
    every N-th step): switching it on attaches the layer and parameter
    hooks, switching it off removes them, so an unrecorded step pays for one
    forward pre-hook on the model alone.
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
        self.closed = False
        self._recording = False
        self._on_root_forward = on_root_forward
        self._handles: list[RemovableHandle] = []
        self._layer_handles: list[RemovableHandle] = []
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
        self._by_name = {row.info.name: row for row in self.rows}
        self._by_module = {id(row.module): row for row in self.rows if row.module is model}
        self._handles.append(
            self.model.register_forward_pre_hook(self._root_pre_hook, with_kwargs=True)
        )

    # -- hook installation ---------------------------------------------------------
    @property
    def recording(self) -> bool:
        """Whether the hooks record; setting it attaches or removes the layer hooks."""
        return self._recording

    @recording.setter
    def recording(self, value: bool) -> None:
        value = bool(value) and not self.closed
        if value and not self._layer_handles:
            try:
                self._attach()
            except BaseException:
                self.close()
                raise
        elif not value:
            self._detach()
        self._recording = value

    def _attach(self) -> None:
        for row in self.rows:
            # the model's own row reads its input in the root pre-hook, which runs first
            if row.module is not self.model:
                self._layer_handles.append(
                    row.module.register_forward_pre_hook(self._make_pre_hook(row), with_kwargs=True)
                )
            self._layer_handles.append(
                row.module.register_forward_hook(self._make_hook(row), with_kwargs=True)
            )
            for param in row.params:
                if param.parameter.requires_grad:
                    self._layer_handles.append(
                        param.parameter.register_hook(self._make_param_hook(param))
                    )

    def _detach(self) -> None:
        for handle in self._layer_handles:
            handle.remove()
        self._layer_handles.clear()

    def close(self) -> None:
        """Remove every hook; hooks still attached to live graphs become no-ops."""
        self.closed = True
        self._recording = False
        self._detach()
        for row in self.rows:
            for param in row.params:
                param.spare = param.snapshot = None  # the kept snapshot buffers go with the hooks
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
            self._recording and not self.closed and (self.record_no_grad or torch.is_grad_enabled())
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
        sums = _input_sums(inputs.detach(), self.input_acc)
        _add_input_sums(self.input_acc, _host_view(self.input_acc), 0, sums)
        self._remember(inputs, "<input>", sums)
        # hooks attached by on_root_forward (a step that starts here) missed this call's pre-hooks
        root_row = self._by_module.get(id(module))
        if root_row is not None:
            self._read_input(root_row, args, kwargs)

    def _remember(self, tensor: torch.Tensor, name: str, sums: _InputSums) -> None:
        """Note that ``tensor`` (with [sum of squares, finite count] ``sums``) came from row ``name``."""
        entry = (weakref.ref(tensor), name, sums)
        self._producers[id(tensor)] = entry
        # a reshaped view (x.flatten(1), x.view(n, -1)) holds the same values: find it by its data
        self._views[_data_key(tensor)] = entry

    def _producer_of(self, tensor: torch.Tensor) -> tuple[str, _InputSums] | None:
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
            if self._active():
                self._read_input(row, args, kwargs)

        return pre_hook

    def _read_input(self, row: RowState, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The row's place in the forward order, its source row and its input's mean square."""
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
            upstream = self._by_name.get(producer)
            if upstream is not None:
                row.unit_dim = upstream.unit_dim
        if inputs.is_floating_point():
            acc, _ = row.ensure(inputs.device)
            sums = produced[1] if produced is not None else None
            if sums is None or not _fits(sums, acc, row.host):
                sums = _input_sums(inputs.detach(), acc)
            # else: the producing row measured this very tensor a moment ago
            _add_input_sums(acc, row.host, ACC.IN_SUMSQ, sums)

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
            start = ACC.GRAD_N
            if row.host is not None and values.device.type in HOST_DEVICES:
                row.host[start : start + 5] += _host_block(values)
            else:
                row.acc[start : start + 5].add_(_device_block(values))

        return grad_hook

    def _make_param_hook(self, param: ParamState) -> Callable[[torch.Tensor], None]:
        def param_hook(grad: torch.Tensor) -> None:
            # backward runs with grad mode off, so only the recording switch counts here
            if self._recording and not self.closed:
                param.add_grad(grad)

        return param_hook

    # -- forward statistics -----------------------------------------------------------
    def _forward_stats(self, row: RowState, output: torch.Tensor) -> _InputSums:
        """Add the output's statistics to the row; returns [sum of squares, finite count]."""
        acc, hist = row.ensure(output.device)
        values = output if output.dtype in (torch.float32, torch.float64) else output.float()
        row.output_shape = tuple(values.shape)
        if values.numel() == 0:
            acc[ACC.CALLS] += 1.0
            return (0.0, 0.0) if row.host is not None else acc.new_zeros(2)
        # finite and non-finite counts come from the histogram's last slot when the row is read
        sums: _InputSums
        finite = False
        if row.host is not None:
            sums, finite = self._host_output_stats(row, row.host, values)
        else:
            sums = self._device_output_stats(row, acc, values)
        row.bins.count_into_(hist, values)
        if row.info.dying:
            self._track_activity(row, values, finite)
        return sums

    def _host_output_stats(
        self, row: RowState, host: np.ndarray, values: torch.Tensor
    ) -> tuple[tuple[float, float], bool]:
        """The forward sums of ``values`` added through the row's NumPy view; also whether all were finite."""
        count, total, squares, low, high = host_moments(values, bounds=True)
        numel = float(values.numel())
        host[ACC.N] += numel
        host[ACC.SUM] += total
        host[ACC.SUMSQ] += squares
        host[ACC.CALLS] += 1.0
        host[ACC.MIN] = min(host[ACC.MIN], low)
        host[ACC.NEG_MAX] = min(host[ACC.NEG_MAX], -high)
        if row.info.saturating:
            host[ACC.SATURATED] += saturated_count(
                row.info.activation or "", values, self.saturation_threshold, row.module
            ).item()
        if self.gram_enabled:
            host[ACC.ERANK : ACC.GRAM_CALLS + 1] += [part.item() for part in self._gram_stats(values)]
        return (squares, numel), count == numel

    def _device_output_stats(self, row: RowState, acc: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """The forward sums of ``values`` added in place on their device (no host read)."""
        moments = _moments(values, bounds=True)
        total, squares, bounds = moments[1], moments[2], moments[3:]
        entries = acc.new_full((), float(values.numel()))
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
            [entries, zero, total, squares, zero, zero, zero, saturated, zero, erank, cosine, gram_calls]
        )
        acc[: ACC.GRAM_CALLS + 1].add_(update)
        acc[ACC.CALLS] += 1.0
        torch.minimum(acc[ACC.MIN :], bounds, out=acc[ACC.MIN :])
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

    def _track_activity(self, row: RowState, values: torch.Tensor, finite: bool) -> None:
        if values.dim() < 2:
            return
        unit_dim = row.unit_dim % values.dim()
        if unit_dim == 0:
            unit_dim = values.dim() - 1
        reduce_dims = [d for d in range(values.dim()) if d != unit_dim]
        # without NaN, "some entry > 0" is "the largest entry > 0": one reduction, no boolean copy
        active = values.amax(dim=reduce_dims) > 0 if finite else (values > 0).amax(dim=reduce_dims)
        if row.active is None and not row.units_mismatch:
            row.active = active
        elif row.active is not None and row.active.shape == active.shape:
            torch.logical_or(row.active, active, out=row.active)
        else:
            row.active = None
            row.units_mismatch = True

    # -- parameter updates ------------------------------------------------------------
    def take_snapshots(self) -> None:
        """Copy every tracked parameter before an optimizer step (its update is measured after it).

        CPU parameters are copied into buffers kept between recorded steps, up
        to ``SNAPSHOT_KEEP_BYTES`` in all: a fresh multi-hundred-kilobyte copy
        per step costs more in page faults than the copy itself. The rest
        (other devices, and CPU parameters past the budget) are cloned each
        time and freed after the step.
        """
        kept = 0
        for row in self.rows:
            for param in row.params:
                tensor = param.parameter
                size = tensor.numel() * tensor.element_size()
                keep = tensor.device.type == "cpu" and kept + size <= SNAPSHOT_KEEP_BYTES
                kept += size if keep else 0
                param.take_snapshot(keep)

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


def _input_sums(inputs: torch.Tensor, acc: torch.Tensor) -> _InputSums:
    """[sum of squares, finite count] of a module's input, in the form ``acc``'s hooks add."""
    if acc.device.type in HOST_DEVICES and inputs.device.type in HOST_DEVICES:
        count, _, squares, _, _ = host_moments(inputs, bounds=False)
        return squares, count
    finite, _, total_squares = _sums(inputs)
    return torch.stack([total_squares, finite]).to(acc.device)


def _fits(sums: _InputSums, acc: torch.Tensor, host: np.ndarray | None) -> bool:
    """Whether remembered input sums can be added as they are: floats to a host row, a tensor on acc's device."""
    if isinstance(sums, torch.Tensor):
        return host is None and sums.device == acc.device
    return host is not None


def _add_input_sums(acc: torch.Tensor, host: np.ndarray | None, start: int, sums: _InputSums) -> None:
    if host is not None and not isinstance(sums, torch.Tensor):
        host[start] += sums[0]
        host[start + 1] += sums[1]
    else:
        acc[start : start + 2].add_(torch.as_tensor(sums, dtype=torch.float64, device=acc.device))
