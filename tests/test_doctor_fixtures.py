"""The doctor finds every init bug of the fixture suite (real issues, rebuilt as small models)."""

from __future__ import annotations

import importlib.util

import pytest

from doctor_fixtures import FIXTURES, Fixture
from initlab.diagnosis import doctor

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def test_fixture_suite_has_at_least_twenty_distinct_sources() -> None:
    assert len({fixture.source for fixture in FIXTURES}) >= 20


@pytest.mark.parametrize("fixture", FIXTURES, ids=[fixture.id for fixture in FIXTURES])
def test_doctor_finds_the_bug(fixture: Fixture) -> None:
    if fixture.needs_transformers:
        pytest.importorskip("transformers")
    model, batch = fixture.build()
    report = doctor(model, batch)
    found = [f for f in report.findings if f.code in fixture.expected and f.severity in ("warning", "error")]
    assert found, f"{fixture.source}: expected one of {fixture.expected}, got\n{report.table()}"
    assert all(f.fix for f in found), "every finding of the suite carries a fix"
