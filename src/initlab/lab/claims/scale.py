"""Claims 6-10: the scale of the init -- saturation, small random values, variance rules, vanishing and exploding."""

from __future__ import annotations

import math

import numpy as np
import torch

from initlab.lab.claims._common import figure, fmt, mean_se, spearman
from initlab.lab.claims._nets import InitSpec, StackedMLP, digits, seeded_generator, train_stacked
from initlab.lab.claims.base import Check, Context, Outcome, claim
from initlab.schemes import (
    Fans,
    glorot_normal,
    he_normal,
    lecun_normal,
    normal,
    small_random,
    variance_scaling,
)


def _logistic_derivative(z: float) -> float:
    s = 1.0 / (1.0 + math.exp(-z))
    return s * (1.0 - s)


@claim(
    "6",
    title="Large weights saturate sigmoid units and slow learning",
    statement=(
        "Large weights saturate sigmoid/tanh units and slow learning: the logistic derivative at 10 is about "
        "1/22000 against 1/4 at 0, and the steps needed to reach a loss grow with the init scale."
    ),
    source="Korean answer (logistic derivative 1/22000 at 10); deeplearning.ai (Chinese), flat regions of tanh/sigmoid",
    order=6,
)
def saturation(ctx: Context) -> Outcome:
    derivative_10 = _logistic_derivative(10.0)
    x, y, _, _ = digits(ctx.seed, n_train=ctx.pick(500, None))
    scales = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    n_seeds = ctx.pick(2, 4)
    steps = ctx.pick(600, 2000)
    threshold = 0.03
    specs = []
    for scale in scales:
        specs += [InitSpec(f"scale{scale:g}", normal(std=scale / math.sqrt(64)))] * n_seeds
    model = StackedMLP([64, 64, 10], "sigmoid", len(specs))
    model.initialize(specs, [ctx.seed + s for s in range(n_seeds)] * len(scales))
    with torch.no_grad():
        pre = torch.matmul(x, model.weights[0].transpose(1, 2)) + model.biases[0].unsqueeze(1)
        saturated = (pre.abs() > 4.0).double().mean(dim=(1, 2)).numpy()
        slope = (torch.sigmoid(pre) * (1 - torch.sigmoid(pre))).mean(dim=(1, 2)).double().numpy()
    log = train_stacked(model, x, y, steps=steps, lr=4.0, batch_size=64, seed=ctx.seed, record_every=5,
                        loss="sigmoid_mse")
    # smooth the noisy batch losses over 5 records before thresholding
    kernel = np.ones(5) / 5
    smoothed = np.stack([np.convolve(log.losses[:, s], kernel, mode="same") for s in range(len(specs))], axis=1)
    first = np.full(len(specs), np.inf)
    for s in range(len(specs)):
        below = np.nonzero(smoothed[2:-2, s] < threshold)[0]
        if below.size:
            first[s] = log.steps[below[0] + 2]
    steps_per_scale = [float(np.mean(np.minimum(first[i * n_seeds:(i + 1) * n_seeds], steps))) for i in range(len(scales))]
    reached = [bool(np.isfinite(first[i * n_seeds:(i + 1) * n_seeds]).all()) for i in range(len(scales))]
    saturated_per_scale = [float(np.mean(saturated[i * n_seeds:(i + 1) * n_seeds])) for i in range(len(scales))]
    slope_per_scale = [float(np.mean(slope[i * n_seeds:(i + 1) * n_seeds])) for i in range(len(scales))]
    ratio = steps_per_scale[-1] / max(steps_per_scale[1], 1.0)
    rho = spearman(scales[1:], steps_per_scale[1:])
    rows = [
        {"scale s (std = s/sqrt(64))": s, "saturated fraction |z|>4": fmt(sat), "mean sigmoid'(z)": fmt(sl),
         f"steps to loss < {threshold}": (fmt(st) if ok else f">= {steps} (not reached)")}
        for s, sat, sl, st, ok in zip(scales, saturated_per_scale, slope_per_scale, steps_per_scale, reached)
    ]
    fig, axes = figure(ncols=2)
    colors = [f"C{i}" for i in range(len(scales))]
    for i, scale in enumerate(scales):
        axes[0][0].plot(log.steps, smoothed[:, i * n_seeds], color=colors[i], lw=1, label=f"s={scale:g}")
    axes[0][0].axhline(threshold, color="k", ls=":", lw=0.8)
    axes[0][0].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss")
    axes[0][0].legend(fontsize=7)
    grid = np.linspace(-12, 12, 400)
    axes[0][1].plot(grid, [_logistic_derivative(v) for v in grid])
    axes[0][1].set_yscale("log")
    axes[0][1].set_title("logistic derivative")
    axes[0][1].set_xlabel("z")
    figure_name = ctx.save_figure(fig, "saturation")
    return Outcome(
        measurement=(
            f"64-64-10 net of logistic units (hidden and output) on digits, squared error on one-hot targets, "
            f"every weight N(0, (s/8)^2), {n_seeds} seeds per scale; "
            f"SGD steps until the training loss falls below {threshold} (capped at {steps})"
        ),
        checks=[
            Check(f"steps at s={scales[-1]:g} / steps at s=1", ratio, ">=", 2.0),
            Check("Spearman rank correlation of scale (s >= 1) and steps", rho, ">=", 0.8),
            Check("saturated fraction at s=16 minus at s=1", saturated_per_scale[-1] - saturated_per_scale[1], ">", 0.3),
            Check("1 / sigmoid'(10)", 1.0 / derivative_10, "in", (20000.0, 24000.0),
                  why="the seed text's 1/22000; sigmoid'(0) = 1/4 exactly"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"scales": rows},
        notes=(
            f"sigmoid'(10) = {derivative_10:.3g} = 1/{1 / derivative_10:.0f}, against 1/4 at 0: a unit driven to "
            f"|z| = 10 learns about {0.25 / derivative_10:.0f} times slower from the same error signal. "
            "Runs that never reach the loss count as the step cap, so the ratio is then a lower bound. "
            "The loss is squared error on logistic outputs, the setting of the seed text; a cross-entropy loss on "
            "softmax outputs cancels the output units' derivative and hides much of the slowdown (the Korean "
            "answer's 'large training signal')."
        ),
        setting=f"SGD lr 4, batch 64, {steps} steps",
    )


@claim(
    "7",
    title="randn*0.01 works for one hidden layer, fails deep",
    statement=(
        "Small random values (randn*0.01) are fine for a one-hidden-layer network and fail for deep ones: "
        "activations and gradients vanish."
    ),
    source="deeplearning.ai random initialization (Chinese); CS231n",
    order=7,
)
def small_random_depth(ctx: Context) -> Outcome:
    x, y, x_test, y_test = digits(ctx.seed)
    n_seeds = ctx.pick(2, 4)
    seeds = [ctx.seed + s for s in range(n_seeds)]
    steps = ctx.pick(300, 2000)
    depth = 10
    rows = []
    outcomes = {}
    for label, widths in (("1 hidden layer", [64, 64, 10]), (f"{depth} hidden layers", [64] + [64] * depth + [10])):
        model = StackedMLP(widths, "tanh", n_seeds)
        model.initialize([InitSpec("small", small_random(0.01))] * n_seeds, seeds)
        keep: list[torch.Tensor] = []
        with torch.no_grad():
            model(x, keep=keep)
        first_std = float(torch.tanh(keep[0]).std())
        last_std = float(torch.tanh(keep[-2]).std())
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.repeat(n_seeds))
        gradient = torch.autograd.grad(loss, model.weights[0])[0]
        first_gradient = float(gradient.norm() / math.sqrt(n_seeds))
        log = train_stacked(model, x, y, steps=steps, lr=0.1, batch_size=64, seed=ctx.seed,
                            x_test=x_test, y_test=y_test, record_every=10)
        assert log.test_accuracy is not None
        accuracy, error = mean_se(log.test_accuracy)
        outcomes[label] = (accuracy, first_std, last_std, first_gradient, log)
        rows.append({"network": label, "std of first hidden act.": fmt(first_std),
                     "std of last hidden act.": fmt(last_std), "|dL/dW1| at init": fmt(first_gradient),
                     "test accuracy": f"{accuracy:.3f} ± {error:.3f}"})
    shallow = outcomes["1 hidden layer"]
    deep = outcomes[f"{depth} hidden layers"]
    fig, axes = figure()
    for label, (_, _, _, _, log) in outcomes.items():
        axes[0][0].plot(log.steps, log.losses[:, 0], label=label)
    axes[0][0].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss")
    axes[0][0].legend()
    figure_name = ctx.save_figure(fig, "loss")
    return Outcome(
        measurement=(
            f"tanh nets of width 64 on digits with every weight randn*0.01, {steps} SGD steps; "
            "test accuracy and activation std"
        ),
        checks=[
            Check("test accuracy, 1 hidden layer", shallow[0], ">=", 0.9),
            Check(f"test accuracy, {depth} hidden layers", deep[0], "<=", 0.2, why="chance is 0.1"),
            Check(f"std of last / first hidden activation, {depth} layers", deep[2] / max(deep[1], 1e-300), "<", 1e-6,
                  why="each layer multiplies the std by about sqrt(64) * 0.01 = 0.08"),
            Check("|dL/dW1| deep / shallow at init", deep[3] / max(shallow[3], 1e-300), "<", 1e-6),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"networks": rows},
        notes=(
            "With one hidden layer the output layer sees small but usable features and SGD scales them up. "
            f"Through {depth} layers every layer shrinks the signal about 12-fold: the output sees nothing and "
            "the error reaching the first layers is equally tiny."
        ),
        setting=f"SGD lr 0.1, batch 64, {n_seeds} seeds",
    )


def _relative_tolerance(samples: int, fan_in: int, units: int, sigmas: float = 4.0) -> float:
    # sampling error of Var[y] over `samples` inputs and of sum_i w_i^2 over fan_in weights,
    # each averaged over `units` output units
    return sigmas * math.sqrt(2.0 / (samples * units) + 2.0 / (fan_in * units))


@claim(
    "8",
    title="Var[y] = n_in Var[w] Var[x]; LeCun, Glorot and He",
    statement=(
        "Var[y] = n_in Var[w] Var[x]: LeCun 1/n_in keeps the variance of linear (and near-linear tanh) layers, "
        "Glorot 2/(n_in+n_out) balances forward and backward, He 2/n_in keeps it for ReLU."
    ),
    source="Russian wiki (variance derivation, Xavier, He); Korean answer (LeCun 1998, Glorot 2010, He 2015)",
    order=8,
)
def variance_rules(ctx: Context) -> Outcome:
    generator = seeded_generator(ctx.seed, "claim8")
    samples = ctx.pick(2048, 8192)
    single_rows = []
    worst = 0.0
    for fan_in in (64, 256, 1024):
        for weight_scale in (0.5, 1.0, 2.0):
            var_w = weight_scale / fan_in
            units = 256
            w = torch.randn(units, fan_in, generator=generator, dtype=torch.float64) * math.sqrt(var_w)
            xs = (torch.rand(samples, fan_in, generator=generator, dtype=torch.float64) - 0.5) * 2 * math.sqrt(3) * 1.5
            var_x = float(xs.var())
            measured = float((xs @ w.T).var(dim=0).mean())
            predicted = fan_in * var_w * var_x
            tolerance = _relative_tolerance(samples, fan_in, units)
            deviation = abs(measured / predicted - 1.0)
            worst = max(worst, deviation / tolerance)
            single_rows.append({"n_in": fan_in, "Var[w]": fmt(var_w), "Var[x]": fmt(var_x), "predicted": fmt(predicted),
                                "measured": fmt(measured), "|ratio-1|": fmt(deviation), "tolerance": fmt(tolerance)})

    # depth: second moment per layer through 20 layers, averaged (in log) over independent networks
    depth, width, networks = 20, 256, 8
    xs = torch.randn(networks, 128, width, generator=generator)
    chains = {
        "linear, LeCun": ("linear", lecun_normal()),
        "tanh, LeCun": ("tanh", lecun_normal()),
        "ReLU, LeCun": ("relu", lecun_normal()),
        "ReLU, He": ("relu", he_normal(nonlinearity="relu")),
    }
    profiles: dict[str, list[float]] = {}
    for label, (activation, scheme) in chains.items():
        hidden = xs
        log_moments = []
        for layer in range(depth):
            w = scheme.sample((networks, width, width), layout=Fans(width, width),
                              generator=seeded_generator(ctx.seed, f"{label}/{layer}"))
            pre = torch.bmm(hidden, w.transpose(1, 2))
            log_moments.append((pre.double() ** 2).mean(dim=(1, 2)).log())
            hidden = {"linear": pre, "tanh": torch.tanh(pre), "relu": torch.relu(pre)}[activation]
        profiles[label] = [float(v.mean().exp()) for v in log_moments]
    # log E[z^2] of one network wanders by about sqrt(k / width) per layer (k = 2 for Gaussian
    # pre-activations, 5 after a ReLU); averaging 8 networks divides that by sqrt(8)
    spread_linear = 3 * math.sqrt((depth - 1) * 2 / width / networks)
    spread_relu = 3 * math.sqrt((depth - 1) * 5 / width / networks)
    final_ratio = {label: values[-1] / values[0] for label, values in profiles.items()}

    # Glorot's compromise on a 400 -> 100 layer: forward and backward variance factors
    fan_in, fan_out = 400, 100
    balance_rows = []
    worst_log: dict[str, float] = {}
    for label, scheme in (("LeCun (fan_in)", lecun_normal()),
                          ("fan_out", variance_scaling(scale=1.0, mode="fan_out")),
                          ("Glorot (fan_avg)", glorot_normal())):
        w = scheme.sample((fan_out, fan_in), dtype=torch.float64, generator=seeded_generator(ctx.seed, label))
        forward = float((torch.randn(samples, fan_in, generator=generator, dtype=torch.float64) @ w.T).var())
        backward = float((torch.randn(samples, fan_out, generator=generator, dtype=torch.float64) @ w).var())
        worst_log[label] = max(abs(math.log2(forward)), abs(math.log2(backward)))
        balance_rows.append({"scheme": label, "forward Var[y]/Var[x]": fmt(forward),
                             "backward Var[dx]/Var[dy]": fmt(backward), "worst |log2|": fmt(worst_log[label])})

    fig, axes = figure(ncols=2)
    for label, values in profiles.items():
        axes[0][0].plot(range(1, depth + 1), values, marker=".", label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("layer")
    axes[0][0].set_ylabel("E[pre-activation^2]")
    axes[0][0].legend(fontsize=7)
    ratios = [float(r["measured"]) / float(r["predicted"]) for r in single_rows]
    axes[0][1].plot(range(len(ratios)), ratios, "o")
    axes[0][1].axhline(1.0, color="k", lw=0.8)
    axes[0][1].set_title("measured / predicted Var[y], 9 layers")
    axes[0][1].set_ylim(0.8, 1.2)
    figure_name = ctx.save_figure(fig, "variance")
    return Outcome(
        measurement=(
            "Var[y] of single layers (n_in 64-1024, 3 weight variances, uniform inputs) against n_in Var[w] Var[x]; "
            f"E[z^2] through {depth} layers of width {width} (geometric mean of {networks} networks); forward and backward factors of a 400->100 layer"
        ),
        checks=[
            Check("worst |measured/predicted - 1| in units of its 4-sigma sampling tolerance", worst, "<=", 1.0),
            Check(f"linear net, LeCun: E[z^2] layer {depth} / layer 1", final_ratio["linear, LeCun"], "in",
                  (math.exp(-spread_linear), math.exp(spread_linear)), why="3-sigma band of the log-normal wander"),
            Check(f"ReLU net, He: E[z^2] layer {depth} / layer 1", final_ratio["ReLU, He"], "in",
                  (math.exp(-spread_relu), math.exp(spread_relu)), why="3-sigma band of the log-normal wander"),
            Check(f"ReLU net, LeCun: E[z^2] layer {depth} / layer 1", final_ratio["ReLU, LeCun"], "<", 0.01,
                  why="each ReLU halves the second moment: about 2^-19"),
            Check("worst |log2 factor|: Glorot minus LeCun(fan_in)", worst_log["Glorot (fan_avg)"] - worst_log["LeCun (fan_in)"], "<", 0.0),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"single layers": single_rows, "400->100 layer": balance_rows,
                "depth": [{"network": k, f"E[z^2] layer {depth} / layer 1": fmt(v)} for k, v in final_ratio.items()]},
        notes=(
            f"tanh with LeCun is only near-linear: E[z^2] drifts to {final_ratio['tanh, LeCun']:.2f} of its start "
            f"after {depth} layers (tanh shrinks large inputs), far gentler than ReLU with LeCun "
            f"({final_ratio['ReLU, LeCun']:.2g}). Glorot keeps neither factor at 1 but bounds both: "
            f"forward {balance_rows[2]['forward Var[y]/Var[x]']}, backward {balance_rows[2]['backward Var[dx]/Var[dy]']}."
        ),
        setting=f"{samples} input samples, float64",
    )


@claim(
    "9",
    title="5-layer ReLU MLP: too small vanishes, too large explodes, He is stable",
    statement=(
        "In a 5-layer ReLU MLP on handwritten digits too small a std makes activations vanish, too large makes "
        "them explode, and He init keeps them stable."
    ),
    source="Korean answer (5-layer ReLU MLP activation histograms on MNIST)",
    order=9,
)
def relu_histograms(ctx: Context) -> Outcome:
    x, _, _, _ = digits(ctx.seed)
    width, depth = 100, 5
    inits = {"std 0.01": normal(std=0.01), "He (std sqrt(2/n))": he_normal(nonlinearity="relu"), "std 1.0": normal(std=1.0)}
    activations: dict[str, list[torch.Tensor]] = {}
    for label, scheme in inits.items():
        hidden = x
        layers = []
        fan_in = x.shape[1]
        for layer in range(depth):
            w = scheme.sample((width, fan_in), generator=seeded_generator(ctx.seed, f"claim9/{label}/{layer}"))
            hidden = torch.relu(hidden @ w.T)
            layers.append(hidden)
            fan_in = width
        activations[label] = layers
    stds = {label: [float(a.std()) for a in layers] for label, layers in activations.items()}
    growth = {label: values[-1] / values[0] for label, values in stds.items()}
    fig, axes = figure(ncols=depth, nrows=len(inits), width=2.0, height=1.6)
    for row, (label, layers) in enumerate(activations.items()):
        for column, values in enumerate(layers):
            axis = axes[row][column]
            positive = values.flatten()
            positive = positive[positive > 0]  # the ReLU zeros would hide the shape
            axis.hist(positive.numpy(), bins=40, color=f"C{row}")
            axis.set_yticks([])
            axis.tick_params(labelsize=6)
            if row == 0:
                axis.set_title(f"layer {column + 1}", fontsize=8)
            if column == 0:
                axis.set_ylabel(label, fontsize=7)
    figure_name = ctx.save_figure(fig, "histograms")
    return Outcome(
        measurement=f"one pass of all training digits through a {depth}-layer ReLU MLP of width {width}; std of each layer's output",
        checks=[
            Check("std 0.01: std of layer 5 / layer 1", growth["std 0.01"], "<", 0.01),
            Check("std 1.0: std of layer 5 / layer 1", growth["std 1.0"], ">", 100.0),
            Check("He: std of layer 5 / layer 1", growth["He (std sqrt(2/n))"], "in", (0.5, 2.0)),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"std per layer": [{"init": k, **{f"layer {i + 1}": fmt(v) for i, v in enumerate(vals)}}
                                  for k, vals in stds.items()]},
        notes="Per layer the std is multiplied by sqrt(n Var[w] / 2): 0.07 for std 0.01, 7 for std 1, 1 for He. "
              "The histograms show the non-zero outputs of each layer (note the x-axis scales).",
        setting="digits (standardised), float32",
    )


@claim(
    "10",
    title="Init decides between converging and not converging",
    statement=(
        "Initialization can decide between converging and not converging at all: a deep network with one "
        "init scale does not train, with another it does."
    ),
    source="Russian wiki ('may not converge at all')",
    order=10,
)
def converge_or_not(ctx: Context) -> Outcome:
    x, y, x_test, y_test = digits(ctx.seed)
    depth = 16
    n_seeds = ctx.pick(1, 4)
    steps = ctx.pick(300, 2000)
    inits = {"std 0.01": normal(std=0.01), "He": he_normal(nonlinearity="relu"), "std 1.0": normal(std=1.0)}
    specs = [InitSpec(label, scheme, output=glorot_normal()) for label, scheme in inits.items() for _ in range(n_seeds)]
    model = StackedMLP([64] + [64] * depth + [10], "relu", len(specs))
    model.initialize(specs, [ctx.seed + s for s in range(n_seeds)] * len(inits))
    log = train_stacked(model, x, y, steps=steps, lr=0.02, batch_size=64, seed=ctx.seed, record_every=10,
                        x_test=x_test, y_test=y_test)
    rows = []
    accuracy = {}
    for index, label in enumerate(inits):
        part = slice(index * n_seeds, (index + 1) * n_seeds)
        train_mean, _ = mean_se(log.train_accuracy[part])
        accuracy[label] = train_mean
        finite = bool(np.isfinite(log.train_loss[part]).all())
        rows.append({"init": label, "train accuracy": fmt(train_mean),
                     "final loss": fmt(float(np.mean(log.train_loss[part]))) if finite else "non-finite"})
    fig, axes = figure()
    for index, label in enumerate(inits):
        curve = np.clip(np.nan_to_num(log.losses[:, index * n_seeds], nan=1e3, posinf=1e3), 1e-3, 1e3)
        axes[0][0].plot(log.steps, curve, label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss (clipped to 1e3)")
    axes[0][0].legend()
    figure_name = ctx.save_figure(fig, "loss")
    return Outcome(
        measurement=f"{depth}-hidden-layer ReLU MLP (width 64) on digits, {steps} SGD steps at lr 0.02; training accuracy",
        checks=[
            Check("He: training accuracy", accuracy["He"], ">=", 0.9),
            Check("std 0.01: training accuracy", accuracy["std 0.01"], "<=", 0.2, why="no learning: chance is 0.1"),
            Check("std 1.0: training accuracy", accuracy["std 1.0"], "<=", 0.2, why="the signal explodes"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"runs": rows},
        notes="Same network, data, optimiser and learning rate; only the init scale differs.",
        setting=f"{n_seeds} seeds, batch 64",
    )
