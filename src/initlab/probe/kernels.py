"""Compiled CPU passes of the probe (numba): moments, bounds and histogram counts of a tensor.

Each function reads a contiguous 1-D NumPy view of a CPU tensor once.
:mod:`initlab.probe.collector` and :mod:`initlab.probe.histogram` call them
when numba is installed (extra ``fast``): the first tensor of
``histogram.COMPILED_MIN`` values or more loads them, and from then on
contiguous CPU tensors of any size use them (see
:func:`initlab.probe.histogram.compiled_kernels`); otherwise the same
statistics come from PyTorch operations. Sums are float64 in any order (the
PyTorch path sums in another one), so the two agree to float64 rounding.
Counts are exact here; the PyTorch path bins by ``log10|x|``, which can move
a value within one rounding of an edge into the next bin.

Importing this module needs numba; :mod:`initlab.probe.histogram` imports it
on first use only.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

# the entry of a top-bits table whose range of patterns holds a bin edge (histogram.bin_table)
NO_SLOT = np.uint64(0xFFFF)

__all__ = ["sums", "change_and_sums", "finite_sums", "bounds", "count_bins", "count_bins_parallel", "threads"]


@njit(cache=True, fastmath={"reassoc"})
def sums(values: np.ndarray) -> tuple[float, float]:
    """(sum, sum of squares) in float64 of every value; NaN or inf makes them non-finite."""
    total = 0.0
    squares = 0.0
    for i in range(values.shape[0]):
        value = np.float64(values[i])
        total += value
        squares += value * value
    return total, squares


@njit(cache=True, fastmath={"reassoc"})
def change_and_sums(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """(sum of (before - after)**2, sum of after, sum of after**2) in float64, in one pass over both.

    The difference is taken in the arrays' dtype; NaN or inf in either makes
    the results non-finite.
    """
    change_squares = 0.0
    total = 0.0
    squares = 0.0
    for i in range(after.shape[0]):
        change = np.float64(before[i] - after[i])
        value = np.float64(after[i])
        change_squares += change * change
        total += value
        squares += value * value
    return change_squares, total, squares


@njit(cache=True)
def finite_sums(values: np.ndarray) -> tuple[float, float, float]:
    """(finite count, sum, sum of squares) in float64, NaN and +-inf left out."""
    count = 0.0
    total = 0.0
    squares = 0.0
    for i in range(values.shape[0]):
        value = np.float64(values[i])
        if np.isfinite(value):
            count += 1.0
            total += value
            squares += value * value
    return count, total, squares


@njit(cache=True)
def bounds(values: np.ndarray) -> tuple[float, float]:
    """(min, max) with +-inf kept and NaN read as 0, as the PyTorch path reads them."""
    low = np.inf
    high = -np.inf
    for i in range(values.shape[0]):
        value = np.float64(values[i])
        value = value if value == value else 0.0
        low = min(low, value)
        high = max(high, value)
    return low, high


@njit(inline="always", error_model="numpy")
def _count_range(bits, first, stop, top, top_shift, magnitude_mask, shift, base, below_edge, width, local):
    """Add 1 to a slot of ``local`` for each of bits[first:stop] (slot k, or width + k when negative).

    ``local`` holds two copies of the slots, used by alternate values, so
    that runs of equal values (the zeros of a ReLU) do not wait on one
    counter. A value's top 16 bits index ``top``, which holds its slot
    unless an edge lies inside that range of patterns (``NO_SLOT``); only
    those values are compared with the edge of their cell.
    """
    # unsigned indices: numba adds no wrap-around test for negative ones
    mask = np.uint64(magnitude_mask)
    cell_shift = np.uint64(shift)
    top_cut = np.uint64(top_shift)
    zero = np.uint64(0)
    one = np.uint64(1)
    offset = np.uint64(width)
    copy = np.uint64(local.shape[0] // 2)
    for i in range(first, stop):
        word = bits[i]
        pattern = np.uint64(word) if bits.itemsize == 8 else np.uint64(np.uint32(word))
        slot = np.uint64(top[pattern >> top_cut])
        if slot == NO_SLOT:
            magnitude = pattern & mask
            cell = magnitude >> cell_shift
            slot = np.uint64(base[cell]) + (one if np.int64(magnitude) > below_edge[cell] else zero)
            slot += offset if word < 0 else zero
        local[slot + (copy if i & 1 else zero)] += 1


@njit(inline="always")
def _fold_into(local, fold, counts):
    """Add both copies of each slot of ``local`` into its bin of ``counts``."""
    slots = fold.shape[0]
    for slot in range(slots):
        counts[fold[slot]] += local[slot] + local[slots + slot]


@njit(cache=True, error_model="numpy")
def count_bins(
    bits: np.ndarray,
    top: np.ndarray,
    top_shift: int,
    magnitude_mask: int,
    shift: int,
    base: np.ndarray,
    below_edge: np.ndarray,
    fold: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Add the bin counts of the values whose bit patterns are ``bits`` into ``counts`` (float64).

    ``top`` maps the top 16 bits of a pattern to its slot where that range
    of patterns holds no edge. Otherwise the magnitude bits pick a cell
    (``magnitude >> shift``); the cell's ``base`` is the number of bin edges
    at or below its first pattern and ``below_edge`` the last pattern below
    the one edge inside it (the largest int64 if none): k = base +
    (magnitude > below_edge). ``fold`` maps (k, sign) to the signed bin
    (see :func:`initlab.probe.histogram.bin_table`).
    """
    local = np.zeros(2 * fold.shape[0], dtype=np.int64)
    _count_range(bits, 0, bits.shape[0], top, top_shift, magnitude_mask, shift, base, below_edge, fold.shape[0] // 2, local)
    _fold_into(local, fold, counts)


def threads() -> int:
    """The number of threads numba runs parallel loops on (``initlab.rng.set_threads`` sets it)."""
    return int(numba.get_num_threads())


@njit(cache=True, parallel=True, error_model="numpy")
def count_bins_parallel(
    bits: np.ndarray,
    top: np.ndarray,
    top_shift: int,
    magnitude_mask: int,
    shift: int,
    base: np.ndarray,
    below_edge: np.ndarray,
    fold: np.ndarray,
    counts: np.ndarray,
    parts: int,
) -> None:
    """:func:`count_bins` in ``parts`` contiguous parts, each with its own local count, on numba's threads.

    Counts are integers, so the result does not depend on how the values
    are split.
    """
    n = bits.shape[0]
    size = (n + parts - 1) // parts
    local = np.zeros((parts, 2 * fold.shape[0]), dtype=np.int64)
    for part in prange(parts):
        _count_range(
            bits, part * size, min(n, (part + 1) * size), top, top_shift, magnitude_mask, shift, base, below_edge,
            fold.shape[0] // 2, local[part],
        )
    for part in range(parts):
        _fold_into(local[part], fold, counts)
