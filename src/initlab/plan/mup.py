"""The maximal update parametrization (muP) with base shapes: init and per-parameter learning rates.

Yang et al. 2022 (Tensor Programs V) tune a small *base* model and transfer
its hyperparameters to a wide one. Each parameter dimension is a *width*
dimension when it differs between the base model and the model (or between
the base and a *delta* model), else finite; its width multiplier is
``dim / base_dim``. A parameter has 0, 1 or 2 width dimensions (scalar-,
vector- or matrix-like); its multiplier is that of its last width
dimension, fan_in is dim 1 and fan_out dim 0, as the ``mup`` package
(microsoft/mup 1.0.0, mup/infshape.py) reads them.

Init (``plan="mup(base=...)"``), on a plain torch model whose output layer is
an ``nn.Linear``: what ``mup.set_base_shapes(model, base)`` makes of torch's
default init on a model whose output layer is ``mup.MuReadout``, with the
readout's ``output_mult / width_mult`` forward factor put into the weights
(mup/layer.py, mup/shape.py):

* weights: what the module's ``reset_parameters`` draws (``module_default``);
* the output layer (an ``nn.Linear`` whose fan_in is a width dimension and
  fan_out is not): U[+-c / sqrt(fan_in * m)], c = ``output_mult``,
  m = fan_in / base fan_in; its effective std is c sqrt(base / 3) / fan_in
  for a dense layer, zero with ``readout_zero_init``;
* biases of Linear and Conv layers: torch's default bound on the *base*
  fan_in, U[+-1 / sqrt(base fan_in)] (mup multiplies them by sqrt(m)).

Learning rates (:func:`param_groups`, the ``mup`` package's ``MuAdam``/``MuSGD``
in mup/optim.py): Adam-like: matrix-like lr / m, weight decay * m; SGD-like:
vector-like lr * m, weight decay / m, matrix-like lr / (fanin_mult / fanout_mult),
weight decay * that ratio. The output layer trains the effective weight
W_eff = (c / m) W of a MuReadout: lr * c / m (Adam), lr * c^2 / m (SGD), and the
weight decay that keeps lr * weight_decay, so the model's function follows the
same trajectory as the ``mup`` model's, step for step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from torch import nn

from initlab.plan.targets import Block, Target
from initlab.plan.values import PLAN_SCHEMES, ModuleDefault, PlanValue, ResolveContext, Resolved
from initlab.rng.checks import check_choice, check_int, check_number
from initlab.schemes import get
from initlab.schemes.fans import torch_fans

__all__ = ["WidthShape", "Mup", "BaseLike", "width_shapes", "base_shapes", "param_groups", "OPTIMIZERS"]

# a base model, or {parameter name: base shape}; a base shape's None marks a finite dimension
BaseLike: TypeAlias = "nn.Module | Mapping[str, Sequence[int | None]]"
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class WidthShape:
    """A parameter's shape and base shape; ``base[i] is None`` for a finite dimension."""

    shape: tuple[int, ...]
    base: tuple[int | None, ...]

    def multipliers(self) -> tuple[float, ...]:
        """dim / base_dim per dimension, 1 for finite ones."""
        return tuple(1.0 if b is None else d / b for d, b in zip(self.shape, self.base, strict=True))

    @property
    def ninf(self) -> int:
        """How many width dimensions: 0 scalar-like, 1 vector-like, 2 matrix-like."""
        return sum(b is not None for b in self.base)

    @property
    def width_mult(self) -> float:
        """The multiplier of the last width dimension (1 without one), as ``mup``'s ``InfShape.width_mult``."""
        found = [m for m, b in zip(self.multipliers(), self.base, strict=True) if b is not None]
        return found[-1] if found else 1.0

    @property
    def base_dims(self) -> tuple[int, ...]:
        """The shape of the parameter in the base model (finite dimensions as they are)."""
        return tuple(d if b is None else b for d, b in zip(self.shape, self.base, strict=True))

    @property
    def fanin_mult(self) -> float:
        return self.multipliers()[1]

    @property
    def fanout_mult(self) -> float:
        return self.multipliers()[0]

    @property
    def is_readout_like(self) -> bool:
        """A matrix whose fan_in (dim 1) is a width dimension and whose fan_out (dim 0) is not."""
        return len(self.shape) >= 2 and self.base[1] is not None and self.base[0] is None


def _shapes(source: BaseLike, what: str) -> dict[str, tuple[int | None, ...]]:
    if isinstance(source, nn.Module):
        return {name: tuple(p.shape) for name, p in source.named_parameters()}
    if not isinstance(source, Mapping):
        raise TypeError(f"{what} must be an nn.Module or a mapping of parameter name to shape, got {type(source).__name__}")
    shapes = {}
    for name, shape in source.items():
        if not isinstance(name, str) or not isinstance(shape, Sequence) or isinstance(shape, str):
            raise TypeError(f"{what}: each entry is a parameter name and a shape (a sequence of ints), got {name!r}: {shape!r}")
        shapes[name] = tuple(None if d is None else check_int(f"{what}[{name!r}]", d, minimum=1) for d in shape)
    return shapes


def base_shapes(base: BaseLike, delta: BaseLike | None = None) -> dict[str, tuple[int | None, ...]]:
    """{name: base shape}; with a ``delta`` model, dimensions equal in base and delta become None (finite).

    As ``mup.make_base_shapes``: the delta model only says which dimensions are widths.
    """
    shapes = _shapes(base, "base")
    if delta is None:
        return shapes
    other = _shapes(delta, "delta")
    _same_names(shapes, other, "base", "delta")
    found = {}
    for name, shape in shapes.items():
        _same_rank(name, shape, other[name], "delta")
        found[name] = tuple(None if b == d else b for b, d in zip(shape, other[name], strict=True))
    return found


def _same_names(first: Mapping[str, Any], second: Mapping[str, Any], a: str, b: str) -> None:
    if set(first) != set(second):
        extra, missing = sorted(set(first) - set(second)), sorted(set(second) - set(first))
        raise ValueError(f"{a} and {b} must have the same parameter names; only in {a}: {extra[:5]}, only in {b}: {missing[:5]}")


def _same_rank(name: str, shape: Sequence[Any], other: Sequence[Any], what: str) -> None:
    if len(shape) != len(other):
        raise ValueError(f"parameter {name!r} has {len(other)} dims in the {what}, {len(shape)} in the base; a base shape has the parameter's rank")


def width_shape(shape: Sequence[int], base: Sequence[int | None], name: str = "") -> WidthShape:
    """The WidthShape of one parameter: a dimension equal to its base (or with base None) is finite."""
    dims = tuple(int(d) for d in shape)
    _same_rank(name, tuple(base), dims, "model")
    found = tuple(None if b is None or b == d else int(b) for d, b in zip(dims, base, strict=True))
    if sum(b is not None for b in found) > 2:
        raise ValueError(f"parameter {name!r} {dims} has more than 2 width dimensions (base {tuple(base)}); muP defines 0, 1 or 2")
    return WidthShape(dims, found)


def width_shapes(model: nn.Module, base: BaseLike, delta: BaseLike | None = None) -> dict[str, WidthShape]:
    """{name: WidthShape} of every parameter of ``model`` against ``base`` (and ``delta``), as ``mup.set_base_shapes``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    shapes = base_shapes(base, delta)
    own = dict(model.named_parameters())
    _same_names(shapes, own, "base", "model")
    return {name: width_shape(tuple(p.shape), shapes[name], name) for name, p in own.items()}


def _base_tuple(base: Any) -> tuple[tuple[str, tuple[int | None, ...]], ...]:
    if isinstance(base, nn.Module | Mapping):
        return tuple(sorted(base_shapes(base).items()))
    if isinstance(base, tuple) and all(isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in base):
        return tuple(sorted(_shapes(dict(base), "mup: base").items()))
    raise TypeError(
        "mup: base must be a base model, a mapping {name: base shape}, pairs (name, base shape), "
        f"or an int (a base width, with width=), got {type(base).__name__}"
    )


@dataclass(frozen=True)
class Mup(PlanValue):
    """muP init with base shapes (see the module docstring); as a plan, ``mup(base=..., ...)``.

    ``base``: a base model, ``{name: base shape}``, or an int base width with
    ``width``: then a dimension that is a whole multiple ``k * width`` is a
    width dimension with base ``k * base`` (give base shapes when a data
    dimension, such as a vocabulary, is a multiple of the width).
    """

    base: Any
    width: int | None = None
    output_mult: float = 1.0
    readout_zero_init: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.base, int) and not isinstance(self.base, bool):
            check_int("mup: base", self.base, minimum=1)
            if self.width is None:
                raise ValueError("mup: an int base is a base width and needs width= (the model's width); "
                                 "or give base shapes: a base model or {name: base shape}")
            check_int("mup: width", self.width, minimum=1)
        else:
            if self.width is not None:
                raise ValueError("mup: width= goes with an int base width; base shapes say the widths themselves")
            object.__setattr__(self, "base", _base_tuple(self.base))
        object.__setattr__(self, "output_mult", check_number("mup: output_mult", self.output_mult, minimum=0.0, strict=True))
        if not isinstance(self.readout_zero_init, bool):
            raise TypeError(f"mup: readout_zero_init must be True or False, got {self.readout_zero_init!r}")

    def shape_of(self, name: str, shape: Sequence[int]) -> WidthShape:
        """The WidthShape of parameter ``name`` of this ``shape``."""
        if isinstance(self.base, int):
            assert self.width is not None
            base = [d // self.width * self.base if d % self.width == 0 else None for d in shape]
            return width_shape(shape, base, name)
        known = dict(self.base)
        if name not in known:
            raise ValueError(f"mup: the base shapes have no parameter {name!r}; they name {sorted(known)[:5]}...")
        return width_shape(shape, known[name], name)

    def resolve(self, target: Target, block: Block, context: ResolveContext) -> Resolved:
        found = ModuleDefault().resolve(target, block, context)
        module, local = target.module, target.local_name
        if target.aliases and found.scheme is not None and self._one_width_dim(target):
            return self._tied(target, block, found)
        if not isinstance(module, nn.Linear | nn.modules.conv._ConvNd) or found.scheme is None:
            return found
        weight = self.shape_of(_sibling(target.name, local, "weight"), tuple(module.weight.shape))
        if local == "bias":
            if found.scheme == get("zeros"):
                return found
            return Resolved(found.scheme, torch_fans(weight.base_dims), 1, note="torch's bias bound on the base fan_in")
        if isinstance(module, nn.Linear) and weight.is_readout_like:
            if self.readout_zero_init or (applies_multiplier(module) and getattr(module, "readout_zero_init", False)):
                return Resolved(get("zeros"), block.layout, block.groups, note="muP readout, zero init")
            fan_in = int(module.weight.shape[1])
            if applies_multiplier(module):
                # mup.MuReadout divides its input by width_mult (times its output_mult) in forward, and
                # set_base_shapes multiplies torch's default draw by sqrt(width_mult): the raw weight
                bound = math.sqrt(weight.width_mult / fan_in)
                scheme = get({"name": "uniform", "a": -bound, "b": bound})
                return Resolved(scheme, block.layout, block.groups,
                                note=f"mup.MuReadout raw weight (its forward applies output_mult / width_mult), "
                                     f"width_mult {weight.width_mult:.6g}")
            bound = self.output_mult / math.sqrt(fan_in * weight.width_mult)
            scheme = get({"name": "uniform", "a": -bound, "b": bound})
            return Resolved(scheme, block.layout, block.groups, note=f"muP readout, width_mult {weight.width_mult:.6g}")
        return found

    def bias_value(self) -> PlanValue:
        return self

    def _one_width_dim(self, target: Target) -> bool:
        try:
            return self.shape_of(target.name, target.shape).ninf == 1
        except ValueError:
            return False

    def _tied(self, target: Target, block: Block, found: Resolved) -> Resolved:
        """A weight an embedding shares with a readout: mup's init of a MuSharedReadout, else a warning.

        ``mup.set_base_shapes`` rescales a MuReadout's weight by sqrt(width_mult), the shared one too:
        an ``nn.Embedding``'s N(0, 1) becomes N(0, width_mult).
        """
        root = target.ancestors[0] if target.ancestors else None
        owners = []
        for alias in target.aliases:
            owner_name = alias.rpartition(".")[0]
            try:
                owners.append(root.get_submodule(owner_name) if root is not None else None)
            except AttributeError:
                owners.append(None)
        if isinstance(target.module, nn.Embedding) and owners and all(o is not None and applies_multiplier(o) for o in owners):
            width_mult = self.shape_of(target.name, target.shape).width_mult
            scheme = get({"name": "normal", "std": math.sqrt(width_mult)})
            return Resolved(scheme, block.layout, block.groups,
                            note=f"embedding shared with a mup.MuSharedReadout: N(0, 1) times sqrt(width_mult {width_mult:.6g})")
        return dataclasses.replace(found, warning=self._tied_warning(target))

    def _tied_warning(self, target: Target) -> str:
        return (f"mup: {target.name} is shared with {', '.join(target.aliases)}, a tied readout: muP needs the "
                "output multiplier output_mult / width_mult in the readout's forward, which this readout does not "
                "apply (mup.MuSharedReadout does, and initlab then draws the shared weight as mup does); initlab "
                "cannot put the multiplier into a weight the embedding shares, so it drew the embedding's default")

    def __str__(self) -> str:
        from initlab.schemes.strings import format_value

        options = [f"base={format_value(self.base)}"]
        if self.width is not None:
            options.append(f"width={self.width}")
        options.append(f"output_mult={self.output_mult!r}")
        options.append(f"readout_zero_init={self.readout_zero_init}")
        return f"mup({', '.join(options)})"


def applies_multiplier(module: nn.Module) -> bool:
    """True for the ``mup`` package's ``MuReadout`` (and subclasses): its forward applies output_mult / width_mult."""
    return any(cls.__name__ == "MuReadout" and cls.__module__.split(".")[0] == "mup" for cls in type(module).__mro__)


def _sibling(name: str, local: str, other: str) -> str:
    return name[: len(name) - len(local)] + other


PLAN_SCHEMES["mup"] = Mup


def _lr_rule(shape: WidthShape, optimizer: str, output: bool, output_mult: float) -> tuple[float, float]:
    """(lr factor, weight decay factor) of one parameter."""
    if output:  # the effective weight (c / m) W of a MuReadout, trained as a plain weight
        m, c = shape.width_mult, output_mult
        lr_mup, wd_mup = (m, 1.0 / m) if optimizer == "sgd" else (1.0, 1.0)
        lr = lr_mup * (c / m) ** (2 if optimizer == "sgd" else 1)
        return lr, lr_mup * wd_mup / lr
    if optimizer == "sgd":
        if shape.ninf == 1:
            return shape.width_mult, 1.0 / shape.width_mult
        if shape.ninf == 2:
            ratio = shape.fanin_mult / shape.fanout_mult
            return 1.0 / ratio, ratio
        return 1.0, 1.0
    if shape.ninf == 2:
        return 1.0 / shape.width_mult, shape.width_mult
    return 1.0, 1.0


def _readouts(model: nn.Module, shapes: Mapping[str, WidthShape]) -> set[str]:
    """Plain Linear output layers, trained as their effective weight; a mup.MuReadout scales itself in forward."""
    found = set()
    for prefix, module in model.named_modules():
        name = f"{prefix}.weight" if prefix else "weight"
        if isinstance(module, nn.Linear) and not applies_multiplier(module) and name in shapes and shapes[name].is_readout_like:
            found.add(name)
    return found


def _groups(model: nn.Module, shapes: Mapping[str, WidthShape], optimizer: str, output_mult: float) -> Iterator[tuple[str, nn.Parameter, float, float]]:
    readouts = _readouts(model, shapes)
    for name, parameter in model.named_parameters():
        lr, wd = _lr_rule(shapes[name], optimizer, name in readouts, output_mult)
        yield name, parameter, lr, wd


def param_groups(
    model: nn.Module,
    base: BaseLike | Mup,
    *,
    optimizer: str = "adam",
    lr: float,
    weight_decay: float = 0.0,
    delta: BaseLike | None = None,
    output_mult: float = 1.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with muP's per-parameter learning rates (module docstring).

    ``optimizer``: ``"adam"``/``"adamw"`` (Adam-like, ``mup.MuAdam``) or
    ``"sgd"`` (SGD-like, ``mup.MuSGD``). Each group holds ``params``, ``lr``,
    ``weight_decay`` and the parameter ``names``; pass the list to
    ``torch.optim.Adam``/``AdamW``/``SGD``. ``base`` is a base model, base
    shapes, or the :class:`Mup` plan value the model was initialized with
    (then ``delta`` and ``output_mult`` come from it).
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = check_number("lr", lr, minimum=0.0)
    weight_decay = check_number("weight_decay", weight_decay, minimum=0.0)
    output_mult = check_number("output_mult", output_mult, minimum=0.0, strict=True)
    if isinstance(base, Mup):
        if delta is not None:
            raise ValueError("param_groups: give delta= with a base model or base shapes, not with a Mup value")
        if output_mult not in (1.0, base.output_mult):
            raise ValueError(f"param_groups: output_mult={output_mult!r} contradicts the Mup value's {base.output_mult!r}; give one")
        shapes = {name: base.shape_of(name, tuple(p.shape)) for name, p in model.named_parameters()}
        output_mult = base.output_mult
    else:
        shapes = width_shapes(model, base, delta)
    grouped: dict[tuple[float, float], dict[str, Any]] = {}
    for name, parameter, lr_factor, wd_factor in _groups(model, shapes, optimizer, output_mult):
        key = (lr * lr_factor, weight_decay * wd_factor)
        group = grouped.setdefault(key, {"params": [], "names": [], "lr": key[0], "weight_decay": key[1]})
        group["params"].append(parameter)
        group["names"].append(name)
    return list(grouped.values())
