"""A fixed-size random subsample of a tensor, and the summary statistics both the doctor and the fingerprint read.

Statistics of a tensor with n elements come from at most ``SAMPLE_SIZE``
values drawn uniformly with replacement (indices from a generator seeded by
(seed, name), so a report is reproducible). The relative standard error of
a std estimated from m values is sqrt((kurtosis - 1) / (4 m)), 1/sqrt(2m) for
a normal: 0.28% at m = 65536 (Kendall & Stuart, The Advanced Theory of
Statistics, vol. 1, 10.5). Counts that must not miss a single value (NaN,
inf) read the whole tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from initlab.rng import derive_seed

__all__ = ["SAMPLE_SIZE", "TensorSummary", "sample_values", "summarize", "std_error"]

# values per tensor for the statistics: the std to 0.28% (normal), KS distances to 0.5%
SAMPLE_SIZE = 65536
# a value must occur this often before its share counts as a repeated pattern
_MIN_REPEATS = 8


def sample_values(tensor: torch.Tensor, *, size: int = SAMPLE_SIZE, seed: int = 0, name: str = "") -> torch.Tensor:
    """At most ``size`` values of ``tensor`` as a float64 vector on the CPU (all of them when it is smaller)."""
    flat = tensor.detach().reshape(-1)
    count = flat.numel()
    if count <= size:
        return flat.to(device="cpu", dtype=torch.float64)
    generator = torch.Generator().manual_seed(derive_seed(seed=seed, name=name))
    index = torch.randint(0, count, (size,), generator=generator)
    return flat.index_select(0, index.to(flat.device)).to(device="cpu", dtype=torch.float64)


def std_error(count: int, kurtosis: float = 3.0) -> float:
    """Relative standard error of a std estimated from ``count`` values: sqrt((kurtosis - 1) / (4 count))."""
    if count < 2:
        return math.inf
    return math.sqrt(max(kurtosis - 1.0, 0.0) / (4.0 * count))


@dataclass(frozen=True)
class TensorSummary:
    """What one tensor's values look like."""

    numel: int
    sampled: int
    nonfinite: int
    mean: float
    std: float
    rms: float
    abs_max: float
    zero_fraction: float
    subnormal_fraction: float
    subnormal_expected: float  # share a normal of this std puts below the dtype's smallest normal number
    mode_fraction: float  # share of the most common non-zero value among the sampled ones
    constant: bool  # every element equal (read on the whole tensor)
    kurtosis: float

    @property
    def relative_error(self) -> float:
        """Relative standard error of :attr:`std`."""
        return std_error(self.sampled, self.kurtosis if math.isfinite(self.kurtosis) else 3.0)


def summarize(tensor: torch.Tensor, *, size: int = SAMPLE_SIZE, seed: int = 0, name: str = "") -> TensorSummary:
    """Summary statistics of ``tensor`` (floating, not meta): non-finite count and constancy on all values, the rest on a sample."""
    detached = tensor.detach()
    finite_mask = torch.isfinite(detached)
    nonfinite = int(detached.numel() - int(finite_mask.sum()))
    flat = detached.reshape(-1)
    constant = bool(flat.numel() > 0 and bool((flat == flat[0]).all()))
    values = sample_values(detached, size=size, seed=seed, name=name)
    values = values[torch.isfinite(values)]
    count = int(values.numel())
    if count == 0:
        return TensorSummary(
            detached.numel(), 0, nonfinite, math.nan, math.nan, math.nan, math.nan, 0.0, 0.0, 0.0, 0.0, constant, math.nan
        )
    mean = float(values.mean())
    centred = values - mean
    variance = float((centred * centred).mean())
    std = math.sqrt(variance * count / (count - 1)) if count > 1 else 0.0
    fourth = float((centred**4).mean())
    kurtosis = fourth / (variance * variance) if variance > 0 else math.nan
    magnitude = values.abs()
    tiny = torch.finfo(tensor.dtype).tiny if tensor.dtype.is_floating_point else 0.0
    nonzero = magnitude[magnitude > 0]
    subnormal = float((nonzero < tiny).double().mean()) if nonzero.numel() else 0.0
    mode_fraction = 0.0
    if nonzero.numel():
        _, counts = torch.unique(values[values != 0], return_counts=True)
        most = int(counts.max())
        mode_fraction = most / count if most >= _MIN_REPEATS else 0.0
    return TensorSummary(
        numel=detached.numel(),
        sampled=count,
        nonfinite=nonfinite,
        mean=mean,
        std=std,
        rms=math.sqrt(float((values * values).mean())),
        abs_max=float(magnitude.max()),
        zero_fraction=float((values == 0).double().mean()),
        subnormal_fraction=subnormal,
        subnormal_expected=math.erf(tiny / (std * math.sqrt(2.0))) if std > 0 else 0.0,
        mode_fraction=mode_fraction,
        constant=constant,
        kurtosis=kurtosis,
    )
