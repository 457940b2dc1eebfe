"""``Keyed``: the counter-based generator whose values are a pure function of (seed, name, index).

    >>> import torch, initlab
    >>> stream = initlab.rng.Keyed(0).child("encoder.layer0.weight")
    >>> w = torch.empty(1024, 1024)
    >>> _ = stream.normal_(w, 0.0, 0.02)                          # whole tensor
    >>> part = torch.empty(512, 1024)
    >>> _ = stream.window(512 * 1024).normal_(part, 0.0, 0.02)    # rows 512.. alone
    >>> torch.equal(part, w[512:])
    True

Element ``i`` of a stream is computed from Philox4x32-10 (Salmon et al. 2011)
keyed by a 64-bit BLAKE2b digest of (seed, name), at counter ``i // 4`` (see
:mod:`initlab.rng.philox` for the exact maps). Nothing is sequential, so

* any slice ``[start, stop)`` can be generated alone (``window``);
* the values do not depend on chunking, thread count, device or sharding;
* parameters whose names differ by one character get unrelated streams.

On CPU the fills run in compiled numba kernels over all cores when numba is
installed, otherwise (and on other devices) in plain PyTorch; both give the
same bits (:func:`set_backend` picks one explicitly).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch

from initlab.rng import fallback, gpu
from initlab.rng.checks import MAX_SEED, check_int, check_number, check_seed
from initlab.rng.streams import normal_mass

__all__ = [
    "ALGORITHM",
    "MAX_INDEX",
    "MAX_SEED",
    "MAX_ATTEMPTS",
    "Keyed",
    "KeySpace",
    "stream_key",
    "check_unique_names",
    "TruncationPlan",
    "truncation_plan",
    "set_backend",
    "get_backend",
    "use_backend",
    "set_threads",
    "get_threads",
]

ALGORITHM = "philox4x32-10"
MAX_INDEX = 2**62
MAX_ATTEMPTS = 1000
SMALL_FILL = 1 << 14  # below this many elements the PyTorch backend is faster than a kernel launch
BACKENDS = ("auto", "numba", "torch")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_backend = os.environ.get("INITLAB_RNG_BACKEND", "auto")
if _backend not in BACKENDS:  # a bad environment value must not make the import fail
    _backend = "auto"


# -- backend selection -----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _kernels() -> ModuleType:
    """The compiled kernels, imported on first use so that ``import initlab`` stays light."""
    from initlab.rng import kernels

    return kernels


def set_backend(name: str) -> None:
    """Choose the CPU backend: ``"auto"`` (numba when installed), ``"numba"`` or ``"torch"``.

    Both give identical values; the choice only changes speed. Float32
    uniform and normal fills of CUDA tensors run as Triton kernels where
    Triton is installed (``"torch"`` turns them off too), and other non-CPU
    fills use the PyTorch backend; every path gives the same bits.
    """
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "numba" and not (_numba_installed() and _kernels().available()):
        reason = _kernels().unavailable_reason() if _numba_installed() else "numba is not installed"
        raise ValueError(f"backend 'numba' is unavailable: {reason}")
    _backend = name


def get_backend() -> str:
    """The backend CPU fills use now: ``"numba"`` or ``"torch"``."""
    if _backend == "torch" or not _numba_installed():
        return "torch"
    return "numba"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: ``with use_backend("torch"): ...`` restores the previous choice on exit."""
    global _backend
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        _backend = previous


def set_threads(count: int) -> None:
    """Threads the compiled kernels use (1 .. cores); values never depend on it."""
    check_int("threads", count, minimum=1)
    cores = os.cpu_count() or 1
    if count > cores:
        raise ValueError(f"threads must be at most the {cores} cores of this machine, got {count}")
    if _numba_installed():
        _kernels().set_threads(count)


def get_threads() -> int:
    """Threads the compiled kernels use now (1 without numba)."""
    return int(_kernels().get_threads()) if _numba_installed() else 1


# -- keys ----------------------------------------------------------------------------------
def _check_name(name: object, argument: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError(f"{argument} must be a non-empty string")
    if "\x00" in name:
        raise ValueError(f"{argument} must not contain NUL characters, got {name!r}")
    return name


def _check_index(value: object, argument: str) -> int:
    index = check_int(argument, value, minimum=0)
    if index > MAX_INDEX:
        raise ValueError(f"{argument} must be <= 2**62 (the last element index of a stream), got {index}")
    return index


@functools.lru_cache(maxsize=65536)
def stream_key(seed: int, name: str) -> tuple[int, int]:
    """The Philox key (two 32-bit words) of the stream (seed, name): BLAKE2b-64 of both."""
    digest = hashlib.blake2b(
        f"{seed}\x00{name}".encode(), digest_size=8, person=b"initlab.keyed"
    ).digest()
    value = int.from_bytes(digest, "little")
    return value & 0xFFFFFFFF, value >> 32


# -- bounds in the target dtype -----------------------------------------------------------
_INT_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}


def _step(value: torch.Tensor, upward: bool) -> torch.Tensor:
    """The next representable value of ``value``'s dtype above (or below) it."""
    if value.item() == 0.0:
        tiny = torch.tensor(1, dtype=_INT_VIEW[value.dtype]).view(value.dtype)
        return tiny if upward else -tiny
    bits = value.view(_INT_VIEW[value.dtype]).clone()
    grows = (value.item() > 0) == upward
    bits += 1 if grows else -1
    return bits.view(value.dtype)


def _inward(bound: float, dtype: torch.dtype, upper: bool, strict: bool = False) -> float:
    """The representable value of ``dtype`` nearest to ``bound`` on its inner side.

    Lower bounds round up, upper bounds round down; ``strict`` excludes the
    bound itself (for the open end of [low, high)).
    """
    if math.isinf(bound):
        return bound
    value = torch.tensor(bound, dtype=torch.float64).to(dtype)
    if math.isinf(value.item()):
        value = torch.tensor(torch.finfo(dtype).max if bound > 0 else -torch.finfo(dtype).max, dtype=dtype)
    if upper:
        while value.item() > bound or (strict and value.item() >= bound):
            value = _step(value, upward=False)
    else:
        while value.item() < bound:
            value = _step(value, upward=True)
    return float(value.item())


def _use_gpu_kernels(buffer: torch.Tensor) -> bool:
    """Float32 fills of CUDA tensors run as Triton kernels where Triton is installed (same bits)."""
    return buffer.device.type == "cuda" and buffer.dtype == torch.float32 and _backend != "torch" and gpu.available()


@functools.lru_cache(maxsize=256)
def _clamp_bounds(lower: float, upper: float, dtype: torch.dtype, open_upper: bool) -> tuple[float, float]:
    lo = _inward(lower, dtype, upper=False)
    hi = _inward(upper, dtype, upper=True, strict=open_upper)
    if hi < lo:  # no representable value inside: use the nearest to the middle
        middle = float(torch.tensor((lower + upper) / 2, dtype=torch.float64).to(dtype).item())
        lo = hi = middle
    return lo, hi


# -- truncated normal: which proposal ---------------------------------------------------
@dataclass(frozen=True)
class TruncationPlan:
    """How a standard normal is restricted to [a, b]: the proposal and its constants.

    mode 0: normal proposals (attempt 0 is the stream's normal value);
    1: uniform proposal on [a, b]; 2: exponential proposal (Robert 1995) on
    the tail [a, b] with 0 < a, mirrored when ``flip``. ``acceptance`` is the
    probability that one attempt succeeds.
    """

    mode: int
    a: float
    b: float
    width: float
    alpha: float
    m2: float
    flip: bool
    acceptance: float


@functools.lru_cache(maxsize=1024)
def truncation_plan(a: float, b: float) -> TruncationPlan:
    """Pick the proposal with the best acceptance for N(0, 1) restricted to [a, b]."""
    mass = normal_mass(a, b)
    normal = TruncationPlan(0, a, b, 0.0, 0.0, 0.0, False, mass)
    if mass >= 0.5:
        return normal
    candidates = [normal]
    if math.isfinite(a) and math.isfinite(b):
        nearest = 0.0 if a <= 0.0 <= b else min(abs(a), abs(b))
        acceptance = mass * math.sqrt(2 * math.pi) / ((b - a) * math.exp(-0.5 * nearest * nearest))
        candidates.append(TruncationPlan(1, a, b, b - a, 0.0, nearest * nearest, False, acceptance))
    if a > 0 or b < 0:
        flip = b < 0
        tail_a, tail_b = (-b, -a) if flip else (a, b)
        alpha = 0.5 * (tail_a + math.sqrt(tail_a * tail_a + 4.0))
        acceptance = math.sqrt(2 * math.pi) * mass * alpha * math.exp(alpha * tail_a - 0.5 * alpha * alpha)
        candidates.append(TruncationPlan(2, tail_a, tail_b, 0.0, alpha, 0.0, flip, acceptance))
    return max(candidates, key=lambda plan: plan.acceptance)


def _run_kernel(
    buffer: torch.Tensor,
    start: int,
    kind: int,
    k0: int,
    k1: int,
    first: float,
    second: float,
    lo: float,
    hi: float,
    plan: TruncationPlan | None = None,
) -> None:
    """Call the compiled fill: kind 0 uniform (low, span), 1 normal (mean, std), 2 truncated."""
    kernels = _kernels()
    bits = 32 if buffer.dtype == torch.float32 else 64
    array = buffer.detach().numpy()
    key = kernels.key_words(k0, k1)
    threads = kernels.get_threads()
    with kernels.PARALLEL_LOCK:
        _call_kernel(kernels, bits, kind, array, start, threads, key, first, second, lo, hi, plan)


def _call_kernel(kernels: ModuleType, bits: int, kind: int, array: Any, start: int, threads: int,
                 key: tuple[Any, Any], first: float, second: float, lo: float, hi: float,
                 plan: TruncationPlan | None) -> None:
    if kind == 0:
        kernels.KERNELS[f"uniform{bits}"](array, start, threads, *key, first, second, lo, hi)
    elif kind == 1:
        kernels.KERNELS[f"normal{bits}"](array, start, threads, *key, first, second)
    else:
        assert plan is not None
        kernels.KERNELS[f"truncated{bits}"](
            array, start, threads, *key, first, second, lo, hi, plan.mode, plan.a, plan.b,
            plan.width, plan.alpha, plan.m2, -1.0 if plan.flip else 1.0, MAX_ATTEMPTS,
        )


# -- the stream ------------------------------------------------------------------------
def _check_number(argument: str, value: object) -> float:
    """A number or a one-element tensor as a float; +-inf is allowed (one-sided truncation), NaN is not."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return check_number(argument, value, finite=False)


@dataclass(frozen=True)
class Keyed:
    """A counter-based random stream: element i is a pure function of (seed, name, i).

    ``Keyed(seed)`` is the root of a key space; ``child(name)`` derives the
    stream of one parameter (``Keyed(0).child("a").child("b")`` is
    ``Keyed(0).child("a.b")``); ``window(start, stop)`` views elements
    ``[start, stop)`` so that a shard fills itself alone. Fills accept
    float16, bfloat16, float32 and float64 tensors on any device; low
    precision tensors get float32 values rounded, then kept inside the
    distribution's bounds.

    Implements the :class:`initlab.rng.CounterStream` protocol, so every
    scheme takes it as ``generator=``.
    """

    seed: int
    name: str = ""
    offset: int = 0
    length: int | None = None
    _key: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", check_seed(self.seed))
        if not isinstance(self.name, str) or "\x00" in self.name:
            raise ValueError(f"name must be a str without NUL characters, got {self.name!r}")
        _check_index(self.offset, "offset")
        if self.length is not None:
            _check_index(self.length, "length")
            if self.offset + self.length > MAX_INDEX:
                raise ValueError(
                    f"window [{self.offset}, {self.offset + self.length}) ends past 2**62, the stream's length"
                )
        object.__setattr__(self, "_key", stream_key(self.seed, self.name))

    # -- deriving streams ----------------------------------------------------------------
    @property
    def key(self) -> tuple[int, int]:
        """The Philox key words (k0, k1)."""
        return self._key

    def child(self, name: str) -> Keyed:
        """The stream named ``self.name + "." + name`` (a parameter, or a part of one)."""
        _check_name(name)
        full = f"{self.name}.{name}" if self.name else name
        return Keyed(self.seed, full)

    def window(self, start: int, stop: int | None = None) -> Keyed:
        """A view of elements ``[start, stop)`` (relative to this view); fills write them from index 0.

        With ``stop=None`` the view is open-ended: a fill of n elements
        writes elements start .. start + n - 1.
        """
        _check_index(start, "start")
        if self.length is not None and start > self.length:
            raise ValueError(f"start={start} is past the end of this window of length {self.length}")
        if stop is None:
            length = None if self.length is None else self.length - start
        else:
            _check_index(stop, "stop")
            if stop < start:
                raise ValueError(f"window needs start <= stop, got start={start}, stop={stop}")
            if self.length is not None and stop > self.length:
                raise ValueError(f"stop={stop} is past the end of this window of length {self.length}")
            length = stop - start
        return Keyed(self.seed, self.name, self.offset + start, length)

    # -- fills -------------------------------------------------------------------------------
    def _prepare(self, out: torch.Tensor, method: str) -> torch.Tensor | None:
        """Validate ``out``; the float32/float64 1-D buffer to compute into, or None for nothing to do."""
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"Keyed.{method}: out must be a torch.Tensor, got {type(out).__name__}")
        if out.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"Keyed.{method}: out has dtype {out.dtype}; accepted: float16, bfloat16, float32, float64"
            )
        count = out.numel()
        if self.length is not None and count != self.length:
            raise ValueError(
                f"Keyed.{method}: out has {count} elements but the window "
                f"[{self.offset}, {self.offset + self.length}) holds {self.length}"
            )
        if self.offset + count > MAX_INDEX:
            raise ValueError(
                f"Keyed.{method}: elements [{self.offset}, {self.offset + count}) run past 2**62, the stream's length"
            )
        if count == 0 or out.is_meta:
            return None
        compute = torch.float64 if out.dtype == torch.float64 else torch.float32
        if out.dtype == compute and out.is_contiguous():
            return out.view(-1)
        return torch.empty(count, dtype=compute, device=out.device)

    def _use_kernels(self, buffer: torch.Tensor) -> bool:
        # the backends agree bit for bit, so small fills skip the kernels' launch cost
        # unless the compiled backend was asked for by name
        if buffer.device.type != "cpu" or get_backend() != "numba":
            return False
        return _backend == "numba" or buffer.numel() >= SMALL_FILL

    @staticmethod
    def _finish(out: torch.Tensor, buffer: torch.Tensor, lower: float, upper: float, open_upper: bool) -> torch.Tensor:
        if buffer.data_ptr() == out.data_ptr() and buffer.dtype == out.dtype:
            return out
        with torch.no_grad():
            out.copy_(buffer.view(out.shape))
            if out.dtype in (torch.float16, torch.bfloat16) and (math.isfinite(lower) or math.isfinite(upper)):
                lo, hi = _clamp_bounds(lower, upper, out.dtype, open_upper)
                out.clamp_(lo, hi)
        return out

    def uniform_(self, out: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """Fill ``out`` with U[low, high) in place: low + (high - low) u, u on the 2^-24 (2^-53 for float64) grid."""
        low = _check_number("low", low)
        high = _check_number("high", high)
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ValueError(f"Keyed.uniform_: needs finite low < high, got low={low}, high={high}")
        buffer = self._prepare(out, "uniform_")
        if buffer is None:
            return out
        lo, hi = _clamp_bounds(low, high, buffer.dtype, open_upper=True)
        k0, k1 = self._key
        with torch.no_grad():
            if self._use_kernels(buffer):
                _run_kernel(buffer, self.offset, 0, k0, k1, low, high - low, lo, hi)
            elif _use_gpu_kernels(buffer):
                gpu.uniform_f32_(buffer, self.offset, k0, k1, low, high - low, lo, hi)
            else:
                fallback.uniform_range_(buffer, self.offset, k0, k1, low, high - low, lo, hi)
        return self._finish(out, buffer, low, high, open_upper=True)

    def normal_(self, out: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        """Fill ``out`` with N(mean, std^2) in place (Box-Muller on the counter's words)."""
        mean = _check_number("mean", mean)
        std = _check_number("std", std)
        if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
            raise ValueError(f"Keyed.normal_: needs finite mean and std >= 0, got mean={mean}, std={std}")
        buffer = self._prepare(out, "normal_")
        if buffer is None:
            return out
        k0, k1 = self._key
        with torch.no_grad():
            if self._use_kernels(buffer):
                _run_kernel(buffer, self.offset, 1, k0, k1, mean, std, -math.inf, math.inf)
            elif _use_gpu_kernels(buffer):
                gpu.normal_f32_(buffer, self.offset, k0, k1, mean, std)
            else:
                fallback.normal_range_(buffer, self.offset, k0, k1, mean, std)
        return self._finish(out, buffer, -math.inf, math.inf, open_upper=False)

    def truncated_normal_(
        self, out: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
    ) -> torch.Tensor:
        """Fill ``out`` with N(mean, std^2) restricted to [mean + a std, mean + b std] in place.

        ``a``, ``b`` are in units of ``std`` (the std before truncation) and
        may be infinite. Each element is drawn by rejection with its own
        attempt counter: attempt 0 is the stream's normal value (so inside
        [a, b] the values equal ``normal_``'s), attempts 1, 2, ... use
        counters (i, attempt, 1). Narrow or one-sided far intervals switch to
        a uniform or exponential proposal (Robert 1995, "Simulation of
        truncated normal variables"), chosen by acceptance rate. After
        1000 failed attempts (probability about 2^-1000 for the chosen proposal) the last proposal is
        clamped. Values lie in the closed interval at every dtype.
        """
        mean = _check_number("mean", mean)
        std = _check_number("std", std)
        a = _check_number("a", a)
        b = _check_number("b", b)
        if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
            raise ValueError(f"Keyed.truncated_normal_: needs finite mean and std >= 0, got mean={mean}, std={std}")
        if not a < b:
            raise ValueError(f"Keyed.truncated_normal_: bounds need a < b (in units of std), got a={a}, b={b}")
        if a == -math.inf and b == math.inf:
            return self.normal_(out, mean, std)
        buffer = self._prepare(out, "truncated_normal_")
        if buffer is None:
            return out
        plan = truncation_plan(a, b)
        lower = mean + a * std if math.isfinite(a) else -math.inf
        upper = mean + b * std if math.isfinite(b) else math.inf
        lo, hi = _clamp_bounds(lower, upper, buffer.dtype, open_upper=False)
        k0, k1 = self._key
        arguments = (
            mean, std, lo, hi, plan.mode, plan.a, plan.b, plan.width, plan.alpha, plan.m2, plan.flip, MAX_ATTEMPTS
        )
        with torch.no_grad():
            if self._use_kernels(buffer):
                _run_kernel(buffer, self.offset, 2, k0, k1, mean, std, lo, hi, plan)
            else:
                if plan.mode == 0 and _use_gpu_kernels(buffer):
                    gpu.truncated_f32_(buffer, self.offset, k0, k1, mean, std, lo, hi, plan.a, plan.b, MAX_ATTEMPTS)
                else:
                    fallback.truncated_range_(buffer, self.offset, k0, k1, *arguments)
        return self._finish(out, buffer, lower, upper, open_upper=False)

    def bernoulli_(self, out: torch.Tensor, p: float = 0.5) -> torch.Tensor:
        """Fill ``out`` with 1 (probability p) or 0 in place: element i is 1 when word i < round(p 2^32).

        ``out`` may be a float tensor or a bool tensor (a mask).
        """
        p = _check_number("p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Keyed.bernoulli_: p must be in [0, 1], got {p}")
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"Keyed.bernoulli_: out must be a torch.Tensor, got {type(out).__name__}")
        if out.dtype not in (*_FLOAT_DTYPES, torch.bool):
            raise TypeError(
                f"Keyed.bernoulli_: out has dtype {out.dtype}; accepted: bool, float16, bfloat16, float32, float64"
            )
        count = out.numel()
        if self.length is not None and count != self.length:
            raise ValueError(f"Keyed.bernoulli_: out has {count} elements but the window holds {self.length}")
        if count == 0 or out.is_meta:
            return out
        threshold = round(p * 2**32)
        with torch.no_grad():
            words = self.words(count, device=out.device)
            out.copy_((words < threshold).view(out.shape))
        return out

    def words(self, count: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The raw 32-bit words [offset, offset + count) of the stream, as int64 (for sparse masks, permutations)."""
        _check_index(count, "count")
        if self.length is not None and count > self.length:
            raise ValueError(f"count={count} is more than this window's {self.length} elements")
        if self.offset + count > MAX_INDEX:
            raise ValueError(f"words [{self.offset}, {self.offset + count}) run past 2**62")
        k0, k1 = self._key
        return fallback.words_range(self.offset, self.offset + count, k0, k1, device)

    def __str__(self) -> str:
        window = "" if self.offset == 0 and self.length is None else (
            f"[{self.offset}:{'' if self.length is None else self.offset + self.length}]"
        )
        return f"Keyed(seed={self.seed}, name={self.name!r}){window}"


class KeySpace:
    """The streams of one model: ``stream(name)`` hands out each name once.

    ``Keyed.child`` is pure and may be called any number of times; a
    KeySpace is what a model-wide init uses so that two parameters cannot
    silently share a stream (e.g. a name produced twice by a buggy walk over
    modules).
    """

    def __init__(self, seed: int) -> None:
        self.root = Keyed(seed)
        self._claimed: set[str] = set()

    @property
    def seed(self) -> int:
        return self.root.seed

    @property
    def names(self) -> tuple[str, ...]:
        """The names handed out so far, sorted."""
        return tuple(sorted(self._claimed))

    def stream(self, name: str) -> Keyed:
        """The stream of parameter ``name``; ValueError if it was handed out before."""
        _check_name(name)
        if name in self._claimed:
            raise ValueError(
                f"duplicate parameter name {name!r} in the key space of seed {self.seed}: "
                "two parameters would share one random stream; give them distinct names"
            )
        self._claimed.add(name)
        return self.root.child(name)

    def __repr__(self) -> str:
        return f"KeySpace(seed={self.seed}, streams={len(self._claimed)})"


def check_unique_names(names: Iterable[str]) -> None:
    """ValueError naming the first name that occurs twice in ``names``."""
    seen: set[str] = set()
    for name in names:
        _check_name(name)
        if name in seen:
            raise ValueError(
                f"duplicate parameter name {name!r}: names must be unique within one key space"
            )
        seen.add(name)
