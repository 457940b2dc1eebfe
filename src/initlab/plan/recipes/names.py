"""The names transformer libraries give the projections of a block, as plan-rule globs.

Recipes that treat projections differently (residual output projections,
value projections) select them by the module name the defining libraries
use, as those libraries do themselves. One table, read by every recipe:

=====================  ===================================================================================
kind                   module names (the last one or two components of the qualified name)
=====================  ===================================================================================
query / key            q_proj, k_proj (fairseq, HF LLaMA), query, key (HF BERT), wq, wk (torchtitan),
                       linear_q, linear_k
value                  v_proj, value, wv, linear_v
packed q/k/v           c_attn (GPT-2), qkv (timm), query_key_value (GPT-NeoX), Wqkv, wqkv,
                       linear_qkv (Megatron)
attention output       attn.c_proj (GPT-2), out_proj, o_proj, wo, attn.proj (timm), attention.dense
                       (GPT-NeoX), attention.output.dense (BERT), linear_proj (Megatron), self_attention.dense
MLP input              fc1, c_fc, gate_proj, up_proj, w1, w3, linear1, dense_h_to_4h, intermediate.dense,
                       linear_fc1
MLP output             fc2, mlp.c_proj, down_proj, w2, linear2, dense_4h_to_h, linear_fc2, and BERT's
                       layer output ``output.dense``
=====================  ===================================================================================

A residual output projection is an attention output or an MLP output: the
layer whose result is added to the residual stream.
"""

from __future__ import annotations

__all__ = ["QUERY_KEY", "VALUE", "PACKED_QKV", "ATTENTION_OUTPUT", "MLP_INPUT", "MLP_OUTPUT",
           "RESIDUAL_OUTPUT", "MLP", "globs"]

QUERY_KEY = ("q_proj", "k_proj", "query", "key", "wq", "wk", "linear_q", "linear_k")
VALUE = ("v_proj", "value", "wv", "linear_v")
PACKED_QKV = ("c_attn", "qkv", "query_key_value", "Wqkv", "wqkv", "linear_qkv")
ATTENTION_OUTPUT = ("attn.c_proj", "out_proj", "o_proj", "wo", "attn.proj", "attention.dense",
                    "attention.output.dense", "linear_proj", "self_attention.dense")
MLP_INPUT = ("fc1", "c_fc", "gate_proj", "up_proj", "w1", "w3", "linear1", "dense_h_to_4h", "intermediate.dense",
             "linear_fc1")
MLP_OUTPUT = ("fc2", "mlp.c_proj", "down_proj", "w2", "linear2", "dense_4h_to_h", "linear_fc2", "output.dense")
RESIDUAL_OUTPUT = ATTENTION_OUTPUT + MLP_OUTPUT
MLP = MLP_INPUT + MLP_OUTPUT


def globs(names: tuple[str, ...], parameter: str = "weight") -> list[str]:
    """Rule keys matching ``<name>.<parameter>`` at any depth, for each module name in ``names``.

    A rule key is one glob; a name at the top level (``wo.weight``) and one
    inside the model (``layers.0.wo.weight``) need one key each.
    """
    keys = []
    for name in names:
        keys.append(f"*.{name}.{parameter}")
        keys.append(f"{name}.{parameter}")
    return keys
