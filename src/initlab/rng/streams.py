"""Random streams: the one place where initlab draws random numbers.

Every scheme fills tensors through the functions here, so one ``generator``
argument works everywhere. A generator is one of

* ``None`` -- torch's global default generator;
* a ``torch.Generator`` -- torch's own (sequential) stream;
* a :class:`CounterStream` -- a counter-based stream (``initlab.rng.Keyed``)
  whose values are a pure function of (seed, name, flat index).

All fills write into a float32 or float64 buffer; schemes sample in that
precision and cast, so bf16/fp16 targets get the same distribution.
"""

from __future__ import annotations

import hashlib
import math
from typing import Protocol, runtime_checkable

import torch

from initlab.rng.checks import MAX_SEED, check_seed

__all__ = [
    "CounterStream",
    "GeneratorLike",
    "derive_seed",
    "derive_generator",
    "normal_",
    "uniform_",
    "truncated_normal_",
    "normal_mass",
    "check_generator",
]


@runtime_checkable
class CounterStream(Protocol):
    """A stream whose values depend only on its key and the element's flat index.

    Implementations fill ``out`` (float32 or float64, any device) in place and
    return it; element ``i`` of ``out.reshape(-1)`` is the stream's element
    ``i``.
    """

    def normal_(self, out: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor: ...

    def uniform_(self, out: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor: ...

    def truncated_normal_(
        self, out: torch.Tensor, mean: float, std: float, a: float, b: float
    ) -> torch.Tensor: ...

    def child(self, name: str) -> CounterStream: ...


GeneratorLike = None | torch.Generator | CounterStream


def check_generator(generator: object, argument: str = "generator") -> None:
    """Raise TypeError unless ``generator`` is None, a torch.Generator or a counter stream."""
    if generator is None or isinstance(generator, torch.Generator | CounterStream):
        return
    raise TypeError(
        f"{argument} must be None, a torch.Generator or an initlab.rng.Keyed stream, "
        f"got {type(generator).__name__}"
    )


def derive_seed(seed: int, name: str) -> int:
    """A 63-bit seed derived from (seed, name) with BLAKE2b.

    Stable across Python processes and versions (unlike ``hash``), so a
    parameter's stream depends only on the model seed and its qualified name.
    """
    seed = check_seed(seed)
    digest = hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & MAX_SEED


def derive_generator(
    seed: int, name: str, device: torch.device | str | None = None
) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with :func:`derive_seed`."""
    generator = torch.Generator(device=device if device is not None else "cpu")
    generator.manual_seed(derive_seed(seed, name))
    return generator


def _torch_generator(generator: GeneratorLike, out: torch.Tensor) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    raise AssertionError("counter streams are dispatched before this point")


def normal_(
    out: torch.Tensor, mean: float = 0.0, std: float = 1.0, generator: GeneratorLike = None
) -> torch.Tensor:
    """Fill ``out`` with N(mean, std^2) in place."""
    if isinstance(generator, CounterStream):
        return generator.normal_(out, mean, std)
    return out.normal_(mean, std, generator=_torch_generator(generator, out))


def uniform_(
    out: torch.Tensor, low: float = 0.0, high: float = 1.0, generator: GeneratorLike = None
) -> torch.Tensor:
    """Fill ``out`` with U[low, high) in place."""
    if isinstance(generator, CounterStream):
        return generator.uniform_(out, low, high)
    return out.uniform_(low, high, generator=_torch_generator(generator, out))


def normal_mass(a: float, b: float) -> float:
    """P(a <= Z <= b) for a standard normal Z; a and b may be infinite.

    An interval on one side of 0 is written with erfc of that side's tail,
    erfc(|a| / sqrt 2) - erfc(|b| / sqrt 2), which keeps full relative
    precision far out ([8, 9] holds 6.2e-16, where erf(b) - erf(a) rounds
    to 0); an interval across 0 uses erf, whose difference cannot cancel.

    >>> round(normal_mass(-2.0, 2.0), 6)
    0.9545
    """
    root2 = math.sqrt(2.0)
    if a >= 0:
        return 0.5 * (math.erfc(a / root2) - math.erfc(b / root2))
    if b <= 0:
        return 0.5 * (math.erfc(-b / root2) - math.erfc(-a / root2))
    return 0.5 * (math.erf(b / root2) - math.erf(a / root2))


def _inside_normals(
    count: int,
    mean: float,
    std: float,
    low: float,
    high: float,
    mass: float,
    like: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``count`` draws of N(mean, std^2) that fall in [low, high], by rejection on small batches."""
    kept: list[torch.Tensor] = []
    missing = count
    while missing > 0:
        batch = torch.empty(int(missing / mass * 1.1) + 32, dtype=like.dtype, device=like.device)
        batch.normal_(mean, std, generator=generator)
        inside = batch[(batch >= low) & (batch <= high)]
        kept.append(inside)
        missing -= inside.numel()
    return torch.cat(kept)[:count]


def _inverse_cdf_fill_(
    flat: torch.Tensor, a: float, b: float, generator: torch.Generator | None
) -> None:
    """Standard normal truncated to [a, b] by inverting the CDF, in float64.

    An interval on the positive side is mirrored to the negative side, where
    Phi(x) = erfc(-x / sqrt 2) / 2 keeps full relative precision far into the
    tail (Phi(-30) ~ 5e-198 is still a normal float64), so [8, 9] or [20, 21]
    get the right shape instead of collapsing onto a bound.
    """
    mirrored = a > 0.0
    low, high = (-b, -a) if mirrored else (a, b)
    cdf_low = 0.5 * math.erfc(-low / math.sqrt(2.0))
    cdf_high = 0.5 * math.erfc(-high / math.sqrt(2.0))
    if not cdf_high > cdf_low:
        raise ValueError(
            f"truncation interval [{a}, {b}] (in units of std) holds no representable "
            "normal mass; choose bounds within about 37 std of the mean"
        )
    u = torch.empty(flat.numel(), dtype=torch.float64, device=flat.device)
    u.uniform_(cdf_low, cdf_high, generator=generator)
    # a one-sided interval has cdf_low = 0, whose inverse is -inf
    u.clamp_(min=torch.finfo(torch.float64).tiny)
    values = torch.special.ndtri(u).clamp_(low, high)
    if mirrored:
        values.neg_()
    flat.copy_(values)


def truncated_normal_(
    out: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: GeneratorLike = None,
) -> torch.Tensor:
    """Fill ``out`` with N(mean, std^2) truncated to [mean + a*std, mean + b*std].

    ``a`` and ``b`` are in units of the pre-truncation ``std``. Where the
    interval holds at least 30% of the normal mass the values come from
    rejection: draw normals, redraw only the ones outside (for +-2 sigma about
    5% per round), which costs little more than one normal fill. Narrow or
    far-out intervals use the inverse CDF in float64 (mirrored to the lower
    tail, where it stays precise). Bounds may be infinite for one-sided
    truncation.
    """
    if not a < b:
        raise ValueError(f"truncation bounds must satisfy a < b, got a={a}, b={b}")
    if isinstance(generator, CounterStream):
        return generator.truncated_normal_(out, mean, std, a, b)
    torch_gen = _torch_generator(generator, out)
    if out.numel() == 0:
        return out
    flat = out.view(-1) if out.is_contiguous() else torch.empty(out.numel(), dtype=out.dtype, device=out.device)
    mass = normal_mass(a, b)
    if mass >= 0.3:
        # sample at the final scale so that no extra pass over the tensor is needed
        low, high = mean + a * std, mean + b * std
        flat.normal_(mean, std, generator=torch_gen)
        outside = (flat < low) | (flat > high)
        count = int(torch.count_nonzero(outside))
        if count:
            flat.masked_scatter_(outside, _inside_normals(count, mean, std, low, high, mass, flat, torch_gen))
    else:
        _inverse_cdf_fill_(flat, a, b, torch_gen)
        if std != 1.0:
            flat.mul_(std)
        if mean != 0.0:
            flat.add_(mean)
    if flat.data_ptr() != out.data_ptr():
        out.copy_(flat.view_as(out))
    return out
