"""Load a model factory given as ``package.module:factory``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``"package.module:attribute"`` (the attribute may be dotted)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"a factory is given as 'package.module:factory', got {spec!r}")
    module_name, attribute = spec.split(":")
    if not module_name or not attribute:
        raise ValueError(f"a factory is given as 'package.module:factory', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(f"cannot import module {module_name!r} of factory {spec!r}: {error}") from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r} (factory {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"factory {spec!r} is not callable")
    return target
