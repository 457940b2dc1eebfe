"""The data-driven methods, in one table.

Everything that lists the methods derives from :data:`METHODS`: the plan
stages and ready plans that ``initlab/__init__.py`` registers
(``init_model(model, plan="lsuv", batch=x)``), the ``--method`` choices of
``initlab lsuv`` and the documentation. Each row names the function, the rules
a plan applies before it (``base``), whether it takes the labels as its third
argument, and the options a plan stage passes by default.

=============  ===============================  ======================================
method         runs after (ready plan)          reference
=============  ===============================  ======================================
``lsuv``       orthogonal; bias=zeros           Mishkin & Matas 2016
``wn``         N(0, 0.05^2); bias=zeros         Salimans & Kingma 2016
``calibrate``  the ``auto`` plan                Kraehenbuehl et al. 2016
``pretrain``   the ``auto`` plan                Hinton et al. 2006; Bengio et al. 2007
``gradinit``   he_normal; bias=zeros            Zhu et al. 2021
=============  ===============================  ======================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from initlab.datainit._common import DataInitReport
from initlab.datainit.calibrate import calibrate_gradients
from initlab.datainit.gradinit import gradinit
from initlab.datainit.lsuv import lsuv
from initlab.datainit.pretrain import layerwise_pretrain
from initlab.datainit.weightnorm import weight_norm_init
from initlab.plan.catalogue import NAMED_PLANS

__all__ = ["Method", "METHODS"]

_AUTO_RULES = NAMED_PLANS["auto"][0]


@dataclass(frozen=True)
class Method:
    """One data-driven method: ``function(model, batch[, target], **options) -> DataInitReport``.

    ``sharded``: as a plan stage it runs on FSDP2-sharded models (the same
    scales on every rank from the same all-gathered batch, checked bit for
    bit against one process in tests/test_plan_dtensor.py and the layout
    matrix); the others train the model, and are refused there.
    """

    name: str
    function: Callable[..., DataInitReport]
    base: str
    description: str
    uses_target: bool = False
    stage_options: Mapping[str, Any] = field(default_factory=dict)
    sharded: bool = False

    def stage(self, model: nn.Module, batch: Any, **options: Any) -> DataInitReport:
        """The method as a plan stage: the stage's default options, then the plan's."""
        return self.function(model, batch, **{**self.stage_options, **options})


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "lsuv", lsuv, "orthogonal; bias=zeros",
            "orthogonal, then layer-sequential unit variance on a batch (Mishkin & Matas 2016)",
            # the plan has drawn the orthogonal weights already
            stage_options={"orthonormal": False}, sharded=True,
        ),
        Method(
            "wn", weight_norm_init, "normal(mean=0.0, std=0.05); bias=zeros",
            "weight-norm data-dependent init (Salimans & Kingma 2016)", sharded=True,
        ),
        Method(
            "calibrate", calibrate_gradients, _AUTO_RULES,
            "auto, then gradient-ratio calibration on a batch (Kraehenbuehl et al. 2016)", uses_target=True,
            sharded=True,
        ),
        Method(
            "pretrain", layerwise_pretrain, _AUTO_RULES,
            "auto, then greedy layer-wise autoencoder pre-training (Bengio et al. 2007)",
        ),
        Method(
            "gradinit", gradinit, "he_normal; bias=zeros",
            "He, then learned per-layer scales (Zhu et al. 2021)", uses_target=True,
        ),
    )
}
