"""``jax:`` (and ``flax:``): the names of ``jax.nn.initializers`` with JAX's meaning.

Read from jax/_src/nn/initializers.py at jax-ml/jax commit cec06d1 (jax 0.10.2);
``flax.linen.initializers`` re-exports them, so each is also ``flax:NAME``:

* ``variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1,
  batch_axis=())``: modes fan_in, fan_out, fan_avg, fan_geo_avg; "normal" is
  the untruncated normal; "truncated_normal" has std sqrt(scale / n) after
  truncation at 2 sigma. Complex dtypes: a circular normal, a uniform disk,
  and a normal whose modulus is cut at 2, divided by 0.95311164380491208
  (which gives E|w|^2 = 1.0185 scale / n; initlab repeats JAX's constant here).
* ``glorot_normal``, ``he_normal``, ``lecun_normal`` are *truncated*;
  ``*_uniform`` uniform (aliases ``xavier_*``, ``kaiming_*``).
* ``normal(stddev=0.01)``, ``uniform(scale=0.01)`` = U[0, scale),
  ``truncated_normal(stddev=0.01, lower=-2.0, upper=2.0)`` (bounds in units
  of stddev, stddev before truncation), ``orthogonal(scale=1.0,
  column_axis=-1)``, ``delta_orthogonal(scale=1.0, column_axis=-1)`` (centre
  tap (k - 1) // 2; out >= in), ``zeros``, ``ones``, ``constant(value)``.

Axes: a ``jax:`` scheme's ``in_axis``/``out_axis``/``batch_axis`` describe
a tensor in JAX's layout (``layout="jax"``, the default axes) or are given
as ``layout=Axes(...)``; for a tensor in a torch layout the fans are those of
the same layer stored as Flax stores it (:func:`initlab.schemes.frameworks.flax_fans`),
and the scheme's axes must keep their defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from initlab import rng
from initlab.rng import GeneratorLike
from initlab.rng.checks import check_choice, check_int
from initlab.schemes.basic import Normal, Ones, TruncatedNormal, Uniform, Zeros
from initlab.schemes.dialects.base import (
    Filled,
    FixedConstant,
    Translated,
    Translation,
    is_own_axes,
    number,
)
from initlab.schemes.fans import Axes, Fans, LayoutLike, fans
from initlab.schemes.frameworks import flax_fans
from initlab.schemes.registry import register
from initlab.schemes.structured import DeltaOrthogonal, Orthogonal
from initlab.schemes.variance import MODES, VarianceScaling, variance_scaling_std
from initlab.schemes.views import unit_blocks

__all__ = [
    "JaxVarianceScaling", "JaxGlorotNormal", "JaxGlorotUniform", "JaxHeNormal", "JaxHeUniform",
    "JaxLecunNormal", "JaxLecunUniform", "JaxNormal", "JaxUniform", "JaxTruncatedNormal",
    "JaxOrthogonal", "JaxDeltaOrthogonal", "JaxZeros", "JaxOnes", "JaxConstant", "JAX_COMPLEX_TRUNCATED_STD",
]

REFERENCE = "JAX jax.nn.initializers (jax-ml/jax cec06d1, jax/_src/nn/initializers.py)"
DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
# JAX divides its complex truncated normal by this "std of a complex normal truncated to 2"
JAX_COMPLEX_TRUNCATED_STD = 0.95311164380491208


def _aliases(name: str, *others: str) -> tuple[str, ...]:
    """The other spellings of ``jax:NAME``: ``others`` (JAX's own aliases) and each as flax:NAME
    (flax.linen.initializers re-exports jax's)."""
    return (*others, *(f"flax:{spelling.split(':', 1)[1]}" for spelling in (name, *others)))


def _axis(owner: str, value: Any) -> int | tuple[int, ...]:
    if isinstance(value, list | tuple):
        return tuple(check_int(owner, axis) for axis in value)
    return check_int(owner, value)


class _Jax(Translated):
    framework = "jax"
    reference = REFERENCE


class _AxesVariance(_Jax):
    """Variance scaling with JAX's axis roles; subclasses hold the fields in JAX's order."""

    in_axis: int | tuple[int, ...]
    out_axis: int | tuple[int, ...]
    batch_axis: int | tuple[int, ...]

    elementwise = True
    supports_complex = True

    def _setting(self) -> tuple[float, str, str]:
        raise NotImplementedError

    def __post_init__(self) -> None:
        for role in ("in_axis", "out_axis", "batch_axis"):
            object.__setattr__(self, role, _axis(f"{self.name}: {role}", getattr(self, role)))

    @property
    def axes(self) -> Axes:
        return Axes(self.in_axis, self.out_axis, self.batch_axis)

    def jax_fans(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Fans:
        """The fans JAX computes: from the scheme's axes (jax layout), the given Axes, or Flax's layout."""
        declared = self.axes != Axes()
        if is_own_axes(layout):
            if declared:
                raise ValueError(f"{self.name}: the axes are given twice, by the scheme ({self.axes}) and by "
                                 f"layout={layout}; give them once")
            return fans(shape, layout, groups)
        if layout in ("jax", "keras"):
            if groups != 1:
                raise ValueError(f"{self.name}: JAX has no groups; a jax-layout kernel is (*k, in/g, out) as stored")
            return self.axes.fans(shape)
        if declared:
            raise ValueError(f"{self.name}: in_axis/out_axis/batch_axis describe a tensor in JAX's layout; "
                             f"declare layout='jax' (or layout=Axes(...)) instead of {layout!r}")
        return flax_fans(shape, layout, groups)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        scale, mode, distribution = self._setting()
        return Translation(VarianceScaling(scale, mode, distribution), self.jax_fans(shape, layout, groups))

    def fill_complex_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        """JAX's circular laws: normal parts independent, uniform on a disk, modulus-truncated normal."""
        scale, mode, distribution = self._setting()
        std = variance_scaling_std(self.jax_fans(tuple(out.shape), layout, groups), scale, mode)
        if distribution == "normal":
            rng.normal_(torch.view_as_real(out), 0.0, std / math.sqrt(2.0), generator)
            return
        parts = torch.view_as_real(out)
        rng.uniform_(parts, 0.0, 1.0, generator)
        radial, angle = parts[..., 0].clone(), parts[..., 1] * (2.0 * math.pi)
        if distribution == "uniform":
            radius = torch.sqrt(2.0 * radial) * std
        else:
            cut = (1.0 - math.exp(-4.0)) * radial  # |z|^2 of a unit complex normal is Exp(1), cut at 4
            radius = torch.sqrt(-torch.log1p(-cut)) * (std / JAX_COMPLEX_TRUNCATED_STD)
        parts[..., 0], parts[..., 1] = radius * torch.cos(angle), radius * torch.sin(angle)


@register
@dataclass(frozen=True, repr=False)
class JaxVarianceScaling(_AxesVariance):
    """JAX variance_scaling: std sqrt(scale / n); "normal" untruncated, "truncated_normal" std after the cut."""

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"  # type: ignore[misc]
    in_axis: int | tuple[int, ...] = -2
    out_axis: int | tuple[int, ...] = -1
    batch_axis: int | tuple[int, ...] = ()

    name = "jax:variance_scaling"
    aliases = _aliases("jax:variance_scaling")
    formula = "std = sqrt(scale / n), n = fan_in | fan_out | fan_avg | fan_geo_avg of JAX's axes"

    def __post_init__(self) -> None:
        super().__post_init__()
        number(self, "scale", minimum=0.0)
        check_choice(f"{self.name}: mode", self.mode, MODES)
        check_choice(f"{self.name}: distribution", self.distribution, DISTRIBUTIONS)

    def _setting(self) -> tuple[float, str, str]:
        return self.scale, self.mode, self.distribution


@dataclass(frozen=True, repr=False)
class _JaxFixedVariance(_AxesVariance):
    in_axis: int | tuple[int, ...] = -2
    out_axis: int | tuple[int, ...] = -1
    batch_axis: int | tuple[int, ...] = ()

    setting: ClassVar[tuple[float, str, str]] = (1.0, "fan_in", "truncated_normal")

    def _setting(self) -> tuple[float, str, str]:
        return self.setting


@register
@dataclass(frozen=True, repr=False)
class JaxGlorotNormal(_JaxFixedVariance):
    """JAX glorot_normal: *truncated* normal, std sqrt(2 / (fan_in + fan_out)) after truncation."""

    name = "jax:glorot_normal"
    aliases = _aliases("jax:glorot_normal", "jax:xavier_normal")
    setting = (1.0, "fan_avg", "truncated_normal")
    formula = "truncated at 2 sigma, std sqrt(2 / (fan_in + fan_out)) after truncation"


@register
@dataclass(frozen=True, repr=False)
class JaxGlorotUniform(_JaxFixedVariance):
    """JAX glorot_uniform: U[+-sqrt(6 / (fan_in + fan_out))]."""

    name = "jax:glorot_uniform"
    aliases = _aliases("jax:glorot_uniform", "jax:xavier_uniform")
    setting = (1.0, "fan_avg", "uniform")
    formula = "U[+-sqrt(6 / (fan_in + fan_out))]"


@register
@dataclass(frozen=True, repr=False)
class JaxHeNormal(_JaxFixedVariance):
    """JAX he_normal: *truncated* normal, std sqrt(2 / fan_in) after truncation."""

    name = "jax:he_normal"
    aliases = _aliases("jax:he_normal", "jax:kaiming_normal")
    setting = (2.0, "fan_in", "truncated_normal")
    formula = "truncated at 2 sigma, std sqrt(2 / fan_in) after truncation"


@register
@dataclass(frozen=True, repr=False)
class JaxHeUniform(_JaxFixedVariance):
    """JAX he_uniform: U[+-sqrt(6 / fan_in)]."""

    name = "jax:he_uniform"
    aliases = _aliases("jax:he_uniform", "jax:kaiming_uniform")
    setting = (2.0, "fan_in", "uniform")
    formula = "U[+-sqrt(6 / fan_in)]"


@register
@dataclass(frozen=True, repr=False)
class JaxLecunNormal(_JaxFixedVariance):
    """JAX lecun_normal (Flax's default kernel init): *truncated* normal, std sqrt(1 / fan_in) after truncation."""

    name = "jax:lecun_normal"
    aliases = _aliases("jax:lecun_normal")
    setting = (1.0, "fan_in", "truncated_normal")
    formula = "truncated at 2 sigma, std sqrt(1 / fan_in) after truncation"


@register
@dataclass(frozen=True, repr=False)
class JaxLecunUniform(_JaxFixedVariance):
    """JAX lecun_uniform: U[+-sqrt(3 / fan_in)]."""

    name = "jax:lecun_uniform"
    aliases = _aliases("jax:lecun_uniform")
    setting = (1.0, "fan_in", "uniform")
    formula = "U[+-sqrt(3 / fan_in)]"


@register
@dataclass(frozen=True, repr=False)
class JaxNormal(_Jax):
    """JAX normal: N(0, stddev^2), stddev 0.01 by default (torch's normal_ has std 1)."""

    stddev: float = 1e-2

    name = "jax:normal"
    distribution = "normal"
    aliases = _aliases("jax:normal")
    uses_fans = False
    elementwise = True
    formula = "N(0, stddev^2)"

    def __post_init__(self) -> None:
        number(self, "stddev", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Normal(0.0, self.stddev), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class JaxUniform(_Jax):
    """JAX uniform: U[0, scale), scale 0.01 by default -- not centred."""

    scale: float = 1e-2

    name = "jax:uniform"
    distribution = "uniform"
    aliases = _aliases("jax:uniform")
    uses_fans = False
    elementwise = True
    formula = "U[0, scale)"

    def __post_init__(self) -> None:
        number(self, "scale", minimum=0.0, strict=True)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Uniform(0.0, self.scale), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class JaxTruncatedNormal(_Jax):
    """JAX truncated_normal: stddev * N(0, 1) cut to [lower, upper] (bounds in units of stddev, no correction)."""

    stddev: float = 1e-2
    lower: float = -2.0
    upper: float = 2.0

    name = "jax:truncated_normal"
    distribution = "truncated_normal"
    aliases = _aliases("jax:truncated_normal")
    uses_fans = False
    elementwise = True
    formula = "stddev * z, z ~ N(0, 1) restricted to [lower, upper]"

    def __post_init__(self) -> None:
        number(self, "stddev", minimum=0.0)
        number(self, "lower")
        number(self, "upper")
        TruncatedNormal(0.0, self.stddev, self.lower, self.upper)  # lower < upper

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(TruncatedNormal(0.0, self.stddev, self.lower, self.upper), layout, groups)


def _check_column_axis(owner: str, column_axis: Any) -> None:
    if check_int(f"{owner}: column_axis", column_axis) != -1:
        raise ValueError(f"{owner}: column_axis={column_axis} is not supported; initlab's layouts say which axis "
                         "holds the output units (column_axis=-1 in the jax layout)")


@register
@dataclass(frozen=True, repr=False)
class JaxOrthogonal(_Jax):
    """JAX orthogonal: scale times a Haar orthogonal matrix, columns along ``column_axis`` (-1: outputs)."""

    scale: float = 1.0
    column_axis: int = -1

    name = "jax:orthogonal"
    distribution = "orthogonal"
    aliases = _aliases("jax:orthogonal")
    formula = "scale * Q, Q Haar orthogonal over (prod(other axes), shape[column_axis])"

    def __post_init__(self) -> None:
        number(self, "scale", minimum=0.0)
        _check_column_axis(self.name, self.column_axis)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Orthogonal(self.scale), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class JaxDeltaOrthogonal(_Jax):
    """JAX delta_orthogonal: scale * Q at tap (k - 1) // 2 of 3-D to 5-D kernels with out >= in."""

    scale: float = 1.0
    column_axis: int = -1

    name = "jax:delta_orthogonal"
    distribution = "orthogonal"
    aliases = _aliases("jax:delta_orthogonal")
    formula = "w[centre] = scale * Q, centre (k - 1) // 2, zeros elsewhere; out >= in"

    def __post_init__(self) -> None:
        number(self, "scale", minimum=0.0)
        _check_column_axis(self.name, self.column_axis)

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        super().check_shape(shape, layout, groups)
        blocks = unit_blocks(self.name, shape, layout, groups)
        if not 3 <= len(shape) <= 5 or blocks.out_per_group < blocks.in_per_group:
            raise ValueError(f"{self.name}: JAX needs a 3-D, 4-D or 5-D kernel with out >= in, got shape "
                             f"{shape} ({blocks.in_per_group} in, {blocks.out_per_group} out per group)")

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(DeltaOrthogonal(self.scale, center="jax"), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class JaxZeros(FixedConstant, _Jax):
    """JAX zeros (Flax zeros_init)."""

    name = "jax:zeros"
    aliases = (*_aliases("jax:zeros"), "flax:zeros_init")
    formula = "w = 0"
    fixed = Zeros()


@register
@dataclass(frozen=True, repr=False)
class JaxOnes(FixedConstant, _Jax):
    """JAX ones (Flax ones_init)."""

    name = "jax:ones"
    aliases = (*_aliases("jax:ones"), "flax:ones_init")
    formula = "w = 1"
    fixed = Ones()


@register
@dataclass(frozen=True, repr=False)
class JaxConstant(Filled, _Jax):
    """JAX constant(value)."""

    value: float = 0.0

    name = "jax:constant"
    aliases = _aliases("jax:constant")
    formula = "w = value"
