"""Which modules of a model become report rows, and what kind of layer each one is.

A row is a module whose output the probe measures. By default these are the
leaf modules that own parameters (Linear, Conv, norms, embeddings, ...), the
leaf activation modules (ReLU, Tanh, ...) and attention modules
(``nn.MultiheadAttention`` and classes named ``*Attention*``), in the order
the forward pass first calls them. ``modules=`` selects others: a list of qualified names,
module classes or module objects, or a predicate ``(name, module) -> bool``.

For activation rows the kind decides two per-entry diagnostics:

* saturation (tanh, sigmoid, hardtanh, hardsigmoid, softsign): the derivative
  relative to its maximum, |phi'(x)| / max|phi'|, computed from the output so
  that in-place activations work: tanh 1 - y^2, sigmoid 4 y (1 - y),
  softsign (1 - |y|)^2, hard variants 0 on the flat parts;
* death (relu, relu6): a unit (feature, or channel for convolutions) is dead
  when its output is 0 for every sample of the batch (and every position).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from initlab.schemes.gains import resolve_activation

__all__ = [
    "LayerInfo",
    "ModuleSelector",
    "select_layers",
    "SATURATING",
    "DYING",
    "relative_derivative",
    "saturated_count",
    "is_attention",
]

ModuleSelector = (
    Sequence[str]
    | Sequence[type[nn.Module]]
    | Sequence[nn.Module]
    | Callable[[str, nn.Module], bool]
    | None
)

SATURATING = ("tanh", "sigmoid", "hardtanh", "hardsigmoid", "softsign")
DYING = ("relu", "relu6")

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
_NOT_ACTIVATIONS = ("linear", "identity")


@dataclass(frozen=True)
class LayerInfo:
    """What the probe knows about one row's module before any data flows."""

    name: str
    module_type: str
    kind: str  # "linear", "conv", "conv_transpose", "embedding", "norm", "activation", "attention", "other"
    activation: str | None  # canonical activation name for activation rows
    layout: str | None  # fans layout of the weight ("linear", "conv", ...) or None
    groups: int
    unit_dim: int  # axis of the output that indexes units (1 for conv channels, -1 otherwise)
    saturating: bool
    dying: bool


def _activation_name(module: nn.Module) -> str | None:
    if any(True for _ in module.children()):
        return None
    try:
        name, _, _ = resolve_activation(module)
    except (ValueError, TypeError):
        return None
    # resolve_activation answers None for modules it does not know
    if name is None or name in _NOT_ACTIVATIONS:
        return None
    return name


def is_attention(module: nn.Module) -> bool:
    """``nn.MultiheadAttention``, or a module whose class name says attention (``GPT2Attention``, ``SelfAttention``).

    torch's Transformer layers call their attention's projections through
    ``F.multi_head_attention_forward``, so the ``out_proj`` Linear inside never
    runs as a module: the attention module itself is the row that sees them.
    """
    return isinstance(module, nn.MultiheadAttention) or "attention" in type(module).__name__.lower()


def describe_module(name: str, module: nn.Module) -> LayerInfo:
    """The :class:`LayerInfo` of ``module`` (called ``name`` in its model)."""
    module_type = type(module).__name__
    groups = int(getattr(module, "groups", 1) or 1)
    if is_attention(module):
        return LayerInfo(name, module_type, "attention", None, None, 1, -1, False, False)
    if isinstance(module, nn.Linear | nn.Bilinear):
        return LayerInfo(name, module_type, "linear", None, "linear", 1, -1, False, False)
    if isinstance(module, _CONV):
        return LayerInfo(name, module_type, "conv", None, "conv", groups, 1, False, False)
    if isinstance(module, _CONV_TRANSPOSE):
        return LayerInfo(
            name, module_type, "conv_transpose", None, "conv_transpose", groups, 1, False, False
        )
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return LayerInfo(name, module_type, "embedding", None, "embedding", 1, -1, False, False)
    if isinstance(module, _NORMS):
        unit_dim = 1 if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm) else -1
        return LayerInfo(name, module_type, "norm", None, None, 1, unit_dim, False, False)
    activation = _activation_name(module)
    if activation is not None:
        return LayerInfo(
            name,
            module_type,
            "activation",
            activation,
            None,
            1,
            -1,
            activation in SATURATING,
            activation in DYING,
        )
    return LayerInfo(name, module_type, "other", None, None, 1, -1, False, False)


def _is_default_row(module: nn.Module) -> bool:
    if is_attention(module):
        return True
    if any(True for _ in module.children()):
        return False
    if any(True for _ in module.parameters(recurse=False)):
        return True
    return _activation_name(module) is not None


def select_layers(model: nn.Module, modules: ModuleSelector = None) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) pairs the probe hooks, in registration order.

    ``modules`` is None (leaf modules with parameters, and leaf activations),
    a list of qualified names (``"0"``, ``"encoder.fc1"``; ``""`` is the
    model itself), a list of module classes, a list of module objects of the
    model, or a predicate ``(name, module) -> bool``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = list(model.named_modules())
    if modules is None:
        chosen = [(name, module) for name, module in named if _is_default_row(module)]
    elif callable(modules) and not isinstance(modules, nn.Module | type):
        chosen = [(name, module) for name, module in named if modules(name, module)]
    elif isinstance(modules, str | nn.Module | type) or not isinstance(modules, Iterable):
        raise TypeError(
            "modules must be None, a list of qualified names, module classes or module objects, "
            f"or a predicate (name, module) -> bool; got {modules!r}"
        )
    else:
        chosen = _select_from_list(named, list(modules))
    if not chosen:
        raise ValueError(f"modules={modules!r} selects no module of {type(model).__name__}")
    return chosen


def _select_from_list(
    named: list[tuple[str, nn.Module]], items: list[object]
) -> list[tuple[str, nn.Module]]:
    by_name = dict(named)
    wanted_names: set[str] = set()
    wanted_ids: set[int] = set()
    wanted_types: list[type] = []
    for item in items:
        if isinstance(item, str):
            if item not in by_name:
                close = sorted(n for n in by_name if n and (item in n or n in item))[:5]
                hint = f"; close names: {', '.join(close)}" if close else ""
                raise ValueError(f"modules: the model has no module named {item!r}{hint}")
            wanted_names.add(item)
        elif isinstance(item, type) and issubclass(item, nn.Module):
            wanted_types.append(item)
        elif isinstance(item, nn.Module):
            if not any(module is item for _, module in named):
                raise ValueError(
                    f"modules: {type(item).__name__} object is not a submodule of the model"
                )
            wanted_ids.add(id(item))
        else:
            raise TypeError(
                f"modules: entries must be names, nn.Module classes or nn.Module objects, got {item!r}"
            )
    types = tuple(wanted_types)
    return [
        (name, module)
        for name, module in named
        if name in wanted_names or id(module) in wanted_ids or (types and isinstance(module, types))
    ]


def relative_derivative(
    activation: str, output: torch.Tensor, module: nn.Module | None = None
) -> torch.Tensor:
    """|phi'(x)| / max|phi'| of a saturating activation, from its output y = phi(x)."""
    if activation == "tanh":
        return 1.0 - output * output
    if activation == "sigmoid":
        return 4.0 * output * (1.0 - output)
    if activation == "softsign":
        return (1.0 - output.abs()) ** 2
    if activation == "hardtanh":
        low, high = _hardtanh_limits(module)
        return ((output > low) & (output < high)).to(output.dtype)
    if activation == "hardsigmoid":
        return ((output > 0.0) & (output < 1.0)).to(output.dtype)
    raise ValueError(
        f"no saturation rule for activation {activation!r}; saturating: {', '.join(SATURATING)}"
    )


def _hardtanh_limits(module: nn.Module | None) -> tuple[float, float]:
    return float(getattr(module, "min_val", -1.0)), float(getattr(module, "max_val", 1.0))


def saturated_count(
    activation: str, output: torch.Tensor, threshold: float, module: nn.Module | None = None
) -> torch.Tensor:
    """Number of entries whose relative derivative is below ``threshold`` (same rule as
    :func:`relative_derivative`, solved for the output so that it costs two comparisons)."""
    magnitude = output.abs()
    if activation == "tanh":  # 1 - y^2 < t  <=>  |y| > sqrt(1 - t)
        mask = magnitude > math.sqrt(1.0 - threshold)
    elif activation == "sigmoid":  # 4 y (1 - y) < t  <=>  |y - 1/2| > sqrt(1 - t) / 2
        mask = (output - 0.5).abs() > 0.5 * math.sqrt(1.0 - threshold)
    elif activation == "softsign":  # (1 - |y|)^2 < t  <=>  |y| > 1 - sqrt(t)
        mask = magnitude > 1.0 - math.sqrt(threshold)
    elif activation == "hardtanh":
        low, high = _hardtanh_limits(module)
        mask = (output <= low) | (output >= high)
    elif activation == "hardsigmoid":
        mask = (output <= 0.0) | (output >= 1.0)
    else:
        raise ValueError(
            f"no saturation rule for activation {activation!r}; saturating: {', '.join(SATURATING)}"
        )
    # NaN compares false everywhere, so non-finite entries never count as saturated
    return (mask & (magnitude < math.inf)).sum(dtype=torch.float64)
