"""The claims report opened in headless Chromium: every claim and every figure is on the rendered page."""

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


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _install_chromium() -> str:
    """Debian's chromium when we are root and apt works; else the reason it cannot be had."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "chromium is not installed and the tests do not run as root (apt-get install -y chromium needs root)"
    if shutil.which("apt-get") is None:
        return "chromium is not installed and apt-get is not available"
    try:
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, capture_output=True, timeout=900,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (subprocess.SubprocessError, OSError) as error:
        return f"chromium is not installed and 'apt-get install -y chromium' failed: {error}"
    return ""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None:
        reason = _install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip(f"headless browser test skipped: {reason or 'chromium still missing after apt-get'}")
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
