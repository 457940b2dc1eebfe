"""How the doctor reads a model's structure: weight layers with their layouts, norms, and stacks of residual blocks.

Everything here reads module types and shapes only, so it works on the meta
device and costs nothing per parameter value.

Weight layers are ``nn.Linear`` (layout ``linear``, (out, in)), ``nn.ConvNd``
(``conv``), ``nn.ConvTransposeNd`` (``conv_transpose``), ``nn.Embedding``
(``embedding``) and the (in, out) ``Conv1D`` of Hugging Face GPT-2
(layout ``keras``, whose fans read (in, out) the right way round).

A *block stack* is a ``ModuleList``/``Sequential`` of at least two modules of
one class, each holding weight layers and norms: the blocks of a
Transformer. It is *pre-norm* when a norm follows the stack in its parent
(GPT-2's ``ln_f``, LLaMA's ``norm``, a ViT's final norm), which post-norm
stacks (BERT) do not need. The *residual projections* of a block are, in each
of its children that holds weight layers (attention, MLP), the last
registered layer whose output width is the block's width (its norms' size):
``c_proj``, ``o_proj``, ``down_proj``, ``wo``, ``w2``, ``fc2``, ``proj``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from initlab.schemes.fans import Fans, fans

__all__ = [
    "Layer",
    "BlockStack",
    "weight_layers",
    "is_norm",
    "norm_width",
    "block_stacks",
]

_TORCH_NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


@dataclass(frozen=True)
class Layer:
    """A weight-bearing module and how to read its weight."""

    name: str
    module: nn.Module
    kind: str  # linear | conv | conv_transpose | conv1d | embedding
    layout: str  # the initlab layout of the weight
    groups: int
    weight: str  # qualified name of the weight
    bias: str | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.module.weight.shape)  # type: ignore[union-attr]

    @property
    def fans(self) -> Fans:
        return fans(self.shape, layout=self.layout, groups=self.groups)

    @property
    def in_width(self) -> int:
        """Input features / channels."""
        shape = self.shape
        if self.layout == "keras":
            return shape[-2]
        if self.layout == "conv_transpose":
            return shape[0]
        if self.layout == "conv":
            return shape[1] * self.groups
        if self.layout == "embedding":
            return shape[0]
        return shape[1]

    @property
    def out_width(self) -> int:
        """Output features / channels."""
        shape = self.shape
        if self.layout == "keras":
            return shape[-1]
        if self.layout == "conv_transpose":
            return shape[1] * self.groups
        if self.layout == "embedding":
            return shape[1]
        return shape[0]


def _is_hf_conv1d(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(weight, "dim", lambda: 0)() == 2


def _layer_kind(module: nn.Module) -> tuple[str, str, int] | None:
    if isinstance(module, nn.Linear):
        return "linear", "linear", 1
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return "conv_transpose", "conv_transpose", int(module.groups)
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv", "conv", int(module.groups)
    if isinstance(module, nn.Embedding):
        return "embedding", "embedding", 1
    if _is_hf_conv1d(module):
        return "conv1d", "keras", 1
    return None


def weight_layers(model: nn.Module) -> list[Layer]:
    """Every weight layer of ``model`` in registration order (a shared module once)."""
    found: list[Layer] = []
    for name, module in model.named_modules():
        kind = _layer_kind(module)
        if kind is None:
            continue
        weight = getattr(module, "weight", None)  # computed for a parametrized weight (weight_norm)
        if not isinstance(weight, torch.Tensor):
            continue
        prefix = f"{name}." if name else ""
        bias = getattr(module, "bias", None)
        found.append(
            Layer(
                name=name,
                module=module,
                kind=kind[0],
                layout=kind[1],
                groups=kind[2],
                weight=f"{prefix}weight",
                bias=f"{prefix}bias" if isinstance(bias, torch.Tensor) else None,
            )
        )
    return found


def is_norm(module: nn.Module) -> bool:
    """A torch norm, or a custom module whose class name says LayerNorm / RMSNorm / BatchNorm / GroupNorm."""
    if isinstance(module, _TORCH_NORMS):
        return True
    name = type(module).__name__.lower()
    return any(key in name for key in ("layernorm", "rmsnorm", "batchnorm", "groupnorm")) and not any(
        isinstance(child, nn.Linear) for child in module.modules()
    )


def norm_width(module: nn.Module) -> int | None:
    """The feature size a norm normalises (its scale's length), None if it has no 1-D scale."""
    weight = getattr(module, "weight", None)
    if weight is not None and getattr(weight, "dim", lambda: 0)() == 1:
        return int(weight.shape[0])
    shape = getattr(module, "normalized_shape", None)
    if shape:
        return int(math.prod(shape))
    return None


@dataclass(frozen=True)
class BlockStack:
    """A repeated block container: its name, the block names, the residual width and whether it is pre-norm."""

    name: str
    blocks: tuple[str, ...]
    width: int
    pre_norm: bool
    projections: tuple[tuple[str, ...], ...]  # per block, the weights of its residual projections
    others: tuple[tuple[str, ...], ...]  # per block, the weights of its other layers


def _children_in_order(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return list(module.named_children())


def _block_projections(block_name: str, block: nn.Module, width: int) -> tuple[list[str], list[str]]:
    projections: list[str] = []
    others: list[str] = []
    prefix = f"{block_name}." if block_name else ""
    for child_name, child in _children_in_order(block):
        layers = [layer for layer in weight_layers(child) if layer.kind != "embedding"]
        if not layers:
            continue
        names = [f"{prefix}{child_name}.{layer.weight}" for layer in layers]
        chosen = None
        for index, layer in enumerate(layers):
            if layer.out_width == width:
                chosen = index
        for index, name in enumerate(names):
            (projections if index == chosen else others).append(name)
    return projections, others


def block_stacks(model: nn.Module) -> list[BlockStack]:
    """The stacks of repeated residual blocks in ``model`` (see the module docstring)."""
    stacks: list[BlockStack] = []
    for parent_name, parent in model.named_modules():
        children = _children_in_order(parent)
        for position, (child_name, child) in enumerate(children):
            if not isinstance(child, nn.ModuleList | nn.Sequential):
                continue
            entries = list(child.named_children())
            if len(entries) < 2 or len({type(block) for _, block in entries}) != 1:
                continue
            first = entries[0][1]
            widths = [w for w in (norm_width(m) for m in first.modules() if is_norm(m)) if w is not None]
            if not widths or not weight_layers(first):
                continue
            width = max(set(widths), key=widths.count)
            stack_name = f"{parent_name}.{child_name}" if parent_name else child_name
            pre_norm = any(is_norm(module) for _, module in children[position + 1 :])
            projections, others = [], []
            for block_name, block in entries:
                chosen, rest = _block_projections(f"{stack_name}.{block_name}", block, width)
                projections.append(tuple(chosen))
                others.append(tuple(rest))
            stacks.append(
                BlockStack(
                    name=stack_name,
                    blocks=tuple(f"{stack_name}.{name}" for name, _ in entries),
                    width=width,
                    pre_norm=pre_norm,
                    projections=tuple(projections),
                    others=tuple(others),
                )
            )
    return stacks
