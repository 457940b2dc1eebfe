"""``initlab theory``: mean-field fixed points, depth scales and the phase diagram of an activation.

The phase diagram is printed as a text map; a figure is written only where
asked: ``--out DIR`` (``DIR/phase_diagram_<activation>.png``) or ``--plot PATH``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from initlab.theory import PhaseDiagram


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--activation", default="tanh", help="activation name (default tanh)")
    parser.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance sigma_b^2 (default 0.05)")
    parser.add_argument(
        "--sigma-w2",
        type=float,
        default=None,
        help="weight variance x fan_in; default: the critical value (edge of chaos) at --sigma-b2",
    )
    parser.add_argument("--depth", type=int, default=10, help="layers of predicted pre-activation std to print (default 10)")
    parser.add_argument("--input-q", type=float, default=1.0, help="mean square of the input coordinates (default 1)")
    parser.add_argument("--out", default=None, metavar="DIR", help="write phase_diagram_<activation>.png into DIR")
    parser.add_argument("--plot", default=None, metavar="PATH", help="write the phase diagram to PATH (png/svg/pdf)")
    parser.add_argument("--no-plot", action="store_true", help="write no figure, even with --out or --plot")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of text")


def _figure_path(args: argparse.Namespace, activation: str) -> str | None:
    """Where the phase diagram goes: --plot, else DIR/phase_diagram_<activation>.png for --out, else nowhere."""
    from pathlib import Path

    if args.plot:
        return str(args.plot)
    if args.out is None:
        return None
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"phase_diagram_{activation}.png")


def _format(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.6g}"


def _ascii_map(diagram: PhaseDiagram, rows: int = 10, columns: int = 48) -> list[str]:
    import numpy as np

    chi1 = diagram.chi1
    w_values = diagram.sigma_w2
    b_values = diagram.sigma_b2
    line = diagram.critical_sigma_w2
    row_index = np.linspace(len(b_values) - 1, 0, rows).round().astype(int)
    column_index = np.linspace(0, len(w_values) - 1, columns).round().astype(int)
    lines = []
    for i in row_index:
        cells = []
        for j in column_index:
            value = chi1[i, j]
            cells.append("?" if not np.isfinite(value) else ("." if value < 1 else "#"))
        if np.isfinite(line[i]):
            k = int(np.abs(w_values[column_index] - line[i]).argmin())
            cells[k] = "|"
        lines.append(f"  {b_values[i]:5.2f} {''.join(cells)}")
    lines.append(f"        {w_values[0]:<6.2f}{'sigma_w2':^{columns - 12}}{w_values[-1]:>6.2f}")
    lines.append("  (sigma_b2 down the side; '.' ordered chi1 < 1, '#' chaotic chi1 > 1, '|' critical line)")
    return lines


def run(args: argparse.Namespace) -> int:
    from initlab.theory import MeanField, critical_sigma_w2, phase_diagram

    sigma_b2 = args.sigma_b2
    if args.sigma_w2 is None:
        sigma_w2 = critical_sigma_w2(args.activation, sigma_b2)
        source = "critical"
    else:
        sigma_w2 = args.sigma_w2
        source = "given"
    field = MeanField(args.activation, sigma_w2, sigma_b2)
    summary = field.summary()
    summary["sigma_w2_source"] = source
    if args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    summary["predicted_std"] = field.predict(args.depth, args.input_q)
    try:
        summary["critical_sigma_w2"] = critical_sigma_w2(args.activation, sigma_b2)
    except ValueError:
        summary["critical_sigma_w2"] = math.nan
    import numpy as np

    path = None if args.no_plot else _figure_path(args, field.activation)
    diagram = None
    if path is not None or not args.json:
        w_high = max(4.0, 1.5 * sigma_w2)
        b_high = max(0.5, 1.5 * sigma_b2)
        diagram = phase_diagram(args.activation, np.linspace(0.05, w_high, 80), np.linspace(0.0, b_high, 40))
    if path is not None and diagram is not None:
        diagram.plot(path, mark=(sigma_w2, sigma_b2))
        summary["plot"] = path
    if args.json:
        print(json.dumps({k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}, indent=2))
        return 0
    print(f"mean field of {field.activation} at sigma_w2 = {sigma_w2:.6g} ({source}), sigma_b2 = {sigma_b2:.6g}")
    print(f"  q*                {_format(field.q_star)}")
    print(f"  chi1              {_format(field.chi1)}   ({field.phase})")
    print(f"  c*                {_format(field.c_star)}")
    print(f"  depth scale q     {_format(field.depth_scale_q)}")
    print(f"  depth scale c     {_format(field.depth_scale_c)}")
    print(f"  gradient scale    {_format(field.gradient_scale)}   (gradients x chi1 per layer)")
    print(f"  critical sigma_w2 {_format(summary['critical_sigma_w2'])} at this sigma_b2")
    stds = ", ".join(f"{s:.4g}" for s in summary["predicted_std"])
    print(f"  predicted pre-activation std, layers 1..{args.depth}: {stds}")
    print()
    print("phase diagram:")
    for line in _ascii_map(diagram) if diagram is not None else []:
        print(line)
    if path is not None:
        print(f"\nphase diagram written to {path}")
    return 0
