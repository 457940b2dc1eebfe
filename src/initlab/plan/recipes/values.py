"""Plan-level schemes the recipes need, registered into ``initlab.plan.values.PLAN_SCHEMES``.

``torch_fans(scheme=NAME)``
    ``scheme`` with the fans ``torch.nn.init`` computes: dim 1 times the
    receptive field is the input, dim 0 times it the output, groups ignored
    (torchvision's ``kaiming_normal_(mode="fan_out")`` on grouped
    convolutions).
``packed(scheme=NAME, parts=3)``
    ``scheme`` with the fans of one of ``parts`` equal blocks along dim 0 of a
    Linear weight: fan_in = in, fan_out = out / parts (MoCo v3's q/k/v
    uniform bound sqrt(6 / (out/3 + in)), as timm's ``init_weights_vit_moco``).
``depth_init(std=0.02)``
    torchtitan's ``depth_init``: N(0, s^2) with s = std / sqrt(2 (l + 1)), l
    the layer index (the first integer component of the parameter's name,
    ``layers.3.attention.wo.weight``: 3), truncated as
    ``torch.nn.init.trunc_normal_`` with its default absolute bounds +-2.
``stack(encoder=NAME, decoder=NAME, other=NAME)``
    the ``encoder`` scheme for parameters whose outermost name component
    naming a stack contains "encoder", ``decoder`` for "decoder" (so
    ``decoder.layers.0.encoder_attn`` is in the decoder), ``other`` for the rest
    (T-Fixup and DeepNet scale the two stacks of an encoder-decoder model
    differently).
``packed_qkv(scheme=NAME)``
    a packed q/k/v projection (``c_attn``, ``qkv``, ``query_key_value``)
    whose value block a recipe would treat apart: the blocks cannot be told
    apart from the tensor alone (GPT-2 packs them along dim 1, GPT-NeoX
    interleaves them per head), so the whole tensor gets ``scheme`` and the
    report warns (``init_model(strict=True)`` raises).

``scheme`` and the stack options are catalogue scheme strings, quoted when
they have options: ``torch_fans(scheme='he_normal(mode=fan_out)')``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from initlab.plan.targets import Block, Target
from initlab.plan.values import PLAN_SCHEMES, PlanValue, ResolveContext, Resolved
from initlab.rng.checks import check_int, check_number
from initlab.schemes import Initializer, get, strings
from initlab.schemes.fans import Fans, torch_fans

__all__ = ["TorchFans", "Packed", "DepthInit", "Stack", "PackedQKV"]

# torch.nn.init.trunc_normal_'s default bounds, absolute values (not units of std)
TORCH_TRUNC_BOUND = 2.0


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Initializer:
    return get(text)


def _scheme(text: str, owner: str) -> Initializer:
    if not isinstance(text, str):
        raise TypeError(f"{owner}: scheme must be a scheme string like 'glorot_uniform', got {text!r}")
    try:
        return _parsed(text)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{owner}: {error}") from error


def _quoted(text: str) -> str:
    return strings.format_value(text)


@dataclass(frozen=True)
class TorchFans(PlanValue):
    """``scheme`` with torch.nn.init's fans (dim 1 is the input, groups ignored)."""

    scheme: str = "he_normal"

    def __post_init__(self) -> None:
        _scheme(self.scheme, "torch_fans")

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        return Resolved(_scheme(self.scheme, "torch_fans"), torch_fans(block.shape), 1, note="torch.nn.init's fans")

    def __str__(self) -> str:
        return f"torch_fans(scheme={_quoted(self.scheme)})"


@dataclass(frozen=True)
class Packed(PlanValue):
    """``scheme`` with the fans of one of ``parts`` equal blocks along dim 0: (in, out / parts)."""

    scheme: str = "glorot_uniform"
    parts: int = 3

    def __post_init__(self) -> None:
        _scheme(self.scheme, "packed")
        check_int("packed: parts", self.parts, minimum=1)

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        if len(block.shape) != 2 or block.shape[0] % self.parts:
            raise ValueError(f"packed(parts={self.parts}) needs a 2-D (out, in) weight with out divisible by "
                             f"{self.parts}, got shape {block.shape}")
        out_features, in_features = block.shape
        layout = Fans(in_features, out_features // self.parts, 1)
        return Resolved(_scheme(self.scheme, "packed"), layout, 1, note=f"fans of one of {self.parts} packed blocks")

    def __str__(self) -> str:
        return f"packed(scheme={_quoted(self.scheme)}, parts={self.parts})"


_INDEX = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def layer_index(name: str) -> int:
    """The first integer component of a qualified name (``layers.3.attention.wo.weight``: 3)."""
    found = _INDEX.search(name)
    if found is None:
        raise ValueError(f"depth_init: parameter {name} has no layer index in its name (like layers.3.wo.weight)")
    return int(found.group(1))


@dataclass(frozen=True)
class DepthInit(PlanValue):
    """torchtitan's depth_init: std / sqrt(2 (l + 1)) for layer l, cut at torch's absolute bounds +-2."""

    std: float = 0.02

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", check_number("depth_init: std", self.std, minimum=0.0))

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        index = layer_index(target.name)
        std = self.std / math.sqrt(2.0 * (index + 1))
        if std == 0.0:
            return Resolved(get("zeros"), block.layout, block.groups, note=f"layer {index}")
        bound = TORCH_TRUNC_BOUND / std
        scheme = get({"name": "truncated_normal", "std": std, "a": -bound, "b": bound})
        return Resolved(scheme, block.layout, block.groups, note=f"layer {index}: std {std:.6g}")

    def __str__(self) -> str:
        return f"depth_init(std={self.std!r})"


def _stack_of(name: str) -> str:
    """encoder or decoder, by the outermost name component that says which (decoder.layers.0.encoder_attn: decoder)."""
    for part in name.split("."):
        if "encoder" in part:
            return "encoder"
        if "decoder" in part:
            return "decoder"
    return "other"


@dataclass(frozen=True)
class Stack(PlanValue):
    """One scheme for the encoder stack, one for the decoder stack, one for the other parameters."""

    encoder: str = "glorot_uniform"
    decoder: str = "glorot_uniform"
    other: str = "glorot_uniform"

    def __post_init__(self) -> None:
        for text in (self.encoder, self.decoder, self.other):
            _scheme(text, "stack")

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        stack = _stack_of(target.name)
        scheme = _scheme(getattr(self, stack), "stack")
        return Resolved(scheme, block.layout, block.groups, note=f"{stack} stack")

    def __str__(self) -> str:
        return f"stack(encoder={_quoted(self.encoder)}, decoder={_quoted(self.decoder)}, other={_quoted(self.other)})"


@dataclass(frozen=True)
class PackedQKV(PlanValue):
    """The whole packed q/k/v tensor gets ``scheme``; the report warns that its value block got no rule of its own."""

    scheme: str = "glorot_uniform"

    def __post_init__(self) -> None:
        _scheme(self.scheme, "packed_qkv")

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        warning = (f"a packed q/k/v projection: its value block cannot be told apart from the tensor alone, so the "
                   f"value-projection rule was not applied and the whole tensor got {self.scheme}; unpack the "
                   "projection (separate q, k, v layers) for the recipe's value scaling")
        return Resolved(_scheme(self.scheme, "packed_qkv"), block.layout, block.groups, note="packed q/k/v",
                        warning=warning)

    def __str__(self) -> str:
        return f"packed_qkv(scheme={_quoted(self.scheme)})"


PLAN_SCHEMES.update({
    "torch_fans": TorchFans,
    "packed": Packed,
    "depth_init": DepthInit,
    "stack": Stack,
    "packed_qkv": PackedQKV,
})
