"""Claims 6-10: the scale of the init -- saturation, small random values, variance rules, vanishing and exploding.

Per-layer statistics (standard deviations, saturated fractions, gradient
norms, histograms) come from :func:`initlab.probe.audit`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

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
from initlab.lab.claims.base import Context, Measurement, Outcome, Rule, claim
from initlab.probe import Thresholds, audit
from initlab.probe.report import ProbeReport
from initlab.rng import derive_generator
from initlab.schemes import glorot_normal, lecun_normal, variance_scaling


def _logistic_derivative(z: float) -> float:
    s = 1.0 / (1.0 + math.exp(-z))
    return s * (1.0 - s)


def _audit_at_init(spec: str, init: str, seed: int, data: str = "digits", **options: Any) -> ProbeReport:
    """initlab.probe.audit of a freshly initialised model on its seed's training split (with the loss)."""
    split = dataset(data, seed)
    model = build(spec, split)
    initialize(model, init, seed)
    return audit(model, split.x_train, target=split.y_train, **options)


def _rows(report: ProbeReport, suffix: str) -> list[Any]:
    return [row for row in report if row.name.endswith(suffix)]


SATURATION_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SATURATION_LRS = (1.0, 4.0, 16.0)  # the grid of the per-scale learning-rate control
SATURATION_LR = 4.0
SATURATION_LOSS = 0.03


def _saturation_figure(runs: dict[str, Any]) -> Any:
    """Training loss over steps per scale, and the logistic derivative over z."""
    fig, axes = figure(ncols=2)
    for index, scale in enumerate(SATURATION_SCALES):
        steps_logged, table = loss_table(runs[f"s={scale:g}"], cap=1.0)
        curve_band(axes[0][0], steps_logged, table, f"s = {scale:g}", f"C{index}")
    axes[0][0].axhline(SATURATION_LOSS, color="k", ls=":", lw=0.8)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss (squared error, batch)")
    axes[0][0].legend(ncol=2)
    grid = np.linspace(-12, 12, 400)
    axes[0][1].plot(grid, [_logistic_derivative(v) for v in grid])
    axes[0][1].set_yscale("log")
    axes[0][1].set_xlabel("pre-activation z")
    axes[0][1].set_ylabel("logistic derivative sigmoid'(z)")
    return fig


@claim(
    "6",
    title="Large weights saturate sigmoid units and slow learning",
    statement=(
        "Large weights saturate sigmoid/tanh units and slow learning: the logistic derivative at 10 is about "
        "1/22000 against 1/4 at 0, and the steps needed to reach a loss grow with the init scale."
    ),
    references=(
        "LeCun, Bottou, Orr & Mueller 1998, 'Efficient BackProp', sec. 4.6",
        "Glorot & Bengio 2010, sec. 3",
    ),
    hypothesis=(
        "With every weight N(0, (s/sqrt(64))^2), logistic units saturate as s grows and the SGD steps needed to "
        "reach a training loss grow: at least twice as many at s = 16 as at s = 1, also when each scale gets "
        "its own best learning rate."
    ),
    rules=(
        Rule("ratio", "steps to loss < 0.03, s = 16 over s = 1, one learning rate (4)", ">", 2.0),
        Rule("ratio_per_scale_lr", "the same ratio with each scale's best learning rate of {1, 4, 16}", ">", 2.0,
             role="control",
             predicts="a rival reading is that lr 4 suits s = 1 and not s = 16; with each scale's best rate the "
                      "rival predicts the slowdown disappears, the claim that it stays (ratio still above 2)"),
        Rule("inverse_derivative", "1 / sigmoid'(10)", "in", (20000.0, 24000.0), role="demonstration",
             why="the claim's 1/22000; sigmoid'(0) = 1/4 exactly"),
        Rule("saturated", "saturated fraction of hidden units at init, s = 16 minus s = 1", ">", 0.3,
             role="demonstration", why="large weights do saturate the units (initlab.probe, sigmoid' < 0.1 max)"),
    ),
    order=6,
)
def saturation(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(400, 2000)
    rows = ctx.pick(512, None)
    spec = "mlp:*-64-*:sigmoid"

    def plan(scale: float) -> str:
        return f"normal(std={scale / 8.0}); bias=zeros"

    arms = [Arm(f"s={scale:g}", plan(scale), lr=SATURATION_LR) for scale in SATURATION_SCALES]
    arms += [Arm(f"s={scale:g}, lr {lr:g}", plan(scale), lr=lr)
             for scale in (1.0, 16.0) for lr in SATURATION_LRS if lr != SATURATION_LR]
    splits = [dataset("digits", seed) for seed in seeds]
    if rows is not None:
        import dataclasses

        splits = [dataclasses.replace(s, x_train=s.x_train[:rows], y_train=s.y_train[:rows]) for s in splits]
    runs = train_arms(spec, arms, seeds, splits=splits, steps=steps, batch_size=64, loss="sigmoid_mse",
                      eval_every=steps, log_every=5)
    reached: dict[str, np.ndarray] = {}
    for label, results in runs.items():
        steps_logged, table = loss_table(results, cap=1.0)
        reached[label] = np.minimum(first_step_below(steps_logged, table, SATURATION_LOSS, window=5), steps)

    def best(scale: float) -> tuple[str, float]:
        """The arm label and learning rate of the grid with the fewest mean steps at this scale."""
        options = [(f"s={scale:g}", SATURATION_LR)] + [
            (f"s={scale:g}, lr {lr:g}", lr) for lr in SATURATION_LRS if lr != SATURATION_LR]
        return min(options, key=lambda option: reached[option[0]].mean())

    thresholds = Thresholds()
    saturated = {}
    for scale in (1.0, 16.0):
        fractions = []
        for seed in seeds:
            report = _audit_at_init(spec, plan(scale), seed, thresholds=thresholds)
            fractions.append(_rows(report, ".act")[0].saturated_fraction)
        saturated[scale] = np.asarray(fractions, dtype=float)
    derivative = _logistic_derivative(10.0)
    fig = _saturation_figure(runs)
    table_rows = [{"arm": label, "learning rate": arm.lr, f"steps to loss < {SATURATION_LOSS}": mean_text(reached[label], 0),
                   "never reached (of seeds)": int((reached[label] >= steps).sum())}
                  for arm, label in zip(arms, runs)]
    (best_low, lr_low), (best_high, lr_high) = best(1.0), best(16.0)
    return Outcome(
        measurement=(
            f"64-64-10 net of logistic units (hidden and output) on {rows or 'all'} training digits per split, "
            f"squared error on one-hot targets, every weight N(0, (s/8)^2), SGD batch 64 for {steps} steps; "
            f"steps until the training loss (mean of 5 logs) falls below {SATURATION_LOSS}, capped at {steps}"
        ),
        values={
            "ratio": _stats.ratio(reached["s=16"], reached["s=1"]),
            "ratio_per_scale_lr": _stats.ratio(reached[best_high], reached[best_low]),
            "inverse_derivative": _stats.exact(1.0 / derivative),
            "saturated": _stats.difference(saturated[16.0], saturated[1.0]),
        },
        figures=[ctx.save_figure(fig, "saturation")],
        tables={"arms": table_rows,
                "saturated fraction at init (initlab.probe)": [
                    {"scale": scale, "saturated fraction": mean_text(values)} for scale, values in saturated.items()]},
        notes=(
            f"sigmoid'(10) = {derivative:.3g} = 1/{1 / derivative:.0f}, against 1/4 at 0: a unit driven to |z| = 10 "
            f"learns about {0.25 / derivative:.0f} times slower from the same error signal. The best learning rates "
            f"of the grid were {lr_low:g} for s = 1 and {lr_high:g} for s = 16. Runs that never reach the loss count "
            "as the step cap, so a ratio is then a lower bound. The loss is squared error on logistic outputs: a "
            "cross-entropy loss on softmax outputs cancels the output units' derivative and hides much of the "
            "slowdown."
        ),
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


@claim(
    "7",
    title="randn*0.01 works for one hidden layer, fails deep",
    statement=(
        "Small random values (randn*0.01) are fine for a one-hidden-layer network and fail for deep ones: "
        "activations and gradients vanish."
    ),
    references=("Glorot & Bengio 2010", "LeCun, Bottou, Orr & Mueller 1998, 'Efficient BackProp'"),
    hypothesis=(
        "With every weight N(0, 0.01^2) a tanh net of one hidden layer trains on digits, one of ten hidden layers "
        "does not, because each layer shrinks the signal (activations and gradients vanish); a deep net of the "
        "same size and learning rate with a variance-preserving init trains."
    ),
    rules=(
        Rule("shallow", "test accuracy, 1 hidden layer, randn*0.01", ">", 0.85),
        Rule("deep", "test accuracy, 10 hidden layers, randn*0.01", "<", 0.2, why="chance is 0.1"),
        Rule("deep_glorot", "test accuracy, 10 hidden layers, Glorot init, same learning rate", ">", 0.85,
             role="control",
             predicts="the failure is the 0.01 scale, not depth or the learning rate: the same deep net with "
                      "Glorot's variance-preserving init trains"),
        Rule("activations", "std of the last over the first hidden activation at init, 10 layers, randn*0.01", "<",
             1e-6, role="demonstration", why="each layer multiplies the std by about sqrt(64) x 0.01 = 0.08"),
        Rule("gradients", "|dL/dW1| at init, 10 layers over 1 layer, randn*0.01", "<", 1e-6, role="demonstration"),
    ),
    order=7,
)
def small_random_depth(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(300, 2000)
    small, glorot = "small_random(scale=0.01); bias=zeros", "glorot_uniform; bias=zeros"
    options = dict(steps=steps, batch_size=64, lr=0.1, eval_every=steps, log_every=max(1, steps // 100))
    shallow_spec, deep_spec = "mlp:*-64-*:tanh", "mlp:*-64x10-*:tanh"
    shallow = train_arms(shallow_spec, [Arm("1 hidden layer, randn*0.01", small)], seeds, **options)
    deep = train_arms(deep_spec, [Arm("10 hidden layers, randn*0.01", small), Arm("10 hidden layers, Glorot", glorot)],
                      seeds, **options)
    runs = {**shallow, **deep}
    accuracy = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in runs.items()}
    activation_ratio, gradient_ratio = [], []
    for seed in seeds:
        deep_report = _audit_at_init(deep_spec, small, seed)
        shallow_report = _audit_at_init(shallow_spec, small, seed)
        stds = [float(row.act_std or 0.0) for row in _rows(deep_report, ".act")]
        activation_ratio.append(stds[-1] / stds[0])
        first = [p.grad_norm for row in deep_report for p in row.params if p.name == "hidden.0.linear.weight"]
        base = [p.grad_norm for row in shallow_report for p in row.params if p.name == "hidden.0.linear.weight"]
        gradient_ratio.append(float(first[0] or 0.0) / float(base[0] or math.nan))
    fig, axes = figure()
    plot_losses(axes[0][0], runs)
    return Outcome(
        measurement=(
            f"tanh MLPs of width 64 on digits, 1 or 10 hidden layers, weights randn*0.01 (or Glorot uniform), "
            f"{steps} SGD steps (lr 0.1, batch 64); test accuracy; at init, std of each hidden activation and the "
            "first layer's gradient norm (initlab.probe)"
        ),
        values={
            "shallow": _stats.mean(accuracy["1 hidden layer, randn*0.01"]),
            "deep": _stats.mean(accuracy["10 hidden layers, randn*0.01"]),
            "deep_glorot": _stats.mean(accuracy["10 hidden layers, Glorot"]),
            "activations": _stats.exact(max(activation_ratio), n=len(seeds), method="largest over seeds"),
            "gradients": _stats.exact(max(gradient_ratio), n=len(seeds), method="largest over seeds"),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"networks": [{"network": label, "test accuracy": mean_text(accuracy[label])} for label in runs]},
        notes=(
            "With one hidden layer the output layer sees small but usable features and SGD scales them up. "
            "Through 10 layers every layer shrinks the signal about 12-fold (std ratio "
            f"{np.mean(activation_ratio):.2g} at init): the output sees nothing and the error reaching the first "
            f"layer is {np.mean(gradient_ratio):.2g} of the shallow net's."
        ),
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


def _relative_tolerance(samples: int, fan_in: int, units: int, sigmas: float = 4.0) -> float:
    # sampling error of Var[y] over `samples` inputs and of sum_i w_i^2 over fan_in weights,
    # each averaged over `units` output units
    return sigmas * math.sqrt(2.0 / (samples * units) + 2.0 / (fan_in * units))


def _depth_profile(activation: str, plan: str, seed: int, depth: int, width: int, samples: int) -> float:
    """E[z^2] of the last over the first hidden layer's pre-activations (initlab.probe act_rms), one network."""
    from initlab.lab.models import build_model

    model = build_model(f"mlp:{width}-{width}x{depth}-10:{activation}+nobias", (width,), 10)
    initialize(model, plan, seed)
    x = torch.randn(samples, width, generator=derive_generator(seed, "claim8/inputs"))
    report = audit(model, x)
    rms = [row.act_rms for row in _rows(report, ".linear")]
    return (rms[-1] / rms[0]) ** 2


@claim(
    "8",
    title="Var[y] = n_in Var[w] Var[x]; LeCun, Glorot and He",
    statement=(
        "Var[y] = n_in Var[w] Var[x]: LeCun 1/n_in keeps the variance of linear (and near-linear tanh) layers, "
        "Glorot 2/(n_in+n_out) balances forward and backward, He 2/n_in keeps it for ReLU."
    ),
    references=(
        "LeCun, Bottou, Orr & Mueller 1998, 'Efficient BackProp'",
        "Glorot & Bengio 2010, sec. 4.2",
        "He, Zhang, Ren & Sun 2015, 'Delving deep into rectifiers', sec. 2.2",
    ),
    hypothesis=(
        "A layer's output variance is n_in Var[w] Var[x]; so through 20 layers LeCun's 1/n_in keeps E[z^2] of a "
        "linear net and He's 2/n_in that of a ReLU net within a factor 2, while the other pairing halves or "
        "doubles it per layer; Glorot's 2/(n_in+n_out) keeps the worse of the forward and backward factors of a "
        "400 -> 100 layer closer to 1 than LeCun's."
    ),
    rules=(
        Rule("single_layer", "worst |measured / predicted Var[y] - 1| over 9 layers, in units of its 4-sigma "
             "sampling tolerance", "<", 1.0),
        Rule("linear_lecun", "E[z^2] layer 20 / layer 1, linear net, LeCun", "in", (0.5, 2.0)),
        Rule("relu_he", "E[z^2] layer 20 / layer 1, ReLU net, He", "in", (0.5, 2.0)),
        Rule("glorot_balance", "worst |log2 factor| of a 400 -> 100 layer: Glorot minus LeCun", "<", 0.0),
        Rule("relu_lecun", "E[z^2] layer 20 / layer 1, ReLU net, LeCun", "<", 0.01, role="control",
             predicts="ReLU zeroes half of every pre-activation: with 1/n_in, E[z^2] halves per layer (2^-19)"),
        Rule("linear_he", "E[z^2] layer 20 / layer 1, linear net, He", ">", 100.0, role="control",
             predicts="without a ReLU, He's factor 2 doubles E[z^2] per layer (2^19)"),
    ),
    order=8,
)
def variance_rules(ctx: Context) -> Outcome:
    generator = derive_generator(ctx.seed, "claim8")
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
    depth, width = 20, ctx.pick(128, 256)
    networks = ctx.seeds(8, 16)
    # he_normal draws Var = 2/n_in (its ReLU gain) whatever the network's activation
    chains = {"linear_lecun": ("linear", "lecun_normal"), "relu_he": ("relu", "he_normal"),
              "relu_lecun": ("relu", "lecun_normal"), "linear_he": ("linear", "he_normal")}
    ratios = {key: np.asarray([_depth_profile(act, plan, seed, depth, width, 128) for seed in networks])
              for key, (act, plan) in chains.items()}
    tanh_ratio = np.asarray([_depth_profile("tanh", "lecun_normal", seed, depth, width, 128) for seed in networks])

    fan_in, fan_out = 400, 100
    balance_rows = []
    worst_log: dict[str, float] = {}
    for label, scheme in (("LeCun (fan_in)", lecun_normal()),
                          ("fan_out", variance_scaling(scale=1.0, mode="fan_out")),
                          ("Glorot (fan_avg)", glorot_normal())):
        w = scheme.sample((fan_out, fan_in), dtype=torch.float64, generator=derive_generator(ctx.seed, label))
        forward = float((torch.randn(samples, fan_in, generator=generator, dtype=torch.float64) @ w.T).var())
        backward = float((torch.randn(samples, fan_out, generator=generator, dtype=torch.float64) @ w).var())
        worst_log[label] = max(abs(math.log2(forward)), abs(math.log2(backward)))
        balance_rows.append({"scheme": label, "forward Var[y]/Var[x]": fmt(forward),
                             "backward Var[dx]/Var[dy]": fmt(backward), "worst |log2|": fmt(worst_log[label])})

    fig, axes = figure()
    labels = {"linear_lecun": "linear, LeCun", "relu_he": "ReLU, He", "relu_lecun": "ReLU, LeCun",
              "linear_he": "linear, He"}
    for index, (key, values) in enumerate(ratios.items()):
        axes[0][0].scatter(np.full(values.size, index), values, s=12, label=labels[key])
    axes[0][0].set_xticks(range(len(ratios)), [labels[k] for k in ratios])
    axes[0][0].set_yscale("log")
    axes[0][0].set_ylabel(f"E[z^2] layer {depth} / layer 1 (one dot per network)")
    axes[0][0].axhspan(0.5, 2.0, color="0.9")
    return Outcome(
        measurement=(
            "Var[y] of single layers (n_in 64-1024, 3 weight variances, uniform inputs) against n_in Var[w] Var[x]; "
            f"E[z^2] of the pre-activations (initlab.probe RMS) through {depth} layers of width {width}, one value "
            f"per random network; forward and backward variance factors of a 400 -> 100 layer ({samples} samples)"
        ),
        values={
            "single_layer": _stats.exact(worst, method="largest normalised deviation of 9 layers"),
            "linear_lecun": _stats.geometric_mean(ratios["linear_lecun"], what="networks"),
            "relu_he": _stats.geometric_mean(ratios["relu_he"], what="networks"),
            "glorot_balance": _stats.exact(worst_log["Glorot (fan_avg)"] - worst_log["LeCun (fan_in)"]),
            "relu_lecun": _stats.geometric_mean(ratios["relu_lecun"], what="networks"),
            "linear_he": _stats.geometric_mean(ratios["linear_he"], what="networks"),
        },
        figures=[ctx.save_figure(fig, "depth")],
        tables={"single layers": single_rows, "400 -> 100 layer": balance_rows,
                "depth": [{"network": labels[k], f"E[z^2] layer {depth} / layer 1": mean_text(v, 4)}
                          for k, v in ratios.items()]},
        notes=(
            f"tanh with LeCun is only near-linear: E[z^2] drifts to {np.exp(np.log(tanh_ratio).mean()):.2f} of its "
            f"start after {depth} layers (tanh shrinks large inputs), far gentler than ReLU with LeCun. Glorot keeps "
            f"neither factor of the 400 -> 100 layer at 1 but bounds both: forward "
            f"{balance_rows[2]['forward Var[y]/Var[x]']}, backward {balance_rows[2]['backward Var[dx]/Var[dy]']}."
        ),
        setting=f"{len(networks)} random networks per chain; float32 chains, float64 single layers",
        seeds=len(networks),
    )


@claim(
    "9",
    title="5-layer ReLU MLP: too small vanishes, too large explodes, He is stable",
    statement=(
        "In a 5-layer ReLU MLP on handwritten digits too small a std makes activations vanish, too large makes "
        "them explode, and He init keeps them stable."
    ),
    references=("He, Zhang, Ren & Sun 2015, sec. 2.2", "Glorot & Bengio 2010, Fig. 6"),
    hypothesis=(
        "Each ReLU layer multiplies the activations' std by sqrt(n Var[w] / 2): 0.07 for std 0.01, 7 for std 1, "
        "1 for He -- a consequence of the variance formula (claim 8), shown on digits."
    ),
    rules=(
        Rule("small", "std 0.01: std of layer 5 over layer 1", "<", 0.01, role="demonstration"),
        Rule("large", "std 1.0: std of layer 5 over layer 1", ">", 100.0, role="demonstration"),
        Rule("he", "He: std of layer 5 over layer 1", "in", (0.5, 2.0), role="demonstration"),
    ),
    order=9,
)
def relu_histograms(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    spec = "mlp:*-100x5-*:relu+nobias"
    inits = {"std 0.01": "normal(std=0.01)", "He": "he_normal", "std 1.0": "normal(std=1.0)"}
    growth: dict[str, list[float]] = {label: [] for label in inits}
    stds: dict[str, list[list[float]]] = {label: [] for label in inits}
    histograms: dict[str, list[np.ndarray]] = {}
    for label, plan in inits.items():
        for seed in seeds:
            report = _audit_at_init(spec, plan, seed)
            rows = _rows(report, ".act")
            layer_stds = [row.act_std for row in rows]
            stds[label].append(layer_stds)
            growth[label].append(layer_stds[-1] / layer_stds[0])
            if seed == seeds[0]:
                histograms[label] = [np.asarray(row.hist, dtype=float) for row in rows]
    bins = report.bins
    edges = np.log10(bins.magnitudes())
    centre = bins.center
    fig, axes = figure(ncols=3, width=3.6)
    for column, (label, layers) in enumerate(histograms.items()):
        axis = axes[0][column]
        for index, counts in enumerate(layers):
            positive = counts[centre + 1: centre + 1 + bins.per_sign]
            total = positive.sum()
            axis.stairs(positive / max(total, 1.0), edges, label=f"layer {index + 1}", color=f"C{index}")
        axis.set_title(f"{label}: non-zero ReLU outputs")
        axis.set_xlabel("log10(activation)")
        axis.set_xlim(bins.low, bins.high)
    axes[0][0].set_ylabel("fraction of non-zero outputs")
    axes[0][2].legend()
    mean_stds = {label: np.exp(np.log(np.asarray(values)).mean(axis=0)) for label, values in stds.items()}
    return Outcome(
        measurement=(
            "one pass of each seed's training digits through a 5-layer ReLU MLP of width 100 (no biases); std of "
            "each layer's output (initlab.probe), geometric mean over seeds; histograms of the first seed on "
            "initlab.probe's log-spaced bins"
        ),
        values={
            "small": _stats.exact(max(growth["std 0.01"]), n=len(seeds), method="largest over seeds"),
            "large": _stats.exact(min(growth["std 1.0"]), n=len(seeds), method="smallest over seeds"),
            "he": Measurement(float(np.exp(np.log(growth["He"]).mean())), min(growth["He"]),
                                     max(growth["He"]), len(seeds), "geometric mean; range over seeds"),
        },
        figures=[ctx.save_figure(fig, "histograms")],
        tables={"std per layer": [{"init": label, **{f"layer {i + 1}": fmt(float(v)) for i, v in enumerate(values)}}
                                  for label, values in mean_stds.items()]},
        notes="Per layer the std is multiplied by sqrt(n Var[w] / 2): 0.07 for std 0.01, 7 for std 1, 1 for He. "
              "The histograms are on a log10 axis, so a layer that shrinks by 10x moves one unit to the left.",
        setting=f"digits (standardised), float32, {len(seeds)} seeds",
        seeds=len(seeds),
    )


@claim(
    "10",
    title="Init decides between converging and not converging",
    statement=(
        "Initialization can decide between converging and not converging at all: a deep network with one "
        "init scale does not train, with another it does."
    ),
    references=("Glorot & Bengio 2010", "He, Zhang, Ren & Sun 2015", "Sutskever, Martens, Dahl & Hinton 2013"),
    hypothesis=(
        "A 16-hidden-layer ReLU net trains on digits from He init and does not train from N(0, 0.01^2) or "
        "N(0, 1) at the same learning rate, because the per-layer scale compounds over depth; with 2 hidden "
        "layers the same three inits all train."
    ),
    rules=(
        Rule("he", "training accuracy, 16 layers, He", ">", 0.9),
        Rule("small", "training accuracy, 16 layers, std 0.01", "<", 0.2, why="no learning: chance is 0.1"),
        Rule("large", "training accuracy, 16 layers, std 1.0 (a diverged run counts 0)", "<", 0.2),
        Rule("shallow", "worst training accuracy of the three inits, 2 hidden layers", ">", 0.8, role="control",
             predicts="the scale only compounds over depth: with 2 hidden layers the same inits all converge"),
    ),
    order=10,
)
def converge_or_not(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(500, 2000)
    inits = {"He": "he_normal; output=glorot_normal", "std 0.01": "normal(std=0.01); output=glorot_normal",
             "std 1.0": "normal(std=1.0); output=glorot_normal"}
    arms = [Arm(label, plan) for label, plan in inits.items()]
    options = dict(steps=steps, batch_size=64, lr=0.02, eval_every=steps, log_every=max(1, steps // 100))
    deep = train_arms("mlp:*-64x16-*:relu", arms, seeds, **options)
    shallow = train_arms("mlp:*-64x2-*:relu", arms, seeds, **options)
    accuracy = {label: finals(results, "train_accuracy", diverged=0.0) for label, results in deep.items()}
    shallow_accuracy = {label: finals(results, "train_accuracy", diverged=0.0) for label, results in shallow.items()}
    worst_shallow = np.stack([shallow_accuracy[label] for label in inits], axis=1)  # (seeds, inits)
    fig, axes = figure(ncols=2)
    for column, (title, runs) in enumerate((("16 hidden layers", deep), ("2 hidden layers", shallow))):
        plot_losses(axes[0][column], runs, clip=1e3)
        axes[0][column].set_title(title)
    return Outcome(
        measurement=(
            f"ReLU MLPs of width 64 on digits, 16 or 2 hidden layers, He / N(0, 0.01^2) / N(0, 1) hidden weights "
            f"(Glorot output layer), {steps} SGD steps at lr 0.02 (batch 64); training accuracy"
        ),
        values={
            "he": _stats.mean(accuracy["He"]),
            "small": _stats.mean(accuracy["std 0.01"]),
            "large": _stats.mean(accuracy["std 1.0"]),
            "shallow": _stats.bootstrap(lambda a: a.mean(axis=1).min(axis=-1), worst_shallow),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"runs": [{"depth": depth, "init": label, "training accuracy": mean_text(values[label]),
                          "diverged": sum(r.status == "diverged" for r in runs[label])}
                         for depth, values, runs in ((16, accuracy, deep), (2, shallow_accuracy, shallow))
                         for label in inits]},
        notes="Same network, data, optimiser and learning rate; only the init scale differs.",
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )

