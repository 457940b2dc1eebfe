"""Deep Transformers without warm-up or with DeepNorm: T-Fixup (Huang et al. 2020), DeepNet (Wang et al. 2022).

Both scale the value and output projections of attention and the MLP
weights of each block by a factor that falls with depth, and leave the query
and key projections alone. N is the number of encoder blocks, M of decoder
blocks; a model with one stack (GPT-like, or BERT-like under "encoder") is
decoder-only or encoder-only.

T-Fixup (as layer6ai-labs/T-Fixup, fairseq): Xavier uniform for every
weight; q and k with gain 1/sqrt(2) (fairseq's attention); the value and
output projections and the MLP weights times 0.67 N^(-1/4) in the encoder
and (9 M)^(-1/4) in the decoder (the value projection's 1/sqrt(2) undone
first); embeddings N(0, 1/d) times (9 N)^(-1/4) (encoder) or (9 M)^(-1/4)
(decoder), padding row 0. T-Fixup also removes the LayerNorms: that is
architecture, and norms a model keeps stay 1 and 0 here.

DeepNet (Figure 2 of the paper): Xavier normal with gain beta for the MLP
weights and the value and output projections, gain 1 for q and k, with
beta = (8 N)^(-1/4) encoder-only, (8 M)^(-1/4) decoder-only, and for an
encoder-decoder 0.87 (N^4 M)^(-1/16) in the encoder and (12 M)^(-1/4) in
the decoder. Other weights Xavier normal; embeddings N(0, 1/d) (fairseq's).
DeepNorm's residual multiplier alpha is architecture, not init.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from initlab.plan.recipes.base import Knob, Recipe, Rules, count_layers, number
from initlab.plan.recipes.names import ATTENTION_OUTPUT, MLP, PACKED_QKV, QUERY_KEY, VALUE, globs
from initlab.schemes import strings

__all__ = ["T_FIXUP", "DEEPNET"]

# fairseq's MultiheadAttention draws q, k, v with Xavier uniform gain 1/sqrt(2)
FAIRSEQ_QKV_GAIN = 1 / math.sqrt(2)


def _count_encoder(model: nn.Module) -> int:
    return count_layers(model, "encoder") or 0


def _count_decoder(model: nn.Module) -> int:
    found = count_layers(model, "decoder")
    if found is not None:
        return found
    if count_layers(model, "encoder") is not None:
        return 0
    return count_layers(model) or 0  # one stack, neither encoder nor decoder in its name: a decoder


_KNOBS = (
    Knob("encoder_layers", "number of encoder blocks N", int, None,
         config=("encoder_layers", "num_encoder_layers"), count=_count_encoder,
         counted="the blocks under a module named *encoder* (0 if none)", sign="nonnegative"),
    Knob("decoder_layers", "number of decoder blocks M", int, None,
         config=("decoder_layers", "num_decoder_layers"), count=_count_decoder,
         counted="the blocks under a module named *decoder*; a model with one unnamed stack is a decoder",
         sign="nonnegative"),
)


def _depths(knobs: Mapping[str, Any], name: str) -> tuple[int, int]:
    encoder, decoder = knobs["encoder_layers"], knobs["decoder_layers"]
    if encoder < 0 or decoder < 0 or encoder + decoder == 0:
        raise ValueError(f"ready plan {name} needs encoder_layers and decoder_layers >= 0, not both 0; "
                         f"got {encoder} and {decoder}")
    return encoder, decoder


def _stack(encoder: str, decoder: str, other: str) -> str:
    return (f"stack(encoder={strings.format_value(encoder)}, decoder={strings.format_value(decoder)}, "
            f"other={strings.format_value(other)})")


def _stack_rules(scaled: str, query_key: str, packed: str, embedding: str, default: str) -> Rules:
    """The rules both recipes share: per-stack scaled projections, plain q/k, packed q/k/v warned about."""
    return [
        ("MultiheadAttention.query", query_key),
        ("MultiheadAttention.key", query_key),
        ("MultiheadAttention.value", scaled),
        *((key, query_key) for key in globs(QUERY_KEY)),
        *((key, scaled) for key in globs(VALUE + ATTENTION_OUTPUT + MLP)),
        *((key, packed) for key in globs(PACKED_QKV)),
        ("embedding", embedding),
        (None, default),
    ]


def _t_fixup_rules(knobs: Mapping[str, Any]) -> Rules:
    encoder, decoder = _depths(knobs, "t_fixup")
    encoder_scale = 0.67 * encoder ** -0.25 if encoder else 1.0
    decoder_scale = (9 * decoder) ** -0.25 if decoder else 1.0
    other_scale = decoder_scale if decoder else encoder_scale
    scaled = _stack(*(f"glorot_uniform(gain={number(s)})" for s in (encoder_scale, decoder_scale, other_scale)))
    embedding_scales = [(9 * depth) ** -0.25 if depth else 1.0 for depth in (encoder, decoder)]
    embedding_scales.append(embedding_scales[1] if decoder else embedding_scales[0])
    embedding = _stack(*(f"variance_scaling(scale={number(s * s)}, mode=fan_out, distribution=normal)"
                         for s in embedding_scales))
    query_key = f"glorot_uniform(gain={number(FAIRSEQ_QKV_GAIN)})"
    return _stack_rules(scaled, query_key, f"packed_qkv(scheme={strings.format_value(query_key)})", embedding,
                        "glorot_uniform")


T_FIXUP = Recipe(
    name="t_fixup",
    summary="T-Fixup: Xavier, v/out/MLP times 0.67 N^-1/4 (encoder) or (9M)^-1/4 (decoder), scaled N(0, 1/d) embeddings",
    knobs=_KNOBS,
    rules=_t_fixup_rules,
    formulas=(
        ("q, k projections", "Xavier uniform, gain 1/sqrt(2)"),
        ("v, out projections, MLP weights", "Xavier uniform, gain 0.67 N^(-1/4) (encoder) / (9 M)^(-1/4) (decoder)"),
        ("embeddings", "N(0, 1/d) times (9 N)^(-1/4) (encoder) / (9 M)^(-1/4) (decoder)"),
        ("packed q/k/v (c_attn, qkv)", "Xavier uniform gain 1/sqrt(2), and a warning: v cannot be scaled alone"),
        ("other weights", "Xavier uniform"),
    ),
    sources=(
        "Huang, Perez, Ba & Volkovs 2020, Improving Transformer Optimization Through Better Initialization (ICML), "
        "Section 3.3",
        "layer6ai-labs/T-Fixup@b17e166d9f60671a92c3f39e24c9b8c93995e5a3 fairseq/modules/transformer_layer.py "
        "fixup_initialization (0.67 N^-1/4, (9M)^-1/4, v_proj times sqrt(2)); fairseq/models/transformer.py "
        "(Embedding N(0, d^-1/2), embed_tokens times (9 layers)^-1/4, Linear Xavier uniform); "
        "fairseq/modules/multihead_attention.py reset_parameters (q, k, v gain 1/sqrt(2))",
    ),
    notes=("LayerNorms that T-Fixup removes are kept at 1 and 0 if the model has them",),
)


def _deepnet_rules(knobs: Mapping[str, Any]) -> Rules:
    encoder, decoder = _depths(knobs, "deepnet")
    if encoder and decoder:
        encoder_beta = 0.87 * (encoder ** 4 * decoder) ** (-1 / 16)
        decoder_beta = (12 * decoder) ** -0.25
    else:
        encoder_beta = decoder_beta = (8 * (encoder or decoder)) ** -0.25
    other_beta = decoder_beta if decoder else encoder_beta
    scaled = _stack(*(f"glorot_normal(gain={number(b)})" for b in (encoder_beta, decoder_beta, other_beta)))
    return _stack_rules(scaled, "glorot_normal", "packed_qkv(scheme=glorot_normal)",
                        "variance_scaling(scale=1.0, mode=fan_out, distribution=normal)", "glorot_normal")


DEEPNET = Recipe(
    name="deepnet",
    summary="DeepNet/DeepNorm: Xavier normal, v/out/MLP with gain beta = (8L)^-1/4 (one stack) or the enc-dec betas",
    knobs=_KNOBS,
    rules=_deepnet_rules,
    formulas=(
        ("q, k projections", "Xavier normal, gain 1"),
        ("v, out projections, MLP weights", "Xavier normal, gain beta: (8 N)^(-1/4) or (8 M)^(-1/4) for one stack; "
                                            "0.87 (N^4 M)^(-1/16) encoder, (12 M)^(-1/4) decoder"),
        ("embeddings", "N(0, 1/d)"),
        ("packed q/k/v (c_attn, qkv)", "Xavier normal, and a warning: v cannot be scaled alone"),
        ("other weights", "Xavier normal"),
    ),
    sources=(
        "Wang, Ma, Dong, Huang, Zhang & Wei 2022, DeepNet: Scaling Transformers to 1,000 Layers, Figure 2 "
        "(deepnorm_init) and Table 1 (alpha, beta)",
        "microsoft/torchscale@4d1e0e82e5adf86dd424f1463192635b73fc8efc torchscale/architecture/encoder.py and "
        "decoder.py (init_scale: (8 L)^(1/4), (12 M)^(1/4), (N^4 M)^(1/16) / 1.15 applied to fc1, fc2, out_proj, "
        "v_proj)",
    ),
    pitfalls=(
        "torchscale divides weights that start from Xavier uniform with gain 1/sqrt(2) (q, k, v) and torch's "
        "default (fc1, fc2); this plan draws the paper's Xavier normal with gain beta directly",
    ),
    notes=("DeepNorm's residual multiplier alpha is architecture; set it in the model",),
)
