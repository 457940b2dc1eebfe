"""Compiled CPU kernels of the keyed generator (numba, parallel over the cores).

Each kernel fills ``out`` (1-D, contiguous) with the stream's elements
``[start, start + len(out))``. The operations and their order are those of
:mod:`initlab.rng.philox`, which defines the values; tests check that the two
agree bit for bit. Blocks of 4 (float32) or 2 (float64) elements are
independent, so the loop splits over threads in chunks of whole blocks and
the result cannot depend on the thread count.

Importing this module needs numba; :func:`available` says whether it could.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np

from initlab.rng import philox as spec

try:  # numba is an optional dependency (extra "fast")
    import numba
    from numba import njit, prange
    from numba.core import types
    from numba.extending import intrinsic

    _NUMBA_ERROR: str | None = None
except ImportError as error:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]  # the module's stand-in when numba is absent
    _NUMBA_ERROR = str(error)

__all__ = ["available", "unavailable_reason", "KERNELS", "set_threads", "get_threads", "PARALLEL_LOCK"]

# held while one of initlab's parallel numba kernels runs (these fills, the probe's histogram counts):
# numba's "workqueue" threading layer, its fallback where neither OpenMP nor TBB loads, aborts the
# process when two threads enter parallel regions at once; one at a time is safe under every layer
PARALLEL_LOCK = threading.Lock()

CHUNK_BLOCKS = 2048


def available() -> bool:
    """True when numba imported and the kernels can be compiled."""
    return numba is not None


def unavailable_reason() -> str | None:
    """Why the compiled kernels are unavailable (None when they are)."""
    return _NUMBA_ERROR


def set_threads(count: int) -> None:
    """Set the number of threads the kernels use (1 .. number of cores)."""
    if numba is not None:
        numba.set_num_threads(count)


def key_words(k0: int, k1: int) -> tuple[Any, Any]:
    """The key words as the unsigned 64-bit scalars the kernels take."""
    return np.uint64(k0), np.uint64(k1)


def get_threads() -> int:
    """The number of threads the kernels use now."""
    return int(numba.get_num_threads()) if numba is not None else 1


KERNELS: dict[str, Any] = {}

if numba is not None:
    _M32 = np.uint64(spec.MASK32)
    _M30 = np.uint64(spec.MASK30)
    # "numpy" error model: a division by zero would give inf rather than raise, so numba adds
    # no exception branch to the loops and LLVM can vectorize them (none of the divisors is zero)
    _jit = functools.partial(njit, error_model="numpy")

    _MUL0 = np.uint64(spec.PHILOX_M0)
    _MUL1 = np.uint64(spec.PHILOX_M1)
    _WEYL0 = np.uint64(spec.PHILOX_W0)
    _WEYL1 = np.uint64(spec.PHILOX_W1)
    _U0 = np.uint64(0)
    _U1 = np.uint64(1)
    _U5 = np.uint64(5)
    _U6 = np.uint64(6)
    _U8 = np.uint64(8)
    _U9 = np.uint64(9)
    _U23 = np.uint64(23)
    _U26 = np.uint64(26)
    _U30 = np.uint64(30)
    _U32 = np.uint64(32)
    _MANTISSA = np.int64(spec.MANTISSA_MASK)
    _EXP_ONE = np.int64(spec.EXPONENT_ONE)
    _LN2 = spec.LN2
    _SQRT2 = spec.SQRT2
    _HALF_PI = spec.HALF_PI
    _SQRT_HALF = spec.SQRT_HALF
    _TWO_M24 = spec.TWO_M24
    _TWO_M30 = spec.TWO_M30
    _TWO_M53 = spec.TWO_M53
    _LOG32 = tuple(reversed(spec.LOG_COEFFS_F32))
    _LOG64 = tuple(reversed(spec.LOG_COEFFS_F64))
    _SIN32 = tuple(reversed(spec.SIN_COEFFS_F32))
    _COS32 = tuple(reversed(spec.COS_COEFFS_F32))
    _SIN64 = tuple(reversed(spec.SIN_COEFFS_F64))
    _COS64 = tuple(reversed(spec.COS_COEFFS_F64))

    @intrinsic
    def _bits_of(typingctx: Any, value: Any) -> Any:
        signature = types.int64(types.float64)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(types.int64))

        return signature, codegen

    @intrinsic
    def _float_of(typingctx: Any, value: Any) -> Any:
        signature = types.float64(types.int64)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return signature, codegen

    @intrinsic
    def _trailing_zeros(typingctx: Any, value: Any) -> Any:
        signature = types.uint64(types.uint64)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.cttz(args[0], context.get_constant(types.boolean, True))

        return signature, codegen

    @_jit(inline="always")
    def _philox(c0, c1, c2, c3, k0, k1):
        for _ in range(10):
            product0 = _MUL0 * c0
            product1 = _MUL1 * c2
            n0 = (product1 >> _U32) ^ c1 ^ k0
            n2 = (product0 >> _U32) ^ c3 ^ k1
            c1 = product1 & _M32
            c3 = product0 & _M32
            c0 = n0
            c2 = n2
            k0 = (k0 + _WEYL0) & _M32
            k1 = (k1 + _WEYL1) & _M32
        return c0, c1, c2, c3

    @_jit(inline="always")
    def _horner(x, reversed_coeffs):
        result = reversed_coeffs[0]
        for index in range(1, len(reversed_coeffs)):
            result = result * x + reversed_coeffs[index]
        return result

    @_jit(inline="always")
    def _log_count(count, shift, reversed_coeffs):
        bits = _bits_of(count)
        exponent = (bits >> 52) - 1023
        mantissa = _float_of((bits & _MANTISSA) | _EXP_ONE)
        large = mantissa > _SQRT2
        mantissa = mantissa * 0.5 if large else mantissa
        exponent = exponent + (1 if large else 0) - shift
        ratio = (mantissa - 1.0) / (mantissa + 1.0)
        return np.float64(exponent) * _LN2 + ratio * _horner(ratio * ratio, reversed_coeffs)

    @_jit(inline="always")
    def _cos_sin(quadrant, phase, sin_coeffs, cos_coeffs):
        square = phase * phase
        sine = phase * _horner(square, sin_coeffs)
        cosine = _horner(square, cos_coeffs)
        rotated_cos = (cosine - sine) * _SQRT_HALF
        rotated_sin = (cosine + sine) * _SQRT_HALF
        # quadrant q: odd q swaps cos and sin; signs (+,+), (-,+), (-,-), (+,-); branch-free to vectorize
        swap = (quadrant & _U1) == _U1
        first = rotated_sin if swap else rotated_cos
        second = rotated_cos if swap else rotated_sin
        cos_sign = -1.0 if ((quadrant ^ (quadrant >> _U1)) & _U1) == _U1 else 1.0
        sin_sign = -1.0 if (quadrant >> _U1) == _U1 else 1.0
        return first * cos_sign, second * sin_sign

    @_jit(inline="always")
    def _normal_pair32(radius_word, angle_word):
        log_u = _log_count(np.float64(radius_word + _U1), 32, _LOG32)
        radius = math.sqrt(-2.0 * log_u)
        phase = (np.float64(angle_word & _M30) * _TWO_M30 - 0.5) * _HALF_PI
        cosine, sine = _cos_sin(angle_word >> _U30, phase, _SIN32, _COS32)
        return radius * cosine, radius * sine

    @_jit(inline="always")
    def _normal_pair64(w0, w1, w2, w3):
        count = ((w0 >> _U5) << _U26) + (w1 >> _U6) + _U1
        log_u = _log_count(np.float64(count), 53, _LOG64)
        radius = math.sqrt(-2.0 * log_u)
        fraction = ((w2 & _M30) << _U23) | (w3 >> _U9)
        phase = (np.float64(fraction) * _TWO_M53 - 0.5) * _HALF_PI
        cosine, sine = _cos_sin(w2 >> _U30, phase, _SIN64, _COS64)
        return radius * cosine, radius * sine

    @_jit(inline="always")
    def _uniform53(high_word, low_word):
        return np.float64(((high_word >> _U5) << _U26) + (low_word >> _U6)) * _TWO_M53

    @_jit(inline="always")
    def _log_uniform53(high_word, low_word):
        count = ((high_word >> _U5) << _U26) + (low_word >> _U6) + _U1
        return _log_count(np.float64(count), 53, _LOG64)

    @_jit
    def _retry(index, first_attempt, k0, k1, mode, a, b, width, alpha, m2, max_attempts):
        """A standard normal in [a, b] by rejection: attempts first_attempt, ... of element ``index``."""
        element = np.uint64(index)
        c0 = element & _M32
        c1 = element >> _U32
        x = 0.0
        for attempt in range(first_attempt, max_attempts + 1):
            w0, w1, w2, w3 = _philox(c0, c1, np.uint64(attempt), _U1, k0, k1)
            if mode == 0:
                x, _ = _normal_pair64(w0, w1, w2, w3)
                if x >= a and x <= b:
                    return x
            elif mode == 1:
                x = a + width * _uniform53(w0, w1)
                if _log_uniform53(w2, w3) <= (m2 - x * x) * 0.5:
                    return x
            else:
                x = a - _log_uniform53(w0, w1) / alpha
                distance = x - alpha
                if _log_uniform53(w2, w3) <= -0.5 * (distance * distance) and x <= b:
                    return x
        return min(max(x, a), b)

    # -- stages: words, then values ---------------------------------------------------------
    @_jit(inline="always")
    def _fill_words(words, first_block, blocks, k0, k1):
        for t in range(blocks):
            block = np.uint64(first_block + t)
            w0, w1, w2, w3 = _philox(block & _M32, block >> _U32, _U0, _U0, k0, k1)
            words[4 * t] = w0
            words[4 * t + 1] = w1
            words[4 * t + 2] = w2
            words[4 * t + 3] = w3

    @_jit(inline="always")
    def _uniform32_values(dest, words, count, low, span, lo, hi):
        for i in range(count):
            unit = np.float64(np.uint64(words[i]) >> _U8) * _TWO_M24
            dest[i] = min(max(np.float32(low + span * unit), lo), hi)

    @_jit(inline="always")
    def _normal32_values(dest, words, count, mean, std):
        for p in range(count // 2):
            z0, z1 = _normal_pair32(np.uint64(words[2 * p]), np.uint64(words[2 * p + 1]))
            dest[2 * p] = np.float32(mean + std * z0)
            dest[2 * p + 1] = np.float32(mean + std * z1)

    @_jit(inline="always")
    def _truncated32_values(dest, rejected, words, count, mean, std, lo, hi, a, b):
        for p in range(count // 2):
            z0, z1 = _normal_pair32(np.uint64(words[2 * p]), np.uint64(words[2 * p + 1]))
            dest[2 * p] = min(max(np.float32(mean + std * z0), lo), hi)
            dest[2 * p + 1] = min(max(np.float32(mean + std * z1), lo), hi)
            rejected[2 * p] = np.uint8(not ((z0 >= a) & (z0 <= b)))
            rejected[2 * p + 1] = np.uint8(not ((z1 >= a) & (z1 <= b)))

    @_jit(inline="always")
    def _uniform64_values(dest, words, count, low, span, lo, hi):
        for i in range(count):
            unit = _uniform53(np.uint64(words[2 * i]), np.uint64(words[2 * i + 1]))
            dest[i] = min(max(low + span * unit, lo), hi)

    @_jit(inline="always")
    def _normal64_values(dest, words, count, mean, std):
        for p in range(count // 2):
            z0, z1 = _normal_pair64(
                np.uint64(words[4 * p]), np.uint64(words[4 * p + 1]),
                np.uint64(words[4 * p + 2]), np.uint64(words[4 * p + 3]),
            )
            dest[2 * p] = mean + std * z0
            dest[2 * p + 1] = mean + std * z1

    @_jit(inline="always")
    def _truncated64_values(dest, rejected, words, count, mean, std, lo, hi, a, b):
        for p in range(count // 2):
            z0, z1 = _normal_pair64(
                np.uint64(words[4 * p]), np.uint64(words[4 * p + 1]),
                np.uint64(words[4 * p + 2]), np.uint64(words[4 * p + 3]),
            )
            dest[2 * p] = min(max(mean + std * z0, lo), hi)
            dest[2 * p + 1] = min(max(mean + std * z1, lo), hi)
            rejected[2 * p] = np.uint8(not ((z0 >= a) & (z0 <= b)))
            rejected[2 * p + 1] = np.uint8(not ((z1 >= a) & (z1 <= b)))

    @_jit
    def _retry_values(dest, first_index, count, k0, k1, mean, std, lo, hi, mode, a, b, width, alpha, m2, sign, max_attempts):
        for position in range(count):
            z = sign * _retry(first_index + position, 1, k0, k1, mode, a, b, width, alpha, m2, max_attempts)
            # clamping before the store's rounding equals clamping after it: lo, hi are representable
            dest[position] = min(max(mean + std * z, lo), hi)

    # -- kernels: chunks of whole blocks, dealt round-robin to the threads ------------------
    @_jit(inline="always")
    def _rejected_positions(flags, count, base, n, positions):
        """The positions p < count with flags[p] set and 0 <= base + p < n; returns how many.

        ``flags`` holds one byte per element; it is read eight bytes at a time
        and the set bytes are found by counting trailing zeros, so the cost is
        one load per eight elements plus one step per rejected element.
        """
        for position in range(count, (count + 7) // 8 * 8):
            flags[position] = 0
        if base < 0 or base + count > n:  # an edge chunk: elements outside the tensor never count
            for position in range(count):
                if base + position < 0 or base + position >= n:
                    flags[position] = 0
        words = flags.view(np.uint64)
        found = 0
        for group in range((count + 7) // 8):
            bits = words[group]
            while bits != _U0:
                positions[found] = 8 * group + np.int64(_trailing_zeros(bits) >> np.uint64(3))
                found += 1
                bits &= bits - _U1
        return found

    @_jit(inline="always")
    def _redraw_rejected(out, base, first_index, found, positions, proposals, k0, k1, mean, std, lo, hi, a, b, max_attempts):
        """Attempts 1, 2, ... for the rejected elements out[base + positions[:found]] (normal proposals).

        Each attempt draws the proposals of all elements still pending in one
        branch-free (vectorizable) loop, then stores the accepted ones and
        keeps the others for the next attempt. After ``max_attempts`` an
        element takes its last proposal clamped to [a, b].
        """
        attempt = 1
        while found > 0 and attempt <= max_attempts:
            counter = np.uint64(attempt)
            for r in range(found):
                element = np.uint64(first_index + positions[r])
                w0, w1, w2, w3 = _philox(element & _M32, element >> _U32, counter, _U1, k0, k1)
                proposal, _ = _normal_pair64(w0, w1, w2, w3)
                proposals[r] = proposal
            pending = 0
            for r in range(found):
                z = proposals[r]
                if z >= a and z <= b:
                    out[base + positions[r]] = min(max(mean + std * z, lo), hi)
                elif attempt == max_attempts:
                    out[base + positions[r]] = min(max(mean + std * min(max(z, a), b), lo), hi)
                else:
                    positions[pending] = positions[r]
                    pending += 1
            found = pending
            attempt += 1

    @_jit(inline="always")
    def _chunk_layout(chunk, first, last, start, per_block, n):
        begin = first + chunk * CHUNK_BLOCKS
        blocks = min(begin + CHUNK_BLOCKS, last + 1) - begin
        count = blocks * per_block
        base = per_block * begin - start
        return begin, blocks, count, base, (base >= 0 and base + count <= n)

    @_jit(inline="always")
    def _copy_in_range(out, values, base, count):
        n = out.shape[0]
        for position in range(count):
            target = base + position
            if 0 <= target < n:
                out[target] = values[position]

    # The six kernels below are written out per distribution and precision on
    # purpose: each is its own compiled function with a constant per_block and
    # value routine, cached on disk. Made by a factory they would be closures,
    # which numba's on-disk cache does not keep, and every process would pay
    # the compile again.
    @_jit(parallel=True, cache=True)
    def _uniform_kernel32(out, start, threads, k0, k1, low, span, lo, hi):
        per_block = 4
        n = out.shape[0]
        first = start // per_block
        last = (start + n - 1) // per_block
        chunks = (last - first) // CHUNK_BLOCKS + 1
        threads = min(threads, chunks)
        scratch_words = np.empty((threads, 4 * CHUNK_BLOCKS), dtype=np.uint32)
        scratch_values = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=out.dtype)
        for thread in prange(threads):
            words = scratch_words[thread]
            for chunk in range(thread, chunks, threads):
                begin, blocks, count, base, direct = _chunk_layout(chunk, first, last, start, per_block, n)
                dest = out[base : base + count] if direct else scratch_values[thread, :count]
                _fill_words(words, begin, blocks, k0, k1)
                _uniform32_values(dest, words, count, low, span, lo, hi)
                if not direct:
                    _copy_in_range(out, dest, base, count)

    @_jit(parallel=True, cache=True)
    def _normal_kernel32(out, start, threads, k0, k1, mean, std):
        per_block = 4
        n = out.shape[0]
        first = start // per_block
        last = (start + n - 1) // per_block
        chunks = (last - first) // CHUNK_BLOCKS + 1
        threads = min(threads, chunks)
        scratch_words = np.empty((threads, 4 * CHUNK_BLOCKS), dtype=np.uint32)
        scratch_values = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=out.dtype)
        for thread in prange(threads):
            words = scratch_words[thread]
            for chunk in range(thread, chunks, threads):
                begin, blocks, count, base, direct = _chunk_layout(chunk, first, last, start, per_block, n)
                dest = out[base : base + count] if direct else scratch_values[thread, :count]
                _fill_words(words, begin, blocks, k0, k1)
                _normal32_values(dest, words, count, mean, std)
                if not direct:
                    _copy_in_range(out, dest, base, count)

    @_jit(parallel=True, cache=True)
    def _truncated_kernel32(out, start, threads, k0, k1, mean, std, lo, hi, mode, a, b, width, alpha, m2, sign, max_attempts):
        per_block = 4
        n = out.shape[0]
        first = start // per_block
        last = (start + n - 1) // per_block
        chunks = (last - first) // CHUNK_BLOCKS + 1
        threads = min(threads, chunks)
        scratch_words = np.empty((threads, 4 * CHUNK_BLOCKS), dtype=np.uint32)
        scratch_values = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=out.dtype)
        scratch_flags = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=np.uint8)
        scratch_positions = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=np.int64)
        scratch_proposals = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=np.float64)
        for thread in prange(threads):
            words = scratch_words[thread]
            flags = scratch_flags[thread]
            positions = scratch_positions[thread]
            for chunk in range(thread, chunks, threads):
                begin, blocks, count, base, direct = _chunk_layout(chunk, first, last, start, per_block, n)
                lo_pos = max(base, 0)
                hi_pos = min(base + count, n)
                if mode != 0:
                    _retry_values(out[lo_pos:hi_pos], start + lo_pos, hi_pos - lo_pos, k0, k1, mean, std, lo, hi, mode, a, b, width, alpha, m2, sign, max_attempts)
                    continue
                dest = out[base : base + count] if direct else scratch_values[thread, :count]
                _fill_words(words, begin, blocks, k0, k1)
                _truncated32_values(dest, flags, words, count, mean, std, lo, hi, a, b)
                if not direct:
                    _copy_in_range(out, dest, base, count)
                found = _rejected_positions(flags, count, base, n, positions)
                _redraw_rejected(out, base, start + base, found, positions, scratch_proposals[thread], k0, k1, mean, std, lo, hi, a, b, max_attempts)

    @_jit(parallel=True, cache=True)
    def _uniform_kernel64(out, start, threads, k0, k1, low, span, lo, hi):
        per_block = 2
        n = out.shape[0]
        first = start // per_block
        last = (start + n - 1) // per_block
        chunks = (last - first) // CHUNK_BLOCKS + 1
        threads = min(threads, chunks)
        scratch_words = np.empty((threads, 4 * CHUNK_BLOCKS), dtype=np.uint32)
        scratch_values = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=out.dtype)
        for thread in prange(threads):
            words = scratch_words[thread]
            for chunk in range(thread, chunks, threads):
                begin, blocks, count, base, direct = _chunk_layout(chunk, first, last, start, per_block, n)
                dest = out[base : base + count] if direct else scratch_values[thread, :count]
                _fill_words(words, begin, blocks, k0, k1)
                _uniform64_values(dest, words, count, low, span, lo, hi)
                if not direct:
                    _copy_in_range(out, dest, base, count)

    @_jit(parallel=True, cache=True)
    def _normal_kernel64(out, start, threads, k0, k1, mean, std):
        per_block = 2
        n = out.shape[0]
        first = start // per_block
        last = (start + n - 1) // per_block
        chunks = (last - first) // CHUNK_BLOCKS + 1
        threads = min(threads, chunks)
        scratch_words = np.empty((threads, 4 * CHUNK_BLOCKS), dtype=np.uint32)
        scratch_values = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=out.dtype)
        for thread in prange(threads):
            words = scratch_words[thread]
            for chunk in range(thread, chunks, threads):
                begin, blocks, count, base, direct = _chunk_layout(chunk, first, last, start, per_block, n)
                dest = out[base : base + count] if direct else scratch_values[thread, :count]
                _fill_words(words, begin, blocks, k0, k1)
                _normal64_values(dest, words, count, mean, std)
                if not direct:
                    _copy_in_range(out, dest, base, count)

    @_jit(parallel=True, cache=True)
    def _truncated_kernel64(out, start, threads, k0, k1, mean, std, lo, hi, mode, a, b, width, alpha, m2, sign, max_attempts):
        per_block = 2
        n = out.shape[0]
        first = start // per_block
        last = (start + n - 1) // per_block
        chunks = (last - first) // CHUNK_BLOCKS + 1
        threads = min(threads, chunks)
        scratch_words = np.empty((threads, 4 * CHUNK_BLOCKS), dtype=np.uint32)
        scratch_values = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=out.dtype)
        scratch_flags = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=np.uint8)
        scratch_positions = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=np.int64)
        scratch_proposals = np.empty((threads, per_block * CHUNK_BLOCKS), dtype=np.float64)
        for thread in prange(threads):
            words = scratch_words[thread]
            flags = scratch_flags[thread]
            positions = scratch_positions[thread]
            for chunk in range(thread, chunks, threads):
                begin, blocks, count, base, direct = _chunk_layout(chunk, first, last, start, per_block, n)
                lo_pos = max(base, 0)
                hi_pos = min(base + count, n)
                if mode != 0:
                    _retry_values(out[lo_pos:hi_pos], start + lo_pos, hi_pos - lo_pos, k0, k1, mean, std, lo, hi, mode, a, b, width, alpha, m2, sign, max_attempts)
                    continue
                dest = out[base : base + count] if direct else scratch_values[thread, :count]
                _fill_words(words, begin, blocks, k0, k1)
                _truncated64_values(dest, flags, words, count, mean, std, lo, hi, a, b)
                if not direct:
                    _copy_in_range(out, dest, base, count)
                found = _rejected_positions(flags, count, base, n, positions)
                _redraw_rejected(out, base, start + base, found, positions, scratch_proposals[thread], k0, k1, mean, std, lo, hi, a, b, max_attempts)

    KERNELS.update(
        uniform32=_uniform_kernel32,
        normal32=_normal_kernel32,
        truncated32=_truncated_kernel32,
        uniform64=_uniform_kernel64,
        normal64=_normal_kernel64,
        truncated64=_truncated_kernel64,
    )
