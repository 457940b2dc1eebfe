"""Seed batching's per-model options give, copy by copy, the numbers of one-by-one training."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import initlab
from initlab.lab.batched import train_stacked
from initlab.lab.data import load_dataset
from initlab.lab.models import build_model
from initlab.lab.trainer import train

# float32 sums in a different order: agreement to ~1e-4 relative after tens of steps
TOLERANCE = 2e-4


@pytest.fixture(scope="module")
def splits():
    return [load_dataset("digits", seed=seed) for seed in (0, 1)]


def _model(data, spec="mlp:*-16-*:tanh", seed=0, dtype=torch.float32):
    model = build_model(spec, data.input_shape, data.num_classes).to(dtype)
    initlab.init_model(model, plan="glorot_uniform", seed=seed)
    return model


def _assert_same(one, batched) -> None:
    assert one.status == batched.status
    for a, b in zip(one.history, batched.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=TOLERANCE, abs=TOLERANCE)
    for key, value in one.final.items():
        assert batched.final[key] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), key


def test_each_copy_trains_on_its_own_split_as_it_would_alone(splits) -> None:
    models = [_model(split, seed=seed) for seed, split in enumerate(splits)]
    alone = [train(copy.deepcopy(m), split, seed=seed, steps=15, batch_size=64)
             for seed, (m, split) in enumerate(zip(models, splits))]
    batched = train_stacked(models, splits, [0, 1], steps=15, batch_size=64)
    for one, together in zip(alone, batched):
        _assert_same(one, together)
    # the two splits really differ: the same init on another split gives another test accuracy
    assert batched[0].final["test_accuracy"] != batched[1].final["test_accuracy"]


def test_each_copy_can_have_its_own_learning_rate(splits) -> None:
    models = [_model(splits[0], seed=0), _model(splits[0], seed=0)]
    alone = [train(copy.deepcopy(m), splits[0], seed=0, steps=12, batch_size=64, lr=lr, optimizer="momentum")
             for m, lr in zip(models, (0.02, 0.2))]
    batched = train_stacked(models, splits[0], [0, 0], steps=12, batch_size=64, lr=[0.02, 0.2], optimizer="momentum")
    for one, together in zip(alone, batched):
        _assert_same(one, together)
    assert [r.info["lr"] for r in batched] == [0.02, 0.2]


def test_lr_scale_multiplies_the_named_parameters_rate(splits) -> None:
    data = splits[0]
    model = _model(data)
    reference = copy.deepcopy(model)
    scale = {"output.weight": 3.0, "hidden.0.linear.bias": 0.5}
    train_stacked([model], data, [0], steps=5, lr=0.1, lr_scale=scale)
    x, y = data.x_train, data.y_train
    for _ in range(5):  # plain full-batch SGD with per-parameter rates, by hand
        loss = torch.nn.functional.cross_entropy(reference(x), y)
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for (name, parameter), grad in zip(reference.named_parameters(), grads):
                parameter -= 0.1 * scale.get(name, 1.0) * grad
    for (name, trained), (_, expected) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(trained, expected, rtol=1e-4, atol=1e-5, msg=name)


def test_squared_error_of_logistic_outputs_matches_one_by_one(splits) -> None:
    model = _model(splits[0], spec="mlp:*-16-*:sigmoid")
    alone = train(copy.deepcopy(model), splits[0], seed=3, steps=10, batch_size=32, lr=2.0, loss="sigmoid_mse")
    batched = train_stacked([model], splits[0], [3], steps=10, batch_size=32, lr=2.0, loss="sigmoid_mse")
    _assert_same(alone, batched[0])
    # the loss is (sigmoid(z) - one_hot)^2 averaged over classes: at most 1, not a cross-entropy
    assert 0.0 < batched[0].history[0]["loss"] < 1.0


def test_a_float64_model_trains_in_float64(splits) -> None:
    model = _model(splits[0], dtype=torch.float64)
    result = train_stacked([model], splits[0], [0], steps=3, lr=0.1)[0]
    assert model.output.weight.dtype == torch.float64 and math.isfinite(result.final["train_loss"])
    single = train(_model(splits[0], dtype=torch.float64), splits[0], steps=3, lr=0.1)
    assert single.final["train_loss"] == pytest.approx(result.final["train_loss"], rel=1e-9)


def test_bad_per_model_options_are_rejected_with_what_is_accepted(splits) -> None:
    models = [_model(splits[0]), _model(splits[0])]
    with pytest.raises(ValueError, match="one learning rate per model"):
        train_stacked(models, splits[0], [0, 1], steps=1, lr=[0.1])
    with pytest.raises(ValueError, match="every per-model lr must be > 0"):
        train_stacked(models, splits[0], [0, 1], steps=1, lr=[0.1, -1.0])
    with pytest.raises(ValueError, match="need SGD"):
        train_stacked(models, splits[0], [0, 1], steps=1, lr=[0.1, 0.2], optimizer="adam")
    with pytest.raises(ValueError, match="unknown parameters"):
        train_stacked(models, splits[0], [0, 1], steps=1, lr_scale={"nope": 2.0})
    with pytest.raises(ValueError, match="one data set per model"):
        train_stacked(models, [splits[0]] * 3, [0, 1], steps=1)
    small = load_dataset("digits", seed=0, test_fraction=0.5)
    with pytest.raises(ValueError, match="equal sizes"):
        train_stacked(models, [splits[0], small], [0, 1], steps=1)
    with pytest.raises(ValueError, match="loss must be one of"):
        train_stacked(models, splits[0], [0, 1], steps=1, loss="hinge")
