"""Data-driven stages: steps a plan runs after its rules, on a batch of data.

This is the plan layer's extension point for the layers above it: a stage is
``fn(model, batch, **options) -> report``, registered with
:func:`register_stage`; the report lands in ``InitReport.stage_reports[name]``.
``initlab/__init__.py`` registers the data-driven methods of
``initlab.datainit`` (``lsuv``, ``wn``, ``calibrate``, ``pretrain``,
``gradinit``) from that package's method table; any package may add its own.
The plan layer itself never imports a layer above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["register_stage", "get_stage", "list_stages", "Stage"]

StageFn = Callable[..., Any]


@dataclass(frozen=True)
class Stage:
    """A registered stage.

    ``base`` is the plan string applied before the stage when its name is used
    as a plan by itself (None: the rules of the ``auto`` plan);
    ``description`` is its line in ``initlab.plan.named_plans()``;
    ``sharded``: the stage gives every rank of an FSDP2-sharded model the
    same result from the same batch (``initlab.plan.sharded``), so
    ``init_model`` runs it on DTensor parameters instead of refusing.
    """

    name: str
    fn: StageFn
    base: str | None = None
    needs_batch: bool = True
    description: str = ""
    sharded: bool = False


_STAGES: dict[str, Stage] = {}


def register_stage(
    name: str,
    fn: StageFn,
    *,
    base: str | None = None,
    description: str = "",
    needs_batch: bool = True,
    replace: bool = False,
    sharded: bool = False,
) -> StageFn:
    """Register ``fn(model, batch, **options) -> report`` as the stage ``name``; returns ``fn``.

    Registering a name twice is an error unless ``replace=True``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a stage name must be an identifier, got {name!r}")
    if not callable(fn):
        raise TypeError(f"stage {name!r}: fn must be callable, got {type(fn).__name__}")
    if name in _STAGES and not replace and _STAGES[name].fn is not fn:
        raise ValueError(f"stage {name!r} is already registered (pass replace=True to replace it)")
    _STAGES[name] = Stage(name, fn, base, needs_batch, description or f"{name} (a registered data-driven stage)", sharded)
    return fn


def get_stage(name: str) -> Stage:
    """The stage registered as ``name``; a ValueError listing the registered stages otherwise."""
    if name not in _STAGES:
        known = ", ".join(sorted(_STAGES)) or "none"
        raise ValueError(f"unknown data-driven stage {name!r}; registered stages: {known}")
    return _STAGES[name]


def list_stages() -> list[str]:
    """Names of the registered stages, sorted."""
    return sorted(_STAGES)
