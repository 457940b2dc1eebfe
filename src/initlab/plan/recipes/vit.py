"""Vision Transformers as timm initialises them: its three weight-init modes.

timm's ``VisionTransformer.init_weights(mode)`` draws, in every mode,
``pos_embed`` from ``trunc_normal_(std=0.02)`` (timm's, like torch's, with
absolute bounds +-2: +-100 std, no cut in effect) and ``cls_token`` and
``reg_token`` from N(0, 1e-6^2); LayerNorms keep 1 and 0; LayerScale's
``gamma`` (blocks built with ``init_values``: ``ls1``, ``ls2``) keeps the
constant ``init_values`` it was created with, since no mode touches it. Per mode:

* ``vit_timm`` (mode ''): every Linear weight (the head too)
  ``trunc_normal_(std=0.02)``, biases 0; the patch-embedding convolution
  keeps torch's default (its ``reset_parameters``).
* ``vit_jax`` (modes 'jax', 'jax_nlhb'): the head's weight 0 and its bias
  ``head_bias`` (0; -log(num_classes) for 'jax_nlhb'); other Linear weights
  Xavier uniform, the biases of MLP Linears N(0, 1e-6^2), other biases 0;
  the patch-embedding convolution LeCun normal as JAX draws it (std
  1/sqrt(fan_in) after a cut at +-2 sigma), bias 0.
* ``vit_moco`` (mode 'moco'): Xavier uniform for every Linear weight, with
  the packed q/k/v projection ``qkv`` bounded by sqrt(6 / (out/3 + in)) (q,
  k and v treated as separate matrices, MoCo v3), biases 0; the
  patch-embedding convolution keeps torch's default.

The rules select by timm's names (``pos_embed``, ``cls_token``,
``reg_token``, ``head``, ``*mlp*``, ``*qkv``), as timm does.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from initlab.plan.recipes.base import Knob, Recipe, Rules, number
from initlab.plan.recipes.llama import _trunc_normal

__all__ = ["VIT_TIMM", "VIT_JAX", "VIT_MOCO"]

# timm: trunc_normal_(std=.02) for pos_embed and (mode '') Linear weights; normal_(std=1e-6) for the tokens
TIMM_STD = 0.02
TOKEN_STD = 1e-6

_TOKENS: Rules = [
    ("*pos_embed", _trunc_normal(TIMM_STD)),
    ("*cls_token", f"normal(std={number(TOKEN_STD)})"),
    ("*reg_token", f"normal(std={number(TOKEN_STD)})"),
]
_TORCH_CONV: Rules = [("Conv", "module_default"), ("Conv.bias", "module_default")]
# timm's LayerScale (timm/layers/layer_scale.py): gamma = init_values * ones(dim), named ls1/ls2 in a Block
_LAYER_SCALES = ("*ls1.gamma", "*ls2.gamma")
LAYER_SCALE_DEFAULT = 1e-5  # LayerScale's own default init_values


def _layer_scale_value(model: nn.Module) -> float | None:
    """The value every LayerScale gamma holds (the init_values the model was built with); None if unknown.

    None when the model has no LayerScale, when a gamma is on the meta device (nothing to read) or
    when the gammas are not one constant (trained, or changed since).
    """
    gammas = [p.detach() for name, p in model.named_parameters() if fnmatch.fnmatchcase(name, _LAYER_SCALES[0])
              or fnmatch.fnmatchcase(name, _LAYER_SCALES[1])]
    if not gammas or any(g.is_meta or g.numel() == 0 for g in gammas):
        return None
    first = gammas[0].reshape(-1)[0]
    if not all(bool(torch.all(g == first)) for g in gammas):
        return None
    value = float(first)
    return value if math.isfinite(value) and value > 0 else None


_LAYER_SCALE_KNOB = Knob(
    "init_values", "LayerScale's initial value (ls1.gamma, ls2.gamma)", float, LAYER_SCALE_DEFAULT,
    count=_layer_scale_value, counted="the constant every ls1/ls2 gamma holds (not on the meta device)",
)


def _layer_scale_rules(knobs: Mapping[str, Any]) -> Rules:
    return [(key, f"constant(value={number(knobs['init_values'])})") for key in _LAYER_SCALES]


_LAYER_SCALE_FORMULA = ("ls1.gamma, ls2.gamma (LayerScale)", "init_values, the constant the model was built with")

_LAYER_SCALE_SOURCE = ("huggingface/pytorch-image-models@2f3fed43b8888b07585242bf591a1d6cb9118b7c "
                       "timm/layers/layer_scale.py: LayerScale.__init__ (gamma = init_values * ones(dim))")
_SOURCE = ("huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d "
           "timm/models/vision_transformer.py: VisionTransformer.init_weights (pos_embed, cls_token, reg_token), "
           "init_weights_vit_timm, init_weights_vit_jax, init_weights_vit_moco, get_init_weights_vit; "
           "timm/layers/weight_init.py trunc_normal_ (absolute bounds), trunc_normal_tf_ and lecun_normal_ "
           "(bounds in units of std, std / 0.8796)")
_TRUNC_PITFALL = ("timm's trunc_normal_ (like torch's) takes absolute bounds: trunc_normal_(std=.02) cuts at +-2, "
                  "i.e. at 100 std, nothing; its trunc_normal_tf_ and lecun_normal_ cut at +-2 std")


def _timm_rules(knobs: Mapping[str, Any]) -> Rules:
    return [*_TOKENS, *_layer_scale_rules(knobs), *_TORCH_CONV, ("Linear", _trunc_normal(TIMM_STD))]


VIT_TIMM = Recipe(
    name="vit_timm",
    summary="timm ViT (mode ''): Linear and pos_embed trunc_normal(0.02), cls_token N(0, 1e-6), patch conv torch default",
    knobs=(_LAYER_SCALE_KNOB,),
    rules=_timm_rules,
    formulas=(
        ("pos_embed", "N(0, 0.02^2) cut at +-2 (absolute)"),
        ("cls_token, reg_token", "N(0, 1e-6^2)"),
        ("Conv (patch embedding)", "torch's default (U(+-1/sqrt(fan_in)) weight and bias)"),
        ("Linear weights (head too)", "N(0, 0.02^2) cut at +-2 (absolute)"),
        _LAYER_SCALE_FORMULA,
    ),
    sources=(_SOURCE, _LAYER_SCALE_SOURCE),
    pitfalls=(_TRUNC_PITFALL,),
)


def _jax_rules(knobs: Mapping[str, Any]) -> Rules:
    return [
        *_TOKENS,
        *_layer_scale_rules(knobs),
        ("head*.weight", "zeros"),
        ("head*.bias", f"constant(value={number(knobs['head_bias'])})"),
        ("norm_shift", "zeros"),
        ("*mlp*.bias", f"normal(std={number(TOKEN_STD)})"),
        ("Conv", "lecun_truncated_normal"),
        ("Linear", "glorot_uniform"),
    ]


VIT_JAX = Recipe(
    name="vit_jax",
    summary="timm ViT (mode 'jax'): Xavier uniform Linears, zero head, MLP biases N(0, 1e-6), LeCun-normal patch conv",
    knobs=(Knob("head_bias", "the head's bias (0; -log(num_classes) for timm's 'jax_nlhb')", float, 0.0, sign="any"),
           _LAYER_SCALE_KNOB),
    rules=_jax_rules,
    formulas=(
        ("pos_embed / cls_token, reg_token", "N(0, 0.02^2) cut at +-2 (absolute) / N(0, 1e-6^2)"),
        ("head weight / head bias", "0 / head_bias"),
        ("biases of *mlp* Linears", "N(0, 1e-6^2)"),
        ("Conv (patch embedding)", "LeCun normal, std 1/sqrt(fan_in) after a cut at +-2 std; bias 0"),
        ("other Linear weights", "Xavier uniform U(+-sqrt(6 / (fan_in + fan_out)))"),
        _LAYER_SCALE_FORMULA,
    ),
    sources=(_SOURCE, _LAYER_SCALE_SOURCE),
    pitfalls=(_TRUNC_PITFALL,),
)


def _moco_rules(knobs: Mapping[str, Any]) -> Rules:
    return [*_TOKENS, *_layer_scale_rules(knobs), *_TORCH_CONV, ("*qkv.weight", "packed(scheme=glorot_uniform, parts=3)"),
            ("Linear", "glorot_uniform")]


VIT_MOCO = Recipe(
    name="vit_moco",
    summary="timm ViT (mode 'moco', MoCo v3): Xavier uniform Linears, qkv bound from its q/k/v blocks",
    knobs=(_LAYER_SCALE_KNOB,),
    rules=_moco_rules,
    formulas=(
        ("pos_embed / cls_token, reg_token", "N(0, 0.02^2) cut at +-2 (absolute) / N(0, 1e-6^2)"),
        ("Conv (patch embedding)", "torch's default"),
        ("*qkv.weight", "U(+-sqrt(6 / (out/3 + in))): Xavier uniform of one of the q, k, v blocks"),
        ("other Linear weights", "Xavier uniform"),
        _LAYER_SCALE_FORMULA,
    ),
    sources=(_SOURCE, _LAYER_SCALE_SOURCE, "Chen, Xie & He 2021, An Empirical Study of Training Self-Supervised Vision Transformers"),
    pitfalls=("Xavier uniform over the packed (3E, E) qkv weight would use fan_out 3E and draw a smaller bound",),
)
