"""Philox4x32-10 and the maps from its words to floats, in plain PyTorch.

This module is the definition of the keyed generator's values; the compiled
kernels in :mod:`initlab.rng.kernels` compute the same operations in the same
order and must agree with it bit for bit.

Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as
easy as 1, 2, 3") maps a 128-bit counter and a 64-bit key to four 32-bit
words through ten rounds of two 32x32->64 multiplications, xors and a key
bump (Weyl constants). Word ``w`` of a stream is lane ``w % 4`` of the block
with counter ``(w // 4 low, w // 4 high, 0, 0)``.

From words to values (all arithmetic in float64, which IEEE 754 rounds the
same way on every CPU and GPU; no fused multiply-add anywhere):

* float32 uniform, element i: word i; u = (w >> 8) 2^-24.
* float64 uniform, element i: words 2i, 2i+1; u = ((w0 >> 5) 2^26 + (w1 >> 6)) 2^-53.
* normal (Box-Muller): a radius r = sqrt(-2 ln u1) with u1 in (0, 1] and an
  angle t in [0, 2 pi); the pair (r cos t, r sin t) fills two elements.
  float32: elements 2p, 2p+1 use words 2p (radius) and 2p+1 (angle);
  float64: elements 2p, 2p+1 use words 4p, 4p+1 (radius, 53 bits) and 4p+2,
  4p+3 (angle, 2 + 51 bits). ln, sin and cos are our own polynomials (ln via
  the atanh series on a mantissa in [sqrt(1/2), sqrt(2)], sin/cos by Taylor
  series on [-pi/4, pi/4] and quadrant symmetry), because libm, SLEEF and
  CUDA's versions round differently.
* retries of truncated normal, element i, attempt k >= 1: the block with
  counter ``(i low, i high, k, 1)``, whose four words make one float64 normal
  (or the two uniforms of the uniform/exponential proposals).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "MASK32",
    "PHILOX_M0",
    "PHILOX_M1",
    "PHILOX_W0",
    "PHILOX_W1",
    "philox4x32",
    "philox_block",
    "exact_sqrt",
]

MASK32 = 0xFFFFFFFF
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
ROUNDS = 10

# -- constants shared with the compiled kernels ------------------------------------
LN2 = math.log(2.0)
SQRT2 = math.sqrt(2.0)
HALF_PI = math.pi / 2.0
SQRT_HALF = math.sqrt(0.5)
EXPONENT_MASK_SHIFT = 52
MANTISSA_MASK = (1 << 52) - 1
EXPONENT_ONE = 1023 << 52
MASK30 = (1 << 30) - 1

# ln(m) = s * (2 + 2/3 s^2 + 2/5 s^4 + ...), s = (m - 1) / (m + 1), |s| <= 0.1716
LOG_COEFFS_F32: tuple[float, ...] = tuple(2.0 / (2 * n + 1) for n in range(6))
LOG_COEFFS_F64: tuple[float, ...] = tuple(2.0 / (2 * n + 1) for n in range(10))
# sin(x) = x * (1 - x^2/3! + x^4/5! - ...), cos(x) = 1 - x^2/2! + ...; |x| <= pi/4
SIN_COEFFS_F32: tuple[float, ...] = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(6))
COS_COEFFS_F32: tuple[float, ...] = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(7))
SIN_COEFFS_F64: tuple[float, ...] = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(9))
COS_COEFFS_F64: tuple[float, ...] = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(10))

TWO_M24 = 2.0**-24
TWO_M30 = 2.0**-30
TWO_M53 = 2.0**-53


def round_keys(k0: int, k1: int) -> list[tuple[int, int]]:
    """The ten round keys of Philox4x32-10 for the key (k0, k1)."""
    return [((k0 + r * PHILOX_W0) & MASK32, (k1 + r * PHILOX_W1) & MASK32) for r in range(ROUNDS)]


def _mulhilo(x: torch.Tensor, multiplier: int) -> tuple[torch.Tensor, torch.Tensor]:
    # 32x32 -> 64 bit product in int64 without overflow: split the constant in 16-bit halves
    low_part = x * (multiplier & 0xFFFF)
    high_part = x * (multiplier >> 16)
    partial = low_part + ((high_part & 0xFFFF) << 16)
    return (high_part >> 16) + (partial >> 32), partial & MASK32


def philox4x32(
    c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor, k0: int, k1: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Philox4x32-10 on int64 tensors holding 32-bit counter words; returns the four output words."""
    for key0, key1 in round_keys(k0, k1):
        high0, low0 = _mulhilo(c0, PHILOX_M0)
        high1, low1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = high1 ^ c1 ^ key0, low1, high0 ^ c3 ^ key1, low0
    return c0, c1, c2, c3


def philox_block(
    blocks: torch.Tensor, k0: int, k1: int, c2: int = 0, c3: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The four words of the blocks with counter ``(block low, block high, c2, c3)``."""
    zeros = torch.zeros_like(blocks)
    return philox4x32(blocks & MASK32, blocks >> 32, zeros + c2, zeros + c3, k0, k1)


# -- words to floats -------------------------------------------------------------------
def exact_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root.

    torch's CPU ``sqrt`` for float64 may go through a vector math library that
    is off by one ulp now and then; NumPy's uses the processor's IEEE
    instruction, as do CUDA's kernels.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.sqrt(x.detach().numpy()))
    return torch.sqrt(x)


def _horner(x: torch.Tensor, coeffs: tuple[float, ...]) -> torch.Tensor:
    result = torch.full_like(x, coeffs[-1])
    for coefficient in reversed(coeffs[:-1]):
        result = result * x + coefficient
    return result


def log_of_count(count: torch.Tensor, shift: int, coeffs: tuple[float, ...]) -> torch.Tensor:
    """ln(count * 2^-shift) for float64 ``count`` >= 1 holding an integer."""
    bits = count.view(torch.int64)
    exponent = (bits >> EXPONENT_MASK_SHIFT) - 1023
    mantissa = ((bits & MANTISSA_MASK) | EXPONENT_ONE).view(torch.float64)
    large = mantissa > SQRT2
    mantissa = torch.where(large, mantissa * 0.5, mantissa)
    exponent = exponent + large.to(torch.int64) - shift
    ratio = (mantissa - 1.0) / (mantissa + 1.0)
    log_mantissa = ratio * _horner(ratio * ratio, coeffs)
    return exponent.to(torch.float64) * LN2 + log_mantissa


def cos_sin_of_turn(
    quadrant: torch.Tensor, phase: torch.Tensor, sin_coeffs: tuple[float, ...], cos_coeffs: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of quadrant * pi/2 + pi/4 + phase, phase in [-pi/4, pi/4]."""
    square = phase * phase
    sine = phase * _horner(square, sin_coeffs)
    cosine = _horner(square, cos_coeffs)
    # rotate by pi/4, then by the quadrant (exact sign flips and swaps)
    rotated_cos = (cosine - sine) * SQRT_HALF
    rotated_sin = (cosine + sine) * SQRT_HALF
    cos_out = torch.where(
        quadrant == 0, rotated_cos,
        torch.where(quadrant == 1, -rotated_sin, torch.where(quadrant == 2, -rotated_cos, rotated_sin)),
    )
    sin_out = torch.where(
        quadrant == 0, rotated_sin,
        torch.where(quadrant == 1, rotated_cos, torch.where(quadrant == 2, -rotated_sin, -rotated_cos)),
    )
    return cos_out, sin_out


def normal_pair_f32(radius_word: torch.Tensor, angle_word: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two standard normals (float64) from two 32-bit words."""
    log_u = log_of_count((radius_word + 1).to(torch.float64), 32, LOG_COEFFS_F32)
    radius = exact_sqrt(-2.0 * log_u)
    phase = ((angle_word & MASK30).to(torch.float64) * TWO_M30 - 0.5) * HALF_PI
    cosine, sine = cos_sin_of_turn(angle_word >> 30, phase, SIN_COEFFS_F32, COS_COEFFS_F32)
    return radius * cosine, radius * sine


def normal_pair_f64(
    w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two standard normals (float64) from four 32-bit words (53-bit radius and angle)."""
    count = ((w0 >> 5) << 26) + (w1 >> 6) + 1
    log_u = log_of_count(count.to(torch.float64), 53, LOG_COEFFS_F64)
    radius = exact_sqrt(-2.0 * log_u)
    fraction = ((w2 & MASK30) << 23) | (w3 >> 9)
    phase = (fraction.to(torch.float64) * TWO_M53 - 0.5) * HALF_PI
    cosine, sine = cos_sin_of_turn(w2 >> 30, phase, SIN_COEFFS_F64, COS_COEFFS_F64)
    return radius * cosine, radius * sine


def uniform53(high_word: torch.Tensor, low_word: torch.Tensor) -> torch.Tensor:
    """A float64 in [0, 1) on the 2^-53 grid from two words."""
    return (((high_word >> 5) << 26) + (low_word >> 6)).to(torch.float64) * TWO_M53


def log_open_uniform53(high_word: torch.Tensor, low_word: torch.Tensor) -> torch.Tensor:
    """ln u for u in (0, 1] on the 2^-53 grid, from two words."""
    count = ((high_word >> 5) << 26) + (low_word >> 6) + 1
    return log_of_count(count.to(torch.float64), 53, LOG_COEFFS_F64)
