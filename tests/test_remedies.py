"""Every flagged layer carries a remedy, and the plan it suggests heals the classic broken inits.

The five cases are the ones a practitioner meets first: tanh with 0.01 * N(0, 1)
weights (CS231n's vanishing example), ReLU with N(0, 1) weights, a constant
init, a 100-block residual stack without normalisation, and sigmoid with large
weights. ``initlab audit --fix`` must flag each, name the cause, and re-audit
the suggested plan to all-healthy.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import initlab as il
from initlab.cli.main import main

# (model spec, broken plan, remedy code of the first flagged layer, plan the remedies suggest)
FIX_CASES = [
    ("mlp:*-128x10-*:tanh", "small_random", "weights_too_small", "glorot_normal"),
    ("mlp:*-128x10-*:relu", "normal(mean=0.0, std=1.0)", "weights_too_large", "auto"),
    ("mlp:*-128x4-*:relu", "constant(value=0.05)", "constant_weights", "auto"),
    ("mlp:*-32x100-*:relu+residual", "he", "residual_growth", "fixup"),
    ("mlp:*-128x4-*:sigmoid", "normal(mean=0.0, std=4.0)", "weights_too_large", "glorot_normal(gain=4.0)"),
]


@pytest.mark.parametrize(("spec", "plan", "code", "fix"), FIX_CASES, ids=[case[1] for case in FIX_CASES])
def test_audit_fix_heals_every_layer_of_the_classic_broken_inits(
    spec: str, plan: str, code: str, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["audit", spec, "--plan", plan, "--fix", "--batch-size", "64", "--json", "--strict"])
    result = json.loads(capsys.readouterr().out)
    before, after = result["before"]["rows"], result["after"]["rows"]
    flagged = [row for row in before if row["verdict"] != "healthy"]
    assert len(flagged) >= len(before) // 2, "the broken init must be flagged"
    assert all(row["remedy"] and row["remedy"]["cause"] and row["remedy"]["change"] for row in flagged)
    assert code in {row["remedy"]["code"] for row in flagged}
    assert result["fix_plan"] == fix
    assert [row["verdict"] for row in after] == ["healthy"] * len(after)
    assert status == 0  # --strict judges the fixed audit


def test_audit_prints_what_to_try_and_the_fix_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "mlp:*-64x6-*:tanh", "--plan", "small_random", "--batch-size", "32"]) == 0
    plain = capsys.readouterr().out
    assert "what to try (first: plan 'glorot_normal')" in plain
    assert "weights too small" in plain and "Glorot & Bengio 2010" in plain
    assert "--fix audits plan 'glorot_normal'" in plain
    assert main(["audit", "mlp:*-64x6-*:tanh", "--plan", "small_random", "--batch-size", "32", "--fix"]) == 0
    fixed = capsys.readouterr().out
    assert "before: plan small_random" in fixed and "after: plan glorot_normal" in fixed
    assert "flagged layers: 13 of 13 before, 0 of 13 after" in fixed


def _deep(activation: type[nn.Module], depth: int, width: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, 4))


def _batch(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return scale * torch.randn(64, 64, generator=generator), torch.randint(0, 4, (64,), generator=generator)


def test_a_zero_hidden_layer_is_a_mistake_but_fixup_zeros_are_by_design() -> None:
    x, y = _batch()
    plain = _deep(nn.ReLU, 3)
    report = il.audit(plain, x, y, expected=il.init_model(plain, "zeros"))
    assert report["0"].verdict == "symmetric" and report["0"].remedy.code == "constant_weights"
    assert report.suggested_plan == "auto"
    residual = il.lab.models.build_model("mlp:64-64x6-4:relu+residual")
    fixup = il.audit(residual, x, y, expected=il.init_model(residual, "fixup"))
    assert set(fixup.verdicts().values()) == {"healthy"}
    assert "zero by design" in fixup["hidden.0.linear"].reason
    assert "a later layer starts at 0 by design" in fixup["hidden.0.linear"].reason


def test_a_signal_100x_below_unit_scale_is_flagged_even_when_the_input_is_as_small() -> None:
    x, y = _batch(scale=1e-3)
    net = _deep(nn.ReLU, 3)
    report = il.audit(net, x, y, expected=il.init_model(net, "he"))
    hidden = [row for row in report.rows if row.kind == "linear"][:-1]
    assert all(row.scale_ratio is not None and row.scale_ratio > 0.5 for row in hidden)  # relative: fine
    assert all(row.verdict == "vanishing" for row in hidden)
    assert "smaller than unit scale" in hidden[0].reason
    assert hidden[0].remedy.code == "small_signal" and hidden[0].remedy.plan == "lsuv"


def test_a_tiny_embedding_is_flagged_though_token_ids_give_no_reference() -> None:
    model = nn.Sequential(nn.Embedding(1000, 32), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight.normal_(0.0, 0.001, generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(1))
    row = il.audit(model, tokens)["0"]
    assert row.scale_ratio is None and row.verdict == "vanishing"
    assert row.remedy.code == "small_embedding" and row.remedy.plan == "auto"


def test_a_common_offset_is_not_collapse_but_parallel_low_rank_outputs_are() -> None:
    x, y = _batch()
    sigmoid = _deep(nn.Sigmoid, 3)
    il.init_model(sigmoid, "glorot_normal(gain=4.0)")
    rows = il.audit(sigmoid, x, y).select("activation")
    assert max(row.mean_cosine for row in rows) > 0.9  # outputs around 0.5: nearly parallel ...
    assert min(row.effective_rank for row in rows) > 5  # ... but the samples still differ
    assert all(row.verdict == "healthy" for row in rows)


def test_dead_relus_from_a_negative_bias_get_he_with_bias_zero() -> None:
    x, y = _batch()
    net = _deep(nn.ReLU, 2)
    il.init_model(net, "he; bias=constant(value=-5.0)")
    row = il.audit(net, x, y)["1"]
    assert row.verdict == "dead"
    assert row.remedy.code == "dead_units" and row.remedy.plan == "he"
    assert "bias of 0 has mean -5" in row.remedy.cause


def test_attention_modules_are_rows_by_default() -> None:
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    report = il.audit(model, torch.randn(4, 6, 32, generator=torch.Generator().manual_seed(0)))
    attention = report.select("attention")
    assert [row.name for row in attention] == ["layers.0.self_attn", "layers.1.self_attn"]
    assert all(row.module_type == "MultiheadAttention" and row.act_std > 0 for row in attention)


def test_auto_draws_embeddings_at_unit_scale_whatever_the_vocabulary() -> None:
    for vocabulary in (10, 1000, 30000):
        model = nn.Sequential(nn.Embedding(vocabulary, 64), nn.Linear(64, 4))
        report = il.init_model(model, "auto", seed=0)
        # 64 * vocabulary draws of N(0, 1): the std's standard error is 1/sqrt(2 n) < 0.02
        assert abs(model[0].weight.std().item() - 1.0) < 5 / (2 * 64 * vocabulary) ** 0.5
        assert report.rows[0].expected_std == 1.0
        tokens = torch.randint(0, vocabulary, (64,), generator=torch.Generator().manual_seed(1))
        assert set(il.audit(model, tokens).verdicts().values()) == {"healthy"}
