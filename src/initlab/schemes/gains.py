"""Gains: the factor that keeps a layer's output variance when an activation follows it.

The exact (default) gain of an activation phi is

    gain(phi) = 1 / sqrt(E[phi(z)^2]),   z ~ N(0, 1),

so that a layer with weights of variance gain^2 / fan_in, fed by unit-variance
inputs, hands unit second moment to the next layer (He et al. 2015 derive
sqrt(2) for ReLU this way). The expectation is computed by Gaussian
quadrature for any activation: a name, an ``nn.Module`` or a callable. A
module's own settings count (``nn.Softplus(beta=2)``, ``nn.Hardtanh(-2, 2)``,
``nn.Threshold(0.1, 20)``, an ``nn.PReLU``'s initial slope, ...), and every
jump or kink they place (or a caller declares with ``kinks=``) becomes a
panel edge of the quadrature, which keeps it exact for piecewise-smooth
activations wherever their breaks lie.

``convention="torch"`` returns ``torch.nn.init.calculate_gain``'s table
instead (tanh 5/3, selu 3/4, leaky_relu sqrt(2 / (1 + slope^2))).
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "gain",
    "gaussian_expectation",
    "activation_function",
    "activation_kinks",
    "resolve_activation",
    "read_activation",
    "ActivationSpec",
    "ACTIVATIONS",
]

ActivationLike = str | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None

# Gauss-Legendre panels on [-Z_MAX, Z_MAX] weighted by the normal density. A
# panel edge sits at every half-integer z (0 included) and at every declared
# jump or kink, so piecewise-smooth activations are integrated as accurately
# as smooth ones (~1e-12) wherever their breaks lie.
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


def _panel_nodes(edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and density-weighted weights of Gauss-Legendre panels between sorted ``edges`` (..., E)."""
    nodes, weights = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(NODES_PER_PANEL))
    left, right = edges[..., :-1, None], edges[..., 1:, None]
    half = 0.5 * (right - left)
    z = (half * nodes + 0.5 * (right + left)).flatten(-2)
    w = (half * weights).flatten(-2) * torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z, w


def _check_kinks(kinks: Sequence[float]) -> tuple[float, ...]:
    if isinstance(kinks, str | bytes) or not hasattr(kinks, "__iter__"):
        raise TypeError(f"kinks must be a sequence of numbers (the x where phi jumps or bends), got {kinks!r}")
    values = []
    for kink in kinks:
        if isinstance(kink, bool) or not isinstance(kink, int | float | np.floating | np.integer):
            raise TypeError(f"kinks must be a sequence of numbers, got {kink!r} in {kinks!r}")
        if not math.isfinite(float(kink)):
            raise ValueError(f"kinks must be finite numbers, got {kink!r}")
        values.append(float(kink))
    return tuple(sorted(set(values)))


def gaussian_expectation(
    fn: Callable[[torch.Tensor], torch.Tensor],
    scale: float | torch.Tensor = 1.0,
    *,
    kinks: Sequence[float] = (),
) -> torch.Tensor:
    """E[fn(scale * z)] for z ~ N(0, 1), vectorised over ``scale``.

    ``scale`` may be a float or a tensor of any shape; the result has that
    shape. ``fn`` receives a float64 tensor of shape ``scale.shape + (nodes,)``
    and must act elementwise. ``kinks``: the inputs x where fn jumps or bends
    (a panel edge is put at z = x / scale for each); default none.
    """
    points = _check_kinks(kinks)
    scale_t = torch.as_tensor(scale, dtype=torch.float64)
    if points:
        grid = torch.from_numpy(np.arange(-Z_MAX, Z_MAX + PANEL_WIDTH / 2, PANEL_WIDTH))
        per_scale = scale_t.unsqueeze(-1)
        at = torch.tensor(points, dtype=torch.float64)
        kink_z = torch.where(per_scale > 0, at / per_scale.clamp_min(1e-300), torch.zeros_like(at))
        edges = torch.cat([grid.expand(*scale_t.shape, -1), kink_z.clamp(-Z_MAX, Z_MAX)], dim=-1)
        z, w = _panel_nodes(edges.sort(dim=-1).values)
    else:
        z, w = quadrature_nodes()
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
    "softplus": (lambda x, p: nn.functional.softplus(x, beta=p), 1.0),
    "softsign": (lambda x, p: nn.functional.softsign(x), None),
    "hardswish": (lambda x, p: nn.functional.hardswish(x), None),
    "hardsigmoid": (lambda x, p: nn.functional.hardsigmoid(x), None),
    "hardshrink": (lambda x, p: nn.functional.hardshrink(x, p), 0.5),
    "softshrink": (lambda x, p: nn.functional.softshrink(x, p), 0.5),
    "tanhshrink": (lambda x, p: nn.functional.tanhshrink(x), None),
    "logsigmoid": (lambda x, p: nn.functional.logsigmoid(x), None),
    "sin": (lambda x, p: torch.sin(x), None),
    "erf": (lambda x, p: torch.erf(x), None),
}

# torch's softplus turns linear where beta * x > threshold (default 20): a tiny jump there
SOFTPLUS_THRESHOLD = 20.0

# name -> the x where the named activation (with parameter p) jumps or bends
_KINKS: dict[str, Callable[[float | None], tuple[float, ...]]] = {
    "relu": lambda p: (0.0,),
    "leaky_relu": lambda p: (0.0,),
    "prelu": lambda p: (0.0,),
    "rrelu": lambda p: (0.0,),
    "hardtanh": lambda p: (-1.0, 1.0),
    "relu6": lambda p: (0.0, 6.0),
    "elu": lambda p: (0.0,),
    "celu": lambda p: (0.0,),
    "selu": lambda p: (0.0,),
    "softplus": lambda p: (SOFTPLUS_THRESHOLD / p,) if p else (),
    "hardswish": lambda p: (-3.0, 3.0),
    "hardsigmoid": lambda p: (-3.0, 3.0),
    "hardshrink": lambda p: (-abs(p or 0.0), abs(p or 0.0)),
    "softshrink": lambda p: (-abs(p or 0.0), abs(p or 0.0)),
}

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


@dataclass(frozen=True)
class ActivationSpec:
    """An activation as initlab reads it: table name (None if unknown), main parameter, function, breaks."""

    name: str | None
    param: float | None
    function: Callable[[torch.Tensor], torch.Tensor]
    kinks: tuple[float, ...] = ()


def _named(name: str, param: float | None, function: Callable[[torch.Tensor], torch.Tensor] | None = None,
           kinks: tuple[float, ...] | None = None) -> ActivationSpec:
    """The spec of table entry ``name`` with ``param``; ``function``/``kinks`` override the table's."""
    if function is None:
        function = functools.partial(_apply, ACTIVATIONS[name][0], param)
    if kinks is None:
        kinks = _KINKS[name](param) if name in _KINKS else ()
    return ActivationSpec(name, param, function, kinks)


def _module_param(module: nn.Module, attribute: str) -> float:
    return _finite_param(type(module).__name__, attribute, getattr(module, attribute))


def _read_softplus(module: nn.Module) -> ActivationSpec:
    beta, threshold = _module_param(module, "beta"), _module_param(module, "threshold")
    function = functools.partial(_apply, lambda x, p: nn.functional.softplus(x, beta=beta, threshold=threshold), None)
    return _named("softplus", beta, function, (threshold / beta,) if beta else ())


def _read_hardtanh(module: nn.Module) -> ActivationSpec:
    low, high = _module_param(module, "min_val"), _module_param(module, "max_val")
    if type(module) is nn.ReLU6:
        return _named("relu6", None)
    function = functools.partial(_apply, lambda x, p: nn.functional.hardtanh(x, low, high), None)
    return _named("hardtanh", None, function, (low, high))


def _read_threshold(module: nn.Module) -> ActivationSpec:
    threshold, value = _module_param(module, "threshold"), _module_param(module, "value")
    function = functools.partial(_apply, lambda x, p: nn.functional.threshold(x, threshold, value), None)
    return ActivationSpec("threshold", threshold, function, (threshold,))


def _read_rrelu(module: nn.Module) -> ActivationSpec:
    # in eval mode (and on average in training) RReLU's negative slope is (lower + upper) / 2
    return _named("rrelu", (_module_param(module, "lower") + _module_param(module, "upper")) / 2.0)


def _read_prelu(module: nn.Module) -> ActivationSpec:
    # every channel starts at the slope `init`; the gain is that of the layer as initialised
    return _named("prelu", _module_param(module, "init"))


def _read_gelu(module: nn.Module) -> ActivationSpec:
    return _named("gelu_tanh" if getattr(module, "approximate", "none") == "tanh" else "gelu", None)


# module type -> how to read it: a table name and the attribute holding its parameter (or None),
# or a reader for modules with several settings
_MODULES: dict[type[nn.Module], tuple[str, str | None] | Callable[[nn.Module], ActivationSpec]] = {
    nn.Identity: ("identity", None),
    nn.ReLU: ("relu", None),
    nn.LeakyReLU: ("leaky_relu", "negative_slope"),
    nn.Tanh: ("tanh", None),
    nn.Sigmoid: ("sigmoid", None),
    nn.Hardtanh: _read_hardtanh,
    nn.ReLU6: _read_hardtanh,
    nn.ELU: ("elu", "alpha"),
    nn.CELU: ("celu", "alpha"),
    nn.SELU: ("selu", None),
    nn.GELU: _read_gelu,
    nn.SiLU: ("silu", None),
    nn.Mish: ("mish", None),
    nn.Softplus: _read_softplus,
    nn.Softsign: ("softsign", None),
    nn.Hardswish: ("hardswish", None),
    nn.Hardsigmoid: ("hardsigmoid", None),
    nn.Hardshrink: ("hardshrink", "lambd"),
    nn.Softshrink: ("softshrink", "lambd"),
    nn.Threshold: _read_threshold,
    nn.RReLU: _read_rrelu,
    nn.PReLU: _read_prelu,
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


def read_activation(activation: ActivationLike, param: float | None = None) -> ActivationSpec:
    """The :class:`ActivationSpec` of any activation form: name, known module, other module or callable.

    A known module contributes every setting it has (Softplus beta and
    threshold, Hardtanh min_val and max_val, Threshold threshold and value,
    Hardshrink/Softshrink lambd, ELU/CELU alpha, LeakyReLU negative_slope,
    RReLU (lower + upper) / 2, PReLU its initial slope ``init``, GELU
    ``approximate``) and the points where it jumps or bends. Any other module
    or callable is used as is (name None, no known breaks).
    """
    if activation is None:
        return ActivationSpec("linear", None, _identity)
    if isinstance(activation, str):
        name = _canonical_name(activation)
        default = ACTIVATIONS[name][1]
        if param is not None and default is None:
            raise ValueError(f"activation {name!r} takes no parameter, got param={param!r}")
        return _named(name, default if param is None else _finite_param(name, "param", param))
    if isinstance(activation, nn.Module):
        reader = _MODULES.get(type(activation))
        if reader is None:
            return ActivationSpec(None, None, _module_function(activation))
        if callable(reader):
            return reader(activation)
        name, attribute = reader
        return _named(name, _module_param(activation, attribute) if attribute else None)
    if callable(activation):
        return ActivationSpec(None, None, activation)
    raise TypeError(
        f"activation must be a name, an nn.Module, a callable or None, got {type(activation).__name__}"
    )


def resolve_activation(
    activation: ActivationLike, param: float | None = None
) -> tuple[str | None, float | None, Callable[[torch.Tensor], torch.Tensor]]:
    """(canonical name or None, parameter, elementwise function) for any activation form (see :func:`read_activation`)."""
    spec = read_activation(activation, param)
    return spec.name, spec.param, spec.function


def activation_kinks(activation: ActivationLike, param: float | None = None) -> tuple[float, ...]:
    """The inputs x where ``activation`` jumps or bends, as far as its name or module says (sorted)."""
    return tuple(sorted(set(read_activation(activation, param).kinks)))


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
    return read_activation(activation, param).function


def gain(
    activation: ActivationLike = "linear",
    param: float | None = None,
    *,
    convention: str = "exact",
    kinks: Sequence[float] = (),
) -> float:
    """Variance-preserving gain of ``activation``.

    ``convention="exact"`` (default): 1 / sqrt(E[phi(z)^2]), z ~ N(0, 1),
    by quadrature; ReLU gives sqrt(2), leaky ReLU sqrt(2 / (1 + slope^2)),
    identity 1, tanh about 1.5925, SELU 1. A module's settings count
    (``nn.Softplus(beta=2)``: 1.3103); the quadrature puts a panel edge at
    every jump or kink the name or module has and at each x in ``kinks``
    (for a callable with breaks of its own; default none).

    ``convention="torch"``: ``torch.nn.init.calculate_gain``'s values
    (tanh 5/3, selu 3/4); only the activations in torch's table.

    ``param`` is the main parameter of a named activation: the negative slope
    of leaky_relu, the alpha of elu/celu, the beta of softplus, the lambda of
    hardshrink/softshrink.

    >>> round(gain("relu") ** 2, 12)
    2.0
    >>> gain("tanh", convention="torch")
    1.6666666666666667
    """
    if convention not in ("exact", "torch"):
        raise ValueError(f"convention must be 'exact' or 'torch', got {convention!r}")
    if convention == "torch":
        return _torch_gain(activation, param)
    spec = read_activation(activation, param)
    declared = _check_kinks(kinks)
    if spec.name in ("linear", "identity"):
        return 1.0
    if spec.name == "relu":
        return math.sqrt(2.0)
    if spec.name in ("leaky_relu", "prelu", "rrelu"):
        assert spec.param is not None
        return math.sqrt(2.0 / (1 + spec.param**2))
    second_moment = float(gaussian_expectation(lambda x: spec.function(x) ** 2, kinks=(*spec.kinks, *declared)))
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
