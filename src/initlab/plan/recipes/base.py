"""A recipe: the init of a model family as a ready plan written from a few knobs.

A :class:`Recipe` turns knobs (depth, width, initializer range, ...) into a
plan string. Each knob is, in order of preference,

1. given in the plan string: ``gpt2(n_layer=48, std=0.01)``;
2. read from the model's ``config`` (Hugging Face ``PretrainedConfig``,
   nanoGPT's ``GPTConfig``), ``model_args`` (torchtitan) or ``args``, under
   the attribute names the knob lists;
3. counted from the model's structure (the number of repeated blocks, the
   width of the first embedding or layer);
4. the recipe's default (the value the defining library uses).

A knob with none of these is a ValueError naming the knob and how to give it.
``Plan.bind(model)`` fills the knobs in (``init_model`` does it), so the
report's plan string (``gpt2(std=0.02, n_layer=12)``) reproduces the same
rules on any model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.plan.targets import is_weight_layer

__all__ = ["Knob", "Recipe", "config_value", "count_layers", "count_width", "repeated_blocks"]

# attributes of a model that hold its hyperparameters, in the order they are read
_HOLDERS = ("config", "model_args", "args")

KnobValue = bool | int | float | str
Rules = list[tuple[str | None, str]]


def _fits(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def config_value(model: nn.Module, names: tuple[str, ...], kind: type) -> tuple[KnobValue, str] | None:
    """(value, where it was read) of the first of ``names`` found on the model's config holders, or None."""
    for holder_name in _HOLDERS:
        holder = getattr(model, holder_name, None)
        if holder is None or isinstance(holder, nn.Module | torch.Tensor):
            continue
        for name in names:
            value = holder.get(name) if isinstance(holder, Mapping) else getattr(holder, name, None)
            if value is not None and _fits(value, kind):
                return (float(value) if kind is float else value), f"{holder_name}.{name}"
    return None


def _holds_layers(module: nn.Module) -> bool:
    return any(is_weight_layer(sub) or isinstance(sub, nn.Embedding) for sub in module.modules() if sub is not module)


def repeated_blocks(model: nn.Module) -> list[tuple[str, int]]:
    """(qualified name, number of blocks) of every list of repeated blocks in ``model``.

    A list of blocks is an ``nn.ModuleList``, ``nn.ModuleDict`` or
    ``nn.Sequential`` whose children all have one type and each hold layers
    of their own (a transformer's blocks, a ResNet stage's residual blocks).
    """
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList | nn.ModuleDict | nn.Sequential):
            continue
        children = list(module.children())
        if children and len({type(child) for child in children}) == 1 and all(map(_holds_layers, children)):
            found.append((name, len(children)))
    return found


def count_layers(model: nn.Module, within: str = "") -> int | None:
    """The number of blocks in the longest list of repeated blocks (whose name contains ``within``)."""
    counts = [count for name, count in repeated_blocks(model) if within in name]
    return max(counts) if counts else None


def count_width(model: nn.Module) -> int | None:
    """The model width: the dimension of the first embedding, else the input size of the first layer."""
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            return int(module.embedding_dim)
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if is_weight_layer(module) and isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            return int(weight.shape[1])
    return None


@dataclass(frozen=True)
class Knob:
    """A number a recipe's rules depend on, and where it is read from."""

    name: str
    description: str
    kind: type = float
    default: KnobValue | None = None
    config: tuple[str, ...] = ()
    count: Callable[[nn.Module], KnobValue | None] | None = None
    counted: str = ""  # how ``count`` reads it, for describe
    # the range of a numeric knob: "positive" (> 0: depths, widths, stds), "nonnegative" (>= 0: a
    # stack that may be absent) or "any" (a bias)
    sign: str = "positive"

    def check(self, recipe: str, value: KnobValue, where: str) -> None:
        """ValueError when a numeric value lies outside the knob's range (``where``: given, or read from where)."""
        if self.kind not in (int, float) or self.sign == "any" or isinstance(value, bool | str):
            return
        if value > 0 or (self.sign == "nonnegative" and value == 0):
            return
        wanted = "> 0" if self.sign == "positive" else ">= 0"
        raise ValueError(f"ready plan {recipe}: knob {self.name} ({self.description}) must be {wanted}, "
                         f"got {value!r} ({where})")

    def source(self) -> str:
        """Where the knob comes from, in words."""
        places = [f"config.{'/'.join(self.config)}"] if self.config else []
        if self.count is not None:
            places.append(self.counted or "counted from the model")
        if self.default is not None:
            places.append(f"default {self.default!r}")
        return ", else ".join(places) if places else "must be given"


@dataclass(frozen=True)
class Recipe:
    """The init of a model family: knobs, the rules they give, and the sources the rules reproduce."""

    name: str
    summary: str
    knobs: tuple[Knob, ...]
    rules: Callable[[Mapping[str, Any]], Rules]
    formulas: tuple[tuple[str, str], ...]
    sources: tuple[str, ...]
    pitfalls: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def _knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise ValueError(f"ready plan {self.name}: unknown knob {name!r}; knobs: {', '.join(k.name for k in self.knobs)}")

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The knobs given in a plan string, checked and in the recipe's knob order."""
        checked: dict[str, Any] = {}
        for name, value in given.items():
            knob = self._knob(name)
            if not _fits(value, knob.kind):
                kind = {bool: "True or False", int: "an integer", float: "a finite number", str: "a name"}[knob.kind]
                raise ValueError(f"ready plan {self.name}: knob {name} must be {kind}, got {value!r}")
            knob.check(self.name, value, "given in the plan")
            checked[name] = float(value) if knob.kind is float else value
        return {knob.name: checked[knob.name] for knob in self.knobs if knob.name in checked}

    def read_knobs(self, model: nn.Module, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every knob: given, else from the model's config, else counted, else the default."""
        knobs = dict(self.options(given))
        for knob in self.knobs:
            if knob.name in knobs:
                continue
            found = config_value(model, knob.config, knob.kind) if knob.config else None
            value, where = found if found is not None else (None, "")
            if value is None and knob.count is not None:
                value, where = knob.count(model), "counted from the model"
            if value is None:
                value, where = knob.default, "the default"
            if value is None:
                raise ValueError(
                    f"ready plan {self.name} needs knob {knob.name} ({knob.description}), which could not be read "
                    f"from the model ({knob.source()}); give it in the plan string: {self.name}({knob.name}=...)"
                )
            knob.check(self.name, value, f"read from {where}" if found is not None else where)
            knobs[knob.name] = float(value) if knob.kind is float else value
        return {knob.name: knobs[knob.name] for knob in self.knobs}

    def plan_text(self, knobs: Mapping[str, Any]) -> str:
        """The plan string for ``knobs`` (defaults fill the missing ones; a knob without a default must be given)."""
        values = dict(self.options(knobs))
        for knob in self.knobs:
            if knob.name not in values:
                if knob.default is None:
                    raise ValueError(
                        f"ready plan {self.name} reads knob {knob.name} ({knob.description}) from the model: "
                        f"init_model(model, {self.name!r}) reads it, or write {self.name}({knob.name}=...)"
                    )
                values[knob.name] = knob.default
        return "; ".join(value if key is None else f"{key}={value}" for key, value in self.rules(values))

    def describe(self) -> str:
        """The recipe in words: formulas, knobs, sources and the pitfalls it avoids."""
        lines = [f"{self.name}: {self.summary}", "  rules (first match wins; biases 0, norms 1 and 0 unless stated):"]
        width = max(len(which) for which, _ in self.formulas)
        lines.extend(f"    {which:<{width}}  {formula}" for which, formula in self.formulas)
        lines.append("  knobs:")
        lines.extend(f"    {knob.name}: {knob.description}; {knob.source()}" for knob in self.knobs)
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append("  reproduces:")
        lines.extend(f"    {source}" for source in self.sources)
        if self.pitfalls:
            lines.append("  avoids:")
            lines.extend(f"    {pitfall}" for pitfall in self.pitfalls)
        return "\n".join(lines)


def number(value: float) -> str:
    """A float as it stands in a plan string (repr keeps it exact)."""
    return repr(float(value))
