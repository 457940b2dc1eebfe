"""``lasagne:``: the classes of ``lasagne.init`` with Lasagne's meaning.

Read from lasagne/init.py at Lasagne/Lasagne commit 5d3c63c (Lasagne needs
Theano, which does not install beside the pinned torch; these follow the
source): ``Glorot`` has std = gain * sqrt(2 / ((n1 + n2) * receptive)) and
``He`` std = gain / sqrt(fan_in), both with ``gain=1.0`` by default (so
``HeNormal()`` is N(0, 1 / fan_in); ``gain="relu"`` means sqrt 2);
``Normal(std=0.01, mean=0.0)``; ``Uniform(range=0.01, std=None, mean=0.0)``
is U[-range, range] for a number, U[range[0], range[1]] for a pair and
U[mean +- sqrt(3) std] when std is given; ``Sparse(sparsity=0.1, std=0.01)``
keeps int(sparsity * n_inputs) *non-zeros* per output unit; ``Orthogonal``
takes the SVD of a Gaussian matrix; ``Constant(val=0.0)``.
Fans: :func:`initlab.schemes.frameworks.lasagne_fans`. ``lasagne:default``
is the ``lasagne_default`` preset. The ``c01b`` option of cuda-convnet
layers is not reproduced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from initlab.rng.checks import check_number
from initlab.schemes.basic import Normal, Uniform
from initlab.schemes.dialects.base import Filled, Translated, Translation, number
from initlab.schemes.fans import LayoutLike
from initlab.schemes.frameworks import lasagne_fans
from initlab.schemes.initializer import Initializer
from initlab.schemes.registry import register
from initlab.schemes.structured import Orthogonal, Sparse
from initlab.schemes.variance import VarianceScaling
from initlab.schemes.views import unit_blocks

__all__ = ["LasagneConstant", "LasagneNormal", "LasagneUniform", "LasagneGlorotNormal", "LasagneGlorotUniform",
           "LasagneHeNormal", "LasagneHeUniform", "LasagneOrthogonal", "LasagneSparse"]

REFERENCE = "Lasagne lasagne.init (Lasagne/Lasagne 5d3c63c, lasagne/init.py)"


def _gain(owner: Initializer, value: Any) -> float:
    """Lasagne's gain: a number, or "relu" for sqrt 2."""
    if value == "relu":
        return math.sqrt(2.0)
    if isinstance(value, str):
        raise ValueError(f"{owner.name}: gain must be a number or 'relu', got {value!r}")
    number(owner, "gain", minimum=0.0)
    return float(getattr(owner, "gain"))  # noqa: B009


class _Lasagne(Translated):
    framework = "lasagne"
    reference = REFERENCE


@register
@dataclass(frozen=True, repr=False)
class LasagneConstant(Filled, _Lasagne):
    """Lasagne Constant(val=0.0)."""

    val: float = 0.0

    name = "lasagne:Constant"
    formula = "w = val"
    value_field = "val"


@register
@dataclass(frozen=True, repr=False)
class LasagneNormal(_Lasagne):
    """Lasagne Normal(std=0.01, mean=0.0)."""

    std: float = 0.01
    mean: float = 0.0

    name = "lasagne:Normal"
    distribution = "normal"
    uses_fans = False
    elementwise = True
    formula = "N(mean, std^2)"

    def __post_init__(self) -> None:
        number(self, "std", minimum=0.0)
        number(self, "mean")

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Normal(self.mean, self.std), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class LasagneUniform(_Lasagne):
    """Lasagne Uniform(range=0.01, std=None, mean=0.0): U[-range, range], U[range], or U[mean +- sqrt(3) std]."""

    range: float | tuple[float, float] = 0.01
    std: float | None = None
    mean: float = 0.0

    name = "lasagne:Uniform"
    distribution = "uniform"
    uses_fans = False
    elementwise = True
    formula = "U[-range, range] | U[range[0], range[1]] | U[mean - sqrt(3) std, mean + sqrt(3) std]"

    def __post_init__(self) -> None:
        number(self, "mean")
        if self.std is not None:
            number(self, "std", minimum=0.0, strict=True)
        elif isinstance(self.range, tuple | list):
            if len(self.range) != 2:
                raise ValueError(f"{self.name}: range is a number or a pair (a, b), got {self.range!r}")
            pair = Uniform(*(check_number(f"{self.name}: range", end) for end in self.range))  # a < b
            object.__setattr__(self, "range", (pair.a, pair.b))
        else:
            number(self, "range", minimum=0.0, strict=True)

    @property
    def bounds(self) -> tuple[float, float]:
        if self.std is not None:
            half = math.sqrt(3.0) * self.std
            return self.mean - half, self.mean + half
        if isinstance(self.range, tuple):
            return self.range[0], self.range[1]
        return -self.range, self.range

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Uniform(*self.bounds), layout, groups)


@dataclass(frozen=True, repr=False)
class _LasagneVariance(_Lasagne):
    gain: float | str = 1.0

    elementwise = True
    supports_complex = True
    # (mode, distribution): Glorot uses (n1 + n2) / 2, He the fan-in
    setting: ClassVar[tuple[str, str]] = ("fan_avg", "normal")

    def __post_init__(self) -> None:
        _gain(self, self.gain)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        if len(shape) < 2:
            raise ValueError(f"{self.name}: Lasagne needs a shape of length >= 2, got {shape}")
        gain = _gain(self, self.gain)
        mode, distribution = self.setting
        return Translation(VarianceScaling(gain * gain, mode, distribution), lasagne_fans(shape, layout, groups))


@register
@dataclass(frozen=True, repr=False)
class LasagneGlorotNormal(_LasagneVariance):
    """Lasagne GlorotNormal(gain=1.0): N(0, gain^2 * 2 / ((n1 + n2) * receptive))."""

    name = "lasagne:GlorotNormal"
    setting = ("fan_avg", "normal")
    formula = "N(0, gain^2 * 2 / (fan_in + fan_out))"


@register
@dataclass(frozen=True, repr=False)
class LasagneGlorotUniform(_LasagneVariance):
    """Lasagne GlorotUniform(gain=1.0): U[+-gain sqrt(6 / ((n1 + n2) * receptive))]."""

    name = "lasagne:GlorotUniform"
    setting = ("fan_avg", "uniform")
    formula = "U[+-gain * sqrt(6 / (fan_in + fan_out))]"


@register
@dataclass(frozen=True, repr=False)
class LasagneHeNormal(_LasagneVariance):
    """Lasagne HeNormal(gain=1.0): N(0, gain^2 / fan_in) -- LeCun's variance unless gain="relu"."""

    name = "lasagne:HeNormal"
    setting = ("fan_in", "normal")
    formula = "N(0, gain^2 / fan_in), gain 1 by default"


@register
@dataclass(frozen=True, repr=False)
class LasagneHeUniform(_LasagneVariance):
    """Lasagne HeUniform(gain=1.0): U[+-gain sqrt(3 / fan_in)]."""

    name = "lasagne:HeUniform"
    setting = ("fan_in", "uniform")
    formula = "U[+-gain * sqrt(3 / fan_in)], gain 1 by default"


@register
@dataclass(frozen=True, repr=False)
class LasagneOrthogonal(_Lasagne):
    """Lasagne Orthogonal(gain=1.0): gain times U or V of the SVD of a Gaussian (shape[0], rest) matrix."""

    gain: float | str = 1.0

    name = "lasagne:Orthogonal"
    distribution = "orthogonal"
    formula = "gain * Q, Q from the SVD of a Gaussian matrix"

    def __post_init__(self) -> None:
        _gain(self, self.gain)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Orthogonal(_gain(self, self.gain), method="svd"), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class LasagneSparse(_Lasagne):
    """Lasagne Sparse(sparsity=0.1, std=0.01): int(sparsity * n_inputs) non-zeros per output unit, 2-D only."""

    sparsity: float = 0.1
    std: float = 0.01

    name = "lasagne:Sparse"
    distribution = "sparse_normal"
    formula = "int(sparsity * n_inputs) non-zeros per output unit ~ N(0, std^2), zeros elsewhere"

    def __post_init__(self) -> None:
        # Lasagne's sparsity is the fraction of non-zeros per column
        object.__setattr__(self, "sparsity", check_number(f"{self.name}: sparsity", self.sparsity, minimum=0.0,
                                                          maximum=1.0))
        number(self, "std", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        blocks = unit_blocks(self.name, shape, layout, groups)
        if len(shape) != 2:
            raise ValueError(f"{self.name}: Lasagne fills 2-D weights only, got shape {shape}")
        inputs = blocks.in_per_group
        kept = int(self.sparsity * inputs)
        # initlab's sparsity is the fraction of zeros; (inputs - kept) / inputs gives int(...) non-zeros exactly
        zero_fraction = (inputs - kept) / inputs if inputs else 0.0
        return Translation(Sparse(zero_fraction, self.std), layout, groups)
