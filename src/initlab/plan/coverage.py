"""What a plan would skip, said aloud: parameters no rule covers, and rules that cannot read a layout.

``init_model`` lists every such finding in ``InitReport.warnings`` (one line
per kind of parameter, naming the first few), or, with ``strict=True``,
raises them as one ``ValueError`` before anything is written:

* a parameter (or a block of a packed one) that no rule matched keeps
  whatever values it had (uninitialised memory after ``torch.empty``, the
  meta device, or a library's own init);
* a parameter of role ``other`` (a module type initlab has no layout for)
  matched by a rule whose scheme uses fans: the fans were read as if the
  tensor were ``linear`` (out, in), a guess;
* a rule whose plan-level scheme could fill the tensor only in part of what
  it promises (it says why, e.g. a packed q/k/v projection whose value block
  cannot be told apart).
"""

from __future__ import annotations

from collections.abc import Sequence

from initlab.plan.targets import Target
from initlab.plan.values import Resolved

__all__ = ["coverage_findings"]

# names listed per finding; the rest are counted
_SHOWN = 4


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _kind(target: Target) -> str:
    return f"{type(target.module).__name__}.{target.local_name}"


def _uncovered_advice(kind: str, roles: str, example: str) -> str:
    if roles == "other":
        module_type, _, local = kind.partition(".")
        return (f"initlab does not know the layout of {kind}: teach it with "
                f"initlab.register_layout({module_type}, {local!r}, layout, role=...), or add a rule such as "
                f"'name:{example}=normal(std=0.02)'")
    return f"add a rule for role {roles} (e.g. '{roles.split(',')[0]}=...') or for the name ('name:{example}=...')"


def coverage_findings(decided: Sequence[tuple[Target, str, Sequence[Resolved | None]]]) -> list[str]:
    """One line per kind of silent skip in ``decided`` ((target, status, resolved block by block))."""
    uncovered: dict[tuple[str, str], list[str]] = {}
    partial: list[str] = []
    guessed: dict[str, list[str]] = {}
    said: dict[str, list[str]] = {}
    for target, status, resolved in decided:
        if status == "untouched":
            roles = ",".join(sorted(target.roles))
            uncovered.setdefault((_kind(target), roles), []).append(target.name)
            continue
        if status != "initialized":
            continue
        missing = [block.label or str(block.index) for block, r in zip(target.blocks, resolved) if r is None]
        if missing:
            partial.append(f"{target.name} (blocks {', '.join(missing)})")
        for block, r in zip(target.blocks, resolved):
            if r is None:
                continue
            if r.warning:
                said.setdefault(r.warning, []).append(target.name)
            if r.scheme is not None and r.scheme.uses_fans and "other" in block.roles:
                guessed.setdefault(_kind(target), []).append(target.name)
    findings = []
    for (kind, roles), names in uncovered.items():
        findings.append(f"{len(names)} parameter(s) of {kind} (role {roles}) matched no rule and keep the values they "
                        f"had: {_names(names)}; {_uncovered_advice(kind, roles, names[0])}")
    if partial:
        findings.append(f"blocks of packed parameters matched no rule and keep the values they had: {_names(partial)}")
    for kind, names in guessed.items():
        module_type, _, local = kind.partition(".")
        findings.append(f"the layout of {kind} is unknown, so the fans of {_names(names)} were read as linear "
                        f"(out, in), a guess; declare it with initlab.register_layout({module_type}, {local!r}, layout)")
    for warning, names in said.items():
        findings.append(f"{_names(names)}: {warning}")
    return findings
