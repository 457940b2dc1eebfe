"""Assemble docs/benchmarks.md from the summary and the per-benchmark pages in docs/bench/.

Each ``benchmarks/bench_*.py`` has a page in ``docs/bench/`` with what it
printed; ``docs/bench/index.md`` holds the summary table. This script joins
them (each page's headings one level down) so that docs/benchmarks.md is
always the pages' text, never a second copy edited by hand.

    .venv/bin/python benchmarks/assemble_docs.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("schemes", "plan", "recipes", "probe", "theory", "lab", "rng", "claims", "doctor", "scale")


def _demote(text: str) -> str:
    """Every Markdown heading one level down, code blocks left alone."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and re.match(r"#+ ", line) else line)
    return "\n".join(lines)


def main() -> None:
    bench = ROOT / "docs" / "bench"
    parts = [(bench / "index.md").read_text(encoding="utf-8").rstrip()]
    for name in PAGES:
        text = (bench / f"{name}.md").read_text(encoding="utf-8").rstrip()
        parts.append(_demote(text))
    out = ROOT / "docs" / "benchmarks.md"
    out.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)} from {len(PAGES)} pages")


if __name__ == "__main__":
    main()
