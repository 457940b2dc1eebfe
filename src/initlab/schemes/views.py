"""Views of a weight tensor as per-group (out, in, taps) blocks.

Structured schemes (sparse, dirac, delta-orthogonal, ZerO) place values by
unit: "output unit o of group g receives input i at kernel tap t". Each
layout stores that entry somewhere else; :func:`unit_view` returns a view of
shape (groups, out_per_group, in_per_group, taps) into the tensor itself, so
writing into the view writes the weight:

==================  =====================  ====================================
layout              shape                  view[g, o, i, t] is
==================  =====================  ====================================
``linear``          (out, in)              w[o, i]               (groups = 1)
``linear_t``        (in, out)              w[i, o]               (groups = 1)
``embedding``       (num, dim)             w[i, o]  (a row is looked up by a one-hot input)
``conv``            (out, in/g, *k)        w[g * out/g + o, i, t]
``conv_transpose``  (in, out/g, *k)        w[g * in/g + i, o, t]
``keras``/``jax``   (*k, in/g, out)        w[t, i, g * out/g + o]
==================  =====================  ====================================

A :class:`Fans` object standing in for the layout reads a 2-D tensor as
``linear`` and a larger one as ``conv``; ``Axes()`` with JAX's default axes
reads as ``jax``, other axes name no units (a ValueError here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from initlab.rng.checks import check_int
from initlab.schemes.fans import Axes, Fans, LayoutLike

__all__ = ["UnitBlocks", "unit_blocks", "unit_view", "centre_tap", "effective_layout", "CENTERS"]

_GROUPED = ("conv", "conv_transpose", "keras", "jax")


@dataclass(frozen=True)
class UnitBlocks:
    """Sizes of the per-group blocks of a weight: groups x (out, in) x taps."""

    groups: int
    out_per_group: int
    in_per_group: int
    taps: int
    kernel: tuple[int, ...]


def effective_layout(shape: Sequence[int], layout: LayoutLike) -> str:
    """The layout name to read ``shape`` with; a Fans object means linear (2-D) or conv (more)."""
    if isinstance(layout, Fans):
        return "linear" if len(shape) == 2 else "conv"
    if isinstance(layout, str) and layout.lstrip().startswith("axes("):
        layout = Axes.parse(layout)
    if isinstance(layout, Axes):
        if layout != Axes():
            raise ValueError(
                f"{layout} declares fans, not which entry joins which input and output unit; structured "
                "schemes (orthogonal, sparse, dirac, ...) need a named layout (linear, conv, jax, ...)"
            )
        return "jax"
    return layout


def unit_blocks(owner: str, shape: Sequence[int], layout: LayoutLike, groups: int = 1) -> UnitBlocks:
    """Block sizes of ``shape`` under ``layout``; ValueError when the layout has no units."""
    dims = tuple(int(d) for d in shape)
    name = effective_layout(dims, layout)
    check_int(f"{owner}: groups", groups, minimum=1)
    if name == "vector" or len(dims) < 2:
        raise ValueError(
            f"{owner}: needs a weight with at least 2 dims (a matrix or a kernel), "
            f"got shape {dims} with layout {layout!r}"
        )
    if groups != 1 and name not in _GROUPED:
        raise ValueError(
            f"{owner}: groups={groups} applies to layouts {', '.join(_GROUPED)}, got layout {name!r}"
        )
    if name in ("linear", "linear_t", "embedding"):
        if len(dims) != 2:
            raise ValueError(f"{owner}: layout {name!r} expects a 2-D shape, got {dims}")
        out, inp = (dims[0], dims[1]) if name == "linear" else (dims[1], dims[0])
        return UnitBlocks(1, out, inp, 1, ())
    if name in ("conv", "conv_transpose"):
        if len(dims) < 3:
            raise ValueError(f"{owner}: layout {name!r} expects (channels, channels/groups, *kernel), got {dims}")
        kernel = dims[2:]
        if dims[0] % groups:
            raise ValueError(f"{owner}: dim 0 ({dims[0]}) is not divisible by groups={groups}")
        if name == "conv":
            return UnitBlocks(groups, dims[0] // groups, dims[1], math.prod(kernel), kernel)
        return UnitBlocks(groups, dims[1], dims[0] // groups, math.prod(kernel), kernel)
    kernel = dims[:-2]
    if dims[-1] % groups:
        raise ValueError(f"{owner}: out ({dims[-1]}) is not divisible by groups={groups}")
    return UnitBlocks(groups, dims[-1] // groups, dims[-2], math.prod(kernel), kernel)


def unit_view(out: torch.Tensor, layout: LayoutLike, blocks: UnitBlocks) -> torch.Tensor:
    """A view of the contiguous ``out`` with shape (groups, out/g, in/g, taps); see the module table."""
    name = effective_layout(tuple(out.shape), layout)
    g, o, i, t = blocks.groups, blocks.out_per_group, blocks.in_per_group, blocks.taps
    if name == "linear":
        return out.view(1, o, i, 1)
    if name in ("embedding", "linear_t"):
        return out.t().unsqueeze(0).unsqueeze(-1)
    if name == "conv":
        return out.view(g, o, i, t)
    if name == "conv_transpose":
        return out.view(g, i, o, t).permute(0, 2, 1, 3)
    return out.view(t, i, g, o).permute(2, 3, 1, 0)


# where the centre of an even kernel is: torch's dirac_ takes k // 2, JAX's delta_orthogonal (k - 1) // 2
CENTERS = ("torch", "jax")


def centre_tap(kernel: tuple[int, ...], center: str = "torch") -> int:
    """Flat index of the kernel's centre: k // 2 along each axis (``"torch"``, as torch's dirac_),
    or (k - 1) // 2 (``"jax"``, as jax.nn.initializers.delta_orthogonal); the same for odd k."""
    index = 0
    for size in kernel:
        index = index * size + (size // 2 if center == "torch" else (size - 1) // 2)
    return index
