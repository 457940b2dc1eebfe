"""Claims 1-5: symmetry breaking -- constant init, zero weights, zero biases, zero output layer, dropout.

Whether two hidden units stay identical is a question of exact arithmetic:
with identical incoming and outgoing weights they receive bit-identical
gradients only if every sum is taken in the same order for both. A BLAS
matrix product does not promise that (different output columns may go
through different kernel paths), so its rounding leaves asymmetries of about
1e-16 that gradient descent then amplifies, and the outcome would be a
property of the kernel. The symmetric arms of claims 1 and 5 therefore run
:class:`OrderedMLP`, whose products are elementwise products summed in one
fixed order, and an explicit epsilon-perturbation arm shows what a known
tiny asymmetry does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.lab.claims import _stats
from initlab.lab.claims._common import (
    Arm,
    ArmRuns,
    dataset,
    figure,
    finals,
    fmt,
    hidden_linears,
    mean_text,
    output_linear,
    plot_losses,
    train_arms,
)
from initlab.lab.claims.base import Context, Outcome, Rule, claim
from initlab.lab.data import Dataset
from initlab.rng import derive_generator
from initlab.schemes import glorot_normal

# the 64-8-10 network of claims 1 and 5 trains on the first 128 (quick) or 256 rows of each training split:
# the elementwise products cost rows x hidden x inputs per step, and a multiple of 8 rows keeps every
# unit's reductions on the same alignment
ORDERED_HIDDEN = 8
EPSILON = 1e-10  # relative size of the explicit perturbation arm


class OrderedMLP(nn.Module):
    """One tanh hidden layer whose products are elementwise products summed over the last axis.

    Every hidden unit's pre-activation, and every gradient row, is reduced in
    the same order, so units with identical weights stay bit-identical in any
    arithmetic; ``dropout`` drops hidden activations (each unit its own mask).
    """

    def __init__(self, inputs: int, hidden: int, classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.weight1 = nn.Parameter(torch.zeros(hidden, inputs))
        self.bias1 = nn.Parameter(torch.zeros(hidden))
        self.weight2 = nn.Parameter(torch.zeros(classes, hidden))
        self.bias2 = nn.Parameter(torch.zeros(classes))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh((x.unsqueeze(-2) * self.weight1).sum(-1) + self.bias1)
        hidden = self.dropout(hidden)
        return (hidden.unsqueeze(-2) * self.weight2).sum(-1) + self.bias2


def _glorot_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


def _ordered_init(kind: str, epsilon: float = 0.0) -> Callable[[nn.Module, int], None]:
    """``constant``: every weight the Glorot std of its layer; ``random``: Glorot normal;
    ``copied``: one Glorot-normal unit copied to every hidden unit (random but symmetric);
    ``epsilon`` adds ``epsilon`` x std x N(0, 1) to the first layer."""

    def init(model: nn.Module, seed: int) -> None:
        assert isinstance(model, OrderedMLP)
        with torch.no_grad():
            for name, weight in (("weight1", model.weight1), ("weight2", model.weight2)):
                fan_out, fan_in = weight.shape
                std = _glorot_std(fan_in, fan_out)
                generator = derive_generator(seed, f"ordered/{name}")
                if kind == "constant":
                    weight.fill_(std)
                elif kind == "random":
                    glorot_normal()(weight, generator=generator)
                elif kind == "copied":
                    # unit j reads row j of weight1 and column j of weight2: copy one of each
                    if name == "weight1":
                        weight.copy_(torch.randn(1, fan_in, generator=generator, dtype=weight.dtype) * std)
                    else:
                        weight.copy_(torch.randn(fan_out, 1, generator=generator, dtype=weight.dtype) * std)
                else:
                    raise ValueError(f"unknown ordered init {kind!r}")
            if epsilon:
                noise = torch.randn(model.weight1.shape, generator=derive_generator(seed, "ordered/epsilon"),
                                    dtype=model.weight1.dtype)
                model.weight1.add_(noise * epsilon * _glorot_std(*reversed(model.weight1.shape)))
            model.bias1.zero_()
            model.bias2.zero_()

    return init


def _ordered_split(seed: int, rows: int) -> Dataset:
    split = dataset("digits", seed)
    return dataclasses.replace(split, x_train=split.x_train[:rows], y_train=split.y_train[:rows])


def _train_ordered(arms: list[Arm], seeds: list[int], rows: int, **options: Any) -> ArmRuns:
    """Train :class:`OrderedMLP` arms in float64 on the first ``rows`` training digits of each seed's split."""
    def factory(data: Dataset) -> nn.Module:
        return OrderedMLP(data.num_features, ORDERED_HIDDEN, data.num_classes)

    return train_arms(factory, arms, seeds, splits=[_ordered_split(seed, rows) for seed in seeds],
                      dtype=torch.float64, **options)


def _ordered(model: nn.Module) -> OrderedMLP:
    if not isinstance(model, OrderedMLP):
        raise TypeError(f"expected an OrderedMLP, got {type(model).__name__}")
    return model


def _row_spread(weight: torch.Tensor) -> float:
    """max |W[i] - W[0]| over rows: exactly 0 when every hidden unit has the same incoming weights."""
    return float((weight.detach() - weight.detach()[0:1]).abs().max())


def _distinct_units(weight: torch.Tensor, bias: torch.Tensor | None) -> int:
    """Hidden units left after merging near-identical ones (initlab.probe's symmetry detection, tol 1e-4)."""
    from initlab.probe.symmetry import symmetric_groups, unit_rows

    rows = unit_rows(weight.detach(), None if bias is None else bias.detach())
    assert rows is not None
    groups = symmetric_groups(rows)
    return rows.shape[0] - sum(len(group) - 1 for group in groups)


SYMMETRY_REFERENCES = (
    "Rumelhart, Hinton & Williams 1986, 'Learning representations by back-propagating errors' "
    "(equal starting weights can never become unequal)",
    "Goodfellow, Bengio & Courville 2016, Deep Learning, sec. 8.4 ('break symmetry')",
)


@claim(
    "1",
    title="Constant init keeps hidden units identical",
    statement=(
        "Constant init (zeros, 0.5, any single value) keeps all hidden units of a layer identical under gradient "
        "descent however long it trains, so the layer acts as one unit; random init makes them differ."
    ),
    references=SYMMETRY_REFERENCES,
    hypothesis=(
        "In exact arithmetic a constant init leaves the hidden layer one unit wide for the whole of training, "
        "so the network learns far less than from a random init of the same scale; what matters is symmetry, "
        "not randomness: random values copied to every unit do no better than a constant."
    ),
    rules=(
        Rule("advantage", "test accuracy, random minus constant init", ">", 0.10,
             why="one effective hidden unit against eight: at least 10 points"),
        Rule("copied_advantage", "test accuracy, random-but-copied minus constant init", "<", 0.10,
             role="control",
             predicts="one random unit copied to all eight is still symmetric: the claim predicts no advantage "
                      "over a constant (below 10 points), where a benefit of randomness as such would show one"),
        Rule("spread", "max |W1[i] - W1[0]| after training, constant and copied inits, all seeds", "==", 0.0,
             role="demonstration", why="identical units get identical gradients when every sum has one order"),
    ),
    order=1,
)
def constant_init_symmetry(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(150, 600)
    rows = ctx.pick(128, 256)
    lr = 0.5
    arms = [Arm("constant", _ordered_init("constant")), Arm("random", _ordered_init("random")),
            Arm("copied", _ordered_init("copied")), Arm(f"constant + {EPSILON:g}", _ordered_init("constant", EPSILON))]
    runs = _train_ordered(arms, seeds, rows, steps=steps, lr=lr, eval_every=steps, log_every=max(1, steps // 50))
    accuracy = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in runs.items()}
    ordered = {label: [_ordered(m) for m in models] for label, models in runs.models.items()}
    spread = max(_row_spread(model.weight1) for label in ("constant", "copied") for model in ordered[label])
    epsilon_label = arms[3].label
    distinct = {label: [_distinct_units(m.weight1, m.bias1) for m in models] for label, models in ordered.items()}
    epsilon_spread = [_row_spread(m.weight1) for m in ordered[epsilon_label]]
    arm_rows = [{"init": label, "test accuracy": mean_text(accuracy[label]),
             "distinct hidden units (of 8)": mean_text(np.asarray(distinct[label], dtype=np.float64), 1)}
            for label in runs]
    fig, axes = figure(ncols=2)
    plot_losses(axes[0][0], runs, xlabel="gradient step (full batch)", ylabel="training loss")
    axes[0][1].bar(list(runs), [accuracy[label].mean() for label in runs], color=["C0", "C1", "C2", "C3"],
                   yerr=[accuracy[label].std(ddof=1) for label in runs])
    axes[0][1].set_ylabel(f"test accuracy (mean ± sd, {len(seeds)} seeds)")
    axes[0][1].tick_params(axis="x", rotation=20)
    advantage = _stats.difference(accuracy["random"], accuracy["constant"])
    epsilon_gap = float(accuracy["random"].mean() - accuracy[epsilon_label].mean())
    return Outcome(
        measurement=(
            f"a 64-{ORDERED_HIDDEN}-10 tanh net in float64 with order-fixed products, {steps} full-batch gradient "
            f"steps at lr {lr} on the first {rows} training digits of each seed's split; test accuracy "
            "of each init, paired by seed"
        ),
        values={
            "advantage": advantage,
            "copied_advantage": _stats.difference(accuracy["copied"], accuracy["constant"]),
            "spread": _stats.exact(spread, n=2 * len(seeds)),
        },
        figures=[ctx.save_figure(fig, "training")],
        tables={"arms": arm_rows},
        notes=(
            f"Constant and copied inits end with rows that are bit-identical (spread {spread:g}). The explicit "
            f"perturbation arm shows what exactness hides: a constant init plus {EPSILON:g} times its scale in "
            f"random noise ends with rows differing by up to {max(epsilon_spread):.2g} and "
            f"{np.mean(distinct[epsilon_label]):.1f} distinct units of {ORDERED_HIDDEN} on average, and reaches "
            f"{accuracy[epsilon_label].mean():.3f} test accuracy, {epsilon_gap:.3f} below random init and "
            f"{accuracy[epsilon_label].mean() - accuracy['constant'].mean():.3f} above the exact constant: the "
            "symmetric state is unstable, and any asymmetry, however small, grows under gradient descent until "
            "the units learn different features, later the smaller it starts. In floating point a BLAS "
            "product's rounding (about 1e-16 relative) is such an asymmetry, which is why the symmetric arms "
            "here use order-fixed sums."
        ),
        setting=f"{len(seeds)} seeds (split); float64; full batch",
        seeds=len(seeds),
    )


@claim(
    "2",
    title="All-zero weights: hidden weights get no gradient",
    statement=(
        "With all weights zero in a tanh network the hidden weights never receive a gradient; only biases "
        "(and output units) move."
    ),
    references=SYMMETRY_REFERENCES,
    hypothesis="tanh(0) = 0 makes every hidden activation and every back-propagated error zero: an identity.",
    rules=(
        Rule("hidden_moved", "max |change| of the hidden weight matrices over training, all seeds", "==", 0.0,
             role="demonstration", why="zero activations and zero outgoing weights: every hidden gradient is 0"),
        Rule("output_bias_moved", "smallest change of the output bias over seeds", ">", 1e-4,
             role="demonstration", why="the output bias still learns the class frequencies"),
    ),
    order=2,
)
def zero_weights_no_gradient(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(100, 500)
    spec = "mlp:*-32-32-*:tanh"
    runs = train_arms(spec, [Arm("zeros", "zeros; bias=zeros")], seeds, steps=steps, lr=0.1, eval_every=steps,
                      log_every=steps)
    models = runs.models["zeros"]
    hidden_change = max(float(layer.weight.detach().abs().max()) for model in models for layer in hidden_linears(model))
    output_change = min(float(output_linear(model).bias.detach().abs().max()) for model in models)
    accuracy = finals(runs["zeros"], "test_accuracy")
    return Outcome(
        measurement=f"a 64-32-32-10 tanh net with every weight and bias zero, {steps} full-batch SGD steps on digits",
        values={"hidden_moved": _stats.exact(hidden_change, n=len(seeds)),
                "output_bias_moved": _stats.exact(output_change, n=len(seeds))},
        tables={"after training": [{"hidden weights, max |w|": fmt(hidden_change),
                                    "output bias, smallest max |b| over seeds": fmt(output_change),
                                    "test accuracy": mean_text(accuracy)}]},
        notes=(
            "tanh(0) = 0, so every hidden activation is 0: the output weights see zero inputs and get no gradient, "
            "and the zero output weights pass no error back. Only the output bias learns (the class "
            f"frequencies); test accuracy stays near the majority class ({accuracy.mean():.3f})."
        ),
        setting=f"lr 0.1, full batch, {len(seeds)} seeds",
        seeds=len(seeds),
    )


BIAS_REFERENCES = (
    "Bengio 2012, 'Practical recommendations for gradient-based training of deep architectures'",
)


def _zero_versus_random(ctx: Context, arms: list[Arm], keys: dict[str, tuple[str, str]], measurement: str,
                        notes: Callable[[dict[str, np.ndarray]], str]) -> Outcome:
    """Claims 3 and 4: a 40-64-10 tanh MLP on MNIST-1D, arms paired by seed, test accuracy differences."""
    seeds = ctx.seeds()
    steps = ctx.pick(600, 3000)
    runs = train_arms("mlp:*-64-*:tanh", arms, seeds, data="mnist1d", steps=steps, batch_size=64, lr=0.1,
                      eval_every=steps, log_every=max(1, steps // 100))
    accuracy = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in runs.items()}
    values = {key: _stats.difference(accuracy[first], accuracy[second]) for key, (first, second) in keys.items()}
    fig, axes = figure()
    plot_losses(axes[0][0], runs)
    return Outcome(
        measurement=f"{measurement}, {steps} SGD steps (lr 0.1, batch 64); test accuracy, paired by seed",
        values=values,
        figures=[ctx.save_figure(fig, "loss")],
        tables={"arms": [{"init": label, "test accuracy": mean_text(accuracy[label])} for label in runs]},
        notes=notes(accuracy),
        setting=f"MNIST-1D (4000 train / 1000 test per split), {len(seeds)} seeds",
        seeds=len(seeds),
    )


@claim(
    "3",
    title="Zero biases are fine when weights are random",
    statement="Biases can start at zero when the weights are random: no loss of accuracy against random biases.",
    references=BIAS_REFERENCES,
    hypothesis=(
        "Random weights already make every unit different, so zero biases lose no accuracy against random "
        "biases (no more than 1 point); where the weights are not random, the biases' randomness matters."
    ),
    rules=(
        Rule("difference", "test accuracy, zero minus random biases (random weights)", ">", -0.01,
             why="non-inferiority: no loss beyond 1 point"),
        Rule("zero_weights", "test accuracy, random minus zero biases, all weights zero", ">", 0.10, role="control",
             predicts="with every weight zero the biases are the only asymmetry: random biases let the units "
                      "differ and train, zero biases leave them identical and gradient-free (at least 10 points)"),
    ),
    order=3,
)
def zero_biases(ctx: Context) -> Outcome:
    arms = [Arm("zero biases", "glorot_uniform; bias=zeros"), Arm("random biases", "glorot_uniform; bias=module_default"),
            Arm("zero weights, zero biases", "zeros; bias=zeros"),
            Arm("zero weights, random biases", "zeros; bias=module_default")]
    return _zero_versus_random(
        ctx, arms,
        {"difference": ("zero biases", "random biases"),
         "zero_weights": ("zero weights, random biases", "zero weights, zero biases")},
        "40-64-10 tanh MLP on MNIST-1D, Glorot-uniform or zero weights, biases zero or torch's default "
        "U(+-1/sqrt(fan_in))",
        lambda acc: (
            f"Zero biases reach {acc['zero biases'].mean():.3f} and random biases {acc['random biases'].mean():.3f}. "
            f"With every weight zero, random biases still train to {acc['zero weights, random biases'].mean():.3f}: "
            "the output weights learn from the units' different constant activations first, and then pass different "
            "errors back to them; with zero biases too nothing but the output bias moves "
            f"({acc['zero weights, zero biases'].mean():.3f})."
        ),
    )


@claim(
    "4",
    title="Zero output layer is fine when hidden weights are random",
    statement=(
        "Output-layer weights can start at zero when hidden weights are random (output units get different "
        "gradient signals, so they need no symmetry breaking): the network trains as well."
    ),
    references=BIAS_REFERENCES,
    hypothesis=(
        "Each output unit has its own target and so its own error signal: zero output weights lose no accuracy "
        "against random ones (no more than 1 point) while the hidden layer is random; with a zero hidden "
        "layer, the output layer's randomness is what breaks the symmetry."
    ),
    rules=(
        Rule("difference", "test accuracy, zero minus random output layer (random hidden layer)", ">", -0.01,
             why="non-inferiority: no loss beyond 1 point"),
        Rule("zero_hidden", "test accuracy, random minus zero output layer, hidden layer zero", ">", 0.10,
             role="control",
             predicts="with a zero hidden layer the hidden units differ only through their outgoing weights: a "
                      "random output layer lets them train, a zero one leaves nothing to learn (at least 10 points)"),
    ),
    order=4,
)
def zero_output_layer(ctx: Context) -> Outcome:
    arms = [Arm("zero output", "glorot_uniform; output=zeros"), Arm("random output", "glorot_uniform"),
            Arm("zero hidden, zero output", "zeros"), Arm("zero hidden, random output", "zeros; output=glorot_uniform")]
    return _zero_versus_random(
        ctx, arms,
        {"difference": ("zero output", "random output"),
         "zero_hidden": ("zero hidden, random output", "zero hidden, zero output")},
        "40-64-10 tanh MLP on MNIST-1D, hidden layer Glorot-uniform or zero, output layer zero or Glorot-uniform",
        lambda acc: (
            f"Zero output weights reach {acc['zero output'].mean():.3f} against {acc['random output'].mean():.3f}. "
            "With a zero hidden layer and a random output layer the hidden units receive different errors "
            f"through their different outgoing weights and train ({acc['zero hidden, random output'].mean():.3f}); "
            f"with both zero nothing moves but the output bias ({acc['zero hidden, zero output'].mean():.3f})."
        ),
    )


@claim(
    "5",
    title="Dropout breaks a constant init's symmetry, random init still trains better",
    statement=(
        "Stochastic training (dropout) can break the symmetry of a constant init, but random init still trains "
        "better."
    ),
    references=(
        "Goodfellow, Bengio & Courville 2016, Deep Learning, sec. 8.4",
        "Srivastava et al. 2014, 'Dropout: a simple way to prevent neural networks from overfitting'",
    ),
    hypothesis=(
        "Dropout gives each hidden unit its own mask, so constant-init units separate; still, units that start "
        "identical and separate slowly leave the network behind a random init after the same training. Where "
        "there is no symmetry to break (one hidden unit) random init has no such advantage."
    ),
    rules=(
        Rule("distinct", "distinct hidden units (of 32) after training, constant init with dropout", ">", 16.0,
             why="dropout separates the units: at least half of them distinct (initlab.probe symmetry, tol 1e-4)"),
        Rule("advantage", "test accuracy, random minus constant init, both with dropout 0.3", ">", 0.0),
        Rule("single_unit", "test accuracy, random minus constant init, one hidden unit, dropout 0.3", "<", 0.05,
             role="control",
             predicts="a single hidden unit has no partner to be symmetric with: the claim predicts no advantage "
                      "of random init there (below 5 points)"),
        Rule("exact", "max |W1[i] - W1[0]|, constant init without dropout (order-fixed sums)", "==", 0.0,
             role="demonstration", why="without dropout nothing distinguishes the units"),
    ),
    order=5,
)
def dropout_symmetry(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(500, 3000)
    lr = 0.1
    options = dict(steps=steps, batch_size=64, lr=lr, eval_every=steps, log_every=max(1, steps // 100), data="mnist1d")
    constant = "constant(value=0.2); bias=zeros"
    random = "glorot_normal; bias=zeros"
    wide = train_arms("mlp:*-32-*:tanh+dropout=0.3", [Arm("constant", constant), Arm("random", random)], seeds,
                      **options)
    narrow = train_arms("mlp:*-1-*:tanh+dropout=0.3", [Arm("constant", constant), Arm("random", random)], seeds,
                        **options)
    distinct = np.asarray([_distinct_units(hidden_linears(m)[0].weight, hidden_linears(m)[0].bias)
                           for m in wide.models["constant"]], dtype=np.float64)
    accuracy = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in wide.items()}
    single = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in narrow.items()}
    exact_steps = ctx.pick(150, 600)
    ordered = _train_ordered(
        [Arm("constant, no dropout", _ordered_init("constant")),
         Arm(f"constant + {EPSILON:g}, no dropout", _ordered_init("constant", EPSILON))],
        seeds, ctx.pick(128, 256), steps=exact_steps, lr=0.5, eval_every=exact_steps, log_every=exact_steps)
    ordered_models = {label: [_ordered(m) for m in models] for label, models in ordered.models.items()}
    exact_spread = max(_row_spread(m.weight1) for m in ordered_models["constant, no dropout"])
    epsilon_models = ordered_models[f"constant + {EPSILON:g}, no dropout"]
    epsilon_distinct = np.asarray([_distinct_units(m.weight1, m.bias1) for m in epsilon_models], dtype=np.float64)
    fig, axes = figure()
    plot_losses(axes[0][0], wide, suffix=" init, dropout 0.3")
    return Outcome(
        measurement=(
            f"40-32-10 and 40-1-10 tanh MLPs with dropout 0.3 on MNIST-1D, constant(0.2) or Glorot-normal weights, "
            f"{steps} SGD steps (lr {lr}, batch 64); distinct hidden units and test accuracy, paired by seed; "
            f"without dropout: a 64-{ORDERED_HIDDEN}-10 net with order-fixed sums, {exact_steps} steps"
        ),
        values={
            "distinct": _stats.mean(distinct),
            "advantage": _stats.difference(accuracy["random"], accuracy["constant"]),
            "single_unit": _stats.difference(single["random"], single["constant"]),
            "exact": _stats.exact(exact_spread, n=len(seeds)),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"arms": [
            {"network": "32 hidden units, dropout 0.3", "init": label, "test accuracy": mean_text(accuracy[label])}
            for label in accuracy
        ] + [
            {"network": "1 hidden unit, dropout 0.3", "init": label, "test accuracy": mean_text(single[label])}
            for label in single
        ] + [
            {"network": f"{ORDERED_HIDDEN} hidden units, no dropout, order-fixed", "init": label,
             "distinct hidden units": mean_text(np.asarray([_distinct_units(m.weight1, m.bias1) for m in models],
                                                           dtype=np.float64), 1)}
            for label, models in ordered_models.items()
        ]},
        notes=(
            f"With dropout the constant-init units end {distinct.mean():.1f} distinct of 32 on average; without "
            f"dropout, in order-fixed arithmetic, they stay bit-identical (spread {exact_spread:g}). The explicit "
            f"perturbation arm (constant plus {EPSILON:g} times its scale, no dropout) ends with "
            f"{epsilon_distinct.mean():.1f} distinct units of {ORDERED_HIDDEN}: a tiny asymmetry separates the "
            "units too, so the symmetry dropout has to break exists only in exact arithmetic. After "
            f"{steps} steps with dropout, random init is {accuracy['random'].mean() - accuracy['constant'].mean():.3f} "
            f"ahead in test accuracy ({accuracy['random'].mean():.3f} against {accuracy['constant'].mean():.3f})."
        ),
        setting=f"MNIST-1D, {len(seeds)} seeds",
        seeds=len(seeds),
    )
