"""GPT-style decoders: GPT-2 (Hugging Face, nanoGPT), Megatron-LM, GPT-NeoX.

All three draw every weight and embedding from a zero-mean normal and scale
down the residual output projections (the attention output and the MLP
output, whose results are added to the residual stream) with depth:

* ``gpt2``: N(0, std^2), residual outputs (``c_proj``) N(0, std^2 / (2 L))
  (Radford et al. 2019: "scale the weights of residual layers at
  initialization by a factor of 1/sqrt(N)", N = 2L residual layers);
* ``megatron``: N(0, sigma^2), residual outputs N(0, sigma^2 / (2 L))
  (Shoeybi et al. 2019; ``scaled_init_method_normal``);
* ``neox``: ``small_init`` N(0, 2 / (5 d)) (Nguyen & Salazar 2019) and, for
  the residual outputs, ``wang_init`` N(0, (2 / (L sqrt(d)))^2) (Wang 2021,
  Mesh Transformer JAX), the Pythia defaults.

Biases are 0 and LayerNorms 1 and 0 in all three.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from initlab.plan.recipes.base import Knob, Recipe, Rules, count_layers, count_width, number
from initlab.plan.recipes.names import RESIDUAL_OUTPUT, globs

__all__ = ["GPT2", "MEGATRON", "NEOX"]

_N_LAYER = Knob(
    "n_layer", "number of transformer blocks L", int, None,
    config=("n_layer", "num_hidden_layers", "num_layers", "n_layers"),
    count=count_layers, counted="the number of repeated blocks",
)
_WIDTH = Knob(
    "hidden", "model width d", int, None,
    config=("hidden_size", "n_embd", "d_model", "dim"),
    count=count_width, counted="the first embedding's dimension",
)


def _gpt2_rules(knobs: Mapping[str, Any]) -> Rules:
    std, layers = knobs["std"], knobs["n_layer"]
    residual = std / math.sqrt(2 * layers)
    return [("*.c_proj.weight", f"normal(std={number(residual)})"), (None, f"normal(std={number(std)})")]


GPT2 = Recipe(
    name="gpt2",
    summary="GPT-2: N(0, 0.02) weights and embeddings, residual projections c_proj N(0, 0.02/sqrt(2 n_layer))",
    knobs=(
        Knob("std", "std of weights and embeddings", float, 0.02, config=("initializer_range",)),
        _N_LAYER,
    ),
    rules=_gpt2_rules,
    formulas=(
        ("*.c_proj.weight", "N(0, (std / sqrt(2 n_layer))^2): attention and MLP output projections"),
        ("other weights, embeddings", "N(0, std^2) (HF Conv1D read as linear_t, tied lm_head once)"),
    ),
    sources=(
        "transformers 5.24.0 src/transformers/models/gpt2/modeling_gpt2.py, GPT2PreTrainedModel._init_weights "
        "(and PreTrainedModel._init_weights in src/transformers/modeling_utils.py)",
        "karpathy/nanoGPT@3adf61e154c3fe3fca428ad6bc3818b27a3b8291 model.py, GPT.__init__ (c_proj.weight "
        "std 0.02/sqrt(2 n_layer)) and GPT._init_weights (Linear, Embedding N(0, 0.02), biases 0)",
    ),
    pitfalls=(
        "huggingface/transformers#47458: the 1/sqrt(2 n_layer) scaling of c_proj was not applied (transformers "
        "5.14.1); this plan applies it whatever the library version",
        "Conv1D stores (in, out): schemes that use fans (he, glorot) need layout linear_t, not linear",
    ),
)


def _megatron_rules(knobs: Mapping[str, Any]) -> Rules:
    std, layers = knobs["std"], knobs["n_layer"]
    output = f"normal(std={number(std / math.sqrt(2 * layers))})"
    return [*((key, output) for key in globs(RESIDUAL_OUTPUT)), (None, f"normal(std={number(std)})")]


MEGATRON = Recipe(
    name="megatron",
    summary="Megatron-LM: N(0, init_method_std) weights and embeddings, output projections sigma/sqrt(2 num_layers)",
    knobs=(
        Knob("std", "init_method_std sigma", float, 0.02, config=("init_method_std", "initializer_range")),
        _N_LAYER,
    ),
    rules=_megatron_rules,
    formulas=(
        ("residual output projections", "N(0, (std / sqrt(2 n_layer))^2): attention output, MLP fc2 "
                                        "(names: docs/recipes.md)"),
        ("other weights, embeddings", "N(0, std^2)"),
    ),
    sources=(
        "NVIDIA/Megatron-LM@d98e8a64ddf34856e74b24714e3bedb2f5a39553 megatron/core/utils.py "
        "init_method_normal, scaled_init_method_normal (multiplier 2); "
        "megatron/core/transformer/transformer_config.py (init_method_std 0.02, output_layer_init_method "
        "for linear_proj in attention.py and linear_fc2 in mlp.py; embeddings init_method_std)",
    ),
)


def _neox_rules(knobs: Mapping[str, Any]) -> Rules:
    width, layers = knobs["hidden"], knobs["n_layer"]
    small_init = math.sqrt(2.0 / (5.0 * width))
    wang_init = 2.0 / (layers * math.sqrt(width))
    output = f"normal(std={number(wang_init)})"
    return [*((key, output) for key in globs(RESIDUAL_OUTPUT)), (None, f"normal(std={number(small_init)})")]


NEOX = Recipe(
    name="neox",
    summary="GPT-NeoX / Pythia: small_init sqrt(2/(5d)) everywhere, wang_init 2/(L sqrt(d)) on output projections",
    knobs=(_WIDTH, _N_LAYER),
    rules=_neox_rules,
    formulas=(
        ("residual output projections", "wang_init: N(0, (2 / (n_layer sqrt(hidden)))^2): attention.dense, "
                                        "mlp.dense_4h_to_h (names: docs/recipes.md)"),
        ("other weights, embeddings", "small_init: N(0, 2 / (5 hidden))"),
    ),
    sources=(
        "EleutherAI/gpt-neox@ea7aefd8f8e183256992d9fede4d7c71a46d67a5 megatron/model/init_functions.py "
        "small_init_init_method (std sqrt(2/(5 dim))), wang_init_method (std 2/n_layers/sqrt(dim)); "
        "megatron/model/transformer.py (output_layer_init_method for attention dense and the MLP output)",
    ),
    pitfalls=(
        "EleutherAI/pythia#135: Pythia's step-0 checkpoints show stds that do not match small_init/wang_init; "
        "this plan is the library's documented init, not those checkpoints",
        "Hugging Face GPTNeoXPreTrainedModel draws N(0, initializer_range) instead; from_config is not the "
        "NeoX init",
    ),
)
