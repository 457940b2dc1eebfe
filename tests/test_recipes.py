"""Each recipe draws what the library that defines it draws, parameter by parameter, over pooled seeds.

Where the library installs beside the pinned torch (Hugging Face transformers:
GPT-2, LLaMA, BERT) the reference is the library's own init; elsewhere
(torchtitan, timm, torchvision, Megatron-LM, GPT-NeoX, T-Fixup, DeepNet) it
is the formula quoted from the library's source (docs/recipes.md cites file
and commit), written with torch.nn.init in tests/recipe_models.py. Per
parameter: the same constants and always-zero elements (padding rows), and
otherwise the same std, mean and tail fractions within Z standard errors of
the pooled sample sizes, and the same law by a two-sample KS test.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import initlab as il
from initlab.plan import Plan
from initlab.plan.recipes import RECIPE_LIST
from recipe_models import (
    EncoderDecoder,
    GPTConfig,
    NanoGPT,
    ResNet,
    Titan,
    TitanArgs,
    ViT,
    assert_same_init,
    deepnet_reference,
    hf_bert,
    hf_gpt2,
    hf_llama,
    hf_mistral,
    hf_qwen2,
    hf_roberta,
    megatron_reference,
    nanogpt_reference,
    pooled,
    resnet_reference,
    t_fixup_reference,
    titan_reference,
    vit_jax_reference,
    vit_moco_reference,
    vit_timm_reference,
)

transformers = pytest.importorskip("transformers")

SEEDS = range(4)
pytestmark = pytest.mark.usefixtures("one_thread")


def _ours(build: Callable[[], nn.Module], plan: str) -> Callable[[int], nn.Module]:
    def make(seed: int) -> nn.Module:
        model = build()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a recipe on its own family leaves nothing uncovered
            il.init_model(model, plan, seed=seed, strict=True)
        return model

    return make


def _library(build: Callable[[], nn.Module], init: Callable[[nn.Module], nn.Module] | None = None
             ) -> Callable[[int], nn.Module]:
    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = build()
        with torch.no_grad():
            return init(model) if init is not None else model

    return make


# -- against the library itself ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "plan"),
    [(hf_gpt2, "gpt2"), (hf_llama, "llama"), (hf_bert, "bert"), (hf_mistral, "llama"), (hf_qwen2, "llama"),
     (hf_roberta, "bert")],
    ids=["gpt2", "llama", "bert", "mistral", "qwen2", "roberta"],
)
def test_recipe_draws_what_transformers_draws(build: Callable[[], nn.Module], plan: str) -> None:
    assert_same_init(pooled(_ours(build, plan), SEEDS), pooled(_library(build), SEEDS))


def test_the_gpt2_recipe_scales_c_proj_by_depth_where_a_plain_normal_would_not() -> None:
    plain = pooled(_ours(hf_gpt2, "normal(std=0.02)"), SEEDS)
    with pytest.raises(AssertionError, match="c_proj.weight: std"):
        assert_same_init(plain, pooled(_library(hf_gpt2), SEEDS))


# -- against the formulas of libraries that do not install here ---------------------------------------------
def test_gpt2_on_nanogpt_matches_nanogpts_init() -> None:
    build = lambda: NanoGPT(GPTConfig())  # noqa: E731
    assert_same_init(pooled(_ours(build, "gpt2"), SEEDS), pooled(_library(build, nanogpt_reference), SEEDS))


def test_megatron_scales_the_output_projections_by_sqrt_2l() -> None:
    build = lambda: NanoGPT(GPTConfig(n_layer=3))  # noqa: E731
    assert_same_init(pooled(_ours(build, "megatron"), SEEDS), pooled(_library(build, megatron_reference), SEEDS))


def _neox() -> nn.Module:
    config = transformers.GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=256, vocab_size=96, max_position_embeddings=16)
    return transformers.GPTNeoXForCausalLM(config)


def _neox_reference(model: nn.Module) -> nn.Module:
    """init_functions.py: small_init sqrt(2/(5 d)) everywhere, wang_init 2/(L sqrt(d)) on dense and dense_4h_to_h."""
    width, layers = 64, 2
    for name, param in model.named_parameters():
        if name.endswith(("attention.dense.weight", "dense_4h_to_h.weight")):
            nn.init.normal_(param, 0.0, 2 / layers / math.sqrt(width))
        elif param.dim() == 2:
            nn.init.normal_(param, 0.0, math.sqrt(2 / (5 * width)))
        elif "layernorm" in name or "layer_norm" in name:
            nn.init.constant_(param, 1.0 if name.endswith("weight") else 0.0)
        else:
            nn.init.zeros_(param)
    return model


def test_neox_draws_small_init_and_wang_init() -> None:
    assert_same_init(pooled(_ours(_neox, "neox"), SEEDS), pooled(_library(_neox, _neox_reference), SEEDS))


@pytest.mark.parametrize("depth_init", [True, False])
def test_torchtitan_matches_its_init_weights(depth_init: bool) -> None:
    build = lambda: Titan(TitanArgs(depth_init=depth_init))  # noqa: E731
    assert_same_init(pooled(_ours(build, "torchtitan"), SEEDS), pooled(_library(build, titan_reference), SEEDS))


def test_torchtitan_reads_hugging_face_llama_names() -> None:
    model = hf_llama()
    report = il.init_model(model, "torchtitan", seed=0, strict=True)
    assert report.plan == "torchtitan(std=0.02, hidden=64, n_layer=2, depth_init=True)"
    layer = model.model.layers[1]
    for linear, std in ((layer.self_attn.o_proj, 0.02 / 2), (layer.mlp.up_proj, 0.02 / 2),
                        (layer.self_attn.q_proj, 0.02), (model.model.embed_tokens, 1.0)):
        values = linear.weight.detach()
        assert abs(values.std().item() / std - 1) < 5 / math.sqrt(2 * values.numel())
    assert model.lm_head.weight.detach().abs().max() <= 3 * 64**-0.5


@pytest.mark.parametrize(("plan", "reference"), [
    ("vit_timm", vit_timm_reference), ("vit_jax", vit_jax_reference), ("vit_moco", vit_moco_reference),
], ids=["timm", "jax", "moco"])
def test_vit_recipes_match_timms_init_modes(plan: str, reference: Callable[[nn.Module], nn.Module]) -> None:
    assert_same_init(pooled(_ours(ViT, plan), SEEDS), pooled(_library(ViT, reference), SEEDS))


@pytest.mark.parametrize(("plan", "reference"), [
    ("vit_timm", vit_timm_reference), ("vit_jax", vit_jax_reference), ("vit_moco", vit_moco_reference),
], ids=["timm", "jax", "moco"])
def test_vit_recipes_keep_layer_scale_at_the_models_init_values(
    plan: str, reference: Callable[[nn.Module], nn.Module]
) -> None:
    build = lambda: ViT(init_values=1e-4)  # noqa: E731
    ours = _ours(build, plan)(0)  # strict: ls1/ls2.gamma are covered, not warned about
    gammas = [p for name, p in ours.named_parameters() if name.endswith("gamma")]
    assert len(gammas) == 4 and all(torch.equal(g, torch.full_like(g, 1e-4)) for g in gammas)
    assert_same_init(pooled(_ours(build, plan), SEEDS), pooled(_library(build, reference), SEEDS))


def test_layer_scale_init_values_on_the_meta_device_come_from_the_plan_string() -> None:
    # nothing to read on the meta device: the knob's default (LayerScale's 1e-5) unless the plan gives it
    for plan, expected in (("vit_timm", 1e-5), ("vit_timm(init_values=0.1)", 0.1)):
        with torch.device("meta"):
            model = ViT(init_values=0.1)
        report = il.init_model(model, plan, seed=0, device="cpu", strict=True)
        gamma = model.blocks[0].ls1.gamma
        assert torch.equal(gamma, torch.full_like(gamma, expected)), plan
        assert report.plan == f"vit_timm(init_values={expected!r})"
    # materialized, the value is read from the model: the report's plan string reproduces it
    report = il.init_model(ViT(init_values=3e-3), "vit_timm", seed=0, strict=True)
    assert report.plan == f"vit_timm(init_values={float(torch.tensor(3e-3))!r})"


def test_vit_jax_nlhb_head_bias_is_a_knob() -> None:
    head_bias = -math.log(10)
    ours = pooled(_ours(ViT, f"vit_jax(head_bias={head_bias!r})"), SEEDS)
    assert_same_init(ours, pooled(_library(ViT, lambda m: vit_jax_reference(m, head_bias)), SEEDS))


@pytest.mark.parametrize("bottleneck", [False, True], ids=["basic", "bottleneck-grouped"])
@pytest.mark.parametrize("zero_init_residual", [False, True])
def test_resnet_matches_torchvision(bottleneck: bool, zero_init_residual: bool) -> None:
    build = lambda: ResNet(bottleneck)  # noqa: E731
    plan = f"resnet(zero_init_residual={zero_init_residual})"
    reference = _library(build, lambda m: resnet_reference(m, zero_init_residual))
    assert_same_init(pooled(_ours(build, plan), SEEDS), pooled(reference, SEEDS))


@pytest.mark.parametrize(("plan", "reference"), [("t_fixup", t_fixup_reference), ("deepnet", deepnet_reference)])
def test_deep_transformer_recipes_scale_each_stack_by_its_depth(plan: str, reference: Callable[..., nn.Module]) -> None:
    assert_same_init(pooled(_ours(EncoderDecoder, plan), SEEDS), pooled(_library(EncoderDecoder, reference), SEEDS))


def test_deepnet_on_one_stack_uses_8l() -> None:
    model = NanoGPT(GPTConfig(n_layer=4))
    with pytest.warns(UserWarning, match="packed q/k/v projection"):
        report = il.init_model(model, "deepnet", seed=0, strict=False)
    assert report.plan == "deepnet(encoder_layers=0, decoder_layers=4)"
    fc = model.transformer.h[0].mlp.c_fc.weight.detach()
    expected = (8 * 4) ** -0.25 * math.sqrt(2 / (64 + 256))
    assert abs(fc.std().item() / expected - 1) < 5 / math.sqrt(2 * fc.numel())


def test_a_packed_qkv_projection_is_reported_not_silently_left_unscaled() -> None:
    with pytest.warns(UserWarning, match="packed q/k/v projection"):
        report = il.init_model(NanoGPT(GPTConfig()), "t_fixup")
    assert any("transformer.h.0.attn.c_attn.weight" in w for w in report.warnings)
    with pytest.raises(ValueError, match="packed q/k/v"):
        il.init_model(NanoGPT(GPTConfig()), "t_fixup", strict=True)


# -- knobs ---------------------------------------------------------------------------------------------
def test_knobs_come_from_the_config_else_from_the_structure() -> None:
    assert str(Plan.parse("gpt2").bind(NanoGPT(GPTConfig(n_layer=3)))) == "gpt2(std=0.02, n_layer=3)"
    model = NanoGPT(GPTConfig(n_layer=5))
    del model.config
    assert str(Plan.parse("gpt2").bind(model)) == "gpt2(std=0.02, n_layer=5)"
    assert str(Plan.parse("llama").bind(hf_llama())) == "llama(std=0.03)"
    assert str(Plan.parse("neox").bind(_neox())) == "neox(hidden=64, n_layer=2)"


def test_knobs_given_in_the_plan_string_win() -> None:
    model = NanoGPT(GPTConfig(n_layer=2))
    report = il.init_model(model, "gpt2(n_layer=48, std=0.01)", seed=1)
    assert report.plan == "gpt2(std=0.01, n_layer=48)"
    c_proj = model.transformer.h[0].mlp.c_proj.weight.detach()
    expected = 0.01 / math.sqrt(96)
    assert abs(c_proj.std().item() / expected - 1) < 5 / math.sqrt(2 * c_proj.numel())


def test_the_reports_plan_string_reproduces_the_init() -> None:
    first, second = NanoGPT(GPTConfig()), NanoGPT(GPTConfig())
    report = il.init_model(first, "gpt2", seed=3)
    il.init_model(second, report.plan, seed=3)
    for (name, a), b in zip(first.named_parameters(), second.parameters()):
        assert torch.equal(a, b), name


def test_bad_knobs_are_refused_with_the_knobs_that_exist() -> None:
    with pytest.raises(ValueError, match="unknown knob 'depth'.*std, n_layer"):
        Plan.parse("gpt2(depth=3)")
    with pytest.raises(ValueError, match="n_layer must be an integer, got 2.5"):
        Plan.parse("gpt2(n_layer=2.5)")
    with pytest.raises(ValueError, match=r"needs knob n_layer.*gpt2\(n_layer=\.\.\.\)"):
        il.init_model(nn.Linear(4, 4), "gpt2")
    with pytest.raises(ValueError, match="not both 0"):
        il.init_model(nn.Linear(4, 4), "t_fixup")


def test_knobs_out_of_range_are_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match=r"knob n_layer .* must be > 0, got -1 \(given in the plan\)"):
        Plan.parse("gpt2(n_layer=-1)")
    with pytest.raises(ValueError, match="knob std .* must be > 0, got 0"):
        Plan.parse("megatron(std=0)")
    model = NanoGPT(GPTConfig(n_layer=2))
    model.config.n_layer = 0  # a config value is checked as a given one
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"n_layer .* must be > 0, got 0 \(read from config.n_layer\)"):
        il.init_model(model, "gpt2")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert str(Plan.parse("vit_jax(head_bias=-2.3)")) == "vit_jax(head_bias=-2.3)"  # a bias may be negative


def test_gpt2_materializes_a_meta_model() -> None:
    with torch.device("meta"):
        model = hf_gpt2()
    report = il.init_model(model, "gpt2", seed=0, strict=True)
    assert report.materialized == "cpu" and report.warnings == []
    assert all(p.device.type == "cpu" for p in model.parameters())
    c_proj = model.transformer.h[1].attn.c_proj.weight.detach()
    assert abs(c_proj.std().item() / 0.01 - 1) < 5 / math.sqrt(2 * c_proj.numel())


def test_describe_explains_a_recipe_with_its_sources() -> None:
    for name in il.plan.RECIPES:
        text = Plan.parse(name).describe()
        assert text.startswith(f"{name}: ") and "reproduces:" in text
        assert "@" in text or "transformers 5.24.0" in text or "et al." in text


def test_docs_recipes_name_every_recipe_with_its_sources_and_commits() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "recipes.md").read_text(encoding="utf-8")
    which = text.split("## Which recipe", 1)[1].split("\n## ", 1)[0]
    headings = [line[4:] for line in text.splitlines() if line.startswith("### ")]
    for recipe in RECIPE_LIST:
        assert f"`{recipe.name}`" in which, recipe.name
        assert any(recipe.name in heading.replace(",", " ").split() for heading in headings), recipe.name
        for commit in re.findall(r"@([0-9a-f]{40})", " ".join(recipe.sources)):
            assert commit in text, (recipe.name, commit)
