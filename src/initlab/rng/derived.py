"""Distributions built on the basic fills: Bernoulli masks and random orthogonal matrices.

Both accept every generator kind (None, ``torch.Generator``, ``Keyed``).
"""

from __future__ import annotations

import torch

from initlab.rng.keyed import Keyed
from initlab.rng.streams import GeneratorLike, check_generator, normal_

__all__ = ["bernoulli_", "orthogonal_"]


def bernoulli_(out: torch.Tensor, p: float = 0.5, generator: GeneratorLike = None) -> torch.Tensor:
    """Fill ``out`` with 1 (probability ``p``) or 0 in place; ``out`` float or bool.

    With a ``Keyed`` stream element i is 1 when the stream's word i is below
    round(p 2^32), so a mask can be generated shard by shard.
    """
    check_generator(generator)
    if isinstance(generator, Keyed):
        return generator.bernoulli_(out, p)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"bernoulli_: out must be a torch.Tensor, got {type(out).__name__}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"bernoulli_: p must be in [0, 1], got {p}")
    if not (generator is None or isinstance(generator, torch.Generator)):
        raise TypeError(
            f"bernoulli_: generator must be a torch.Generator, an initlab.rng.Keyed stream or None, "
            f"got {type(generator).__name__}"
        )
    if out.dtype == torch.bool:
        draws = torch.empty(out.shape, dtype=torch.float32, device=out.device)
        draws.bernoulli_(float(p), generator=generator)
        return out.copy_(draws.bool())
    return out.bernoulli_(float(p), generator=generator)


def orthogonal_(out: torch.Tensor, gain: float = 1.0, generator: GeneratorLike = None) -> torch.Tensor:
    """Fill ``out`` (viewed as rows x rest) with a random (semi-)orthogonal matrix times ``gain``.

    Q from the QR decomposition of a Gaussian matrix, with the signs of R's
    diagonal folded into Q so that Q is Haar distributed (Mezzadri 2007,
    "How to generate random matrices from the classical compact groups";
    Saxe, McClelland & Ganguli 2014 for its use as an init). The Gaussian
    matrix is (max, min) of (rows, cols), float64, drawn from ``generator``;
    with a ``Keyed`` stream its element i is the stream's element i, so every
    rank of a sharded model can build the full matrix and keep its own rows.
    QR runs in LAPACK (float64): equal inputs give equal outputs on one
    machine and library build.
    """
    check_generator(generator)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"orthogonal_: out must be a torch.Tensor, got {type(out).__name__}")
    if out.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"orthogonal_: out has dtype {out.dtype}; accepted: float16, bfloat16, float32, float64")
    if out.dim() < 2:
        raise ValueError(f"orthogonal_: out needs at least 2 dimensions, got shape {tuple(out.shape)}")
    if out.numel() == 0:
        return out
    rows = out.shape[0]
    cols = out.numel() // rows
    tall, short = max(rows, cols), min(rows, cols)
    gaussian = torch.empty(tall, short, dtype=torch.float64, device=out.device)
    normal_(gaussian, 0.0, 1.0, generator)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    q = q * signs
    if rows < cols:
        q = q.T
    with torch.no_grad():
        out.copy_((q * gain).reshape(out.shape))
    return out
