"""The string form of a scheme: ``NAME`` or ``NAME(key=value, ...)``, written and read.

A NAME may carry a framework's namespace, ``keras:he_normal(...)``; the
namespace stays part of the name.

``str(init)`` writes every parameter as ``key=value``; :func:`parse_call`
reads such a string back into its name and literal arguments without
evaluating anything. The registry (:mod:`initlab.schemes.registry`) turns
the result into a scheme; plans read their stage options with the same reader.

>>> parse_call("he_normal(mode=fan_out, negative_slope=-0.2)")
('he_normal', (), {'mode': 'fan_out', 'negative_slope': -0.2})
>>> format_value("fan_in"), format_value("two words"), format_value((1.0,))
('fan_in', "'two words'", '(1.0,)')
"""

from __future__ import annotations

import ast
import re
from typing import Any

__all__ = ["parse_call", "format_value"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# "keras:" in front of a name: a framework's namespace (initlab.schemes.dialects)
_NAMESPACE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(?=[A-Za-z_])")


def format_value(value: Any) -> str:
    """A parameter value as it stands in the string form: bare words stay bare, other strings quoted."""
    if isinstance(value, str):
        return value if _IDENTIFIER.match(value) and value not in ("None", "True", "False") else repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _literal(node: ast.expr, text: str, what: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal(node.operand, text, what)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_literal(element, text, what) for element in node.elts)
    raise ValueError(
        f"cannot read value {ast.get_source_segment(text, node)!r} in {what} {text!r}; "
        "values are numbers, True/False/None, bare words, quoted strings or tuples of them"
    )


def parse_call(text: str, what: str = "scheme string") -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """``(name, positional values, keyword values)`` of ``NAME`` or ``NAME(a, key=value, ...)``.

    Values are literals only: numbers, True/False/None, bare words (read as
    strings), quoted strings, and tuples or lists of those (read as tuples).
    ``what`` names the string in error messages ("scheme string", "stage").
    A namespace in front of the name stays on it: ``"jax:normal(stddev=0.1)"``
    gives ``("jax:normal", (), {"stddev": 0.1})``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a {what} must be a str, got {type(text).__name__}")
    namespace = _NAMESPACE.match(text)
    if namespace is not None:
        name, positional, keywords = parse_call(text[namespace.end():], what)
        return f"{namespace.group(1)}:{name}", positional, keywords
    source = text.strip()
    malformed = f"malformed {what} {text!r}: expected NAME or NAME(key=value, ...)"
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise ValueError(malformed) from error
    if isinstance(tree, ast.Name):
        return tree.id, (), {}
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise ValueError(malformed)
    args = tuple(_literal(arg, source, what) for arg in tree.args)
    kwargs: dict[str, Any] = {}
    for keyword in tree.keywords:
        if keyword.arg is None:
            raise ValueError(f"malformed {what} {text!r}: '**' is not accepted")
        if keyword.arg in kwargs:  # the parser keeps both; calling would refuse them, so do we
            raise ValueError(f"{what} {text!r} gives {keyword.arg!r} twice; give each parameter once")
        kwargs[keyword.arg] = _literal(keyword.value, source, what)
    return tree.func.id, args, kwargs
