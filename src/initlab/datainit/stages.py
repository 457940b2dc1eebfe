"""Plan stages: the data-driven inits reachable as ``init_model(model, plan="lsuv", batch=...)``.

Each stage is ``fn(model, batch, **options) -> report``. The plan applies
the plan's base schemes first (orthogonal for LSUV), so the LSUV stage does
not redraw orthonormal weights unless ``orthonormal=True`` is passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from initlab.datainit.calibrate import calibrate_gradients
from initlab.datainit.gradinit import gradinit
from initlab.datainit.lsuv import lsuv
from initlab.datainit.pretrain import layerwise_pretrain
from initlab.datainit.weightnorm import weight_norm_init

__all__ = ["STAGES", "register_stages"]


def _lsuv_stage(model: nn.Module, batch: Any, **options: Any) -> Any:
    options.setdefault("orthonormal", False)
    return lsuv(model, batch, **options)


def _wn_stage(model: nn.Module, batch: Any, **options: Any) -> Any:
    return weight_norm_init(model, batch, **options)


def _calibrate_stage(model: nn.Module, batch: Any, **options: Any) -> Any:
    return calibrate_gradients(model, batch, **options)


def _pretrain_stage(model: nn.Module, batch: Any, **options: Any) -> Any:
    return layerwise_pretrain(model, batch, **options)


def _gradinit_stage(model: nn.Module, batch: Any, **options: Any) -> Any:
    return gradinit(model, batch, **options)


STAGES: dict[str, Callable[..., Any]] = {
    "lsuv": _lsuv_stage,
    "wn": _wn_stage,
    "calibrate": _calibrate_stage,
    "pretrain": _pretrain_stage,
    "gradinit": _gradinit_stage,
}


def register_stages() -> bool:
    """Register every stage with ``initlab.plan.stages``; False when the plan layer has no stage registry."""
    try:
        from initlab.plan.stages import register_stage
    except ImportError:
        return False
    for name, function in STAGES.items():
        register_stage(name, function)
    return True
