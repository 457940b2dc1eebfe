"""Seed-batched training gives the numbers of one-by-one training, copy by copy."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import initlab
from initlab.lab.batched import make_model, train_batched, train_stacked
from initlab.lab.data import load_dataset
from initlab.lab.models import build_model
from initlab.lab.trainer import train

# float32 sums in a different order: agreement to ~1e-4 relative after tens of steps
TOLERANCE = 2e-4


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _assert_same(one, batched) -> None:
    assert one.status == batched.status
    assert [r["step"] for r in one.history] == [r["step"] for r in batched.history]
    for a, b in zip(one.history, batched.history):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
            if math.isnan(a[key]):
                assert math.isnan(b[key]), key
            else:
                assert b[key] == pytest.approx(a[key], rel=TOLERANCE, abs=TOLERANCE), key
    for key, value in one.final.items():
        assert batched.final[key] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), key


def test_batched_inits_and_seeds_match_one_by_one_training(digits) -> None:
    spec, inits, seeds = "mlp:*-32x2-*:relu", ["he_normal", "orthogonal"], [0, 1]
    options = dict(steps=20, batch_size=64, lr=0.1)
    batched = train_batched(spec, digits, inits, seeds, **options)
    assert [(r.info["init"], r.info["seed"]) for r in batched] == [(i, s) for i in inits for s in seeds]
    for result in batched:
        model = make_model(spec, digits, result.info["init"], result.info["seed"])
        _assert_same(train(model, digits, seed=result.info["seed"], **options), result)


def test_vmap_path_with_batch_norm_matches_one_by_one(digits) -> None:
    models = []
    for seed in (0, 1):
        model = build_model("cnn:*-4-p-8-*:relu+bn", digits.input_shape, digits.num_classes)
        initlab.init_model(model, plan="he_normal", seed=seed)
        models.append(model)
    copies = [copy.deepcopy(m) for m in models]
    options = dict(steps=8, batch_size=128, optimizer="momentum")
    batched = train_stacked(copies, digits, [0, 1], **options)
    for model, seed, result in zip(models, (0, 1), batched):
        _assert_same(train(model, digits, seed=seed, **options), result)
    # trained values and running statistics are copied back into the models
    for model, trained in zip(models, copies):
        assert torch.allclose(model.hidden[0].norm.running_mean, trained.hidden[0].norm.running_mean, atol=1e-5)
        assert torch.allclose(model.output.weight, trained.output.weight, atol=1e-4)


def test_a_diverging_copy_does_not_disturb_the_others(digits) -> None:
    def huge(model, seed):
        initlab.init_model(model, plan="he_normal", seed=seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(1e3)

    results = train_batched("mlp:*-16-*:relu", digits, ["he_normal", huge], [0], steps=20, lr=0.5)
    alone = train_batched("mlp:*-16-*:relu", digits, ["he_normal"], [0], steps=20, lr=0.5)
    assert results[1].status == "diverged" and results[1].diverged_at is not None
    assert results[0].status == "ok"
    assert results[0].losses == pytest.approx(alone[0].losses, rel=1e-5)


def test_batched_training_rejects_mixed_architectures(digits) -> None:
    small = build_model("mlp:*-8-*", digits.input_shape, digits.num_classes)
    large = build_model("mlp:*-9-*", digits.input_shape, digits.num_classes)
    with pytest.raises(ValueError, match="share one architecture"):
        train_stacked([small, large], digits, [0, 1], steps=1)
    with pytest.raises(ValueError, match="one seed per model"):
        train_stacked([small], digits, [0, 1], steps=1)
