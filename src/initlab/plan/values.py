"""What a plan rule assigns: a catalogue scheme, or a plan-level scheme that looks at the model.

Plan-level schemes resolve, for each parameter block, to a catalogue scheme
(which the report shows):

``auto(distribution=normal, mode=fan_in)``
    std = gain(phi) / sqrt(fan), phi the activation that follows the layer in
    the forward pass (exact gain, ``initlab.gain``); no activation: gain 1.
    An embedding table is a lookup of one-hot inputs, so its fan_in is 1
    and auto draws N(0, 1): a looked-up vector has unit variance per entry,
    as torch's ``nn.Embedding`` default (docs/plans.md, embeddings).
``module_default``
    what the module type's own ``reset_parameters`` draws in torch, recomputed
    without calling it: Linear/Conv/ConvTranspose U[+-1/sqrt(fan_in)] on
    torch's fans (biases with the weight's fan_in), Bilinear
    U[+-1/sqrt(in1)], Embedding N(0, 1), norms 1/0, MultiheadAttention
    Glorot-uniform over the packed in_proj_weight and zero biases,
    RNN/LSTM/GRU U[+-1/sqrt(hidden_size)], PReLU its ``init`` value.
``fixup``
    He normal (ReLU gain) scaled by L^(-1/(2m-2)), L the number of residual
    branches, m the number of layers in this branch (Zhang, Dauphin & Ma
    2019, Fixup Initialization).
``mup_output``
    N(0, 1/fan_in^2): the output-layer rule of the maximal update
    parametrization (Yang et al. 2022, Tensor Programs V, Table 3).
``keep``
    leave the parameter as it is (listed as kept in the report).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.plan.targets import Block, Target, is_weight_layer
from initlab.schemes import Initializer, get, list_schemes, strings
from initlab.schemes.fans import Fans, LayoutLike, fans, torch_fans
from initlab.schemes.gains import gain as activation_gain
from initlab.schemes.variance import VarianceScaling

__all__ = [
    "PlanValue",
    "SchemeValue",
    "Auto",
    "ModuleDefault",
    "Fixup",
    "MupOutput",
    "Keep",
    "TensorValue",
    "Resolved",
    "ResolveContext",
    "parse_value",
    "PLAN_SCHEMES",
    "parse_call",
]


@dataclass
class ResolveContext:
    """What plan-level schemes need to know about the model."""

    activations: dict[str, Any] = field(default_factory=dict)
    fixup_scale: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """The concrete fill of one block: a scheme on a layout, or given values, or nothing (keep)."""

    scheme: Initializer | None
    layout: LayoutLike
    groups: int
    gain: float | None = None
    values: torch.Tensor | None = None
    note: str = ""
    # what the fill leaves undone (listed in InitReport.warnings; init_model(strict=True) raises it)
    warning: str = ""


class PlanValue:
    """Base of what a rule assigns."""

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        raise NotImplementedError

    def bias_value(self) -> PlanValue | None:
        """What a plan whose default is this value puts on biases (None: the implicit rule)."""
        return None


@dataclass(frozen=True)
class SchemeValue(PlanValue):
    """A catalogue scheme, applied with the block's own layout."""

    scheme: Initializer

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        return Resolved(self.scheme, block.layout, block.groups)

    def __str__(self) -> str:
        text = str(self.scheme)
        bare = f"{self.scheme.name}()"
        return self.scheme.name if text == bare or _is_default(self.scheme) else text


def _is_default(scheme: Initializer) -> bool:
    try:
        return type(scheme)() == scheme
    except TypeError:
        return False


def _variance(scale: float, mode: str, distribution: str) -> VarianceScaling:
    return VarianceScaling(scale=scale, mode=mode, distribution=distribution)


def _fan(block: Block, mode: str) -> float:
    return fans(block.shape, block.layout, block.groups).of(mode)


@dataclass(frozen=True)
class Auto(PlanValue):
    """std = gain(activation that follows the layer) / sqrt(fan); gain 1 where none follows."""

    distribution: str = "normal"
    mode: str = "fan_in"

    def __post_init__(self) -> None:
        if self.distribution not in ("normal", "uniform", "truncated_normal"):
            raise ValueError(f"auto: distribution must be normal, uniform or truncated_normal, got {self.distribution!r}")
        if self.mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"auto: mode must be fan_in, fan_out or fan_avg, got {self.mode!r}")

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        if "embedding" in block.roles:
            # a one-hot row selects one vector: fan_in 1 whatever the vocabulary size
            return Resolved(get("normal(mean=0.0, std=1.0)"), block.layout, 1, 1.0, note="embedding: one-hot input, fan_in 1")
        activation = context.activations.get(target.module_name) if is_weight_layer(target.module) else None
        value = 1.0 if activation is None else activation_gain(activation)
        label = "no activation" if activation is None else f"after {_activation_label(activation)}"
        scale = _without_rounding_noise(value * value)
        return Resolved(_variance(scale, self.mode, self.distribution), block.layout, block.groups, value, note=label)

    def __str__(self) -> str:
        options = []
        if self.distribution != "normal":
            options.append(f"distribution={self.distribution}")
        if self.mode != "fan_in":
            options.append(f"mode={self.mode}")
        return f"auto({', '.join(options)})" if options else "auto"


def _without_rounding_noise(value: float) -> float:
    """``value`` at 15 significant digits: sqrt(2) ** 2 is 2.0000000000000004 in floats, and reads as 2.0.

    A relative change below 1e-15, far under any sampling error, bought for a
    scheme name that reads as the formula (``variance_scaling(scale=2.0, ...)``).
    """
    return float(f"{value:.15g}")


def _activation_label(activation: Any) -> str:
    if isinstance(activation, str):
        return activation
    if isinstance(activation, nn.Module):
        return repr(activation)
    return getattr(activation, "__name__", repr(activation))


@dataclass(frozen=True)
class ModuleDefault(PlanValue):
    """What torch's own reset_parameters of the owning module draws, recomputed without calling it."""

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        module, local = target.module, target.local_name
        parent = target.ancestors[-2] if len(target.ancestors) >= 2 else None
        if isinstance(module, nn.Linear) and isinstance(parent, nn.MultiheadAttention) and local == "bias":
            return Resolved(get("zeros"), block.layout, block.groups, note="MultiheadAttention zeroes out_proj.bias")
        if isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
            weight = module.weight
            layout: LayoutLike = block.layout if local == "weight" else torch_fans(tuple(weight.shape))
            return Resolved(_torch_default(), layout, block.groups if local == "weight" else 1)
        if isinstance(module, nn.Bilinear):
            bound = 1.0 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] else 0.0
            return Resolved(_uniform(bound), block.layout, block.groups)
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            return Resolved(get("normal(mean=0.0, std=1.0)"), block.layout, 1)
        if "norm_scale" in block.roles:
            return Resolved(get("ones"), block.layout, 1)
        if "norm_shift" in block.roles:
            return Resolved(get("zeros"), block.layout, 1)
        if isinstance(module, nn.MultiheadAttention):
            if local == "in_proj_weight":
                embed = module.embed_dim
                return Resolved(get("glorot_uniform"), Fans(embed, 3 * embed, 1), 1)
            if local in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                return Resolved(get("glorot_uniform"), "linear", 1)
            if local in ("bias_k", "bias_v"):
                return Resolved(get("glorot_normal"), Fans(module.embed_dim, module.embed_dim, 1), 1)
            return Resolved(get("zeros"), block.layout, 1)
        if isinstance(module, nn.RNNBase):
            bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
            return Resolved(_uniform(bound), block.layout, 1)
        if isinstance(module, nn.PReLU):
            return Resolved(get({"name": "constant", "value": float(module.init)}), block.layout, 1)
        return Resolved(None, block.layout, 1, note=f"torch has no default for {type(module).__name__}.{local}")

    def __str__(self) -> str:
        return "module_default"


def _torch_default() -> Initializer:
    try:
        return get("torch_default")
    except ValueError:  # catalogue without the preset: torch's rule written out
        return get("he_uniform(nonlinearity=leaky_relu, negative_slope=2.23606797749979, convention=torch)")


def _uniform(bound: float) -> Initializer:
    if bound == 0.0:
        return get("zeros")
    return get({"name": "uniform", "a": -bound, "b": bound})


@dataclass(frozen=True)
class Fixup(PlanValue):
    """He normal scaled by L^(-1/(2m-2)) for a layer of a residual branch with m layers, L branches."""

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        scale = context.fixup_scale.get(target.module_name, 1.0)
        scheme = _variance(2.0 * scale * scale, "fan_in", "normal")
        return Resolved(scheme, block.layout, block.groups, math.sqrt(2.0) * scale, note=f"fixup factor {scale:.6g}")

    def __str__(self) -> str:
        return "fixup"


@dataclass(frozen=True)
class MupOutput(PlanValue):
    """N(0, 1/fan_in^2) (muP output layer, Tensor Programs V)."""

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        fan_in = _fan(block, "fan_in")
        if fan_in == 0:
            return Resolved(get("zeros"), block.layout, block.groups)
        return Resolved(_variance(1.0 / fan_in, "fan_in", "normal"), block.layout, block.groups, note="std 1/fan_in")

    def __str__(self) -> str:
        return "mup_output"


@dataclass(frozen=True)
class Keep(PlanValue):
    """Leave the parameter as it is."""

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        return Resolved(None, block.layout, block.groups, note="kept")

    def __str__(self) -> str:
        return "keep"


@dataclass(frozen=True, eq=False)
class TensorValue(PlanValue):
    """Given values: a tensor of the parameter's shape, or a callable ``fn(shape, generator) -> tensor``."""

    source: torch.Tensor | Callable[..., torch.Tensor]

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        return Resolved(None, block.layout, block.groups, values=torch.empty(0), note="given values")

    def values_for(self, shape: tuple[int, ...], generator: Any) -> torch.Tensor:
        value = self.source(shape, generator) if callable(self.source) and not isinstance(self.source, torch.Tensor) else self.source
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"a value rule must give a torch.Tensor, got {type(value).__name__}")
        return value

    def __str__(self) -> str:
        if isinstance(self.source, torch.Tensor):
            return f"<tensor {tuple(self.source.shape)}>"
        return f"<callable {getattr(self.source, '__name__', type(self.source).__name__)}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorValue) and self.source is other.source

    def __hash__(self) -> int:
        return id(self.source)


PLAN_SCHEMES: dict[str, type[PlanValue]] = {
    "auto": Auto,
    "module_default": ModuleDefault,
    "fixup": Fixup,
    "mup_output": MupOutput,
    "keep": Keep,
}


def parse_call(text: str, what: str) -> tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME(key=value, ...)`` as (name, options); literal values given by keyword only."""
    name, args, options = strings.parse_call(text, what)
    if args:
        raise ValueError(f"malformed {what} {text!r}: options are given as key=value, got positional values")
    return name, options


def valid_scheme_names() -> list[str]:
    names = []
    for info in list_schemes():
        names.append(info.name)
        names.extend(info.aliases)
    return sorted(set(names) | set(PLAN_SCHEMES))


def parse_value(value: Any, where: str) -> PlanValue:
    """A rule's value from a string, a scheme config dict, an Initializer, a tensor or a callable."""
    if isinstance(value, PlanValue):
        return value
    if isinstance(value, Initializer):
        return SchemeValue(value)
    if isinstance(value, torch.Tensor) or (callable(value) and not isinstance(value, type | str)):
        return TensorValue(value)
    if isinstance(value, str):
        name, _, _ = strings.parse_call(value, f"scheme in {where}")
        if name in PLAN_SCHEMES:
            options = parse_call(value, f"scheme in {where}")[1]
            try:
                return PLAN_SCHEMES[name](**options)
            except TypeError as error:
                raise ValueError(f"{where}: {value!r}: {error}") from error
    if isinstance(value, str | dict):
        try:
            return SchemeValue(get(value))
        except ValueError as error:
            if "unknown scheme" in str(error):
                known = str(error).split(" (initlab.list_schemes()")[0]
                raise ValueError(f"{where}: {known}; valid schemes: {', '.join(valid_scheme_names())}") from error
            raise ValueError(f"{where}: {error}") from error
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from error
    raise TypeError(
        f"{where}: a rule's value is a scheme string, a scheme config dict, an Initializer, a tensor "
        f"or a callable, got {type(value).__name__}"
    )
