"""One self-contained HTML file for a finished run: the claims table, every claim's rules and figures.

The page needs no network and no server: styles are inline and every figure
is embedded as a base64 data URI (``<img src="data:image/...;base64,...">``;
SVG too, never inline, so a figure cannot carry script). ``write_report(run_dir)``
reads ``results.json`` (written by ``initlab claims`` or another lab command)
and the figures next to it, and writes ``report.html`` beside them.

A results file is untrusted input: every field is escaped for where it lands
(element text or a quoted attribute), class names are reduced to
``[a-z0-9-]``, a figure is embedded only when its path resolves to a file
inside the run folder with an image suffix (:data:`IMAGE_TYPES`), and every
page carries a Content-Security-Policy (:data:`CSP`) that forbids scripts,
so even markup that slipped through could not run.

For a claims run each claim is a ``<section class="claim" data-claim-id=...>``
with its verdict, hypothesis, rules (value with its interval, threshold,
status), tables and figures (``<figure data-figure="figures/...">``); the
claim-specific pieces come from :mod:`initlab.lab.claims.html`. A compare
folder (``manifest.json`` of kind ``initlab.compare``) gets the run settings in
words, the leaderboard table (``leaderboard.csv``) and the loss curves and
final-accuracy figures. Other run folders get a generic page: the JSON as
tables and every image in the folder.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from initlab.lab.store import atomic_write_text

__all__ = ["render_claims_html", "render_compare_html", "render_generic_html", "write_report", "REPORT_FILE", "CSP", "IMAGE_TYPES"]

REPORT_FILE = "report.html"
RESULTS_FILE = "results.json"
COMPARE_KIND = "initlab.compare"
# a leaderboard has one row per init: more rows than this is not a file initlab wrote
MAX_LEADERBOARD_ROWS = 10_000

# no script, no frame, no form, no network: only inline styles and data: images
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'; object-src 'none'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# the figure files a report embeds, by suffix
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml"}

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
    """``value`` as text safe in element content and in a quoted attribute (& < > " ' escaped)."""
    return html.escape(str(value), quote=True)


def _token(value: Any) -> str:
    """``value`` reduced to ``[a-z0-9-]``: safe as (part of) a class name whatever the input."""
    return re.sub(r"[^a-z0-9-]+", "-", str(value).lower()).strip("-") or "none"


def _verdict_class(verdict: Any) -> str:
    return "v-" + _token(verdict)


def _number(value: Any, digits: int) -> str:
    """A finite number with ``digits`` decimals; anything else (a crafted string, NaN) as escaped text."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{float(value):.{digits}f}"
    return _e(value)


def _head(title: str, *, extra_style: str = "") -> list[str]:
    """The start of every page initlab writes: charset, the script-forbidding CSP, title and styles."""
    return [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}{extra_style}</style></head><body>",
    ]


def _figure_file(run_dir: Path, name: str) -> tuple[Path | None, str]:
    """(the file to embed, "") or (None, why it is not embedded) for a figure path read from a results file."""
    if not name or "\x00" in name:
        return None, "figure path is empty or holds a NUL byte"
    try:
        root = run_dir.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            return None, "figure path points outside the run folder"
        if path.suffix.lower() not in IMAGE_TYPES:
            return None, f"figure is not an image ({', '.join(IMAGE_TYPES)})"
        if not path.is_file():
            return None, "figure file missing"
    except OSError as error:  # a name too long, a loop of links
        return None, f"figure path cannot be read ({error.strerror or type(error).__name__})"
    return path, ""


def _embed_figure(run_dir: Path, name: str) -> str:
    """A <figure> with the image as a data URI, or a visible note why it is not shown.

    Only files inside ``run_dir`` (after resolving ``..`` and symbolic links)
    with an image suffix are read; SVG is embedded as an ``<img>`` data URI,
    where a browser runs none of its scripts.
    """
    caption = f"<figcaption>{_e(name)}</figcaption>"
    path, why = _figure_file(run_dir, name)
    if path is None:
        kind = "missing" if why == "figure file missing" else "refused"
        return f'<figure data-figure="{_e(name)}" class="{kind}"><p>{_e(why)}: {_e(name)}</p>{caption}</figure>'
    try:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as error:
        return (f'<figure data-figure="{_e(name)}" class="refused"><p>figure file cannot be read '
                f'({_e(error.strerror or type(error).__name__)}): {_e(name)}</p>{caption}</figure>')
    return (f'<figure data-figure="{_e(name)}"><img src="data:{IMAGE_TYPES[path.suffix.lower()]};base64,{encoded}" '
            f'alt="{_e(name)}">{caption}</figure>')


def _dicts(value: Any, what: str) -> list[dict[str, Any]]:
    """``value`` as a list of dicts, or a ValueError naming the field of the results file."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{what} must be a list of objects, got {type(value).__name__}")
    return value


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
    for index, item in enumerate(claims):
        if not isinstance(item, dict):
            raise ValueError(f"claims[{index}] must be an object, got {type(item).__name__}")
        if "id" not in item or "verdict" not in item:
            raise ValueError(f"every claim result needs 'id' and 'verdict'; got keys {sorted(map(str, item))}")
    environment = data.get("environment") or {}
    mode = data.get("mode", "quick" if data.get("quick") else "full")
    env_text = ", ".join(f"{k} {v}" for k, v in environment.items()) if isinstance(environment, dict) else environment
    claim_items = [c for c in claims if c.get("group", c.get("kind", "claim")) != "reproduction"]
    reproductions = [c for c in claims if c.get("group", c.get("kind")) == "reproduction"]

    def embed(name: str) -> str:
        return _embed_figure(folder, name)

    sections = [
        *_head("initlab claims report", extra_style=claims_html.STYLE),
        "<h1>initlab claims</h1>",
        claims_html.intro(),
        f"<p class='meta'>{_e(mode)} mode · started {_e(data.get('started', ''))} · "
        f"{_number(data.get('seconds', 0.0), 0)} s · seed {_e(data.get('seed', 0))} · {_e(env_text)}</p>",
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


def _words(value: Any) -> str:
    return "default" if value is None else str(value)


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    """``data[key]`` if it is of ``kind``, else an empty one (the manifest is untrusted)."""
    value = data.get(key)
    return value if isinstance(value, kind) else kind()


def _wall(seconds: Any) -> str:
    """Seconds as text, or "unknown" for a missing or non-numeric value (escaped later, with its sentence)."""
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and math.isfinite(seconds):
        return f"{seconds:.0f} s"
    return "unknown"


def _compare_settings(manifest: dict[str, Any]) -> str:
    """The run settings of a compare manifest as sentences."""
    config = _field(manifest, "config", dict)
    inits = _field(manifest, "inits", list)
    seeds = _field(manifest, "seeds", list)
    length = f"{config.get('steps')} steps" if config.get("steps") else f"{_words(config.get('epochs'))} epochs"
    counts = _field(manifest, "counts", dict)
    timings = _field(manifest, "timings", dict)
    versions = _field(manifest, "versions", dict)
    sentences = [
        f"Model {config.get('model', '?')} trained on {config.get('dataset', '?')} for {length} with "
        f"{config.get('optimizer', '?')} (learning rate {_words(config.get('lr'))}, momentum "
        f"{_words(config.get('momentum'))}, weight decay {_words(config.get('weight_decay'))}), "
        f"batch size {_words(config.get('batch_size'))}.",
        f"{len(inits)} inits ({', '.join(map(str, inits))}) x {len(seeds)} seeds "
        f"({', '.join(map(str, seeds[:12]))}{', ...' if len(seeds) > 12 else ''}).",
        "Runs: " + ", ".join(f"{count} {status}" for status, count in counts.items()) + "." if counts else "",
        f"Wall time {_wall(timings.get('wall_seconds'))} on {versions.get('cpu', '?')} "
        f"({versions.get('cpu_count', '?')} cores); initlab {versions.get('initlab', '?')}, "
        f"torch {versions.get('torch', '?')}.",
    ]
    return "".join(f"<p>{_e(sentence)}</p>" for sentence in sentences if sentence)


def _leaderboard(folder: Path) -> list[dict[str, Any]]:
    """The rows of ``leaderboard.csv``, numbers shown to 4 significant digits (untrusted: at most a bounded count)."""
    path = folder / "leaderboard.csv"
    if not path.is_file() or path.is_symlink():
        return []
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for index, row in enumerate(csv.DictReader(handle)):
                if index >= MAX_LEADERBOARD_ROWS:
                    break
                rows.append({str(key): _short(value) for key, value in row.items() if key is not None})
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} cannot be read as a leaderboard: {error}") from None
    return rows


def _short(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if str(value).lstrip("-").isdigit() or not math.isfinite(number) else f"{number:.4g}"


def render_compare_html(manifest: dict[str, Any], run_dir: str | os.PathLike[str]) -> str:
    """The page of an ``initlab compare`` folder: the settings in words, the leaderboard, the curves."""
    folder = Path(run_dir)
    parts = [
        *_head("initlab compare report"), "<h1>initlab compare</h1>",
        f"<p class='meta'>sweep {_e(manifest.get('sweep_id', ''))} · {_e(folder)}</p>",
        "<h2>Settings</h2>", _compare_settings(manifest),
        "<h2>Leaderboard</h2>", _rows_table(_leaderboard(folder)),
        "<p class='meta'>score: mean test accuracy; steps_to_threshold: steps until the training loss first "
        "fell below the threshold (inf: never); fractions of runs that diverged, stalled or failed.</p>",
        "<h2>Curves</h2>",
    ]
    parts.extend(_embed_figure(folder, name) for name in ("loss_curves.png", "final_accuracy.png")
                 if (folder / name).exists())
    parts.append("</body></html>")
    return "\n".join(parts)


def render_generic_html(data: Any, run_dir: str | os.PathLike[str], title: str = "initlab run") -> str:
    """A page for any run folder: its JSON as tables and every image (:data:`IMAGE_TYPES`) found in the folder."""
    folder = Path(run_dir)
    images = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_TYPES and p.is_file()
    )
    parts = [
        *_head(title), f"<h1>{_e(title)}</h1>",
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
    if not results.is_file() and (folder / "manifest.json").is_file():
        results = folder / "manifest.json"
    if not results.is_file():
        candidates = sorted(folder.glob("*.json"))
        if not candidates:
            raise FileNotFoundError(f"no {RESULTS_FILE} (or any .json file) in {str(folder)!r}")
        results = candidates[0]
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{results} is not valid JSON: {error}") from error
    except RecursionError:
        raise ValueError(f"{results} nests its JSON too deeply to read") from None
    if isinstance(data, dict) and isinstance(data.get("claims"), list):
        page = render_claims_html(data, folder)
    elif isinstance(data, dict) and data.get("kind") == COMPARE_KIND:
        page = render_compare_html(data, folder)
    else:
        kind = data.get("kind", "run") if isinstance(data, dict) else "run"
        page = render_generic_html(data, folder, title=f"initlab {kind} report")
    target = Path(output) if output is not None else folder / REPORT_FILE
    try:
        atomic_write_text(target, page)  # replaces a symbolic link at target instead of writing through it
    except OSError as error:
        raise ValueError(f"cannot write the report to {str(target)!r}: {error.strerror or error}") from None
    return target
