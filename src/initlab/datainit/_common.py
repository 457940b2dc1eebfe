"""Shared pieces of the data-driven inits: covered layers, batch checks, forward control, reports."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "SUPPORTED_LAYERS",
    "Batch",
    "call_with_hooks",
    "DataInitReport",
    "covered_layers",
    "check_batch",
    "call_model",
    "StopForward",
    "snapshot",
    "restore",
    "scale_weight_",
    "scale_units_",
    "local_units",
    "output_tensor",
    "replace_output",
    "bias_of",
    "channel_dim",
    "evaluation",
    "call_order",
]

SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.MultiheadAttention,
)

Batch = torch.Tensor | Sequence[torch.Tensor] | dict[str, torch.Tensor]


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has run."""


def covered_layers(model: nn.Module, owner: str) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every Linear, Conv, ConvTranspose and MultiheadAttention.

    The output projection inside an ``nn.MultiheadAttention`` is never called
    as a module (the attention applies it functionally), so the attention
    module stands for it. ValueError when the model has none.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{owner}: model must be a torch.nn.Module, got {type(model).__name__}")
    inner = {id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    layers = [
        (name or type(module).__name__, module)
        for name, module in model.named_modules()
        if isinstance(module, SUPPORTED_LAYERS) and id(module) not in inner
    ]
    if not layers:
        raise ValueError(
            f"{owner}: the model ({type(model).__name__}) has no supported layers; "
            "accepted: Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, MultiheadAttention"
        )
    return layers


def _tensors(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, dict):
        return [v for v in batch.values() if isinstance(v, torch.Tensor)]
    if isinstance(batch, list | tuple):
        return [v for v in batch if isinstance(v, torch.Tensor)]
    return []


def check_batch(batch: Any, owner: str, argument: str = "batch") -> int:
    """Number of samples in ``batch``; ValueError for fewer than 2 samples or NaN/inf values."""
    tensors = _tensors(batch)
    if not tensors:
        raise TypeError(
            f"{owner}: {argument} must be a tensor, a tuple/list of tensors (positional inputs) "
            f"or a dict of tensors (keyword inputs), got {type(batch).__name__}"
        )
    first = tensors[0]
    samples = int(first.shape[0]) if first.dim() > 0 else 0
    if samples < 2:
        raise ValueError(
            f"{owner}: {argument} needs at least 2 samples along dim 0 to measure a std, "
            f"got shape {tuple(first.shape)}"
        )
    for tensor in tensors:
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ValueError(f"{owner}: {argument} contains {bad} NaN or inf values")
    return samples


def call_model(model: nn.Module, batch: Any) -> Any:
    """model(batch), model(*batch) or model(**batch) by the batch's form."""
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, dict):
        return model(**batch)
    return model(*batch)


def call_with_hooks(model: nn.Module, batch: Any, modules: Iterable[nn.Module], hook: Callable[..., Any]) -> Any:
    """:func:`call_model` with ``hook`` as a forward hook on every module of ``modules``, removed afterwards."""
    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        return call_model(model, batch)
    finally:
        for handle in handles:
            handle.remove()


def select(batch: Any, index: torch.Tensor) -> Any:
    """The samples ``index`` of every tensor in ``batch`` (same form)."""
    if isinstance(batch, torch.Tensor):
        return batch[index]
    if isinstance(batch, dict):
        return {k: v[index] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return type(batch)(v[index] if isinstance(v, torch.Tensor) else v for v in batch)


def snapshot(modules: Sequence[nn.Module]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every parameter of ``modules`` (to undo a failed init)."""
    seen: set[int] = set()
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    for module in modules:
        for parameter in module.parameters():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                saved.append((parameter, parameter.detach().clone()))
    return saved


def restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for parameter, copy in saved:
            parameter.copy_(copy)


def scaled_weight(module: nn.Module) -> torch.Tensor:
    """The weight whose scale sets the layer's output scale (out_proj's for attention)."""
    if isinstance(module, nn.MultiheadAttention):
        return module.out_proj.weight
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return weight


def bias_of(module: nn.Module) -> torch.Tensor | None:
    if isinstance(module, nn.MultiheadAttention):
        return module.out_proj.bias
    return getattr(module, "bias", None)


def scale_weight_(module: nn.Module, scale: float | torch.Tensor) -> None:
    """Multiply the layer's weight by ``scale`` in place (weight-norm layers: their magnitude g).

    ``scale`` may be a scalar or one factor per output unit.
    """
    target: Any = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
    with torch.no_grad():
        if parametrize.is_parametrized(target, "weight"):
            parametrization = target.parametrizations["weight"]
            if not hasattr(parametrization, "original0"):
                raise TypeError(
                    f"cannot rescale the parametrized weight of {type(target).__name__}: only weight-norm "
                    "parametrizations (original0 = magnitude) are supported"
                )
            magnitude = parametrization.original0
            _multiply_units_(magnitude, _unit_view(target, magnitude, scale))
        elif isinstance(getattr(target, "weight_g", None), torch.Tensor):
            legacy = target.weight_g
            _multiply_units_(legacy, _unit_view(target, legacy, scale))
        else:
            _multiply_units_(target.weight, _unit_view(target, target.weight, scale))


def _is_dtensor(tensor: torch.Tensor) -> bool:
    module = sys.modules.get("torch.distributed.tensor")
    dtensor = getattr(module, "DTensor", None) if module is not None else None
    return dtensor is not None and isinstance(tensor, dtensor)


def local_units(tensor: torch.Tensor) -> tuple[torch.Tensor, slice]:
    """The part of ``tensor`` this process holds, and which rows (units along dim 0) of the whole it is.

    A plain tensor is all of itself. A DTensor parameter of an FSDP2-sharded
    model (``Shard(0)``, or HSDP's [Replicate, Shard(0)]) holds a run of whole
    rows: its local shard, written in place, is the rank's part of the
    parameter, so a per-unit factor is applied to the rows the rank holds.
    ValueError for a block that does not span every other dimension (tensor
    parallelism's ``Shard(1)``), whose units are split across ranks.
    """
    if not _is_dtensor(tensor):
        return tensor, slice(0, tensor.shape[0] if tensor.dim() else 1)
    from initlab.plan.sharded import local_block

    local = tensor.to_local()  # type: ignore[attr-defined]
    sizes, offsets = local_block(tensor)
    if tuple(sizes[1:]) != tuple(tensor.shape[1:]):
        raise ValueError(
            f"a per-unit factor needs whole rows on every rank, but this rank holds the block {sizes} at "
            f"{offsets} of a {tuple(tensor.shape)} parameter; shard it along dim 0 only (FSDP2)"
        )
    first = offsets[0] if offsets else 0
    return local, slice(first, first + (sizes[0] if sizes else 1))


def _multiply_units_(tensor: torch.Tensor, factor: float | torch.Tensor) -> None:
    """``tensor *= factor`` (a scalar, or one factor per row broadcast over the others), on the rows held here."""
    if not isinstance(factor, torch.Tensor):
        tensor.mul_(factor)
        return
    local, rows = local_units(tensor)
    local.mul_(factor[rows] if factor.dim() and factor.shape[0] > 1 else factor)


def scale_units_(vector: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """``vector <- vector * scale + shift`` per unit, in float64 and cast back, on the units held here."""
    local, rows = local_units(vector)
    with torch.no_grad():
        local.copy_((local.double() * scale[rows] + shift[rows]).to(local.dtype))


def _unit_view(module: nn.Module, weight: torch.Tensor, scale: float | torch.Tensor) -> Any:
    """``scale`` shaped to multiply the output units of ``weight``."""
    if not isinstance(scale, torch.Tensor) or scale.numel() == 1:
        return float(scale)
    scale = scale.to(dtype=weight.dtype, device=weight.device)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        if weight.shape[0] == 1 or weight.dim() < 2:
            raise TypeError("per-unit scaling of a weight-normed transposed convolution is not supported")
        groups = module.groups
        per_group = weight.shape[1]
        grouped = scale.reshape(groups, 1, per_group, *([1] * (weight.dim() - 2)))
        return grouped.expand(groups, weight.shape[0] // groups, per_group, *([1] * (weight.dim() - 2))).reshape(
            weight.shape[0], per_group, *([1] * (weight.dim() - 2))
        )
    if weight.shape[0] != scale.numel():
        raise TypeError(f"cannot scale {weight.shape[0]} rows of {type(module).__name__} by {scale.numel()} factors")
    return scale.reshape(-1, *([1] * (weight.dim() - 1)))


def output_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def replace_output(output: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


def channel_dim(module: nn.Module, output: torch.Tensor) -> int:
    """The axis of ``output`` that indexes output units (features or channels)."""
    if isinstance(module, nn.Linear | nn.MultiheadAttention):
        return output.dim() - 1
    weight = scaled_weight(module)
    return 1 if output.dim() == weight.dim() else 0


def bias_view(module: nn.Module, output: torch.Tensor) -> torch.Tensor | None:
    """The layer's bias shaped to broadcast against ``output`` (None without bias)."""
    bias = bias_of(module)
    if bias is None:
        return None
    axis = channel_dim(module, output)
    shape = [1] * output.dim()
    shape[axis] = bias.numel()
    return bias.detach().to(output.dtype).reshape(shape)


@contextlib.contextmanager
def evaluation(model: nn.Module, train: bool = False) -> Iterator[None]:
    """Run with every module in eval mode (or train mode), the MHA fast path off; restore both."""
    modes = {module: module.training for module in model.modules()}
    model.train(train)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for module, training in modes.items():
            module.training = training


def call_order(model: nn.Module, batch: Any, layers: Sequence[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """``layers`` in the order a forward pass first calls them (never-called ones last)."""
    order: list[int] = []
    positions = {id(module): i for i, (_, module) in enumerate(layers)}

    def record(module: nn.Module, args: Any, output: Any) -> None:
        index = positions[id(module)]
        if index not in order:
            order.append(index)

    with torch.no_grad():
        call_with_hooks(model, batch, (module for _, module in layers), record)
    rest = [i for i in range(len(layers)) if i not in order]
    return [layers[i] for i in order + rest]


def std_of(tensor: torch.Tensor) -> float:
    """Std over all elements (unbiased, as ``Tensor.std``; half precision is read as float32)."""
    values = tensor.detach()
    if values.dtype not in (torch.float32, torch.float64):
        values = values.float()
    return float(values.std())


# -- reports --------------------------------------------------------------------------
@dataclass
class DataInitReport:
    """Rows (one dataclass per layer) of a data-driven init, with a summary.

    ``table()`` renders a fixed-width text table, ``to_dict()`` / ``to_json()``
    plain data.
    """

    method: str
    rows: list[Any]
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [row.name for row in self.rows]

    def row(self, name: str) -> Any:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no layer named {name!r}; layers: {', '.join(self.names)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "summary": {k: _plain(v) for k, v in self.summary.items()},
            "rows": [{k: _plain(v) for k, v in dataclasses.asdict(row).items()} for row in self.rows],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        if not self.rows:
            return f"{self.method}: no layers"
        fields = [field.name for field in dataclasses.fields(self.rows[0])]
        cells = [[_cell(getattr(row, field)) for field in fields] for row in self.rows]
        widths = [max(len(field), *(len(line[i]) for line in cells)) for i, field in enumerate(fields)]
        lines = ["  ".join(field.ljust(width) for field, width in zip(fields, widths))]
        lines.append("  ".join("-" * width for width in widths))
        lines.extend("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells)
        if self.summary:
            lines.append("")
            lines.extend(f"{key}: {_cell(value)}" for key, value in self.summary.items())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value)
    return str(value)
