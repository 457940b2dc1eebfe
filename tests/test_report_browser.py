"""The claims report opened in headless Chromium: every claim and every figure is on the rendered page,
and a crafted results.json runs no script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from initlab.lab.claims import VERDICTS, run_claims
from initlab.lab.report import write_report
from test_report_security import SCRIPT, hostile_run

pytestmark = pytest.mark.browser

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# the one line that installs the browser (Debian/Ubuntu); .ci/run runs it before make test
INSTALL = "apt-get update && apt-get install -y chromium"


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The headless browser, or a skip that says how to install it (tests never install anything)."""
    path = _find_chromium()
    if path is None:
        pytest.skip(f"headless browser test skipped: chromium is not installed; install it with: {INSTALL}")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    folder = tmp_path_factory.mktemp("claims-run")
    run = run_claims(["matmul100", "9", "glorot2010", "12"], quick=True, out_dir=folder)
    path = write_report(folder)
    ids = [r.id for r in run.results]
    figures = [name for r in run.results for name in r.figures]
    return path, ids, figures


def _browser(chromium: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *BROWSER_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True, text=True, timeout=180,
    )


def test_rendered_report_shows_every_claim_and_figure(chromium: str, report, tmp_path: Path) -> None:
    path, ids, figures = report
    result = _browser(chromium, tmp_path / "profile", "--dump-dom", path.resolve().as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert set(re.findall(r'data-claim-id="([^"]+)"', dom)) == set(ids)
    assert set(re.findall(r'data-claim-row="([^"]+)"', dom)) == set(ids)
    shown = re.findall(r'<figure data-figure="([^"]+)"><img src="data:image/png;base64,', dom)
    assert sorted(shown) == sorted(figures) and len(figures) >= 4
    for verdict in re.findall(r'data-verdict="([^"]+)"', dom):
        assert verdict in VERDICTS


def test_screenshot_of_the_report_is_not_blank(chromium: str, report, tmp_path: Path) -> None:
    import matplotlib.image

    path, _, _ = report
    shot = tmp_path / "report.png"
    result = _browser(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2400",
                      "--hide-scrollbars", path.resolve().as_uri())
    assert shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    # text, tables and figures: many distinct grey levels, not a blank page
    grey = pixels[..., :3].mean(axis=2)
    assert float(np.std(grey)) > 0.05
    keep = os.environ.get("INITLAB_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_a_crafted_results_file_runs_no_script_in_the_browser(chromium: str, tmp_path: Path) -> None:
    hostile_run(tmp_path / "run", tmp_path / "outside", seconds=1.5)
    path = write_report(tmp_path / "run")
    result = _browser(chromium, tmp_path / "profile", "--dump-dom", path.resolve().as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # the payload would retitle the page and mark the body: both are as initlab wrote them
    assert re.search(r"<title>([^<]*)</title>", dom).group(1) == "initlab claims report"
    assert re.search(r"<body[^>]*data-pwned", dom) is None
    assert "<script" not in dom
    # the payload is on the page, as text
    assert dom.count("&lt;script&gt;" + SCRIPT.replace("'", "'")) >= 20
