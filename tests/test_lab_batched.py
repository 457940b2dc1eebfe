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


# ---------------------------------------------------------------- the written-out MLP backward

ENGINE_SPECS = [
    "mlp:12-16x2-5:relu", "mlp:12-16x2-5:tanh+residual", "mlp:12-16-8-5:gelu+nobias", "mlp:12-16x2-5:selu",
    "mlp:12-16x2-5:elu", "mlp:12-16x2-5:silu", "mlp:12-16x2-5:softplus", "mlp:12-16x2-5:leaky_relu",
    "mlp:12-16x2-5:hardtanh", "mlp:12-16x2-5:sigmoid", "mlp:12-16x3-5:linear+residual",
]


@pytest.mark.parametrize("spec", ENGINE_SPECS)
@pytest.mark.parametrize("shared", [False, True], ids=["own-rows", "shared-rows"])
def test_written_out_backward_gives_autograds_gradients(spec, shared) -> None:
    from torch.func import functional_call, stack_module_state, vmap

    from initlab.lab.fused import StackedMLP

    torch.manual_seed(0)
    models = [build_model(spec, (12,), 5) for _ in range(3)]
    engine = StackedMLP.of(models[0])
    assert engine is not None
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(7, 12) if shared else torch.randn(3, 7, 12)
    y = torch.randint(0, 5, (7,) if shared else (3, 7))
    batched = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None if shared else 0))
    logits = batched(params, buffers, x)
    targets = y.expand(3, 7)
    losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    losses = losses.view(3, 7).mean(dim=1)
    expected = torch.autograd.grad(losses.sum(), list(params.values()))
    got_losses, got_logits = engine.loss_and_grad(params, x, y)
    torch.testing.assert_close(got_losses, losses.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_logits, logits.detach(), rtol=1e-6, atol=1e-6)
    for (name, parameter), grad in zip(params.items(), expected):
        torch.testing.assert_close(parameter.grad, grad, rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(engine.forward(params, x), logits.detach(), rtol=1e-6, atol=1e-6)


def test_written_out_backward_matches_one_model_autograd_bit_for_bit_in_hidden_layers() -> None:
    from torch.func import stack_module_state

    from initlab.lab.fused import StackedMLP

    torch.manual_seed(1)
    models = [build_model("mlp:64-128x3-10:relu", (64,), 10) for _ in range(4)]
    params, _ = stack_module_state(models)
    x, y = torch.randn(4, 29, 64), torch.randint(0, 10, (4, 29))
    StackedMLP.of(models[0]).loss_and_grad(params, x, y)
    for i, model in enumerate(models):
        torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        for name, parameter in model.named_parameters():
            if name.startswith("hidden"):  # same kernels in the same order: identical bits
                assert torch.equal(parameter.grad, params[name].grad[i]), name
            else:
                torch.testing.assert_close(parameter.grad, params[name].grad[i], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("spec", ["mlp:*-8-*:relu+bn", "mlp:*-8-*:relu+dropout=0.1", "cnn1d:*-4-*:relu"])
def test_models_the_written_out_backward_does_not_cover_take_the_vmap_path(digits, spec) -> None:
    from initlab.lab.fused import StackedMLP

    assert StackedMLP.of(build_model(spec, digits.input_shape, digits.num_classes)) is None


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_batched_training_with_stateful_optimizers_matches_one_by_one(digits, optimizer) -> None:
    spec, options = "mlp:*-24x2-*:tanh", dict(steps=15, batch_size=50, optimizer=optimizer, weight_decay=1e-3)
    batched = train_batched(spec, digits, ["glorot_normal"], [3, 4], **options)
    for result in batched:
        model = make_model(spec, digits, "glorot_normal", result.info["seed"])
        _assert_same(train(model, digits, seed=result.info["seed"], **options), result)


def test_batch_orders_stack_the_one_seed_orders(digits) -> None:
    from initlab.lab.trainer import TrainConfig, batch_order, batch_orders

    config = TrainConfig.make(100, steps=9, batch_size=32)  # 4 batches per epoch, the last of 4 rows
    stacked = list(batch_orders(100, config, [5, 6, 7]))
    assert len(stacked) == 9 and [len(r[0]) for r in stacked[:4]] == [32, 32, 32, 4]
    for column, seed in enumerate((5, 6, 7)):
        assert all(torch.equal(rows[column], one) for rows, one in zip(stacked, batch_order(100, config, seed)))
