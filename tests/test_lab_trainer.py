"""The trainer: learns from a sound init, flags divergence and stalls, is reproducible by seed."""

from __future__ import annotations

import math

import pytest
import torch

import initlab
from initlab.lab.data import load_dataset
from initlab.lab.models import build_model
from initlab.lab.trainer import RunResult, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _model(data, spec="mlp:*-32-*:relu", plan="he_normal", seed=0):
    model = build_model(spec, data.input_shape, data.num_classes)
    initlab.init_model(model, plan=plan, seed=seed)
    return model


def test_he_init_mlp_learns_digits_with_plain_sgd(digits) -> None:
    result = train(_model(digits), digits, steps=60, batch_size=64, seed=0)
    assert result.status == "ok"
    assert result.final["train_loss"] < 0.5 * result.history[0]["loss"]
    assert result.final["test_accuracy"] > 0.8  # chance is 0.1
    assert [row["step"] for row in result.history] == list(range(1, 61))
    evaluated = [row["step"] for row in result.history if not math.isnan(row["test_accuracy"])]
    assert evaluated == [23, 46, 60]  # each epoch of 23 minibatches, and the last step


def test_zero_init_stalls_because_hidden_units_stay_identical(digits) -> None:
    result = train(_model(digits, plan="zeros"), digits, steps=40, seed=0)
    assert result.status == "stalled"
    assert result.final["train_loss"] > 0.95 * result.history[0]["loss"]


def test_nan_loss_ends_the_run_as_diverged_without_raising(digits) -> None:
    result = train(_model(digits), digits, steps=50, lr=1e4, seed=0)
    assert result.status == "diverged"
    assert result.diverged_at is not None and result.diverged_at < 50
    assert result.history[-1]["step"] == result.diverged_at
    assert math.isnan(result.final["test_accuracy"])


def test_same_seed_gives_the_same_run_and_leaves_the_global_rng_alone(digits) -> None:
    model = _model(digits, spec="mlp:*-16-*:tanh+dropout=0.2")
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    first = train(model, digits, steps=12, batch_size=32, seed=3)
    assert torch.rand(1) == expected
    second = train(_model(digits, spec="mlp:*-16-*:tanh+dropout=0.2"), digits, steps=12, batch_size=32, seed=3)
    other = train(_model(digits, spec="mlp:*-16-*:tanh+dropout=0.2"), digits, steps=12, batch_size=32, seed=4)
    assert first.losses == second.losses
    assert first.losses != other.losses


def test_adam_and_record_round_trip(digits) -> None:
    result = train(_model(digits), digits, optimizer="adam", steps=20, batch_size=128, log_every=5, seed=0)
    assert result.info["optimizer"] == "adam" and result.info["lr"] == 1e-3
    assert [row["step"] for row in result.history][:3] == [1, 5, 10]
    again = RunResult.from_dict(result.to_dict())
    assert again.history == result.history and again.final == result.final


def test_probe_every_records_layer_statistics_during_training(digits) -> None:
    result = train(_model(digits), digits, steps=6, batch_size=64, probe_every=2, seed=0)
    report = result.probe
    assert report is not None
    assert len(report.rows) >= 2  # one hidden layer and the output layer
    assert max(report.steps) >= 4


@pytest.mark.parametrize(
    ("options", "message"),
    [({"optimizer": "lbfgs"}, "optimizer must be one of"), ({"lr": -1.0}, "lr must be"),
     ({"steps": 5, "epochs": 2}, "steps or epochs"), ({"batch_size": 0}, "batch_size"),
     ({"seed": -1}, "seed"), ({"optimizer": "adam", "momentum": 0.9}, "momentum is for SGD")],
)
def test_bad_options_are_named(digits, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        train(_model(digits), digits, **options)
