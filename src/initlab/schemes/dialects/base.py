"""A framework's initializer as the initlab scheme it amounts to on each layer.

A dialect scheme (``keras:he_normal``, ``torch:kaiming_normal_``, ...) keeps
the framework's own parameters and defaults as its fields, so its string form
reads like the framework's call. For a tensor of a declared layout it
*translates* itself into an initlab scheme on the fans (or layout) the
framework would use (:mod:`initlab.schemes.frameworks`), and that scheme
fills, samples and describes the tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from initlab.rng import GeneratorLike
from initlab.rng.checks import check_number
from initlab.schemes.fans import Axes, Fans, LayoutLike
from initlab.schemes.initializer import Initializer, Moments

__all__ = ["Translation", "Translated", "Fixed", "Filled", "positive_fans", "is_own_axes", "number"]


@dataclass(frozen=True)
class Translation:
    """The initlab scheme a dialect scheme amounts to for one tensor, and how to apply it."""

    scheme: Initializer
    layout: LayoutLike
    groups: int = 1


def positive_fans(fans: Fans) -> Fans:
    """Fans with each count at least 1, as Keras divides by ``max(1, fan)``."""
    return Fans(max(1, fans.fan_in), max(1, fans.fan_out), fans.receptive)


def is_own_axes(layout: LayoutLike) -> bool:
    """Whether ``layout`` is an :class:`Axes` (or its string form)."""
    return isinstance(layout, Axes) or (isinstance(layout, str) and layout.lstrip().startswith("axes("))


class Translated(Initializer):
    """Base of the dialect schemes: everything goes through :meth:`translate`."""

    framework: ClassVar[str] = ""

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        """The initlab scheme, layout and groups that draw what the framework draws for this tensor."""
        raise NotImplementedError

    def _translated(self, shape: Sequence[int], layout: LayoutLike, groups: int) -> Translation:
        return self.translate(tuple(int(d) for d in shape), layout, groups)

    def fans_of(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans | None:
        found = self._translated(shape, layout, groups)
        return found.scheme.fans_of(shape, found.layout, found.groups)

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        found = self._translated(shape, layout, groups)
        found.scheme.check_shape(shape, found.layout, found.groups)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        found = self._translated(shape, layout, groups)
        return found.scheme.moments(shape, found.layout, found.groups)

    def distribution_for(self, shape: Sequence[int], layout: LayoutLike = "linear") -> str:
        found = self._translated(shape, layout, 1)
        return found.scheme.distribution_for(shape, found.layout)

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        found = self._translated(out.shape, layout, groups)
        inner_fans = found.scheme.fans_of(out.shape, found.layout, found.groups)
        found.scheme.fill_contiguous_(out, found.layout, found.groups, inner_fans, generator)

    def fill_complex_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        found = self._translated(out.shape, layout, groups)
        inner_fans = found.scheme.fans_of(out.shape, found.layout, found.groups)
        found.scheme.fill_complex_(out, found.layout, found.groups, inner_fans, generator)


class Fixed(Translated):
    """A dialect scheme without parameters that is one initlab scheme on every layout (zeros, ones, eye)."""

    fixed: ClassVar[Initializer]

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(self.fixed, layout, groups)


class FixedConstant(Fixed):
    """A :class:`Fixed` scheme that is one constant (zeros, ones): elementwise, no fans."""

    distribution = "constant"
    uses_fans = False
    elementwise = True


class Filled(Translated):
    """A dialect's constant: every entry the value of the field ``value_field`` (Keras' and JAX's
    ``value``, torch's and Lasagne's ``val``)."""

    value_field: ClassVar[str] = "value"
    distribution = "constant"
    uses_fans = False
    elementwise = True

    def __post_init__(self) -> None:
        number(self, self.value_field)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        from initlab.schemes.basic import Constant

        return Translation(Constant(getattr(self, self.value_field)), layout, groups)


def number(owner: Initializer, field: str, *, minimum: float | None = None, strict: bool = False) -> None:
    """Check a numeric field of a frozen dialect scheme in place (stored as a float)."""
    value = check_number(f"{owner.name}: {field}", getattr(owner, field), minimum=minimum, strict=strict)
    object.__setattr__(owner, field, value)
