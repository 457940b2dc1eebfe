"""Plan files: the dict form of a plan in YAML, TOML or JSON, chosen by the file's suffix.

JSON and TOML need nothing beyond the standard library (``tomllib``; the
``tomli`` backport on Python 3.10, a dependency there). YAML needs PyYAML,
which comes with the ``yaml`` and ``lab`` extras; without it a YAML plan file
is an ImportError that names the extra, and the other formats keep working.
Files are read with ``yaml.safe_load``: tags that would build Python objects
are refused.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["PLAN_FILE_SUFFIXES", "read_plan_file", "write_plan_file", "is_plan_file_name"]

PLAN_FILE_SUFFIXES = (".yaml", ".yml", ".toml", ".json")


def is_plan_file_name(text: str) -> bool:
    """Whether a plan string names a file (a plan suffix and no rule in it)."""
    return text.strip().lower().endswith(PLAN_FILE_SUFFIXES) and "=" not in text


def _yaml() -> ModuleType:
    try:
        import yaml
    except ModuleNotFoundError as error:
        raise ImportError(
            "YAML plan files need PyYAML: pip install 'initlab[yaml]' (or use a .toml or .json plan file)"
        ) from error
    return yaml


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the backport, a dependency of initlab on Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def _suffix(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix not in PLAN_FILE_SUFFIXES:
        raise ValueError(f"plan file {str(file)!r}: suffix must be .yaml, .yml, .toml or .json")
    return suffix


def _unique_pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A JSON object / YAML mapping as a dict, refusing a key given twice (parsers keep the last one silently)."""
    data: dict[Any, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"key {key!r} is given twice")
        data[key] = value
    return data


def _yaml_loads(text: str) -> Any:
    yaml = _yaml()

    class UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[name-defined]  # yaml is imported at run time: mypy sees no classes in it
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        return _unique_pairs([(loader.construct_object(k, deep=deep), loader.construct_object(v, deep=deep))
                              for k, v in node.value])

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no tag runs code


def read_plan_file(path: str | os.PathLike[str]) -> Any:
    """The data a plan file holds: a mapping of rules (the dict form) or a plan string.

    A key given twice, malformed text, YAML tags that are not plain data and
    undecodable bytes are a ValueError that names the file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"plan file {str(file)!r} does not exist")
    suffix = _suffix(file)
    unreadable: tuple[type[BaseException], ...] = (ValueError, RecursionError)  # TOML, JSON, UTF-8 errors are ValueErrors
    if suffix in (".yaml", ".yml"):
        unreadable += (_yaml().YAMLError,)  # malformed text, tags that are not plain data
    try:
        text = file.read_text(encoding="utf-8")
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_pairs)
        if suffix == ".toml":
            return _toml_loads(text)
        return _yaml_loads(text)
    except unreadable as error:
        raise ValueError(f"plan file {str(file)!r} cannot be read: {' '.join(str(error).split())}") from None


def write_plan_file(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write a plan's dict form to ``path`` in the format its suffix names."""
    file = Path(path)
    suffix = _suffix(file)
    if suffix == ".json":
        file.write_text(json.dumps(data, indent=2) + "\n")
    elif suffix == ".toml":
        file.write_text("".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in data.items()))
    else:
        file.write_text(_yaml().safe_dump(data, sort_keys=False))
    return file
