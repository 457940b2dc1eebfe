"""Variance scaling: one core, and LeCun, Glorot/Xavier and He/Kaiming as specialisations.

    std = gain * sqrt(scale / n),   n in {fan_in, fan_out, fan_avg, fan_geo_avg}

with fan_avg = (fan_in + fan_out) / 2 and fan_geo_avg = sqrt(fan_in * fan_out)
(JAX's fourth mode), drawn from one of three distributions with that std:

* ``normal`` (also spelled ``untruncated_normal``, Keras' name): N(0, std^2),
  as in JAX. Keras' ``VarianceScaling(distribution="normal")`` means the
  *truncated* normal instead (keras/src/initializers/random_initializers.py,
  keras-team/keras commit 3422977, maps "normal" to "truncated_normal");
  ``initlab.get("keras:variance_scaling(distribution=normal)")`` is Keras' meaning;
* ``uniform``: U[-sqrt(3) std, sqrt(3) std];
* ``truncated_normal``: N(0, sigma^2) cut at +-2 sigma, with
  sigma = std / 0.87962566103423978 so that the std *after* truncation is
  ``std`` (the correction JAX and Keras apply).

Complex tensors (complex64, complex128) get E|w|^2 = std^2 with independent
real and imaginary parts, each drawn from the same distribution with std / sqrt 2
(a circular normal for ``normal``; a square, not JAX's disk, for ``uniform``;
each part truncated at 2 of its sigmas for ``truncated_normal``). The ``jax:``
dialect draws JAX's circular distributions instead.

LeCun: scale 1, fan_in (LeCun et al. 1998). Glorot: scale 1, fan_avg, i.e.
Var = 2 / (fan_in + fan_out) (Glorot & Bengio 2010). He: gain of the
activation, e.g. Var = 2 / fan_in for ReLU (He et al. 2015).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from initlab import rng
from initlab.rng import GeneratorLike
from initlab.rng.checks import check_choice, check_number
from initlab.schemes.fans import Fans, LayoutLike
from initlab.schemes.gains import gain as activation_gain
from initlab.schemes.initializer import Initializer, Moments
from initlab.schemes.registry import register

__all__ = [
    "VarianceScaling",
    "LecunNormal",
    "LecunUniform",
    "LecunTruncatedNormal",
    "GlorotNormal",
    "GlorotUniform",
    "GlorotTruncatedNormal",
    "HeNormal",
    "HeUniform",
    "HeTruncatedNormal",
    "TRUNCATED_STD_FACTOR",
    "truncated_std_factor",
    "variance_scaling_std",
]

DISTRIBUTIONS = ("normal", "uniform", "truncated_normal")
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
# Keras' spelling of the untruncated normal; variance_scaling stores it as "normal"
UNTRUNCATED_NORMAL = "untruncated_normal"


def _density(x: float) -> float:
    """phi(x), the standard normal density (0 at +-inf)."""
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def truncated_mean_shift(a: float, b: float) -> float:
    """Mean of a standard normal truncated to [a, b]: (phi(a) - phi(b)) / Z, Z = Phi(b) - Phi(a)."""
    return (_density(a) - _density(b)) / rng.normal_mass(a, b)


def truncated_std_factor(a: float, b: float) -> float:
    """Std of a standard normal truncated to [a, b] (a, b in sigma units).

    Var = 1 + (a phi(a) - b phi(b)) / Z - ((phi(a) - phi(b)) / Z)^2, with Z = Phi(b) - Phi(a).
    """
    a_term = a * _density(a) if math.isfinite(a) else 0.0
    b_term = b * _density(b) if math.isfinite(b) else 0.0
    return math.sqrt(1.0 + (a_term - b_term) / rng.normal_mass(a, b) - truncated_mean_shift(a, b) ** 2)


# std of N(0, 1) truncated to [-2, 2]; JAX and Keras divide by it
TRUNCATED_STD_FACTOR = truncated_std_factor(-2.0, 2.0)


def variance_scaling_std(fans: Fans, scale: float, mode: str, gain: float = 1.0) -> float:
    """gain * sqrt(scale / n) with n the fan named by ``mode``; 0 for zero fans.

    The float operations follow ``torch.nn.init`` (gain / sqrt(n) and
    gain * sqrt(2 / (fan_in + fan_out)) when scale is 1), so kaiming and
    xavier fills are bit-identical to torch's for the same generator.
    """
    if mode == "fan_avg":
        total = fans.fan_in + fans.fan_out
        return 0.0 if total == 0 else gain * math.sqrt(2.0 * scale / float(total))
    if mode == "fan_geo_avg":
        product = fans.fan_in * fans.fan_out
        return 0.0 if product == 0 or scale == 0.0 else gain * math.sqrt(scale / math.sqrt(product))
    n = fans.of(mode)
    if n == 0 or scale == 0.0:
        return 0.0
    return gain / math.sqrt(n / scale)


def fill_with_std_(
    out: torch.Tensor, std: float, distribution: str, generator: GeneratorLike
) -> None:
    """Fill ``out`` with zero-mean values of ``std`` from ``distribution``."""
    if distribution == "normal":
        rng.normal_(out, 0.0, std, generator)
    elif distribution == "uniform":
        bound = math.sqrt(3.0) * std
        rng.uniform_(out, -bound, bound, generator)
    else:
        rng.truncated_normal_(out, 0.0, std / TRUNCATED_STD_FACTOR, -2.0, 2.0, generator)


def bounds_for(std: float, distribution: str) -> tuple[float, float] | None:
    if distribution == "uniform":
        return (-math.sqrt(3.0) * std, math.sqrt(3.0) * std)
    if distribution == "truncated_normal":
        sigma = std / TRUNCATED_STD_FACTOR
        return (-2.0 * sigma, 2.0 * sigma)
    return None


@functools.lru_cache(maxsize=256)
def _named_gain(nonlinearity: str, param: float | None, convention: str) -> float:
    return activation_gain(nonlinearity, param, convention=convention)


class _VarianceScalingBase(Initializer):
    """Shared body: subclasses say (scale, mode, gain, distribution)."""

    elementwise = True
    supports_complex = True

    def _config(self) -> tuple[float, str, float, str]:
        raise NotImplementedError

    def _std(self, fans: Fans) -> float:
        scale, mode, gain, _ = self._config()
        return variance_scaling_std(fans, scale, mode, gain)

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        assert fans is not None
        fill_with_std_(out, self._std(fans), self._config()[3], generator)

    def fill_complex_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        """Real and imaginary parts independent, each with std / sqrt 2, so that E|w|^2 = std^2."""
        assert fans is not None
        fill_with_std_(torch.view_as_real(out), self._std(fans) / math.sqrt(2.0), self._config()[3], generator)

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        """A tensor with elements needs a positive fan: std = gain * sqrt(scale / n) is undefined at n = 0."""
        if math.prod(shape) == 0:
            return
        scheme_fans = self.fans_of(shape, layout, groups)
        assert scheme_fans is not None
        mode = self._config()[1]
        if scheme_fans.of(mode) == 0:
            raise ValueError(
                f"{self.name}: {mode} is 0 for a tensor of shape {tuple(shape)} with {math.prod(shape)} elements "
                f"(fans {scheme_fans.fan_in}, {scheme_fans.fan_out}); std = gain * sqrt(scale / {mode}) needs "
                f"{mode} >= 1: declare a layout (or Fans) whose {mode} is positive"
            )

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        scheme_fans = self.fans_of(shape, layout, groups)
        assert scheme_fans is not None
        std = self._std(scheme_fans)
        _, _, gain, distribution = self._config()
        return Moments(mean=0.0, std=std, bounds=bounds_for(std, distribution), gain=gain)


@register
@dataclass(frozen=True, repr=False)
class VarianceScaling(_VarianceScalingBase):
    """Zero-mean values with std = sqrt(scale / n), n the chosen fan.

    ``mode``: fan_in, fan_out, fan_avg = (fan_in + fan_out) / 2 or
    fan_geo_avg = sqrt(fan_in * fan_out). ``distribution``: truncated_normal
    (default; std after truncation at 2 sigma), normal (untruncated, JAX's
    meaning; ``untruncated_normal``, Keras' spelling, is the same and is
    stored as ``normal``) or uniform. Keras' "normal" is truncated: use
    ``keras:variance_scaling`` for its meaning.
    """

    scale: float = 1.0
    mode: str = "fan_in"
    # a dataclass field here, a class constant of the other schemes (Initializer.distribution)
    distribution: str = "truncated_normal"  # type: ignore[misc]

    name = "variance_scaling"
    formula = "std = sqrt(scale / n), n = fan_in | fan_out | (fan_in + fan_out) / 2 | sqrt(fan_in * fan_out)"
    reference = "JAX jax.nn.initializers.variance_scaling; Keras VarianceScaling"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_number(f"{self.name}: scale", self.scale, minimum=0.0))
        check_choice(f"{self.name}: mode", self.mode, MODES)
        if self.distribution == UNTRUNCATED_NORMAL:
            object.__setattr__(self, "distribution", "normal")
        check_choice(f"{self.name}: distribution", self.distribution, (*DISTRIBUTIONS, UNTRUNCATED_NORMAL))

    def _config(self) -> tuple[float, str, float, str]:
        return self.scale, self.mode, 1.0, self.distribution


# -- LeCun -----------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class _Lecun(_VarianceScalingBase):
    formula = "Var[w] = 1 / fan_in"
    reference = "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp"

    def _config(self) -> tuple[float, str, float, str]:
        return 1.0, "fan_in", 1.0, self.distribution


@register
class LecunNormal(_Lecun):
    """LeCun normal: N(0, 1/fan_in)."""

    name = "lecun_normal"
    distribution = "normal"
    formula = "w ~ N(0, 1 / fan_in)"


@register
class LecunUniform(_Lecun):
    """LeCun uniform: U[+-sqrt(3/fan_in)]."""

    name = "lecun_uniform"
    distribution = "uniform"
    formula = "w ~ U[-sqrt(3 / fan_in), sqrt(3 / fan_in)]"


@register
class LecunTruncatedNormal(_Lecun):
    """LeCun truncated normal (JAX/Flax lecun_normal): std 1/sqrt(fan_in) after truncation at 2 sigma."""

    name = "lecun_truncated_normal"
    distribution = "truncated_normal"
    formula = "w ~ N(0, sigma^2) cut at +-2 sigma, sigma = 1 / (0.8796 sqrt(fan_in)): std 1 / sqrt(fan_in) after truncation"


# -- Glorot / Xavier ---------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class _Glorot(_VarianceScalingBase):
    gain: float = 1.0

    formula = "Var[w] = gain^2 * 2 / (fan_in + fan_out)"
    reference = "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", check_number(f"{self.name}: gain", self.gain, minimum=0.0))

    def _config(self) -> tuple[float, str, float, str]:
        return 1.0, "fan_avg", self.gain, self.distribution


@register
class GlorotNormal(_Glorot):
    """Glorot/Xavier normal: N(0, 2/(fan_in + fan_out))."""

    name = "glorot_normal"
    aliases = ("xavier_normal",)
    distribution = "normal"
    formula = "w ~ N(0, gain^2 * 2 / (fan_in + fan_out))"


@register
class GlorotUniform(_Glorot):
    """Glorot/Xavier uniform: U[+-sqrt(6/(fan_in + fan_out))]."""

    name = "glorot_uniform"
    aliases = ("xavier_uniform",)
    distribution = "uniform"
    formula = "w ~ U[+-gain * sqrt(6 / (fan_in + fan_out))]"


@register
class GlorotTruncatedNormal(_Glorot):
    """Glorot/Xavier truncated normal: std sqrt(2/(fan_in + fan_out)) after truncation at 2 sigma."""

    name = "glorot_truncated_normal"
    aliases = ("xavier_truncated_normal",)
    distribution = "truncated_normal"
    formula = "std gain * sqrt(2 / (fan_in + fan_out)) after truncation at +-2 sigma (sigma = std / 0.8796)"


# -- He / Kaiming ------------------------------------------------------------------
_SLOPED = ("leaky_relu", "prelu", "rrelu")


@dataclass(frozen=True, repr=False)
class _He(_VarianceScalingBase):
    mode: str = "fan_in"
    nonlinearity: str = "relu"
    negative_slope: float = 0.0
    convention: str = "exact"

    formula = "Var[w] = gain(nonlinearity)^2 / n, n = fan_in or fan_out (2 / n for ReLU)"
    reference = "He, Zhang, Ren & Sun 2015, Delving Deep into Rectifiers"

    def __post_init__(self) -> None:
        check_choice(f"{self.name}: mode", self.mode, ("fan_in", "fan_out"))
        check_choice(f"{self.name}: convention", self.convention, ("exact", "torch"))
        if not isinstance(self.nonlinearity, str):
            raise TypeError(f"{self.name}: nonlinearity must be an activation name, got {self.nonlinearity!r}")
        object.__setattr__(
            self, "negative_slope", check_number(f"{self.name}: negative_slope", self.negative_slope)
        )
        if self.negative_slope != 0.0 and self.nonlinearity not in _SLOPED:
            raise ValueError(
                f"{self.name}: negative_slope={self.negative_slope!r} applies to nonlinearity "
                f"{', '.join(_SLOPED)}, not {self.nonlinearity!r}"
            )
        _ = self.gain  # validates the activation name now, not at first use

    @property
    def gain(self) -> float:
        param = self.negative_slope if self.nonlinearity in _SLOPED else None
        return _named_gain(self.nonlinearity, param, self.convention)

    def _config(self) -> tuple[float, str, float, str]:
        return 1.0, self.mode, self.gain, self.distribution


@register
class HeNormal(_He):
    """He/Kaiming normal: N(0, gain^2 / fan), 2/fan_in for ReLU."""

    name = "he_normal"
    aliases = ("kaiming_normal",)
    distribution = "normal"
    formula = "w ~ N(0, gain(nonlinearity)^2 / n), n = fan_in or fan_out (2 / fan_in for ReLU)"


@register
class HeUniform(_He):
    """He/Kaiming uniform: U[+-gain * sqrt(3 / fan)]."""

    name = "he_uniform"
    aliases = ("kaiming_uniform",)
    distribution = "uniform"
    formula = "w ~ U[+-gain(nonlinearity) * sqrt(3 / n)], n = fan_in or fan_out"


@register
class HeTruncatedNormal(_He):
    """He/Kaiming truncated normal: std gain/sqrt(fan) after truncation at 2 sigma."""

    name = "he_truncated_normal"
    aliases = ("kaiming_truncated_normal",)
    distribution = "truncated_normal"
    formula = "std gain(nonlinearity) / sqrt(n) after truncation at +-2 sigma (sigma = std / 0.8796)"

