"""Old spellings kept for one release: each use warns with a ``DeprecationWarning``.

Every renamed name, keyword or argument order of initlab's public API goes
through these helpers, so the warnings read alike and name the release that
removes the old spelling. The module sits in the lowest layer so that every
layer can use it. CHANGELOG.md lists what is deprecated.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

__all__ = ["REMOVED_IN", "warn_deprecated", "moved_attributes", "renamed_keywords", "keyword_only"]

# the release in which the deprecated spellings go away
REMOVED_IN = "0.3"

Function = TypeVar("Function", bound=Callable[..., Any])


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (``stacklevel`` points at the caller's caller)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in initlab {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def moved_attributes(module: str, table: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``table`` = {old name: (module, new name)} with a warning.

    >>> import math
    >>> getattr_ = moved_attributes("demo", {"PI": ("math", "pi")})
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     round(getattr_("PI"), 2)
    3.14
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target_module, target = table[name]
        warn_deprecated(f"{module}.{name}", f"{target_module}.{target}")
        import importlib

        return getattr(importlib.import_module(target_module), target)

    return __getattr__


def renamed_keywords(owner: str, renames: Mapping[str, str]) -> Callable[[Function], Function]:
    """Decorator: accept the old keyword names in ``renames`` = {old: new}, with a warning."""

    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{owner}: got both {old}= (deprecated) and {new}=")
                    warn_deprecated(f"{owner}({old}=...)", f"{new}=...")
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return cast(Function, wrapper)

    return decorate


def keyword_only(owner: str, positional: int, names: tuple[str, ...]) -> Callable[[Function], Function]:
    """Decorator: options that were positional (after the first ``positional`` arguments) become keywords.

    A call that still passes them by position gets them mapped to ``names``,
    in order, with a warning.
    """

    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(names):
                    raise TypeError(f"{owner} takes {positional} positional arguments, got {len(args)}")
                warn_deprecated(
                    f"passing {', '.join(names[: len(extra)])} to {owner} by position",
                    "keywords (" + ", ".join(f"{name}=..." for name in names[: len(extra)]) + ")",
                )
                for name, value in zip(names, extra):
                    if name in kwargs:
                        raise TypeError(f"{owner} got {name} both by position and by keyword")
                    kwargs[name] = value
                args = args[:positional]
            return function(*args, **kwargs)

        return cast(Function, wrapper)

    return decorate
