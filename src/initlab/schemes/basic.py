"""Schemes that ignore fans: constants, normal, uniform, small random, truncated normal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from initlab import rng
from initlab.rng import GeneratorLike
from initlab.rng.checks import check_number
from initlab.schemes.fans import Fans, LayoutLike
from initlab.schemes.initializer import Initializer, Moments
from initlab.schemes.registry import register
from initlab.schemes.variance import truncated_mean_shift, truncated_std_factor

__all__ = ["Constant", "Zeros", "Ones", "Normal", "Uniform", "SmallRandom", "TruncatedNormal"]


class _FanFree(Initializer):
    uses_fans = False


class _ConstantValue(_FanFree):
    distribution = "constant"
    formula = "w = value"
    reference = "symmetry: identical units get identical gradients (Rumelhart, Hinton & Williams 1986)"

    @property
    def constant(self) -> float:
        """The value every element gets."""
        return float(getattr(self, "value"))  # noqa: B009  (a field in Constant, a class constant otherwise)

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        out.fill_(self.constant)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        return Moments(mean=self.constant, std=0.0, bounds=(self.constant, self.constant))


@register
@dataclass(frozen=True, repr=False)
class Constant(_ConstantValue):
    """Every element equal to ``value``: keeps the hidden units of a layer identical forever."""

    value: float = 0.0

    name = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_number(f"{self.name}: value", self.value))


@register
@dataclass(frozen=True, repr=False)
class Zeros(_ConstantValue):
    """All zeros (biases; the output layer of a network whose hidden weights are random)."""

    value: ClassVar[float] = 0.0
    name = "zeros"
    formula = "w = 0"


@register
@dataclass(frozen=True, repr=False)
class Ones(_ConstantValue):
    """All ones (norm scales)."""

    value: ClassVar[float] = 1.0
    name = "ones"
    formula = "w = 1"


@register
@dataclass(frozen=True, repr=False)
class Normal(_FanFree):
    """N(mean, std^2), independent of the layer's size."""

    mean: float = 0.0
    std: float = 1.0

    name = "normal"
    elementwise = True
    distribution = "normal"
    formula = "w ~ N(mean, std^2)"
    reference = "Lasagne lasagne.init.Normal; torch.nn.init.normal_"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", check_number(f"{self.name}: mean", self.mean))
        object.__setattr__(self, "std", check_number(f"{self.name}: std", self.std, minimum=0.0))

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        rng.normal_(out, self.mean, self.std, generator)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        return Moments(mean=self.mean, std=self.std)


@register
@dataclass(frozen=True, repr=False)
class Uniform(_FanFree):
    """U[a, b), independent of the layer's size."""

    a: float = 0.0
    b: float = 1.0

    name = "uniform"
    elementwise = True
    distribution = "uniform"
    formula = "w ~ U[a, b)"
    reference = "Lasagne lasagne.init.Uniform; torch.nn.init.uniform_"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", check_number(f"{self.name}: a", self.a))
        object.__setattr__(self, "b", check_number(f"{self.name}: b", self.b))
        if not self.a < self.b:
            raise ValueError(f"{self.name}: needs a < b, got a={self.a}, b={self.b}")

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        rng.uniform_(out, self.a, self.b, generator)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        return Moments(
            mean=(self.a + self.b) / 2, std=(self.b - self.a) / math.sqrt(12.0), bounds=(self.a, self.b)
        )


@register
@dataclass(frozen=True, repr=False)
class SmallRandom(_FanFree):
    """randn * scale: the classic "small random numbers" (0.01), fine for shallow nets, vanishes in deep ones."""

    scale: float = 0.01

    name = "small_random"
    elementwise = True
    distribution = "normal"
    formula = "w = scale * N(0, 1)"
    reference = "Stanford CS231n notes, Weight Initialization: W = 0.01 * np.random.randn(D, H)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_number(f"{self.name}: scale", self.scale, minimum=0.0))

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        rng.normal_(out, 0.0, self.scale, generator)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        return Moments(mean=0.0, std=self.scale)


@register
@dataclass(frozen=True, repr=False)
class TruncatedNormal(_FanFree):
    """N(mean, std^2) cut to [mean + a*std, mean + b*std]; bounds in units of std.

    With ``std_after_truncation=False`` (default) ``std`` is the std of the
    normal *before* truncation, as in ``torch.nn.init.trunc_normal_`` -- whose
    bounds ``a``, ``b`` are absolute values, so ``trunc_normal_(std=0.02)``
    with its default (-2, 2) truncates almost nothing. With ``True`` the
    pre-truncation std is raised so that the values' std is ``std``.
    """

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0
    std_after_truncation: bool = False

    name = "truncated_normal"
    elementwise = True
    distribution = "truncated_normal"
    formula = "w ~ N(mean, sigma^2) restricted to [mean + a sigma, mean + b sigma]"
    reference = "Keras TruncatedNormal; JAX truncated_normal"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", check_number(f"{self.name}: mean", self.mean))
        object.__setattr__(self, "std", check_number(f"{self.name}: std", self.std, minimum=0.0))
        object.__setattr__(self, "a", check_number(f"{self.name}: a", self.a))
        object.__setattr__(self, "b", check_number(f"{self.name}: b", self.b))
        if not self.a < self.b:
            raise ValueError(f"{self.name}: bounds need a < b (in units of std), got a={self.a}, b={self.b}")
        if not isinstance(self.std_after_truncation, bool):
            raise TypeError(f"{self.name}: std_after_truncation must be True or False, got {self.std_after_truncation!r}")

    @property
    def sigma(self) -> float:
        """The std of the normal before truncation."""
        if self.std_after_truncation:
            return self.std / truncated_std_factor(self.a, self.b)
        return self.std

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        rng.truncated_normal_(out, self.mean, self.sigma, self.a, self.b, generator)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        sigma = self.sigma
        return Moments(
            mean=self.mean + sigma * truncated_mean_shift(self.a, self.b),
            std=sigma * truncated_std_factor(self.a, self.b),
            bounds=(self.mean + self.a * sigma, self.mean + self.b * sigma),
        )
