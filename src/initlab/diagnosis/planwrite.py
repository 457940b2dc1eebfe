"""Plan lines: the scheme string that regenerates a fitted distribution, and rules grouped over repeated blocks.

Every rule selects parameters by name, so ``init_model(model, plan=...)``
applies each tensor's own distribution whatever its module type. Names that
differ only in a block index (``h.0.mlp.c_fc.weight``, ``h.1.mlp.c_fc.weight``)
share one glob rule (``h.*.mlp.c_fc.weight``) when their schemes are equal and
the glob selects exactly them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence

from initlab.diagnosis.fit import Fit
from initlab.diagnosis.values import rule

__all__ = ["scheme_of", "group_rules", "plan_yaml", "number"]


def number(value: float) -> str:
    """A float as a short literal that the scheme parser reads back (6 significant digits)."""
    if value == 0:
        return "0.0"
    text = f"{value:.6g}"
    return text if any(ch in text for ch in ".en") else f"{text}.0"


def scheme_of(fit: Fit) -> str:
    """The initlab scheme string that draws values from ``fit``'s distribution."""
    p = fit.parameters
    if fit.family in ("zeros", "ones"):
        return fit.family
    if fit.family == "constant":
        return f"constant(value={number(p['value'])})"
    if fit.family in ("identity", "dirac", "orthogonal"):
        return f"{fit.family}(gain={number(p['gain'])})"
    if fit.family == "sparse":
        return f"sparse(sparsity={number(p['fraction'])}, std={number(p['std'])})"
    if fit.family == "uniform":
        return f"uniform(a={number(p['a'])}, b={number(p['b'])})"
    if fit.family == "truncated_normal":
        return (
            f"truncated_normal(mean={number(p['mean'])}, std={number(p['sigma'])}, "
            f"a={number(p['a'])}, b={number(p['b'])})"
        )
    return f"normal(mean={number(p['mean'])}, std={number(p['std'])})"


def _pattern(name: str) -> str:
    return re.sub(r"(^|\.)\d+(?=\.)", r"\1*", name)


def group_rules(
    entries: Sequence[tuple[str, str, str]], all_names: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(key, scheme, comment) rules for (name, scheme, comment) entries, one glob per repeated layer where exact."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for entry in entries:
        groups.setdefault(_pattern(entry[0]), []).append(entry)
    rules: list[tuple[str, str, str]] = []
    emitted: set[str] = set()
    for name, scheme, comment in entries:
        if name in emitted:
            continue
        pattern = _pattern(name)
        members = groups[pattern]
        same = len(members) > 1 and len({s for _, s, _ in members}) == 1
        selected = {n for n in all_names if fnmatch.fnmatchcase(n, pattern)} if same else set()
        if same and selected == {n for n, _, _ in members}:
            rules.append((pattern, scheme, f"{comment} (x{len(members)})" if comment else f"x{len(members)}"))
            emitted.update(n for n, _, _ in members)
            continue
        key = rule(name, "").rstrip("=")
        rules.append((key, scheme, comment))
        emitted.add(name)
    return rules


def plan_yaml(rules: Sequence[tuple[str, str, str]], header: Sequence[str] = ()) -> str:
    """The rules as a YAML mapping, one line each, the comment after it (``Plan.from_file`` reads it)."""
    import yaml

    lines = [f"# {line}" for line in header]
    for key, scheme, comment in rules:
        line = yaml.safe_dump({key: scheme}, default_flow_style=False, width=10_000, sort_keys=False).strip()
        lines.append(f"{line}  # {comment}" if comment else line)
    return "\n".join(lines) + "\n"


def rules_as_dict(rules: Sequence[tuple[str, str, str]]) -> Mapping[str, str]:
    return {key: scheme for key, scheme, _ in rules}
