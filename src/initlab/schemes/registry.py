"""The catalogue of schemes: :func:`register`, :func:`get` and :func:`list_schemes`.

A scheme class joins the catalogue with the :func:`register` decorator
(schemes of higher layers, such as ``initlab.theory.EdgeOfChaos``, are
registered by ``initlab/__init__.py``). :func:`get` builds a scheme from its
string form, a config dict, a class or a scheme::

    >>> init = get("he_normal(mode=fan_out, nonlinearity=leaky_relu, negative_slope=0.2)")
    >>> get(str(init)) == init
    True
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from initlab.schemes.initializer import Initializer
from initlab.schemes.strings import parse_call

__all__ = ["SchemeInfo", "register", "get", "list_schemes", "namespaces"]

_REGISTRY: dict[str, type[Initializer]] = {}
_ALIASES: dict[str, str] = {}

SchemeType = TypeVar("SchemeType", bound=type[Initializer])


@dataclass(frozen=True)
class SchemeInfo:
    """One row of the catalogue."""

    name: str
    aliases: tuple[str, ...]
    formula: str
    reference: str
    parameters: tuple[str, ...]
    summary: str


def register(cls: SchemeType) -> SchemeType:
    """Class decorator: add a scheme (and its aliases) to the catalogue.

    Registering the same class again is a no-op; another class under a
    name or alias already taken is a ValueError.
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if _REGISTRY.get(cls.name) is cls:
        return cls
    for key in (cls.name, *cls.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"scheme name {key!r} is registered twice")
    _REGISTRY[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def _lookup(name: str) -> type[Initializer]:
    key = _ALIASES.get(name, name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    names = sorted(set(_REGISTRY) | set(_ALIASES))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    if ":" in name:
        namespace = name.split(":", 1)[0]
        if namespace not in namespaces():
            raise ValueError(f"unknown scheme {name!r}: no framework {namespace!r}{hint}; "
                             f"namespaces: {', '.join(namespaces())}")
        listed = f"initlab.list_schemes({namespace!r}) lists its {len(list_schemes(namespace))}"
        raise ValueError(f"unknown scheme {name!r}{hint} ({listed})")
    own = sum(1 for key in _REGISTRY if ":" not in key)
    raise ValueError(f"unknown scheme {name!r}{hint} (initlab.list_schemes() lists all {own})")


def _parameters(cls: type[Initializer]) -> list[str]:
    # every scheme is a dataclass; Initializer itself is not, so the type cannot say so
    return [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]


def _build(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Initializer:
    cls = _lookup(name)
    field_names = _parameters(cls)
    if len(args) > len(field_names):
        raise TypeError(
            f"{cls.name} takes at most {len(field_names)} positional parameters "
            f"({', '.join(field_names) or 'none'}), got {len(args)}"
        )
    merged = dict(zip(field_names, args))
    for key, value in kwargs.items():
        if key not in field_names:
            accepted = ", ".join(field_names) or "no parameters"
            raise TypeError(f"{cls.name} got an unknown parameter {key!r}; accepted: {accepted}")
        if key in merged:
            raise TypeError(f"{cls.name} got parameter {key!r} twice")
        merged[key] = value
    return cls(**merged)


def get(spec: str | dict[str, Any] | Initializer | Callable[..., Any]) -> Initializer:
    """A scheme from its string form, a config dict, a scheme class, or a scheme itself.

    >>> get("glorot_uniform")
    glorot_uniform(gain=1.0)
    """
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, str):
        return _build(*parse_call(spec))
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"a scheme config needs a 'name' key, got keys {sorted(spec)}")
        params = dict(spec)
        return _build(str(params.pop("name")), (), params)
    if isinstance(spec, type) and issubclass(spec, Initializer):
        return spec()
    raise TypeError(
        f"a scheme is given as a string, a config dict or an Initializer, got {type(spec).__name__}"
    )


def namespaces() -> list[str]:
    """The framework namespaces that have schemes registered (``keras``, ``jax``, ...), in order."""
    return list(dict.fromkeys(name.split(":", 1)[0] for name in (*_REGISTRY, *_ALIASES) if ":" in name))


def _in_namespace(name: str, aliases: tuple[str, ...], dialect: str | None) -> bool:
    """initlab's own scheme (dialect None), or one with a name or alias in ``dialect:``."""
    if dialect is None:
        return ":" not in name
    return any(key.startswith(f"{dialect}:") for key in (name, *aliases))


def list_schemes(dialect: str | None = None) -> list[SchemeInfo]:
    """The catalogue: one :class:`SchemeInfo` per scheme, in registration order.

    ``dialect=None`` (default): initlab's own schemes; a namespace
    (``"keras"``, ``"jax"``, ``"flax"``, ``"torch"``, ``"timm"``, ``"lasagne"``):
    the schemes with a name or alias there (``keras:he_normal``, and
    ``keras_default`` for ``keras:default``); ``flax:`` holds JAX's names
    (re-exported by flax.linen.initializers) and ``flax:default``.
    """
    if dialect is not None and dialect not in namespaces():
        raise ValueError(f"dialect must be None or one of {', '.join(namespaces())}, got {dialect!r}")
    rows = []
    for name, cls in _REGISTRY.items():
        if not _in_namespace(name, cls.aliases, dialect):
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append(
            SchemeInfo(
                name=name,
                aliases=cls.aliases,
                formula=cls.formula,
                reference=cls.reference,
                parameters=tuple(_parameters(cls)),
                summary=doc[0] if doc else "",
            )
        )
    return rows
