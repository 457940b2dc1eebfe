"""The top-level API: at most 50 names, each documented, and the old names still answering with a warning."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import initlab as il

DOCS = Path(__file__).resolve().parent.parent / "docs"
# 50 names at most: one spelling of each everyday name, nothing else
MAX_TOP_LEVEL_NAMES = 50


def _table_names(text: str) -> list[str]:
    return re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", text, flags=re.MULTILINE)


def test_the_top_level_holds_at_most_50_names() -> None:
    assert len(il.__all__) == 49  # a new name is a decision: change this count with docs/api.md
    assert len(il.__all__) <= MAX_TOP_LEVEL_NAMES
    assert len(set(il.__all__)) == len(il.__all__)


def test_every_top_level_name_is_documented_in_api_md_in_order() -> None:
    assert _table_names((DOCS / "api.md").read_text()) == list(il.__all__)


def test_every_top_level_name_resolves_without_a_warning_and_has_a_docstring() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in il.__all__:
            value = getattr(il, name)
            if name != "__version__":
                assert (value.__doc__ or "").strip(), f"initlab.{name} has no docstring"
    assert isinstance(il.__version__, str)


def test_the_catalogue_factories_are_the_top_level_spelling() -> None:
    assert set(il.schemes.FACTORIES) < set(il.__all__)
    assert il.he_normal is il.schemes.HeNormal
    assert il.edge_of_chaos is il.theory.EdgeOfChaos
    for name in il.__all__:
        assert not (name[0].isupper() and isinstance(getattr(il, name), type) and issubclass(getattr(il, name), il.schemes.Initializer))


@pytest.mark.parametrize("name", sorted(il.DEPRECATED))
def test_old_top_level_names_warn_and_give_the_new_object(name: str) -> None:
    module, new = il.DEPRECATED[name]
    with pytest.warns(DeprecationWarning, match=rf"initlab\.{name} is deprecated.*{re.escape(new)}"):
        value = getattr(il, name)
    assert value is getattr(__import__(module, fromlist=[new]), new)


def test_every_deprecated_name_is_in_the_one_table_of_schemes_md() -> None:
    text = (DOCS / "schemes.md").read_text()
    table = text[text.index("## Deprecated names"):]
    missing = [name for name in il.DEPRECATED if f"`{name}`" not in table and f"`initlab.{name}`" not in table]
    assert not missing


def test_torch_spellings_stay_valid_in_scheme_strings_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert il.get("xavier_normal") == il.glorot_normal()
        assert il.get("kaiming_uniform(nonlinearity=relu)") == il.he_uniform(nonlinearity="relu")
        assert il.get("eye") == il.identity()
    with pytest.warns(DeprecationWarning, match="initlab.schemes.glorot_uniform"):
        assert il.schemes.xavier_uniform is il.schemes.GlorotUniform


def test_describe_is_the_one_way_to_read_a_std() -> None:
    scheme = il.he_normal()
    std = scheme.describe((64, 128), layout="linear").expected_std
    assert std == pytest.approx((2 / 128) ** 0.5)
    with pytest.warns(DeprecationWarning, match="describe"):
        assert scheme.expected_std((64, 128)) == std


def test_unknown_top_level_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        il.no_such_name  # noqa: B018
