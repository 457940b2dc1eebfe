"""Classic published results reproduced: He 2015, Glorot 2010, deeplearning.ai circles, 100 matmuls, muP,
residual zero-init, Saxe 2014."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.lab.claims import _stats
from initlab.lab.claims._common import (
    Arm,
    build,
    curve_band,
    dataset,
    figure,
    finals,
    first_step_below,
    fmt,
    initialize,
    loss_table,
    mean_text,
    plot_losses,
    train_arms,
)
from initlab.lab.claims.base import Amendment, Context, Measurement, Outcome, Rule, claim
from initlab.lab.data import Dataset
from initlab.probe import audit
from initlab.rng import derive_generator
from initlab.schemes import glorot_normal, he_normal

HE_DEPTHS = (22, 30)
HE_LR = 0.02  # claim 10's rate for deep ReLU MLPs on digits
HE_MULTIPLE = 20  # the budget: this many times the steps He needs at 22 layers
HE_WINDOW = 5  # logged losses (one every 10 steps) in the running mean of "first below"
HE_CONVERGED = "below ln(10)/2"


@claim(
    "he2015",
    title="He et al. 2015, Fig. 3: 30-layer ReLU net, 1/n stalls, 2/n converges",
    statement=(
        "A 30-layer ReLU network with Var[w] = 1/n stalls while He init (2/n) converges; at 22 layers both converge."
    ),
    references=("He, Zhang, Ren & Sun 2015, 'Delving deep into rectifiers', Fig. 3",),
    group="reproduction",
    hypothesis=(
        "A ReLU MLP with 30 hidden layers converges on digits from He init (Var = 2/n) and stalls from Var = 1/n, "
        "which halves the signal's second moment per layer; at 22 layers the 1/n network converges too, later. "
        "'Later' and 'stalls' are told apart by one budget for every network: twenty times the steps He needs "
        "at 22 layers."
    ),
    design=(
        "The step budget follows from a convergence criterion, not from a chosen number of steps. A run has "
        "converged when its training loss, averaged over the last tenth of the budget, is below ln(10)/2 (half "
        "the chance-level loss). The budget is 20 times the median over seeds of the first step at which the "
        "He network with 22 hidden layers brings its training loss (running mean of 5 logs, one log every 10 "
        "steps) below ln(10)/2, measured in the same run; every network then trains for the budget. A cap "
        "bounds the budget (5000 steps in full mode, 600 in quick mode, which also uses width 32 instead of "
        "64): a run whose budget exceeds its cap cannot apply its own rule, and the claim is invalid in that "
        "mode. Plain SGD at lr 0.02 (the rate of claim 10's deep ReLU MLPs on digits), batch 64."
    ),
    rules=(
        Rule("deep", "30 layers: fraction of seeds converged within the budget, He minus 1/n", ">", 0.5,
             why="converged: mean training loss over the last tenth of the budget below ln(10)/2"),
        Rule("shallow", "22 layers: fraction of seeds converged within the budget, 1/n", ">", 0.5, role="control",
             predicts="the paper: at 22 layers both inits converge (He earlier); if 1/n stalled here too, the "
                      "30-layer stall would not be about depth"),
        Rule("budget", "the budget (20 x He's median steps to converge at 22 layers) over the step cap", "<", 1.0,
             role="demonstration",
             why="the run covers the budget its own rule asks for; if not, nothing is decided in this mode"),
    ),
    order=101,
    amendments=(
        Amendment(
            "2026-12-02", "Full-mode step budget cut from 3000 to 2500 steps.",
            "Made after runs had been seen, to shorten the full run; it left the 22-layer control inconclusive "
            "(7 of 10 seeds converged). Withdrawn by the next amendment."),
        Amendment(
            "2026-12-02",
            "The step budget is derived from the convergence criterion: 20 times the steps the He network at 22 "
            "layers needs to bring its loss below ln(10)/2, measured in the run, capped at 5000 steps in full mode "
            "and 600 in quick mode; a rule checks that the cap covers the budget.",
            "Replaces a fixed budget that had been chosen, and then cut, after runs were seen. The multiple 20 "
            "was chosen after the previous full run had shown the 1/n network at 22 layers first reaching that "
            "loss at a median of 1650 steps against He's 155 (about 11 times); the same budget applies to the "
            "30-layer networks, so it makes the primary rule no easier to pass."),
    ),
)
def he_2015(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    cap = ctx.pick(600, 5000)
    width = ctx.pick(32, 64)
    small, he = "Var 1/n", "Var 2/n (He)"
    arms = [Arm(small, "lecun_normal; bias=zeros"), Arm(he, "he_normal; bias=zeros")]
    chance = math.log(10.0)

    def train(depth: int, chosen: list[Arm], steps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        runs = train_arms(f"mlp:*-{width}x{depth}-*:relu", chosen, seeds, steps=steps, batch_size=64, lr=HE_LR,
                          eval_every=steps, log_every=10)
        return {label: loss_table(results, cap=2 * chance) for label, results in runs.items()}

    # the budget: He at 22 layers, trained up to cap / 20 steps (the longest a budget within the cap allows)
    probe = train(HE_DEPTHS[0], [arms[1]], cap // HE_MULTIPLE)[he]
    he_first = first_step_below(*probe, 0.5 * chance, window=HE_WINDOW)
    budget = HE_MULTIPLE * float(np.median(he_first))
    steps = int(budget) if budget <= cap else cap
    curves = {(depth, label): table for depth in HE_DEPTHS for label, table in train(depth, arms, steps).items()}
    converged, first = {}, {}
    for key, (logged, table) in curves.items():
        tail = logged > 0.9 * steps
        converged[key] = (table[:, tail].mean(axis=1) < 0.5 * chance).astype(float)
        first[key] = first_step_below(logged, table, 0.5 * chance, window=HE_WINDOW)
    fig, axes = figure(ncols=2)
    for column, depth in enumerate(HE_DEPTHS):
        for color, label in zip(("C0", "C1"), (small, he)):
            curve_band(axes[0][column], *curves[(depth, label)], label, color)
        axes[0][column].set_title(f"{depth} hidden layers")
        axes[0][column].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss (batch)")
    axes[0][1].legend()
    return Outcome(
        measurement=(
            f"ReLU MLPs of width {width} on digits, 22 and 30 hidden layers, plain SGD (lr {HE_LR}, batch 64) for "
            f"a budget of {HE_MULTIPLE} x He's median steps to a loss {HE_CONVERGED} at 22 layers (cap {cap}); a "
            f"seed has converged when its mean training loss over the last tenth of the budget is {HE_CONVERGED}"
        ),
        values={
            "deep": _stats.difference(converged[(30, he)], converged[(30, small)]),
            "shallow": _stats.mean(converged[(22, small)]),
            "budget": _stats.exact(budget / cap, n=len(seeds),
                                   method=f"{HE_MULTIPLE} x the median over seeds of He's first step "
                                          f"{HE_CONVERGED} at 22 layers, over the step cap"),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"runs": [{"depth": depth, "init": label, "converged (of seeds)": int(converged[(depth, label)].sum()),
                          f"first step with loss {HE_CONVERGED}, median": _first_text(first[(depth, label)])}
                         for depth in HE_DEPTHS for label in (small, he)],
                "budget": [{f"He at 22 layers: first step {HE_CONVERGED} within {cap // HE_MULTIPLE} steps, median":
                            _first_text(he_first),
                            "budget (steps)": f"{budget:.0f}" if budget <= cap else f"more than {cap}",
                            "cap (steps)": cap, "trained (steps)": steps}]},
        reference=(
            "Paper, Fig. 3 (ImageNet conv nets): 22 layers -- both inits converge, He starts reducing the error "
            "earlier; 30 layers -- Xavier (1/n) 'completely stalls', He converges."
        ),
        notes=_he_notes(budget, cap, steps, converged, first, len(seeds), small, he),
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


def _first_text(values: np.ndarray) -> str:
    """Median first step of the seeds that got there, and how many did."""
    reached = values[np.isfinite(values)]
    return f"{np.median(reached):.0f} ({reached.size} of {values.size} seeds)" if reached.size else "never"


def _he_notes(budget: float, cap: int, steps: int, converged: dict[tuple[int, str], np.ndarray],
              first: dict[tuple[int, str], np.ndarray], seeds: int, small: str, he: str) -> str:
    counts = {key: int(values.sum()) for key, values in converged.items()}
    text = (
        "An MLP on digits stands in for the paper's convolutional ImageNet model. With 1/n each ReLU layer halves "
        "the signal's second moment, so 30 layers shrink it by 2^-30 and the error reaching the early layers is "
        "correspondingly tiny. "
    )
    if budget > cap:
        text += (
            f"The budget rule asked for more than the cap of {cap} steps (He at 22 layers had not brought its loss "
            f"{HE_CONVERGED} within {cap // HE_MULTIPLE} steps): this run cannot apply its own rule, so the claim "
            f"is invalid in this mode whatever the networks did in the {steps} steps they trained; quick mode's "
            "time allowance is too short for the 1/n networks, and the full run decides the claim"
        )
    else:
        text += f"The budget rule gave {budget:.0f} steps (cap {cap})"
    text += (
        f". Converged within {steps} steps (of {seeds} seeds): 22 layers, 1/n {counts[(22, small)]} and He "
        f"{counts[(22, he)]}; 30 layers, 1/n {counts[(30, small)]} and He {counts[(30, he)]}. First step with a "
        f"loss {HE_CONVERGED}: 22 layers, 1/n {_first_text(first[(22, small)])}, He {_first_text(first[(22, he)])}; "
        f"30 layers, 1/n {_first_text(first[(30, small)])}, He {_first_text(first[(30, he)])}."
    )
    if budget <= cap and counts[(30, small)] > 0:
        text += (
            f" {counts[(30, small)]} of the {seeds} 1/n networks at 30 layers converged within the budget: here "
            "1/n delays the 30-layer network past twenty times He's time in most seeds rather than stopping it in "
            f"every one, so with {seeds} seeds the He-minus-1/n fraction is {int(counts[(30, he)] - counts[(30, small)])}"
            f"/{seeds}, and whether it exceeds 1/2 is decided by its interval, not by the count alone."
        )
    return text


@claim(
    "glorot2010",
    title="Glorot & Bengio 2010: activations and gradients per layer, standard vs normalised init",
    statement=(
        "In a 5-layer tanh network the activations shrink layer by layer under the standard init "
        "U[-1/sqrt(n), 1/sqrt(n)], and the back-propagated gradients shrink on their way down; under the "
        "normalised init U[+-sqrt(6/(n_in+n_out))] both stay about the same from layer to layer."
    ),
    references=("Glorot & Bengio 2010, 'Understanding the difficulty of training deep feedforward neural networks', "
                "Fig. 6 (activations) and Fig. 7 (back-propagated gradients), eqs. 1 and 16",),
    group="reproduction",
    hypothesis=(
        "Standard init has n Var[W] = 1/3: near zero each tanh layer divides the activations' variance by about 3 "
        "going up, and the gradients' variance by about 3 going down; normalised init has n Var[W] = 1 for square "
        "layers and keeps both."
    ),
    rules=(
        Rule("activations", "standard init: std of the tanh activations, layer 5 over layer 1", "<", 0.5),
        Rule("gradients", "standard init: std of the back-propagated gradient, layer 1 over layer 5", "<", 0.5),
        Rule("normalised_activations", "normalised init: activation std, layer 5 over layer 1", ">", 0.5,
             role="control", predicts="with n Var[W] = 1 the activations do not shrink layer by layer"),
        Rule("normalised_gradients", "normalised init: gradient std, layer 1 over layer 5", ">", 0.5,
             role="control", predicts="with n Var[W] = 1 the gradients do not shrink on their way down"),
    ),
    order=102,
)
def glorot_2010(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    width = ctx.pick(256, 1000)
    spec = f"mlp:*-{width}x5-*:tanh+nobias"
    inits = {"standard U[+-1/sqrt(n)]": "variance_scaling(scale=0.3333333333333333, mode=fan_in, distribution=uniform)",
             "normalised (Glorot)": "glorot_uniform"}
    activation_std: dict[str, np.ndarray] = {}
    gradient_std: dict[str, np.ndarray] = {}
    for label, plan in inits.items():
        acts, grads = [], []
        for seed in seeds:
            split = dataset("digits", seed)
            model = build(spec, split)
            initialize(model, plan, seed)
            report = audit(model, split.x_train, target=split.y_train)
            acts.append([row.act_std for row in report if row.name.endswith(".act")])
            grads.append([row.grad_std for row in report if row.name.endswith(".linear")])
        activation_std[label] = np.asarray(acts, dtype=float)
        gradient_std[label] = np.asarray(grads, dtype=float)
    standard, normalised = inits
    fig, axes = figure(ncols=2)
    layers = np.arange(1, 6)
    for color, label in zip(("C0", "C1"), inits):
        axes[0][0].plot(layers, activation_std[label].mean(axis=0), marker="o", color=color, label=label)
        axes[0][1].plot(layers, gradient_std[label].mean(axis=0), marker="o", color=color, label=label)
    axes[0][0].set_xlabel("hidden layer")
    axes[0][0].set_ylabel("std of tanh activations")
    axes[0][0].legend()
    axes[0][1].set_yscale("log")
    axes[0][1].set_xlabel("hidden layer")
    axes[0][1].set_ylabel("std of the gradient w.r.t. the pre-activations")

    def ratio(table: np.ndarray, top: int, bottom: int) -> Measurement:
        return _stats.bootstrap(lambda a: a[..., top].mean(axis=1) / a[..., bottom].mean(axis=1), table,
                                what="networks")

    return Outcome(
        measurement=(
            f"each seed's training digits through a 5-layer tanh MLP of width {width} (no biases), one pass; std of "
            "each layer's activations and of the cross-entropy gradient w.r.t. its pre-activations "
            "(initlab.probe.audit)"
        ),
        values={
            "activations": ratio(activation_std[standard], 4, 0),
            "gradients": ratio(gradient_std[standard], 0, 4),
            "normalised_activations": ratio(activation_std[normalised], 4, 0),
            "normalised_gradients": ratio(gradient_std[normalised], 0, 4),
        },
        figures=[ctx.save_figure(fig, "std")],
        tables={"activation std": [{"init": k, **{f"layer {i + 1}": fmt(float(v)) for i, v in enumerate(t.mean(0))}}
                                   for k, t in activation_std.items()],
                "gradient std": [{"init": k, **{f"layer {i + 1}": fmt(float(v)) for i, v in enumerate(t.mean(0))}}
                                 for k, t in gradient_std.items()]},
        reference=(
            "Paper, Fig. 6: activation histograms of layers 1-5 with the standard init (top) narrow layer by layer, "
            "with the normalised init (bottom) they stay alike; Fig. 7: the back-propagated gradients with the "
            "standard init get smaller as they go down, with the normalised init they do not."
        ),
        notes="Standard init gives n Var[W] = 1/3, so near zero each tanh layer divides the variance by about 3; "
              "Glorot's 2/(n_in+n_out) gives n Var[W] = 1 for square layers.",
        setting=f"digits (standardised), float32, {len(seeds)} networks",
        seeds=len(seeds),
    )


def _circles(seed: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=samples, noise=0.05, random_state=np.random.RandomState(seed))
    return x.T, y.reshape(1, -1)


def _dlai_train(x: np.ndarray, y: np.ndarray, parameters: list[list[np.ndarray]], steps: int,
                lr: float) -> tuple[list[list[float]], list[list[np.ndarray]]]:
    """The exercise's 3-layer model in NumPy: LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID, batched over runs.

    ``parameters[k]`` is [W1, b1, W2, b2, W3, b3] of run k, trained on ``x[k]`` (2, samples) and ``y[k]``
    (1, samples); the runs are stacked on a leading axis and share nothing.
    """
    w1, b1, w2, b2, w3, b3 = (np.stack([p[i] for p in parameters]) for i in range(6))
    samples = x.shape[2]
    x_t = x.transpose(0, 2, 1)
    costs: list[list[float]] = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for step in range(steps + 1):
            z1 = w1 @ x + b1
            a1 = np.maximum(z1, 0)
            z2 = w2 @ a1 + b2
            a2 = np.maximum(z2, 0)
            z3 = w3 @ a2 + b3
            a3 = 1 / (1 + np.exp(-z3))
            if step % 1000 == 0 or step == steps:
                logprobs = -y * np.log(a3) - (1 - y) * np.log(1 - a3)
                costs.append(list(np.nansum(logprobs, axis=(1, 2)) / samples))
            if step == steps:
                break
            dz3 = (a3 - y) / samples
            dw3 = dz3 @ a2.transpose(0, 2, 1)
            db3 = dz3.sum(axis=2, keepdims=True)
            da2 = w3.transpose(0, 2, 1) @ dz3
            dz2 = da2 * (a2 > 0)
            dw2 = dz2 @ a1.transpose(0, 2, 1)
            db2 = dz2.sum(axis=2, keepdims=True)
            da1 = w2.transpose(0, 2, 1) @ dz2
            dz1 = da1 * (a1 > 0)
            dw1 = dz1 @ x_t
            db1 = dz1.sum(axis=2, keepdims=True)
            w1 -= lr * dw1
            b1 -= lr * db1
            w2 -= lr * dw2
            b2 -= lr * db2
            w3 -= lr * dw3
            b3 -= lr * db3
    trained = [[w1[k], b1[k], w2[k], b2[k], w3[k], b3[k]] for k in range(len(parameters))]
    per_run = [[float(c) for c in row] for row in np.array(costs).T]
    return per_run, trained


def _dlai_accuracy(x: np.ndarray, y: np.ndarray, p: list[np.ndarray]) -> float:
    with np.errstate(over="ignore"):
        a1 = np.maximum(p[0] @ x + p[1], 0)
        a2 = np.maximum(p[2] @ a1 + p[3], 0)
        a3 = 1 / (1 + np.exp(-(p[4] @ a2 + p[5])))
    return float(np.mean((a3 > 0.5) == y))


def _course_setup(index: int) -> tuple[int, int, int]:
    """(train data seed, test data seed, weight seed) of seed ``index``; index 0 is the course's (1, 2, 3)."""
    return (1, 2, 3) if index == 0 else (1000 + 2 * index, 1001 + 2 * index, 3 + index)


def _course_inits(weight_seed: int, layers: list[int]) -> dict[str, list[np.ndarray]]:
    """The exercise's inits: zeros, randn*10, randn*1 and He (randn*sqrt(2/n_prev)), biases zero."""
    inits = {"zeros": [np.zeros((layers[i], layers[i - 1])) if j == 0 else np.zeros((layers[i], 1))
                       for i in range(1, 4) for j in (0, 1)]}
    for label, scale in (("randn*10", lambda n: 10.0), ("randn*1", lambda n: 1.0),
                         ("He", lambda n: math.sqrt(2.0 / n))):
        rng = np.random.RandomState(weight_seed)  # the exercise seeds NumPy before drawing
        inits[label] = [rng.randn(layers[i], layers[i - 1]) * scale(layers[i - 1]) if j == 0
                        else np.zeros((layers[i], 1)) for i in range(1, 4) for j in (0, 1)]
    return inits


@claim(
    "dlai-circles",
    title="deeplearning.ai initialization exercise: zeros 50%, randn*10 ~83%, He ~99%",
    statement=(
        "Layers [2, 10, 5, 1] on make_circles, 15,000 full-batch steps at lr 0.01: zeros give 50% train accuracy "
        "(cost stuck at 0.6931), randn*10 about 83%, He about 99%."
    ),
    references=("deeplearning.ai, 'Improving Deep Neural Networks', week 1 'Initialization' exercise",
                "He, Zhang, Ren & Sun 2015"),
    group="reproduction",
    hypothesis=(
        "In the exercise's ReLU-ReLU-sigmoid network He init trains to a clearly higher training accuracy than "
        "randn*10 (at least 5 points), because the x10 scale saturates the sigmoid output; at scale 1 the gap "
        "closes; zeros cannot move at all."
    ),
    rules=(
        Rule("gap", "train accuracy, He minus randn*10", ">", 0.05),
        Rule("unit_scale", "train accuracy, He minus randn*1", "<", 0.05, role="control",
             predicts="the exercise blames the x10 scale: the same random init at scale 1 trains about as well "
                      "as He (gap below 5 points)"),
        Rule("zeros", "|final cost - ln 2| with zero init, the course's seeds", "in", (-1e-9, 1e-9),
             role="demonstration", why="every ReLU outputs 0 and the output bias gradient is mean(a - y) = 0"),
    ),
    order=103,
)
def dlai_circles(ctx: Context) -> Outcome:
    layers = [2, 10, 5, 1]
    steps = 15000
    count = ctx.pick(5, 10)
    accuracy: dict[str, list[float]] = {}
    costs_first: dict[str, list[float]] = {}
    zero_cost = 0.0
    course_rows = []
    runs: list[tuple[int, str, list[np.ndarray]]] = []
    data = []
    for index in range(count):
        train_seed, test_seed, weight_seed = _course_setup(index)
        data.append((_circles(train_seed, 300), _circles(test_seed, 100)))
        # zeros cannot move (an identity): run it on the course's seeds only
        runs += [(index, label, init) for label, init in _course_inits(weight_seed, layers).items()
                 if label != "zeros" or index == 0]
    x = np.stack([data[index][0][0] for index, _, _ in runs])
    y = np.stack([data[index][0][1] for index, _, _ in runs])
    costs, trained = _dlai_train(x, y, [init for _, _, init in runs], steps, lr=0.01)
    for position, (index, label, _) in enumerate(runs):
        (x_train, y_train), (x_test, y_test) = data[index]
        accuracy.setdefault(label, []).append(_dlai_accuracy(x_train, y_train, trained[position]))
        if index == 0:
            costs_first[label] = costs[position]
            course_rows.append({"init": label, "train accuracy": fmt(accuracy[label][0]),
                                "test accuracy": fmt(_dlai_accuracy(x_test, y_test, trained[position])),
                                "final cost": f"{costs[position][-1]:.6f}"})
        if label == "zeros":
            zero_cost = max(zero_cost, abs(costs[position][-1] - math.log(2.0)))
    values = {label: np.asarray(v) for label, v in accuracy.items()}
    fig, axes = figure()
    for label, series in costs_first.items():
        axes[0][0].plot(np.arange(len(series)) * 1000, series, marker=".", label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("iteration")
    axes[0][0].set_ylabel("cost (the course's seeds)")
    axes[0][0].legend()
    return Outcome(
        measurement=(
            f"the exercise's 3-layer model in NumPy (float64), {steps} full-batch gradient steps at lr 0.01 on 300 "
            f"make_circles(noise=0.05) points; {count} seeds of data and weights, the first with the course's seeds"
        ),
        values={
            "gap": _stats.difference(values["He"], values["randn*10"]),
            "unit_scale": _stats.difference(values["He"], values["randn*1"]),
            "zeros": _stats.exact(zero_cost),
        },
        figures=[ctx.save_figure(fig, "cost")],
        tables={"the course's seeds (train 1, test 2, weights 3)": course_rows,
                f"{count} seeds": [{"init": label, "train accuracy": mean_text(v)} for label, v in values.items()]},
        reference=(
            "Course notebook: zeros -- train 0.5, test 0.5, cost 0.6931471805599453 throughout; randn*10 -- "
            "train 0.83, test 0.86; He -- train 0.9933, test 0.96."
        ),
        notes=(
            "The model is the exercise's own NumPy program (kept as written there, rather than the lab's trainer, "
            "so that its numbers can be compared with the course's). With zero weights every ReLU outputs 0 and "
            "gets no gradient, and the balanced classes make the output bias gradient mean(a - y) = 0: nothing "
            "moves and the cost stays ln 2. randn*10 starts with huge pre-activations, so the sigmoid output "
            "saturates and the cost starts near infinity."
        ),
        setting=f"{count} seeds (data and weights)",
        seeds=count,
    )


@claim(
    "matmul100",
    title="100 chained 512x512 matmuls: NaN with randn, 0 with *0.01, std ~1 with 1/sqrt(512)",
    statement=(
        "Multiplying a vector by 100 random 512x512 matrices overflows to NaN by layer ~28 with randn, underflows "
        "to 0 with randn*0.01, and keeps std ~1 with randn/sqrt(512)."
    ),
    references=("Dellinger 2019, 'Weight initialization in neural networks: a journey from the basics to Kaiming'",),
    group="reproduction",
    hypothesis="The std of x is multiplied by about sqrt(512) x scale per product: arithmetic, shown in float32.",
    rules=(
        Rule("overflow", "randn: first product with a non-finite std", "in", (24.0, 32.0), role="demonstration",
             why="std grows by sqrt(512) = 22.6 per product; float32 overflows past 3.4e38 after about 28"),
        Rule("underflow", "randn*0.01: std after 100 products", "<", 1e-30, role="demonstration",
             why="shrinks by 0.226 per product: 1e-65, below float32's smallest number"),
        Rule("kaiming", "randn/sqrt(512): std after 100 products", "in", (0.3916, 2.554), role="demonstration",
             why="3-sigma band of the log-normal wander, exp(+-3 sqrt(100 x 0.5 / 512))"),
    ),
    order=104,
)
def matmul_100(ctx: Context) -> Outcome:
    size, layers = 512, 100
    profiles = {}
    first_nonfinite = {}
    for label, scale in (("randn", 1.0), ("randn*0.01", 0.01), ("randn/sqrt(512)", 1 / math.sqrt(size))):
        generator = derive_generator(ctx.seed, "matmul100")
        x = torch.randn(size, generator=generator)
        stds = []
        first_nonfinite[label] = math.inf
        for layer in range(layers):
            x = (torch.randn(size, size, generator=generator) * scale) @ x
            std = float(x.std())
            stds.append(std)
            if not math.isfinite(std) and math.isinf(first_nonfinite[label]):
                first_nonfinite[label] = layer + 1
        profiles[label] = stds
    fig, axes = figure()
    for label, values in profiles.items():
        finite = [v if math.isfinite(v) and v > 0 else np.nan for v in values]
        axes[0][0].plot(range(1, layers + 1), finite, label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("matrix product")
    axes[0][0].set_ylabel("std of x (float32; gaps: inf/NaN or 0)")
    axes[0][0].legend()
    return Outcome(
        measurement=(f"x ~ N(0, I_{size}); x <- a x for {layers} fresh a ~ scale * N(0, 1)^({size}x{size}), float32; "
                     "std of x per product"),
        values={
            "overflow": _stats.exact(first_nonfinite["randn"]),
            "underflow": _stats.exact(profiles["randn*0.01"][-1]),
            "kaiming": _stats.exact(profiles["randn/sqrt(512)"][-1]),
        },
        figures=[ctx.save_figure(fig, "std")],
        tables={"std at selected products": [
            {"init": label, **{f"product {k}": fmt(values[k - 1]) for k in (1, 10, 28, 50, 100)}}
            for label, values in profiles.items()
        ]},
        reference="The post: with randn the activations are NaN by layer 28 (x.mean(), x.std() = nan); with *0.01 "
                  "they vanish to 0; scaling by 1/sqrt(512) keeps mean ~0 and std ~1 after 100 layers.",
        notes="float32, as in the post (torch's default dtype).",
        setting="torch float32, one fixed seed",
    )


MUP_BASE = 64


def _mup_plan(width: int, parameterisation: str) -> tuple[str, dict[str, float]]:
    """(init plan, per-parameter learning-rate factors) of a 64-n-n-10 ReLU MLP relative to width MUP_BASE.

    SP: He normal hidden layers, LeCun output layer, one learning rate. muP for SGD (Yang & Hu 2021; here
    relative to a base width n0): input weights and every bias learn with lr x n/n0 (their fan_out grows, except
    the output bias's), hidden weights with lr, output weights start at Var = 1/fan_in x n0/fan_in and learn with
    lr x n0/n. At n = n0 both are the same network.
    """
    if parameterisation == "SP":
        return "he_normal; output=lecun_normal; bias=zeros", {}
    ratio = width / MUP_BASE
    std = math.sqrt(1.0 / width * MUP_BASE / width)
    factors = {"hidden.0.linear.weight": ratio, "hidden.0.linear.bias": ratio, "hidden.1.linear.bias": ratio,
               "output.weight": 1.0 / ratio}
    return f"he_normal; output=normal(std={std!r}); bias=zeros", factors


def _logit_change(width: int, parameterisation: str, seeds: list[int], steps: int, lr: float,
                  split: Dataset) -> np.ndarray:
    """RMS change of the logits on the training rows after ``steps`` full-batch SGD steps, one value per seed."""
    spec = f"mlp:*-{width}-{width}-*:relu"
    plan, factors = _mup_plan(width, parameterisation)
    before = []
    for seed in seeds:
        model = build(spec, split)
        initialize(model, plan, seed)
        with torch.no_grad():
            before.append(model(split.x_train))
    runs = train_arms(spec, [Arm(parameterisation, plan)], seeds, splits=[split] * len(seeds), steps=steps, lr=lr,
                      eval_every=steps, log_every=steps, lr_scale=factors or None)
    changes = []
    for model, start in zip(runs.models[parameterisation], before):
        with torch.no_grad():
            changes.append(float((model(split.x_train) - start).square().mean().sqrt()))
    return np.asarray(changes)


@claim(
    "mup",
    title="muP coordinate check: logit updates grow with width in SP, stay flat in muP",
    statement=(
        "In standard parameterisation the change of the logits after a few SGD steps grows with width; in muP it "
        "stays flat."
    ),
    references=("Yang & Hu 2021, 'Tensor Programs IV: feature learning in infinite-width neural networks' (muP)",
                "Yang et al. 2021, 'Tensor Programs V: tuning large neural networks via zero-shot hyperparameter "
                "transfer', coordinate check"),
    group="reproduction",
    hypothesis=(
        "Over widths from the base width 64 up, the RMS change of the logits after 3 SGD steps has a slope in "
        "log-log of about 0 in muP (|slope| < 0.25) and grows about linearly with width in standard "
        "parameterisation."
    ),
    rules=(
        Rule("mup", "muP: slope of log2(logit change) against log2(width), base width included", "in",
             (-0.25, 0.25), why="flat"),
        Rule("sp", "SP: the same slope", ">", 0.5, role="control",
             predicts="the opposite in standard parameterisation: the logit change grows with width"),
    ),
    order=105,
)
def mup_coordinate_check(ctx: Context) -> Outcome:
    split = dataset("digits", ctx.seed)
    split = Dataset(x_train=split.x_train[:256], y_train=split.y_train[:256], x_test=split.x_test,
                    y_test=split.y_test, num_classes=split.num_classes, input_shape=split.input_shape, name="digits")
    widths = ctx.pick([64, 128, 256, 512, 1024], [64, 128, 256, 512, 1024, 2048])
    seeds = ctx.seeds(8, 10)
    steps, lr = 3, 0.005
    changes = {p: np.stack([_logit_change(w, p, seeds, steps, lr, split) for w in widths], axis=1)
               for p in ("SP", "muP")}  # (seeds, widths)
    log_widths = np.log2(widths)
    means = {p: np.exp(np.log(values).mean(axis=0)) for p, values in changes.items()}
    sp_growth = float(means["SP"][-1] / means["SP"][0])
    mup_growth = float(means["muP"][-1] / means["muP"][0])
    mup_first = float(means["muP"][1] / means["muP"][0])
    slopes = {p: _stats.slope(log_widths, np.log2(values)) for p, values in changes.items()}
    fig, axes = figure()
    for color, (p, values) in zip(("C0", "C1"), changes.items()):
        axes[0][0].plot(widths, np.exp(np.log(values).mean(axis=0)), marker="o", color=color,
                        label=f"{p} (slope {slopes[p].value:.2f})")
        axes[0][0].fill_between(widths, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, lw=0)
    axes[0][0].set_xscale("log", base=2)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("width n")
    axes[0][0].set_ylabel(f"RMS change of logits after {steps} SGD steps")
    axes[0][0].legend()
    return Outcome(
        measurement=(
            f"64-n-n-10 ReLU MLP on 256 digits, widths {widths[0]}-{widths[-1]}, {steps} full-batch SGD steps at lr "
            f"{lr}; RMS change of the logits; least-squares slope of the seeds' mean log2(change) against log2(width) "
            "over every width"
        ),
        values={"mup": slopes["muP"], "sp": slopes["SP"]},
        figures=[ctx.save_figure(fig, "coordinate-check")],
        tables={"logit change": [{"width": w, "SP": mean_text(changes["SP"][:, i], 4),
                                  "muP": mean_text(changes["muP"][:, i], 4)} for i, w in enumerate(widths)]},
        reference="Tensor Programs V, Fig. 5 / App. D: in SP the size of coordinate updates of the logits grows with "
                  "width (and blows up); in muP the curves for all widths lie on top of each other.",
        notes=(
            f"muP here is the SGD version relative to a base width of {MUP_BASE} (equal to SP at width {MUP_BASE}), "
            f"with every bias learning like an input weight. From width {widths[0]} to {widths[-1]} the logit "
            f"change grows {sp_growth:.1f}-fold in SP; in muP it ends at {mup_growth:.2f} of its base-width value, "
            f"most of that drop between the two smallest widths ({mup_first:.2f} of it at width {widths[1]}), "
            "where finite-width terms are largest, and it flattens above."
        ),
        setting=f"{len(seeds)} seeds (init)",
        seeds=len(seeds),
    )


class ResidualMLP(nn.Module):
    """A linear map to ``width``, then h <- h + alpha * W2 relu(W1 h) for ``blocks`` blocks, then a linear
    read-out; no normalisation."""

    def __init__(self, inputs: int, width: int, blocks: int, classes: int) -> None:
        super().__init__()
        self.input = nn.Linear(inputs, width)
        self.first = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.second = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.alpha = nn.Parameter(torch.ones(blocks))
        self.output = nn.Linear(width, classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for index, (first, second) in enumerate(zip(self.first, self.second)):
            x = x + self.alpha[index] * second(torch.relu(first(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.trunk(self.input(x)))


RESIDUAL_BLOCKS = 100
# the Fixup reference implementation's SGD (hongyi-zhang/Fixup, cifar/cifar_train.py, commit e57b6c0)
RESIDUAL_LR = 0.1
RESIDUAL_SCALAR_LR = 0.01
RESIDUAL_BATCH = 128
RESIDUAL_KINDS = ("He branches", "Fixup (W2 = 0, W1 x L^-1/2)", "SkipInit / ReZero (alpha = 0)")


def _residual_init(kind: str) -> Any:
    def init(model: nn.Module, seed: int) -> None:
        assert isinstance(model, ResidualMLP)
        he = he_normal(nonlinearity="relu")
        with torch.no_grad():
            for index, (first, second) in enumerate(zip(model.first, model.second)):
                assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
                generator = derive_generator(seed, f"residual/{index}")
                first.bias.zero_()
                second.bias.zero_()
                he(first.weight, generator=generator)
                if kind == RESIDUAL_KINDS[1]:
                    first.weight.mul_(len(model.first) ** -0.5)
                    second.weight.zero_()
                else:
                    he(second.weight, generator=generator)
            model.alpha.fill_(0.0 if kind == RESIDUAL_KINDS[2] else 1.0)
            glorot_normal()(model.input.weight, generator=derive_generator(seed, "residual/input"))
            model.input.bias.zero_()
            glorot_normal()(model.output.weight, generator=derive_generator(seed, "residual/output"))
            model.output.bias.zero_()

    return init


@claim(
    "residual-zero",
    title="Residual zero-init (Fixup / SkipInit / ReZero): identity at init, trains at 100 blocks",
    statement=(
        "Zero-initialised residual branches make each block the identity at init, so a 100-block un-normalised "
        "residual MLP trains; with He-initialised branches its signal explodes."
    ),
    references=("Zhang, Dauphin & Ma 2019 (Fixup)", "De & Smith 2020 (SkipInit)", "Bachlechner et al. 2020 (ReZero)"),
    group="reproduction",
    hypothesis=(
        "With the last layer of every branch (Fixup) or a scalar gate (SkipInit / ReZero) at zero, a 100-block "
        "residual MLP without normalisation starts as the identity and its training loss falls; with He "
        "branches every block multiplies the signal's second moment by 3 (1 + 2), and 100 blocks explode."
    ),
    design=(
        "One optimiser for every arm, the Fixup reference implementation's (hongyi-zhang/Fixup, "
        "cifar/cifar_train.py at commit e57b6c0): SGD with momentum 0.9, batch 128, learning rate 0.1 for the "
        "weights and 0.1/10 for the biases and the scalar multipliers (ReZero's gates are scalar multipliers). "
        "The reference's weight decay (1e-4), mixup and 200-epoch learning-rate schedule are left out: they "
        "regularise and schedule a long run and are not part of the init. The budget is 20 epochs of the "
        "split's training rows in full mode, 2 in quick mode (its time allowance): the claim is that the loss "
        "falls (below 0.8 of its start), not how far."
    ),
    amendments=(
        Amendment(
            "2026-12-02",
            "SGD learning rate raised from 0.01 to 0.05 and the budget cut from 1000 to 200 steps (quick mode: "
            "60 to 20), batch 64.",
            "Made after runs had been seen, to make quick mode faster; at lr 0.05 ReZero diverged in 2 of 10 "
            "full runs. Withdrawn by the next amendment."),
        Amendment(
            "2026-12-02",
            "Optimiser and budget fixed by stated rules: the Fixup reference implementation's SGD (momentum 0.9, "
            "batch 128, lr 0.1 for weights, 0.01 for biases and scalar gates); 20 epochs in full mode, 2 in "
            "quick mode.",
            "Replaces a learning rate and budget chosen after runs had been seen with settings taken from the "
            "reference implementation, stated before the run that decides the claim."),
    ),
    rules=(
        Rule("trains", "final over initial training loss, worse of Fixup and ReZero", "<", 0.8,
             why="the loss falls within the budget (20 epochs, the Fixup reference's optimiser)"),
        Rule("explodes", "He branches: std of the block stack's output over its input, at init", ">", 1e6,
             role="control",
             predicts="without zero-init each He block multiplies E[x^2] by 3: 100 blocks give 3^50 = 7e23 in "
                      "std, a network that cannot train"),
        Rule("identity", "zero-init branches: max |stack(x) - x| at init", "==", 0.0, role="demonstration"),
    ),
    order=106,
)
def residual_zero_init(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    epochs = ctx.pick(2, 20)
    rows = len(dataset("digits", seeds[0]).y_train)
    steps = math.ceil(epochs * rows / RESIDUAL_BATCH)
    width = 32

    def factory(data: Dataset) -> nn.Module:
        return ResidualMLP(data.num_features, width, RESIDUAL_BLOCKS, data.num_classes)

    growth, identity = [], 0.0
    for seed in seeds:
        split = dataset("digits", seed)
        for kind in RESIDUAL_KINDS:
            model = factory(split)
            _residual_init(kind)(model, seed)
            with torch.no_grad():
                inputs = model.input(split.x_train)  # type: ignore[operator]
                out = model.trunk(inputs)  # type: ignore[operator]
            if kind == RESIDUAL_KINDS[0]:
                growth.append(float(out.std() / inputs.std()))
            else:
                identity = max(identity, float((out - inputs).abs().max()))
    zero_kinds = RESIDUAL_KINDS[1:]
    # the reference's slower rate for biases and scalar multipliers, as factors on the weights' rate
    scalars = {name: RESIDUAL_SCALAR_LR / RESIDUAL_LR for name, _ in factory(dataset("digits", seeds[0])).named_parameters()
               if name == "alpha" or name.endswith(".bias")}
    runs = train_arms(factory, [Arm(kind, _residual_init(kind)) for kind in zero_kinds], seeds, steps=steps,
                      batch_size=RESIDUAL_BATCH, lr=RESIDUAL_LR, optimizer="momentum", momentum=0.9,
                      lr_scale=scalars, eval_every=steps, log_every=max(1, steps // 30))
    ratio = np.stack([finals(runs[kind], "train_loss", diverged=math.inf)
                      / np.asarray([r.history[0]["loss"] for r in runs[kind]]) for kind in zero_kinds], axis=1)
    per_block = float(np.exp(np.log(np.asarray(growth)).mean())) ** (2.0 / RESIDUAL_BLOCKS)
    fig, axes = figure()
    plot_losses(axes[0][0], runs, clip=1e3)
    return Outcome(
        measurement=(
            f"{RESIDUAL_BLOCKS}-block residual MLP (width {width} after a linear input map, no normalisation) on "
            "digits: output/input std of "
            f"the block stack at init, distance from the identity, and {steps} SGD steps ({epochs} epochs; momentum "
            f"0.9, lr {RESIDUAL_LR} for weights and {RESIDUAL_SCALAR_LR} for biases and gates, batch {RESIDUAL_BATCH})"
        ),
        values={
            "trains": _stats.bootstrap(lambda a: a.mean(axis=1).max(axis=-1), ratio),
            "explodes": _stats.geometric_mean(np.asarray(growth)),
            "identity": _stats.exact(identity, n=2 * len(seeds)),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"runs": [{"branches": kind, "final / initial training loss": mean_text(ratio[:, i])}
                         for i, kind in enumerate(zero_kinds)]
                + [{"branches": RESIDUAL_KINDS[0], "std out / std in at init": mean_text(np.asarray(growth), 3)}]},
        reference="Fixup (Sec. 3): zero-init of the last layer of each branch and rescaling of the others by "
                  "L^(-1/(2m-2)) trains 10,000-layer un-normalised ResNets; ReZero/SkipInit: a scalar gate at 0 makes "
                  "every block the identity at init.",
        notes=(
            f"With He branches E[x^2] grows by {per_block:.2f} per block (theory: 3, from 1 + 2), so the stack's "
            f"output std is {np.exp(np.log(growth).mean()):.3g} times its input's: the logits, and the "
            "cross-entropy loss at the first step, are astronomically large. Runs that diverged during training "
            "(their ratio counts as infinite): "
            + ", ".join(f"{kind} {sum(r.status == 'diverged' for r in runs[kind])} of {len(seeds)}"
                        for kind in zero_kinds) + "."
        ),
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


SAXE_LR = 0.5
SAXE_LOSS = 0.4


@claim(
    "saxe2014",
    title="Saxe et al. 2014: deep linear nets learn in depth-independent time from orthogonal init",
    statement=(
        "In deep linear networks the learning time from orthogonal init does not grow with depth (given a learning "
        "rate scaled as 1/depth), while from scaled Gaussian init it grows with depth."
    ),
    references=("Saxe, McClelland & Ganguli 2014, 'Exact solutions to the nonlinear dynamics of learning in deep "
                "linear neural networks'",),
    group="reproduction",
    hypothesis=(
        "With lr = 0.5 / L for L weight layers, the SGD steps a linear MLP on digits needs to reach a training "
        "loss of 0.4 stay flat in depth from orthogonal init (|log-log slope| < 0.15) and grow from scaled "
        "Gaussian init (Var = 1/n; slope > 0.15); orthogonal nets at one fixed small rate learn faster the "
        "deeper they are."
    ),
    rules=(
        Rule("orthogonal", "orthogonal, lr 0.5/L: slope of log2(steps) against log2(L)", "in", (-0.15, 0.15)),
        Rule("gaussian", "scaled Gaussian, lr 0.5/L: the same slope", ">", 0.15),
        Rule("fixed_lr", "orthogonal, one fixed lr (0.5 / the deepest L): the same slope", "<", -0.15,
             role="control",
             predicts="an orthogonal net's end-to-end map moves L times faster per step than one layer; with one "
                      "learning rate for all depths the deeper nets must learn faster, which is why the rate is "
                      "scaled as 1/L"),
    ),
    order=107,
)
def saxe_2014(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    depths = ctx.pick([2, 8, 32], [1, 2, 4, 8, 16, 32])  # hidden layers; L = depth + 1 weight layers
    cap = ctx.pick(300, 600)
    width = 32
    fixed_lr = SAXE_LR / (depths[-1] + 1)
    steps: dict[str, list[np.ndarray]] = {"orthogonal": [], "scaled Gaussian": [], "orthogonal, fixed lr": []}
    for depth in depths:
        layers = depth + 1
        arms = [Arm("orthogonal", "orthogonal", lr=SAXE_LR / layers),
                Arm("scaled Gaussian", "lecun_normal", lr=SAXE_LR / layers),
                Arm("orthogonal, fixed lr", "orthogonal", lr=fixed_lr)]
        runs = train_arms(f"mlp:*-{width}x{depth}-*:linear+nobias", arms, seeds, steps=cap, batch_size=64,
                          eval_every=cap, log_every=2)
        for label, results in runs.items():
            logged, table = loss_table(results, cap=10.0)
            steps[label].append(np.minimum(first_step_below(logged, table, SAXE_LOSS, window=5), cap))
    tables = {label: np.stack(values, axis=1) for label, values in steps.items()}  # (seeds, depths)
    log_layers = np.log2(np.asarray(depths) + 1.0)
    slopes = {label: _stats.slope(log_layers, np.log2(table)) for label, table in tables.items()}
    fig, axes = figure()
    for color, (label, table) in zip(("C0", "C1", "C2"), tables.items()):
        axes[0][0].plot(np.asarray(depths) + 1, np.median(table, axis=0), marker="o", color=color,
                        label=f"{label} (slope {slopes[label].value:.2f})")
        axes[0][0].fill_between(np.asarray(depths) + 1, table.min(axis=0), table.max(axis=0), color=color,
                                alpha=0.2, lw=0)
    axes[0][0].set_xscale("log", base=2)
    axes[0][0].set_yscale("log", base=2)
    axes[0][0].set_xlabel("weight layers L")
    axes[0][0].set_ylabel(f"SGD steps to training loss < {SAXE_LOSS}")
    axes[0][0].legend()
    return Outcome(
        measurement=(
            f"linear MLPs (width {width}, no biases) on digits with {depths[0]}-{depths[-1]} hidden layers, SGD batch "
            f"64 at lr {SAXE_LR}/L (or {fixed_lr:.3g} for all), capped at {cap} steps; steps until the training loss "
            f"(mean of 5 logs) falls below {SAXE_LOSS}; least-squares slope of the seeds' mean log2(steps) against "
            "log2(L)"
        ),
        values={"orthogonal": slopes["orthogonal"], "gaussian": slopes["scaled Gaussian"],
                "fixed_lr": slopes["orthogonal, fixed lr"]},
        figures=[ctx.save_figure(fig, "learning-time")],
        tables={"steps to criterion": [{"init": label, **{f"L = {d + 1}": mean_text(table[:, i], 0)
                                                          for i, d in enumerate(depths)}}
                                       for label, table in tables.items()]},
        reference="Paper: with random orthogonal init and a learning rate scaled with depth, deep linear networks "
                  "learn in a time that stays finite as depth grows; with scaled random Gaussian init it grows.",
        notes="Runs that do not reach the loss count as the cap, so a slope is then a lower bound in size.",
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )
