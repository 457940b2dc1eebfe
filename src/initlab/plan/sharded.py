"""Sharded init: each rank fills only its own shard of a DTensor, with the single-process values.

With a counter-based stream (``initlab.rng.Keyed``) element i of a parameter
is a pure function of (seed, name, i). For a ``Shard(0)`` placement (FSDP2's
layout) a rank's shard is the contiguous flat range
``[row_offset * row_size, (row_offset + rows) * row_size)`` of the parameter,
so the rank fills it through ``stream.window(start, stop)`` and never builds
the full tensor: the gathered result equals the single-process
``scheme(full, generator=stream)`` bit for bit, for any world size and for
uneven splits.

Elementwise schemes (``Initializer.elementwise``: the variance-scaling
family, normal, uniform, small random, truncated normal, the framework presets
and edge of chaos) take that path. Schemes
whose values depend on the whole tensor (orthogonal: QR of the full Gaussian
matrix; sparse: a per-unit choice of zeros; identity, dirac, ...) and
placements other than dim-0 sharding are generated in full on every rank
from the same stream, and each rank keeps its slice -- identical values,
at the cost of one full-size temporary per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.rng import Keyed, KeySpace
from initlab.rng.streams import CounterStream, GeneratorLike
from initlab.schemes import Initializer, get
from initlab.schemes.fans import LayoutLike

__all__ = ["fill_dtensor_", "init_sharded", "shard_range", "is_elementwise", "ShardedRow"]

def is_elementwise(scheme: Initializer) -> bool:
    """True when element i of the scheme's output depends only on the stream's element i.

    Schemes declare it with ``Initializer.elementwise`` (the variance-scaling
    family, normal, uniform, small random, truncated normal, the framework
    presets, edge of chaos).
    """
    return scheme.elementwise


# -- which part of the global tensor a rank holds -----------------------------------------
def _local_shape_and_offset(param: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from torch.distributed.tensor import Partial

    placements = tuple(param.placements)
    for placement in placements:
        if isinstance(placement, Partial):
            raise ValueError(
                f"fill_dtensor_: placement {placement} holds partial sums, not a shard of values; "
                "initialize a Shard or Replicate DTensor"
            )
    # the size and global offset of this rank's block, as DTensor reports them to distributed checkpointing
    (chunk,) = param.__create_chunk_list__()
    return tuple(int(d) for d in chunk.sizes), tuple(int(o) for o in chunk.offsets)


def shard_range(global_shape: tuple[int, ...], local_shape: tuple[int, ...], offset: tuple[int, ...]) -> tuple[int, int] | None:
    """The flat range [start, stop) of the local block if it is contiguous in the global tensor, else None.

    The block is contiguous when it spans every dimension after the first
    sharded one in full (dim-0 sharding always is).
    """
    if len(global_shape) != len(local_shape) or len(offset) != len(global_shape):
        raise ValueError(f"shapes disagree: global {global_shape}, local {local_shape}, offset {offset}")
    if not global_shape:
        return (0, 1)
    if any(local != full for local, full in zip(local_shape[1:], global_shape[1:])):
        return None
    if any(o != 0 for o in offset[1:]):
        return None
    row = 1
    for d in global_shape[1:]:
        row *= d
    start = offset[0] * row
    return (start, start + local_shape[0] * row)


# -- replaying one elementwise draw on a window ------------------------------------------
@dataclass
class _Draw:
    method: str
    arguments: tuple[float, ...]
    numel: int


class _Recorder:
    """A counter stream that records the draws a scheme asks for (on a meta tensor) without making them."""

    def __init__(self) -> None:
        self.draws: list[_Draw] = []
        self.children = 0

    def _record(self, method: str, out: torch.Tensor, arguments: tuple[float, ...]) -> torch.Tensor:
        self.draws.append(_Draw(method, arguments, out.numel()))
        return out

    def normal_(self, out: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        return self._record("normal_", out, (mean, std))

    def uniform_(self, out: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return self._record("uniform_", out, (low, high))

    def truncated_normal_(self, out: torch.Tensor, mean: float, std: float, a: float, b: float) -> torch.Tensor:
        return self._record("truncated_normal_", out, (mean, std, a, b))

    def child(self, name: str) -> CounterStream:
        self.children += 1
        return self


def _single_draw(scheme: Initializer, shape: tuple[int, ...], dtype: torch.dtype, layout: LayoutLike, groups: int) -> _Draw | None:
    """The one draw an elementwise scheme makes for the global ``shape`` (None if it makes another number)."""
    recorder = _Recorder()
    stand_in = torch.empty(shape, dtype=_compute_dtype(dtype), device="meta")
    scheme_fans = scheme.fans_of(shape, layout, groups)
    # the scheme's fill hook, as Initializer.__call__ runs it on the float32/float64 buffer
    # (__call__ itself returns early on meta tensors); the recorder makes no draws
    scheme.fill_contiguous_(stand_in, layout, groups, scheme_fans, recorder)
    total = stand_in.numel()
    if recorder.children or len(recorder.draws) != 1 or recorder.draws[0].numel != total:
        return None
    return recorder.draws[0]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def fill_dtensor_(
    param: torch.Tensor,
    scheme: Initializer | str,
    layout: LayoutLike = "linear",
    groups: int = 1,
    stream: GeneratorLike = None,
) -> torch.Tensor:
    """Fill a DTensor in place: each rank writes its own shard with the values of the full tensor.

    ``stream`` must be a counter stream (``Keyed(seed).child(name)``): a
    sequential torch generator cannot give a shard its part of the global
    sequence. ``layout`` and ``groups`` describe the global tensor. Works
    for any Shard/Replicate placement; dim-0 sharding of an elementwise
    scheme generates only the local elements (see the module docstring).
    """
    from torch.distributed.tensor import DTensor

    if not isinstance(param, DTensor):
        raise TypeError(f"fill_dtensor_: param must be a torch.distributed.tensor.DTensor, got {type(param).__name__}")
    if isinstance(scheme, str):
        scheme = get(scheme)
    if not isinstance(scheme, Initializer):
        raise TypeError(f"fill_dtensor_: scheme must be an initlab scheme or its name, got {scheme!r}")
    if not isinstance(stream, CounterStream):
        raise TypeError(
            "fill_dtensor_: stream must be a counter stream such as initlab.rng.Keyed(seed).child(name), "
            f"got {type(stream).__name__}; sequential generators cannot fill one shard alone"
        )
    global_shape = tuple(int(d) for d in param.shape)
    local = param.to_local()
    # validate the scheme against the global shape before writing anything
    scheme.fans_of(global_shape, layout, groups)
    scheme.check_shape(global_shape, layout, groups)
    local_shape, offset = _local_shape_and_offset(param)
    if tuple(local.shape) != local_shape:
        raise ValueError(f"fill_dtensor_: local shard has shape {tuple(local.shape)}, expected {local_shape}")
    if local.numel() == 0:
        return param
    flat_range = shard_range(global_shape, local_shape, offset)
    draw = None
    if flat_range is not None and is_elementwise(scheme) and isinstance(stream, Keyed):
        draw = _single_draw(scheme, global_shape, local.dtype, layout, groups)
    with torch.no_grad():
        if draw is not None and flat_range is not None:
            assert isinstance(stream, Keyed)
            # same path as Initializer.__call__: compute in float32/float64, then cast
            buffer = torch.empty(local.numel(), dtype=_compute_dtype(local.dtype), device=local.device)
            getattr(stream.window(*flat_range), draw.method)(buffer, *draw.arguments)
            local.copy_(scheme.cast_within_bounds(buffer.view(local.shape), local.dtype, global_shape, layout, groups))
        else:
            full = scheme.sample(
                global_shape, layout=layout, groups=groups, dtype=local.dtype, device=local.device, generator=stream
            )
            index = tuple(slice(o, o + n) for o, n in zip(offset, local_shape))
            local.copy_(full[index])
    return param


# -- a whole model -------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardedRow:
    """What ``init_sharded`` did with one parameter."""

    name: str
    shape: tuple[int, ...]
    scheme: str
    layout: str
    local_shape: tuple[int, ...]
    windowed: bool


PlanLike = Initializer | str | Mapping[str, Initializer | str] | Callable[[str, torch.Tensor], Any]


def _default_layout(param: torch.Tensor) -> str:
    return "linear" if param.dim() == 2 else ("conv" if param.dim() > 2 else "vector")


def _resolve(plan: PlanLike, name: str, param: torch.Tensor) -> tuple[Initializer, LayoutLike] | None:
    if callable(plan) and not isinstance(plan, Initializer):
        choice = plan(name, param)
        if choice is None:
            return None
        if isinstance(choice, tuple):
            scheme, layout = choice
        else:
            scheme, layout = choice, _default_layout(param)
        return (get(scheme) if isinstance(scheme, str) else scheme), layout
    if isinstance(plan, Mapping):
        if name not in plan:
            return None
        chosen = plan[name]
        return (get(chosen) if isinstance(chosen, str) else chosen), _default_layout(param)
    scheme = get(plan) if isinstance(plan, str) else plan
    if param.dim() < 2:
        return get("zeros"), "vector"
    return scheme, _default_layout(param)


def init_sharded(model: nn.Module, plan: PlanLike, seed: int = 0) -> list[ShardedRow]:
    """Initialize every parameter of ``model`` with counter streams ``Keyed(seed).child(name)``.

    ``plan`` is a scheme (or its name) for every weight of rank >= 2, biases
    and other vectors zero; or a mapping {parameter name: scheme}; or a
    function (name, param) -> scheme | (scheme, layout) | None (None leaves
    the parameter alone). DTensor parameters are filled shard by shard with
    :func:`fill_dtensor_`, plain tensors in full: both give the values a
    single process would. ``initlab.init_model(model, plan, seed,
    rng="counter")`` is the full-featured route (activation detection,
    reports); this function is the minimal one for sharded models.
    """
    from torch.distributed.tensor import DTensor

    if not isinstance(model, nn.Module):
        raise TypeError(f"init_sharded: model must be a torch.nn.Module, got {type(model).__name__}")
    space = KeySpace(seed)
    rows: list[ShardedRow] = []
    for name, param in model.named_parameters():
        stream = space.stream(name)
        if param.is_meta:
            raise ValueError(
                f"init_sharded: parameter {name} is on the meta device; materialize the model first "
                "(model.to_empty(device=...)), then initialize"
            )
        resolved = _resolve(plan, name, param)
        if resolved is None:
            continue
        scheme, layout = resolved
        if isinstance(param, DTensor):
            fill_dtensor_(param, scheme, layout, 1, stream)
            local_shape = tuple(param.to_local().shape)
            local_shape_g, offset = _local_shape_and_offset(param)
            windowed = shard_range(tuple(param.shape), local_shape_g, offset) is not None and is_elementwise(scheme)
        else:
            scheme(param, layout=layout, generator=stream)
            local_shape = tuple(param.shape)
            windowed = False
        rows.append(
            ShardedRow(name, tuple(param.shape), str(scheme), layout if isinstance(layout, str) else "fans", local_shape, windowed)
        )
    return rows
