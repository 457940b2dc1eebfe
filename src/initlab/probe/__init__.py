"""Diagnostics: what an initialization does inside a network, layer by layer.

``audit(model, batch, target=None, *, loss_fn=None)`` runs one forward (and
backward) pass and returns a :class:`ProbeReport`; ``with Probe(model,
every=N) as p`` records the same statistics during training. Each row holds the output's
mean/std/RMS/min/max and non-finite count, the gain RMS(out)/RMS(in) and the
cumulative log-gain, saturated and dead fractions, effective rank and mean
cosine similarity of samples, gradient statistics per layer and per
parameter, grad/weight and update/weight ratios, groups of symmetric units,
a signed log histogram, the expected and mean-field std, a verdict with
its reason and, for a flagged layer, a :class:`Remedy`: the likely cause and
the plan that fixes it (``report.what_to_try()``, ``report.suggested_plan``).
"""

import sys
import types
from typing import Any

from initlab.probe.histogram import DEFAULT_BINS, HistogramBins
from initlab.probe.layers import select_layers
from initlab.probe.oneshot import audit
from initlab.probe.plots import compare_histograms, plot_depth, plot_heatmap
from initlab.probe.remedies import Remedy
from initlab.probe.report import LayerStats, ParamStats, ProbeReport, side_by_side
from initlab.probe.session import Probe
from initlab.probe.verdicts import VERDICTS, Thresholds
from initlab.rng.deprecation import warn_deprecated

__all__ = [
    "audit",
    "Probe",
    "compare_histograms",
    "plot_depth",
    "plot_heatmap",
    "DEFAULT_BINS",
    "HistogramBins",
    "LayerStats",
    "ParamStats",
    "ProbeReport",
    "Remedy",
    "side_by_side",
    "Thresholds",
    "VERDICTS",
    "select_layers",
]


class _CallableModule(types.ModuleType):
    """Calling the package, ``initlab.probe(model, ...)``, is deprecated: use :class:`Probe`.

    Until the old spelling is removed, the package's own ``probe`` attribute
    is the package, so ``from initlab.probe import probe`` keeps working too.
    """

    def __call__(self, model: Any, *args: Any, **options: Any) -> Probe:
        warn_deprecated("initlab.probe(model, ...)", "initlab.Probe(model, every=..., ...)", stacklevel=2)
        return Probe(model, *args, **options)


sys.modules[__name__].__class__ = _CallableModule
probe = sys.modules[__name__]
