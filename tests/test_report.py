"""The HTML report: self-contained, every claim and every figure on the page."""

from __future__ import annotations

import base64
import json
import re

import pytest

from initlab.lab.report import render_claims_html, write_report

# a 1x1 PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _fake_run(folder) -> dict:
    (folder / "figures").mkdir()
    (folder / "figures" / "1-a.png").write_bytes(PIXEL)
    (folder / "figures" / "mup-b.png").write_bytes(PIXEL)
    claims = [
        {"id": "1", "title": "Constant <init>", "statement": "rows stay equal & identical", "source": "seed",
         "kind": "claim", "verdict": "supported", "measurement": "m", "number": "0", "threshold": "= 0",
         "checks": [{"label": "spread", "value": 0.0, "value_text": "0", "threshold_text": "= 0", "status": "pass"}],
         "figures": ["figures/1-a.png"], "tables": {"runs": [{"init": "c", "x": 1}]}, "notes": "why", "seconds": 1.0},
        {"id": "mup", "title": "muP", "statement": "flat", "source": "TP5", "kind": "reproduction",
         "verdict": "not supported", "measurement": "m", "number": "0.4", "threshold": "> 0.5",
         "checks": [], "figures": ["figures/mup-b.png"], "tables": {}, "notes": "", "reference": "paper says",
         "seconds": 2.0},
    ]
    data = {"kind": "claims", "mode": "quick", "claims": claims, "environment": {"torch": "x"}}
    (folder / "results.json").write_text(json.dumps(data))
    return data


def test_report_has_every_claim_and_every_figure_embedded(tmp_path) -> None:
    _fake_run(tmp_path)
    path = write_report(tmp_path)
    page = path.read_text()
    assert set(re.findall(r"data-claim-id='([^']+)'", page)) == {"1", "mup"}
    assert set(re.findall(r'data-figure="([^"]+)"', page)) == {"figures/1-a.png", "figures/mup-b.png"}
    assert page.count("data:image/png;base64,") == 2
    # nothing is fetched: no external URLs for scripts, styles or images
    assert not re.search(r"(src|href)=['\"]https?://", page)
    # text is escaped
    assert "Constant &lt;init&gt;" in page and "equal &amp; identical" in page
    assert "not supported" in page and "paper says" in page


def test_missing_figure_is_shown_as_missing_not_a_crash(tmp_path) -> None:
    data = _fake_run(tmp_path)
    (tmp_path / "figures" / "1-a.png").unlink()
    page = render_claims_html(data, tmp_path)
    assert "figure file missing: figures/1-a.png" in page


def test_report_of_a_folder_without_results_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no results.json"):
        write_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nope")
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        write_report(tmp_path)


def test_report_of_a_non_claims_run_lists_its_json_and_images(tmp_path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"kind": "compare", "leaderboard": [{"init": "he", "acc": 0.9}]}))
    (tmp_path / "curve.png").write_bytes(PIXEL)
    page = write_report(tmp_path).read_text()
    assert "initlab compare report" in page and "<td>he</td>" in page
    assert 'data-figure="curve.png"' in page


def test_report_command_rebuilds_the_html(tmp_path, capsys) -> None:
    import argparse

    from initlab.cli import report_cmd

    _fake_run(tmp_path)
    parser = argparse.ArgumentParser()
    report_cmd.add_arguments(parser)
    assert report_cmd.run(parser.parse_args([str(tmp_path)])) == 0
    assert (tmp_path / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
