"""``il.recommend`` and ``initlab recommend`` read a model's structure and answer from the one advice table."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import initlab as il
from initlab.cli.main import main
from initlab.plan.advice import ADVICE, DEEP_LAYERS

# (lab model spec, kind it is); transformers and recurrent nets are built in tests/test_guide.py
SPECS = [
    ("mlp:*-128x4-*:relu", "relu"),
    ("cnn:*-16-16-*:gelu+bn", "relu"),
    ("mlp:*-128x6-*:tanh", "tanh"),
    ("mlp:*-128x4-*:sigmoid", "sigmoid"),
    ("cnn:*-16-16-16-*:relu+bn+residual", "resnet_norm"),
    ("mlp:*-64x4-*:gelu+ln+residual", "resnet_norm"),
    ("mlp:*-32x100-*:relu+residual", "resnet_no_norm"),
    (f"mlp:*-64x{DEEP_LAYERS}-*:relu", "deep_no_norm"),
    (f"mlp:*-64x{DEEP_LAYERS - 2}-*:tanh", "tanh"),
]
PLANS = {row.kind: row.plan for row in ADVICE}


@pytest.mark.parametrize(("spec", "kind"), SPECS)
def test_recommend_reads_the_kind_of_model_from_its_structure(
    spec: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", spec, "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert (advice["kind"], advice["plan"]) == (kind, PLANS[kind])
    assert advice["paste"].startswith(f'il.init_model(model, plan="{PLANS[kind]}"')


def test_the_plain_output_names_the_plan_the_reason_and_the_line_to_paste(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "mlp:*-128x6-*:tanh"]) == 0
    text = capsys.readouterr().out
    assert "plan:      glorot_normal" in text and "Glorot & Bengio 2010" in text
    assert 'paste:     il.init_model(model, plan="glorot_normal", seed=0)' in text
    assert "check:     initlab audit 'mlp:*-128x6-*:tanh' --plan glorot_normal" in text
    assert main(["recommend", "mlp:*-128x4-*:relu", "--width-scaling"]) == 0
    assert "plan:      mup" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:rule forget_bias:UserWarning", "ignore:plan fixup:UserWarning")
def test_every_row_has_a_two_sentence_reason_a_reference_and_a_plan_init_model_accepts() -> None:
    assert len({row.kind for row in ADVICE}) == len(ADVICE)
    assert ADVICE[-1].matches(il.recommend(nn.Identity()).traits)  # the last row takes any model
    for row in ADVICE:
        assert len(re.findall(r"[.!?](?:\s|$)", row.reason)) == 2, row.kind
        assert re.search(r"(19|20)\d\d", row.reference), row.kind
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        batch = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
        il.init_model(model, plan=row.plan, seed=0, batch=batch)  # raises on a plan that does not exist


def test_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        il.recommend("mlp")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="width_scaling"):
        il.recommend(nn.Linear(2, 2), width_scaling="yes")  # type: ignore[arg-type]
    assert main(["recommend", "mlp:*-x-*:relu"]) == 2
    assert "initlab recommend: error:" in capsys.readouterr().err
