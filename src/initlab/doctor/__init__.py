"""The doctor: init bugs found in a model before training, and the init read back out of a checkpoint.

>>> import torch, initlab as il
>>> report = il.doctor(torch.nn.Linear(4, 4))
>>> report.worst is None
True

``doctor(model, batch=None)`` returns a :class:`DoctorReport` of findings
(severity, parameters, evidence, fix); ``fingerprint(state_dict)`` returns a
:class:`Fingerprint` with each tensor's most likely distribution, its scheme
and a plan that regenerates it. See docs/doctor.md.
"""

import sys
import types
from typing import Any

from initlab.doctor.checkpoint import load_tensors
from initlab.doctor.diagnose import doctor
from initlab.doctor.findings import SEVERITIES, DoctorReport, Finding, LayerScale
from initlab.doctor.readback import Fingerprint, TensorFingerprint, fingerprint

__all__ = [
    "doctor",
    "fingerprint",
    "load_tensors",
    "DoctorReport",
    "Finding",
    "LayerScale",
    "Fingerprint",
    "TensorFingerprint",
    "SEVERITIES",
]


class _CallableModule(types.ModuleType):
    """``initlab.doctor`` is both this package and the function ``doctor(model, batch=None, ...)``.

    Importing the package makes it the attribute ``initlab.doctor``, so the
    top-level name is this package whichever way it was reached; calling it
    runs :func:`initlab.doctor.diagnose.doctor`.
    """

    def __call__(self, model: Any, batch: Any = None, **options: Any) -> DoctorReport:
        return doctor(model, batch, **options)


sys.modules[__name__].__class__ = _CallableModule
