"""Remedies: for each flagged layer, the likely cause and the plan change that fixes it.

A verdict says *what* a layer's statistics show; a :class:`Remedy` says *why*
it probably happened and what to try instead, as a plan for
``initlab.init_model``. The cause is read from the rows themselves: the
weight layer that governs a row (the row itself, or the nearest weight layer
before it), its scale ``r = std(W) * sqrt(fan_in)`` and the variance-preserving
gain ``g`` of the activation that follows it (``initlab.gain``: ReLU sqrt(2),
tanh 1.59, none 1). A layer with ``r`` below ``g / 2`` shrinks the signal, one
above ``2 g`` blows it up (LeCun et al. 1998; Glorot & Bengio 2010; He et al.
2015).

=====================  ==================================================  =================
code                   likely cause                                        plan to try
=====================  ==================================================  =================
``constant_weights``   every weight of a layer equal (zeros, a constant):  ``auto``
                       identical units get identical gradients
``weights_too_small``  ``r < g / 2``: each layer shrinks the signal        ``auto``;
                                                                           ``glorot_normal``
                                                                           before tanh/sigmoid
``weights_too_large``  ``r > 2 g``: each layer multiplies the signal        as above
``residual_growth``    every layer keeps the scale, yet the signal grows   ``fixup``
                       from layer to layer: each residual branch adds its
                       variance to the stream
``saturated``          pre-activations too large for tanh/sigmoid          ``glorot_normal``
``dead_units``         ReLU units negative for every sample (negative      ``he``
                       bias, or a mis-scaled layer)
``small_embedding``    a lookup table far below unit scale (a one-hot      ``auto``
                       input has fan_in 1)
``gradient_shrinks``   sigmoid-like slopes (at most 1/4) shrink the        (architecture)
                       gradient at every layer
``small_signal``       the layers keep the scale, the input is small       ``lsuv``
``collapsed``          samples' outputs nearly parallel after many         ``lsuv``
                       layers without normalisation
``nonfinite_input``    NaN/inf with no oversized layer: the data or an     (none)
                       operation between the layers
=====================  ==================================================  =================

:func:`suggested_plan` picks one plan for the whole model: the remedy of the
most structural cause found (the order of :data:`PRIORITY`), so a residual
stack gets ``fixup`` even where its rows also show dead units.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from initlab.probe.layers import SATURATING
from initlab.probe.verdicts import Thresholds
from initlab.schemes.fans import fans
from initlab.schemes.gains import gain

if TYPE_CHECKING:
    from initlab.probe.report import LayerStats

__all__ = ["Remedy", "PRIORITY", "attach_remedies", "suggested_plan", "remedy_groups"]

# a layer's scale r = std(W) sqrt(fan_in) is off when it is outside [g / MISSCALE, g * MISSCALE]
MISSCALE = 2.0
# a weight whose std is below this fraction of its mean's magnitude is constant: the probe sums the
# squares of float32 weights in float32, which leaves a relative std of about 1e-3 on equal values
CONSTANT_STD = 1e-2
_WEIGHT_KINDS = ("linear", "conv", "conv_transpose", "embedding")

# most structural first: the cause whose fix the whole model needs before the others can show
PRIORITY = (
    "residual_growth",
    "constant_weights",
    "weights_too_large",
    "weights_too_small",
    "saturated",
    "small_embedding",
    "dead_units",
    "collapsed",
    "small_signal",
    "gradient_shrinks",
    "nonfinite_input",
)


@dataclass(frozen=True)
class Remedy:
    """Why a layer was flagged and what to change: ``plan`` is a plan for ``init_model`` ("" when no init helps)."""

    code: str
    cause: str
    plan: str
    change: str
    reference: str = ""


@dataclass(frozen=True)
class _Scale:
    """A weight layer's scale against the gain of the activation that follows it."""

    name: str
    kind: str
    std: float
    mean: float
    bias_mean: float | None
    fan_in: int
    activation: str | None
    gain: float
    all_units_equal: bool = False  # the probe found every unit of the layer in one symmetric group

    @property
    def ratio(self) -> float:
        """r = std(W) sqrt(fan_in); an embedding's lookup has fan_in 1."""
        return self.std * math.sqrt(1 if self.kind == "embedding" else self.fan_in)

    @property
    def state(self) -> str:
        if self.all_units_equal or self.std <= CONSTANT_STD * abs(self.mean):
            return "constant"
        if self.ratio < self.gain / MISSCALE:
            return "small"
        if self.ratio > self.gain * MISSCALE:
            return "large"
        return "ok"

    def describe(self) -> str:
        after = self.activation or "no activation"
        if self.kind == "embedding":
            return f"{self.name} draws its vectors with std {self.std:.3g}; a lookup keeps unit scale at std 1"
        return (
            f"{self.name} has std {self.std:.3g} = {self.ratio:.3g}/sqrt(fan_in) (fan_in {self.fan_in}); "
            f"with {after} after it the scale is kept at {self.gain:.3g}/sqrt(fan_in)"
        )

    @property
    def saturating(self) -> bool:
        return self.activation in SATURATING


@functools.lru_cache(maxsize=64)
def _gain(activation: str | None) -> float:
    if activation is None:
        return 1.0
    try:
        return gain(activation)
    except (ValueError, TypeError):
        return 1.0


def _scale_of(row: LayerStats, activation: str | None) -> _Scale | None:
    weight = next((p for p in row.params if p.name.rsplit(".", 1)[-1] == "weight"), None)
    if weight is None or row.kind not in _WEIGHT_KINDS or not math.isfinite(weight.weight_std):
        return None
    try:
        fan_in = fans(weight.shape, row.kind).fan_in
    except (ValueError, TypeError):
        return None
    bias = next((p for p in row.params if p.name.rsplit(".", 1)[-1] == "bias"), None)
    return _Scale(
        name=row.name,
        kind=row.kind,
        std=weight.weight_std,
        mean=weight.weight_mean,
        bias_mean=bias.weight_mean if bias is not None else None,
        fan_in=fan_in,
        activation=activation,
        gain=_gain(activation),
        all_units_equal=bool(row.symmetric_groups) and max(map(len, row.symmetric_groups or ())) >= row.units > 1,
    )


class _Context:
    """Per row: the weight layer that governs it; per weight layer: its scale."""

    def __init__(self, rows: Sequence[LayerStats], thresholds: Thresholds) -> None:
        self.rows = rows
        self.thresholds = thresholds
        self.scales: dict[int, _Scale] = {}
        self.governing: list[int | None] = []
        current: int | None = None
        for index, row in enumerate(rows):
            if row.kind in _WEIGHT_KINDS:
                scale = _scale_of(row, self._activation_after(index))
                if scale is not None:
                    self.scales[index] = scale
                    current = index
            self.governing.append(current)
        self.saturating_model = any(row.activation in SATURATING for row in rows)

    def _activation_after(self, index: int) -> str | None:
        for row in self.rows[index + 1 :]:
            if row.kind in _WEIGHT_KINDS:
                return None
            if row.kind == "activation":
                return row.activation
        return None

    def forward_small(self, row: LayerStats) -> bool:
        """Whether the row's output (not only its gradient) is what the vanishing rule flagged."""
        if row.act_rms is None:
            return False
        small_ratio = row.scale_ratio is not None and row.scale_ratio < self.thresholds.vanishing
        return row.act_rms == 0.0 or small_ratio or row.act_rms < self.thresholds.small_output

    def own(self, index: int) -> _Scale | None:
        position = self.governing[index]
        return self.scales.get(position) if position is not None else None

    def misscaled(self, index: int, states: tuple[str, ...], *, upstream: bool, downstream: bool) -> _Scale | None:
        """The governing layer if its state is in ``states``, else the nearest such layer before / after."""
        own = self.own(index)
        if own is not None and own.state in states:
            return own
        positions = sorted(self.scales)
        before = [p for p in positions if p <= index] if upstream else []
        after = [p for p in positions if p > index] if downstream else []
        for position in [*reversed(before), *after]:
            if self.scales[position].state in states:
                return self.scales[position]
        return None


def _rescale(scale: _Scale, code: str) -> Remedy:
    if scale.state == "constant":
        return _constant(scale)
    too = "small" if code == "weights_too_small" else "large"
    if scale.saturating:
        plan, change, reference = _glorot(scale.activation)
    else:
        plan, change = "auto", "auto: std = gain/sqrt(fan_in) with the gain of the activation after each layer"
        reference = "He et al. 2015" if scale.activation in ("relu", "leaky_relu", "relu6") else "LeCun et al. 1998"
    factor = scale.gain / scale.ratio if too == "small" else scale.ratio / scale.gain
    verb = "shrinks" if too == "small" else "multiplies"
    return Remedy(
        code,
        f"weights too {too}: {scale.describe()}; each such layer {verb} the signal about {factor:.3g}x",
        plan,
        change,
        reference,
    )


def _glorot(activation: str | None) -> tuple[str, str, str]:
    """(plan, change, reference) of Glorot's init for a tanh- or sigmoid-like activation.

    Glorot & Bengio's derivation works in the activation's linear range:
    tanh(x) ~ x keeps the weights at Var = 2/(fan_in + fan_out); sigmoid(x) ~
    1/2 + x/4 has slope 1/4 there, so the same argument asks for 4 times the
    weights (gain 4), which keeps the gradient from shrinking 4x per layer.
    """
    if activation == "sigmoid":
        return (
            "glorot_normal(gain=4.0)",
            "glorot_normal(gain=4.0): Glorot's Var(w) = 2/(fan_in + fan_out) times 16, since sigmoid's slope "
            "is 1/4 in its linear range",
            "Glorot & Bengio 2010",
        )
    return (
        "glorot_normal",
        f"glorot_normal (or auto): Var(w) = 2/(fan_in + fan_out) keeps {activation or 'the activation'} in its "
        "linear range",
        "Glorot & Bengio 2010",
    )


def _constant(scale: _Scale) -> Remedy:
    return Remedy(
        "constant_weights",
        f"every weight of {scale.name} equals {scale.mean:.3g}: its units compute one function and get one "
        "gradient, so training cannot separate them",
        "auto",
        "any random scheme breaks the symmetry: auto (or he, glorot_normal)",
        "Rumelhart, Hinton & Williams 1986; Goodfellow, Bengio & Courville 2016, sec. 8.4",
    )


def _residual() -> Remedy:
    return Remedy(
        "residual_growth",
        "every layer keeps the scale of its input, yet the signal grows from layer to layer: the additions of a "
        "residual stack each add their branch's variance to the stream",
        "fixup",
        "fixup (zero the last layer of each branch), skipinit if the blocks have a residual scalar, or scale "
        "each branch's last layer by 1/sqrt(number of branches)",
        "Zhang, Dauphin & Ma 2019 (Fixup); De & Smith 2020 (SkipInit); Radford et al. 2019",
    )


def _saturated(row: LayerStats, scale: _Scale | None) -> Remedy:
    cause = f"pre-activations too large for {row.activation or 'the activation'}"
    if scale is not None:
        cause += f": {scale.describe()}"
    plan, change, reference = _glorot(row.activation)
    return Remedy(
        "saturated",
        cause,
        plan,
        f"a smaller gain: {change}; or a norm layer before the activation",
        f"{reference}; Ioffe & Szegedy 2015",
    )


def _dead(row: LayerStats, scale: _Scale | None) -> Remedy:
    cause = f"{row.dead_units} of {row.units} units are negative before the ReLU for every sample"
    if scale is not None and scale.bias_mean is not None and scale.bias_mean < 0:
        cause += f": the bias of {scale.name} has mean {scale.bias_mean:.3g}"
    elif scale is not None and scale.state != "ok":
        cause += f": {scale.describe()}"
    return Remedy(
        "dead_units",
        cause,
        "he",
        "He fan_in with bias 0 (he), or a leaky activation (LeakyReLU, GELU) whose units never go fully silent",
        "He et al. 2015; Lu et al. 2019 (dying ReLU)",
    )


def _vanishing(context: _Context, index: int, row: LayerStats) -> Remedy:
    own = context.own(index)
    if own is not None and own.state == "constant":
        return _constant(own)
    if own is not None and own.kind == "embedding" and own.ratio < own.gain / MISSCALE:
        return Remedy(
            "small_embedding",
            f"{own.describe()}; every layer after it starts from a signal {1 / max(own.std, 1e-300):.3g}x too small",
            "auto",
            "auto (a one-hot lookup has fan_in 1: std 1, torch's default), or embedding=normal(mean=0.0, std=1.0)",
            "docs/plans.md, embeddings",
        )
    small = context.misscaled(index, ("small", "constant"), upstream=True, downstream=True)
    if small is not None:
        return _rescale(small, "weights_too_small")
    if not context.forward_small(row) and context.saturating_model:
        return Remedy(
            "gradient_shrinks",
            "the weights keep the forward scale, but tanh/sigmoid slopes (sigmoid's at most 1/4) shrink the "
            "gradient at every layer",
            "",
            "a norm layer before each activation, or tanh/ReLU instead of sigmoid; fewer saturating layers",
            "Glorot & Bengio 2010; Ioffe & Szegedy 2015",
        )
    return Remedy(
        "small_signal",
        "the layers keep the scale they are given, and the signal is small already"
        + (f" (output RMS {row.act_rms:.3g})" if row.act_rms is not None else ""),
        "lsuv",
        "standardise the input to unit variance, or lsuv, which rescales each layer on the batch",
        "Mishkin & Matas 2016",
    )


def _exploding(context: _Context, index: int) -> Remedy:
    large = context.misscaled(index, ("large", "constant"), upstream=True, downstream=True)
    if large is not None:
        return _rescale(large, "weights_too_large")
    return _residual()


def _remedy(context: _Context, index: int) -> Remedy:
    row = context.rows[index]
    verdict = row.verdict
    if verdict == "non-finite":
        large = context.misscaled(index, ("large",), upstream=True, downstream=True)
        if large is not None:
            return _rescale(large, "weights_too_large")
        return Remedy(
            "nonfinite_input",
            "non-finite values reached this layer while no layer's weights are oversized",
            "",
            "check the batch for non-finite values, and operations between the layers (log, division, exp)",
        )
    own = context.own(index)
    if verdict == "symmetric" or (own is not None and own.state == "constant"):
        return _constant(own) if own is not None else _constant_unknown(row)
    if verdict == "dead":
        return _dead(row, own)
    if verdict == "saturated":
        return _saturated(row, own)
    if verdict == "exploding":
        return _exploding(context, index)
    if verdict == "vanishing":
        return _vanishing(context, index, row)
    return Remedy(
        "collapsed",
        "the samples' outputs have become nearly parallel: deep stacks without normalisation lose the "
        "differences between inputs",
        "lsuv",
        "norm layers or skip connections keep samples apart; orthogonal weights rescaled on data (lsuv) slow it",
        "Saxe et al. 2014; Mishkin & Matas 2016; Ioffe & Szegedy 2015",
    )


def _constant_unknown(row: LayerStats) -> Remedy:
    return Remedy(
        "constant_weights",
        f"units of {row.name} have identical incoming weights: they compute one function and get one gradient",
        "auto",
        "any random scheme breaks the symmetry: auto (or he, glorot_normal)",
        "Rumelhart, Hinton & Williams 1986",
    )


def attach_remedies(rows: Sequence[LayerStats], thresholds: Thresholds) -> list[LayerStats]:
    """``rows`` with a :class:`Remedy` on every row whose verdict is not healthy."""
    context = _Context(rows, thresholds)
    return [
        row if row.verdict == "healthy" else replace(row, remedy=_remedy(context, index))
        for index, row in enumerate(rows)
    ]


def remedy_groups(rows: Sequence[LayerStats]) -> list[tuple[Remedy, list[str]]]:
    """(remedy of the first row, names of its rows) per distinct (code, plan), in order of first appearance."""
    groups: dict[tuple[str, str], tuple[Remedy, list[str]]] = {}
    for row in rows:
        if row.remedy is None:
            continue
        key = (row.remedy.code, row.remedy.plan)
        if key not in groups:
            groups[key] = (row.remedy, [])
        groups[key][1].append(row.name)
    return list(groups.values())


def suggested_plan(rows: Sequence[LayerStats]) -> str | None:
    """The plan to try first: that of the most structural cause among the flagged rows (None if none has one)."""
    remedies = [row.remedy for row in rows if row.remedy is not None and row.remedy.plan]
    if not remedies:
        return None
    return min(remedies, key=lambda remedy: PRIORITY.index(remedy.code)).plan
