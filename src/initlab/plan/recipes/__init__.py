"""Recipes: the inits of real model families as ready plans, written from knobs read from the model.

======================  ==============================================================================
plan                    reproduces
======================  ==============================================================================
``gpt2``                Hugging Face ``GPT2PreTrainedModel._init_weights`` and nanoGPT
``llama``               Hugging Face ``LlamaPreTrainedModel`` (``PreTrainedModel._init_weights``)
``torchtitan``          torchtitan's LLaMA (``depth_init``, output cut at 3 sigma, embeddings N(0, 1))
``bert``                Hugging Face ``BertPreTrainedModel._init_weights``
``vit_timm``            timm ``VisionTransformer`` weight-init mode '' (trunc_normal 0.02)
``vit_jax``             timm mode 'jax' (Xavier, zero head, LeCun-normal patch conv)
``vit_moco``            timm mode 'moco' (MoCo v3: q/k/v bounds from their own fans)
``resnet``              torchvision ``ResNet`` (Kaiming normal fan_out, ``zero_init_residual``)
``megatron``            Megatron-LM (N(0, sigma), output projections sigma / sqrt(2 L))
``neox``                GPT-NeoX (``small_init``, ``wang_init``)
``t_fixup``             T-Fixup (Huang et al. 2020)
``deepnet``             DeepNet / DeepNorm init (Wang et al. 2022)
======================  ==============================================================================

Each module holds one family; each recipe is registered into the ready-plan
catalogue (:func:`initlab.plan.catalogue.register_recipe`) when
``initlab.plan`` is imported. ``initlab describe --plan NAME`` prints a
recipe's rules, knobs and sources; docs/recipes.md says which to pick and
which known mistakes each one avoids.

>>> import torch, initlab
>>> blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(8, 8)) for _ in range(4))
>>> initlab.plan.Plan.parse("gpt2").bind(torch.nn.ModuleDict({"h": blocks}))
Plan(rules=(), default=None, base='gpt2(std=0.02, n_layer=4)', stages=())
"""

from initlab.plan.catalogue import register_recipe
from initlab.plan.recipes import values
from initlab.plan.recipes.base import Knob, Recipe
from initlab.plan.recipes.bert import BERT
from initlab.plan.recipes.deep import DEEPNET, T_FIXUP
from initlab.plan.recipes.gpt import GPT2, MEGATRON, NEOX
from initlab.plan.recipes.llama import LLAMA, TORCHTITAN
from initlab.plan.recipes.resnet import RESNET
from initlab.plan.recipes.vit import VIT_JAX, VIT_MOCO, VIT_TIMM

__all__ = ["Recipe", "Knob", "RECIPE_LIST", "values"]

RECIPE_LIST: tuple[Recipe, ...] = (GPT2, LLAMA, TORCHTITAN, BERT, VIT_TIMM, VIT_JAX, VIT_MOCO, RESNET, MEGATRON,
                                   NEOX, T_FIXUP, DEEPNET)

for _recipe in RECIPE_LIST:
    register_recipe(_recipe)
del _recipe
