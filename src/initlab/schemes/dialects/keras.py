"""``keras:``: the names of ``keras.initializers`` (Keras 3) with Keras' meaning.

Read from keras/src/initializers/random_initializers.py and
constant_initializers.py at keras-team/keras commit 3422977 (Keras 3.15.1):

* ``VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal")``:
  ``distribution="normal"`` is stored as ``"truncated_normal"``;
  ``"untruncated_normal"`` is the plain normal; std = sqrt(scale / max(1, n))
  (after truncation at 2 sigma for the truncated normal).
* ``glorot_normal``, ``he_normal``, ``lecun_normal`` are *truncated* normals
  (VarianceScaling with scale 1, 2, 1 and fan_avg, fan_in, fan_in);
  ``glorot_uniform``, ``he_uniform``, ``lecun_uniform`` uniform.
* ``RandomNormal(mean=0.0, stddev=0.05)``, ``RandomUniform(minval=-0.05,
  maxval=0.05)``, ``TruncatedNormal(mean=0.0, stddev=0.05)`` (cut at
  mean +- 2 stddev, stddev before truncation), ``Orthogonal(gain=1.0)``,
  ``Identity(gain=1.0)``, ``Zeros``, ``Ones``, ``Constant(value=0.0)``.

Fans are Keras' ``compute_fans`` on the kernel as Keras stores the layer
(:func:`initlab.schemes.frameworks.keras_fans`). ``keras:default`` is the
``keras_default`` preset (the layers' defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from initlab.rng.checks import check_choice
from initlab.schemes.basic import Normal, Ones, TruncatedNormal, Uniform, Zeros
from initlab.schemes.dialects.base import (
    Filled,
    FixedConstant,
    Translated,
    Translation,
    number,
    positive_fans,
)
from initlab.schemes.fans import LayoutLike
from initlab.schemes.frameworks import keras_fans
from initlab.schemes.registry import register
from initlab.schemes.structured import Identity, Orthogonal
from initlab.schemes.variance import VarianceScaling

__all__ = [
    "KerasVarianceScaling", "KerasGlorotNormal", "KerasGlorotUniform", "KerasHeNormal", "KerasHeUniform",
    "KerasLecunNormal", "KerasLecunUniform", "KerasRandomNormal", "KerasRandomUniform",
    "KerasTruncatedNormal", "KerasOrthogonal", "KerasIdentity", "KerasZeros", "KerasOnes", "KerasConstant",
]

REFERENCE = "Keras 3 keras.initializers (keras-team/keras 3422977, keras/src/initializers/)"
# Keras' distribution names -> initlab's; "normal" is Keras' truncated normal
_DISTRIBUTIONS = {"truncated_normal": "truncated_normal", "normal": "truncated_normal",
                  "untruncated_normal": "normal", "uniform": "uniform"}


def _variance_translation(scale: float, mode: str, distribution: str, shape: tuple[int, ...],
                          layout: LayoutLike, groups: int) -> Translation:
    fans = positive_fans(keras_fans(shape, layout, groups))
    return Translation(VarianceScaling(scale=scale, mode=mode, distribution=_DISTRIBUTIONS[distribution]), fans)


class _Keras(Translated):
    framework = "keras"
    reference = REFERENCE


@register
@dataclass(frozen=True, repr=False)
class KerasVarianceScaling(_Keras):
    """Keras VarianceScaling: std = sqrt(scale / max(1, n)); Keras' "normal" is the truncated normal."""

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"  # type: ignore[misc]

    name = "keras:variance_scaling"
    aliases = ("keras:VarianceScaling",)
    elementwise = True
    supports_complex = True
    formula = "std = sqrt(scale / max(1, n)) on Keras' fans; normal = truncated at 2 sigma (std after truncation)"

    def __post_init__(self) -> None:
        number(self, "scale", minimum=0.0, strict=True)  # Keras: "scale must be positive float"
        check_choice(f"{self.name}: mode", self.mode, ("fan_in", "fan_out", "fan_avg"))
        if isinstance(self.distribution, str):
            object.__setattr__(self, "distribution", self.distribution.lower())
        check_choice(f"{self.name}: distribution", self.distribution, tuple(_DISTRIBUTIONS))
        # Keras keeps "truncated_normal" for "normal" (its get_config says so); so does the string form
        object.__setattr__(self, "distribution", {"normal": "truncated_normal"}.get(self.distribution, self.distribution))

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return _variance_translation(self.scale, self.mode, self.distribution, shape, layout, groups)


@dataclass(frozen=True, repr=False)
class _KerasFixedVariance(_Keras):
    """A VarianceScaling one-liner: Keras' GlorotNormal & co take no parameters but a seed."""

    setting: ClassVar[tuple[float, str, str]] = (1.0, "fan_in", "truncated_normal")
    elementwise = True
    supports_complex = True

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return _variance_translation(*self.setting, shape, layout, groups)


@register
@dataclass(frozen=True, repr=False)
class KerasGlorotNormal(_KerasFixedVariance):
    """Keras glorot_normal: *truncated* normal, std sqrt(2 / (fan_in + fan_out)) after truncation."""

    name = "keras:glorot_normal"
    aliases = ("keras:GlorotNormal",)
    setting = (1.0, "fan_avg", "truncated_normal")
    formula = "truncated at 2 sigma, std sqrt(2 / (fan_in + fan_out)) after truncation"


@register
@dataclass(frozen=True, repr=False)
class KerasGlorotUniform(_KerasFixedVariance):
    """Keras glorot_uniform: U[+-sqrt(6 / (fan_in + fan_out))]."""

    name = "keras:glorot_uniform"
    aliases = ("keras:GlorotUniform",)
    setting = (1.0, "fan_avg", "uniform")
    formula = "U[+-sqrt(6 / (fan_in + fan_out))]"


@register
@dataclass(frozen=True, repr=False)
class KerasHeNormal(_KerasFixedVariance):
    """Keras he_normal: *truncated* normal, std sqrt(2 / fan_in) after truncation."""

    name = "keras:he_normal"
    aliases = ("keras:HeNormal",)
    setting = (2.0, "fan_in", "truncated_normal")
    formula = "truncated at 2 sigma, std sqrt(2 / fan_in) after truncation"


@register
@dataclass(frozen=True, repr=False)
class KerasHeUniform(_KerasFixedVariance):
    """Keras he_uniform: U[+-sqrt(6 / fan_in)]."""

    name = "keras:he_uniform"
    aliases = ("keras:HeUniform",)
    setting = (2.0, "fan_in", "uniform")
    formula = "U[+-sqrt(6 / fan_in)]"


@register
@dataclass(frozen=True, repr=False)
class KerasLecunNormal(_KerasFixedVariance):
    """Keras lecun_normal: *truncated* normal, std sqrt(1 / fan_in) after truncation."""

    name = "keras:lecun_normal"
    aliases = ("keras:LecunNormal",)
    setting = (1.0, "fan_in", "truncated_normal")
    formula = "truncated at 2 sigma, std sqrt(1 / fan_in) after truncation"


@register
@dataclass(frozen=True, repr=False)
class KerasLecunUniform(_KerasFixedVariance):
    """Keras lecun_uniform: U[+-sqrt(3 / fan_in)]."""

    name = "keras:lecun_uniform"
    aliases = ("keras:LecunUniform",)
    setting = (1.0, "fan_in", "uniform")
    formula = "U[+-sqrt(3 / fan_in)]"


@register
@dataclass(frozen=True, repr=False)
class KerasRandomNormal(_Keras):
    """Keras RandomNormal: N(mean, stddev^2), stddev 0.05 by default."""

    mean: float = 0.0
    stddev: float = 0.05

    name = "keras:random_normal"
    distribution = "normal"
    aliases = ("keras:RandomNormal",)
    uses_fans = False
    elementwise = True
    formula = "N(mean, stddev^2)"

    def __post_init__(self) -> None:
        number(self, "mean")
        number(self, "stddev", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Normal(self.mean, self.stddev), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class KerasRandomUniform(_Keras):
    """Keras RandomUniform: U[minval, maxval), -0.05 and 0.05 by default."""

    minval: float = -0.05
    maxval: float = 0.05

    name = "keras:random_uniform"
    distribution = "uniform"
    aliases = ("keras:RandomUniform",)
    uses_fans = False
    elementwise = True
    formula = "U[minval, maxval)"

    def __post_init__(self) -> None:
        number(self, "minval")
        number(self, "maxval")
        Uniform(self.minval, self.maxval)  # minval < maxval

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Uniform(self.minval, self.maxval), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class KerasTruncatedNormal(_Keras):
    """Keras TruncatedNormal: N(mean, stddev^2) cut at mean +- 2 stddev (stddev before truncation)."""

    mean: float = 0.0
    stddev: float = 0.05

    name = "keras:truncated_normal"
    distribution = "truncated_normal"
    aliases = ("keras:TruncatedNormal",)
    uses_fans = False
    elementwise = True
    formula = "N(mean, stddev^2) restricted to [mean - 2 stddev, mean + 2 stddev]"

    def __post_init__(self) -> None:
        number(self, "mean")
        number(self, "stddev", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(TruncatedNormal(self.mean, self.stddev, -2.0, 2.0), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class KerasOrthogonal(_Keras):
    """Keras Orthogonal: gain times a Haar orthogonal matrix over (prod(shape[:-1]), shape[-1])."""

    gain: float = 1.0

    name = "keras:orthogonal"
    distribution = "orthogonal"
    aliases = ("keras:Orthogonal",)
    formula = "gain * Q, QR of a Gaussian matrix, columns = output units"

    def __post_init__(self) -> None:
        number(self, "gain", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Orthogonal(self.gain), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class KerasIdentity(_Keras):
    """Keras Identity: gain times the (rectangular) identity, 2-D only."""

    gain: float = 1.0

    name = "keras:identity"
    distribution = "deterministic"
    aliases = ("keras:Identity",)
    formula = "gain * I"

    def __post_init__(self) -> None:
        number(self, "gain", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Identity(self.gain), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class KerasZeros(FixedConstant, _Keras):
    """Keras Zeros."""

    name = "keras:zeros"
    aliases = ("keras:Zeros",)
    formula = "w = 0"
    fixed = Zeros()


@register
@dataclass(frozen=True, repr=False)
class KerasOnes(FixedConstant, _Keras):
    """Keras Ones."""

    name = "keras:ones"
    aliases = ("keras:Ones",)
    formula = "w = 1"
    fixed = Ones()


@register
@dataclass(frozen=True, repr=False)
class KerasConstant(Filled, _Keras):
    """Keras Constant(value=0.0)."""

    value: float = 0.0

    name = "keras:constant"
    aliases = ("keras:Constant",)
    formula = "w = value"
