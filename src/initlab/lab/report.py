"""One self-contained HTML file for a finished run: the claims table, every claim's rules and figures.

The page needs no network and no server: styles are inline and every figure
is embedded as a base64 data URI (PNG) or inline SVG. ``write_report(run_dir)``
reads ``results.json`` (written by ``initlab claims`` or another lab command)
and the figures next to it, and writes ``report.html`` beside them.

For a claims run each claim is a ``<section class="claim" data-claim-id=...>``
with its verdict, hypothesis, rules (value with its interval, threshold,
status), tables and figures (``<figure data-figure="figures/...">``); the
claim-specific pieces come from :mod:`initlab.lab.claims.html`. Other run folders (e.g.
``initlab compare``) get a generic page: the JSON as tables and every image
in the folder.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["render_claims_html", "render_generic_html", "write_report", "REPORT_FILE"]

REPORT_FILE = "report.html"
RESULTS_FILE = "results.json"

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1150px;
       padding: 1.5em; color: #1b1f24; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
.verdict { font-weight: 600; padding: 0.1em 0.45em; border-radius: 0.3em; white-space: nowrap; }
.v-supported { background: #dafbe1; color: #116329; }
.v-not-supported { background: #ffebe9; color: #a40e26; }
.v-inconclusive { background: #fff8c5; color: #7d4e00; }
.s-pass { color: #116329; } .s-fail { color: #a40e26; font-weight: 600; } .s-unclear { color: #7d4e00; }
.claim { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.4em 1.1em 1em; margin: 1.2em 0; }
.claim h3 { margin: 0.5em 0 0.3em; }
.meta { color: #57606a; font-size: 0.9em; }
.notes { background: #f6f8fa; border-left: 3px solid #8c959f; padding: 0.4em 0.8em; }
.reference { background: #ddf4ff; border-left: 3px solid #54aeff; padding: 0.4em 0.8em; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; } figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { font-size: 0.8em; color: #57606a; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.counts span { margin-right: 1em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _verdict_class(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-")


def _embed_figure(run_dir: Path, name: str) -> str:
    """A <figure> with the image inlined, or a visible note when the file is missing."""
    path = run_dir / name
    caption = f"<figcaption>{_e(name)}</figcaption>"
    if not path.is_file():
        return f'<figure data-figure="{_e(name)}" class="missing"><p>figure file missing: {_e(name)}</p>{caption}</figure>'
    data = path.read_bytes()
    if path.suffix.lower() == ".svg":
        return f'<figure data-figure="{_e(name)}">{data.decode("utf-8", errors="replace")}{caption}</figure>'
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure data-figure="{_e(name)}"><img src="data:{mime};base64,{encoded}" alt="{_e(name)}">'
            f"{caption}</figure>")


def _rows_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='meta'>(empty)</p>"
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_claims_html(data: dict[str, Any], run_dir: str | os.PathLike[str]) -> str:
    """The HTML page of a claims run (``results.json`` content) whose figures live under ``run_dir``."""
    from initlab.lab.claims import html as claims_html

    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ValueError("a claims results object needs a 'claims' list")
    folder = Path(run_dir)
    claims = list(data["claims"])
    for item in claims:
        if "id" not in item or "verdict" not in item:
            raise ValueError(f"every claim result needs 'id' and 'verdict'; got keys {sorted(item)}")
    environment = data.get("environment", {})
    mode = data.get("mode", "quick" if data.get("quick") else "full")
    env_text = ", ".join(f"{k} {v}" for k, v in environment.items())
    claim_items = [c for c in claims if c.get("group", c.get("kind", "claim")) != "reproduction"]
    reproductions = [c for c in claims if c.get("group", c.get("kind")) == "reproduction"]

    def embed(name: str) -> str:
        return _embed_figure(folder, name)

    sections = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>initlab claims report</title>",
        f"<style>{_STYLE}{claims_html.STYLE}</style></head><body>",
        "<h1>initlab claims</h1>",
        claims_html.intro(),
        f"<p class='meta'>{_e(mode)} mode · started {_e(data.get('started', ''))} · "
        f"{_e(round(float(data.get('seconds', 0.0) or 0.0)))} s · seed {_e(data.get('seed', 0))} · {_e(env_text)}</p>",
        claims_html.counts(claims),
        "<h2>Claims table</h2>",
        claims_html.summary_table(claims),
    ]
    if claim_items:
        sections.append("<h2>Claims</h2>")
        sections.extend(claims_html.claim_section(item, embed) for item in claim_items)
    if reproductions:
        sections.append("<h2>Classic results reproduced</h2>")
        sections.extend(claims_html.claim_section(item, embed) for item in reproductions)
    sections.append("</body></html>")
    return "\n".join(sections)


def _json_block(value: Any, depth: int = 0) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        flat = [{k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in row.items()} for row in value]
        return _rows_table(flat)
    if isinstance(value, dict) and depth < 3:
        return "".join(f"<p><b>{_e(k)}</b></p>{_json_block(v, depth + 1)}" for k, v in value.items())
    return f"<pre>{_e(json.dumps(value, indent=2, default=str))}</pre>"


def render_generic_html(data: Any, run_dir: str | os.PathLike[str], title: str = "initlab run") -> str:
    """A page for any run folder: its JSON as tables and every PNG/SVG image found in the folder."""
    folder = Path(run_dir)
    images = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in (".png", ".svg") and p.is_file()
    )
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>", f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>{_e(folder)}</p>", "<h2>Results</h2>", _json_block(data),
    ]
    if images:
        parts.append("<h2>Figures</h2>")
        parts.extend(_embed_figure(folder, name) for name in images)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write ``report.html`` for a run folder (claims or any other run with a ``results.json``).

    Returns the path written. Raises FileNotFoundError when the folder or its
    ``results.json`` is missing and ValueError when the JSON cannot be read.
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {str(folder)!r} does not exist")
    results = folder / RESULTS_FILE
    if not results.is_file():
        candidates = sorted(folder.glob("*.json"))
        if not candidates:
            raise FileNotFoundError(f"no {RESULTS_FILE} (or any .json file) in {str(folder)!r}")
        results = candidates[0]
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{results} is not valid JSON: {error}") from error
    if isinstance(data, dict) and isinstance(data.get("claims"), list):
        page = render_claims_html(data, folder)
    else:
        kind = data.get("kind", "run") if isinstance(data, dict) else "run"
        page = render_generic_html(data, folder, title=f"initlab {kind} report")
    target = Path(output) if output is not None else folder / REPORT_FILE
    target.write_text(page, encoding="utf-8")
    return target
