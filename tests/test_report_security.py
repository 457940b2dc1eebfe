"""A results.json is untrusted: the report escapes every field, embeds only image files inside the run
folder, never inlines SVG, and forbids scripts with a Content-Security-Policy."""

from __future__ import annotations

import base64
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from initlab.lab.report import write_report

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
# breaks out of a single- or double-quoted attribute and of element text; tabs, not spaces, separate
# the attributes so that a replace(" ", "-") cannot defuse it
SCRIPT = "document.title='pwned';document.body.setAttribute('data-pwned','1')"
BREAKOUT = f"x'\"><script>{SCRIPT}</script><img\tsrc=x\tonerror=\"{SCRIPT}\"><b class='"
SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="document.title=\'pwned\'">'
                   b"<script>document.title='pwned'</script><rect width='4' height='4'/></svg>")
# the elements and attributes a report is made of; anything else came from the input
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "i", "b", "table", "thead",
        "tbody", "tr", "th", "td", "span", "a", "section", "figure", "figcaption", "img", "details", "summary",
        "pre"}
ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "class", "id", "href", "src", "alt",
              "data-claim-id", "data-claim-row", "data-verdict", "data-figure", "data-role", "open"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def hostile_run(folder: Path, outside: Path, seconds: object = BREAKOUT) -> None:
    """A claims run whose every text field carries markup and whose figures point everywhere."""
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "ok.png").write_bytes(PIXEL)
    (folder / "figures" / "evil.svg").write_bytes(SVG_WITH_SCRIPT)
    (folder / "figures" / "page.html").write_text(f"<script>{SCRIPT}</script>")
    outside.mkdir(exist_ok=True)
    (outside / "secret.png").write_bytes(b"SECRET-BYTES" + PIXEL)
    os.symlink(outside / "secret.png", folder / "figures" / "link.png")
    figures = ["figures/ok.png", "figures/evil.svg", "figures/page.html", "figures/link.png",
               str(outside / "secret.png"), "../" + outside.name + "/secret.png", "/etc/passwd", BREAKOUT]
    claim = {key: BREAKOUT for key in ("id", "title", "statement", "source", "setting", "measurement", "number",
                                       "threshold", "verdict", "reference", "notes", "error")}
    claim.update(kind="claim", seconds=seconds, figures=figures,
                 checks=[{key: BREAKOUT for key in ("label", "value", "value_text", "threshold_text", "status", "why")}],
                 tables={BREAKOUT: [{BREAKOUT: BREAKOUT}]})
    data = {"kind": BREAKOUT, "mode": BREAKOUT, "started": BREAKOUT, "seconds": seconds, "seed": BREAKOUT,
            "environment": {BREAKOUT: BREAKOUT}, "claims": [claim, {**claim, "kind": "reproduction"}]}
    (folder / "results.json").write_text(json.dumps(data))


def _check_page(page: str) -> _Page:
    parsed = _parse(page)
    for tag, attributes in parsed.tags:
        assert tag in TAGS, f"element <{tag}> came from the results file"
        assert set(attributes) <= ATTRIBUTES, f"<{tag}> got attributes {sorted(set(attributes) - ATTRIBUTES)}"
        if tag == "img":
            assert str(attributes["src"]).startswith("data:image/")
        if tag == "a":
            assert str(attributes["href"]).startswith("#")
    return parsed


@pytest.mark.parametrize("seconds", [1.5, BREAKOUT])
def test_every_field_of_a_crafted_results_file_is_shown_as_text_never_as_markup(tmp_path, seconds) -> None:
    hostile_run(tmp_path / "run", tmp_path / "outside", seconds)
    page = write_report(tmp_path / "run").read_text()
    parsed = _check_page(page)
    # the payload is shown, as text, in the places it was given
    assert sum(BREAKOUT in chunk for chunk in parsed.text) >= 20
    assert not any(tag == "script" for tag, _ in parsed.tags)


def test_figures_are_embedded_only_from_inside_the_run_folder_and_only_images(tmp_path) -> None:
    hostile_run(tmp_path / "run", tmp_path / "outside")
    page = write_report(tmp_path / "run").read_text()
    parsed = _check_page(page)
    sources = [attributes["src"] for tag, attributes in parsed.tags if tag == "img"]
    # ok.png and evil.svg, twice (claim and reproduction); nothing else is read
    assert len(sources) == 4
    assert sum(str(s).startswith("data:image/png;base64,") for s in sources) == 2
    svg = [str(s) for s in sources if str(s).startswith("data:image/svg+xml;base64,")]
    assert len(svg) == 2 and base64.b64decode(svg[0].split(",", 1)[1]) == SVG_WITH_SCRIPT
    assert "<svg" not in page and "SECRET" not in page
    assert base64.b64encode(b"SECRET-BYTES").decode()[:12] not in page
    assert "root:" not in page  # /etc/passwd
    # per claim: the link, the absolute path, ../ and /etc/passwd; page.html and the breakout text
    assert page.count("figure path points outside the run folder") == 2 * 4
    assert page.count("figure is not an image") == 2 * 2


def test_every_report_forbids_scripts_with_a_content_security_policy(tmp_path) -> None:
    hostile_run(tmp_path / "claims", tmp_path / "outside")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps({"kind": BREAKOUT, "rows": [{"a": BREAKOUT}]}))
    (tmp_path / "other" / "evil.svg").write_bytes(SVG_WITH_SCRIPT)
    for folder in ("claims", "other"):
        page = write_report(tmp_path / folder).read_text()
        parsed = _check_page(page)
        policies = [a["content"] for tag, a in parsed.tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert len(policies) == 1
        directives = dict(part.strip().split(" ", 1) for part in str(policies[0]).split(";"))
        assert directives["script-src"] == "'none'" and directives["default-src"] == "'none'"
        # the policy comes before anything taken from the results file
        assert page.index("Content-Security-Policy") < page.index("<title>")


@pytest.mark.parametrize("content", [[], {"claims": "x"}, {"claims": [[]]}, {"claims": [{"id": "1"}]},
                                     {"claims": [{"id": "1", "verdict": "ok", "checks": "abc"}]},
                                     {"claims": [{"id": "1", "verdict": "ok", "tables": [1]}]},
                                     {"claims": [{"id": "1", "verdict": "ok", "figures": "figures/a.png"}]}])
def test_a_malformed_results_file_is_a_clear_error_or_a_page(tmp_path, content) -> None:
    (tmp_path / "results.json").write_text(json.dumps(content))
    try:
        page = write_report(tmp_path).read_text()
    except ValueError as error:
        assert "must" in str(error) or "needs" in str(error)
    else:
        _check_page(page)


def test_the_report_replaces_a_symbolic_link_instead_of_writing_through_it(tmp_path) -> None:
    hostile_run(tmp_path / "run", tmp_path / "outside")
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    os.symlink(victim, tmp_path / "run" / "report.html")
    write_report(tmp_path / "run")
    assert victim.read_text() == "mine" and not (tmp_path / "run" / "report.html").is_symlink()
