"""``il.recommend`` and ``initlab recommend`` read a model's structure and answer from the one advice table."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import initlab as il
from initlab.cli.main import main
from initlab.plan.advice import ADVICE, DEEP_LAYERS, FAMILIES
from recipe_models import (
    GPTConfig,
    NanoGPT,
    ResNet,
    ViT,
    hf_bert,
    hf_gpt2,
    hf_llama,
    hf_mistral,
    hf_qwen2,
    hf_roberta,
)

# (lab model spec, kind it is); transformers and recurrent nets are built in tests/test_guide.py, the
# families' models in FAMILY_MODELS below
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


class VisionTransformer(ViT):
    """timm's class name over timm's module names (patch_embed, pos_embed, cls_token, blocks, head)."""


def _hf(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        pytest.importorskip("transformers")
        return build()

    return make


# family: a tiny model of it; every family row's recipe covers its model, so strict init warns of nothing
FAMILY_MODELS: dict[str, Callable[[], nn.Module]] = {
    "gpt2": _hf(hf_gpt2),
    "llama": _hf(hf_llama),
    "bert": _hf(hf_bert),
    "vit_timm": VisionTransformer,
    "resnet": lambda: ResNet(bottleneck=True),
}


@pytest.mark.parametrize(("spec", "kind"), SPECS)
def test_recommend_reads_the_kind_of_model_from_its_structure(
    spec: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", spec, "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert (advice["kind"], advice["plan"], advice["family"]) == (kind, PLANS[kind], None)
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
        if row.kind in FAMILIES:  # a family's recipe needs a model of the family (checked below)
            continue
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        batch = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
        il.init_model(model, plan=row.plan, seed=0, batch=batch)  # raises on a plan that does not exist
    assert set(FAMILIES) <= set(PLANS)


def _kind_position(kind: str) -> int:
    return [row.kind for row in ADVICE].index(kind)


@pytest.mark.parametrize("kind", list(FAMILY_MODELS))
def test_a_model_of_a_family_gets_its_ready_plan_and_the_plan_covers_every_parameter(kind: str) -> None:
    model = FAMILY_MODELS[kind]()
    advice = il.recommend(model)
    assert (advice.kind, advice.plan, advice.traits.family) == (kind, kind, kind)
    assert f"recognised as {FAMILIES[kind]}" in advice.text()
    # the family row stands before the generic row the same model would otherwise get
    generic = next(row for row in ADVICE if row.kind not in FAMILIES and row.matches(advice.traits))
    assert _kind_position(kind) < _kind_position(generic.kind)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = il.init_model(model, plan=advice.plan, seed=0, strict=True)
    assert not report.warnings
    # the recipe redrew every weight matrix and embedding (norms and biases may keep their 1 and 0)
    kept = [name for name, p in model.named_parameters() if p.dim() >= 2 and torch.equal(p, before[name])]
    assert kept == []


@pytest.mark.parametrize(("build", "kind"), [(hf_mistral, "llama"), (hf_qwen2, "llama"), (hf_roberta, "bert")],
                         ids=["mistral", "qwen2", "roberta"])
def test_models_transformers_initialises_as_a_family_get_that_familys_plan(
    build: Callable[[], nn.Module], kind: str
) -> None:
    model = _hf(build)()
    advice = il.recommend(model)
    assert (advice.kind, advice.plan, advice.traits.family) == (kind, kind, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not il.init_model(model, plan=advice.plan, seed=0, strict=True).warnings


def test_the_gpt2_row_reads_nanogpt_names_and_its_plan_scales_c_proj_by_depth() -> None:
    model = NanoGPT(GPTConfig(n_layer=8))
    advice = il.recommend(model)
    assert advice.plan == "gpt2"
    il.init_model(model, plan=advice.plan, seed=0, strict=True)
    c_proj = torch.cat([block.mlp.c_proj.weight.flatten() for block in model.transformer.h])
    c_fc = torch.cat([block.mlp.c_fc.weight.flatten() for block in model.transformer.h])
    # 0.02/sqrt(16) = 0.005 against 0.02; relative standard error of a std over n values ~ 1/sqrt(2n) < 0.3%
    assert abs(c_proj.std().item() / 0.005 - 1) < 0.02 and abs(c_fc.std().item() / 0.02 - 1) < 0.02


class _Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.extra = inner, nn.Linear(64, 3)


def test_only_the_models_own_class_and_names_make_a_family() -> None:
    # a model holding a family model beside layers of its own gets a generic row
    assert il.recommend(_Wrapper(ResNet(bottleneck=False))).traits.family is None
    assert il.recommend(_Wrapper(NanoGPT(GPTConfig()))).traits.family is None
    # the names without the family's structure are not the family
    assert il.recommend(ViT()).traits.family is None  # timm's names, another class name

    plain = type("ResNet", (nn.Sequential,), {})  # the class name without Bottleneck / BasicBlock blocks
    assert il.recommend(plain(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())).traits.family is None

    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                    enable_nested_tensor=False)
    other_vit = type("VisionTransformer", (nn.Sequential,), {})  # the class name without timm's names
    assert il.recommend(other_vit(encoder)).kind == "transformer_post_norm"


def test_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        il.recommend("mlp")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="width_scaling"):
        il.recommend(nn.Linear(2, 2), width_scaling="yes")  # type: ignore[arg-type]
    assert main(["recommend", "mlp:*-x-*:relu"]) == 2
    assert "initlab recommend: error:" in capsys.readouterr().err
