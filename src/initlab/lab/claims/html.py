"""HTML of a claims run: the verdict table and one section per claim (hypothesis, rules, interval, verdict).

``initlab.lab.report`` builds the page around these pieces (head, styles,
figure embedding). Every value read from ``results.json`` -- text and
numbers alike -- goes through :func:`escape` (``html.escape(..., quote=True)``)
before it reaches the page: a results file is untrusted input.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["STYLE", "escape", "intro", "counts", "summary_table", "claim_section"]

STYLE = """
.v-invalid { background: #fbefff; color: #6639ba; }
.v-error { background: #a40e26; color: #ffffff; }
.v-demonstration { background: #eaeef2; color: #24292f; }
.role { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.03em; color: #57606a; }
.hypothesis { background: #fff8c5; border-left: 3px solid #d4a72c; padding: 0.4em 0.8em; }
.rules td:nth-child(3) { white-space: nowrap; }
"""

_ROLE_TEXT = {"primary": "primary", "control": "control", "demonstration": "demonstration"}


def escape(value: Any) -> str:
    """Any value as HTML text: ``html.escape(str(value), quote=True)``."""
    return html.escape(str(value), quote=True)


def _seconds(value: Any) -> str:
    """A finite number of seconds with one decimal; anything else read from the file as escaped text."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{float(value):.1f}"
    return escape("-" if value is None else value)


def _verdict_class(verdict: Any) -> str:
    return "v-" + "".join(ch if ch.isalnum() else "-" for ch in str(verdict))


def _badge(verdict: Any) -> str:
    return f"<span class='verdict {escape(_verdict_class(verdict))}'>{escape(verdict)}</span>"


def intro() -> str:
    """What the page shows and how a verdict is reached."""
    return (
        "<p>Claims about why initial weights are random and how they are scaled, from the literature, each run as "
        "a pre-registered experiment. Every claim states its hypothesis and its decision rules in code before it "
        "runs: <i>primary</i> rules (what the claim predicts), <i>controls</i> (the same experiment where the claim "
        "predicts the opposite, or where a rival explanation would show) and <i>demonstrations</i> (identities and "
        "determinism checks, never counted as support). Measurements over seeds carry a 95&nbsp;% bootstrap "
        "interval, and a rule passes only when the whole interval lies on the predicted side of its threshold. "
        "Where a verdict could hinge on a setting (a learning rate, a step budget) the claim states the "
        "<i>design</i> principle that fixes it, and every change of a design made after results had been seen "
        "is listed with its date and reason.</p>"
        "<p>Verdicts: <i>supported</i> (every primary rule and control passed), <i>not supported</i> (a primary "
        "rule failed), <i>inconclusive</i> (an interval contains its threshold), <i>invalid</i> (a control or a "
        "set-up check failed: the experiment cannot tell the claim from its alternative), <i>demonstration</i> "
        "(an identity, shown), <i>error</i> (the experiment raised).</p>"
    )


def counts(claims: Iterable[dict[str, Any]]) -> str:
    """One badge per verdict with its count."""
    tally: dict[str, int] = {}
    for item in claims:
        verdict = str(item.get("verdict", ""))
        tally[verdict] = tally.get(verdict, 0) + 1
    return "<p class='counts'>" + "".join(
        f"<span class='verdict {escape(_verdict_class(v))}'>{escape(v)}: {escape(n)}</span>"
        for v, n in sorted(tally.items())
    ) + "</p>"


def _rules(item: dict[str, Any]) -> list[dict[str, Any]]:
    rules = item.get("rules", [])
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


def _measured_text(rule: dict[str, Any]) -> str:
    measured = rule.get("measured")
    if isinstance(measured, dict):
        return str(measured.get("text", measured.get("value", "")))
    return "-"


def _headline(item: dict[str, Any]) -> dict[str, Any] | None:
    rules = _rules(item)
    for rule in rules:
        if rule.get("role") == "primary":
            return rule
    return rules[0] if rules else None


def summary_table(claims: Iterable[dict[str, Any]]) -> str:
    """The verdict table: id, claim, verdict, headline measurement [95 % CI], its threshold, controls, seeds."""
    rows = []
    for item in claims:
        identifier = item.get("id", "")
        headline = _headline(item)
        controls = [rule for rule in _rules(item) if rule.get("role") == "control"]
        control_text = ", ".join(f"{rule.get('status', '')}" for rule in controls) or "-"
        rows.append(
            f"<tr data-claim-row='{escape(identifier)}'><td><a href='#claim-{escape(identifier)}'>"
            f"{escape(identifier)}</a></td><td>{escape(item.get('title', ''))}</td>"
            f"<td>{_badge(item.get('verdict', ''))}</td>"
            f"<td>{escape(headline.get('label', '') if headline else '-')}</td>"
            f"<td>{escape(_measured_text(headline) if headline else '-')}</td>"
            f"<td>{escape(headline.get('threshold_text', '') if headline else '-')}</td>"
            f"<td>{escape(control_text)}</td><td>{escape(item.get('seeds', ''))}</td></tr>"
        )
    return ("<table id='claims-table'><thead><tr><th>id</th><th>claim</th><th>verdict</th>"
            "<th>primary measurement</th><th>value [95% CI]</th><th>threshold</th><th>controls</th>"
            "<th>seeds</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _rules_table(item: dict[str, Any]) -> str:
    rules = _rules(item)
    if not rules:
        return "<p class='meta'>No rules were recorded.</p>"
    body = []
    for rule in rules:
        status = str(rule.get("status", ""))
        measured = rule.get("measured") if isinstance(rule.get("measured"), dict) else {}
        method = measured.get("method", "") if measured else ""
        reason = rule.get("predicts") or rule.get("why") or ""
        body.append(
            f"<tr data-role='{escape(rule.get('role', ''))}'>"
            f"<td class='role'>{escape(_ROLE_TEXT.get(str(rule.get('role', '')), rule.get('role', '')))}</td>"
            f"<td>{escape(rule.get('label', ''))}</td>"
            f"<td>{escape(_measured_text(rule))}</td>"
            f"<td>{escape(rule.get('threshold_text', ''))}</td>"
            f"<td class='s-{escape(status)}'>{escape(status)}</td>"
            f"<td>{escape(reason)}</td>"
            f"<td class='meta'>{escape(rule.get('decision', ''))}; {escape(method)}</td></tr>"
        )
    return ("<table class='rules'><thead><tr><th>role</th><th>measurement</th><th>value [95% CI]</th>"
            "<th>threshold</th><th>status</th><th>prediction / why</th><th>decision rule; interval</th></tr></thead>"
            "<tbody>" + "".join(body) + "</tbody></table>")


def _rows_table(rows: Any) -> str:
    if not isinstance(rows, list) or not rows:
        return "<p class='meta'>(empty)</p>"
    columns: list[str] = []
    for row in rows:
        if isinstance(row, dict):
            for key in row:
                if key not in columns:
                    columns.append(str(key))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(row.get(c, ''))}</td>" for c in columns) + "</tr>"
        for row in rows if isinstance(row, dict)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _design(item: dict[str, Any]) -> list[str]:
    """The design principle and the amendments made after results had been seen, as paragraphs and a list."""
    parts = []
    if item.get("design"):
        parts.append(f"<p><b>Design (fixed before the run).</b> {escape(item['design'])}</p>")
    amendments = item.get("amendments", [])
    rows = [row for row in amendments if isinstance(row, dict)] if isinstance(amendments, list) else []
    if rows:
        parts.append("<p class='meta'>Amendments made after results had been seen:</p><ul class='amendments'>"
                     + "".join(f"<li>{escape(row.get('date', ''))}: {escape(row.get('change', ''))} "
                               f"({escape(row.get('reason', ''))})</li>" for row in rows) + "</ul>")
    return parts


def claim_section(item: dict[str, Any], embed_figure: Callable[[str], str]) -> str:
    """One claim: statement, references, hypothesis, the rules with intervals and status, notes, figures.

    ``embed_figure(name)`` returns the ``<figure>`` of a file named in the results (the report's job).
    """
    identifier = item.get("id", "")
    verdict = item.get("verdict", "")
    references = item.get("references", [])
    if not isinstance(references, list):
        references = [references]
    parts = [
        f"<section class='claim' id='claim-{escape(identifier)}' data-claim-id='{escape(identifier)}' "
        f"data-verdict='{escape(verdict)}'>",
        f"<h3>{escape(identifier)}. {escape(item.get('title', ''))} {_badge(verdict)}</h3>",
        f"<p><b>Claim.</b> {escape(item.get('statement', ''))}</p>",
        "<p class='meta'>References: " + "; ".join(escape(ref) for ref in references) + "</p>",
        f"<p class='hypothesis'><b>Hypothesis (fixed before the run).</b> {escape(item.get('hypothesis', ''))}</p>",
        *_design(item),
        f"<p><b>Experiment.</b> {escape(item.get('measurement', ''))}</p>",
        f"<p class='meta'>{escape(item.get('setting', ''))} · {escape(item.get('seeds', ''))} seeds · "
        f"{_seconds(item.get('seconds'))} s</p>",
        _rules_table(item),
    ]
    if item.get("reference"):
        parts.append(f"<p class='reference'><b>Published.</b> {escape(item['reference'])}</p>")
    if item.get("notes"):
        parts.append(f"<p class='notes'><b>What the numbers say.</b> {escape(item['notes'])}</p>")
    tables = item.get("tables", {})
    if isinstance(tables, dict):
        for name, rows in tables.items():
            parts.append(f"<p class='meta'>{escape(name)}</p>{_rows_table(rows)}")
    figures = item.get("figures", [])
    for name in figures if isinstance(figures, list) else []:
        parts.append(embed_figure(str(name)))
    if item.get("error"):
        parts.append(f"<details open><summary>error</summary><pre>{escape(item['error'])}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)
