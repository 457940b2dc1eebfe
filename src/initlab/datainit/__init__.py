"""Data-driven initialization: scales measured on a batch, or learned.

* :func:`lsuv` -- layer-sequential unit variance (Mishkin & Matas 2016);
* :func:`weight_norm_init` -- data-dependent weight-norm init (Salimans & Kingma 2016);
* :func:`calibrate_gradients` -- between-layer calibration of |grad W| / |W|
  (Kraehenbuehl et al. 2016);
* :func:`layerwise_pretrain` -- greedy layer-wise autoencoder pre-training;
* :func:`gradinit` -- learned per-layer scales (Zhu et al. 2021).

Each changes the model in place, restores it on an exception and returns a
per-layer report. :data:`METHODS` is the one table of them; from it
``initlab/__init__.py`` registers each as a plan stage and ready plan
(``init_model(model, plan="lsuv", batch=x)``; also "wn", "calibrate",
"pretrain", "gradinit").
"""

from initlab.datainit._common import SUPPORTED_LAYERS, DataInitReport, covered_layers
from initlab.datainit.calibrate import CalibrationRow, calibrate_gradients, gradient_ratios
from initlab.datainit.gradinit import GradInitRow, gradinit
from initlab.datainit.lsuv import LSUVReport, LSUVRow, lsuv, orthonormal_
from initlab.datainit.methods import METHODS, Method
from initlab.datainit.pretrain import PretrainRow, layerwise_pretrain
from initlab.datainit.weightnorm import WNRow, weight_norm_init

__all__ = [
    "SUPPORTED_LAYERS",
    "METHODS",
    "Method",
    "CalibrationRow",
    "DataInitReport",
    "GradInitRow",
    "LSUVReport",
    "LSUVRow",
    "PretrainRow",
    "WNRow",
    "calibrate_gradients",
    "covered_layers",
    "gradient_ratios",
    "gradinit",
    "layerwise_pretrain",
    "lsuv",
    "orthonormal_",
    "weight_norm_init",
]
