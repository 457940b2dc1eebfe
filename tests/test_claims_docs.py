"""docs/claims.md is generated from the committed results, and those results meet the seed and size rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from initlab.lab.claims.docs import FULL_RESULTS, PAGE, QUICK_RESULTS, render

ROOT = Path(__file__).resolve().parent.parent
TRAINING = [str(n) for n in (1, 3, 4, 5, 6, 7, 10, 11, 13, 14, 17)] + ["he2015", "residual-zero", "saxe2014",
                                                                        "dlai-circles"]


def _load(path: Path) -> dict:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def full() -> dict:
    return _load(FULL_RESULTS)


@pytest.fixture(scope="module")
def quick() -> dict:
    return _load(QUICK_RESULTS)


def test_committed_claims_page_is_what_the_script_makes_of_the_committed_results(full, quick) -> None:
    page = (ROOT / PAGE).read_text(encoding="utf-8")
    assert page == render(full, quick), "run: python -m initlab.lab.claims.docs"


def test_training_claims_ran_10_seeds_in_full_and_5_in_quick(full, quick) -> None:
    for data, minimum in ((full, 10), (quick, 5)):
        items = {item["id"]: item for item in data["claims"]}
        for claim_id in TRAINING:
            assert items[claim_id]["seeds"] >= minimum, (data["mode"], claim_id)


def test_committed_runs_are_complete_pinned_and_error_free(full, quick) -> None:
    for data in (full, quick):
        assert [item["verdict"] for item in data["claims"] if item["verdict"] == "error"] == []
        assert data["environment"]["deterministic_algorithms"] is True
        assert data["environment"]["torch_threads"] == data["threads"]
        assert len(data["claims"]) == 24


def test_mup_includes_its_base_width_and_8_seeds(full, quick) -> None:
    for data in (full, quick):
        mup = next(item for item in data["claims"] if item["id"] == "mup")
        widths = [row["width"] for row in mup["tables"]["logit change"]]
        assert widths[0] == 64 and mup["seeds"] >= 8


def test_he2015_quick_checks_both_depths(quick) -> None:
    he = next(item for item in quick["claims"] if item["id"] == "he2015")
    assert {row["depth"] for row in he["tables"]["runs"]} == {22, 30}
    assert {rule["key"] for rule in he["rules"]} == {"deep", "shallow", "budget"}


# wording that points at material users have never seen, where the literature reference belongs
UNNAMED_SOURCES = re.compile(r"seed[ -]texts?|\b(german|korean|russian|chinese|spanish) (answer|wiki)|\(chinese\)",
                             re.IGNORECASE)


def test_the_product_speaks_of_literature_not_unnamed_sources() -> None:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder, pattern in (("src", "*.py"), ("docs", "*.md"), ("docs", "*.json"), ("benchmarks", "*.py"),
                            ("tests", "*.py")):
        files += sorted((ROOT / folder).rglob(pattern))
    this_file = Path(__file__).resolve()
    found = [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for path in files if path.resolve() != this_file
             for match in UNNAMED_SOURCES.finditer(path.read_text(encoding="utf-8"))]
    assert found == []


def test_committed_results_carry_every_registered_design_and_amendment(full, quick) -> None:
    from initlab.lab.claims import registered_claims

    for data in (full, quick):
        items = {item["id"]: item for item in data["claims"]}
        for entry in registered_claims():
            assert items[entry.id]["design"] == entry.design, (data["mode"], entry.id)
            assert items[entry.id]["amendments"] == [a.to_dict() for a in entry.amendments], (data["mode"], entry.id)


def test_the_page_lists_every_amendment_under_protocol_amendments() -> None:
    data = {"mode": "full", "claims": [
        {"id": "he2015", "title": "t", "verdict": "inconclusive", "group": "reproduction", "rules": [],
         "design": "budget from a criterion", "amendments": [
             {"date": "2026-12-02", "change": "budget 3000 -> 2500", "reason": "after runs | seen"}]},
        {"id": "1", "title": "t", "verdict": "supported", "group": "claim", "rules": []},
    ]}
    page = render(data)
    section = page.split("## Protocol amendments", 1)[1].split("\n## ", 1)[0]
    assert "| he2015 | 2026-12-02 | budget 3000 -> 2500 | after runs \\| seen |" in section
    assert "*Design (fixed before the run).* budget from a criterion" in page
    assert "[Protocol amendments](#protocol-amendments)" in page
    assert "* none" in render({"mode": "full", "claims": [data["claims"][1]]}).split("## Protocol amendments")[1]


def test_table_cells_escape_pipes_and_errors_are_shown() -> None:
    data = {"mode": "full", "claims": [
        {"id": "1", "title": "a | b", "verdict": "error", "group": "claim", "rules": [], "error": "ValueError: x\n..."},
    ]}
    page = render(data)
    assert "a \\| b" in page and "ValueError: x" in page
    with pytest.raises(ValueError, match="'claims' list"):
        render({"claims": None})
