"""One argument order for the functions that take a model and data, and the old spellings kept one release."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import initlab as il
from initlab.datainit import (
    calibrate_gradients,
    gradient_ratios,
    gradinit,
    layerwise_pretrain,
    lsuv,
    weight_norm_init,
)

MODEL_AND_DATA = [il.audit, calibrate_gradients, gradient_ratios, gradinit, lsuv, weight_norm_init, layerwise_pretrain]


@pytest.mark.parametrize("function", MODEL_AND_DATA, ids=lambda f: f.__name__)
def test_model_batch_then_target_and_every_option_a_keyword(function) -> None:  # type: ignore[no-untyped-def]
    parameters = list(inspect.signature(function).parameters.values())
    positional = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional in (["model", "batch"], ["model", "batch", "target"])
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters[len(positional):])
    if "loss_fn" in inspect.signature(function).parameters:
        assert positional[-1] == "target"


def test_probe_takes_the_model_and_keywords() -> None:
    parameters = list(inspect.signature(il.Probe).parameters.values())
    assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == ["model"]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def test_the_old_audit_order_warns_and_gives_the_same_report() -> None:
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    loss = nn.CrossEntropyLoss()
    new = il.audit(_net(), x, y, loss_fn=loss)
    with pytest.warns(DeprecationWarning, match="audit"):
        old = il.audit(_net(), x, loss, y)
    assert old.loss == new.loss and [r.grad_norm for r in old.rows] == [r.grad_norm for r in new.rows]


def test_positional_tuning_options_and_renamed_keywords_warn_and_still_apply() -> None:
    x = torch.randn(32, 6)
    with pytest.warns(DeprecationWarning, match="target_std, tol"):
        report = lsuv(_net(), x, 2.0, 0.01)
    assert report.summary["target_std"] == 2.0
    with pytest.warns(DeprecationWarning, match="iterations"):
        calibrate_gradients(_net(), x, iterations=2)
    with pytest.warns(DeprecationWarning, match="data"):
        layerwise_pretrain(_net(), data=x, steps=1)
    with pytest.raises(TypeError, match="both"):
        calibrate_gradients(_net(), x, iterations=2, max_iter=2)


def test_on_step_takes_the_step_and_old_two_argument_callbacks_warn() -> None:
    from initlab.lab.data import load_dataset
    from initlab.lab.trainer import train

    dataset = load_dataset("xor", seed=0)
    seen: list[int] = []
    train(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)), dataset, steps=3, on_step=seen.append)
    assert seen == [1, 2, 3]
    old: list[tuple[int, float]] = []
    with pytest.warns(DeprecationWarning, match="on_step"):
        train(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)), dataset, steps=2,
              on_step=lambda step, loss: old.append((step, loss)))
    assert [step for step, _ in old] == [1, 2] and all(loss > 0 for _, loss in old)
