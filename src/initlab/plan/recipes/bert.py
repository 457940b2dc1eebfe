"""BERT as Hugging Face transformers initialises it (Devlin et al. 2019).

Every Linear weight and every embedding (word, position, token type)
N(0, initializer_range^2), the word embedding's padding row 0, biases 0
(the masked-LM head's own ``bias`` too), LayerNorm 1 and 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from initlab.plan.recipes.base import Knob, Recipe, Rules, number

__all__ = ["BERT"]


def _bert_rules(knobs: Mapping[str, Any]) -> Rules:
    return [(None, f"normal(std={number(knobs['std'])})")]


BERT = Recipe(
    name="bert",
    summary="Hugging Face BERT: N(0, 0.02) weights and embeddings, padding row 0, LayerNorm 1 and 0",
    knobs=(Knob("std", "initializer_range", float, 0.02, config=("initializer_range",)),),
    rules=_bert_rules,
    formulas=(
        ("weights, embeddings", "N(0, std^2); the padding row of an embedding 0"),
        ("biases (MLM head bias too)", "0"),
    ),
    sources=(
        "transformers 5.24.0 src/transformers/models/bert/modeling_bert.py BertPreTrainedModel._init_weights "
        "(BertLMPredictionHead.bias 0) over src/transformers/modeling_utils.py PreTrainedModel._init_weights "
        "(Linear, Embedding N(0, initializer_range), padding_idx row 0, LayerNorm 1 and 0)",
    ),
    pitfalls=("the padding row is zeroed after the draw; a plain normal_ over the embedding leaves it random",),
)
