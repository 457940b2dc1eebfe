"""Verdicts: one word per layer for what its statistics say, and the reason in words.

A row is checked against every rule below; the verdict is the first rule
that fires in this order, and the reason lists all that fired:

==============  ==================================================================
non-finite      the output or its gradient holds NaN or inf
symmetric       two or more units have near-identical incoming weights (and
                gradients): no gradient step can tell them apart
dead            at least ``dead`` (0.4) of the ReLU-like units are 0 for every
                sample of the batch
saturated       at least ``saturated`` (0.4) of the entries of a tanh/sigmoid-like
                layer have |phi'| below ``saturation_derivative`` (0.1) of its
                maximum
exploding       output RMS above ``exploding`` (10) times the reference RMS, or
                output-gradient RMS above ``grad_exploding`` (100) times that of the
                last layer
vanishing       output RMS below ``vanishing`` (0.1) times the reference RMS (an
                all-zero output included), or output-gradient RMS below
                ``grad_vanishing`` (0.01) times that of the last layer
collapsed       the samples' outputs are nearly parallel: mean pairwise cosine
                above ``collapse_cosine`` (0.99) -- representation collapse
healthy         none of the above
==============  ==================================================================

The reference RMS is the model input's, or the output of the nearest
normalization layer before the row (a norm layer resets the scale on
purpose). The CS231n figures that motivate the defaults: 10 tanh layers of
width 500 with weights 0.01 N(0, 1) shrink the std by about 0.22 per layer
(0.21, 0.047, 0.011, ...), vanishing from the second layer on; with weights
N(0, 1/fan_in) the std decays only from 0.63 to 0.23 over 10 layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Thresholds", "VERDICTS", "judge"]

VERDICTS = (
    "healthy",
    "vanishing",
    "exploding",
    "saturated",
    "dead",
    "symmetric",
    "non-finite",
    "collapsed",
)


@dataclass(frozen=True)
class Thresholds:
    """The limits behind the verdicts (see the module docstring)."""

    vanishing: float = 0.1
    exploding: float = 10.0
    grad_vanishing: float = 1e-2
    grad_exploding: float = 1e2
    saturation_derivative: float = 0.1
    saturated: float = 0.4
    dead: float = 0.4
    collapse_cosine: float = 0.99
    symmetry_tol: float = 1e-4

    def __post_init__(self) -> None:
        for name in (
            "vanishing",
            "exploding",
            "grad_vanishing",
            "grad_exploding",
            "saturation_derivative",
            "saturated",
            "dead",
            "collapse_cosine",
            "symmetry_tol",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise TypeError(f"Thresholds: {name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"Thresholds: {name} must be >= 0, got {value!r}")
        if not self.vanishing < self.exploding:
            raise ValueError(
                f"Thresholds: needs vanishing < exploding, got {self.vanishing} and {self.exploding}"
            )
        if not 0.0 < self.saturation_derivative < 1.0:
            raise ValueError(
                f"Thresholds: saturation_derivative must be in (0, 1), got {self.saturation_derivative}"
            )


@dataclass(frozen=True)
class Evidence:
    """The numbers a verdict is drawn from (None where not measured)."""

    nonfinite: int
    grad_nonfinite: int
    scale_ratio: float | None  # output RMS / reference RMS
    reference: str  # what the reference RMS is
    grad_ratio: float | None  # output-gradient RMS / last layer's
    saturated_fraction: float | None
    dead_fraction: float | None
    dead_units: int
    units: int
    symmetric_units: int
    symmetric_group_count: int
    largest_group: int
    mean_cosine: float | None
    all_zero: bool


def judge(evidence: Evidence, thresholds: Thresholds) -> tuple[str, str, tuple[str, ...]]:
    """(verdict, reason, every verdict that fired) for one row."""
    fired: list[tuple[str, str]] = []
    if evidence.nonfinite or evidence.grad_nonfinite:
        parts = []
        if evidence.nonfinite:
            parts.append(f"{evidence.nonfinite} non-finite output values")
        if evidence.grad_nonfinite:
            parts.append(f"{evidence.grad_nonfinite} non-finite gradient values")
        fired.append(("non-finite", " and ".join(parts)))
    if evidence.symmetric_units:
        fired.append(
            (
                "symmetric",
                f"{evidence.symmetric_units} of {evidence.units} units fall in "
                f"{evidence.symmetric_group_count} group(s) of identical incoming weights "
                f"(largest {evidence.largest_group}); gradient steps cannot separate them",
            )
        )
    if (
        evidence.dead_fraction is not None
        and evidence.dead_fraction >= thresholds.dead
        and evidence.units
    ):
        fired.append(
            (
                "dead",
                f"{evidence.dead_units} of {evidence.units} units ({evidence.dead_fraction:.0%}) "
                "output 0 for every sample of the batch",
            )
        )
    if (
        evidence.saturated_fraction is not None
        and evidence.saturated_fraction >= thresholds.saturated
    ):
        fired.append(
            (
                "saturated",
                f"{evidence.saturated_fraction:.0%} of the entries have |phi'| below "
                f"{thresholds.saturation_derivative:g} of its maximum",
            )
        )
    ratio = evidence.scale_ratio
    if ratio is not None and ratio > thresholds.exploding:
        fired.append(("exploding", f"output RMS is {ratio:.3g}x the {evidence.reference} RMS"))
    if evidence.grad_ratio is not None and evidence.grad_ratio > thresholds.grad_exploding:
        fired.append(
            ("exploding", f"output-gradient RMS is {evidence.grad_ratio:.3g}x the last layer's")
        )
    if evidence.all_zero:
        fired.append(("vanishing", "every output value is 0"))
    elif ratio is not None and ratio < thresholds.vanishing:
        fired.append(("vanishing", f"output RMS is {ratio:.3g}x the {evidence.reference} RMS"))
    if evidence.grad_ratio is not None and evidence.grad_ratio < thresholds.grad_vanishing:
        fired.append(
            ("vanishing", f"output-gradient RMS is {evidence.grad_ratio:.3g}x the last layer's")
        )
    if evidence.mean_cosine is not None and evidence.mean_cosine > thresholds.collapse_cosine:
        fired.append(
            (
                "collapsed",
                f"samples' outputs are nearly parallel (mean cosine {evidence.mean_cosine:.4f})",
            )
        )
    if not fired:
        notes = []
        if ratio is not None:
            notes.append(f"output RMS {ratio:.3g}x the {evidence.reference} RMS")
        if evidence.dead_units:
            notes.append(f"{evidence.dead_units} dead unit(s)")
        return "healthy", "; ".join(notes) if notes else "no rule fired", ()
    verdicts = tuple(dict.fromkeys(name for name, _ in fired))
    return fired[0][0], "; ".join(text for _, text in fired), verdicts
