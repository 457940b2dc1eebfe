"""initlab.mup against the ``mup`` package (microsoft/mup 1.0.0, in the dev extra).

An MLP and a small Transformer at two widths over a base of width 64: the
same width shapes as ``mup.set_base_shapes``, the same init std per
parameter (the MuReadout's effective weight, output_mult / width_mult times
what it stores), and the same training trajectory under ``MuAdam``/``MuSGD``
and torch's Adam/SGD on :func:`initlab.mup.param_groups` (float64, the model
outputs agree to 1e-9 after several steps). The coordinate check: the size
of the activation updates over 4 widths and 4 seeds is flat in width for muP
and grows for the standard parametrization.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import initlab as il
import initlab.mup

mup = pytest.importorskip("mup")

Z = 5.0
BASE = 64
VOCAB = 11


def mlp(width: int, readout: Callable[..., nn.Module] = nn.Linear) -> nn.Module:
    return nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), readout(width, 10))


class TinyTransformer(nn.Module):
    def __init__(self, width: int, readout: Callable[..., nn.Module] = nn.Linear) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.block = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=2 * width, dropout=0.0, batch_first=True)
        self.readout = readout(width, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.readout(self.block(self.embed(tokens)))


MODELS = {"mlp": mlp, "transformer": TinyTransformer}


def inputs(kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        return torch.randn(32, 16, generator=generator, dtype=torch.float64), torch.randint(0, 10, (32,), generator=generator)
    tokens = torch.randint(0, VOCAB, (4, 6), generator=generator)
    return tokens, torch.randint(0, VOCAB, (4 * 6,), generator=generator)


def mup_model(kind: str, width: int, output_mult: float = 1.0, seed: int = 0) -> nn.Module:
    """The mup package's model: MuReadout output, torch's default init, then set_base_shapes."""
    torch.manual_seed(seed)
    readout = lambda i, o: mup.MuReadout(i, o, output_mult=output_mult)  # noqa: E731
    model = MODELS[kind](width, readout)
    mup.set_base_shapes(model, MODELS[kind](BASE, readout))
    return model


def effective(model: nn.Module) -> dict[str, torch.Tensor]:
    """The mup model's parameters as the function sees them: a MuReadout's weight times output_mult / width_mult."""
    values = {name: p.detach().clone() for name, p in model.named_parameters()}
    for prefix, module in model.named_modules():
        if isinstance(module, mup.MuReadout):
            values[f"{prefix}.weight"] *= module.output_mult / module.width_mult()
    return values


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("width", [128, 256])
def test_width_shapes_are_mups_infshapes(kind: str, width: int) -> None:
    model, base = MODELS[kind](width), MODELS[kind](BASE)
    ours = il.mup.width_shapes(model, base)
    reference = mup.zip_infshapes(base, model)
    assert set(ours) == set(reference)
    for name, infshape in reference.items():
        shape = ours[name]
        assert shape.ninf == infshape.ninf(), name
        assert shape.width_mult == pytest.approx(infshape.width_mult(), rel=1e-15), name
        if infshape.ninf() == 2:
            assert shape.fanin_mult / shape.fanout_mult == pytest.approx(infshape.fanin_fanout_mult_ratio(), rel=1e-15)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("width", [128, 256])
@pytest.mark.parametrize("output_mult", [1.0, 2.5])
def test_init_stds_are_mups_effective_stds(kind: str, width: int, output_mult: float) -> None:
    reference = effective(mup_model(kind, width, output_mult))
    model = MODELS[kind](width)
    report = il.init_model(model, plan=il.mup.plan(MODELS[kind](BASE), output_mult=output_mult), seed=0)
    ours = dict(model.named_parameters())
    for name, values in reference.items():
        expected = report[name].expected_std
        n = values.numel()
        # the sample std of n draws of a law with kurtosis <= 3 is within Z sqrt(2 / (4 n)) of its std, relatively
        tolerance = Z * expected * math.sqrt(2.0 / (4 * n)) + 1e-12
        assert abs(float(values.std(unbiased=False)) - expected) < tolerance, name
        assert abs(float(ours[name].detach().std(unbiased=False)) - expected) < tolerance, name
    if kind == "mlp":  # the readout: c sqrt(base) / W for a normal init of std 1/sqrt(fan_in); U[+-1/sqrt(fan_in)] has 1/sqrt(3) of it
        assert report["4.weight"].expected_std == pytest.approx(output_mult * math.sqrt(BASE / 3.0) / width, rel=1e-12)
        assert report["2.bias"].expected_std == pytest.approx(1 / math.sqrt(3 * BASE), rel=1e-12)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, kind: str, steps: int) -> torch.Tensor:
    x, y = inputs(kind)
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y).backward()
        optimizer.step()
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("width", [128, 256])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw"])
def test_param_groups_train_the_same_function_as_mups_optimizers(kind: str, width: int, optimizer: str) -> None:
    # Adam's weight decay is an L2 term inside the normalised step: no plain weight reproduces it on a MuReadout
    output_mult, lr, weight_decay = 2.0, (1e-2 if optimizer != "sgd" else 0.5), (0.0 if optimizer == "adam" else 0.1)
    reference = mup_model(kind, width, output_mult).double()
    model = MODELS[kind](width).double()
    with torch.no_grad():
        for name, value in effective(reference).items():
            dict(model.named_parameters())[name].copy_(value)
    x, _ = inputs(kind)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-12, atol=1e-12)
    make = {"adam": (mup.MuAdam, torch.optim.Adam), "adamw": (mup.MuAdamW, torch.optim.AdamW), "sgd": (mup.MuSGD, torch.optim.SGD)}[optimizer]
    options: dict[str, Any] = {"eps": 1e-30} if optimizer != "sgd" else {}
    theirs = make[0](reference.parameters(), lr=lr, weight_decay=weight_decay, **options)
    groups = il.mup.param_groups(model, MODELS[kind](BASE), optimizer=optimizer, lr=lr, weight_decay=weight_decay, output_mult=output_mult)
    ours = make[1](groups, **options)
    # every parameter but the readout's weight has mup's learning rate and weight decay
    mup_lr = {id(p): (g["lr"], g["weight_decay"]) for g in theirs.param_groups for p in g["params"]}
    reference_params = dict(reference.named_parameters())
    readout = "4.weight" if kind == "mlp" else "readout.weight"
    for group in groups:
        for name in group["names"]:
            if name != readout:
                assert (group["lr"], group["weight_decay"]) == pytest.approx(mup_lr[id(reference_params[name])], rel=1e-15), name
    torch.testing.assert_close(_train(model, ours, kind, 4), _train(reference, theirs, kind, 4), rtol=1e-9, atol=1e-9)


def test_plan_strings_base_width_and_errors() -> None:
    model = mlp(256)
    by_width = il.init_model(model, plan="mup(base=64, width=256)", seed=0)
    by_model = il.init_model(mlp(256), plan=il.mup.plan(mlp(BASE)), seed=0)
    assert [row.expected_std for row in by_width.rows] == pytest.approx([row.expected_std for row in by_model.rows], rel=1e-15)
    plan = il.mup.plan(mlp(BASE), output_mult=3.0, readout_zero_init=True)
    assert il.Plan.parse(str(plan)) == plan
    il.init_model(model, plan=plan, seed=0)
    assert torch.all(model[4].weight == 0) and torch.all(model[4].bias != 0)
    value = il.Plan.parse("mup(base=64, width=256, output_mult=2.0)").default
    by_value = il.mup.param_groups(model, value, optimizer="sgd", lr=0.1)
    by_base = il.mup.param_groups(model, mlp(BASE), optimizer="sgd", lr=0.1, output_mult=2.0)
    assert [(g["names"], g["lr"]) for g in by_value] == [(g["names"], g["lr"]) for g in by_base]
    with pytest.raises(ValueError, match="contradicts"):
        il.mup.param_groups(model, value, lr=0.1, output_mult=3.0)
    with pytest.raises(ValueError, match="base"):
        il.Plan.parse("mup(base=(('0.weight', (64, 'x')),))")
    with pytest.raises(ValueError, match="needs width="):
        il.Plan.parse("mup(base=64)")
    with pytest.raises(ValueError, match="same parameter names"):
        il.mup.param_groups(mlp(256), nn.Linear(3, 3), lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        il.mup.param_groups(mlp(256), mlp(BASE), optimizer="lion", lr=0.1)
    with pytest.raises(ValueError, match="more than 2 width dimensions"):
        il.mup.width_shapes(nn.Conv2d(256, 256, 5), {"weight": (64, 64, 3, 3), "bias": (64,)})
    # a delta model marks the widths: the base's 64 against a delta of 128
    shapes = il.mup.base_shapes(mlp(BASE), mlp(128))
    assert shapes["0.weight"] == (64, None) and shapes["4.weight"] == (None, 64)


def _activation_updates(width: int, seed: int, parametrization: str, steps: int = 3, lr: float = 1e-2) -> tuple[float, float]:
    """Mean |delta| of the second layer's pre-activations and of the logits after ``steps`` Adam steps."""
    model = mlp(width)
    if parametrization == "mup":
        il.init_model(model, plan=il.mup.plan(mlp(BASE)), seed=seed)
        optimizer = torch.optim.Adam(il.mup.param_groups(model, mlp(BASE), optimizer="adam", lr=lr))
    else:
        il.init_model(model, plan="torch_default", seed=seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(1000 + seed)
    x, y = torch.randn(64, 16, generator=generator), torch.randint(0, 10, (64,), generator=generator)
    hidden = lambda: model[2](model[1](model[0](x)))  # noqa: E731
    with torch.no_grad():
        h0, out0 = hidden(), model(x)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        return float((hidden() - h0).abs().mean()), float((model(x) - out0).abs().mean())


def test_coordinate_check_is_flat_for_mup_and_grows_for_standard_parametrization() -> None:
    widths, seeds = [64, 128, 256, 512], range(4)
    slopes = {}
    for parametrization in ("mup", "sp"):
        sizes = np.array([[_activation_updates(w, s, parametrization) for s in seeds] for w in widths]).mean(axis=1)
        for column, what in enumerate(("hidden", "logits")):
            slopes[parametrization, what] = np.polyfit(np.log2(widths), np.log2(sizes[:, column]), 1)[0]
    # log2 update size per doubling of the width: muP's stays put (|slope| < 0.15), SP's grows (> 0.3;
    # Adam's SP updates grow like the width itself, slope 1, until the logits saturate)
    assert abs(slopes["mup", "hidden"]) < 0.15 and abs(slopes["mup", "logits"]) < 0.15, slopes
    assert slopes["sp", "hidden"] > 0.3 and slopes["sp", "logits"] > 0.3, slopes


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("output_mult", [1.0, 2.5])
def test_a_model_with_mups_own_readout_gets_mups_raw_weights_and_lrs(kind: str, output_mult: float) -> None:
    # mup.MuReadout applies output_mult / width_mult itself: initlab draws the raw weight mup's set_base_shapes
    # leaves (torch's default times sqrt(width_mult)), not the effective one, so the factor is not applied twice
    width = 256
    readout = lambda i, o: mup.MuReadout(i, o, output_mult=output_mult)  # noqa: E731
    reference = dict(mup_model(kind, width, output_mult).named_parameters())
    model, base = MODELS[kind](width, readout), MODELS[kind](BASE, readout)
    report = il.init_model(model, plan=il.mup.plan(base), seed=0, strict=True)
    mup.set_base_shapes(model, base, rescale_params=False)  # the infshapes mup's forward reads, values kept
    ours = dict(model.named_parameters())
    for name, values in reference.items():
        expected = report[name].expected_std
        tolerance = Z * expected * math.sqrt(2.0 / (4 * values.numel())) + 1e-12
        assert abs(float(values.detach().std(unbiased=False)) - expected) < tolerance, name
        assert abs(float(ours[name].detach().std(unbiased=False)) - expected) < tolerance, name
    name = "4.weight" if kind == "mlp" else "readout.weight"
    assert report[name].expected_std == pytest.approx(math.sqrt(width / BASE) / math.sqrt(3 * width), rel=1e-12)
    # through the forward's output_mult / width_mult it is the effective weight a plain Linear readout gets
    width_mult = width / BASE
    effective_std = report[name].expected_std * output_mult / width_mult
    assert effective_std == pytest.approx(output_mult * math.sqrt(BASE / 3.0) / width, rel=1e-12)
    # learning rates: MuAdam's per parameter (the MuReadout weight is vector-like: lr unchanged)
    groups = il.mup.param_groups(model, base, optimizer="adam", lr=1e-3)
    ours_lr = {n: group["lr"] for group in groups for n in group["names"]}
    theirs = mup.MuAdam(model.parameters(), lr=1e-3)
    by_id = {id(p): group["lr"] for group in theirs.param_groups for p in group["params"]}
    for n, p in model.named_parameters():
        assert ours_lr[n] == pytest.approx(by_id[id(p)], rel=1e-12), n


def test_a_tied_readout_under_mup_is_a_warning_and_strict_refuses_it() -> None:
    class Tied(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, width)
            self.hidden = nn.Linear(width, width)
            self.readout = nn.Linear(width, VOCAB, bias=False)
            self.readout.weight = self.embed.weight

    plan = il.mup.plan(Tied(BASE))
    with pytest.warns(UserWarning, match="shared with readout.weight"):
        report = il.init_model(Tied(256), plan=plan, seed=0)
    assert any("embed.weight is shared with readout.weight" in w and "drew the embedding's default" in w
               for w in report.warnings)
    with pytest.raises(ValueError, match="shared with readout.weight"):
        il.init_model(Tied(256), plan=plan, seed=0, strict=True)


def test_an_embedding_shared_with_mups_shared_readout_gets_mups_init() -> None:
    class Shared(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB * 40, width)
            self.hidden = nn.Linear(width, width)
            self.readout = mup.MuSharedReadout(self.embed.weight, bias=False)

    width = 256
    torch.manual_seed(0)
    reference = Shared(width)
    mup.set_base_shapes(reference, Shared(BASE))  # rescales the shared weight by sqrt(width / BASE)
    model = Shared(width)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tied-readout warning: the readout applies the multiplier itself
        report = il.init_model(model, plan=il.mup.plan(Shared(BASE)), seed=0, strict=True)
    expected = math.sqrt(width / BASE)
    assert report["embed.weight"].expected_std == pytest.approx(expected, rel=1e-12)
    for values in (reference.embed.weight, model.embed.weight):
        n = values.numel()
        assert abs(float(values.detach().std()) - expected) < Z * expected * math.sqrt(2.0 / (4 * n))
    assert model.readout.weight is model.embed.weight
