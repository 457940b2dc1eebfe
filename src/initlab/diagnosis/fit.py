"""Which distribution drew a tensor: exact patterns first, then the best of normal, uniform and truncated normal.

Order of the tests (each on the whole tensor where it is cheap, else on the
sample of :mod:`~initlab.diagnosis.sample`):

1. constant: every element equal (``zeros``, ``ones``, ``constant``);
2. identity / dirac: ``gain`` on the diagonal (at the kernel's centre tap), 0 elsewhere;
3. sparse: a share of exact zeros (continuous draws give none), the rest normal;
4. orthogonal: k sampled rows (columns, for a tall matrix) have a Gram matrix
   g^2 I: off-diagonal entries below 0.1 / sqrt(n) of the diagonal, where
   Gaussian rows of length n give about 3 / sqrt(n);
5. normal N(mu, sigma^2), uniform U[a, b] and the normal truncated
   symmetrically at mu +- k sigma, fitted by maximum likelihood and compared
   by BIC (one more parameter for the truncated normal: a penalty of
   log(n) / 2). The truncated normal's bound comes from the sample's largest
   deviation, sigma from its std (the std of the cut normal is sigma times
   ``truncated_std_factor(-k, k)``).

The goodness of fit is the Kolmogorov-Smirnov distance D between the sample
and the fitted CDF and its p-value from the Kolmogorov distribution with
Stephens' (1970) small-sample correction: lambda = (sqrt(n) + 0.12 +
0.11 / sqrt(n)) D, p = 2 sum (-1)^(j-1) exp(-2 j^2 lambda^2). Parameters
fitted on the same sample make the p-value conservative (Lilliefors 1967).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from initlab.schemes.variance import truncated_std_factor

__all__ = ["Fit", "fit_values", "ks_pvalue", "ks_distance", "normal_cdf", "FAMILIES"]

FAMILIES = (
    "zeros",
    "ones",
    "constant",
    "identity",
    "dirac",
    "sparse",
    "orthogonal",
    "normal",
    "truncated_normal",
    "uniform",
)

# a share of exact zeros above this is a sparse init (continuous draws give none)
SPARSE_MIN_FRACTION = 0.05
# rows (or columns) read for the orthogonality test
_GRAM_VECTORS = 32
# truncation further out than this many sigmas is indistinguishable from a normal
_MAX_TRUNCATION = 6.0


@dataclass(frozen=True)
class Fit:
    """A fitted family, its parameters, and the goodness of fit on the sample."""

    family: str
    parameters: dict[str, float] = field(default_factory=dict)
    std: float = 0.0  # the std of the values the fitted distribution gives
    ks_distance: float = 0.0
    ks_pvalue: float = 1.0


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(x)


def ks_pvalue(distance: float, count: int) -> float:
    """P(D >= distance) for n = count under the fitted CDF (Kolmogorov, with Stephens' correction)."""
    if count <= 0:
        return 1.0
    root = math.sqrt(count)
    lam = (root + 0.12 + 0.11 / root) * distance
    if lam < 0.2:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2.0 * (-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(max(total, 0.0), 1.0)


def ks_distance(sorted_values: torch.Tensor, cdf: torch.Tensor) -> float:
    """sup |F_n - F| for ``sorted_values`` with model CDF values ``cdf`` at those points."""
    count = sorted_values.numel()
    if count == 0:
        return 0.0
    ranks = torch.arange(1, count + 1, dtype=torch.float64)
    upper = (ranks / count - cdf).max()
    lower = (cdf - (ranks - 1) / count).max()
    return float(torch.maximum(upper, lower))


def _constant(tensor: torch.Tensor) -> float | None:
    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:
        return None
    first = flat[0]
    return float(first) if bool((flat == first).all()) else None


def _pattern(tensor: torch.Tensor) -> tuple[str, float] | None:
    """('identity' | 'dirac', gain) when the tensor is gain times torch's eye_ / dirac_ pattern."""
    if tensor.dim() < 2 or tensor.numel() > 1 << 26:
        return None
    values = tensor.detach()
    taps = (0,) * (values.dim() - 2)
    # index tuples built first: mypy reads a starred tuple inside [] as the 3.11-only a[0, *b]
    upper, lower = (0, 1, *taps), (1, 0, *taps)
    if min(values.shape[0], values.shape[1]) > 1 and (float(values[upper]) != 0 or float(values[lower]) != 0):
        return None  # an off-diagonal entry: neither pattern (checked before building the pattern)
    if values.dim() == 2:
        gain = float(values[0, 0])
        if gain == 0:
            return None
        expected = torch.eye(values.shape[0], values.shape[1], dtype=values.dtype, device=values.device) * gain
        return ("identity", gain) if torch.equal(values, expected) else None
    centre = tuple(size // 2 for size in values.shape[2:])
    first = (0, 0, *centre)
    gain = float(values[first])
    if gain == 0:
        return None
    expected = torch.zeros_like(values)
    channels = min(values.shape[0], values.shape[1])
    index = torch.arange(channels, device=values.device)
    diagonal = (index, index, *(torch.full_like(index, c) for c in centre))
    expected[diagonal] = gain
    return ("dirac", gain) if torch.equal(values, expected) else None


def _orthogonal_gain(tensor: torch.Tensor, seed: int) -> float | None:
    """g when k sampled rows (or columns) of the flattened matrix are orthogonal with norm g; else None."""
    if tensor.dim() < 2:
        return None
    matrix = tensor.detach().reshape(tensor.shape[0], -1)
    rows, cols = matrix.shape
    if min(rows, cols) < 2:
        return None
    generator = torch.Generator().manual_seed(seed)
    if rows <= cols:
        pick = torch.randperm(rows, generator=generator)[:_GRAM_VECTORS]
        vectors, length = matrix[pick.to(matrix.device)].to("cpu", torch.float64), cols
    else:
        pick = torch.randperm(cols, generator=generator)[:_GRAM_VECTORS]
        vectors, length = matrix[:, pick.to(matrix.device)].t().to("cpu", torch.float64), rows
    gram = vectors @ vectors.t()
    diagonal = gram.diagonal()
    scale = float(diagonal.mean())
    if not scale > 0:
        return None
    off = (gram - torch.diag(diagonal)).abs().max() / scale
    spread = (diagonal / scale - 1).abs().max()
    limit = 0.1 / math.sqrt(length)
    if float(off) < limit and float(spread) < max(limit, 1e-3):
        return math.sqrt(scale)
    return None


def _normal_loglik(values: torch.Tensor, mean: float, std: float) -> float:
    count = values.numel()
    return -0.5 * count * (math.log(2 * math.pi * std * std) + 1.0)


def _truncated_sigma(std: float, bound: float) -> float | None:
    """sigma of a normal cut at +-bound whose std is ``std``; None when even a uniform's std is below ``std``."""
    if not (0 < std < bound / math.sqrt(3.0)):
        return None
    target = std / bound  # = factor(k) / k, decreasing in k
    low, high = 1e-3, 50.0
    for _ in range(80):
        middle = 0.5 * (low + high)
        if truncated_std_factor(a=-middle, b=middle) / middle > target:
            low = middle
        else:
            high = middle
    k = 0.5 * (low + high)
    return bound / k


def _fit_continuous(values: torch.Tensor) -> Fit:
    """Best of normal, uniform and symmetric truncated normal by BIC; KS on the winner."""
    count = values.numel()
    ordered, _ = torch.sort(values)
    mean = float(values.mean())
    std = float(values.std()) if count > 1 else 0.0
    if count < 2 or not std > 0:
        return Fit("normal", {"mean": mean, "std": std}, std)
    if abs(mean) < 3.0 * std / math.sqrt(count):
        mean = 0.0
    deviation = float((values - mean).abs().max())
    penalty = 0.5 * math.log(count)
    candidates: list[tuple[float, Fit, torch.Tensor]] = []
    ll_normal = _normal_loglik(values, mean, std)
    cdf_normal = normal_cdf((ordered - mean) / std)
    candidates.append((ll_normal, Fit("normal", {"mean": mean, "std": std}, std), cdf_normal))
    low, high = float(ordered[0]), float(ordered[-1])
    if mean == 0.0:
        bound = deviation * (count + 1) / count
        low, high = -bound, bound
    else:
        margin = (high - low) / max(count - 1, 1)
        low, high = low - margin, high + margin
    if high > low:
        ll_uniform = -count * math.log(high - low)
        cdf_uniform = ((ordered - low) / (high - low)).clamp(0, 1)
        uniform = Fit("uniform", {"a": low, "b": high}, (high - low) / math.sqrt(12.0))
        candidates.append((ll_uniform, uniform, cdf_uniform))
    bound = deviation * (1.0 + 1.0 / count)
    sigma = _truncated_sigma(std, bound)
    if sigma is not None:
        k = bound / sigma
        if k < _MAX_TRUNCATION:
            mass = math.erf(k / math.sqrt(2.0))
            centred = values - mean
            ll_trunc = (
                -0.5 * count * math.log(2 * math.pi * sigma * sigma)
                - float((centred * centred).sum()) / (2 * sigma * sigma)
                - count * math.log(mass)
                - penalty
            )
            lower = 0.5 * (1 - mass)
            cdf_trunc = ((normal_cdf((ordered - mean) / sigma) - lower) / mass).clamp(0, 1)
            trunc = Fit(
                "truncated_normal",
                {"mean": mean, "sigma": sigma, "a": -k, "b": k},
                sigma * truncated_std_factor(a=-k, b=k),
            )
            candidates.append((ll_trunc, trunc, cdf_trunc))
    _, best, cdf = max(candidates, key=lambda item: item[0])
    distance = ks_distance(ordered, cdf)
    return Fit(best.family, best.parameters, best.std, distance, ks_pvalue(distance, count))


def fit_values(tensor: torch.Tensor, values: torch.Tensor, *, seed: int = 0) -> Fit:
    """The family of ``tensor`` (whole, for the exact patterns) given its sample ``values`` (float64)."""
    value = _constant(tensor)
    if value is not None:
        family = "zeros" if value == 0 else "ones" if value == 1 else "constant"
        return Fit(family, {} if family != "constant" else {"value": value}, 0.0)
    pattern = _pattern(tensor)
    if pattern is not None:
        name, gain = pattern
        flat = tensor.detach().reshape(-1).to(torch.float64)
        return Fit(name, {"gain": gain}, float(flat.std()))
    zero_fraction = float((values == 0).double().mean()) if values.numel() else 0.0
    if SPARSE_MIN_FRACTION <= zero_fraction < 1.0 and tensor.dim() >= 2:
        nonzero = values[values != 0]
        inner = _fit_continuous(nonzero)
        sigma = float(nonzero.std()) if nonzero.numel() > 1 else 0.0
        std = math.sqrt((1 - zero_fraction) * sigma * sigma)
        return Fit("sparse", {"fraction": zero_fraction, "std": sigma}, std, inner.ks_distance, inner.ks_pvalue)
    orthogonal_gain = _orthogonal_gain(tensor, seed)
    if orthogonal_gain is not None:
        matrix_rows = tensor.shape[0]
        matrix_cols = tensor.numel() // max(matrix_rows, 1)
        gain = orthogonal_gain
        std = gain / math.sqrt(max(matrix_rows, matrix_cols))
        ordered, _ = torch.sort(values)
        distance = ks_distance(ordered, normal_cdf(ordered / std))
        return Fit("orthogonal", {"gain": gain}, std, distance, ks_pvalue(distance, values.numel()))
    return _fit_continuous(values)
