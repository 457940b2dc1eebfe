"""Fans from a declared layout.

A tensor's shape alone does not say which axis is the input: a Linear weight
is (out, in), a Keras kernel (in, out), a transposed convolution (in, out/g,
*k). initlab never guesses from rank; the caller declares the layout:

==================  =========================  =====================================
layout              shape                      fans
==================  =========================  =====================================
``linear``          (out, in)                  in, out
``linear_t``        (in, out)                  in, out  (transposed linear: HF ``Conv1D``)
``conv``            (out, in/g, *k)            in/g * k, out/g * k
``conv_transpose``  (in, out/g, *k)            in/g * k, out/g * k
``embedding``       (num_embeddings, dim)      num_embeddings, dim (one-hot rows)
``keras``/``jax``   (*k, in, out)              in * k, out * k
``vector``          () or (n,)                 n, n  (biases, norm scales; () -> 1)
``Axes(...)``       any                        in * r, out * r (see :class:`Axes`)
==================  =========================  =====================================

where k is the product of the kernel sizes (the receptive field) and g the
number of groups. Each input of a grouped convolution reaches out/g output
channels, so fan_out is out/g * k; ``torch.nn.init`` uses out * k (and for
transposed convolutions takes dim 1 as the input axis), which overstates
fan_out by g and swaps the fans of ConvTranspose weights.

A :class:`Fans` object can stand in for a layout wherever one is accepted,
for tensors whose fans come from elsewhere (a bias takes its weight's fans).
So can an :class:`Axes` object (or its string form ``"axes(in_axis=0, ...)"``),
which declares the roles of the axes the way ``jax.nn.initializers`` does.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from initlab.rng.checks import check_int
from initlab.schemes.strings import format_value, parse_call

__all__ = ["Fans", "fans", "LAYOUTS", "torch_fans", "LayoutLike", "shape_of", "Axes"]

LAYOUTS = ("linear", "linear_t", "conv", "conv_transpose", "embedding", "keras", "jax", "vector")


@dataclass(frozen=True)
class Fans:
    """Number of inputs and outputs per unit, and the kernel's receptive field."""

    fan_in: int
    fan_out: int
    receptive: int = 1

    def __post_init__(self) -> None:
        for name in ("fan_in", "fan_out", "receptive"):
            check_int(f"Fans: {name}", getattr(self, name), minimum=0)

    @property
    def fan_avg(self) -> float:
        return (self.fan_in + self.fan_out) / 2.0

    def of(self, mode: str) -> float:
        """The fan named by ``mode``: ``fan_in``, ``fan_out`` or ``fan_avg``."""
        if mode == "fan_in":
            return float(self.fan_in)
        if mode == "fan_out":
            return float(self.fan_out)
        if mode == "fan_avg":
            return self.fan_avg
        if mode == "fan_geo_avg":
            return math.sqrt(self.fan_in * self.fan_out)
        raise ValueError(f"mode must be 'fan_in', 'fan_out', 'fan_avg' or 'fan_geo_avg', got {mode!r}")


def shape_of(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple of ints >= 0; a size that is not an integer (4.5, "4", True) is a TypeError."""
    if isinstance(shape, str | bytes) or not hasattr(shape, "__iter__"):
        raise TypeError(f"shape must be a sequence of ints, got {shape!r}")
    dims = []
    for size in shape:
        if isinstance(size, bool) or not hasattr(size, "__index__"):
            raise TypeError(f"shape must be a sequence of ints, got {tuple(shape)!r} (size {size!r})")
        dims.append(operator.index(size))
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative sizes, got {tuple(dims)}")
    return tuple(dims)



def _check_groups(groups: int, channels: int, what: str) -> None:
    check_int("groups", groups, minimum=1)
    if channels % groups != 0:
        raise ValueError(f"{what} ({channels}) is not divisible by groups={groups}")


def fans(shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans:
    """Fans of a tensor of ``shape`` under the declared ``layout``.

    >>> fans((64, 32, 3, 3), layout="conv")
    Fans(fan_in=288, fan_out=576, receptive=9)
    >>> fans((3, 3, 32, 64), layout="keras")
    Fans(fan_in=288, fan_out=576, receptive=9)

    Zero-size dimensions give zero fans; schemes treat zero-element tensors as
    a no-op and never divide by them.
    """
    check_int("groups", groups, minimum=1)
    if isinstance(layout, Fans):
        return layout
    dims = shape_of(shape)
    if isinstance(layout, str) and layout.lstrip().startswith("axes("):
        layout = Axes.parse(layout)
    if isinstance(layout, Axes):
        if groups != 1:
            raise ValueError(f"groups={groups} applies to the named layouts; {layout} declares its axes itself")
        return layout.fans(dims)
    rank = len(dims)
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, a Fans or an Axes object, got {layout!r}")
    if layout == "vector":
        if rank > 1:
            raise ValueError(f"layout 'vector' is for 0-D and 1-D tensors, got shape {dims}")
        n = dims[0] if rank == 1 else 1
        return Fans(n, n, 1)
    if layout in ("linear", "linear_t", "embedding"):
        if rank != 2:
            raise ValueError(
                f"layout {layout!r} expects a 2-D shape, got {rank}-D shape {dims}; "
                "use layout='vector' for biases and norm scales, 'conv' for kernels"
            )
        if layout == "linear":
            return Fans(dims[1], dims[0], 1)
        return Fans(dims[0], dims[1], 1)
    if layout in ("conv", "conv_transpose"):
        if rank < 3:
            raise ValueError(
                f"layout {layout!r} expects (channels, channels/groups, *kernel) with at least 3 dims, "
                f"got shape {dims}"
            )
        receptive = math.prod(dims[2:])
        if layout == "conv":
            out_channels, in_per_group = dims[0], dims[1]
            _check_groups(groups, out_channels, "out_channels (dim 0)")
            return Fans(in_per_group * receptive, out_channels // groups * receptive, receptive)
        in_channels, out_per_group = dims[0], dims[1]
        _check_groups(groups, in_channels, "in_channels (dim 0)")
        return Fans(in_channels // groups * receptive, out_per_group * receptive, receptive)
    # keras / jax: (*kernel, in, out)
    if rank < 2:
        raise ValueError(f"layout {layout!r} expects (*kernel, in, out), got shape {dims}")
    receptive = math.prod(dims[:-2])
    return Fans(dims[-2] * receptive, dims[-1] * receptive, receptive)


def torch_fans(shape: Sequence[int]) -> Fans:
    """Fans as ``torch.nn.init`` computes them: dim 1 is the input, dim 0 the output.

    Used by the ``torch_default`` preset to reproduce torch formula for formula
    (including its fans for grouped and transposed convolutions).
    """
    dims = shape_of(shape)
    if len(dims) < 2:
        raise ValueError(f"torch computes fans only for tensors with at least 2 dims, got shape {dims}")
    receptive = math.prod(dims[2:])
    return Fans(dims[1] * receptive, dims[0] * receptive, receptive)


AxisSpec = int | tuple[int, ...]


def _axis_spec(argument: str, value: object) -> AxisSpec:
    """An axis (int) or axes (tuple of ints), as ``jax.nn.initializers`` takes them; lists become tuples."""
    if isinstance(value, list | tuple):
        return tuple(check_int(argument, axis) for axis in value)
    return check_int(argument, value)


@dataclass(frozen=True)
class Axes:
    """A layout declared by the roles of the axes: which are inputs, outputs and batch (JAX's convention).

    ``in_axis``, ``out_axis`` and ``batch_axis`` are an axis or a tuple of
    axes (negative ones count from the end). The fans are those of
    ``jax.nn.initializers._compute_fans`` (jax-ml/jax, jax/_src/nn/initializers.py,
    commit cec06d1):

        in = prod(shape[in_axis]), out = prod(shape[out_axis]), batch = prod(shape[batch_axis])
        receptive = prod(shape) / (in * out * batch)
        fan_in = in * receptive,  fan_out = out * receptive

    The defaults (-2, -1, ()) are the ``jax``/``keras`` layout (*k, in, out).
    Axes that overlap can make these quotients fractions; such a declaration
    is a ValueError. The string form ``axes(in_axis=0, out_axis=(1, 2), batch_axis=())``
    is accepted wherever a layout is.

    >>> fans((8, 64, 128), Axes(in_axis=-2, out_axis=-1, batch_axis=0))
    Fans(fan_in=64, fan_out=128, receptive=1)
    """

    in_axis: AxisSpec = -2
    out_axis: AxisSpec = -1
    batch_axis: AxisSpec = ()

    def __post_init__(self) -> None:
        for role in ("in_axis", "out_axis", "batch_axis"):
            object.__setattr__(self, role, _axis_spec(f"Axes: {role}", getattr(self, role)))

    @classmethod
    def parse(cls, text: str) -> Axes:
        """An Axes from its string form ``axes(in_axis=..., out_axis=..., batch_axis=...)``."""
        name, args, kwargs = parse_call(text, "layout")
        if name != "axes":
            raise ValueError(f"a layout string with arguments is axes(in_axis=..., out_axis=..., batch_axis=...), got {text!r}")
        try:
            return cls(*args, **kwargs)
        except TypeError as error:
            raise ValueError(f"layout {text!r}: {error}; accepted: in_axis, out_axis, batch_axis") from None

    def __str__(self) -> str:
        return (f"axes(in_axis={format_value(self.in_axis)}, out_axis={format_value(self.out_axis)}, "
                f"batch_axis={format_value(self.batch_axis)})")

    def _size(self, role: str, dims: tuple[int, ...]) -> int:
        spec = getattr(self, role)
        axes = (spec,) if isinstance(spec, int) else spec
        for axis in axes:
            if not -len(dims) <= axis < len(dims):
                raise ValueError(f"{self}: {role} {axis} is out of range for a {len(dims)}-D shape {dims}")
        return math.prod(dims[axis] for axis in axes)

    def fans(self, shape: Sequence[int]) -> Fans:
        """The fans of a tensor of ``shape`` (see the class docstring)."""
        dims = shape_of(shape)
        if self.in_axis == -2 and len(dims) <= 1:
            raise ValueError(f"{self}: the default in_axis -2 needs at least 2 dims, got shape {dims}; "
                             "declare in_axis (or use layout='vector')")
        size_in, size_out, size_batch = (self._size(role, dims) for role in ("in_axis", "out_axis", "batch_axis"))
        total = math.prod(dims)
        if total == 0:
            return Fans(0, 0, 0)
        fan_in, in_remainder = divmod(total, size_out * size_batch)
        fan_out, out_remainder = divmod(total, size_in * size_batch)
        if in_remainder or out_remainder:
            raise ValueError(
                f"{self} on shape {dims}: the axes overlap so that the fans are fractions "
                f"({total}/{size_out * size_batch}, {total}/{size_in * size_batch}); declare each axis in one role"
            )
        # the receptive field is a whole number unless the in axes overlap the others
        return Fans(fan_in, fan_out, fan_in // size_in if size_in and fan_in % size_in == 0 else 1)


LayoutLike = str | Fans | Axes
