"""Plans: ordered rules that map a model's parameters to schemes.

String form (the dict and file forms hold the same items)::

    "he_normal; bias=zeros; output=zeros"
    "he; Conv.bias=zeros; encoder.*.weight=orthogonal; stage=lsuv(tol=0.05)"

Items are separated by ``;``. ``KEY=SCHEME`` is a rule; the first rule that
matches a parameter (block) wins. A bare item is the plan's default: either a
scheme, applied to every weight-like parameter (roles weight, embedding,
recurrent) after all rules, or a named plan whose rules come after the ones
written here. ``stage=NAME(options)`` runs a data-driven stage after the
rules. After everything come the implicit defaults ``bias=zeros;
norm_scale=ones; norm_shift=zeros; activation=module_default``; parameters
still unmatched are left untouched and listed as such in the report.

A KEY is

* a role (``bias``, ``output``, ``recurrent``, ... see ``ROLES``);
* a module type or family, alone (``Conv``: the non-bias parameters of those
  modules or of modules inside them) or with a role (``Conv.bias``,
  ``LSTM.recurrent``); families: Linear, Bilinear, Conv, ConvTranspose,
  Embedding, Norm, MultiheadAttention, RNN, LSTM, GRU, Recurrent; any
  ``torch.nn`` class name works too (``Conv2d``, ``BatchNorm1d``);
* a glob on the qualified parameter name (``encoder.*.weight``,
  ``name:alpha`` for names without a dot).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from initlab.plan.catalogue import (
    IMPLICIT_RULES,
    NAMED_PLANS,
    RECIPES,
    named_plan_text,
    named_plans,
)
from initlab.plan.files import is_plan_file_name, read_plan_file, write_plan_file
from initlab.plan.targets import (
    GRAPH_ROLES,
    MODULE_FAMILIES,
    ROLES,
    Block,
    Target,
    module_family_types,
)
from initlab.plan.values import (
    PLAN_SCHEMES,
    Auto,
    Fixup,
    PlanValue,
    SchemeValue,
    parse_call,
    parse_value,
)
from initlab.schemes import Initializer, get, strings

__all__ = ["Rule", "Plan", "StageSpec", "PlanLike"]

_WEIGHT_LIKE = frozenset({"weight", "embedding", "recurrent"})
_BIAS_LIKE = frozenset({"bias", "norm_shift", "output_bias", "forget_bias"})

# -- selectors ---------------------------------------------------------------------------------
def _selector(key: str) -> tuple[str, str, str | None]:
    """(kind, value, role) for a rule key: role, type (with optional role) or glob."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"a plan rule needs a key (role, module type or name glob), got {key!r}")
    key = key.strip()
    if key in ROLES:
        return "role", key, None
    if key.startswith("name:"):
        return "glob", key[len("name:"):], None
    head, dot, tail = key.partition(".")
    if dot and module_family_types(head) is not None:
        if tail not in ROLES:
            raise ValueError(f"plan rule key {key!r}: unknown role {tail!r}; roles: {', '.join(ROLES)}")
        return "type", head, tail
    if not dot and module_family_types(key) is not None:
        return "type", key, None
    if dot or any(ch in key for ch in "*?["):
        return "glob", key, None
    raise ValueError(
        f"plan rule key {key!r} is not a role, a module type or a name glob; roles: {', '.join(ROLES)}; "
        f"module families: {', '.join(MODULE_FAMILIES)} (or any torch.nn class name); "
        "to match a parameter by name use a glob with '.' or '*', or 'name:NAME'"
    )


@dataclass(frozen=True)
class Rule:
    """``key=value``: the parameters the key selects get the value's scheme."""

    key: str
    value: PlanValue

    def __post_init__(self) -> None:
        _selector(self.key)

    @functools.cached_property
    def selector(self) -> tuple[str, str, str | None]:
        return _selector(self.key)

    def matches(self, target: Target, block: Block) -> bool:
        kind, value, role = self.selector
        if kind == "role":
            return value in block.roles
        if kind == "glob":
            return any(fnmatch.fnmatchcase(name, value) for name in (target.name, *target.aliases))
        types = module_family_types(value) or ()
        if not any(isinstance(m, types) for m in target.ancestors):
            return False
        if role is not None:
            return role in block.roles
        return not (block.roles & _BIAS_LIKE)

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class DefaultRule(Rule):
    """The bare scheme of a plan: every weight-like parameter (weight, embedding, recurrent)."""

    def __post_init__(self) -> None:
        pass

    def matches(self, target: Target, block: Block) -> bool:
        return bool(block.roles & _WEIGHT_LIKE)

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class StageSpec:
    """A data-driven stage run after the rules: name and keyword options."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        if not self.options:
            return self.name
        inner = ", ".join(f"{key}={value!r}" for key, value in self.options)
        return f"{self.name}({inner})"

    @classmethod
    def parse(cls, value: Any) -> StageSpec:
        if isinstance(value, StageSpec):
            return value
        if isinstance(value, Mapping):
            options = dict(value)
            if "name" not in options:
                raise ValueError(f"a stage given as a dict needs a 'name' key, got {sorted(options)}")
            name = str(options.pop("name"))
            return cls(name, tuple(options.items()))
        if not isinstance(value, str):
            raise TypeError(f"a stage is given as 'NAME(key=value, ...)' or a dict, got {type(value).__name__}")
        name, options = parse_call(value, "stage")
        return cls(name, tuple(options.items()))


# -- plans ---------------------------------------------------------------------------------------
def _split_items(text: str) -> list[str]:
    items, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in ";\n" and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def _key_of(item: str) -> tuple[str | None, str]:
    """Split ``KEY=VALUE`` at the first '=' that comes before any '('."""
    equals, paren = item.find("="), item.find("(")
    if equals == -1 or (paren != -1 and paren < equals):
        return None, item
    return item[:equals].strip(), item[equals + 1:].strip()


def _is_scheme(name: str) -> bool:
    try:
        get(name)
    except (ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Plan:
    """Ordered rules, a default (scheme or named plan) and data-driven stages.

    >>> plan = Plan.parse("he_normal; bias=zeros; output=zeros")
    >>> str(plan)
    'he_normal; bias=zeros; output=zeros'
    >>> Plan.parse(str(plan)) == plan
    True
    """

    rules: tuple[Rule, ...] = ()
    default: PlanValue | None = None
    base: str | None = None
    stages: tuple[StageSpec, ...] = ()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def coerce(cls, plan: PlanLike) -> Plan:
        """A Plan from a Plan, a plan string or name, a dict, a scheme, or a path to a YAML/TOML/JSON file."""
        if isinstance(plan, Plan):
            return plan
        if isinstance(plan, os.PathLike):
            return cls.from_file(plan)
        if isinstance(plan, str):
            if is_plan_file_name(plan):
                return cls.from_file(plan)
            return cls.parse(plan)
        if isinstance(plan, Mapping):
            return cls.from_dict(plan)
        if isinstance(plan, PlanValue):
            return cls(default=plan)
        try:
            return cls(default=parse_value(plan, "plan"))
        except TypeError:
            raise TypeError(
                "plan must be a Plan, a plan string or name, a dict, a scheme or a path to a "
                f"YAML/TOML/JSON file, got {type(plan).__name__}"
            ) from None

    @classmethod
    def parse(cls, text: str, *, allow_named: bool = True) -> Plan:
        """A plan from its string form (see the module docstring)."""
        if not isinstance(text, str):
            raise TypeError(f"a plan string must be a str, got {type(text).__name__}")
        items = _split_items(text)
        if not items:
            raise ValueError("empty plan string; give a named plan, a scheme or rules like 'bias=zeros'")
        return cls._build([_key_of(item) for item in items], allow_named, text)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> Plan:
        """A plan from ``{"default": "he_normal", "bias": "zeros", "stage": "lsuv", ...}`` (in order).

        ``"plan"`` (or ``"base"``) names a ready plan to extend; ``"stage"``
        may hold one stage or a list.
        """
        if not isinstance(mapping, Mapping):
            raise TypeError(f"a plan dict must be a mapping, got {type(mapping).__name__}")
        items: list[tuple[str | None, Any]] = []
        for key, value in mapping.items():
            if key in ("default", "plan", "base"):
                items.append((None, value))
            elif key in ("stage", "stages") and isinstance(value, list | tuple):
                items.extend(("stage", stage) for stage in value)
            elif key == "stages":
                items.append(("stage", value))
            else:
                items.append((str(key), value))
        return cls._build(items, True, repr(dict(mapping)))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Plan:
        """A plan from a ``.yaml``/``.yml``, ``.toml`` or ``.json`` file holding the dict form."""
        data = read_plan_file(path)
        if isinstance(data, str):
            return cls.parse(data)
        if not isinstance(data, Mapping):
            raise ValueError(f"plan file {str(path)!r} must hold a mapping of rules, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def _build(cls, items: list[tuple[str | None, Any]], allow_named: bool, source: str) -> Plan:
        rules: list[Rule] = []
        stages: list[StageSpec] = []
        default: PlanValue | None = None
        base: str | None = None
        bare_seen: Any = None
        for key, value in items:
            if key is None:
                if bare_seen is not None:
                    raise ValueError(
                        f"plan {source!r} has two defaults ({bare_seen!r} and {value!r}); a plan has one "
                        "bare scheme or named plan, the other items are KEY=SCHEME rules"
                    )
                bare_seen = value
                base, default = _bare_item(value, source, allow_named)
            elif key == "stage":
                stages.append(StageSpec.parse(value))
            else:
                _refuse_repeated_key(key, rules, source)
                rules.append(Rule(key, parse_value(value, f"plan rule {key}={value}")))
        return cls(tuple(rules), default, base, tuple(stages))

    # -- string, dict and file forms ---------------------------------------------------------
    def __str__(self) -> str:
        items = []
        if self.base is not None:
            items.append(self.base)
        elif self.default is not None:
            items.append(str(self.default))
        items.extend(str(rule) for rule in self.rules)
        items.extend(f"stage={stage}" for stage in self.stages)
        return "; ".join(items)

    def to_dict(self) -> dict[str, Any]:
        """The dict form: ``plan``/``default`` first, then the rules in order, then ``stage``."""
        data: dict[str, Any] = {}
        if self.base is not None:
            data["plan"] = self.base
        elif self.default is not None:
            data["default"] = str(self.default)
        for rule in self.rules:
            data[rule.key] = str(rule.value)
        if self.stages:
            data["stage"] = [str(stage) for stage in self.stages] if len(self.stages) > 1 else str(self.stages[0])
        return data

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the dict form as YAML, TOML or JSON (by suffix); ``Plan.from_file`` reads it back."""
        return write_plan_file(path, self.to_dict())

    # -- what applies --------------------------------------------------------------------------
    def effective_rules(self) -> list[tuple[Rule, str]]:
        """(rule, origin) in matching order: own rules, the named plan's, the default, the implicit ones.

        origin is ``"plan"`` for rules written in this plan, the named plan's
        name for rules it brings, ``"implicit"`` for the implicit defaults.
        """
        found: list[tuple[Rule, str]] = [(rule, "plan") for rule in self.rules]
        if self.base is not None:
            base_name = self.base.split("(", 1)[0]
            found.extend((rule, base_name) for rule, origin in self.expand_base().effective_rules() if origin != "implicit")
        if self.default is not None:
            found.append((DefaultRule("default", self.default), "plan"))
            # a scheme that states what its biases are (edge_of_chaos: N(0, sigma_b2)) brings that rule
            bias_scheme = self.default.scheme.bias_scheme() if isinstance(self.default, SchemeValue) else None
            if bias_scheme is not None:
                found.append((Rule("bias", SchemeValue(bias_scheme)), "plan"))
            elif (bias_value := self.default.bias_value()) is not None:  # mup(base=...) scales biases too
                found.append((Rule("bias", bias_value), "plan"))
        implicit = Plan.parse(IMPLICIT_RULES, allow_named=False)
        found.extend((rule, "implicit") for rule in implicit.rules)
        return found

    def effective_stages(self) -> list[StageSpec]:
        stages = list(self.expand_base().effective_stages()) if self.base is not None else []
        return stages + list(self.stages)

    def expand_base(self) -> Plan:
        """The named plan this plan extends, as a Plan of its own (a recipe's rules from its knobs)."""
        if self.base is None:
            return Plan()
        if _recipe_call(self.base) is not None:
            return _expand_recipe(self.base)
        text = named_plan_text(self.base)
        if text is None:
            raise ValueError(f"unknown named plan {self.base!r}; ready plans: {', '.join(named_plans())}")
        return Plan.parse(text, allow_named=False)

    def bind(self, model: Any) -> Plan:
        """This plan with every knob of its recipe filled in from ``model`` (other plans: unchanged).

        ``Plan.parse("gpt2").bind(model)`` is ``gpt2(std=0.02, n_layer=12)``
        for a 12-layer GPT-2: knobs given in the plan string stay, the others
        are read from ``model.config`` (or counted from its structure), then
        the recipe's defaults. The bound plan's string reproduces the same
        rules on any model.
        """
        recipe_call = _recipe_call(self.base) if self.base is not None else None
        if recipe_call is None:
            return self
        recipe, options = recipe_call
        knobs = recipe.read_knobs(model, options)
        return dataclasses.replace(self, base=_recipe_text(recipe.name, knobs))

    def needs_flow(self) -> bool:
        """Whether any rule needs the model's data flow (output/input/residual roles, auto, fixup)."""
        for rule, _ in self.effective_rules():
            if isinstance(rule.value, Auto | Fixup):
                return True
            if not isinstance(rule, DefaultRule):
                kind, value, role = rule.selector
                if (kind == "role" and value in GRAPH_ROLES) or (role in GRAPH_ROLES):
                    return True
        return False

    def needs_residual(self) -> bool:
        for rule, _ in self.effective_rules():
            if isinstance(rule.value, Fixup):
                return True
            if not isinstance(rule, DefaultRule):
                kind, value, role = rule.selector
                if {value, role} & {"residual", "residual_last"} and kind in ("role", "type"):
                    return True
        return False

    def describe(self) -> str:
        """One line per effective rule, in matching order, with where it comes from.

        A plan built on a recipe starts with the recipe's description (knobs,
        formulas, sources); its rules follow when every knob is known.
        """
        recipe_call = _recipe_call(self.base) if self.base is not None else None
        header = [recipe_call[0].describe(), ""] if recipe_call is not None else []
        try:
            rules = self.effective_rules()
        except ValueError as error:
            if recipe_call is None:
                raise
            return "\n".join([*header, f"plan: {self}", f"  (rules once the knobs are known: {error})"])
        lines = [*header, f"plan: {self}"]
        for rule, origin in rules:
            label = "default (weights, embeddings, recurrent)" if isinstance(rule, DefaultRule) else rule.key
            lines.append(f"  {label:<40} {rule.value}   [{origin}]")
        for stage in self.effective_stages():
            lines.append(f"  then stage {stage}")
        return "\n".join(lines)


def _refuse_repeated_key(key: str, rules: list[Rule], source: str) -> None:
    """A key given twice would leave its second rule dead (the first match wins): say so instead."""
    if any(rule.key.strip() == key.strip() for rule in rules):
        raise ValueError(f"plan {source!r} gives rule key {key.strip()!r} twice; the first would always win: "
                         "give each key once")


# what ``init_model(model, plan=...)`` and ``Plan.coerce`` accept: a Plan, a ready plan name or plan
# string, a path to a plan file, the dict form, a scheme, or a plan-level value
PlanLike: TypeAlias = "Plan | str | os.PathLike[str] | Mapping[str, Any] | Initializer | PlanValue"


def _recipe_text(name: str, options: Mapping[str, Any]) -> str:
    """``NAME`` or ``NAME(knob=value, ...)``, the canonical string of a recipe call."""
    if not options:
        return name
    return f"{name}({', '.join(f'{key}={strings.format_value(value)}' for key, value in options.items())})"


def _recipe_call(text: str) -> tuple[Any, dict[str, Any]] | None:
    """(recipe, checked options) when ``text`` names a recipe (``gpt2``, ``gpt2(n_layer=48)``), else None."""
    head = text.split("(", 1)[0].strip()
    if head not in RECIPES:
        return None
    name, args, options = strings.parse_call(text, f"ready plan {head}")
    if args:
        raise ValueError(f"ready plan {text!r}: knobs are given as key=value, got positional values")
    recipe = RECIPES[name]
    return recipe, recipe.options(options)


@functools.lru_cache(maxsize=64)
def _expand_recipe(text: str) -> Plan:
    """The rules of a recipe call (a plan is parsed once per knob values: recipes write a hundred rules)."""
    call = _recipe_call(text)
    assert call is not None
    recipe, options = call
    return Plan.parse(recipe.plan_text(options), allow_named=False)


def _bare_item(value: Any, source: str, allow_named: bool) -> tuple[str | None, PlanValue | None]:
    """(named plan, None) or (None, default scheme) for the bare item of a plan."""
    if not (allow_named and isinstance(value, str)):
        return None, parse_value(value, f"plan {source!r}")
    name = value.strip()
    recipe_call = _recipe_call(name)
    if recipe_call is not None:
        recipe, options = recipe_call
        return _recipe_text(recipe.name, options), None
    if name in NAMED_PLANS:
        return name, None
    head = name.split("(", 1)[0].strip()
    if head in PLAN_SCHEMES or "(" in name or _is_scheme(name):
        return None, parse_value(name, f"plan {source!r}")
    if named_plan_text(name) is not None:
        return name, None
    raise ValueError(
        f"plan {source!r}: {name!r} is neither a ready plan ({', '.join(named_plans())}), a scheme "
        "(initlab.list_schemes()) nor a registered data-driven stage"
    )
