"""Fixed, symmetric, log-spaced histogram bins that keep the sign of the values.

Activations of a badly initialized network span many decades (1e-30 after a
vanishing chain, 1e+30 before an overflow), so linear bins fitted to one
layer say nothing about the next. The bins here are the same for every layer
and every step:

* a zero bin for |x| < 10**low (exact zeros and underflow);
* ``per_decade`` bins per decade for 10**low <= |x| < 10**high, mirrored for
  negative values, the outermost bins also holding everything beyond
  10**high (and +-inf);
* one extra slot, after the last bin, that counts non-finite values (NaN
  and +-inf).

With the defaults (low=-8, high=8, per_decade=4) there are 64 bins per sign,
129 value bins and the non-finite slot. On a device, counting is a handful of
elementwise ops and one ``index_add_`` into a fixed-size tensor on the values'
device: no synchronisation with the host and no memory that grows with the
data; the bin comes from ``log10|x|`` in the values' dtype, which can move a
value within about one float32 rounding of an edge into the next bin. On the
CPU with numba installed, tensors of ``COMPILED_MIN`` values or more are
binned in one compiled pass by the edges themselves (see :func:`bin_table`).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

__all__ = ["HistogramBins", "DEFAULT_BINS", "BinTable", "bin_table", "compiled_kernels"]

CPU_CHUNK = 1 << 18  # values binned per pass on the CPU: 1 MiB of float32 scratch, cache-sized
# from this many values a CPU tensor loads the compiled kernels (numba's import and cache read take
# about half a second, which a small model would never win back); once they are loaded, CPU tensors
# of any size go through them: a kernel call takes 2-5 us where the PyTorch path takes 15-90 us
COMPILED_MIN = 1 << 14
# from this many values a CPU histogram is counted on all of numba's threads
PARALLEL_MIN = 1 << 16
_scratch = threading.local()


@functools.lru_cache(maxsize=1)
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def compiled_kernels(values: torch.Tensor) -> ModuleType | None:
    """:mod:`initlab.probe.kernels` for a contiguous float32/float64 CPU tensor, or None.

    None where numba is not installed, or for any other tensor. The kernels
    are imported (and compiled, or read from numba's cache) by the first
    tensor of ``COMPILED_MIN`` values or more; smaller ones take them only
    once they are loaded.
    """
    if (
        values.numel() == 0
        or (values.numel() < COMPILED_MIN and _kernels_module.cache_info().currsize == 0)
        or type(values) not in _PLAIN_TENSORS  # a DTensor or another subclass has no NumPy view of its data
        or values.is_cuda
        or values.dtype not in _COMPILED_DTYPES
        or values.device.type != "cpu"
        or not values.is_contiguous()
    ):
        return None
    return _kernels_module()


_COMPILED_DTYPES = (torch.float32, torch.float64)
_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


@functools.cache
def _parallel_lock() -> threading.Lock:
    """The lock every parallel numba kernel of initlab runs under (:data:`initlab.rng.kernels.PARALLEL_LOCK`)."""
    from initlab.rng.kernels import PARALLEL_LOCK

    return PARALLEL_LOCK


@functools.lru_cache(maxsize=1)
def _kernels_module() -> ModuleType | None:
    """:mod:`initlab.probe.kernels`, imported once (None without numba); every hook asks, so the answer is kept."""
    if not _numba_installed():
        return None
    from initlab.probe import kernels

    return kernels


def cpu_scratch(dtype: torch.dtype, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This thread's (values-dtype, int32) scratch buffers of at least ``size`` entries."""
    buffers: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = _scratch.__dict__.setdefault("buffers", {})
    found = buffers.get(dtype)
    if found is None or found[0].numel() < size:
        found = (torch.empty(size, dtype=dtype), torch.empty(size, dtype=torch.int32))
        buffers[dtype] = found
    return found


@dataclass(frozen=True)
class HistogramBins:
    """Signed log-spaced bins: ``per_decade`` bins per decade between 10**low and 10**high."""

    low: int = -8
    high: int = 8
    per_decade: int = 4

    def __post_init__(self) -> None:
        for name in ("low", "high", "per_decade"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"HistogramBins: {name} must be an int, got {value!r}")
        if self.high <= self.low:
            raise ValueError(
                f"HistogramBins: needs low < high, got low={self.low}, high={self.high}"
            )
        if self.per_decade < 1:
            raise ValueError(f"HistogramBins: per_decade must be >= 1, got {self.per_decade}")

    @property
    def per_sign(self) -> int:
        """Number of bins for positive (and for negative) values."""
        return (self.high - self.low) * self.per_decade

    @property
    def num_bins(self) -> int:
        """Number of value bins (negative, zero, positive); the non-finite slot comes on top."""
        return 2 * self.per_sign + 1

    @property
    def center(self) -> int:
        """Index of the zero bin."""
        return self.per_sign

    @property
    def nan_slot(self) -> int:
        """Index of the slot that counts non-finite values (NaN, +-inf)."""
        return self.num_bins

    def magnitudes(self) -> np.ndarray:
        """The positive bin edges 10**low, ..., 10**high (per_sign + 1 values)."""
        exponents = self.low + np.arange(self.per_sign + 1) / self.per_decade
        return np.power(10.0, exponents)

    def edges(self) -> np.ndarray:
        """All value-bin edges, symmetric about 0, with -inf and +inf at the ends.

        A positive bin holds magnitudes in [edges[i], edges[i + 1]); bins
        mirror exactly, so a negative bin holds (edges[i], edges[i + 1]]. The
        zero bin is (-10**low, 10**low).
        """
        positive = self.magnitudes()
        inner = positive[1:-1]
        return np.concatenate(
            [[-np.inf], -inner[::-1], [-positive[0], positive[0]], inner, [np.inf]]
        )

    def signed_log_centers(self) -> np.ndarray:
        """Plot coordinate of each value bin: sign * (log10|x| - low + 1/per_decade/2), 0 for the zero bin.

        Positive bin k sits at (k + 0.5) / per_decade decades right of the
        zero bin, negative bins mirror it.
        """
        offsets = (np.arange(self.per_sign) + 0.5) / self.per_decade
        return np.concatenate([-offsets[::-1], [0.0], offsets])

    def count(self, values: torch.Tensor) -> torch.Tensor:
        """Counts per bin (num_bins + 1 entries, the last one non-finite) as float64 on the values' device."""
        counts = torch.zeros(self.num_bins + 1, dtype=torch.float64, device=values.device)
        self.count_into_(counts, values)
        return counts

    def count_into_(self, counts: torch.Tensor, values: torch.Tensor) -> None:
        """Add the counts of ``values`` into ``counts`` (float64, num_bins + 1) in place.

        On the CPU the values are binned in chunks of ``CPU_CHUNK`` through two
        scratch buffers kept per thread: a fresh multi-megabyte temporary per
        step costs more in page faults than the arithmetic does.
        """
        values = values.detach()
        if values.numel() == 0:
            return
        if values.dtype not in (torch.float32, torch.float64):
            values = values.float()
        if not values.is_contiguous():
            values = values.reshape(-1)  # a contiguous copy
        kernels = compiled_kernels(values) if counts.device.type == "cpu" else None
        if kernels is not None:
            table = bin_table(self, values.dtype)
            array = values.numpy().reshape(-1)
            bits = array.view(np.int32 if array.dtype == np.float32 else np.int64)
            arguments = (bits, table.top, table.top_shift, table.magnitude_mask, table.shift, table.base, table.below_edge,
                         table.fold, counts.numpy())
            # large tensors are split over numba's threads, one call at a time: a hook called from
            # several threads at once (nn.DataParallel) counts serially rather than nest parallel regions
            lock = _parallel_lock()
            if array.shape[0] >= PARALLEL_MIN and lock.acquire(blocking=False):
                try:
                    kernels.count_bins_parallel(*arguments, kernels.threads())
                finally:
                    lock.release()
            else:
                kernels.count_bins(*arguments)
            return
        flat = values.reshape(-1)
        if flat.device.type != "cpu":
            index = self._bin_index_(flat.abs(), flat).long()
            # bincount sizes its output from the data, which would synchronise a GPU
            ones = torch.ones((), dtype=torch.float64, device=flat.device).expand(flat.numel())
            counts.index_add_(0, index, ones)
            return
        scratch, indices = cpu_scratch(flat.dtype, min(flat.numel(), CPU_CHUNK))
        for start in range(0, flat.numel(), CPU_CHUNK):
            part = flat[start : start + CPU_CHUNK]
            magnitude = torch.abs(part, out=scratch[: part.numel()])
            index = indices[: part.numel()]
            index.copy_(self._bin_index_(magnitude, part))
            counts.add_(torch.bincount(index, minlength=self.num_bins + 1))

    def _bin_index_(self, magnitude: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Overwrite ``magnitude`` (= ``|values|``) with each value's bin index, as floats."""
        index = torch.log10(magnitude, out=magnitude)
        # log10|x| is +inf for +-inf and NaN for NaN: both go to the non-finite slot below;
        # -inf (zeros) is left to the clamp, which puts it in the zero bin
        torch.nan_to_num_(index, nan=math.nan, posinf=math.nan)
        # decade offset k + 1 in [0, per_sign]: 0 below 10**low, NaN stays NaN
        index.sub_(self.low).mul_(self.per_decade).floor_().clamp_(-1, self.per_sign - 1).add_(1)
        # signed bin center +- (k + 1)
        index.copysign_(values).add_(self.center)
        return torch.nan_to_num_(index, nan=float(self.nan_slot))

    def bin_label(self, index: int) -> str:
        """Human-readable range of bin ``index``."""
        if index == self.nan_slot:
            return "non-finite"
        edges = self.edges()
        if index < self.center:
            return f"({edges[index]:.3g}, {edges[index + 1]:.3g}]"
        if index == self.center:
            return f"({edges[index]:.3g}, {edges[index + 1]:.3g})"
        return f"[{edges[index]:.3g}, {edges[index + 1]:.3g})"

    def tick_positions(self, every: int = 4) -> tuple[np.ndarray, list[str]]:
        """Positions and labels (±1e-8 … ±1e8) on the ``signed_log_centers`` axis, every ``every`` decades."""
        exponents = [e for e in range(self.high, self.low, -every)][::-1]
        offsets = [float(e - self.low) for e in exponents]
        positions = [-o for o in offsets[::-1]] + [0.0] + offsets
        labels = [f"-1e{e}" for e in exponents[::-1]] + ["0"] + [f"1e{e}" for e in exponents]
        return np.asarray(positions), labels


@dataclass(frozen=True)
class BinTable:
    """Bins of one float dtype read from the values' bit patterns (see :func:`bin_table`)."""

    magnitude_mask: int  # the bits of |x|: all but the sign
    shift: int  # cell = magnitude bits >> shift
    base: np.ndarray  # per cell: bin edges at or below the cell's first pattern (per_sign + 1: non-finite)
    below_edge: np.ndarray  # per cell: the last pattern below the one edge inside it, or the largest int64
    fold: np.ndarray  # slot of (k, sign): fold[k] for +, fold[width + k] for -, width = per_sign + 2
    top: np.ndarray  # uint16 per value of a pattern's top 16 bits: its slot, or TOP_NO_SLOT if an edge is inside
    top_shift: int  # top index = unsigned pattern >> top_shift


TOP_BITS = 16
TOP_NO_SLOT = 0xFFFF  # kernels.NO_SLOT


def _slots_of(patterns: np.ndarray, table_parts: tuple[int, int, np.ndarray, np.ndarray], width: int) -> np.ndarray:
    """Slots (k, or width + k when negative) of signed bit patterns, by the cell rule of :func:`bin_table`."""
    magnitude_mask, shift, base, below_edge = table_parts
    magnitude = patterns.astype(np.int64) & magnitude_mask
    cell = magnitude >> shift
    k = base[cell] + (magnitude > below_edge[cell])
    return np.where(patterns < 0, width + k, k)


def _top_table(table_parts: tuple[int, int, np.ndarray, np.ndarray], width: int, int_type: type, bits: int) -> np.ndarray:
    """The slot of every value of a pattern's top TOP_BITS bits where all its patterns share one slot.

    A range holds patterns of one sign; its first and last patterns have the
    smallest and largest magnitude, so they share a slot exactly when the
    whole range does.
    """
    low_bits = bits - TOP_BITS
    unsigned = np.uint32 if bits == 32 else np.uint64
    first = (np.arange(1 << TOP_BITS, dtype=np.uint64) << np.uint64(low_bits)).astype(unsigned)
    last = first | unsigned((1 << low_bits) - 1)
    low = _slots_of(first.view(int_type), table_parts, width)
    high = _slots_of(last.view(int_type), table_parts, width)
    same = (low == high) & (low < TOP_NO_SLOT)
    return np.where(same, low, TOP_NO_SLOT).astype(np.uint16)


_LAYOUT = {torch.float32: (np.float32, np.int32, 8, 23), torch.float64: (np.float64, np.int64, 11, 52)}


def _edge_bits(edges: np.ndarray, float_type: type, int_type: type) -> np.ndarray:
    """Bit patterns of the smallest values of the float type at or above each edge."""
    rounded: np.ndarray = edges.astype(float_type)
    below = rounded < edges
    rounded[below] = np.nextafter(rounded[below], float_type(np.inf))
    return rounded.view(int_type).astype(np.int64)


@functools.lru_cache(maxsize=16)
def bin_table(bins: HistogramBins, dtype: torch.dtype) -> BinTable:
    """Exact bins for values of ``dtype`` (float32 or float64): x is in magnitude bin k when k edges are <= |x|.

    For IEEE floats of one sign the bit pattern grows with the magnitude, so
    ``|x| >= edge`` is ``bits(|x|) >= bits(edge rounded up to the dtype)``.
    The patterns are cut into cells by their exponent and top mantissa bits,
    fine enough that no cell holds two edges (bins are 10**(1/per_decade)
    apart); a cell then needs one comparison. Patterns with all exponent bits
    set are NaN and +-inf; they go to the non-finite slot. Most values need
    no comparison at all: ``top`` gives the slot of every range of patterns
    that share their top 16 bits (sign, exponent, first mantissa bits) and
    hold no edge, which is all but a few percent of the values in range.
    """
    float_type, int_type, exponent_bits, mantissa_bits = _LAYOUT[dtype]
    edges = _edge_bits(bins.magnitudes()[:-1], float_type, int_type)
    kept = 1
    while len(np.unique(edges >> (mantissa_bits - kept))) < len(edges):
        kept += 1
    shift = mantissa_bits - kept
    starts = np.arange(1 << (exponent_bits + kept), dtype=np.int64) << shift
    base = np.searchsorted(edges, starts, side="right")
    never = np.iinfo(np.int64).max  # no magnitude pattern is above it
    following = np.append(edges, never)[base]
    below_edge = np.where(following < starts + (1 << shift), following - 1, never)
    nonfinite = starts >= ((1 << exponent_bits) - 1) << mantissa_bits
    base = np.where(nonfinite, bins.per_sign + 1, base)
    below_edge = np.where(nonfinite, never, below_edge)
    k = np.arange(bins.per_sign + 2)
    positive = np.where(k > bins.per_sign, bins.nan_slot, bins.center + k)
    negative = np.where(k > bins.per_sign, bins.nan_slot, bins.center - k)
    magnitude_mask = (1 << (exponent_bits + mantissa_bits)) - 1
    base, below_edge = base.astype(np.int64), below_edge.astype(np.int64)
    bits = 1 + exponent_bits + mantissa_bits
    return BinTable(
        magnitude_mask=magnitude_mask,
        shift=shift,
        base=base,
        below_edge=below_edge,
        fold=np.concatenate([positive, negative]).astype(np.int64),
        top=_top_table((magnitude_mask, shift, base, below_edge), bins.per_sign + 2, int_type, bits),
        top_shift=bits - TOP_BITS,
    )


DEFAULT_BINS = HistogramBins()
