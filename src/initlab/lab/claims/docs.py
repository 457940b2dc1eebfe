"""docs/claims.md, generated from committed run results: the verdict table and every number, never typed.

The full and the quick run of ``initlab claims`` are committed as
``docs/claims/results-full.json`` and ``docs/claims/results-quick.json``;
this module turns them into ``docs/claims.md``, and a test fails when the
committed page differs from what it makes of the committed results::

    initlab claims --out runs/claims && cp runs/claims/results.json docs/claims/results-full.json
    initlab claims --quick --out runs/claims-quick && cp runs/claims-quick/results.json docs/claims/results-quick.json
    python -m initlab.lab.claims.docs            # rewrite docs/claims.md
    python -m initlab.lab.claims.docs --check    # exit 1 when docs/claims.md is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["FULL_RESULTS", "QUICK_RESULTS", "PAGE", "render", "main"]

FULL_RESULTS = Path("docs/claims/results-full.json")
QUICK_RESULTS = Path("docs/claims/results-quick.json")
PAGE = Path("docs/claims.md")

_INTRO = """\
# Claims: why initial weights are random, and how they are scaled

`initlab claims` turns the common explanations of weight initialization --
symmetry breaking, variance preservation (LeCun, Glorot, He), saturation,
orthogonal and sparse init, pre-training, batch norm, restarts -- into
experiments, each stated as a hypothesis that the experiment can refute,
with its literature reference.

```
initlab claims --quick                  # every claim, small sizes, 5 seeds (about a minute on 2 quiet cores)
initlab claims                          # full sizes, 10 seeds (well under 30 minutes)
initlab claims --only 1,12,he2015 --out runs/mine
initlab report runs/mine                # rebuild report.html from results.json
```

A run folder holds `results.json` (the pre-registration, every measurement
with its interval and per-seed values, the verdicts, the machine),
`figures/*.png` and `report.html` (one self-contained file).

## How a claim is decided

Each claim declares, in code and before it runs, its **hypothesis** and its
**decision rules**; `results.json` records them beside the numbers:

* **primary** rules: what the claim predicts in its own setting;
* **controls**: the same experiment in a condition where the claim predicts
  the opposite outcome, or where a rival explanation would show up (claim 7
  with a Glorot-initialised deep net at the same learning rate; claim 16 in
  the ordered phase, where mean-field theory predicts c* = 1; claim 6 with
  each scale's best learning rate);
* **demonstrations**: identities and determinism checks (claims 2, 9, 12,
  matmul100, the exact symmetry of claim 1, ...). They cannot refute a claim
  and are never counted as support.

Where a verdict could hinge on a setting (a learning rate, a step budget),
the claim also states its **design**: the principle that fixes the setting
(the reference implementation's optimiser, a budget derived from a
convergence criterion), not a value chosen to make the claim pass. Every
change of a claim's design made after results had been seen is kept in its
registration with the date and the reason, and listed under
[Protocol amendments](#protocol-amendments).

Training claims run 10 seeds (5 in quick mode); each seed draws its own
init, minibatch order and train/test split, and arms of one seed share them
(paired). A reported number is a statistic over seeds with a 95 % percentile
bootstrap interval (10,000 resamples, fixed resampling seed). A rule
**passes** when the whole interval lies on the predicted side of its
threshold, **fails** when it lies entirely on the other side, and is
**unclear** when it contains the threshold. The verdict:

* **supported**: every primary rule and control passed;
* **not supported**: a primary rule failed;
* **inconclusive**: an interval contains its threshold;
* **invalid**: a control (or a check that the experiment set up its
  condition) failed, so the experiment cannot tell the claim from its
  alternative and concludes nothing;
* **demonstration**: the claim is an identity, shown; **error**: the
  experiment raised (the command then exits 1).

Every run pins torch and BLAS to `--threads` threads (1 by default), turns on
torch's deterministic algorithms and records the BLAS, CPU and load average;
`--workers` runs claims in parallel processes. Claims whose outcome hinges
on exact float symmetry (1, 5) use products summed in a fixed order, so the
outcome is a property of the claim and not of a BLAS kernel, and add an
explicit epsilon-perturbation arm that shows what a tiny asymmetry does.

Experiments train through the lab's seed-batched trainer
(`initlab.lab.batched.train_stacked`: per-seed data splits, per-model
learning rates, per-parameter learning-rate factors, the squared-error loss
of logistic units) on scikit-learn's digits or MNIST-1D (`mnist1d`'s
generator, where digits saturates); per-layer statistics come from
`initlab.probe.audit`, mean-field maps and Jacobian spectra from
`initlab.theory`. The deeplearning.ai exercise keeps the course's own NumPy
program, so its numbers can be compared with the course's.

This page is generated by `python -m initlab.lab.claims.docs` from
`docs/claims/results-full.json` and `docs/claims/results-quick.json`.
"""


def _cell(value: Any) -> str:
    """Markdown text: backslashes, pipes and asterisks escaped, line breaks flattened."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return text.replace("\n", " ").strip()


def _rules(item: dict[str, Any]) -> list[dict[str, Any]]:
    rules = item.get("rules", [])
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


def _measured(rule: dict[str, Any] | None) -> str:
    if not rule or not isinstance(rule.get("measured"), dict):
        return "-"
    return str(rule["measured"].get("text", "-"))


def _headline(item: dict[str, Any]) -> dict[str, Any] | None:
    rules = _rules(item)
    return next((rule for rule in rules if rule.get("role") == "primary"), rules[0] if rules else None)


def _by_id(data: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not data:
        return {}
    return {str(item.get("id")): item for item in data.get("claims", []) if isinstance(item, dict)}


def _environment(data: dict[str, Any]) -> str:
    env = data.get("environment", {}) if isinstance(data.get("environment"), dict) else {}
    start, end = env.get("load_average_start"), env.get("load_average_end")
    parts = [
        f"{data.get('mode', '?')} mode, seed {data.get('seed', 0)}, {float(data.get('seconds', 0.0)):.0f} s wall",
        f"{env.get('threads', data.get('threads', '?'))} thread(s) per claim, {env.get('workers', 1)} worker(s)",
        f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores, {env.get('cpu_capability', '?')})",
        f"BLAS {env.get('blas_info', '?')}",
        f"torch {env.get('torch', '?')}",
    ]
    if isinstance(start, list) and start and isinstance(end, list) and end:
        parts.append(f"load average {start[0]} at the start, {end[0]} at the end")
    return "; ".join(_cell(part) for part in parts)


def _verdict_table(full: dict[str, Any], quick: dict[str, Any] | None) -> list[str]:
    quick_items = _by_id(quick)
    lines = [
        "| id | claim | primary measurement | full: value [95% CI] | threshold | full verdict | quick verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in full.get("claims", []):
        headline = _headline(item)
        other = quick_items.get(str(item.get("id")))
        lines.append(
            f"| {_cell(item.get('id'))} | {_cell(item.get('title', ''))} | "
            f"{_cell(headline.get('label', '-') if headline else '-')} | {_cell(_measured(headline))} | "
            f"{_cell(headline.get('threshold_text', '-') if headline else '-')} | "
            f"**{_cell(item.get('verdict', ''))}** | {_cell(other.get('verdict', '-') if other else '-')} |"
        )
    return lines


def _counts(data: dict[str, Any]) -> str:
    counts = data.get("counts", {}) if isinstance(data.get("counts"), dict) else {}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "none"


def _claim(item: dict[str, Any], quick: dict[str, Any] | None) -> list[str]:
    quick_rules = {rule.get("key"): rule for rule in _rules(quick or {})}
    references = item.get("references", [])
    lines = [
        f"### {_cell(item.get('id'))}. {_cell(item.get('title', ''))}",
        "",
        f"*Claim.* {_cell(item.get('statement', ''))}  ",
        f"*References:* {_cell('; '.join(references) if isinstance(references, list) else references)}",
        "",
        f"*Hypothesis (fixed before the run).* {_cell(item.get('hypothesis', ''))}",
        "",
        *_design(item),
        f"*Experiment (full mode).* {_cell(item.get('measurement', ''))} ({_cell(item.get('setting', ''))}; "
        f"{float(item.get('seconds', 0.0) or 0.0):.1f} s).",
        "",
        "| role | measurement | full: value [95% CI] | threshold | full | quick value | quick |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in _rules(item):
        other = quick_rules.get(rule.get("key"))
        lines.append(
            f"| {_cell(rule.get('role', ''))} | {_cell(rule.get('label', ''))} | {_cell(_measured(rule))} | "
            f"{_cell(rule.get('threshold_text', ''))} | {_cell(rule.get('status', ''))} | "
            f"{_cell(_measured(other))} | {_cell(other.get('status', '-') if other else '-')} |"
        )
    lines.append("")
    for rule in _rules(item):
        if rule.get("role") == "control" and rule.get("predicts"):
            lines.append(f"*Control ({_cell(rule.get('label', ''))}).* {_cell(rule['predicts'])}  ")
    quick_verdict = quick.get("verdict", "-") if quick else "-"
    lines += [f"**Verdict: {_cell(item.get('verdict', ''))}** (quick: {_cell(quick_verdict)}).", ""]
    if item.get("reference"):
        lines += [f"*Published:* {_cell(item['reference'])}", ""]
    if item.get("notes"):
        lines += [f"*What the numbers say (full run):* {_cell(item['notes'])}", ""]
    if item.get("error"):
        lines += [f"*Error:* `{_cell(str(item['error']).splitlines()[0])}`", ""]
    return lines


def _amendments(item: dict[str, Any]) -> list[dict[str, Any]]:
    rows = item.get("amendments", [])
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _design(item: dict[str, Any]) -> list[str]:
    lines = []
    if item.get("design"):
        lines += [f"*Design (fixed before the run).* {_cell(item['design'])}", ""]
    count = len(_amendments(item))
    if count:
        lines += [f"*Amended after results had been seen:* {count} change{'s' if count != 1 else ''}, listed "
                  "under [Protocol amendments](#protocol-amendments).", ""]
    return lines


def _protocol_amendments(full: dict[str, Any]) -> list[str]:
    lines = [
        "## Protocol amendments", "",
        "Every change of a claim's design made after results had been seen, oldest first for each claim, "
        "from the claims' registrations (`amendments=` where each claim is registered; `results.json` records "
        "them beside the numbers). A verdict is read together with the changes made once its numbers were "
        "known.", "",
    ]
    rows = [(item, row) for item in full.get("claims", []) if isinstance(item, dict) for row in _amendments(item)]
    if not rows:
        return lines + ["* none", ""]
    lines += ["| claim | date | change | reason |", "|---|---|---|---|"]
    for item, row in rows:
        lines.append(f"| {_cell(item.get('id'))} | {_cell(row.get('date', ''))} | {_cell(row.get('change', ''))} | "
                     f"{_cell(row.get('reason', ''))} |")
    return lines + [""]


def _not_supported(full: dict[str, Any]) -> list[str]:
    lines = []
    for item in full.get("claims", []):
        verdict = item.get("verdict")
        if verdict in ("supported", "demonstration"):
            continue
        failing = [rule for rule in _rules(item) if rule.get("status") != "pass"]
        detail = "; ".join(f"{_cell(rule.get('label', ''))} = {_cell(_measured(rule))} "
                           f"({_cell(rule.get('role', ''))} rule {_cell(rule.get('threshold_text', ''))}: "
                           f"{_cell(rule.get('status', ''))})" for rule in failing)
        lines.append(f"* **{_cell(item.get('id'))}** ({_cell(verdict)}): {detail}. {_cell(item.get('notes', ''))}")
    return lines or ["* none"]


def render(full: dict[str, Any], quick: dict[str, Any] | None = None) -> str:
    """The Markdown of docs/claims.md for a full run's results (and a quick run's, shown beside)."""
    if not isinstance(full, dict) or not isinstance(full.get("claims"), list):
        raise ValueError("the full results must be a claims results object with a 'claims' list")
    quick_items = _by_id(quick)
    lines = [_INTRO, "## Verdicts", "",
             f"Full run: {_environment(full)}. Verdicts: {_cell(_counts(full))}.", ""]
    if quick:
        lines += [f"Quick run: {_environment(quick)}. Verdicts: {_cell(_counts(quick))}.", ""]
    lines += _verdict_table(full, quick) + [""]
    for group, title in (("claim", "Claims"), ("reproduction", "Classic results reproduced")):
        items = [item for item in full["claims"] if item.get("group", "claim") == group]
        if items:
            lines += [f"## {title}", ""]
            for item in items:
                lines += _claim(item, quick_items.get(str(item.get("id"))))
    lines += _protocol_amendments(full)
    lines += ["## Where a claim is not supported, inconclusive or invalid (full run)", ""]
    lines += _not_supported(full)
    return "\n".join(lines).rstrip() + "\n"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no claims results at {path}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a claims results object")
    return data


def main(argv: list[str] | None = None) -> int:
    """Write docs/claims.md from the committed results, or (``--check``) exit 1 when it is out of date."""
    parser = argparse.ArgumentParser(prog="python -m initlab.lab.claims.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", type=Path, default=FULL_RESULTS, help=f"full-run results (default {FULL_RESULTS})")
    parser.add_argument("--quick", type=Path, default=QUICK_RESULTS,
                        help=f"quick-run results (default {QUICK_RESULTS})")
    parser.add_argument("--out", type=Path, default=PAGE, help=f"the page to write (default {PAGE})")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    page = render(_load(args.full), _load(args.quick) if args.quick.exists() else None)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != page:
            print(f"{args.out} differs from what {args.full} and {args.quick} give; run "
                  "python -m initlab.lab.claims.docs", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
