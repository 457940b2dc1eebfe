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
==================  =========================  =====================================

where k is the product of the kernel sizes (the receptive field) and g the
number of groups. Each input of a grouped convolution reaches out/g output
channels, so fan_out is out/g * k; ``torch.nn.init`` uses out * k (and for
transposed convolutions takes dim 1 as the input axis), which overstates
fan_out by g and swaps the fans of ConvTranspose weights.

A :class:`Fans` object can stand in for a layout wherever one is accepted,
for tensors whose fans come from elsewhere (a bias takes its weight's fans).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from initlab.rng.checks import check_int

__all__ = ["Fans", "fans", "LAYOUTS", "torch_fans", "LayoutLike", "shape_of"]

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
        raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")


LayoutLike = str | Fans


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
    rank = len(dims)
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} or a Fans object, got {layout!r}")
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
