"""Diagnosis (the ``doctor`` layer): init bugs found in a model before training, and the init read back out of a checkpoint.

>>> import torch, initlab as il
>>> report = il.doctor(torch.nn.Linear(4, 4))
>>> report.worst is None
True

``doctor(model, batch=None)`` returns a :class:`DoctorReport` of findings
(severity, parameters, evidence, fix); ``fingerprint(state_dict)`` returns a
:class:`Fingerprint` with each tensor's most likely distribution, its scheme
and a plan that regenerates it. See docs/doctor.md.
"""

from initlab.diagnosis.checkpoint import load_tensors
from initlab.diagnosis.diagnose import doctor
from initlab.diagnosis.findings import SEVERITIES, DoctorReport, Finding, LayerScale
from initlab.diagnosis.readback import Fingerprint, TensorFingerprint, fingerprint

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

