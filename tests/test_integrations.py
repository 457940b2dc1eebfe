"""initlab.integrations: FSDP2 and FSDP1 meta init (the runnable example, 2 processes) and Hugging Face from_config."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import initlab
from initlab.integrations import empty_parameters, from_config, init_sharded_model, param_init_fn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PLAN = "he; *norm.weight=ones"


def _tiny_llama() -> object:
    transformers = pytest.importorskip("transformers")
    return transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)


def test_from_config_equals_init_model_on_the_eagerly_built_model_with_tied_weights_and_buffers() -> None:
    config = _tiny_llama()
    from transformers import AutoModelForCausalLM

    model, report = from_config(config, PLAN, 3)
    assert report.materialized == "cpu" and report.rng.startswith("counter")
    eager = AutoModelForCausalLM.from_config(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        initlab.init_model(eager, PLAN, 3)
    built, reference = model.state_dict(), eager.state_dict()
    assert built.keys() == reference.keys()
    assert all(torch.equal(built[key], reference[key]) for key in reference)  # buffers (rotary frequencies) too
    assert model.lm_head.weight is model.model.embed_tokens.weight
    tokens = torch.randint(0, 128, (2, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(tokens).logits, eager(tokens).logits)


def test_from_config_refuses_a_plan_that_leaves_parameters_without_values() -> None:
    with pytest.raises(ValueError, match="input_layernorm.weight.*uninitialised"):
        from_config(_tiny_llama(), "he; *input_layernorm.weight=keep", 3)
    with pytest.raises(TypeError, match="auto_class"):
        from_config(_tiny_llama(), PLAN, 3, auto_class=object())


def test_empty_parameters_puts_parameters_on_meta_and_keeps_buffers() -> None:
    with empty_parameters():
        layer = nn.Linear(4096, 4096)  # its reset_parameters runs on meta tensors
        norm = nn.BatchNorm1d(8)
    assert layer.weight.is_meta and layer.bias.is_meta and isinstance(layer.weight, nn.Parameter)
    assert not norm.running_var.is_meta and torch.equal(norm.running_var, torch.ones(8))
    assert not nn.Linear(2, 2).weight.is_meta  # the patch is gone after the block


def test_param_init_fn_initializes_the_whole_model_once_with_qualified_names() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from fsdp2_meta_init import Model
    finally:
        sys.path.remove(str(EXAMPLES))
    with torch.device("meta"):
        model = Model()
    initialize = param_init_fn(model, PLAN, 5)
    # FSDP1 calls it on each module that still holds meta tensors, innermost unit first
    for module in (model.layers[1], model.layers[0], model):
        initialize(module)
    assert len(initialize.reports) == 1  # type: ignore[attr-defined]
    single = Model()
    initlab.init_model(single, PLAN, 5)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), single.parameters()))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        param_init_fn("model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.nn.Module"):
        init_sharded_model(None)  # type: ignore[arg-type]


@pytest.mark.distributed
@pytest.mark.slow
def test_the_fsdp_example_gives_one_process_weights_on_two_ranks(capfd: pytest.CaptureFixture[str]) -> None:
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    sys.path.insert(0, str(EXAMPLES))  # the spawned ranks import the example too
    try:
        from fsdp2_meta_init import main

        assert main(["--world", "2"]) == 0  # a rank exits 1 when a gathered weight differs
    finally:
        sys.path.remove(str(EXAMPLES))
    out = capfd.readouterr().out
    assert "FSDP2: rank 0 filled" in out and "bit for bit: True" in out and "False" not in out
