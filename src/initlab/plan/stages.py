"""Data-driven stages: steps a plan runs after its rules, on a batch of data.

``initlab.datainit`` registers its stages here (``lsuv``, ``wn``,
``calibrate``, ``pretrain``, ``gradinit``); any package may add
its own. A stage is ``fn(model, batch, **options) -> report``; the report
lands in ``InitReport.stage_reports[name]``.

When a plan names a stage that is not registered yet, :func:`get_stage`
imports ``initlab.datainit`` (which registers its stages on import) and looks
again, so the plan layer never imports the data-driven layer at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["register_stage", "get_stage", "list_stages", "Stage", "stage_plan_text", "PLUGIN_MODULES"]

StageFn = Callable[..., Any]

# modules imported, in order, when a stage is not registered
PLUGIN_MODULES = ("initlab.datainit",)
DEFAULT_BASE = "auto; bias=zeros; output=lecun_normal"


@dataclass(frozen=True)
class Stage:
    """A registered stage: its function, the base rules of its named plan, and whether it needs a batch."""

    name: str
    fn: StageFn
    base: str = DEFAULT_BASE
    needs_batch: bool = True


_STAGES: dict[str, Stage] = {}
_PLUGINS_LOADED = False


def register_stage(
    name: str, fn: StageFn, *, base: str | None = None, needs_batch: bool = True, replace: bool = False
) -> StageFn:
    """Register ``fn(model, batch, **options) -> report`` as the stage ``name``.

    ``base`` is the plan string applied before the stage when ``name`` is
    used as a plan by itself (default: ``auto``'s rules); ready plans such as
    ``lsuv`` keep their own base. Registering a name twice is an error unless
    ``replace=True``. Returns ``fn`` (usable as a decorator factory's body).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a stage name must be an identifier, got {name!r}")
    if not callable(fn):
        raise TypeError(f"stage {name!r}: fn must be callable, got {type(fn).__name__}")
    if name in _STAGES and not replace and _STAGES[name].fn is not fn:
        raise ValueError(f"stage {name!r} is already registered (pass replace=True to replace it)")
    _STAGES[name] = Stage(name, fn, DEFAULT_BASE if base is None else base, needs_batch)
    return fn


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue


def get_stage(name: str) -> Stage:
    """The stage registered as ``name``, importing ``initlab.datainit`` first if needed."""
    if name not in _STAGES:
        _load_plugins()
    if name not in _STAGES:
        known = ", ".join(sorted(_STAGES)) or "none"
        raise ValueError(f"unknown data-driven stage {name!r}; registered stages: {known}")
    return _STAGES[name]


def list_stages() -> list[str]:
    """Names of the registered stages (after loading the plugin modules)."""
    _load_plugins()
    return sorted(_STAGES)


def stage_plan_text(name: str) -> str | None:
    """``"<base>; stage=<name>"`` for a registered stage, None if there is no such stage."""
    if not isinstance(name, str) or not name.isidentifier():
        return None
    try:
        stage = get_stage(name)
    except ValueError:
        return None
    return f"{stage.base}; stage={name}"
