"""The keyed generator's fills in plain PyTorch: any device, no compiler.

Same values as the compiled kernels (:mod:`initlab.rng.kernels`), bit for
bit: both follow :mod:`initlab.rng.philox`. Work is split into chunks of
whole blocks to bound temporary memory; a block's values never depend on the
chunk it falls in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from initlab.rng import philox as spec

__all__ = [
    "uniform_range_",
    "normal_range_",
    "truncated_range_",
    "words_range",
    "truncated_retry",
]

CHUNK_ELEMENTS = 1 << 20
GPU_CHUNK_ELEMENTS = 1 << 24


def _blocks(first: int, last: int, device: torch.device) -> torch.Tensor:
    return torch.arange(first, last + 1, dtype=torch.int64, device=device)


def _fill_by_blocks_(
    out: torch.Tensor,
    start: int,
    per_block: int,
    values_of_blocks: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Write stream elements [start, start + len(out)) using ``values_of_blocks``.

    ``values_of_blocks(blocks)`` returns a (len(blocks), per_block) tensor:
    block j holds elements per_block*j .. per_block*j + per_block - 1.
    """
    total = out.numel()
    position = 0
    while position < total:
        stop = min(position + CHUNK_ELEMENTS, total)
        first = (start + position) // per_block
        last = (start + stop - 1) // per_block
        values = values_of_blocks(_blocks(first, last, out.device)).reshape(-1)
        offset = start + position - first * per_block
        out[position:stop].copy_(values[offset : offset + stop - position])
        position = stop


def words_range(start: int, stop: int, k0: int, k1: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The stream's 32-bit words [start, stop) as int64."""
    out = torch.empty(stop - start, dtype=torch.int64, device=device)
    if stop > start:
        _fill_by_blocks_(
            out, start, 4, lambda blocks: torch.stack(spec.philox_block(blocks, k0, k1), dim=1)
        )
    return out


def uniform_range_(
    out: torch.Tensor, start: int, k0: int, k1: int, low: float, span: float, lo: float, hi: float
) -> None:
    """U[low, low + span) clamped to [lo, hi]; ``out`` float32 or float64, 1-D, contiguous."""
    if out.dtype == torch.float32:

        def values(blocks: torch.Tensor) -> torch.Tensor:
            words = torch.stack(spec.philox_block(blocks, k0, k1), dim=1)
            unit = (words >> 8).to(torch.float64) * spec.TWO_M24
            return (unit * span + low).to(torch.float32).clamp_(lo, hi)

        _fill_by_blocks_(out, start, 4, values)
    else:

        def values(blocks: torch.Tensor) -> torch.Tensor:
            w0, w1, w2, w3 = spec.philox_block(blocks, k0, k1)
            unit = torch.stack((spec.uniform53(w0, w1), spec.uniform53(w2, w3)), dim=1)
            return (unit * span + low).clamp_(lo, hi)

        _fill_by_blocks_(out, start, 2, values)


def _standard_normal_blocks(blocks: torch.Tensor, k0: int, k1: int, dtype: torch.dtype) -> torch.Tensor:
    w0, w1, w2, w3 = spec.philox_block(blocks, k0, k1)
    if dtype == torch.float32:
        z0, z1 = spec.normal_pair_f32(w0, w1)
        z2, z3 = spec.normal_pair_f32(w2, w3)
        return torch.stack((z0, z1, z2, z3), dim=1)
    return torch.stack(spec.normal_pair_f64(w0, w1, w2, w3), dim=1)


def normal_range_(out: torch.Tensor, start: int, k0: int, k1: int, mean: float, std: float) -> None:
    """N(mean, std^2); ``out`` float32 or float64, 1-D, contiguous."""
    per_block = 4 if out.dtype == torch.float32 else 2

    def values(blocks: torch.Tensor) -> torch.Tensor:
        standard = _standard_normal_blocks(blocks, k0, k1, out.dtype)
        return (standard * std + mean).to(out.dtype)

    _fill_by_blocks_(out, start, per_block, values)


def truncated_retry(
    indices: torch.Tensor,
    k0: int,
    k1: int,
    mode: int,
    a: float,
    b: float,
    width: float,
    alpha: float,
    m2: float,
    max_attempts: int,
) -> torch.Tensor:
    """Standard normals in [a, b] for the elements ``indices``, from attempts 1, 2, ...

    mode 0: normal proposals; 1: uniform proposal on [a, b] accepted with
    probability exp((m2 - x^2) / 2); 2: exponential proposal a + E/alpha
    accepted with probability exp(-(x - alpha)^2 / 2) (Robert 1995), for 0 < a.
    """
    result = torch.empty(indices.numel(), dtype=torch.float64, device=indices.device)
    pending = torch.arange(indices.numel(), device=indices.device)
    last_proposal = torch.zeros_like(result)
    for attempt in range(1, max_attempts + 1):
        if pending.numel() == 0:
            return result
        w0, w1, w2, w3 = spec.philox_block(indices[pending], k0, k1, c2=attempt, c3=1)
        if mode == 0:
            proposal, _ = spec.normal_pair_f64(w0, w1, w2, w3)
            accepted = (proposal >= a) & (proposal <= b)
        elif mode == 1:
            proposal = spec.uniform53(w0, w1) * width + a
            accepted = spec.log_open_uniform53(w2, w3) <= (m2 - proposal * proposal) * 0.5
        else:
            log_u = spec.log_open_uniform53(w0, w1)
            # a tensor divisor: CUDA divides by a Python scalar through its reciprocal, one rounding more
            proposal = a - log_u / torch.full_like(log_u, alpha)
            distance = proposal - alpha
            accepted = (spec.log_open_uniform53(w2, w3) <= (distance * distance) * -0.5) & (proposal <= b)
        result[pending[accepted]] = proposal[accepted]
        last_proposal[pending] = proposal
        pending = pending[~accepted]
    if pending.numel() > 0:
        result[pending] = last_proposal[pending].clamp(a, b)
    return result


def truncated_range_(
    out: torch.Tensor,
    start: int,
    k0: int,
    k1: int,
    mean: float,
    std: float,
    lo: float,
    hi: float,
    mode: int,
    a: float,
    b: float,
    width: float,
    alpha: float,
    m2: float,
    flip: bool,
    max_attempts: int,
) -> None:
    """Truncated normal, see :func:`truncated_retry`; ``out`` float32 or float64, 1-D, contiguous."""
    total = out.numel()
    position = 0
    # on a GPU the retries' many small operations cost launches, not memory: fewer, larger chunks
    chunk = GPU_CHUNK_ELEMENTS if out.device.type == "cuda" else CHUNK_ELEMENTS
    while position < total:
        stop = min(position + chunk, total)
        indices = torch.arange(start + position, start + stop, dtype=torch.int64, device=out.device)
        if mode == 0:
            normal = torch.empty(stop - position, dtype=torch.float64, device=out.device)
            per_block = 4 if out.dtype == torch.float32 else 2
            _fill_by_blocks_(
                normal, start + position, per_block,
                lambda blocks: _standard_normal_blocks(blocks, k0, k1, out.dtype),
            )
            rejected = ~((normal >= a) & (normal <= b))
            if bool(rejected.any()):
                normal[rejected] = truncated_retry(
                    indices[rejected], k0, k1, mode, a, b, width, alpha, m2, max_attempts
                )
            standard = normal
        else:
            standard = truncated_retry(indices, k0, k1, mode, a, b, width, alpha, m2, max_attempts)
            if flip:
                standard = -standard
        out[position:stop].copy_((standard * std + mean).to(out.dtype).clamp_(lo, hi))
        position = stop
