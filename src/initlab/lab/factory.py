"""Load a model factory given as ``package.module:factory``.

A factory spec names code to import and call, so it is taken only where it
can mean "build me a model": the module must not be part of Python's
standard library (``os:system``, ``subprocess:run`` and the like are
refused), and the object it names must be a class or a plain Python function
that is itself defined in a module outside the standard library (a re-export
such as ``mypkg:os.system``, a builtin, a ``functools.partial`` or any other
callable object is refused). Importing the module runs its top-level code:
name only packages you trust.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["load_factory", "FACTORY_RULE"]

# said in every refusal and in the CLI help
FACTORY_RULE = ("a factory is a class or a function defined in a module outside Python's standard library, "
                "returning a torch.nn.Module")


def _is_standard_library(module_name: str) -> bool:
    top = module_name.partition(".")[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names or top in ("__main__", "builtins")


def load_factory(spec: str) -> Callable[..., Any]:
    """The class or function named by ``"package.module:attribute"`` (the attribute may be dotted).

    ValueError for a malformed spec, a module that cannot be imported, a
    missing attribute, a standard-library module, or an object that is not a
    class or function defined outside the standard library (see the module
    docstring).
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"a factory is given as 'package.module:factory', got {spec!r}")
    module_name, attribute = spec.split(":")
    if not module_name or not attribute:
        raise ValueError(f"a factory is given as 'package.module:factory', got {spec!r}")
    if _is_standard_library(module_name):
        raise ValueError(f"factory {spec!r}: module {module_name!r} is part of Python's standard library; {FACTORY_RULE}")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(f"cannot import module {module_name!r} of factory {spec!r}: {error}") from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r} (factory {spec!r})")
        target = getattr(target, part)
    if not (inspect.isclass(target) or inspect.isfunction(target)):
        raise ValueError(f"factory {spec!r} is a {type(target).__name__}, not a class or function; {FACTORY_RULE}")
    defined_in = getattr(target, "__module__", None) or ""
    if not defined_in or _is_standard_library(defined_in):
        raise ValueError(
            f"factory {spec!r} is defined in {defined_in or 'no module'!r}, part of Python's standard library; "
            f"{FACTORY_RULE}"
        )
    return target
