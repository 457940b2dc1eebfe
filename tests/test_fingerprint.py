"""Fingerprint: the family and std of step-0 checkpoints, and a plan whose draws pass a KS test against them.

Checkpoints come from torch's defaults, Hugging Face ``from_config`` (GPT-2,
BERT, LLaMA tiny configs), initlab's ready plans and Keras-style truncated
inits. Claim: the family is right and the std within 2% for >= 95% of the
tensors; regenerated weights pass a two-sample KS test (p > 0.01) for >= 95%.
At the 0.01 level about 1% of honest comparisons fail by chance, so 95% leaves
room for four times that.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from initlab.diagnosis import Fingerprint, fingerprint
from initlab.plan import init_model
from initlab.schemes import get

stats = pytest.importorskip("scipy.stats")

STD_TOLERANCE = 0.02
REQUIRED_SHARE = 0.95

Truth = dict[str, tuple[str, float]]  # name -> (family, std of the values)


# -- models and their true distributions -------------------------------------------------------------
def torch_default_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(16, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 512), nn.LayerNorm(512),
        nn.Embedding(512, 128), nn.Linear(512, 256),
    )


def torch_default_truth(model: nn.Module) -> Truth:
    truth: Truth = {}
    for name, module in model.named_modules():
        prefix = f"{name}."
        if isinstance(module, nn.Linear | nn.Conv2d):
            fan_in = module.weight[0].numel()
            truth[prefix + "weight"] = ("uniform", 1 / math.sqrt(3 * fan_in))
            truth[prefix + "bias"] = ("uniform", 1 / math.sqrt(3 * fan_in))
        elif isinstance(module, nn.Embedding):
            truth[prefix + "weight"] = ("normal", 1.0)
        elif isinstance(module, nn.LayerNorm):
            truth[prefix + "weight"] = ("ones", 0.0)
            truth[prefix + "bias"] = ("zeros", 0.0)
    return truth


def plan_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(16, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64, 512), nn.Tanh(), nn.Linear(512, 512), nn.Tanh(), nn.Linear(512, 256),
    )


_FAMILY_OF_DISTRIBUTION = {"normal": "normal", "uniform": "uniform", "truncated_normal": "truncated_normal",
                           "orthogonal": "orthogonal", "sparse_normal": "sparse"}


def report_truth(report) -> Truth:
    truth: Truth = {}
    for row in report.rows:
        scheme = get(row.scheme)
        if scheme.name in ("zeros", "ones"):
            truth[row.name] = (scheme.name, 0.0)
        else:
            truth[row.name] = (_FAMILY_OF_DISTRIBUTION[scheme.distribution_for(row.shape)], float(row.expected_std))
    return truth


def _hf(name: str) -> tuple[nn.Module, Truth]:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    if name == "gpt2":
        config = transformers.GPT2Config(n_layer=4, n_embd=128, n_head=4, vocab_size=512, n_positions=128)
        model = transformers.GPT2LMHeadModel(config)
    elif name == "bert":
        config = transformers.BertConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                                         intermediate_size=256, vocab_size=512, max_position_embeddings=128)
        model = transformers.BertForSequenceClassification(config)
    else:
        config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                                          intermediate_size=256, vocab_size=512, max_position_embeddings=128)
        model = transformers.LlamaForCausalLM(config)
    std = config.initializer_range
    truth: Truth = {}
    for pname, p in model.named_parameters():
        if p.dim() == 1:
            truth[pname] = ("ones", 0.0) if pname.endswith("weight") else ("zeros", 0.0)
        elif name == "gpt2" and pname.endswith("c_proj.weight"):
            truth[pname] = ("normal", std / math.sqrt(2 * config.n_layer))
        else:
            truth[pname] = ("normal", std)
    return model, truth


CHECKPOINTS: dict[str, Callable[[], tuple[nn.Module, Truth]]] = {}


def _register(name: str):
    def wrap(fn):
        CHECKPOINTS[name] = fn
        return fn
    return wrap


@_register("torch_default")
def _torch_default():
    model = torch_default_model()
    return model, torch_default_truth(model)


for _plan in ("he", "glorot", "lecun", "orthogonal", "he_truncated_normal; bias=zeros",
              "glorot_truncated_normal; bias=zeros", "truncated_normal(std=0.05, a=-2.0, b=2.0); bias=zeros",
              "sparse(sparsity=0.8, std=0.05); bias=zeros"):
    def _plan_checkpoint(plan: str = _plan):
        model = plan_model()
        return model, report_truth(init_model(model, plan=plan, seed=0))
    CHECKPOINTS[f"plan {_plan}"] = _plan_checkpoint

for _name in ("gpt2", "bert", "llama"):
    CHECKPOINTS[f"hf {_name}"] = lambda name=_name: _hf(name)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _accurate(fp: Fingerprint, truth: Truth) -> list[bool]:
    results = []
    for name, (family, std) in truth.items():
        row = fp[name]
        if family in ("zeros", "ones"):
            results.append(row.family == family)
        else:
            results.append(row.family == family and abs(row.std / std - 1) <= STD_TOLERANCE)
    return results


@pytest.mark.parametrize("checkpoint", sorted(CHECKPOINTS))
def test_fingerprint_names_family_and_std_and_its_plan_regenerates_the_weights(checkpoint: str, tmp_path) -> None:
    torch.manual_seed(0)
    model, truth = CHECKPOINTS[checkpoint]()
    original = _state(model)
    fp = fingerprint(original)
    results = _accurate(fp, truth)
    wrong = [(n, truth[n], fp[n].family, fp[n].std) for n, ok in zip(truth, results) if not ok]
    assert sum(results) / len(results) >= REQUIRED_SHARE, wrong

    init_model(model, plan=str(fp.save_plan(tmp_path / "plan.yaml")), seed=1)
    regenerated = _state(model)
    passed = []
    for name in truth:
        a, b = original[name].flatten().double().numpy(), regenerated[name].flatten().double().numpy()
        if truth[name][0] in ("zeros", "ones"):
            passed.append(bool((a == b).all()))
        else:
            assert not (a == b).all(), f"{name} was not redrawn"
            passed.append(stats.ks_2samp(a, b).pvalue > 0.01)
    failed = [n for n, ok in zip(truth, passed) if not ok]
    assert sum(passed) / len(passed) >= REQUIRED_SHARE, failed


# -- single families --------------------------------------------------------------------------------------
def _one(tensor: torch.Tensor, name: str = "layer.weight"):
    return fingerprint({name: tensor})[name]


def test_constant_families_are_exact() -> None:
    assert _one(torch.zeros(8, 8)).family == "zeros"
    assert _one(torch.ones(8)).family == "ones"
    row = _one(torch.full((4, 4), 0.5))
    assert (row.family, row.parameters["value"], row.scheme) == ("constant", 0.5, "constant(value=0.5)")


def test_identity_and_dirac_are_recognised_with_their_gain() -> None:
    assert _one(torch.eye(32, 48) * 2.0).parameters == {"gain": 2.0}
    row = _one(nn.init.dirac_(torch.empty(16, 8, 3, 3)))
    assert (row.family, row.scheme) == ("dirac", "dirac(gain=1.0)")


@pytest.mark.parametrize("shape", [(64, 64), (128, 32), (32, 256), (64, 16, 3, 3)])
def test_orthogonal_matrices_are_told_from_gaussian_ones(shape) -> None:
    generator = torch.Generator().manual_seed(0)
    assert _one(nn.init.orthogonal_(torch.empty(shape), gain=1.5, generator=generator)).family == "orthogonal"
    assert _one(torch.randn(shape, generator=generator)).family != "orthogonal"


def test_truncated_normal_bounds_are_read_in_sigmas() -> None:
    values = get("truncated_normal(std=0.02, a=-3.0, b=3.0)").sample((256, 256), generator=torch.Generator().manual_seed(0))
    row = _one(values)
    assert row.family == "truncated_normal"
    assert row.parameters["b"] == pytest.approx(3.0, abs=0.05)
    assert row.parameters["sigma"] == pytest.approx(0.02, rel=0.02)


def test_sparse_fraction_is_reported() -> None:
    values = get("sparse(sparsity=0.7, std=0.1)").sample((128, 256), generator=torch.Generator().manual_seed(0))
    row = _one(values)
    assert row.family == "sparse"
    assert row.parameters["fraction"] == pytest.approx(math.ceil(0.7 * 256) / 256, abs=0.01)


def test_explanations_name_the_scheme_and_fans() -> None:
    generator = torch.Generator().manual_seed(0)
    state = {
        "fc.weight": get("he_normal").sample((256, 512), generator=generator),
        "h.0.attn.c_proj.weight": torch.randn(256, 256, generator=generator) * 0.02 / math.sqrt(2 * 12),
        "h.11.attn.c_proj.weight": torch.randn(256, 256, generator=generator) * 0.02 / math.sqrt(2 * 12),
    }
    fp = fingerprint(state)
    assert fp["fc.weight"].explanation == "he_normal fan_in=512"
    assert fp["h.0.attn.c_proj.weight"].explanation == "normal(0.02) / sqrt(2*12)"
    assert "h.*.attn.c_proj.weight" in dict((key, scheme) for key, scheme, _ in fp.rules())


def test_std_error_is_the_stated_bound_from_the_sample_size() -> None:
    row = _one(torch.randn(512, 512, generator=torch.Generator().manual_seed(0)) * 0.3)
    assert row.sample_size == 65536
    assert row.std_error == pytest.approx(1.96 / math.sqrt(2 * 65536), rel=0.1)
    assert abs(row.fitted_std / 0.3 - 1) < 3 * row.std_error


def test_ks_pvalue_agrees_with_scipy() -> None:
    from initlab.diagnosis.fit import ks_pvalue

    for distance, count in ((0.01, 5000), (0.05, 400), (0.2, 30)):
        assert ks_pvalue(distance, count) == pytest.approx(stats.kstwo.sf(distance, count), abs=0.01)


def test_integer_and_meta_tensors_are_skipped_with_a_reason() -> None:
    fp = fingerprint({"ids": torch.arange(4), "w": torch.randn(8, 8), "m": torch.empty(4, device="meta")})
    assert dict(fp.skipped) == {"ids": "int64 tensor", "m": "meta tensor (no values)"}


def test_tied_tensors_share_one_row() -> None:
    weight = torch.randn(64, 32)
    fp = fingerprint({"wte.weight": weight, "lm_head.weight": weight})
    assert len(fp) == 1 and fp["lm_head.weight"].aliases == ("lm_head.weight",)


def test_bad_input_is_refused() -> None:
    with pytest.raises(TypeError):
        fingerprint([torch.zeros(2)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fingerprint({"w": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        fingerprint({"w": torch.zeros(2)}, sample_size=3)


def test_save_plan_refuses_to_overwrite(tmp_path) -> None:
    fp = fingerprint({"w": torch.randn(16, 16)})
    target = tmp_path / "plan.yaml"
    target.write_text("mine\n")
    with pytest.raises(FileExistsError):
        fp.save_plan(target)
    assert target.read_text() == "mine\n"
    fp.save_plan(target, overwrite=True)
    assert "name:w" in target.read_text()
