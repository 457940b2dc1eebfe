"""Ready plans: named rule sets for the usual inits, and the plans registered stages make.

``NAMED_PLANS`` maps a name to its string form and a one-line description.
A registered data-driven stage (:mod:`initlab.plan.stages`) is a ready plan
too: its base rules, then the stage (``"lsuv"`` is ``"orthogonal; bias=zeros;
stage=lsuv"``). A registered *recipe* (:mod:`initlab.plan.recipes`: the init
of a model family, ``gpt2``, ``llama``, ...) is a ready plan whose rules are
written from knobs read from the model (depth, width, initializer range) or
given in the plan string (``gpt2(n_layer=48, std=0.01)``).
docs/plans.md lists what each ready plan does, docs/recipes.md the recipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from initlab.plan import stages

__all__ = ["NAMED_PLANS", "IMPLICIT_RULES", "DEFAULT_STAGE_BASE", "named_plans", "named_plan_text",
           "RECIPES", "RecipeLike", "register_recipe"]


class RecipeLike(Protocol):
    """What the catalogue needs of a recipe (``initlab.plan.recipes.Recipe`` is the one implementation)."""

    @property
    def name(self) -> str:
        """The ready plan's name (``gpt2``)."""
        ...

    @property
    def summary(self) -> str:
        """Its line in ``named_plans()``."""
        ...

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The given knobs, checked: unknown names and wrong kinds are a ValueError."""
        ...

    def read_knobs(self, model: Any, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every knob: given ones first, then read from ``model``, then the defaults."""
        ...

    def plan_text(self, knobs: Mapping[str, Any]) -> str:
        """The plan string of the recipe for these knobs (ValueError when one it needs is missing)."""
        ...

    def describe(self) -> str:
        """What the recipe does, its knobs and the sources it reproduces."""
        ...


# name -> recipe; filled by initlab.plan.recipes when initlab.plan is imported
RECIPES: dict[str, RecipeLike] = {}


def register_recipe(recipe: RecipeLike) -> RecipeLike:
    """Add ``recipe`` to the ready plans under ``recipe.name`` (replacing one of that name)."""
    if recipe.name in NAMED_PLANS:
        raise ValueError(f"recipe name {recipe.name!r} is already a ready plan")
    RECIPES[recipe.name] = recipe
    return recipe

# name -> (string form, one-line description)
NAMED_PLANS: dict[str, tuple[str, str]] = {
    "torch_default": ("module_default; bias=module_default", "what each torch.nn module's reset_parameters draws, recomputed"),
    "lecun": ("lecun_normal; bias=zeros", "LeCun normal, Var = 1/fan_in (LeCun et al. 1998)"),
    "glorot": ("glorot_uniform; bias=zeros", "Glorot/Xavier uniform, Var = 2/(fan_in + fan_out) (Glorot & Bengio 2010)"),
    "xavier": ("glorot_uniform; bias=zeros", "same as glorot"),
    "he": ("he_normal; bias=zeros", "He/Kaiming normal, Var = 2/fan_in (He et al. 2015)"),
    "kaiming": ("he_normal; bias=zeros", "same as he"),
    "orthogonal": ("orthogonal; bias=zeros", "orthogonal weights (Saxe et al. 2014)"),
    "auto": ("auto; bias=zeros; output=lecun_normal", "gain of the activation that follows each layer; output layer gain 1"),
    "fixup": (
        "he_normal; bias=zeros; output=zeros; residual_last=zeros; residual=fixup",
        "Fixup: zero the last layer of each residual branch and the output layer, scale the others by L^(-1/(2m-2))",
    ),
    "skipinit": ("he_normal; bias=zeros; scalar=zeros", "SkipInit: He init, residual scalars zero (De & Smith 2020)"),
    "rezero": ("glorot_uniform; bias=zeros; scalar=zeros", "ReZero: Glorot init, residual scalars zero (Bachlechner et al. 2020)"),
    "mup": (
        "lecun_normal; bias=zeros; output=mup_output; embedding=normal(mean=0.0, std=1.0)",
        "muP (Tensor Programs V): input and hidden Var = 1/fan_in, output Var = 1/fan_in^2, embeddings N(0, 1)",
    ),
}

# the rules every plan ends with
IMPLICIT_RULES = "bias=zeros; norm_scale=ones; norm_shift=zeros; activation=module_default"

# the ready plan whose rules a stage registered without a base runs first
DEFAULT_STAGE_BASE = "auto"


def named_plans() -> dict[str, str]:
    """{name: description} of the ready plans, the recipes, then the plans that registered stages make."""
    found = {name: description for name, (_, description) in NAMED_PLANS.items()}
    found.update((name, recipe.summary) for name, recipe in RECIPES.items())
    for name in stages.list_stages():
        found.setdefault(name, stages.get_stage(name).description)
    return found


def named_plan_text(name: str) -> str | None:
    """The string form of a ready plan, or ``"<base>; stage=<name>"`` for a registered stage; else None."""
    if name in NAMED_PLANS:
        return NAMED_PLANS[name][0]
    if not isinstance(name, str) or name not in stages.list_stages():
        return None
    stage = stages.get_stage(name)
    base = NAMED_PLANS[DEFAULT_STAGE_BASE][0] if stage.base is None else stage.base
    return f"{base}; stage={name}"
