"""``initlab report`` on a compare folder: the settings in words, the leaderboard table and the curves."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from initlab.cli.main import main

# a 1x1 PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _compare_folder(root: Path) -> Path:
    manifest = {
        "kind": "initlab.compare",
        "sweep_id": "abc123",
        "config": {"model": "mlp:*-32x2-*:relu", "dataset": "digits", "epochs": 3, "steps": None,
                   "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 64},
        "inits": ["he_normal", "zeros"],
        "seeds": [0, 1, 2],
        "counts": {"ok": 3, "stalled": 3},
        "timings": {"wall_seconds": 12.5},
        "versions": {"cpu": "test cpu", "cpu_count": 2, "initlab": "0.1.0", "torch": "2.13.0"},
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (root / "leaderboard.csv").write_text(
        "rank,init,runs,test_accuracy_mean,steps_to_threshold,score\n"
        "1,he_normal,3,0.8774373531341553,120,0.8774373531341553\n"
        "2,<b>zeros</b>,3,0.06963787972927094,inf,0.06963787972927094\n",
        encoding="utf-8",
    )
    for name in ("loss_curves.png", "final_accuracy.png"):
        (root / name).write_bytes(PIXEL)
    return root


def test_a_compare_folder_gets_settings_in_words_the_leaderboard_and_the_curves(tmp_path: Path) -> None:
    folder = _compare_folder(tmp_path)
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<h1>initlab compare</h1>" in page
    assert "Model mlp:*-32x2-*:relu trained on digits for 3 epochs with sgd (learning rate 0.1" in page
    assert "2 inits (he_normal, zeros) x 3 seeds (0, 1, 2)." in page
    assert "<th>rank</th><th>init</th>" in page and "<td>0.8774</td>" in page and "<td>inf</td>" in page
    assert "&lt;b&gt;zeros&lt;/b&gt;" in page and "<b>zeros</b>" not in page  # a crafted name stays text
    assert page.count('<img src="data:image/png;base64,') == 2
    assert "<b>config</b>" not in page  # not the manifest dumped key by key


def test_a_crafted_manifest_stays_text_and_odd_types_do_not_crash_the_page(tmp_path: Path) -> None:
    folder = _compare_folder(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["sweep_id"] = '"><script>alert(1)</script>'
    manifest["config"]["model"] = "<img src=x onerror=alert(2)>"
    manifest["inits"] = ["<script>alert(3)</script>"]
    manifest["timings"] = "not a mapping"
    manifest["versions"] = ["not", "a", "mapping"]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "Wall time unknown on ? (? cores)" in page  # fields of the wrong type read as missing
