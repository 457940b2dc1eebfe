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
import shutil
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from initlab.probe.histogram import DEFAULT_BINS, HistogramBins
from initlab.probe.remedies import Remedy, remedy_groups, suggested_plan
from initlab.probe.verdicts import Thresholds

__all__ = ["LayerStats", "ParamStats", "ProbeReport", "side_by_side"]


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
    remedy: Remedy | None = None  # the likely cause and the plan to try, for a row that is not healthy

    @property
    def inactive_fraction(self) -> float | None:
        """The saturated fraction of a tanh/sigmoid row, the dead fraction of a ReLU row, else None."""
        return self.saturated_fraction if self.saturated_fraction is not None else self.dead_fraction

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


# the default, compact set: what a verdict is read from, narrow enough for a terminal
_COMPACT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("#", "index", "d"),
    ("layer", "name", "s"),
    ("type", "module_type", "s"),
    ("std", "act_std", ".3g"),
    ("expected", "expected_std", ".3g"),
    ("log10 G", "log_gain_cum", ".2f"),
    ("sat/dead", "inactive_fraction", ".0%"),
    ("grad norm", "grad_norm", ".3g"),
    ("verdict", "verdict", "s"),
)

# the columns a narrow terminal loses first
_DROP_ORDER = ("expected", "log10 G", "sat/dead", "type")
# the width of a table when none is given and none can be read from the terminal
FALLBACK_WIDTH = 100
# reasons printed under a compact table; the wide table prints every one
COMPACT_REASONS = 6


def _width(width: int | None) -> int:
    if width is None:
        return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns
    if isinstance(width, bool) or not isinstance(width, int) or width < 20:
        raise ValueError(f"width must be an int >= 20 (columns), got {width!r}")
    return width


def _wrap(text: str, width: int, *, indent: str, rest: str) -> str:
    return "\n".join(
        textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=rest, break_on_hyphens=False)
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
            remedy = record.pop("remedy")
            record["remedy_plan"] = remedy["plan"] if remedy else None
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
    @property
    def suggested_plan(self) -> str | None:
        """The plan to try first for the flagged layers (:func:`initlab.probe.remedies.suggested_plan`)."""
        return suggested_plan(self.rows)

    def _table_cells(self, columns: Sequence[tuple[str, str, str]]) -> list[list[str]]:
        return [[_format(getattr(row, attribute), spec) for _, attribute, spec in columns] for row in self.rows]

    def table(
        self,
        *,
        reasons: bool = True,
        rich: bool | None = None,
        wide: bool = False,
        width: int | None = None,
        remedies: bool = True,
    ) -> str:
        """The per-layer table as text (drawn with rich when installed, else plain columns).

        ``wide=False`` shows the compact columns (std, expected, cumulative
        log-gain, saturated or dead fraction, gradient norm, verdict);
        ``wide=True`` every column. ``width`` defaults to the terminal's
        (``shutil.get_terminal_size``); reasons and the "what to try" section
        (``remedies``) wrap to it.
        """
        width = _width(width)
        columns = _TABLE_COLUMNS if wide else self._fit(_COMPACT_COLUMNS, width)
        headers = [header for header, _, _ in columns]
        cells = self._table_cells(columns)
        text = None
        if rich is not False:
            try:
                text = self._rich_table(headers, cells, width)
            except ImportError:
                if rich:
                    raise
        if text is None:
            text = self._plain_table(headers, cells, width)
        lines = [text]
        if reasons:
            flagged = [row for row in self.rows if row.verdict != "healthy"]
            shown = flagged if wide else flagged[:COMPACT_REASONS]
            for row in shown:
                lines.append(_wrap(f"{row.name}: {row.reason}", width, indent="  ", rest="      "))
            if len(shown) < len(flagged):
                more = f"... and {len(flagged) - len(shown)} more flagged layers (the wide table gives every reason)"
                lines.append(_wrap(more, width, indent="  ", rest="  "))
        if remedies and any(row.remedy is not None for row in self.rows):
            lines.append("")
            lines.append(self.what_to_try(width=width))
        return "\n".join(lines)

    def _fit(self, columns: Sequence[tuple[str, str, str]], width: int) -> tuple[tuple[str, str, str], ...]:
        """``columns`` less the least needed ones (:data:`_DROP_ORDER`) until the table fits ``width``."""
        kept = list(columns)
        for header in _DROP_ORDER:
            cells = self._table_cells(kept)
            natural = sum(max(len(h), *(len(line[i]) for line in cells)) if cells else len(h)
                          for i, (h, _, _) in enumerate(kept))
            if natural + 2 * (len(kept) - 1) <= width:
                break
            kept = [column for column in kept if column[0] != header]
        return tuple(kept)

    def _plain_table(self, headers: list[str], cells: list[list[str]], width: int) -> str:
        widths = [
            max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
            for i, h in enumerate(headers)
        ]
        lines = [_wrap(self._caption(), width, indent="", rest="  ")]
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for line in cells:
            lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        return "\n".join(lines)

    def what_to_try(self, *, width: int | None = None) -> str:
        """The remedies of the flagged layers, one entry per cause, and the plan to try first."""
        width = _width(width)
        groups = remedy_groups(self.rows)
        if not groups:
            return "what to try: nothing, every layer is healthy"
        first = self.suggested_plan
        lines = ["what to try" + (f" (first: plan {first!r})" if first else "")]
        for number, (remedy, names) in enumerate(groups, start=1):
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(_wrap(f"{number}. {remedy.cause} [{shown}]", width, indent="  ", rest="     "))
            change = f"-> {remedy.change}" + (f" ({remedy.reference})" if remedy.reference else "")
            lines.append(_wrap(change, width, indent="     ", rest="        "))
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

    def _rich_table(self, headers: list[str], cells: list[list[str]], width: int) -> str:
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
        table = Table(title=self._caption(), box=None, pad_edge=False, header_style="bold")
        for header in headers:
            table.add_column(
                header,
                justify="left" if header in ("layer", "type", "verdict") else "right",
                overflow="fold",
            )
        for row, line in zip(self.rows, cells):
            colour = colours.get(row.verdict, "white")
            table.add_row(*line[:-1], f"[{colour}]{line[-1]}[/{colour}]")
        console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        console.print(table)
        return "\n".join(line.rstrip() for line in console.export_text().rstrip().splitlines())

    def print(self, *, wide: bool = False) -> None:
        """Print the table (with colours when rich is installed and stdout is a terminal)."""
        try:
            from rich.console import Console
        except ImportError:
            print(self.table(wide=wide))
            return
        console = Console()
        console.print(self.table(wide=wide, width=console.width), markup=False, highlight=False)

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


def side_by_side(
    before: ProbeReport,
    after: ProbeReport,
    *,
    labels: tuple[str, str] = ("before", "after"),
    width: int | None = None,
) -> str:
    """Two audits of one model, layer by layer: std and verdict before and after (plain text).

    Rows are matched by layer name, in the order of ``before``; a layer that
    only one report has shows ``-`` on the other side. Layer names are cut
    to fit ``width`` (default: the terminal's) only when they must be.
    """
    width = _width(width)
    after_rows = {row.name: row for row in after.rows}
    lines = []
    for row in before.rows:
        other = after_rows.get(row.name)
        lines.append([
            str(row.index), row.name,
            _format(row.act_std, ".3g"), row.verdict,
            _format(other.act_std, ".3g") if other else "-", other.verdict if other else "-",
        ])
    headers = ["#", "layer", "std", "verdict", "std", "verdict"]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    spare = width - (sum(widths) + 2 * (len(widths) - 1) + 2)
    if spare < 0:
        widths[1] = max(8, widths[1] + spare)
    left = sum(widths[:4]) + 2 * 3
    title = f"{'before: ' + labels[0]:<{left}}  | after: {labels[1]}"
    out = [title[:width], _row(headers, widths)]
    for line in lines:
        name = line[1] if len(line[1]) <= widths[1] else line[1][: widths[1] - 1] + "~"
        out.append(_row([line[0], name, *line[2:]], widths))
    before_bad = sum(row.verdict != "healthy" for row in before.rows)
    after_bad = sum(row.verdict != "healthy" for row in after.rows)
    out.append(f"flagged layers: {before_bad} of {len(before.rows)} before, {after_bad} of {len(after.rows)} after")
    return "\n".join(out)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    left = "  ".join(cell.ljust(w) for cell, w in zip(cells[:4], widths[:4]))
    right = "  ".join(cell.ljust(w) for cell, w in zip(cells[4:], widths[4:]))
    return f"{left}  | {right}".rstrip()
