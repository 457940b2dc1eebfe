"""Whole-model initialization: plans, automatic gains, refactor-stable seeding, meta-device materialization.

>>> import torch, initlab
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
>>> report = initlab.init_model(model, plan="auto", seed=0)
>>> round(report["0.weight"].gain ** 2, 6)
2.0

See docs/plans.md for the rule syntax, the ready plans and the exact rules
each one applies, docs/recipes.md for the inits of model families (``gpt2``,
``llama``, ``bert``, ``resnet``, ...).
"""

from initlab.plan import mup, recipes, stages
from initlab.plan.advice import ADVICE, Advice, Recommendation, recommend
from initlab.plan.apply import RNG_KINDS, init_model
from initlab.plan.catalogue import IMPLICIT_RULES, NAMED_PLANS, RECIPES, named_plans
from initlab.plan.graph import DataFlow, analyze, find_activations, output_layer
from initlab.plan.layouts import register_layout
from initlab.plan.report import STATUSES, InitReport, InitRow
from initlab.plan.rules import Plan, PlanLike, Rule, StageSpec
from initlab.plan.stages import get_stage, list_stages, register_stage
from initlab.plan.targets import MODULE_FAMILIES, ROLES, Block, Target, collect_targets
from initlab.plan.values import PLAN_SCHEMES

__all__ = [
    "init_model",
    "mup",
    "recommend",
    "Recommendation",
    "Advice",
    "ADVICE",
    "Plan",
    "PlanLike",
    "Rule",
    "StageSpec",
    "InitReport",
    "InitRow",
    "STATUSES",
    "find_activations",
    "output_layer",
    "analyze",
    "DataFlow",
    "register_stage",
    "get_stage",
    "list_stages",
    "stages",
    "named_plans",
    "NAMED_PLANS",
    "RECIPES",
    "recipes",
    "register_layout",
    "IMPLICIT_RULES",
    "ROLES",
    "MODULE_FAMILIES",
    "PLAN_SCHEMES",
    "RNG_KINDS",
    "Block",
    "Target",
    "collect_targets",
]
