"""Tables, JSON, DataFrames and figures of probe reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import initlab as il
from initlab.probe import ProbeReport, compare_histograms, plot_depth, plot_heatmap


def _relu_mlp(init: il.schemes.Initializer, seed: int = 0) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(5):
        linear = nn.Linear(64, 64)
        init(linear.weight, generator=generator)
        il.zeros()(linear.bias)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(64, 4))


@pytest.fixture(scope="module")
def reports() -> dict[str, ProbeReport]:
    x = torch.randn(128, 64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (128,), generator=torch.Generator().manual_seed(2))
    inits = {
        "0.01 N(0,1)": il.small_random(0.01),
        "LeCun": il.lecun_normal(),
        "He": il.he_normal(nonlinearity="relu"),
    }
    return {
        label: il.audit(_relu_mlp(init), x, target=y, title=label) for label, init in inits.items()
    }


def test_table_lists_every_layer_with_its_verdict_and_the_reasons(
    reports: dict[str, ProbeReport],
) -> None:
    report = reports["0.01 N(0,1)"]
    plain = report.table(rich=False, wide=True)
    lines = plain.splitlines()
    assert "verdict" in lines[1] and "mean-field" in lines[1]
    for row in report.rows:
        assert any(
            line.split()[:2] == [str(row.index), row.name] and row.verdict in line for line in lines
        )
    assert "output RMS is" in plain  # the reason of a vanishing layer
    fancy = report.table()
    assert "vanishing" in fancy and report.title in fancy
    assert str(report) == report.table(rich=False)


@pytest.mark.parametrize("rich", [False, None])
@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_compact_table_fits_the_width_it_is_given(
    reports: dict[str, ProbeReport], width: int, rich: bool | None
) -> None:
    report = reports["0.01 N(0,1)"]
    text = report.table(width=width, rich=rich)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "mean-field" not in text and "verdict" in text
    for row in report.rows:
        assert row.name in text


def test_the_table_reads_the_terminal_width(
    reports: dict[str, ProbeReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    text = reports["0.01 N(0,1)"].table(rich=False)
    assert max(len(line) for line in text.splitlines()) <= 70
    monkeypatch.setenv("COLUMNS", "300")
    wide = reports["0.01 N(0,1)"].table(rich=False, wide=True)
    assert "upd/w" in wide and max(len(line) for line in wide.splitlines()) > 100


def test_json_round_trips_and_spells_non_finite_numbers(
    reports: dict[str, ProbeReport], tmp_path: Path
) -> None:
    report = reports["He"]
    data = json.loads(report.to_json(tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text()) == data
    assert [row["name"] for row in data["rows"]] == report.names
    first = data["rows"][0]
    for key in (
        "act_mean",
        "act_std",
        "act_rms",
        "gain",
        "log_gain_cum",
        "saturated_fraction",
        "dead_fraction",
        "effective_rank",
        "mean_cosine",
        "grad_std",
        "grad_norm",
        "grad_weight_ratio",
        "update_weight_ratio",
        "symmetric_groups",
        "nonfinite",
        "hist",
        "expected_std",
        "predicted_std",
        "verdict",
        "reason",
    ):
        assert key in first
    assert len(first["hist"]) == report.bins.num_bins + 1
    blown = il.audit(nn.Sequential(nn.Linear(4, 4)), torch.tensor([[math.inf, 1.0, 2.0, 3.0]]))
    text = blown.to_json()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["first_nonfinite_layer"] == "0"


def test_dataframe_has_one_row_per_layer(reports: dict[str, ProbeReport]) -> None:
    pytest.importorskip("pandas")
    frame = reports["LeCun"].to_dataframe()
    assert list(frame.index) == reports["LeCun"].names
    assert frame.loc["1", "act_std"] == pytest.approx(reports["LeCun"]["1"].act_std)
    assert "hist" not in frame.columns and "symmetric_units" in frame.columns


def test_plots_are_written_as_png_and_svg_with_titles(
    reports: dict[str, ProbeReport], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    png = reports["He"].plot(tmp_path / "audit.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    svg = compare_histograms(
        reports, tmp_path / "compare.svg", title="5-layer ReLU MLP under three initializations"
    )
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "5-layer ReLU MLP under three initializations" in text
    for label in reports:
        assert label in text
    depth = plot_depth(reports, tmp_path / "depth.png", dpi=60)
    assert depth.stat().st_size > 5_000
    with pytest.raises(ValueError, match="must end in .png, .svg, .pdf"):
        reports["He"].plot(tmp_path / "audit.txt")
    with pytest.raises(ValueError, match="no history"):
        plot_heatmap(reports["He"], tmp_path / "heat.png")


def test_heatmap_of_histograms_over_training_steps(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    net = _relu_mlp(il.he_normal(nonlinearity="relu"))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(64, 64), torch.randint(0, 4, (64,))
    with il.Probe(net, every=2, optimizer=optimizer) as session:
        for _ in range(12):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    report = session.report(title="training")
    assert report.steps == [0, 2, 4, 6, 8, 10]
    path = plot_heatmap(report, tmp_path / "heat.svg", layers=["1", "9"])
    assert "histogram over steps" in path.read_text()
    assert report.plot(tmp_path / "summary.png", dpi=60).stat().st_size > 10_000
    frame = report.history_dataframe()
    assert set(frame["layer"]) >= {"1", "9"} and len(frame[frame["layer"] == "1"]) == 6
