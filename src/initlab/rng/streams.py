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
from typing import Protocol, Union, runtime_checkable

import torch

__all__ = [
    "CounterStream",
    "GeneratorLike",
    "derive_seed",
    "derive_generator",
    "normal_",
    "uniform_",
    "truncated_normal_",
    "check_generator",
]

MAX_SEED = 2**63 - 1


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


GeneratorLike = Union[None, torch.Generator, CounterStream]


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
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**63 - 1], got {seed}")
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


def _normal_mass(a: float, b: float) -> float:
    """P(a <= Z <= b) for a standard normal Z."""
    return 0.5 * (math.erf(b / math.sqrt(2.0)) - math.erf(a / math.sqrt(2.0)))


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
    far-out intervals use the inverse CDF.
    """
    if not a < b:
        raise ValueError(f"truncation bounds must satisfy a < b, got a={a}, b={b}")
    if isinstance(generator, CounterStream):
        return generator.truncated_normal_(out, mean, std, a, b)
    torch_gen = _torch_generator(generator, out)
    if out.numel() == 0:
        return out
    flat = out.view(-1) if out.is_contiguous() else torch.empty(out.numel(), dtype=out.dtype, device=out.device)
    if _normal_mass(a, b) >= 0.3:
        flat.normal_(0.0, 1.0, generator=torch_gen)
        outside = ((flat < a) | (flat > b)).nonzero().squeeze(1)
        while outside.numel() > 0:
            redraw = torch.empty(outside.numel(), dtype=flat.dtype, device=flat.device)
            redraw.normal_(0.0, 1.0, generator=torch_gen)
            flat[outside] = redraw
            still = (redraw < a) | (redraw > b)
            outside = outside[still]
    else:
        # inverse CDF on the clipped uniform range, computed in float64 for accuracy in the tails
        cdf_a = 0.5 * (1.0 + math.erf(a / math.sqrt(2.0)))
        cdf_b = 0.5 * (1.0 + math.erf(b / math.sqrt(2.0)))
        u = torch.empty(flat.numel(), dtype=torch.float64, device=flat.device)
        u.uniform_(2.0 * cdf_a - 1.0, 2.0 * cdf_b - 1.0, generator=torch_gen)
        flat.copy_(torch.erfinv(u).mul_(math.sqrt(2.0)).clamp_(a, b))
    if std != 1.0:
        flat.mul_(std)
    if mean != 0.0:
        flat.add_(mean)
    if flat.data_ptr() != out.data_ptr():
        out.copy_(flat.view_as(out))
    return out
