"""Which known scheme explains a std: variance-scaling rules under each fan convention, and round constants.

A variance-scaling scheme sets Var[w] = c / n with n a fan (LeCun c = 1,
fan_in; Glorot c = 1, fan_avg; He c = 2; torch's layer default c = 1/3,
fan_in, from kaiming_uniform with a = sqrt 5). The fan n depends on the
*convention* that reads it off the weight's shape:

================  ===========================================================
``declared``      initlab's fans for the layout (``initlab.fans``): a grouped
                  conv's fan_out is out/g * k
``torch``         ``torch.nn.init``: dim 1 * k is fan_in, dim 0 * k fan_out;
                  overstates a grouped conv's fan_out by g (pytorch/pytorch#23854)
                  and swaps a ConvTranspose weight's fans
``ungrouped``     fan_in = in_channels * k, ignoring groups (ml-explore/mlx#4536)
``keras``         a depthwise kernel read as (kh, kw, in, multiplier):
                  fan_in = in * k, fan_out = multiplier * k (keras-team/keras#11773)
================  ===========================================================

Constants: the fixed stds of Transformer recipes (0.02 of GPT-2 and BERT,
their depth-scaled 0.02 / sqrt(2 L) on residual projections, 1/sqrt(dim)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from initlab.schemes.fans import Fans, fans

__all__ = ["Candidate", "RULES", "CONSTANTS", "fan_conventions", "variance_candidates", "constant_candidates", "best_match"]

# (label, c, mode): Var[w] = c / fan_mode
RULES: tuple[tuple[str, float, str], ...] = (
    ("lecun", 1.0, "fan_in"),
    ("he", 2.0, "fan_in"),
    ("glorot", 1.0, "fan_avg"),
    ("torch_default", 1.0 / 3.0, "fan_in"),
    ("he fan_out", 2.0, "fan_out"),
    ("variance_scaling fan_out", 1.0, "fan_out"),
    ("glorot relu gain", 2.0, "fan_avg"),
    ("lecun tanh gain", 25.0 / 9.0, "fan_in"),
)

# round stds used by fixed-std recipes (GPT-2, BERT, ViT: 0.02; Keras TruncatedNormal: 0.05; ...)
CONSTANTS = (0.02, 0.01, 0.05, 0.1, 1.0, 0.001, 0.002, 0.005, 0.03, 0.04, 0.2, 0.5, 0.006, 0.015)


@dataclass(frozen=True)
class Candidate:
    """A std that a named scheme gives this tensor."""

    label: str
    std: float
    convention: str = "declared"
    fans: Fans | None = None
    rule: tuple[float, str] | None = None  # (c, mode) of a variance-scaling candidate


def fan_conventions(shape: tuple[int, ...], layout: str, groups: int) -> dict[str, Fans]:
    """The fans of a weight under each convention that applies to its layout (see the module docstring)."""
    declared = fans(shape, layout=layout, groups=groups)
    found = {"declared": declared}
    if layout not in ("conv", "conv_transpose") or len(shape) < 3:
        return found
    receptive = math.prod(shape[2:])
    found["torch"] = Fans(shape[1] * receptive, shape[0] * receptive, receptive)
    if layout == "conv" and groups > 1:
        in_channels = shape[1] * groups
        found["ungrouped"] = Fans(in_channels * receptive, shape[0] * receptive, receptive)
        if groups == in_channels and shape[0] % in_channels == 0:
            multiplier = shape[0] // in_channels
            found["keras"] = Fans(in_channels * receptive, multiplier * receptive, receptive)
    return found


def _std(c: float, mode: str, fan: Fans) -> float | None:
    n = fan.of(mode)
    return math.sqrt(c / n) if n > 0 else None


def variance_candidates(shape: tuple[int, ...], layout: str, groups: int = 1) -> list[Candidate]:
    """Every RULES std under every convention (duplicates of the same number kept: the label tells them apart)."""
    found = []
    for convention, fan in fan_conventions(shape, layout, groups).items():
        for label, c, mode in RULES:
            std = _std(c, mode, fan)
            if std is not None:
                found.append(Candidate(label, std, convention, fan, (c, mode)))
    return found


def constant_candidates(depth: int | None = None, width: int | None = None) -> list[Candidate]:
    """Round constants, their depth-scaled forms (c / sqrt(2 L), c / sqrt(L)) and 1/sqrt(width)."""
    found = [Candidate(f"normal({c:g})", c, "constant") for c in CONSTANTS]
    if depth:
        for c in (0.02, 0.01):
            found.append(Candidate(f"normal({c:g}) / sqrt(2*{depth})", c / math.sqrt(2 * depth), "constant"))
            found.append(Candidate(f"normal({c:g}) / sqrt({depth})", c / math.sqrt(depth), "constant"))
    if width:
        found.append(Candidate(f"1/sqrt({width})", 1.0 / math.sqrt(width), "constant"))
    return found


def best_match(std: float, candidates: list[Candidate], tolerance: float) -> Candidate | None:
    """The candidate closest to ``std`` in log ratio, if within ``tolerance`` (relative); first listed wins ties."""
    best: Candidate | None = None
    best_distance = math.inf
    if not (std > 0 and math.isfinite(std)):
        return None
    for candidate in candidates:
        distance = abs(math.log(std / candidate.std))
        if distance < best_distance - 1e-12:
            best, best_distance = candidate, distance
    if best is None or best_distance > math.log1p(tolerance):
        return None
    return best
