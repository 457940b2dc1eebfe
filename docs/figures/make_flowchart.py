"""Draw the advice table of ``initlab.recommend`` as a flowchart (SVG, written by this script).

Run from the repository root:

    .venv/bin/python docs/figures/make_flowchart.py          # writes docs/figures/recommend_flowchart.svg

Each row of ``initlab.plan.advice.ADVICE`` is one question, asked in the
table's order: "yes" leads right to the row's plan, "no" down to the next
question. tests/test_guide.py checks that the committed figure is what this
script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

from initlab.plan.advice import ADVICE

ROW_HEIGHT = 64
QUESTION_WIDTH = 340
PLAN_X = 440
PLAN_WIDTH = 280
TOP = 56
CHAR_WIDTH = 7.2  # of the 12 px sans-serif text, to size the boxes
OUTPUT = Path(__file__).with_name("recommend_flowchart.svg")


def _text(x: float, y: float, text: str, *, anchor: str = "middle", weight: str = "normal") -> str:
    return (f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}" font-weight="{weight}">'
            f"{escape(text)}</text>")


def _row(index: int, question: str, plan: str, last: bool) -> list[str]:
    centre_x, centre_y = 20 + QUESTION_WIDTH / 2, TOP + index * ROW_HEIGHT + 20
    half_w, half_h = QUESTION_WIDTH / 2, 20
    parts = []
    if last:
        parts.append(f'<rect x="20" y="{centre_y - half_h:.0f}" width="{QUESTION_WIDTH}" height="{2 * half_h}" '
                     'rx="6" class="question"/>')
    else:
        points = (f"{centre_x - half_w:.0f},{centre_y:.0f} {centre_x:.0f},{centre_y - half_h:.0f} "
                  f"{centre_x + half_w:.0f},{centre_y:.0f} {centre_x:.0f},{centre_y + half_h:.0f}")
        parts.append(f'<polygon points="{points}" class="question"/>')
        next_top = centre_y + ROW_HEIGHT - half_h
        parts.append(f'<line x1="{centre_x:.0f}" y1="{centre_y + half_h:.0f}" x2="{centre_x:.0f}" '
                     f'y2="{next_top:.0f}" marker-end="url(#arrow)"/>')
        parts.append(_text(centre_x + 8, centre_y + half_h + 14, "no", anchor="start"))
    parts.append(_text(centre_x, centre_y + 4, question))
    parts.append(f'<line x1="{centre_x + half_w:.0f}" y1="{centre_y:.0f}" x2="{PLAN_X}" y2="{centre_y:.0f}" '
                 'marker-end="url(#arrow)"/>')
    if not last:
        parts.append(_text((centre_x + half_w + PLAN_X) / 2, centre_y - 6, "yes"))
    width = max(PLAN_WIDTH, len(plan) * CHAR_WIDTH + 24)
    parts.append(f'<rect x="{PLAN_X}" y="{centre_y - 16:.0f}" width="{width:.0f}" height="32" rx="6" class="plan"/>')
    parts.append(_text(PLAN_X + 12, centre_y + 4, f'plan="{plan}"', anchor="start", weight="bold"))
    return parts


def flowchart_svg() -> str:
    """The SVG text of the flowchart of ``ADVICE``."""
    height = TOP + len(ADVICE) * ROW_HEIGHT
    width = PLAN_X + max(PLAN_WIDTH, max(len(row.plan) for row in ADVICE) * CHAR_WIDTH + 24) + 20
    body = [_text(20, 28, "Which init? initlab recommend asks, in this order:", anchor="start", weight="bold")]
    for index, row in enumerate(ADVICE):
        body += _row(index, row.question, row.plan, last=index == len(ADVICE) - 1)
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" font-family="sans-serif" font-size="12">',
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" "
        "markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker>",
        "<style>.question{fill:#eef3fb;stroke:#4a6fa5}.plan{fill:#eaf6ea;stroke:#3f8f3f}"
        "line{stroke:#444;stroke-width:1.2}text{fill:#222}</style></defs>",
        f'<rect width="{width:.0f}" height="{height}" fill="white"/>',
        *body,
        "</svg>",
        "",
    ])


def main() -> int:
    OUTPUT.write_text(flowchart_svg(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
