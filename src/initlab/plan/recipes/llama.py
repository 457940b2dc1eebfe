"""LLaMA-style decoders: as Hugging Face transformers and as torchtitan initialise them.

* ``llama``: every Linear weight and the embeddings N(0, initializer_range^2),
  biases 0, RMSNorm weights 1, the embedding's padding row 0.
* ``torchtitan``: embeddings N(0, 1); q, k, v and the MLP gate (w1) N(0, 0.02^2);
  the attention output (wo) and the MLP down and up projections (w2, w3)
  N(0, s_l^2) with s_l = 0.02 / sqrt(2 (l + 1)) for block l (``depth_init``)
  or 0.02 / sqrt(2 L) without it; the output layer N(0, 1/d) cut at +-3
  sigma; RMSNorm weights 1. Every normal but the embedding's and the output
  layer's goes through ``torch.nn.init.trunc_normal_`` with its default
  bounds +-2 (absolute values), which at these stds cut nothing
  (+-100 sigma and more).

Names: torchtitan calls the projections wq, wk, wv, wo, w1, w2, w3 and the
output layer ``output``; the same recipe reads Hugging Face LLaMA's q_proj,
k_proj, v_proj, o_proj, gate_proj (w1), down_proj (w2), up_proj (w3) and
``lm_head``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from initlab.plan.recipes.base import Knob, Recipe, Rules, count_layers, count_width, number
from initlab.plan.recipes.names import globs
from initlab.plan.recipes.values import TORCH_TRUNC_BOUND

__all__ = ["LLAMA", "TORCHTITAN"]

# torchtitan cuts the output layer at this many stds (cutoff_factor)
OUTPUT_CUTOFF = 3.0
# the projections torchtitan scales with depth, in its names and in Hugging Face LLaMA's
DEPTH_SCALED = ("wo", "w2", "w3", "o_proj", "down_proj", "up_proj")
OUTPUT_LAYERS = ("output", "lm_head")


def _llama_rules(knobs: Mapping[str, Any]) -> Rules:
    return [(None, f"normal(std={number(knobs['std'])})")]


LLAMA = Recipe(
    name="llama",
    summary="Hugging Face LLaMA: N(0, initializer_range) for every weight and embedding, RMSNorm 1",
    knobs=(Knob("std", "initializer_range", float, 0.02, config=("initializer_range",)),),
    rules=_llama_rules,
    formulas=(
        ("weights, embeddings", "N(0, std^2); the padding row of an embedding 0"),
        ("RMSNorm weights", "1 (LlamaRMSNorm found as a normalising module)"),
    ),
    sources=(
        "transformers 5.24.0 src/transformers/modeling_utils.py PreTrainedModel._init_weights (LlamaPreTrainedModel "
        "in src/transformers/models/llama/modeling_llama.py adds no rule of its own)",
    ),
    pitfalls=("LlamaRMSNorm is not a torch.nn norm: a plan that knows only torch.nn types leaves it untouched",),
)


def _trunc_normal(std: float) -> str:
    """torch.nn.init.trunc_normal_(std=std) with its default absolute bounds, in initlab's units of std."""
    bound = TORCH_TRUNC_BOUND / std
    return f"truncated_normal(std={number(std)}, a={number(-bound)}, b={number(bound)})"


def _torchtitan_rules(knobs: Mapping[str, Any]) -> Rules:
    std, width = knobs["std"], knobs["hidden"]
    output_std = width ** -0.5
    output = f"truncated_normal(std={number(output_std)}, a={number(-OUTPUT_CUTOFF)}, b={number(OUTPUT_CUTOFF)})"
    if knobs["depth_init"]:
        depth = f"depth_init(std={number(std)})"
    else:
        depth = _trunc_normal(std / math.sqrt(2 * knobs["n_layer"]))
    return [
        ("embedding", "normal(std=1.0)"),
        *((key, output) for key in globs(OUTPUT_LAYERS)),
        *((key, depth) for key in globs(DEPTH_SCALED)),
        (None, _trunc_normal(std)),
    ]


TORCHTITAN = Recipe(
    name="torchtitan",
    summary="torchtitan LLaMA: depth_init 0.02/sqrt(2(l+1)) on wo, w2, w3; output d^-1/2 cut at 3 sigma; embeddings N(0, 1)",
    knobs=(
        Knob("std", "base std of the projections", float, 0.02),
        Knob("hidden", "model width d", int, None, config=("dim", "hidden_size", "n_embd", "d_model"),
             count=count_width, counted="the first embedding's dimension"),
        Knob("n_layer", "number of blocks L (used when depth_init is False)", int, None,
             config=("n_layers", "num_hidden_layers", "n_layer", "num_layers"),
             count=count_layers, counted="the number of repeated blocks"),
        Knob("depth_init", "scale by the block's index l (True) or by L (False)", bool, True,
             config=("depth_init",)),
    ),
    rules=_torchtitan_rules,
    formulas=(
        ("embeddings", "N(0, 1)"),
        ("output / lm_head", "N(0, 1/hidden) cut at +-3 std"),
        ("wo, w2, w3 (o_proj, down_proj, up_proj)", "N(0, (std / sqrt(2 (l + 1)))^2) for block l; "
                                                     "std / sqrt(2 n_layer) without depth_init"),
        ("other weights (wq, wk, wv, w1)", "N(0, std^2)"),
        ("normals but embeddings, output", "cut at torch.nn.init.trunc_normal_'s absolute +-2"),
    ),
    sources=(
        "pytorch/torchtitan@018740b7aae7846d24954539244c78215dbd181f torchtitan/models/llama3/model/model.py: "
        "Attention.init_weights, FeedForward.init_weights, TransformerBlock (weight_init_std), "
        "Transformer.init_weights (final_out_std, cutoff_factor 3); model/args.py (depth_init True)",
        "pytorch/torchtitan@b5bcd76c66d0acb1a08b176d9639425bc55e0b2a torchtitan/models/llama3/__init__.py "
        "(_LINEAR_INIT, _EMBEDDING_INIT, _output_linear_init, _depth_init) and "
        "torchtitan/models/common/param_init.py depth_scaled_std: the same formulas",
    ),
    pitfalls=(
        "torch.nn.init.trunc_normal_'s a, b are absolute values: trunc_normal_(std=0.02) cuts at +-100 std, "
        "i.e. nothing; the output layer passes a=-3 std, b=3 std explicitly",
        "w3 (the gate's partner, up_proj) is depth-scaled too, although its output is not added to the residual",
    ),
)
