"""The keyed generator's float32 uniform, normal and truncated-normal fills as Triton kernels (CUDA).

Same values as :mod:`initlab.rng.philox` defines them, bit for bit: the
Philox rounds in uint32 (``umulhi`` for the high halves), the conversions in
float64 with round-to-nearest division and square root, and no fused
multiply-add (``enable_fp_fusion=False``), so every operation rounds as the
PyTorch definition and the CPU kernels round it. One program handles
``BLOCKS`` Philox blocks and writes their four words' values side by side;
the truncated normal redraws rejected elements with their own counters, as
:func:`initlab.rng.fallback.truncated_retry` does, until every lane of the
program has a value.

Imported only for CUDA tensors, and only where Triton is installed; other
devices and dtypes use :mod:`initlab.rng.fallback`.
"""

# no `from __future__ import annotations` here: Triton reads the kernels' annotations ("fp64") as written
import functools
from typing import Any

import torch

from initlab.rng import philox as spec

__all__ = ["available", "uniform_f32_", "normal_f32_", "truncated_f32_", "usable"]

BLOCKS = 512  # Philox blocks per program: 2048 float32 values


@functools.cache
def available() -> bool:
    """Whether Triton can be imported (the kernels compile at their first use)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # pragma: no cover - depends on the installation
        return False
    return True


def _constants() -> list[float]:
    """The float64 constants the kernels read from memory, so none is rounded as a literal."""
    return [spec.LN2, spec.SQRT2, spec.HALF_PI, spec.SQRT_HALF, spec.TWO_M30, spec.TWO_M24, spec.TWO_M53,
            *spec.LOG_COEFFS_F32, *spec.SIN_COEFFS_F32, *spec.COS_COEFFS_F32,
            *spec.LOG_COEFFS_F64, *spec.SIN_COEFFS_F64, *spec.COS_COEFFS_F64]


def _offsets() -> dict[str, int]:
    """Where each coefficient table starts in :func:`_constants`, and its length (compile-time constants)."""
    found: dict[str, int] = {}
    position = 7
    for name, table in (("LOG32", spec.LOG_COEFFS_F32), ("SIN32", spec.SIN_COEFFS_F32),
                        ("COS32", spec.COS_COEFFS_F32), ("LOG64", spec.LOG_COEFFS_F64),
                        ("SIN64", spec.SIN_COEFFS_F64), ("COS64", spec.COS_COEFFS_F64)):
        found[name], found[name + "_N"] = position, len(table)
        position += len(table)
    return found


def usable(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` (contiguous, 1-D) can be filled here: a CUDA tensor, with Triton installed."""
    return tensor.device.type == "cuda" and available()


@functools.cache
def _kernels() -> dict[str, Any]:  # pragma: no cover - needs a CUDA device and Triton
    import triton
    import triton.language as tl

    @triton.jit
    def philox(c0, c1, c2, c3, k0, k1, m0, m1, w0, w1):
        key0 = k0
        key1 = k1
        for _ in tl.static_range(10):
            high0 = tl.umulhi(c0, m0)
            low0 = c0 * m0
            high1 = tl.umulhi(c2, m1)
            low1 = c2 * m1
            c0, c1, c2, c3 = high1 ^ c1 ^ key0, low1, high0 ^ c3 ^ key1, low0
            key0 = key0 + w0
            key1 = key1 + w1
        return c0, c1, c2, c3

    @triton.jit
    def horner(x, consts, OFFSET: tl.constexpr, TERMS: tl.constexpr):
        result = tl.zeros_like(x) + tl.load(consts + OFFSET + TERMS - 1)
        for i in tl.static_range(TERMS - 2, -1, -1):
            result = result * x + tl.load(consts + OFFSET + i)
        return result

    @triton.jit
    def box_muller(count, shift, phase_unit, quadrant, consts, LOG: tl.constexpr, LOG_N: tl.constexpr,
                   SIN: tl.constexpr, SIN_N: tl.constexpr, COS: tl.constexpr, COS_N: tl.constexpr):
        """(r cos t, r sin t): r = sqrt(-2 ln(count 2^-shift)), t = quadrant pi/2 + pi/4 + (phase_unit - 1/2) pi/2."""
        ln2 = tl.load(consts)
        sqrt2 = tl.load(consts + 1)
        half_pi = tl.load(consts + 2)
        sqrt_half = tl.load(consts + 3)
        bits = count.to(tl.int64, bitcast=True)
        exponent = (bits >> 52) - 1023
        mantissa = ((bits & 0xFFFFFFFFFFFFF) | (1023 << 52)).to(tl.float64, bitcast=True)
        large = mantissa > sqrt2
        mantissa = tl.where(large, mantissa * 0.5, mantissa)
        exponent = exponent + large.to(tl.int64) - shift
        ratio = (mantissa - 1.0) / (mantissa + 1.0)  # float64: IEEE division (div.rn.f64)
        log_u = exponent.to(tl.float64) * ln2 + ratio * horner(ratio * ratio, consts, LOG, LOG_N)
        radius = tl.sqrt(log_u * -2.0)  # float64: IEEE square root (sqrt.rn.f64)
        phase = (phase_unit - 0.5) * half_pi
        square = phase * phase
        sine = phase * horner(square, consts, SIN, SIN_N)
        cosine = horner(square, consts, COS, COS_N)
        rotated_cos = (cosine - sine) * sqrt_half
        rotated_sin = (cosine + sine) * sqrt_half
        cos_out = tl.where(quadrant == 0, rotated_cos, tl.where(quadrant == 1, -rotated_sin,
                           tl.where(quadrant == 2, -rotated_cos, rotated_sin)))
        sin_out = tl.where(quadrant == 0, rotated_sin, tl.where(quadrant == 1, rotated_cos,
                           tl.where(quadrant == 2, -rotated_sin, -rotated_cos)))
        return radius * cos_out, radius * sin_out

    @triton.jit
    def pair32(radius_word, angle_word, consts, LOG: tl.constexpr, LOG_N: tl.constexpr, SIN: tl.constexpr,
               SIN_N: tl.constexpr, COS: tl.constexpr, COS_N: tl.constexpr):
        """philox.normal_pair_f32: two normals from two words."""
        count = (radius_word.to(tl.int64) + 1).to(tl.float64)
        phase_unit = (angle_word & 0x3FFFFFFF).to(tl.float64) * tl.load(consts + 4)
        return box_muller(count, 32, phase_unit, angle_word >> 30, consts, LOG, LOG_N, SIN, SIN_N, COS, COS_N)

    @triton.jit
    def blocks_of(start, BLOCKS: tl.constexpr):
        first_block = start // 4 + tl.program_id(0).to(tl.int64) * BLOCKS
        return first_block, first_block + tl.arange(0, BLOCKS).to(tl.int64)

    @triton.jit
    def counter_words(block, c2, c3, k0, k1, m0, m1, w0, w1):
        low = (block & 0xFFFFFFFF).to(tl.uint32)
        return philox(low, (block >> 32).to(tl.uint32), tl.zeros_like(low) + c2, tl.zeros_like(low) + c3,
                      k0.to(tl.uint32), k1.to(tl.uint32), m0.to(tl.uint32), m1.to(tl.uint32),
                      w0.to(tl.uint32), w1.to(tl.uint32))

    @triton.jit
    def interleave(v0, v1, v2, v3, BLOCKS: tl.constexpr):
        # the four lanes of each block side by side: element 4 b + lane
        return tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), (4 * BLOCKS,))

    # integer arguments equal to 1 would otherwise be specialised into compile-time constants
    plain = ["start", "count", "k0", "k1", "m0", "m1", "w0", "w1", "max_attempts"]

    @triton.jit(do_not_specialize=plain)
    def uniform_kernel(out, start, count, k0, k1, m0, m1, w0, w1, low: "fp64", span: "fp64", lo: "fp64",
                       hi: "fp64", consts, BLOCKS: tl.constexpr):
        start = start.to(tl.int64)
        first_block, block = blocks_of(start, BLOCKS)
        c0, c1, c2, c3 = counter_words(block, 0, 0, k0, k1, m0, m1, w0, w1)
        two_m24 = tl.load(consts + 5)
        lo = lo.to(tl.float32)
        hi = hi.to(tl.float32)
        v0 = tl.minimum(tl.maximum(((c0 >> 8).to(tl.float64) * two_m24 * span + low).to(tl.float32), lo), hi)
        v1 = tl.minimum(tl.maximum(((c1 >> 8).to(tl.float64) * two_m24 * span + low).to(tl.float32), lo), hi)
        v2 = tl.minimum(tl.maximum(((c2 >> 8).to(tl.float64) * two_m24 * span + low).to(tl.float32), lo), hi)
        v3 = tl.minimum(tl.maximum(((c3 >> 8).to(tl.float64) * two_m24 * span + low).to(tl.float32), lo), hi)
        position = first_block * 4 + tl.arange(0, 4 * BLOCKS).to(tl.int64) - start
        tl.store(out + position, interleave(v0, v1, v2, v3, BLOCKS), mask=(position >= 0) & (position < count))

    @triton.jit(do_not_specialize=plain)
    def normal_kernel(out, start, count, k0, k1, m0, m1, w0, w1, mean: "fp64", std: "fp64", consts,
                      BLOCKS: tl.constexpr, LOG32: tl.constexpr, LOG32_N: tl.constexpr, SIN32: tl.constexpr,
                      SIN32_N: tl.constexpr, COS32: tl.constexpr, COS32_N: tl.constexpr):
        start = start.to(tl.int64)
        first_block, block = blocks_of(start, BLOCKS)
        c0, c1, c2, c3 = counter_words(block, 0, 0, k0, k1, m0, m1, w0, w1)
        z0, z1 = pair32(c0, c1, consts, LOG32, LOG32_N, SIN32, SIN32_N, COS32, COS32_N)
        z2, z3 = pair32(c2, c3, consts, LOG32, LOG32_N, SIN32, SIN32_N, COS32, COS32_N)
        kind = out.dtype.element_ty
        values = interleave((z0 * std + mean).to(kind), (z1 * std + mean).to(kind), (z2 * std + mean).to(kind),
                            (z3 * std + mean).to(kind), BLOCKS)
        position = first_block * 4 + tl.arange(0, 4 * BLOCKS).to(tl.int64) - start
        tl.store(out + position, values, mask=(position >= 0) & (position < count))

    @triton.jit(do_not_specialize=plain)
    def truncated_kernel(out, start, count, k0, k1, m0, m1, w0, w1, mean: "fp64", std: "fp64", lo: "fp64",
                         hi: "fp64", a: "fp64", b: "fp64", max_attempts, consts, BLOCKS: tl.constexpr,
                         LOG32: tl.constexpr, LOG32_N: tl.constexpr, SIN32: tl.constexpr, SIN32_N: tl.constexpr,
                         COS32: tl.constexpr, COS32_N: tl.constexpr, LOG64: tl.constexpr, LOG64_N: tl.constexpr,
                         SIN64: tl.constexpr, SIN64_N: tl.constexpr, COS64: tl.constexpr, COS64_N: tl.constexpr):
        # first attempt: the float32 normals of the element's block; then attempts k = 1, 2, ... with the
        # element's own counter (i, k, 1), one float64 normal each (fallback.truncated_retry, mode 0)
        start = start.to(tl.int64)
        first_block, block = blocks_of(start, BLOCKS)
        c0, c1, c2, c3 = counter_words(block, 0, 0, k0, k1, m0, m1, w0, w1)
        z0, z1 = pair32(c0, c1, consts, LOG32, LOG32_N, SIN32, SIN32_N, COS32, COS32_N)
        z2, z3 = pair32(c2, c3, consts, LOG32, LOG32_N, SIN32, SIN32_N, COS32, COS32_N)
        z = interleave(z0, z1, z2, z3, BLOCKS)
        element = first_block * 4 + tl.arange(0, 4 * BLOCKS).to(tl.int64)
        position = element - start
        valid = (position >= 0) & (position < count)
        pending = valid & ~((z >= a) & (z <= b))
        last = z
        two_m53 = tl.load(consts + 6)
        attempt = tl.zeros((), tl.int32) + 1
        while (tl.max(pending.to(tl.int32), axis=0) > 0) & (attempt <= max_attempts):
            r0, r1, r2, r3 = counter_words(element, attempt.to(tl.uint32), 1, k0, k1, m0, m1, w0, w1)
            radius_count = ((((r0 >> 5).to(tl.int64) << 26) + (r1 >> 6).to(tl.int64)) + 1).to(tl.float64)
            fraction = (((r2 & 0x3FFFFFFF).to(tl.int64) << 23) | (r3 >> 9).to(tl.int64)).to(tl.float64)
            proposal, _ = box_muller(radius_count, 53, fraction * two_m53, r2 >> 30, consts,
                                     LOG64, LOG64_N, SIN64, SIN64_N, COS64, COS64_N)
            accepted = pending & (proposal >= a) & (proposal <= b)
            z = tl.where(accepted, proposal, z)
            last = tl.where(pending, proposal, last)
            pending = pending & ~accepted
            attempt += 1
        z = tl.where(pending, tl.minimum(tl.maximum(last, a), b), z)
        value = (z * std + mean).to(tl.float32)
        value = tl.minimum(tl.maximum(value, lo.to(tl.float32)), hi.to(tl.float32))
        tl.store(out + position, value, mask=valid)

    return {"uniform": uniform_kernel, "normal": normal_kernel, "truncated": truncated_kernel}


@functools.cache
def _constants_on(device: torch.device) -> torch.Tensor:
    return torch.tensor(_constants(), dtype=torch.float64, device=device)


def _launch(name: str, out: torch.Tensor, start: int, k0: int, k1: int, arguments: list[Any]) -> None:
    count = out.numel()
    blocks = (start + count - 1) // 4 - start // 4 + 1
    grid = ((blocks + BLOCKS - 1) // BLOCKS,)
    tables = {} if name == "uniform" else {k: v for k, v in _offsets().items() if name == "truncated" or "32" in k}
    with torch.cuda.device(out.device):  # Triton launches on the current device
        _kernels()[name][grid](
            out, start, count, k0, k1, spec.PHILOX_M0, spec.PHILOX_M1, spec.PHILOX_W0, spec.PHILOX_W1,
            *arguments, _constants_on(out.device), BLOCKS=BLOCKS, enable_fp_fusion=False, **tables,
        )


def uniform_f32_(out: torch.Tensor, start: int, k0: int, k1: int, low: float, span: float, lo: float, hi: float) -> None:
    """:func:`initlab.rng.fallback.uniform_range_` for a contiguous 1-D float32 CUDA tensor."""
    _launch("uniform", out, start, k0, k1, [low, span, lo, hi])


def normal_f32_(out: torch.Tensor, start: int, k0: int, k1: int, mean: float, std: float) -> None:
    """:func:`initlab.rng.fallback.normal_range_` for a contiguous 1-D float32 CUDA tensor."""
    _launch("normal", out, start, k0, k1, [mean, std])


def truncated_f32_(
    out: torch.Tensor, start: int, k0: int, k1: int, mean: float, std: float, lo: float, hi: float,
    a: float, b: float, max_attempts: int,
) -> None:
    """:func:`initlab.rng.fallback.truncated_range_` with normal proposals (mode 0), float32 CUDA ``out``."""
    _launch("truncated", out, start, k0, k1, [mean, std, lo, hi, a, b, max_attempts])
