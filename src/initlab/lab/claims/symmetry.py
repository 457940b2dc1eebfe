"""Claims 1-5: symmetry breaking -- constant init, zero weights, zero biases, zero output layer, dropout."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from initlab.lab.claims._common import difference_se, figure, fmt, mean_se
from initlab.lab.claims._nets import InitSpec, StackedMLP, digits, seeded_generator, train_stacked
from initlab.lab.claims.base import Check, Context, Outcome, claim
from initlab.schemes import constant, glorot_uniform, normal, uniform, zeros

SEEDS_TEXT = "seed texts: Deep Learning book via the German answer; deeplearning.ai (Chinese); Spanish answer"


def _ordered_linear(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    # An elementwise product summed over the last axis: every output unit is
    # reduced in the same order, so identical rows give bit-identical outputs.
    # A BLAS matmul may use different kernels for different output columns and
    # then differs in the last bits (about 1e-14 in float64).
    return (hidden[:, None, :] * weight[None, :, :]).sum(-1) + bias


def _train_exact(
    x: torch.Tensor,
    y: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    steps: int,
    lr: float,
    track_every: int,
) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    """Full-batch GD of a 1-hidden-layer tanh net in float64 with order-fixed products."""
    w1 = first.clone().requires_grad_(True)
    b1 = torch.zeros(first.shape[0], dtype=torch.float64, requires_grad=True)
    w2 = second.clone().requires_grad_(True)
    b2 = torch.zeros(second.shape[0], dtype=torch.float64, requires_grad=True)
    parameters = [w1, b1, w2, b2]
    trajectory = [w1.detach()[:, 0].clone()]
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        logits = _ordered_linear(torch.tanh(_ordered_linear(x, w1, b1)), w2, b2)
        loss = F.cross_entropy(logits, y)
        gradients = torch.autograd.grad(loss, parameters)
        with torch.no_grad():
            for parameter, gradient in zip(parameters, gradients):
                parameter -= lr * gradient
        if (step + 1) % track_every == 0:
            trajectory.append(w1.detach()[:, 0].clone())
    return w1.detach(), trajectory, float(loss.detach())


def _row_spread(weight: torch.Tensor) -> float:
    """max |W[i] - W[0]| over rows i: 0 exactly when every hidden unit has the same weights."""
    return float((weight - weight[0:1]).abs().max())


def _min_row_distance(weight: torch.Tensor) -> float:
    distances = torch.cdist(weight, weight)
    distances.fill_diagonal_(float("inf"))
    return float(distances.min())


@claim(
    "1",
    title="Constant init keeps hidden units identical",
    statement=(
        "Constant init (zeros, 0.5, any single value) keeps all hidden units of a layer identical under "
        "gradient descent however long it trains; random init makes them differ."
    ),
    source="German answer (Deep Learning book, 'break symmetry'); deeplearning.ai (Chinese); Spanish answer",
    order=1,
)
def constant_init_symmetry(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed, n_train=ctx.pick(200, None))
    x, y = x.double(), y
    hidden = 16
    steps = ctx.pick(100, 1500)
    lr = 0.1
    track_every = max(1, steps // 50)
    rows = []
    spreads = []
    trajectories = {}
    for value in (0.0, 0.5, -0.3):
        first = torch.full((hidden, x.shape[1]), value, dtype=torch.float64)
        second = torch.full((10, hidden), value, dtype=torch.float64)
        w1, trajectory, loss = _train_exact(x, y, first, second, steps, lr, track_every)
        spread = _row_spread(w1)
        spreads.append(spread)
        trajectories[f"constant {value:g}"] = trajectory
        rows.append({"init": f"constant({value:g})", "max |W1[i]-W1[0]|": fmt(spread),
                     "moved": fmt(float((w1 - value).abs().max())), "final loss": fmt(loss)})
    generator = seeded_generator(ctx.seed, "claim1/random")
    first = glorot_uniform().sample((hidden, x.shape[1]), dtype=torch.float64, generator=generator)
    second = glorot_uniform().sample((10, hidden), dtype=torch.float64, generator=generator)
    w1, trajectory, loss = _train_exact(x, y, first, second, steps, lr, track_every)
    random_distance = _min_row_distance(w1)
    trajectories["glorot_uniform"] = trajectory
    rows.append({"init": "glorot_uniform", "max |W1[i]-W1[0]|": fmt(_row_spread(w1)),
                 "moved": fmt(float((w1 - first).abs().max())), "final loss": fmt(loss)})

    # the same constant run with BLAS matrix products, to show rounding-only differences
    blas_first = torch.nn.Linear(x.shape[1], hidden).double()
    blas_second = torch.nn.Linear(hidden, 10).double()
    blas = torch.nn.Sequential(blas_first, torch.nn.Tanh(), blas_second)
    with torch.no_grad():
        for layer in (blas_first, blas_second):
            layer.weight.fill_(0.5)
            layer.bias.zero_()
    optimizer = torch.optim.SGD(blas.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(blas(x), y).backward()
        optimizer.step()
    blas_spread = _row_spread(blas_first.weight.detach())

    fig, axes = figure(ncols=2)
    for axis, label in zip(axes[0], ("constant 0.5", "glorot_uniform")):
        path = torch.stack(trajectories[label]).numpy()
        axis.plot(np.arange(path.shape[0]) * track_every, path, lw=1)
        axis.set_title(f"{label}: W1[j, 0] of all {hidden} units")
        axis.set_xlabel("gradient step")
    axes[0][0].set_ylabel("weight")
    figures = [ctx.save_figure(fig, "trajectories")]
    return Outcome(
        measurement=(
            f"a 64-{hidden}-10 tanh net on digits trained {steps} full-batch GD steps in float64; "
            "largest difference between rows of W1"
        ),
        checks=[
            Check("max |W1[i] - W1[0]| over constants 0, 0.5, -0.3", max(spreads), "==", 0.0,
                  why="identical units get identical gradients, so the rows stay bit-identical"),
            Check("smallest distance between two rows of W1, random init", random_distance, ">", 1e-3),
        ],
        figures=[f for f in figures if f],
        tables={"runs": rows},
        notes=(
            "Products are summed in a fixed order so the equality is exact. With a BLAS matmul "
            f"(torch.nn.Linear) the same constant-0.5 run ends with rows differing by {blas_spread:.2g}: "
            "rounding noise from kernel choice, far too small to make the units learn different features."
        ),
        setting=f"{x.shape[0]} training digits, lr {lr}, {steps} steps",
    )


@claim(
    "2",
    title="All-zero weights: hidden weights get no gradient",
    statement=(
        "With all weights zero in a tanh network the hidden weights never receive a gradient; "
        "only biases (and output units) move."
    ),
    source="deeplearning.ai random initialization (Chinese); Russian wiki ('no weight is active')",
    order=2,
)
def zero_weights_no_gradient(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed, n_train=ctx.pick(300, None))
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)
    )
    for parameter in model.parameters():
        torch.nn.init.zeros_(parameter)
    names = [name for name, _ in model.named_parameters()]
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    max_gradient = dict.fromkeys(names, 0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = ctx.pick(200, 2000)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None
            max_gradient[name] = max(max_gradient[name], float(parameter.grad.abs().max()))
        optimizer.step()
    moved = {name: float((p.detach() - start[name]).abs().max()) for name, p in model.named_parameters()}
    hidden_weights = ["0.weight", "2.weight"]
    rows = [{"parameter": name, "max |gradient| over all steps": fmt(max_gradient[name]), "moved": fmt(moved[name])}
            for name in names]
    return Outcome(
        measurement=f"64-32-32-10 tanh net, all weights and biases zero, {steps} GD steps on digits; max |gradient| per parameter",
        checks=[
            Check("max |gradient| of hidden weight matrices, all steps", max(max_gradient[n] for n in hidden_weights), "==", 0.0),
            Check("change of the output bias", moved["4.bias"], ">", 1e-4),
        ],
        tables={"parameters": rows},
        notes=(
            "tanh(0) = 0, so every hidden activation is 0: the output weights see zero inputs and get no "
            "gradient either, and the zero output weights pass no error back. Only the output bias learns "
            "(the class frequencies); accuracy stays at the majority class."
        ),
        setting=f"lr 0.1, full batch, {x.shape[0]} digits",
    )


def _bias_or_output_experiment(ctx: Context, variant: str) -> tuple[np.ndarray, np.ndarray, dict]:
    x, y, x_test, y_test = digits(ctx.seed)
    n_seeds = ctx.pick(4, 10)
    seeds = [ctx.seed + s for s in range(n_seeds)]
    if variant == "bias":
        first = InitSpec("zero-bias", glorot_uniform(), biases=zeros())
        second = InitSpec("random-bias", glorot_uniform(), biases=normal(std=0.5))
    else:
        first = InitSpec("zero-output", glorot_uniform(), output=zeros())
        second = InitSpec("random-output", glorot_uniform())
    model = StackedMLP([64, 64, 10], "tanh", 2 * n_seeds)
    model.initialize([first] * n_seeds + [second] * n_seeds, seeds + seeds)
    log = train_stacked(model, x, y, steps=ctx.pick(200, 1500), lr=0.1, batch_size=64, seed=ctx.seed,
                        x_test=x_test, y_test=y_test, record_every=10)
    assert log.test_accuracy is not None
    info = {"labels": (first.label, second.label), "log": log, "n_seeds": n_seeds}
    return log.test_accuracy[:n_seeds], log.test_accuracy[n_seeds:], info


def _compare_figure(ctx: Context, info: dict, name: str) -> str | None:
    log = info["log"]
    n = info["n_seeds"]
    fig, axes = figure()
    axis = axes[0][0]
    for offset, (label, color) in enumerate(zip(info["labels"], ("tab:blue", "tab:orange"))):
        for index in range(n):
            axis.plot(log.steps, log.losses[:, offset * n + index], color=color, lw=0.8,
                      label=label if index == 0 else None)
    axis.set_yscale("log")
    axis.set_xlabel("SGD step")
    axis.set_ylabel("training loss (batch)")
    axis.legend()
    return ctx.save_figure(fig, name)


@claim(
    "3",
    title="Zero biases are fine when weights are random",
    statement="Biases can start at zero when the weights are random: no loss of accuracy against random biases.",
    source="deeplearning.ai (Chinese); Korean answer citing Bengio 2012",
    order=3,
)
def zero_biases(ctx: Context) -> Outcome:
    return _zero_versus_random(
        ctx,
        "bias",
        measurement="64-64-10 tanh net on digits, glorot_uniform weights, biases zero vs N(0, 0.5^2)",
        check_name="test accuracy, zero minus random biases",
        why="no loss beyond 1 point; within 2 standard errors of it is inconclusive",
        column="biases",
        labels=("zero", "random N(0, 0.25)"),
        notes="Random weights already make every unit different; the bias needs no symmetry breaking.",
    )


@claim(
    "4",
    title="Zero output layer is fine when hidden weights are random",
    statement=(
        "Output-layer weights can start at zero when hidden weights are random (output units get different "
        "gradient signals, so they need no symmetry breaking): trains as well."
    ),
    source="Korean answer citing Bengio 2012, 'Practical recommendations'",
    order=4,
)
def zero_output_layer(ctx: Context) -> Outcome:
    return _zero_versus_random(
        ctx,
        "output",
        measurement="64-64-10 tanh net on digits, hidden glorot_uniform, output layer zeros vs glorot_uniform",
        check_name="test accuracy, zero minus random output layer",
        why="",
        column="output layer",
        labels=("zeros", "glorot_uniform"),
        notes=(
            "Each output unit has its own target, so its error signal differs from the others' from the first "
            "step; the hidden units are already distinct because their weights are random."
        ),
    )


def _zero_versus_random(
    ctx: Context,
    part: str,
    *,
    measurement: str,
    check_name: str,
    why: str,
    column: str,
    labels: tuple[str, str],
    notes: str,
) -> Outcome:
    """Claims 3 and 4: test accuracy with ``part`` zero against random, as a difference of means."""
    zero_acc, random_acc, info = _bias_or_output_experiment(ctx, part)
    difference, se = difference_se(zero_acc, random_acc)
    zero_mean, zero_se = mean_se(zero_acc)
    random_mean, random_se = mean_se(random_acc)
    figure_name = _compare_figure(ctx, info, "loss")
    return Outcome(
        measurement=f"{measurement}, {info['n_seeds']} seeds each; test accuracy",
        checks=[Check(check_name, difference, ">=", -0.01, margin=2 * se, why=why)],
        figures=[figure_name] if figure_name else [],
        tables={"accuracy": [
            {column: labels[0], "test accuracy": f"{zero_mean:.4f} ± {zero_se:.4f}"},
            {column: labels[1], "test accuracy": f"{random_mean:.4f} ± {random_se:.4f}"},
        ]},
        notes=notes,
        setting="SGD lr 0.1, batch 64",
    )


@claim(
    "5",
    title="Dropout breaks a constant init's symmetry, random init still trains better",
    statement=(
        "Stochastic training (dropout) can break the symmetry of a constant init, but random init still trains better."
    ),
    source="German answer quoting the Deep Learning book (section 8.4)",
    order=5,
)
def dropout_symmetry(ctx: Context) -> Outcome:
    x, y, x_test, y_test = digits(ctx.seed)
    n_seeds = ctx.pick(3, 8)
    seeds = [ctx.seed + s for s in range(n_seeds)]
    specs = (
        [InitSpec("constant", constant(0.05))] * n_seeds
        + [InitSpec("random", uniform(a=-0.1, b=0.1))] * n_seeds
    )
    steps = ctx.pick(250, 1500)
    results = {}
    for dropout in (0.0, 0.3):
        model = StackedMLP([64, 32, 10], "tanh", 2 * n_seeds, dropout=dropout, dtype=torch.float64)
        model.initialize(specs, seeds + seeds)
        log = train_stacked(model, x.double(), y, steps=steps, lr=0.1, batch_size=64, seed=ctx.seed,
                            x_test=x_test.double(), y_test=y_test)
        weights = model.weights[0].detach()
        # spread of the hidden units: std over units of each input weight, averaged, over mean |w|
        spread = (weights.std(dim=1).mean(dim=1) / weights.abs().mean(dim=(1, 2)).clamp_min(1e-300)).numpy()
        results[dropout] = (log, spread)
    constant_plain = float(results[0.0][1][:n_seeds].max())
    constant_dropout = float(results[0.3][1][:n_seeds].min())
    log = results[0.3][0]
    assert log.test_accuracy is not None
    difference, se = difference_se(log.test_accuracy[n_seeds:], log.test_accuracy[:n_seeds])
    rows = []
    for dropout, (run, spread) in results.items():
        assert run.test_accuracy is not None
        for label, part in (("constant 0.05", slice(0, n_seeds)), ("uniform ±0.1", slice(n_seeds, None))):
            mean, error = mean_se(run.test_accuracy[part])
            rows.append({"init": label, "dropout": dropout, "unit spread": fmt(float(np.mean(spread[part]))),
                         "test accuracy": f"{mean:.4f} ± {error:.4f}"})
    return Outcome(
        measurement=(
            f"64-32-10 tanh net on digits in float64, {steps} SGD steps, with and without dropout 0.3; "
            "relative spread of the hidden units' weights and test accuracy"
        ),
        checks=[
            Check("hidden-unit spread, constant init + dropout", constant_dropout, ">", 1e-3,
                  why="dropout masks differ per unit, so the units' gradients differ"),
            Check("hidden-unit spread, constant init without dropout", constant_plain, "<", 1e-9,
                  why="without noise they stay identical (up to float64 rounding)"),
            Check("test accuracy, random minus constant init (both with dropout)", difference, ">", 0.0,
                  margin=2 * se),
        ],
        tables={"runs": rows},
        notes=(
            "Dropout does break the symmetry: each unit sees its own masks, so the units' gradients differ. "
            + ("The units start identical and separate slowly, so the constant-init network is still behind "
               f"random init after {steps} steps (by {difference:.3f} ± {se:.3f} test accuracy)."
               if difference > 2 * se else
               f"After {steps} steps the constant-init network has caught up with random init "
               f"({difference:+.3f} ± {se:.3f} test accuracy): here dropout noise alone breaks symmetry well enough, "
               "so 'random init still trains better' holds only early in training.")
            + ("" if constant_plain < 1e-9 else
               f" Without dropout the constant-init units also drifted apart (spread {constant_plain:.2g}): the batched "
               "BLAS products round differently per unit, and over many steps gradient descent amplifies that "
               "1e-16 noise away from the unstable symmetric point. Claim 1 keeps the order of every sum fixed and "
               "shows the exact symmetry.")
        ),
        setting=f"{n_seeds} seeds per arm, SGD lr 0.1, batch 64",
    )
