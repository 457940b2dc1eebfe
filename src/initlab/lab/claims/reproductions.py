"""Classic published results reproduced: He 2015, Glorot 2010, deeplearning.ai circles, 100 matmuls, muP, residual zero-init."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from initlab.lab.claims._common import figure, fmt
from initlab.lab.claims._nets import InitSpec, StackedMLP, digits, seeded_generator, train_stacked
from initlab.lab.claims.base import Check, Context, Outcome, claim
from initlab.schemes import (
    Initializer,
    glorot_normal,
    glorot_uniform,
    he_normal,
    lecun_normal,
    uniform,
)


@claim(
    "he2015",
    title="He et al. 2015, Fig. 3: 30-layer ReLU net, 1/n stalls, 2/n converges",
    statement=(
        "A 30-layer ReLU network with Var[w] = 1/n stalls while He init (2/n) converges; at 22 layers both converge."
    ),
    source="He, Zhang, Ren & Sun 2015, 'Delving deep into rectifiers', Figure 3",
    kind="reproduction",
    order=101,
)
def he_2015(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed)
    n_seeds = ctx.pick(1, 2)
    steps = ctx.pick(400, 3000)
    lr = 0.02
    width = 64
    inits = {"Var 1/n (Xavier/LeCun)": lecun_normal(), "Var 2/n (He)": he_normal(nonlinearity="relu")}
    results = {}
    for depth in (22, 30):
        specs = [InitSpec(label, scheme) for label, scheme in inits.items() for _ in range(n_seeds)]
        model = StackedMLP([64] + [width] * depth + [10], "relu", len(specs))
        model.initialize(specs, [ctx.seed + s for s in range(n_seeds)] * len(inits))
        log = train_stacked(model, x, y, steps=steps, lr=lr, batch_size=64, seed=ctx.seed, record_every=10)
        results[depth] = log
    initial = math.log(10.0)
    summary = {}
    rows = []
    for depth, log in results.items():
        for index, label in enumerate(inits):
            part = slice(index * n_seeds, (index + 1) * n_seeds)
            # the mean batch loss over the last tenth of training: robust to a single noisy step
            tail = max(1, len(log.steps) // 10)
            final = float(np.mean(log.losses[-tail:, part]))
            summary[(depth, label)] = final / initial
            half = log.first_step_below(0.5 * initial)[part]
            rows.append({"depth": depth, "init": label, "final loss / ln 10": fmt(final / initial),
                         "first step with loss < ln(10)/2": fmt(float(np.mean(half))) if np.isfinite(half).all() else "never"})
    fig, axes = figure(ncols=2)
    for column, (depth, log) in enumerate(results.items()):
        for index, label in enumerate(inits):
            axes[0][column].plot(log.steps, log.losses[:, index * n_seeds], label=label)
        axes[0][column].set_title(f"{depth} layers")
        axes[0][column].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss")
    axes[0][1].legend(fontsize=7)
    figure_name = ctx.save_figure(fig, "loss")
    he, xavier = "Var 2/n (He)", "Var 1/n (Xavier/LeCun)"
    return Outcome(
        measurement=(
            f"ReLU MLPs of width {width} on digits, 22 and 30 hidden layers, {steps} SGD steps (lr {lr}, batch 64); "
            "training loss over the last tenth of the steps relative to the chance-level loss ln 10"
        ),
        checks=[
            Check("30 layers, He: final loss / ln 10", summary[(30, he)], "<", 0.5, why="converges"),
            Check("30 layers, 1/n: final loss / ln 10", summary[(30, xavier)], ">", 0.95, why="stalls"),
            Check("22 layers, He: final loss / ln 10", summary[(22, he)], "<", 0.5),
            Check("22 layers: final loss / ln 10, 1/n minus He", summary[(22, xavier)] - summary[(22, he)], ">", 0.0,
                  why="He starts reducing the error earlier"),
            *([] if ctx.quick else [
                Check("22 layers, 1/n: final loss / ln 10", summary[(22, xavier)], "<", 0.5,
                      why="the paper: converges too, more slowly")]),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"runs": rows},
        reference=(
            "Paper, Fig. 3 (ImageNet conv nets): 22 layers -- both inits converge, He starts reducing the error "
            "earlier; 30 layers -- Xavier (1/n) 'completely stalls', He converges."
        ),
        notes=(
            "An MLP on digits stands in for the paper's convolutional ImageNet model. With 1/n each ReLU layer halves "
            "the signal's second moment, so 30 layers shrink it by 2^-30 and the error reaching the early layers "
            "is correspondingly tiny."
            + (" Quick mode trains too few steps for the 22-layer 1/n network to converge (it needs about 1500 "
               "here), so only 'He reduces the error earlier' is checked at 22 layers; the full run checks that "
               "both converge." if ctx.quick else "")
        ),
        setting=f"{n_seeds} seed(s) per cell",
    )


@claim(
    "glorot2010",
    title="Glorot & Bengio 2010: activation std per layer, standard vs normalised init",
    statement=(
        "In a 5-layer tanh network the per-layer activation std shrinks layer by layer under U[-1/sqrt(n), 1/sqrt(n)] "
        "and stays more even under normalised init U[+-sqrt(6/(n_in+n_out))]."
    ),
    source="Glorot & Bengio 2010, 'Understanding the difficulty of training deep feedforward neural networks', Figs. 6-7",
    kind="reproduction",
    order=102,
)
def glorot_2010(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed)
    width = ctx.pick(256, 1000)
    depth = 5
    profiles = {}
    gradient_profiles = {}
    for label in ("standard U[+-1/sqrt(n)]", "normalised (Glorot)"):
        hidden = x
        fan_in = x.shape[1]
        weights = []
        for layer in range(depth + 1):
            fan_out = 10 if layer == depth else width
            scheme: Initializer
            if label.startswith("standard"):
                bound = 1.0 / math.sqrt(fan_in)
                scheme = uniform(a=-bound, b=bound)
            else:
                scheme = glorot_uniform()
            w = scheme.sample((fan_out, fan_in), generator=seeded_generator(ctx.seed, f"{label}/{layer}"))
            weights.append(w.requires_grad_(True))
            fan_in = fan_out
        activations = []
        for layer, w in enumerate(weights):
            pre = hidden @ w.T
            if layer == depth:
                hidden = pre
                break
            hidden = torch.tanh(pre)
            hidden.retain_grad()
            activations.append(hidden)
        F.cross_entropy(hidden, y).backward()
        profiles[label] = [float(a.detach().std()) for a in activations]
        gradient_profiles[label] = [float(a.grad.std()) for a in activations]  # type: ignore[union-attr]
    standard = profiles["standard U[+-1/sqrt(n)]"]
    normalised = profiles["normalised (Glorot)"]
    evenness_standard = max(standard) / min(standard)
    evenness_normalised = max(normalised) / min(normalised)
    decreasing = all(b < a for a, b in zip(standard, standard[1:]))
    fig, axes = figure(ncols=2)
    for label, values in profiles.items():
        axes[0][0].plot(range(1, depth + 1), values, marker="o", label=label)
    axes[0][0].set_xlabel("layer")
    axes[0][0].set_ylabel("std of tanh activations")
    axes[0][0].legend(fontsize=7)
    for label, values in gradient_profiles.items():
        axes[0][1].plot(range(1, depth + 1), values, marker="o", label=label)
    axes[0][1].set_yscale("log")
    axes[0][1].set_xlabel("layer")
    axes[0][1].set_ylabel("std of back-propagated gradient")
    figure_name = ctx.save_figure(fig, "std")
    return Outcome(
        measurement=(
            f"all training digits through a {depth}-layer tanh MLP of width {width} (no biases); std of each layer's "
            "activations and of the back-propagated gradients of a cross-entropy loss"
        ),
        checks=[
            Check("standard init: std layer 5 / layer 1", standard[-1] / standard[0], "<", 0.5, why="shrinks"),
            Check("standard init: std decreases at every layer (1 = yes)", float(decreasing), "==", 1.0),
            Check("max/min std over layers: normalised minus standard", evenness_normalised - evenness_standard, "<", 0.0,
                  why="normalised init is more even"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"activation std": [{"init": k, **{f"layer {i + 1}": fmt(v) for i, v in enumerate(vals)}}
                                   for k, vals in profiles.items()],
                "gradient std": [{"init": k, **{f"layer {i + 1}": fmt(v) for i, v in enumerate(vals)}}
                                 for k, vals in gradient_profiles.items()]},
        reference=(
            "Paper, Fig. 6: with the standard init the activation histograms of layers 1-5 narrow layer by layer; "
            "Fig. 7: with normalised init they stay alike. Sec. 4.2.2: standard init's Var[W] = 1/(3n) shrinks the "
            "variance about 3-fold per layer in the linear regime."
        ),
        notes="Standard init gives n Var[W] = 1/3, so near zero each tanh layer divides the variance by about 3; "
              "Glorot's 2/(n_in+n_out) gives n Var[W] = 1 for square layers.",
        setting="digits (standardised), float32",
    )


def _circles(seed: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=samples, noise=0.05, random_state=np.random.RandomState(seed))
    return x.T, y.reshape(1, -1)


def _dlai_train(x: np.ndarray, y: np.ndarray, parameters: list[list[np.ndarray]], steps: int,
                lr: float) -> tuple[list[list[float]], list[list[np.ndarray]]]:
    """The exercise's 3-layer model in NumPy: LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID, batched over inits.

    ``parameters[k]`` is [W1, b1, W2, b2, W3, b3] of init k; the inits are stacked on a leading axis.
    """
    w1, b1, w2, b2, w3, b3 = (np.stack([p[i] for p in parameters]) for i in range(6))
    samples = x.shape[1]
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
            dw1 = dz1 @ x.T
            db1 = dz1.sum(axis=2, keepdims=True)
            w1 -= lr * dw1
            b1 -= lr * db1
            w2 -= lr * dw2
            b2 -= lr * db2
            w3 -= lr * dw3
            b3 -= lr * db3
    trained = [[w1[k], b1[k], w2[k], b2[k], w3[k], b3[k]] for k in range(len(parameters))]
    per_init = [[float(c) for c in row] for row in np.array(costs).T]
    return per_init, trained


def _dlai_accuracy(x: np.ndarray, y: np.ndarray, p: list[np.ndarray]) -> float:
    with np.errstate(over="ignore"):
        a1 = np.maximum(p[0] @ x + p[1], 0)
        a2 = np.maximum(p[2] @ a1 + p[3], 0)
        a3 = 1 / (1 + np.exp(-(p[4] @ a2 + p[5])))
    return float(np.mean((a3 > 0.5) == y))


@claim(
    "dlai-circles",
    title="deeplearning.ai initialization exercise: zeros 50%, randn*10 ~83%, He ~99%",
    statement=(
        "Layers [2, 10, 5, 1] on make_circles, 15,000 full-batch steps at lr 0.01: zeros give 50% train accuracy "
        "(cost stuck at 0.6931), randn*10 about 83%, He about 99%."
    ),
    source="deeplearning.ai, Improving Deep Neural Networks, week 1 'Initialization' exercise",
    kind="reproduction",
    order=103,
)
def dlai_circles(ctx: Context) -> Outcome:
    layers = [2, 10, 5, 1]
    steps = 15000
    # the exercise's data: make_circles(300, noise=.05) after seed 1, test set of 100 after seed 2
    x_train, y_train = _circles(1, 300)
    x_test, y_test = _circles(2, 100)
    inits = {}
    inits["zeros"] = [np.zeros((layers[i], layers[i - 1])) if j == 0 else np.zeros((layers[i], 1))
                      for i in range(1, 4) for j in (0, 1)]
    for label, scale in (("randn*10", lambda n: 10.0), ("He: randn*sqrt(2/n_prev)", lambda n: math.sqrt(2.0 / n))):
        rng = np.random.RandomState(3)  # the exercise seeds NumPy with 3 before drawing
        inits[label] = [rng.randn(layers[i], layers[i - 1]) * scale(layers[i - 1]) if j == 0 else np.zeros((layers[i], 1))
                        for i in range(1, 4) for j in (0, 1)]
    costs, trained = _dlai_train(x_train, y_train, list(inits.values()), steps, lr=0.01)
    results = {}
    rows = []
    for index, label in enumerate(inits):
        train_accuracy = _dlai_accuracy(x_train, y_train, trained[index])
        test_accuracy = _dlai_accuracy(x_test, y_test, trained[index])
        results[label] = (train_accuracy, test_accuracy, costs[index][-1])
        rows.append({"init": label, "train accuracy": fmt(train_accuracy), "test accuracy": fmt(test_accuracy),
                     "final cost": f"{costs[index][-1]:.6f}"})
    fig, axes = figure()
    for index, label in enumerate(inits):
        axes[0][0].plot(np.arange(len(costs[index])) * 1000, costs[index], marker=".", label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("iteration")
    axes[0][0].set_ylabel("cost")
    axes[0][0].legend(fontsize=7)
    figure_name = ctx.save_figure(fig, "cost")
    he = "He: randn*sqrt(2/n_prev)"
    return Outcome(
        measurement=f"the exercise's 3-layer model in NumPy (float64), {steps} full-batch GD steps at lr 0.01, 300 training points",
        checks=[
            Check("zeros: train accuracy", results["zeros"][0], "==", 0.5, margin=0.005),
            Check("zeros: final cost - ln 2", results["zeros"][2] - math.log(2.0), "==", 0.0, margin=1e-6),
            Check("randn*10: train accuracy", results["randn*10"][0], "in", (0.7, 0.95), why="the course: 0.83"),
            Check("He: train accuracy", results[he][0], ">=", 0.95, why="the course: 0.9933"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"runs": rows},
        reference=(
            "Course notebook: zeros -- train 0.5, test 0.5, cost 0.6931471805599453 throughout; randn*10 -- "
            "train 0.83, test 0.86; He -- train 0.9933, test 0.96."
        ),
        notes=(
            "With zero weights every ReLU outputs 0 and gets no gradient, and the balanced classes make the output "
            "bias gradient mean(a - y) = 0: nothing moves and the cost stays ln 2. randn*10 starts with huge "
            "pre-activations, so the sigmoid output saturates and the cost starts near infinity."
        ),
        setting="make_circles(noise=0.05), seeds 1 (train) and 2 (test); weights drawn after seeding NumPy with 3",
    )


@claim(
    "matmul100",
    title="100 chained 512x512 matmuls: NaN with randn, 0 with *0.01, std ~1 with 1/sqrt(512)",
    statement=(
        "Multiplying a vector by 100 random 512x512 matrices overflows to NaN by layer ~28 with randn, underflows "
        "to 0 with randn*0.01, and keeps std ~1 with randn/sqrt(512)."
    ),
    source="'Weight initialization in neural networks: a journey from the basics to Kaiming' (J. Dellinger, 2019)",
    kind="reproduction",
    order=104,
)
def matmul_100(ctx: Context) -> Outcome:
    size, layers = 512, 100
    profiles = {}
    first_nonfinite = {}
    for label, scale in (("randn", 1.0), ("randn*0.01", 0.01), ("randn/sqrt(512)", 1 / math.sqrt(size))):
        generator = seeded_generator(ctx.seed, "matmul100")
        x = torch.randn(size, generator=generator)
        stds = []
        first_nonfinite[label] = math.inf
        for layer in range(layers):
            a = torch.randn(size, size, generator=generator) * scale
            x = a @ x
            std = float(x.std())
            stds.append(std)
            if not math.isfinite(std) and math.isinf(first_nonfinite[label]):
                first_nonfinite[label] = layer + 1
        profiles[label] = stds
    final_kaiming = profiles["randn/sqrt(512)"][-1]
    # log(std) wanders by sqrt(layers * 0.5 / size) (chi-square of 512 dof per layer): 3 sigma band
    band = 3 * math.sqrt(layers * 0.5 / size)
    fig, axes = figure()
    for label, values in profiles.items():
        finite = [v if math.isfinite(v) and v > 0 else np.nan for v in values]
        axes[0][0].plot(range(1, layers + 1), finite, label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("matmul")
    axes[0][0].set_ylabel("std of x (float32; gaps: inf/NaN or 0)")
    axes[0][0].legend(fontsize=7)
    figure_name = ctx.save_figure(fig, "std")
    return Outcome(
        measurement=f"x ~ N(0, I_{size}); x <- a x for {layers} fresh a ~ scale * N(0, 1)^{{{size}x{size}}}, float32; std of x per step",
        checks=[
            Check("randn: first matmul with a non-finite std", first_nonfinite["randn"], "in", (24.0, 32.0),
                  why="std grows by sqrt(512) = 22.6 per matmul; float32 overflows past 3.4e38 after ~28"),
            Check("randn*0.01: std after 100 matmuls", profiles["randn*0.01"][-1], "<", 1e-30,
                  why="shrinks by 0.226 per matmul: 1e-65, below float32's smallest number"),
            Check("randn/sqrt(512): std after 100 matmuls", final_kaiming, "in",
                  (math.exp(-band), math.exp(band)), why="3-sigma band of the log-normal wander"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"std at selected steps": [
            {"init": label, **{f"step {k}": fmt(values[k - 1]) for k in (1, 10, 28, 50, 100)}}
            for label, values in profiles.items()
        ]},
        reference="The post: with randn the activations are NaN by layer 28 (x.mean(), x.std() = nan); with *0.01 "
                  "they vanish to 0; scaling by 1/sqrt(512) keeps mean ~0 and std ~1 after 100 layers.",
        notes="float32 as in the post (torch's default dtype).",
        setting="torch float32, one fixed seed",
    )


def _mup_delta(width: int, parameterisation: str, x: torch.Tensor, y: torch.Tensor, seeds: list[int],
               steps: int, lr: float, base_width: int) -> float:
    """RMS change of the logits after ``steps`` SGD steps, averaged over seeds."""
    ratio = width / base_width
    model = StackedMLP([x.shape[1], width, width, 10], "relu", len(seeds))
    hidden = he_normal(nonlinearity="relu")
    if parameterisation == "SP":
        spec = InitSpec("sp", hidden, output=he_normal(nonlinearity="linear"))
        layer_lr = [1.0, 1.0, 1.0]
    else:
        # muP for SGD (Tensor Programs V, Table 3) relative to base_width: input lr * n/n0, hidden lr * 1,
        # output init Var 1/fan_in * n0/fan_in and lr * n0/n
        def output_fill(shape: tuple[int, int], generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
            fan_in = shape[1]
            std = math.sqrt(1.0 / fan_in * base_width / fan_in)
            return torch.randn(shape, generator=generator, dtype=dtype) * std

        spec = InitSpec("mup", hidden, output=output_fill)
        layer_lr = [ratio, 1.0, 1.0 / ratio]
    model.initialize([spec] * len(seeds), seeds)
    with torch.no_grad():
        before = model(x).clone()
    train_stacked(model, x, y, steps=steps, lr=lr, layer_lr=layer_lr)
    with torch.no_grad():
        after = model(x)
    return float(((after - before) ** 2).mean(dim=(1, 2)).sqrt().mean())


@claim(
    "mup",
    title="muP coordinate check: logit updates grow with width in SP, stay flat in muP",
    statement=(
        "In standard parameterisation the change of the logits after a few SGD steps grows with width; in muP it "
        "stays flat."
    ),
    source="Yang et al. 2021, 'Tensor Programs V' (muTransfer), coordinate check",
    kind="reproduction",
    order=105,
)
def mup_coordinate_check(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed, n_train=256)
    widths = ctx.pick([64, 128, 256, 512, 1024], [64, 128, 256, 512, 1024, 2048, 4096])
    seeds = [ctx.seed + s for s in range(ctx.pick(2, 4))]
    steps, lr, base = 3, 0.005, 64
    deltas = {p: [_mup_delta(w, p, x, y, seeds, steps, lr, base) for w in widths] for p in ("SP", "muP")}
    # slopes from the second width up: at the smallest widths finite-width terms still shrink in muP
    fitted = slice(1, None)
    slopes = {p: float(np.polyfit(np.log2(widths[fitted]), np.log2(np.maximum(values[fitted], 1e-30)), 1)[0])
              for p, values in deltas.items()}
    fig, axes = figure()
    for p, values in deltas.items():
        axes[0][0].plot(widths, values, marker="o", label=f"{p} (slope {slopes[p]:.2f})")
    axes[0][0].set_xscale("log", base=2)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("width")
    axes[0][0].set_ylabel(f"RMS change of logits after {steps} SGD steps")
    axes[0][0].legend()
    figure_name = ctx.save_figure(fig, "coordinate-check")
    return Outcome(
        measurement=(
            f"64-n-n-10 ReLU MLP on 256 digits, widths {widths[0]}-{widths[-1]}, {steps} full-batch SGD steps "
            f"at lr {lr}; RMS change of the logits; slope of log2(change) against log2(width) from width {widths[1]} up"
        ),
        checks=[
            Check("SP: slope of log change vs log width", slopes["SP"], ">", 0.5, why="grows about linearly with width"),
            Check("muP: |slope| of log change vs log width", abs(slopes["muP"]), "<", 0.25, why="flat"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"logit change": [{"width": w, "SP": fmt(a), "muP": fmt(b)}
                                 for w, a, b in zip(widths, deltas["SP"], deltas["muP"])]},
        reference="Tensor Programs V, Fig. 5 / App. D: in SP the size of coordinate updates of the logits grows with "
                  "width (and blows up); in muP the curves for all widths lie on top of each other.",
        notes=f"muP here is the SGD version relative to a base width of {base} (equal to SP at width {base}).",
        setting=f"{len(seeds)} seeds",
    )


class _ResidualMLP(torch.nn.Module):
    """x <- x + alpha * W2 relu(W1 x) for ``blocks`` blocks, then a linear read-out; no normalisation."""

    def __init__(self, width: int, blocks: int, classes: int) -> None:
        super().__init__()
        self.first = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(blocks))
        self.second = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(blocks))
        self.alpha = torch.nn.Parameter(torch.ones(blocks))
        self.readout = torch.nn.Linear(width, classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for index, (first, second) in enumerate(zip(self.first, self.second)):
            x = x + self.alpha[index] * second(torch.relu(first(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.trunk(x))


def _linear(module: torch.nn.Module) -> torch.nn.Linear:
    if not isinstance(module, torch.nn.Linear):
        raise TypeError(f"expected a Linear block, got {type(module).__name__}")
    return module


def _residual_model(kind: str, width: int, blocks: int, seed: int) -> _ResidualMLP:
    model = _ResidualMLP(width, blocks, 10)
    he = he_normal(nonlinearity="relu")
    with torch.no_grad():
        for index, (first_module, second_module) in enumerate(zip(model.first, model.second)):
            first, second = _linear(first_module), _linear(second_module)
            generator = seeded_generator(seed, f"residual/{index}")
            first.bias.zero_()
            second.bias.zero_()
            he(first.weight, generator=generator)
            if kind == "He branches":
                he(second.weight, generator=generator)
            elif kind == "Fixup (W2 = 0, W1 * L^-1/2)":
                first.weight.mul_(blocks ** -0.5)
                second.weight.zero_()
            elif kind == "SkipInit / ReZero (alpha = 0)":
                he(second.weight, generator=generator)
        if kind == "SkipInit / ReZero (alpha = 0)":
            model.alpha.zero_()
        glorot_normal()(model.readout.weight, generator=seeded_generator(seed, "residual/readout"))
        model.readout.bias.zero_()
    return model


@claim(
    "residual-zero",
    title="Residual zero-init (Fixup / SkipInit / ReZero): identity at init, no explosion at 100 blocks",
    statement=(
        "Zero-initialised residual branches make each block the identity at init; a 100-block un-normalised "
        "residual MLP explodes with He-initialised branches and not with them."
    ),
    source="Zhang et al. 2019 (Fixup); De & Smith 2020 (SkipInit); Bachlechner et al. 2020 (ReZero)",
    kind="reproduction",
    order=106,
)
def residual_zero_init(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed)
    blocks, width = 100, 64
    steps = ctx.pick(60, 1000)
    kinds = ["He branches", "Fixup (W2 = 0, W1 * L^-1/2)", "SkipInit / ReZero (alpha = 0)"]
    rows = []
    growth = {}
    identity = {}
    losses = {}
    for kind in kinds:
        model = _residual_model(kind, width, blocks, ctx.seed)
        with torch.no_grad():
            out = model.trunk(x)
        growth[kind] = float(out.std() / x.std())
        identity[kind] = float((out - x).abs().max())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        history = []
        generator = torch.Generator().manual_seed(ctx.seed)
        for _ in range(steps):
            index = torch.randint(0, x.shape[0], (64,), generator=generator)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[index]), y[index])
            history.append(float(loss.detach()))
            if not math.isfinite(history[-1]):
                break
            loss.backward()
            optimizer.step()
        losses[kind] = history
        rows.append({"branches": kind, "std out / std in at init": fmt(growth[kind]),
                     "max |block stack(x) - x|": fmt(identity[kind]),
                     "loss: first -> last": f"{fmt(history[0])} -> {fmt(history[-1])}"})
    zero_kinds = kinds[1:]
    fig, axes = figure()
    for kind in kinds:
        values = np.clip(np.nan_to_num(losses[kind], nan=1e6, posinf=1e6), 1e-3, 1e6)
        axes[0][0].plot(range(len(values)), values, label=kind)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss (clipped to 1e6)")
    axes[0][0].legend(fontsize=7)
    figure_name = ctx.save_figure(fig, "loss")
    trained = [losses[k][-1] < losses[k][0] for k in zero_kinds]
    return Outcome(
        measurement=(
            f"{blocks}-block residual MLP (width {width}, no normalisation) on digits: output/input std of the block "
            f"stack at init, distance from the identity, and {steps} SGD steps at lr 0.01 (batch 64)"
        ),
        checks=[
            Check("He branches: std out / std in", growth["He branches"], ">", 1e6, nonfinite_passes=True,
                  why="each block about doubles the variance: 2^100"),
            Check("zero-init branches: max |stack(x) - x|", max(identity[k] for k in zero_kinds), "==", 0.0),
            Check("zero-init branches: training loss decreased (1 = both)", float(all(trained)), "==", 1.0),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"runs": rows},
        reference="Fixup (Sec. 3): zero-init of the last layer of each branch and rescaling of the others by "
                  "L^(-1/(2m-2)) trains 10,000-layer un-normalised ResNets; ReZero/SkipInit: a scalar gate at 0 makes "
                  "every block the identity at init.",
        notes="With He branches the loss is not even finite at step 0 -- training cannot start.",
        setting="SGD lr 0.01, full batch",
    )



