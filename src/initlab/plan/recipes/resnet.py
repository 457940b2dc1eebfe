"""ResNets as torchvision initialises them (He et al. 2016; Goyal et al. 2017 for the zeroed last norm).

Every convolution ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``:
N(0, 2 / fan_out) with torch's fan_out = out_channels * k (groups not
divided out, as for ResNeXt's grouped convolutions); BatchNorm and GroupNorm
weights 1, biases 0; the final ``fc`` keeps torch's default Linear init.
With ``zero_init_residual`` the last norm of each residual block starts at 0
(``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock), so that each block
starts as the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from initlab.plan.recipes.base import Knob, Recipe, Rules

__all__ = ["RESNET"]


def _last_norm(model: nn.Module) -> str:
    """bn3 when the blocks are Bottlenecks (a module with a bn3 child), else bn2 (BasicBlocks)."""
    has_bn3 = any(name.rsplit(".", 1)[-1] == "bn3" for name, _ in model.named_modules())
    return "bn3" if has_bn3 else "bn2"


def _resnet_rules(knobs: Mapping[str, Any]) -> Rules:
    zeroed: Rules = []
    if knobs["zero_init_residual"]:
        zeroed = [(f"*.{knobs['last_norm']}.weight", "zeros")]
    return [
        *zeroed,
        ("Conv", "torch_fans(scheme='he_normal(mode=fan_out)')"),
        ("Linear", "module_default"),
        ("Linear.bias", "module_default"),
    ]


RESNET = Recipe(
    name="resnet",
    summary="torchvision ResNet: Kaiming normal fan_out convs, norms 1 and 0, torch's default fc; zero_init_residual",
    knobs=(
        Knob("zero_init_residual", "start the last norm of each residual block at 0", bool, False),
        Knob("last_norm", "name of the last norm of a residual block", str, "bn3",
             count=_last_norm, counted="bn3 if the model has Bottleneck blocks, else bn2"),
    ),
    rules=_resnet_rules,
    formulas=(
        ("*.<last_norm>.weight", "0 when zero_init_residual (bn3 of Bottleneck, bn2 of BasicBlock)"),
        ("Conv weights", "N(0, 2 / fan_out), fan_out = out_channels * k as torch.nn.init computes it"),
        ("Linear (fc)", "torch's default: U(+-1/sqrt(fan_in)) weight and bias"),
        ("BatchNorm, GroupNorm", "1 and 0"),
    ),
    sources=(
        "pytorch/vision@f50e776b051ddf007b90d7bc8f70b0708c12d008 torchvision/models/resnet.py ResNet.__init__: "
        "kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu') for nn.Conv2d, constant 1 / 0 for "
        "BatchNorm2d and GroupNorm, zero_init_residual: bn3 of Bottleneck, bn2 of BasicBlock",
    ),
    pitfalls=(
        "torch's fan_out of a grouped convolution is out_channels * k, not out_channels / groups * k: "
        "initlab's conv layout would give ResNeXt larger stds than torchvision",
    ),
)
