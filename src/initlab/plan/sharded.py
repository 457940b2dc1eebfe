"""Sharded init: each rank fills only its own block of a DTensor, with the single-process values.

With a counter-based stream (``initlab.rng.Keyed``) element i of a parameter
is a pure function of (seed, name, i), so the values a rank holds do not
depend on the mesh, the world size or the placements. The rank's block comes
from the DTensor itself (its offsets and sizes in the global tensor, as
distributed checkpointing reads them), so every placement DTensor can express
works: ``Shard(d)`` on any dimension, ``Replicate``, several mesh dimensions
([Shard(0), Shard(1)], HSDP's [Replicate, Shard(0)], FSDP2 over tensor
parallel's strided shards), and uneven splits.

How a block is filled:

* **Elementwise schemes** (``Initializer.elementwise``: the variance-scaling
  family, normal, uniform, small random, truncated normal, the framework
  presets, edge of chaos) are asked, on a meta tensor of the global shape,
  which one draw they make; the rank replays that draw on its own elements.
  Its block is a set of runs of consecutive global indices (one run for
  dim-0 sharding; one run per row for ``Shard(1)``). A run of at least
  ``LONG_RUN`` elements is filled through ``stream.window(start, stop)``;
  shorter runs are generated together, a covering window of at most
  ``SCRATCH_ELEMENTS`` values at a time, and the rank keeps its columns.
  Memory: the block plus at most ``SCRATCH_ELEMENTS`` values of scratch
  (a bfloat16/float16 block that is one run is drawn ``CAST_CHUNK`` float32
  values at a time and cast; others use a float32 buffer of the block);
  never the full tensor.
* **Whole-tensor schemes** (orthogonal: QR of the full Gaussian matrix;
  sparse; identity; dirac; ...) build the full parameter once per rank, in
  the compute dtype, keep the rank's block and free the rest before the next
  parameter: at most one full parameter (and its QR factor) at a time.
* **Packed parameters** (attention ``in_proj_weight``, LSTM/GRU gates) are
  filled block by block along dim 0, each block from its own child stream,
  intersected with the rank's rows.

Data-driven stages measure statistics of forward passes. The ones
registered with ``sharded=True`` (LSUV, weight-norm init, calibration) run on
FSDP2-sharded parameters (``fully_shard``, 1-D or HSDP meshes), whose
forward passes use the gathered weights, after :func:`gather_batch` has
all-gathered every rank's batch: each rank measures the statistics of the
same global batch in one process's order, so every rank applies the same
scales and the gathered weights equal a single process's on that batch, bit
for bit. Tensor-parallel layers (whose outputs are split across ranks) and
the stages that train (pre-training, GradInit) are refused before anything
is written.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.rng import Keyed, KeySpace
from initlab.rng.streams import CounterStream, GeneratorLike
from initlab.schemes import Initializer, get
from initlab.schemes.fans import LayoutLike

__all__ = [
    "fill_dtensor_",
    "fill_block_",
    "write_dtensor_",
    "init_sharded",
    "local_block",
    "shard_range",
    "is_elementwise",
    "gather_batch",
    "sharded_stages",
    "check_stage_sharding",
    "hooks_off",
    "ShardedRow",
    "LONG_RUN",
    "SCRATCH_ELEMENTS",
    "CAST_CHUNK",
]

# a run this long is filled through its own window; the per-call cost is then small against the fill
LONG_RUN = 1 << 16
# short runs are generated together, a covering window of at most this many values (16 MiB in float32)
SCRATCH_ELEMENTS = 1 << 22
# a bfloat16/float16 block that is one run is drawn this many float32 values at a time, then cast: a draw
# has a fixed cost of about half a millisecond, so smaller chunks cost more than the cache saves
CAST_CHUNK = SCRATCH_ELEMENTS


def is_elementwise(scheme: Initializer) -> bool:
    """True when element i of the scheme's output depends only on the stream's element i.

    Schemes declare it with ``Initializer.elementwise`` (the variance-scaling
    family, normal, uniform, small random, truncated normal, the framework
    presets, edge of chaos).
    """
    return scheme.elementwise


# -- which part of the global tensor a rank holds -----------------------------------------
def local_block(param: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(sizes, offsets) of this rank's block of the DTensor ``param`` in the global tensor.

    Read from the DTensor's chunk list (what distributed checkpointing saves),
    which covers every placement of every mesh dimension. ValueError for
    ``Partial`` placements, which hold partial sums rather than values.
    """
    from torch.distributed.tensor import Partial

    for placement in tuple(param.placements):
        if isinstance(placement, Partial):
            raise ValueError(
                f"fill_dtensor_: placement {placement} holds partial sums, not a shard of values; "
                "initialize a Shard or Replicate DTensor"
            )
    (chunk,) = param.__create_chunk_list__()
    return tuple(int(d) for d in chunk.sizes), tuple(int(o) for o in chunk.offsets)


def shard_range(global_shape: tuple[int, ...], local_shape: tuple[int, ...], offset: tuple[int, ...]) -> tuple[int, int] | None:
    """The flat range [start, stop) of the local block if it is contiguous in the global tensor, else None.

    The block is contiguous when it spans every dimension after the first
    one in full (dim-0 sharding always is).
    """
    if len(global_shape) != len(local_shape) or len(offset) != len(global_shape):
        raise ValueError(f"shapes disagree: global {global_shape}, local {local_shape}, offset {offset}")
    if not global_shape:
        return (0, 1)
    if any(local != full for local, full in zip(local_shape[1:], global_shape[1:])):
        return None
    if any(o != 0 for o in offset[1:]):
        return None
    row = math.prod(global_shape[1:])
    start = offset[0] * row
    return (start, start + local_shape[0] * row)


def block_runs(global_shape: Sequence[int], local_shape: Sequence[int], offset: Sequence[int]) -> tuple[int, list[int]]:
    """The block as runs of consecutive global flat indices: (run length, start of each run).

    Runs are listed in the block's own row-major order, so run r fills
    elements [r * length, (r + 1) * length) of the block. A block that spans
    every dimension after its first partial one is a single run.
    """
    shape, local, start = tuple(global_shape), tuple(local_shape), tuple(offset)
    partial = [d for d in range(len(shape)) if local[d] != shape[d] or start[d] != 0]
    if not partial:
        return math.prod(shape), [0]
    last = partial[-1]
    inner = math.prod(shape[last + 1:])
    length = local[last] * inner
    starts = torch.tensor([start[last] * inner], dtype=torch.int64)
    for d in range(last - 1, -1, -1):
        stride = math.prod(shape[d + 1:])
        rows = (torch.arange(local[d], dtype=torch.int64) + start[d]) * stride
        starts = (rows[:, None] + starts[None, :]).reshape(-1)
    return length, [int(s) for s in starts.tolist()]


# -- replaying one elementwise draw on a block ---------------------------------------------
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


def _replay_runs(buffer: torch.Tensor, draw: _Draw, stream: Keyed, length: int, starts: list[int]) -> None:
    """Fill the flat ``buffer`` (the block) run by run with ``draw`` made on the global tensor."""
    def fill(window: Keyed, out: torch.Tensor) -> None:
        getattr(window, draw.method)(out, *draw.arguments)

    count, index = len(starts), 0
    scratch: torch.Tensor | None = None
    while index < count:
        first = starts[index]
        if length >= LONG_RUN:
            fill(stream.window(first, first + length), buffer[index * length:(index + 1) * length])
            index += 1
            continue
        # the runs whose covering window fits the scratch (at least one)
        stop = index + 1
        while stop < count and starts[stop] + length - first <= max(SCRATCH_ELEMENTS, length):
            stop += 1
        span = starts[stop - 1] + length - first
        if scratch is None or scratch.numel() < span:
            scratch = torch.empty(max(span, min(SCRATCH_ELEMENTS, (count - index) * length)),
                                  dtype=buffer.dtype, device=buffer.device)
        fill(stream.window(first, first + span), scratch[:span])
        rows = buffer[index * length:stop * length].view(stop - index, length)
        steps = {b - a for a, b in zip(starts[index:stop], starts[index + 1:stop])}
        if len(steps) <= 1:
            step = steps.pop() if steps else length
            rows.copy_(scratch.as_strided((stop - index, length), (step, 1)))
        else:
            for row, begin in enumerate(starts[index:stop]):
                rows[row].copy_(scratch[begin - first:begin - first + length])
        index = stop


def _cast_bounds(scheme: Initializer, dtype: torch.dtype, shape: tuple[int, ...], layout: LayoutLike,
                 groups: int) -> tuple[float, float] | None:
    """The values ``scheme.cast_within_bounds`` clamps a cast to ``dtype`` at (None: it does not clamp).

    Read by casting -inf and +inf: they come back as the representable
    bounds, or unchanged when the scheme has none.
    """
    ends = scheme.cast_within_bounds(torch.tensor([-math.inf, math.inf]), dtype, shape, layout, groups)
    low, high = float(ends[0]), float(ends[1])
    return None if math.isinf(low) and math.isinf(high) else (low, high)


def _replay_cast(out: torch.Tensor, draw: _Draw, stream: Keyed, first: int, bounds: tuple[float, float] | None) -> None:
    """Fill the flat narrow-dtype ``out`` (global indices ``first`` on) chunk by chunk: draw in float32, cast.

    ``copy_`` rounds to nearest as ``Tensor.to`` does, and the clamp to
    ``bounds`` is ``cast_within_bounds``'s, both elementwise: the bits equal
    a cast of the whole float32 tensor, with ``CAST_CHUNK`` values of scratch.
    """
    scratch = torch.empty(min(CAST_CHUNK, out.numel()), dtype=torch.float32, device=out.device)
    for start in range(0, out.numel(), CAST_CHUNK):
        stop = min(start + CAST_CHUNK, out.numel())
        values = scratch[:stop - start]
        getattr(stream.window(first + start, first + stop), draw.method)(values, *draw.arguments)
        piece = out[start:stop].copy_(values)
        if bounds is not None:
            piece.clamp_(*bounds)


def fill_block_(
    out: torch.Tensor,
    scheme: Initializer,
    shape: tuple[int, ...],
    offset: tuple[int, ...],
    layout: LayoutLike = "linear",
    groups: int = 1,
    stream: GeneratorLike = None,
) -> bool:
    """Fill ``out``, the block at ``offset`` of a tensor of ``shape``, with that tensor's values.

    ``scheme(full, layout=layout, groups=groups, generator=stream)`` on the
    full tensor would put exactly these values at these positions. Returns
    True when only the block's own elements were generated (an elementwise
    scheme on a ``Keyed`` stream), False when the full tensor was built and
    sliced.
    """
    if out.numel() == 0:
        return True
    draw = None
    if is_elementwise(scheme) and isinstance(stream, Keyed):
        draw = _single_draw(scheme, shape, out.dtype, layout, groups)
    with torch.no_grad():
        if draw is not None:
            assert isinstance(stream, Keyed)
            compute = _compute_dtype(out.dtype)
            direct = out.dtype == compute and out.is_contiguous()
            length, starts = block_runs(shape, tuple(out.shape), offset)
            if not direct and len(starts) == 1 and out.is_contiguous():
                _replay_cast(out.view(-1), draw, stream, starts[0], _cast_bounds(scheme, out.dtype, shape, layout, groups))
                return True
            buffer = out.view(-1) if direct else torch.empty(out.numel(), dtype=compute, device=out.device)
            _replay_runs(buffer, draw, stream, length, starts)
            if not direct:
                out.copy_(scheme.cast_within_bounds(buffer.view(out.shape), out.dtype, shape, layout, groups))
            return True
        if tuple(out.shape) == tuple(shape):
            scheme(out, layout=layout, groups=groups, generator=stream)
            return False
        # one full parameter in the compute dtype, then the block cast as a single-process fill casts it
        full = scheme.sample(shape, layout=layout, groups=groups, dtype=_compute_dtype(out.dtype),
                             device=out.device, generator=stream)
        piece = full[tuple(slice(o, o + n) for o, n in zip(offset, out.shape))]
        out.copy_(scheme.cast_within_bounds(piece, out.dtype, shape, layout, groups))
        del full, piece
        return False


def _check_fill(param: Any, scheme: Initializer | str, stream: GeneratorLike) -> Initializer:
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
    return scheme


def _local_tensor(param: Any) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    local = param.to_local()
    local_shape, offset = local_block(param)
    if tuple(local.shape) != local_shape:
        raise ValueError(f"fill_dtensor_: local shard has shape {tuple(local.shape)}, expected {local_shape}")
    return local, local_shape, offset


def fill_dtensor_(
    param: torch.Tensor,
    scheme: Initializer | str,
    layout: LayoutLike = "linear",
    groups: int = 1,
    stream: GeneratorLike = None,
) -> torch.Tensor:
    """Fill a DTensor in place: each rank writes its own block with the values of the full tensor.

    ``stream`` must be a counter stream (``Keyed(seed).child(name)``): a
    sequential torch generator cannot give a shard its part of the global
    sequence. ``layout`` and ``groups`` describe the global tensor. Works for
    every Shard/Replicate placement on meshes of any number of dimensions;
    elementwise schemes generate only the rank's own elements (see the
    module docstring).
    """
    scheme = _check_fill(param, scheme, stream)
    global_shape = tuple(int(d) for d in param.shape)
    # validate the scheme against the global shape before writing anything
    scheme.fans_of(global_shape, layout, groups)
    scheme.check_shape(global_shape, layout, groups)
    local, _, offset = _local_tensor(param)
    fill_block_(local, scheme, global_shape, offset, layout, groups, stream)
    return param


def write_dtensor_(
    param: torch.Tensor,
    blocks: Sequence[Any],
    resolved: Sequence[Any],
    streams: Sequence[GeneratorLike],
    padding_idx: int | None = None,
) -> None:
    """What ``init_model`` writes into a DTensor parameter: each planned block of dim 0, on this rank's rows.

    ``blocks`` (``initlab.plan.Block``: start, stop, shape), ``resolved`` (the
    scheme, layout and groups chosen for each block, or None to leave it) and
    ``streams`` (each block's counter stream) describe the global parameter;
    ``padding_idx``: an embedding row set to zero after the fill.
    """
    local, local_shape, offset = _local_tensor(param)
    if local.numel() == 0:
        return
    rows = (offset[0], offset[0] + local_shape[0]) if local_shape else (0, 1)
    for block, choice, stream in zip(blocks, resolved, streams):
        if choice is None or choice.scheme is None:
            continue
        first, last = max(rows[0], block.start), min(rows[1], block.stop)
        if not local_shape:
            fill_block_(local, choice.scheme, (), (), choice.layout, choice.groups, stream)
        elif first < last:
            piece = local[first - rows[0]:last - rows[0]]
            fill_block_(piece, choice.scheme, tuple(block.shape), (first - block.start, *offset[1:]),
                        choice.layout, choice.groups, stream)
    if padding_idx is not None and rows[0] <= padding_idx < rows[1]:
        with torch.no_grad():
            local[padding_idx - rows[0]].zero_()


# -- the data flow and data-driven stages on a sharded model -----------------------------------
@contextlib.contextmanager
def hooks_off(model: nn.Module) -> Iterator[None]:
    """Run with the forward hooks of every module of ``model`` set aside; they are put back on exit.

    FSDP2 gathers parameters and tensor parallelism redistributes inputs in
    forward hooks; a ``torch.fx`` trace would run them on proxies and fail, so
    the plan reads the data flow of the model's own ``forward`` code, which
    is what a single process traces. (The hook tables are ``nn.Module``'s
    ``_forward_pre_hooks`` and ``_forward_hooks``.)
    """
    saved: list[tuple[dict[int, Any], dict[int, Any]]] = []
    for module in model.modules():
        for table in (module._forward_pre_hooks, module._forward_hooks):
            saved.append((table, dict(table)))
            table.clear()
    try:
        yield
    finally:
        for table, entries in saved:
            table.clear()
            table.update(entries)


def check_stage_sharding(model: nn.Module, stages: Sequence[Any] = ()) -> None:
    """ValueError unless ``stages`` can run on ``model``'s DTensor parameters.

    Every stage must declare ``sharded`` (``initlab.plan.register_stage(...,
    sharded=True)``: LSUV, weight-norm init, calibration), and every DTensor parameter must be sharded by
    FSDP2 alone. A data-driven stage measures a layer's output; under FSDP2
    (1-D mesh, or HSDP's [Replicate, Shard]) the forward pass uses the
    gathered weight and every rank sees the whole output of its batch. Under
    tensor parallelism a layer's output is split across ranks, so a
    per-layer statistic would differ from rank to rank.
    """
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor, Replicate

    from initlab.plan.stages import get_stage, list_stages

    unsupported = [stage.name for stage in stages if not stage.sharded]
    if unsupported:
        runs = ", ".join(name for name in list_stages() if get_stage(name).sharded) or "none"
        raise ValueError(
            f"stage {', '.join(unsupported)} cannot run on a model with DTensor parameters: pretrain and gradinit "
            "train the model (optimizer steps), and training sharded parameters is the training loop's job "
            "(gradients reduced across ranks, optimizer state per shard), while other stages run sharded only "
            "when registered with sharded=True; run it on one process before sharding, or use a plan whose "
            f"stages run sharded ({runs})"
        )

    owners = [module_name for module_name, module in model.named_modules() if isinstance(module, FSDPModule)]
    refused = []
    for name, param in model.named_parameters():
        if not isinstance(param, DTensor):
            continue
        managed = any(owner == "" or name.startswith(owner + ".") for owner in owners)
        placements = tuple(param.placements)
        data_parallel = len(placements) == 1 or (len(placements) == 2 and isinstance(placements[0], Replicate))
        if not (managed and data_parallel):
            refused.append(f"{name} {placements}")
    if refused:
        raise ValueError(
            "data-driven stages measure each layer's output, which tensor-parallel layers split across ranks; "
            f"they run on FSDP2-sharded models (fully_shard, 1-D or HSDP mesh) only, but {', '.join(refused[:3])}"
            f"{' ...' if len(refused) > 3 else ''} are sharded otherwise: initialize with the plan's rules "
            "(a plan without stage=), or run the stage before tensor parallelism is applied"
        )


@contextlib.contextmanager
def sharded_stages(model: nn.Module, batch: Any) -> Iterator[Any]:
    """Run data-driven stages on an FSDP2-sharded ``model``: yields the global batch (:func:`gather_batch`).

    FSDP2 keeps the root module's gathered parameters after a forward pass
    (the root is not resharded after forward, ``FSDPModule.set_reshard_after_forward``),
    so a stage that rescales a weight after a forward pass would write the
    gathered copy and the next forward pass would not see its shards change.
    While the stages run, every FSDP2 module is resharded after each forward
    pass of ``model``, so every write lands on the shards; on exit all are
    resharded once more (a stage may stop a forward pass midway).
    """
    from torch.distributed.fsdp import FSDPModule

    owners = [module for module in model.modules() if isinstance(module, FSDPModule)]

    def reshard_all(*_: Any) -> None:
        for owner in owners:
            owner.reshard()

    handle = model.register_forward_hook(reshard_all) if owners else None
    try:
        yield gather_batch(batch)
    finally:
        if handle is not None:
            handle.remove()
        reshard_all()


def _same(first: Any, second: Any) -> bool:
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
        return first.shape == second.shape and first.dtype == second.dtype and bool(torch.equal(first, second))
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(_same(first[k], second[k]) for k in first)
    if isinstance(first, list | tuple) and isinstance(second, list | tuple):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second))
    return bool(first == second)


def _concatenate(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0) if first.dim() > 0 else first
    if isinstance(first, dict):
        return {key: _concatenate([part[key] for part in parts]) for key in first}
    if isinstance(first, list | tuple):
        return type(first)(_concatenate([part[i] for part in parts]) for i in range(len(first)))
    return first


def gather_batch(batch: Any) -> Any:
    """Every rank's ``batch``, all-gathered: the distinct batches concatenated along dim 0 in rank order.

    Ranks that pass equal batches (the same data everywhere, or the ranks of
    one tensor-parallel group) count once, so a batch given to every rank is
    returned as it is. The result is the same on every rank, so a statistic
    measured on it is too: the all-reduce of the statistics, done by sending
    the (small) init batches instead, so that the values equal one process's
    bit for bit.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return batch
    parts: list[Any] = [None] * dist.get_world_size()
    local = _to_cpu(batch)
    dist.all_gather_object(parts, local)
    distinct: list[Any] = []
    for part in parts:
        if not any(_same(part, seen) for seen in distinct):
            distinct.append(part)
    device = _device_of(batch)
    merged = distinct[0] if len(distinct) == 1 else _concatenate(distinct)
    return _to_device(merged, device)


def _to_cpu(value: Any) -> Any:
    return _map_tensors(value, lambda t: t.detach().cpu())


def _to_device(value: Any, device: torch.device | None) -> Any:
    return value if device is None else _map_tensors(value, lambda t: t.to(device))


def _device_of(value: Any) -> torch.device | None:
    if isinstance(value, torch.Tensor):
        return value.device
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    return next((device for device in map(_device_of, items) if device is not None), None)


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {key: _map_tensors(item, fn) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_map_tensors(item, fn) for item in value)
    return value


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
    single process would. ``initlab.init_model(model, plan, seed)`` is the
    full-featured route (activation detection, reports); this function is
    the minimal one for sharded models.
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
            windowed = is_elementwise(scheme)
        else:
            scheme(param, layout=layout, generator=stream)
            local_shape = tuple(param.shape)
            windowed = False
        rows.append(
            ShardedRow(name, tuple(param.shape), str(scheme), layout if isinstance(layout, str) else "fans", local_shape, windowed)
        )
    return rows
