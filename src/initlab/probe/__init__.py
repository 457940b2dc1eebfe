"""Diagnostics: what an initialization does inside a network, layer by layer.

``audit(model, batch, loss_fn, target)`` runs one forward (and backward)
pass and returns a :class:`ProbeReport`; ``with probe(model, every=N) as p``
records the same statistics during training. Each row holds the output's
mean/std/RMS/min/max and non-finite count, the gain RMS(out)/RMS(in) and the
cumulative log-gain, saturated and dead fractions, effective rank and mean
cosine similarity of samples, gradient statistics per layer and per
parameter, grad/weight and update/weight ratios, groups of symmetric units,
a signed log histogram, the expected and mean-field std, and a verdict with
its reason.
"""

import sys
import types
from typing import Any

from initlab.probe.histogram import DEFAULT_BINS, HistogramBins
from initlab.probe.layers import select_layers
from initlab.probe.oneshot import audit
from initlab.probe.plots import compare_histograms, plot_depth, plot_heatmap
from initlab.probe.report import LayerStats, ParamStats, ProbeReport
from initlab.probe.session import Probe
from initlab.probe.session import probe as _probe
from initlab.probe.verdicts import VERDICTS, Thresholds

__all__ = [
    "audit",
    "probe",
    "Probe",
    "compare_histograms",
    "plot_depth",
    "plot_heatmap",
    "DEFAULT_BINS",
    "HistogramBins",
    "LayerStats",
    "ParamStats",
    "ProbeReport",
    "Thresholds",
    "VERDICTS",
    "select_layers",
]


class _CallableModule(types.ModuleType):
    """``initlab.probe`` is both this package and the context manager ``probe(model, ...)``.

    Calling the package runs :func:`initlab.probe.session.probe`, and the
    package's own ``probe`` attribute is the package, so ``initlab.probe``
    is the same object whichever way it is reached (``import initlab.probe``,
    the lazy top-level name, ``from initlab.probe import probe``) and both
    ``initlab.probe(model)`` and ``initlab.probe.audit(...)`` work.
    """

    def __call__(
        self,
        model: Any,
        every: int = 10,
        modules: Any = None,
        optimizer: Any = None,
        **options: Any,
    ) -> Probe:
        return _probe(model, every, modules, optimizer, **options)


sys.modules[__name__].__class__ = _CallableModule
probe = sys.modules[__name__]
