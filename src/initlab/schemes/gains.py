"""Gains: the factor that keeps a layer's output variance when an activation follows it.

The exact (default) gain of an activation phi is

    gain(phi) = 1 / sqrt(E[phi(z)^2]),   z ~ N(0, 1),

so that a layer with weights of variance gain^2 / fan_in, fed by unit-variance
inputs, hands unit second moment to the next layer (He et al. 2015 derive
sqrt(2) for ReLU this way). The expectation is computed by Gaussian
quadrature for any activation: a name, an ``nn.Module`` or a callable.

``convention="torch"`` returns ``torch.nn.init.calculate_gain``'s table
instead (tanh 5/3, selu 3/4, leaky_relu sqrt(2 / (1 + slope^2))).
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "gain",
    "gaussian_expectation",
    "activation_function",
    "resolve_activation",
    "ACTIVATIONS",
]

ActivationLike = str | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None

# Gauss-Legendre panels on [-Z_MAX, Z_MAX] weighted by the normal density. A
# panel edge sits at every integer z (0 included), so piecewise-polynomial
# activations with a kink at 0 (ReLU, leaky ReLU, hardtanh at +-1) are
# integrated exactly; smooth activations converge to ~1e-12.
Z_MAX = 12.0
PANEL_WIDTH = 0.5
NODES_PER_PANEL = 16


@functools.lru_cache(maxsize=1)
def _quadrature() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(NODES_PER_PANEL)
    edges = np.arange(-Z_MAX, Z_MAX + PANEL_WIDTH / 2, PANEL_WIDTH)
    left, right = edges[:-1, None], edges[1:, None]
    z = (0.5 * (right - left) * nodes[None, :] + 0.5 * (right + left)).reshape(-1)
    w = (0.5 * (right - left) * weights[None, :]).reshape(-1)
    w = w * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z, w


def quadrature_nodes() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes z_i and weights w_i with sum_i w_i f(z_i) ~ E[f(z)], z ~ N(0, 1), as float64 tensors."""
    z, w = _quadrature()
    return torch.from_numpy(z.copy()), torch.from_numpy(w.copy())


def gaussian_expectation(
    fn: Callable[[torch.Tensor], torch.Tensor], scale: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """E[fn(scale * z)] for z ~ N(0, 1), vectorised over ``scale``.

    ``scale`` may be a float or a tensor of any shape; the result has that
    shape. ``fn`` receives a float64 tensor of shape ``scale.shape + (nodes,)``
    and must act elementwise.
    """
    z, w = quadrature_nodes()
    scale_t = torch.as_tensor(scale, dtype=torch.float64)
    values = fn(scale_t.unsqueeze(-1) * z)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"activation must return a tensor, got {type(values).__name__}")
    return (values.to(torch.float64) * w).sum(-1)


def _mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(nn.functional.softplus(x))


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.gelu(x, approximate="tanh")


# name -> (function(x, param), default parameter or None)
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], float | None]] = {
    "linear": (lambda x, p: x, None),
    "identity": (lambda x, p: x, None),
    "relu": (lambda x, p: torch.relu(x), None),
    "leaky_relu": (lambda x, p: nn.functional.leaky_relu(x, p), 0.01),
    "prelu": (lambda x, p: nn.functional.leaky_relu(x, p), 0.25),
    "rrelu": (lambda x, p: nn.functional.leaky_relu(x, p), (1 / 8 + 1 / 3) / 2),
    "tanh": (lambda x, p: torch.tanh(x), None),
    "sigmoid": (lambda x, p: torch.sigmoid(x), None),
    "hardtanh": (lambda x, p: nn.functional.hardtanh(x), None),
    "relu6": (lambda x, p: nn.functional.relu6(x), None),
    "elu": (lambda x, p: nn.functional.elu(x, p), 1.0),
    "celu": (lambda x, p: nn.functional.celu(x, p), 1.0),
    "selu": (lambda x, p: nn.functional.selu(x), None),
    "gelu": (lambda x, p: nn.functional.gelu(x), None),
    "gelu_tanh": (lambda x, p: _gelu_tanh(x), None),
    "silu": (lambda x, p: nn.functional.silu(x), None),
    "swish": (lambda x, p: nn.functional.silu(x), None),
    "mish": (lambda x, p: _mish(x), None),
    "softplus": (lambda x, p: nn.functional.softplus(x), None),
    "softsign": (lambda x, p: nn.functional.softsign(x), None),
    "hardswish": (lambda x, p: nn.functional.hardswish(x), None),
    "hardsigmoid": (lambda x, p: nn.functional.hardsigmoid(x), None),
    "tanhshrink": (lambda x, p: nn.functional.tanhshrink(x), None),
    "logsigmoid": (lambda x, p: nn.functional.logsigmoid(x), None),
    "sin": (lambda x, p: torch.sin(x), None),
    "erf": (lambda x, p: torch.erf(x), None),
}

# torch.nn.init.calculate_gain's table (the "torch" convention)
_TORCH_TABLE: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0,
    "identity": lambda p: 1.0,
    "conv1d": lambda p: 1.0,
    "conv2d": lambda p: 1.0,
    "conv3d": lambda p: 1.0,
    "conv_transpose1d": lambda p: 1.0,
    "conv_transpose2d": lambda p: 1.0,
    "conv_transpose3d": lambda p: 1.0,
    "sigmoid": lambda p: 1.0,
    "tanh": lambda p: 5.0 / 3.0,
    "relu": lambda p: math.sqrt(2.0),
    "leaky_relu": lambda p: math.sqrt(2.0 / (1 + p**2)),
    "selu": lambda p: 3.0 / 4.0,
}

_ALIASES = {
    "none": "linear",
    "conv1d": "linear",
    "conv2d": "linear",
    "conv3d": "linear",
    "conv_transpose1d": "linear",
    "conv_transpose2d": "linear",
    "conv_transpose3d": "linear",
    "gelu_new": "gelu_tanh",
}

# module type -> (name, attribute holding its parameter or None)
_MODULES: dict[type[nn.Module], tuple[str, str | None]] = {
    nn.Identity: ("identity", None),
    nn.ReLU: ("relu", None),
    nn.LeakyReLU: ("leaky_relu", "negative_slope"),
    nn.Tanh: ("tanh", None),
    nn.Sigmoid: ("sigmoid", None),
    nn.Hardtanh: ("hardtanh", None),
    nn.ReLU6: ("relu6", None),
    nn.ELU: ("elu", "alpha"),
    nn.CELU: ("celu", "alpha"),
    nn.SELU: ("selu", None),
    nn.SiLU: ("silu", None),
    nn.Mish: ("mish", None),
    nn.Softplus: ("softplus", None),
    nn.Softsign: ("softsign", None),
    nn.Hardswish: ("hardswish", None),
    nn.Hardsigmoid: ("hardsigmoid", None),
    nn.Tanhshrink: ("tanhshrink", None),
    nn.LogSigmoid: ("logsigmoid", None),
}


def _canonical_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        choices = sorted(set(ACTIVATIONS) | set(_ALIASES))
        close = difflib.get_close_matches(key, choices, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown activation {name!r}{hint}; accepted: {', '.join(sorted(ACTIVATIONS))}, "
            "an nn.Module or a callable"
        )
    return key


def resolve_activation(
    activation: ActivationLike, param: float | None = None
) -> tuple[str | None, float | None, Callable[[torch.Tensor], torch.Tensor]]:
    """(canonical name or None, parameter, elementwise function) for any activation form.

    Names and known modules resolve to the table; a GELU module keeps its
    ``approximate`` setting; any other module or callable is used as is
    (name None).
    """
    if activation is None:
        return "linear", None, _identity
    if isinstance(activation, str):
        name = _canonical_name(activation)
        fn, default = ACTIVATIONS[name]
        if param is not None and default is None:
            raise ValueError(f"activation {name!r} takes no parameter, got param={param!r}")
        value = default if param is None else _finite_param(name, "param", param)
        return name, value, functools.partial(_apply, fn, value)
    if isinstance(activation, nn.GELU):
        name = "gelu_tanh" if activation.approximate == "tanh" else "gelu"
        return name, None, functools.partial(_apply, ACTIVATIONS[name][0], None)
    if isinstance(activation, nn.Module):
        known = _MODULES.get(type(activation))
        if known is not None:
            name, attribute = known
            value = _finite_param(repr(activation), attribute, getattr(activation, attribute)) if attribute else None
            return name, value, functools.partial(_apply, ACTIVATIONS[name][0], value)
        if isinstance(activation, nn.PReLU):
            weight = activation.weight.detach()
            if weight.numel() != 1:
                raise ValueError("gain of a PReLU with per-channel slopes is not a single number")
            value = _finite_param("PReLU", "weight", weight.item())
            return "prelu", value, functools.partial(_apply, ACTIVATIONS["prelu"][0], value)
        return None, None, _module_function(activation)
    if callable(activation):
        return None, None, activation
    raise TypeError(
        f"activation must be a name, an nn.Module, a callable or None, got {type(activation).__name__}"
    )


def _finite_param(owner: str, argument: str, value: Any) -> float:
    """An activation's parameter (slope, alpha) as a finite float, or a ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"activation {owner}: {argument} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"activation {owner}: {argument} must be a finite number, got {value!r}")
    return number


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _apply(
    fn: Callable[[torch.Tensor, Any], torch.Tensor], param: float | None, x: torch.Tensor
) -> torch.Tensor:
    return fn(x, param)


def _module_function(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return call


def activation_function(
    activation: ActivationLike, param: float | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise function of an activation given in any accepted form."""
    return resolve_activation(activation, param)[2]


def gain(
    activation: ActivationLike = "linear",
    param: float | None = None,
    *,
    convention: str = "exact",
) -> float:
    """Variance-preserving gain of ``activation``.

    ``convention="exact"`` (default): 1 / sqrt(E[phi(z)^2]), z ~ N(0, 1),
    by quadrature; ReLU gives sqrt(2), leaky ReLU sqrt(2 / (1 + slope^2)),
    identity 1, tanh about 1.5925, SELU 1.

    ``convention="torch"``: ``torch.nn.init.calculate_gain``'s values
    (tanh 5/3, selu 3/4); only the activations in torch's table.

    ``param`` is the negative slope of leaky_relu or the alpha of elu/celu.

    >>> round(gain("relu") ** 2, 12)
    2.0
    >>> gain("tanh", convention="torch")
    1.6666666666666667
    """
    if convention not in ("exact", "torch"):
        raise ValueError(f"convention must be 'exact' or 'torch', got {convention!r}")
    if convention == "torch":
        return _torch_gain(activation, param)
    name, value, fn = resolve_activation(activation, param)
    if name in ("linear", "identity"):
        return 1.0
    if name == "relu":
        return math.sqrt(2.0)
    if name in ("leaky_relu", "prelu", "rrelu"):
        assert value is not None
        return math.sqrt(2.0 / (1 + value**2))
    second_moment = float(gaussian_expectation(lambda x: fn(x) ** 2))
    if not math.isfinite(second_moment) or second_moment <= 0.0:
        raise ValueError(
            f"activation {activation!r} has E[phi(z)^2] = {second_moment} under N(0, 1); "
            "a gain needs a finite positive second moment"
        )
    return 1.0 / math.sqrt(second_moment)


def _torch_gain(activation: ActivationLike, param: float | None) -> float:
    if isinstance(activation, str):
        key = activation.strip().lower()
        if key in _TORCH_TABLE:
            slope = 0.01 if param is None else _finite_param(key, "param", param)
            return _TORCH_TABLE[key](slope)
    name, value, _ = resolve_activation(activation, param)
    if name in _TORCH_TABLE:
        return _TORCH_TABLE[name](0.01 if value is None else value)
    raise ValueError(
        f"torch's calculate_gain has no value for {activation!r}; its table covers "
        f"{', '.join(sorted(_TORCH_TABLE))}. Use convention='exact' for other activations."
    )
