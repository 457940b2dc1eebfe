"""The maximal update parametrization (muP, Yang et al. 2022, Tensor Programs V) with base shapes.

>>> import torch, initlab
>>> def mlp(width):
...     return torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
...                                torch.nn.ReLU(), torch.nn.Linear(width, 3))
>>> model, base = mlp(256), mlp(64)
>>> report = initlab.init_model(model, plan=initlab.mup.plan(base), seed=0)
>>> groups = initlab.mup.param_groups(model, base, optimizer="adam", lr=1e-3)
>>> sorted(round(group["lr"], 8) for group in groups)
[0.00025, 0.001]
>>> optimizer = torch.optim.Adam(groups)

``plan(base)`` (or the plan string ``"mup(base=64, width=256)"``) initializes
a plain torch model as the ``mup`` package initializes one whose output layer
is a ``MuReadout``; :func:`param_groups` gives the per-parameter learning rates
of ``MuAdam``/``MuSGD`` for it. :mod:`initlab.plan.mup` states the rules.
"""

from __future__ import annotations

from typing import Any

from initlab.plan.mup import (
    OPTIMIZERS,
    BaseLike,
    Mup,
    WidthShape,
    base_shapes,
    param_groups,
    width_shapes,
)
from initlab.plan.rules import Plan

__all__ = ["plan", "param_groups", "width_shapes", "base_shapes", "Mup", "WidthShape", "OPTIMIZERS"]


def plan(base: BaseLike | int, *, width: int | None = None, delta: BaseLike | None = None,
         output_mult: float = 1.0, readout_zero_init: bool = False) -> Plan:
    """The muP plan for ``base`` (a base model, base shapes, or an int base width with ``width``).

    ``delta`` (a second model of another width) marks which dimensions are
    widths, as in ``mup.set_base_shapes(model, base, delta=delta)``.
    """
    value: Any = base if delta is None else base_shapes(base, delta)  # type: ignore[arg-type]
    return Plan(default=Mup(value, width=width, output_mult=output_mult, readout_zero_init=readout_zero_init))
