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
                all-zero output included), or below ``small_output`` (0.01) in
                absolute terms -- 100x smaller than unit scale, even when the
                reference is as small -- or output-gradient RMS below
                ``grad_vanishing`` (0.01) times that of the last layer
collapsed       the samples' outputs are nearly parallel: mean pairwise cosine
                above ``collapse_cosine`` (0.99) while the centred effective
                rank is below ``collapse_rank`` (2) -- representation collapse.
                A common offset (sigmoid outputs around 0.5) raises the cosine
                but leaves the differences between samples, and so the rank
healthy         none of the above
==============  ==================================================================

*Zero by design.* A plan may start a layer at exactly zero on purpose: the
last layer of each residual branch under Fixup, a zero output layer, ReZero
and SkipInit scalars (Zhang, Dauphin & Ma 2019; De & Smith 2020). When the
caller's expectations say a row's output std is 0 (``expected``, e.g. the
``InitReport`` of ``init_model``) and the output is all zeros, the row is not
called vanishing, dead or symmetric; an output gradient that is exactly 0
because a later row is zero by design is not called vanishing either. The
reason says so. Such a layer's units separate at the first step, when each
receives its own gradient. Likewise a layer the plan placed in a residual
branch (a rule on the ``residual``/``residual_last`` roles, as Fixup's) whose
output std is within 2x of the expected one is not called vanishing: the
branch is meant to add little to the stream at first.

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
    collapse_rank: float = 2.0
    small_output: float = 0.01
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
            "collapse_rank",
            "small_output",
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
    output_rms: float | None = None
    effective_rank: float | None = None
    zero_by_design: bool = False  # expected std 0 and the output is all zeros
    scaled_by_design: bool = False  # in a residual branch the plan scaled down, at the expected std
    gradient_blocked: bool = False  # output gradient exactly 0 behind a row that is zero by design


def _unit_rules(evidence: Evidence, thresholds: Thresholds) -> list[tuple[str, str]]:
    """The rules on units: non-finite values, symmetric units, dead units, saturated entries."""
    fired: list[tuple[str, str]] = []
    if evidence.nonfinite or evidence.grad_nonfinite:
        parts = []
        if evidence.nonfinite:
            parts.append(f"{evidence.nonfinite} non-finite output values")
        if evidence.grad_nonfinite:
            parts.append(f"{evidence.grad_nonfinite} non-finite gradient values")
        fired.append(("non-finite", " and ".join(parts)))
    if evidence.symmetric_units and not evidence.zero_by_design:
        fired.append(
            (
                "symmetric",
                f"{evidence.symmetric_units} of {evidence.units} units fall in "
                f"{evidence.symmetric_group_count} group(s) of identical incoming weights "
                f"(largest {evidence.largest_group}); gradient steps cannot separate them",
            )
        )
    dead = evidence.dead_fraction
    if dead is not None and dead >= thresholds.dead and evidence.units and not evidence.zero_by_design:
        fired.append(
            (
                "dead",
                f"{evidence.dead_units} of {evidence.units} units ({dead:.0%}) "
                "output 0 for every sample of the batch",
            )
        )
    if evidence.saturated_fraction is not None and evidence.saturated_fraction >= thresholds.saturated:
        fired.append(
            (
                "saturated",
                f"{evidence.saturated_fraction:.0%} of the entries have |phi'| below "
                f"{thresholds.saturation_derivative:g} of its maximum",
            )
        )
    return fired


def _scale_rules(evidence: Evidence, thresholds: Thresholds) -> list[tuple[str, str]]:
    """The rules on scale: exploding and vanishing outputs and gradients."""
    fired: list[tuple[str, str]] = []
    ratio, grad_ratio = evidence.scale_ratio, evidence.grad_ratio
    if ratio is not None and ratio > thresholds.exploding:
        fired.append(("exploding", f"output RMS is {ratio:.3g}x the {evidence.reference} RMS"))
    if grad_ratio is not None and grad_ratio > thresholds.grad_exploding:
        fired.append(("exploding", f"output-gradient RMS is {grad_ratio:.3g}x the last layer's"))
    small = _small_output(evidence, thresholds)
    if small is not None:
        fired.append(("vanishing", small))
    if grad_ratio is not None and grad_ratio < thresholds.grad_vanishing and not evidence.gradient_blocked:
        fired.append(("vanishing", f"output-gradient RMS is {grad_ratio:.3g}x the last layer's"))
    return fired


def _small_output(evidence: Evidence, thresholds: Thresholds) -> str | None:
    """Why the output is too small (relative to the reference, or to unit scale), or None."""
    if evidence.zero_by_design or evidence.scaled_by_design:
        return None
    if evidence.all_zero:
        return "every output value is 0"
    ratio = evidence.scale_ratio
    if ratio is not None and ratio < thresholds.vanishing:
        return f"output RMS is {ratio:.3g}x the {evidence.reference} RMS"
    rms = evidence.output_rms
    if rms is not None and 0 < rms < thresholds.small_output:
        return f"output RMS {rms:.3g} is below {thresholds.small_output:g}, {1 / rms:.3g}x smaller than unit scale"
    return None


def _design_notes(evidence: Evidence) -> list[str]:
    notes = []
    if evidence.zero_by_design:
        notes.append("zero by design (the plan starts this layer at 0)")
    if evidence.scaled_by_design:
        notes.append("scaled down by design inside a residual branch (at the expected std)")
    if evidence.gradient_blocked:
        notes.append("gradient 0 until the first step: a later layer starts at 0 by design")
    return notes


def judge(evidence: Evidence, thresholds: Thresholds) -> tuple[str, str, tuple[str, ...]]:
    """(verdict, reason, every verdict that fired) for one row."""
    fired = _unit_rules(evidence, thresholds) + _scale_rules(evidence, thresholds)
    rank = evidence.effective_rank
    if (
        evidence.mean_cosine is not None
        and evidence.mean_cosine > thresholds.collapse_cosine
        and (rank is None or rank < thresholds.collapse_rank)
    ):
        fired.append(
            (
                "collapsed",
                f"samples' outputs are nearly parallel (mean cosine {evidence.mean_cosine:.4f}"
                + (f", effective rank {rank:.2f})" if rank is not None else ")"),
            )
        )
    notes = _design_notes(evidence)
    if not fired:
        if evidence.scale_ratio is not None:
            notes.append(f"output RMS {evidence.scale_ratio:.3g}x the {evidence.reference} RMS")
        if evidence.dead_units and not evidence.zero_by_design:
            notes.append(f"{evidence.dead_units} dead unit(s)")
        return "healthy", "; ".join(notes) if notes else "no rule fired", ()
    verdicts = tuple(dict.fromkeys(name for name, _ in fired))
    return fired[0][0], "; ".join([text for _, text in fired] + notes), verdicts
