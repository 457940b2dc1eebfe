"""docs/guide.md: every snippet runs, each kind's plan is the advice table's, and initlab recommend agrees."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from initlab.cli.main import main
from initlab.plan.advice import ADVICE, FAMILIES, Advice

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)
SHELL = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def _sections() -> dict[str, str]:
    """{kind: the guide's text of that kind}, cut at the anchors (the last one ends at the next heading)."""
    parts = re.split(r'<a id="([a-z0-9-]+)"></a>', GUIDE)
    sections = {anchor.replace("-", "_"): text for anchor, text in zip(parts[1::2], parts[2::2])}
    last = next(reversed(sections))
    sections[last] = sections[last].split("\n## ")[0]
    return sections


SECTIONS = _sections()


def _json_after(output: str) -> dict[str, str]:
    """The JSON object initlab recommend printed last (a snippet may print before it)."""
    return json.loads(output[output.rindex("{\n"):])


def test_the_guide_has_one_section_per_row_of_the_advice_table_in_its_order() -> None:
    assert list(SECTIONS) == [row.kind for row in ADVICE]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("row", ADVICE, ids=[row.kind for row in ADVICE])
def test_each_section_states_the_table_s_plan_and_its_snippet_runs_and_gets_that_plan(
    row: Advice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SECTIONS[row.kind]
    assert f"**Plan:** `{row.plan}`" in text
    assert row.reason in text and row.reference in text
    (snippet,) = PYTHON.findall(text)
    assert f'plan="{row.plan}"' in snippet and "def make_model(" in snippet
    # the snippet saved as a module is a factory for initlab recommend; importing it runs it, asserts included
    module = f"guide_{row.kind}"
    (tmp_path / f"{module}.py").write_text(snippet, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    flags = ["--width-scaling"] if row.kind == "width_scaling" else []
    assert main(["recommend", f"{module}:make_model", "--json", *flags]) == 0
    advice = _json_after(capsys.readouterr().out)
    assert (advice["plan"], advice["family"]) == (row.plan, row.kind if row.kind in FAMILIES else None)
    for line in SHELL.findall(text)[0].splitlines():
        command = shlex.split(line, comments=True)
        if command[:2] == ["initlab", "recommend"] and ":" in command[2] and not command[2].startswith("my_"):
            assert main([*command[1:], "--json"]) == 0
            assert _json_after(capsys.readouterr().out)["kind"] == row.kind, line


def test_the_other_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    section_snippets = {snippet for text in SECTIONS.values() for snippet in PYTHON.findall(text)}
    others = [snippet for snippet in PYTHON.findall(GUIDE) if snippet not in section_snippets]
    assert len(others) == 2
    for snippet in others:
        exec(compile(snippet, "docs/guide.md", "exec"), {"__name__": "guide"})


def test_the_flowchart_is_the_one_the_script_draws_from_the_table() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "figures"))
    try:
        from make_flowchart import OUTPUT, flowchart_svg
    finally:
        sys.path.remove(str(ROOT / "docs" / "figures"))
    assert OUTPUT.read_text(encoding="utf-8") == flowchart_svg()
    assert all(row.question in flowchart_svg() for row in ADVICE)
    assert "figures/recommend_flowchart.svg" in GUIDE


def test_the_readme_links_the_guide_first() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links and links[0] == "docs/guide.md"
