"""Signal-propagation theory: mean-field maps, the edge of chaos and Jacobian spectra.

>>> from initlab.theory import MeanField, critical_line
>>> field = MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05)
>>> field.phase
'ordered'

``EdgeOfChaos`` is a scheme of this layer; ``initlab/__init__.py`` registers it in the
catalogue, so ``initlab.get("edge_of_chaos(activation=tanh)")`` works.
"""

from initlab.theory.edge_of_chaos import EdgeOfChaos, edge_of_chaos
from initlab.theory.jacobian import JacobianSpectrum, is_isometric, jacobian_singular_values
from initlab.theory.meanfield import (
    MeanField,
    PhaseDiagram,
    critical_line,
    critical_sigma_w2,
    phase_diagram,
    predict_layer_stats,
)
from initlab.theory.plot import plot_phase_diagram

__all__ = [
    "EdgeOfChaos",
    "JacobianSpectrum",
    "MeanField",
    "PhaseDiagram",
    "critical_line",
    "critical_sigma_w2",
    "edge_of_chaos",
    "is_isometric",
    "jacobian_singular_values",
    "phase_diagram",
    "plot_phase_diagram",
    "predict_layer_stats",
]
