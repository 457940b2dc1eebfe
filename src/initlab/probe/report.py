"""``ProbeReport``: one :class:`LayerStats` row per layer, with table, JSON, DataFrame and plots.

Rows are in the order the forward pass first called the layers. Every number
is a plain Python float/int (read from the device with one transfer), so a
report can be kept, compared, serialised and plotted after the model is gone.

Units: activation statistics are in the units of the layer's output (the
input's units for the first layer); ``gain`` is RMS(output) / RMS(input);
``log_gain_cum`` is log10(RMS(output) / RMS(model input)), so -2 means "100x
smaller than the input"; fractions are in [0, 1].
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from initlab.probe.histogram import DEFAULT_BINS, HistogramBins
from initlab.probe.verdicts import Thresholds

__all__ = ["LayerStats", "ParamStats", "ProbeReport"]


@dataclass(frozen=True)
class ParamStats:
    """One parameter of a layer: its values, its gradient, and the last optimizer update."""

    name: str
    shape: tuple[int, ...]
    weight_mean: float
    weight_std: float
    weight_norm: float
    expected_std: float | None
    grad_std: float | None
    grad_norm: float | None
    grad_nonfinite: int
    grad_weight_ratio: float | None  # |grad| / |weight|
    update_weight_ratio: (
        float | None
    )  # |w_after - w_before| / |w_after| of the last recorded optimizer step


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one layer's output (and its gradient) for one batch or step."""

    name: str
    module_type: str
    kind: str
    index: int  # 1-based position in forward order
    activation: str | None
    calls: int
    shape: tuple[int, ...] | None
    act_mean: float | None
    act_std: float | None
    act_rms: float | None
    act_min: float | None
    act_max: float | None
    nonfinite: int
    in_rms: float | None
    gain: float | None
    log_gain_cum: float | None
    scale_ratio: (
        float | None
    )  # output RMS / reference RMS (what the vanishing/exploding rules read)
    saturated_fraction: float | None
    dead_fraction: float | None
    dead_units: int
    units: int
    effective_rank: float | None
    mean_cosine: float | None
    grad_mean: float | None
    grad_std: float | None
    grad_norm: float | None
    grad_nonfinite: int
    grad_weight_ratio: float | None
    update_weight_ratio: float | None
    symmetric_groups: tuple[tuple[int, ...], ...] | None
    hist: tuple[int, ...]
    expected_std: float | None
    predicted_std: float | None
    verdict: str
    reason: str
    flags: tuple[str, ...] = ()
    params: tuple[ParamStats, ...] = ()

    @property
    def symmetric_units(self) -> int:
        """Units that share their incoming weights with at least one other unit."""
        return sum(len(group) for group in self.symmetric_groups or ())

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-ready; inf/NaN as strings)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


# columns of the table: (header, attribute, format)
_TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("#", "index", "d"),
    ("layer", "name", "s"),
    ("type", "module_type", "s"),
    ("mean", "act_mean", ".3g"),
    ("std", "act_std", ".3g"),
    ("expected", "expected_std", ".3g"),
    ("mean-field", "predicted_std", ".3g"),
    ("gain", "gain", ".3g"),
    ("log10 G", "log_gain_cum", ".2f"),
    ("sat", "saturated_fraction", ".0%"),
    ("dead", "dead_fraction", ".0%"),
    ("erank", "effective_rank", ".1f"),
    ("cos", "mean_cosine", ".2f"),
    ("grad norm", "grad_norm", ".3g"),
    ("g/w", "grad_weight_ratio", ".2g"),
    ("upd/w", "update_weight_ratio", ".2g"),
    ("verdict", "verdict", "s"),
)


def _format(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if spec == "s":
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return format(value, spec)


@dataclass
class ProbeReport:
    """Per-layer statistics of a model on one batch (``audit``) or during training (``probe``)."""

    rows: list[LayerStats]
    bins: HistogramBins = DEFAULT_BINS
    thresholds: Thresholds = field(default_factory=Thresholds)
    input_rms: float | None = None
    loss: float | None = None
    step: int | None = None  # the training step the rows describe (probe only)
    steps: list[int] = field(
        default_factory=list
    )  # recorded steps kept in the history (probe only)
    history: dict[str, dict[str, np.ndarray]] = field(
        default_factory=dict
    )  # layer -> metric -> per step
    hist_history: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # layer -> (steps, bins + 1) counts
    title: str = ""

    # -- access ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[LayerStats]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | str) -> LayerStats:
        if isinstance(key, int):
            return self.rows[key]
        for row in self.rows:
            if row.name == key:
                return row
        raise KeyError(
            f"no layer named {key!r}; layers: {', '.join(row.name for row in self.rows)}"
        )

    @property
    def names(self) -> list[str]:
        return [row.name for row in self.rows]

    @property
    def first_nonfinite_layer(self) -> str | None:
        """Name of the first layer (forward order) whose output or gradient holds NaN/inf."""
        for row in self.rows:
            if row.nonfinite:
                return row.name
        for row in reversed(self.rows):  # gradients flow backwards: the last layer hit first
            if row.grad_nonfinite:
                return row.name
        return None

    def verdicts(self) -> dict[str, str]:
        """{layer name: verdict}."""
        return {row.name: row.verdict for row in self.rows}

    def select(self, kind: str | Sequence[str]) -> list[LayerStats]:
        """Rows of one kind (``"activation"``, ``"linear"``, ``"conv"``, ``"norm"``, ...) or several."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        return [row for row in self.rows if row.kind in kinds]

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything as plain Python (histograms as lists; history as lists per metric)."""
        return _jsonable(
            {
                "title": self.title,
                "input_rms": self.input_rms,
                "loss": self.loss,
                "step": self.step,
                "steps": list(self.steps),
                "first_nonfinite_layer": self.first_nonfinite_layer,
                "bins": {
                    "low": self.bins.low,
                    "high": self.bins.high,
                    "per_decade": self.bins.per_decade,
                },
                "thresholds": asdict(self.thresholds),
                "rows": [asdict(row) for row in self.rows],
                "history": {
                    layer: {metric: values.tolist() for metric, values in metrics.items()}
                    for layer, metrics in self.history.items()
                },
            }
        )

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 1) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_dataframe(self) -> Any:
        """A pandas DataFrame, one row per layer (histograms and parameters left out)."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - pandas is in the lab extra
            raise ImportError(
                "ProbeReport.to_dataframe needs pandas (pip install pandas)"
            ) from error
        records = []
        for row in self.rows:
            record = asdict(row)
            record.pop("hist")
            record.pop("params")
            groups = record.pop("symmetric_groups")
            record["symmetric_units"] = sum(len(g) for g in groups) if groups is not None else None
            record["flags"] = ",".join(row.flags)
            records.append(record)
        return pd.DataFrame.from_records(records).set_index("name")

    def history_dataframe(self) -> Any:
        """Long-form pandas DataFrame of the recorded steps: step, layer, metric columns."""
        import pandas as pd

        frames = []
        for layer, metrics in self.history.items():
            frame = pd.DataFrame({metric: values for metric, values in metrics.items()})
            frame.insert(0, "layer", layer)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["step", "layer"])
        return pd.concat(frames, ignore_index=True)

    # -- presentation ------------------------------------------------------------------
    def _table_cells(self) -> list[list[str]]:
        return [
            [_format(getattr(row, attribute), spec) for _, attribute, spec in _TABLE_COLUMNS]
            for row in self.rows
        ]

    def table(self, *, reasons: bool = True, rich: bool | None = None) -> str:
        """The per-layer table as text (drawn with rich when installed, else plain columns)."""
        headers = [header for header, _, _ in _TABLE_COLUMNS]
        cells = self._table_cells()
        if rich is not False:
            try:
                return self._rich_table(headers, cells, reasons)
            except ImportError:
                if rich:
                    raise
        widths = [
            max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
            for i, h in enumerate(headers)
        ]
        lines = [self._caption()]
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row, line in zip(self.rows, cells):
            lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
            if reasons and row.verdict != "healthy":
                lines.append(f"    {row.name}: {row.reason}")
        return "\n".join(lines)

    def _caption(self) -> str:
        parts = [self.title or "per-layer statistics"]
        if self.input_rms is not None:
            parts.append(f"input RMS {self.input_rms:.3g}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.step is not None:
            parts.append(f"step {self.step}")
        bad = self.first_nonfinite_layer
        if bad is not None:
            parts.append(f"first non-finite layer: {bad}")
        return " | ".join(parts)

    def _rich_table(self, headers: list[str], cells: list[list[str]], reasons: bool) -> str:
        from rich.console import Console
        from rich.table import Table

        colours = {
            "healthy": "green",
            "vanishing": "yellow",
            "exploding": "red",
            "non-finite": "bold red",
            "saturated": "magenta",
            "dead": "magenta",
            "symmetric": "cyan",
            "collapsed": "yellow",
        }
        table = Table(title=self._caption(), show_lines=False)
        for header in headers:
            table.add_column(
                header, justify="left" if header in ("layer", "type", "verdict") else "right"
            )
        for row, line in zip(self.rows, cells):
            colour = colours.get(row.verdict, "white")
            table.add_row(*line[:-1], f"[{colour}]{line[-1]}[/{colour}]")
        console = Console(width=220, record=True, file=io.StringIO(), color_system=None)
        console.print(table)
        if reasons:
            for row in self.rows:
                if row.verdict != "healthy":
                    console.print(f"  {row.name}: {row.reason}", markup=False, highlight=False)
        return console.export_text().rstrip()

    def print(self) -> None:
        """Print the table (with colours when rich is installed and stdout is a terminal)."""
        try:
            from rich.console import Console
        except ImportError:
            print(self.table())
            return
        Console().print(self.table(), markup=False, highlight=False)

    def __str__(self) -> str:
        return self.table(rich=False)

    def plot(
        self, path: str | Path, *, layers: Sequence[str] | None = None, dpi: int = 120
    ) -> Path:
        """Write the summary figure (PNG or SVG by the file's extension) and return its path.

        Panels: output std versus depth (with expected and mean-field
        columns where known), gradient norm versus depth, the signed log
        histogram of every layer, and -- for a probe report with history --
        the heatmap of histograms over training steps.
        """
        from initlab.probe.plots import plot_report

        return plot_report(self, path, layers=layers, dpi=dpi)

    def compare(
        self, others: Mapping[str, ProbeReport], path: str | Path, *, label: str = "this"
    ) -> Path:
        """The side-by-side histogram figure of this report and ``others``."""
        from initlab.probe.plots import compare_histograms

        return compare_histograms({label: self, **dict(others)}, path)
