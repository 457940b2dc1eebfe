"""Claims 11, 13, 14, 17: batch norm as a remedy, the Lasagne list, layer-wise pre-training, over-parameterisation."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from torch import nn

from initlab.lab.claims import _stats
from initlab.lab.claims._common import (
    Arm,
    curve_band,
    dataset,
    figure,
    finals,
    initialize,
    loss_table,
    mean_text,
    plot_losses,
    train_arms,
)
from initlab.lab.claims.base import Context, Outcome, Rule, claim
from initlab.lab.data import Dataset
from initlab.rng import derive_generator


@claim(
    "11",
    title="Batch norm makes training robust to a bad init and allows higher learning rates",
    statement="Batch normalization makes training robust to a bad init and allows higher learning rates.",
    references=("Ioffe & Szegedy 2015, 'Batch normalization', sec. 3.3",),
    hypothesis=(
        "With batch norm after every hidden layer a deep ReLU MLP trains from He, N(0, 0.01^2) and N(0, 0.5^2) "
        "alike and survives a learning rate 20 times larger; without it the bad inits fail at the small rate."
    ),
    rules=(
        Rule("robust", "with batch norm: worst training accuracy of the three inits, lr 0.05", ">", 0.9),
        Rule("high_lr", "He init at lr 1.0: training accuracy with minus without batch norm", ">", 0.2),
        Rule("without", "without batch norm: worst training accuracy of the three inits, lr 0.05", "<", 0.5,
             role="control",
             predicts="without the remedy the bad inits must fail, or batch norm has nothing to rescue"),
    ),
    order=11,
)
def batchnorm_remedy(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    depth = ctx.pick(4, 8)
    steps = ctx.pick(300, 1500)
    low, high = 0.05, 1.0
    inits = {"He": "he_normal; output=glorot_normal", "std 0.01": "normal(std=0.01); output=glorot_normal",
             "std 0.5": "normal(std=0.5); output=glorot_normal"}
    arms = [Arm(f"{label}, lr {low:g}", plan, lr=low) for label, plan in inits.items()]
    arms.append(Arm(f"He, lr {high:g}", inits["He"], lr=high))
    options = dict(steps=steps, batch_size=128, eval_every=steps, log_every=max(1, steps // 100))
    runs = {
        norm: train_arms(f"mlp:*-64x{depth}-*:relu{'+bn' if norm else ''}", arms, seeds, **options)
        for norm in (False, True)
    }
    accuracy = {(norm, label): finals(results, "train_accuracy", diverged=0.0)
                for norm, arm_runs in runs.items() for label, results in arm_runs.items()}

    def worst(norm: bool) -> np.ndarray:
        return np.stack([accuracy[(norm, f"{label}, lr {low:g}")] for label in inits], axis=1)

    fig, axes = figure(ncols=2)
    for column, norm in enumerate((False, True)):
        plot_losses(axes[0][column], runs[norm], clip=1e3)
        axes[0][column].set_title("with batch norm" if norm else "without batch norm")
    return Outcome(
        measurement=(
            f"{depth}-hidden-layer ReLU MLP (width 64) on digits, with and without batch norm after each hidden "
            f"layer, three inits at lr {low:g} and He at lr {high:g}, {steps} SGD steps (batch 128); training "
            "accuracy (a diverged run counts 0)"
        ),
        values={
            "robust": _stats.bootstrap(lambda a: a.mean(axis=1).min(axis=-1), worst(True)),
            "high_lr": _stats.difference(accuracy[(True, f"He, lr {high:g}")], accuracy[(False, f"He, lr {high:g}")]),
            "without": _stats.bootstrap(lambda a: a.mean(axis=1).min(axis=-1), worst(False)),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"runs": [{"batch norm": "yes" if norm else "no", "arm": label,
                          "training accuracy": mean_text(accuracy[(norm, label)]),
                          "diverged": sum(r.status == "diverged" for r in runs[norm][label])}
                         for norm in (False, True) for label in runs[norm]]},
        notes="Batch norm rescales every layer's output to unit variance, undoing a too-small or too-large init, "
              "and keeps the effective step size bounded so a large learning rate does not blow the network up.",
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


# Lasagne's defaults: Constant(0.0), Normal(std=0.01), Uniform(range=0.01), Glorot and He with gain 1
# (Lasagne's He takes gain=1.0 unless told, i.e. Var = 1/fan_in), Orthogonal(gain=1),
# Sparse(sparsity=0.1 non-zeros, std=0.01) -- 90% zeros per unit.
LASAGNE_SCHEMES = {
    "Constant(0.0)": "constant(value=0.0)",
    "Normal(std=0.01)": "normal(std=0.01)",
    "Uniform(range=0.01)": "uniform(a=-0.01, b=0.01)",
    "GlorotNormal": "glorot_normal",
    "GlorotUniform": "glorot_uniform",
    "HeNormal": "he_normal(nonlinearity=linear)",
    "HeUniform": "he_uniform(nonlinearity=linear)",
    "Orthogonal": "orthogonal(gain=1.0)",
    "Sparse(0.1 non-zero, std=0.01)": "sparse(sparsity=0.9, std=0.01)",
}


@claim(
    "13",
    title="The Lasagne list: every random scheme trains a small network",
    statement=(
        "The random schemes of the Lasagne library's init list (Normal, Uniform, Glorot, He, Orthogonal, Sparse) "
        "all train a small network, while Constant, also in the list, does not."
    ),
    references=("Lasagne documentation, lasagne.init", "Martens 2010 (sparse init)", "Saxe et al. 2014 (orthogonal)"),
    hypothesis=(
        "On digits a 64-64-10 tanh MLP reaches at least 85 % test accuracy from every random scheme of the list "
        "with its default arguments; Constant(0.0) cannot break symmetry and stays near chance."
    ),
    rules=(
        Rule("worst_random", "worst test accuracy over the random schemes", ">", 0.85),
        Rule("constant", "test accuracy of Constant(0.0)", "<", 0.3, role="control",
             predicts="the list's one non-random entry cannot break symmetry (claims 1 and 2): near chance"),
    ),
    order=13,
)
def lasagne_list(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    steps = ctx.pick(400, 2000)
    arms = [Arm(label, f"{plan}; bias=zeros") for label, plan in LASAGNE_SCHEMES.items()]
    runs = train_arms("mlp:*-64-*:tanh", arms, seeds, steps=steps, batch_size=64, lr=0.1, eval_every=steps,
                      log_every=steps)
    accuracy = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in runs.items()}
    random_labels = [label for label in LASAGNE_SCHEMES if not label.startswith("Constant")]
    table = np.stack([accuracy[label] for label in random_labels], axis=1)
    ranking = sorted(accuracy, key=lambda label: -accuracy[label].mean())
    fig, axes = figure(width=6.5)
    axes[0][0].barh(ranking[::-1], [accuracy[label].mean() for label in ranking[::-1]],
                    xerr=[accuracy[label].std(ddof=1) for label in ranking[::-1]], color="C0")
    axes[0][0].set_xlabel(f"test accuracy (mean ± sd over {len(seeds)} seeds)")
    axes[0][0].set_xlim(0, 1)
    worst = min(random_labels, key=lambda label: accuracy[label].mean())
    return Outcome(
        measurement=(
            f"64-64-10 tanh MLP on digits, each scheme of the list with its default arguments (zero biases), "
            f"{steps} SGD steps (lr 0.1, batch 64); test accuracy"
        ),
        values={
            "worst_random": _stats.bootstrap(lambda a: a.mean(axis=1).min(axis=-1), table),
            "constant": _stats.mean(accuracy["Constant(0.0)"]),
        },
        figures=[ctx.save_figure(fig, "ranking")],
        tables={"ranking": [{"rank": rank + 1, "scheme": label, "test accuracy": mean_text(accuracy[label])}
                            for rank, label in enumerate(ranking)]},
        notes=(
            f"The weakest random scheme here is {worst} ({accuracy[worst].mean():.3f}). Constant belongs in the "
            "list for biases; used for weights it leaves one effective unit per layer (with 0, no gradient reaches "
            "the hidden weights at all). With one hidden layer the fixed-scale defaults (Normal 0.01, Uniform "
            "0.01, Sparse 0.01) train too; with many layers they stall (claim 7), which is why the fan-scaled "
            "schemes replaced them."
        ),
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


def _labelled(split: Dataset, count: int) -> Dataset:
    return dataclasses.replace(split, x_train=split.x_train[:count], y_train=split.y_train[:count])


@claim(
    "14",
    title="Unsupervised layer-wise pre-training as an init",
    statement=(
        "Unsupervised layer-wise pre-training, used as an initialization, rarely hurts and sometimes helps, "
        "at the cost of extra training time."
    ),
    references=(
        "Erhan, Bengio, Courville, Manzagol, Vincent & Bengio 2010, 'Why does unsupervised pre-training help "
        "deep learning?'",
        "Bengio 2012, 'Practical recommendations for gradient-based training of deep architectures'",
    ),
    hypothesis=(
        "With few labels, a sigmoid MLP whose hidden layers were first trained as autoencoders on all the "
        "(unlabelled) training inputs loses no more than 1 point of test accuracy against the same random init "
        "without pre-training, and costs extra gradient steps."
    ),
    rules=(
        Rule("difference", "test accuracy, pre-trained minus random init", ">", -0.01,
             why="'rarely hurts': non-inferiority, no loss beyond 1 point"),
        Rule("damaged", "test accuracy, a damaging init (random weights x 8) minus random init", "<", -0.01,
             role="control",
             predicts="an init that does hurt (sigmoid units saturated by weights x 8) must show as a loss beyond "
                      "1 point, or the comparison could not see harm"),
        Rule("cost", "gradient steps of pre-training plus fine-tuning over fine-tuning alone", ">", 1.0,
             role="demonstration", why="the extra training it costs"),
    ),
    order=14,
)
def layerwise_pretraining(ctx: Context) -> Outcome:
    from initlab.datainit import layerwise_pretrain

    seeds = ctx.seeds()
    labelled = ctx.pick(200, 300)
    pretrain_steps = ctx.pick(150, 1000)
    finetune_steps = ctx.pick(400, 2000)
    spec = "mlp:*-128-64-*:sigmoid"
    base_plan = "glorot_uniform; bias=zeros"
    seconds: list[float] = []

    def pretrained(model: nn.Module, seed: int) -> None:
        initialize(model, base_plan, seed)
        started = time.perf_counter()
        layerwise_pretrain(model, dataset("digits", seed).x_train, steps=pretrain_steps, seed=seed)
        seconds.append(time.perf_counter() - started)

    def damaged(model: nn.Module, seed: int) -> None:
        initialize(model, base_plan, seed)
        with torch.no_grad():
            for block in model.hidden:  # type: ignore[union-attr]
                block.linear.weight.mul_(8.0)

    arms = [Arm("random", base_plan), Arm("pre-trained", pretrained), Arm("random x 8", damaged)]
    splits = [_labelled(dataset("digits", seed), labelled) for seed in seeds]
    started = time.perf_counter()
    runs = train_arms(spec, arms, seeds, splits=splits, steps=finetune_steps, batch_size=64, lr=0.5,
                      eval_every=finetune_steps, log_every=max(1, finetune_steps // 100))
    total = time.perf_counter() - started
    accuracy = {label: finals(results, "test_accuracy", diverged=0.0) for label, results in runs.items()}
    hidden_layers = 2
    step_ratio = (hidden_layers * pretrain_steps + finetune_steps) / finetune_steps
    difference = _stats.difference(accuracy["pre-trained"], accuracy["random"])
    effect = ("helps" if difference.low > 0 else "hurts" if difference.high < 0
              else "neither helps nor hurts measurably")
    fig, axes = figure()
    plot_losses(axes[0][0], runs, xlabel="supervised SGD step")
    return Outcome(
        measurement=(
            f"64-128-64-10 sigmoid MLP, {labelled} labelled digits per split; Glorot-uniform init, the same init "
            f"after greedy autoencoder pre-training of each hidden layer (initlab.datainit.layerwise_pretrain, "
            f"{pretrain_steps} Adam steps per layer) on all unlabelled training images of the split, or the "
            f"same init with hidden weights x 8; {finetune_steps} supervised SGD steps (lr 0.5, batch 64); "
            "test accuracy, paired by seed"
        ),
        values={
            "difference": difference,
            "damaged": _stats.difference(accuracy["random x 8"], accuracy["random"]),
            "cost": _stats.exact(step_ratio, method="gradient steps counted"),
        },
        figures=[ctx.save_figure(fig, "loss")],
        tables={"arms": [{"init": label, "test accuracy": mean_text(accuracy[label])} for label in runs],
                "wall time": [{"pre-training, all seeds (s)": f"{sum(seconds):.2f}",
                               "initialisation and fine-tuning of all arms (s)": f"{total:.2f}"}]},
        notes=(
            f"In this setting pre-training {effect} ({difference.text()}). It costs {step_ratio:.2f}x the "
            f"gradient steps of fine-tuning alone ({sum(seconds):.1f} s of pre-training for {len(seeds)} seeds "
            "on this machine)."
        ),
        setting=f"{len(seeds)} seeds (split, init, batch order)",
        seeds=len(seeds),
    )


def _random_labels(seed: int, samples: int) -> Dataset:
    """The first ``samples`` training digits of the seed's split with labels drawn uniformly at random."""
    split = dataset("digits", seed)
    labels = torch.randint(0, split.num_classes, (samples,), generator=derive_generator(seed, "claim17/labels"))
    return dataclasses.replace(split, x_train=split.x_train[:samples], y_train=labels)


@claim(
    "17",
    title="Wide random networks fit even random labels",
    statement=(
        "From random Gaussian init a wide enough network reaches zero training error on a small data set, even "
        "with random labels (over-parameterisation)."
    ),
    references=(
        "Zhang, Bengio, Hardt, Recht & Vinyals 2017, 'Understanding deep learning requires rethinking "
        "generalization'",
        "Du, Zhai, Poczos & Singh 2019; Allen-Zhu, Li & Song 2019",
    ),
    hypothesis=(
        "A one-hidden-layer ReLU net from He init, trained by full-batch gradient descent, fits random labels of a "
        "few hundred digits perfectly once it is wide, and cannot when it is narrow."
    ),
    rules=(
        Rule("wide", "training accuracy on random labels, widest network", ">", 0.99),
        Rule("narrow", "training accuracy on random labels, width 4", "<", 0.9, role="control",
             predicts="memorising random labels needs capacity: a 4-unit network cannot"),
    ),
    order=17,
)
def overparameterised(ctx: Context) -> Outcome:
    seeds = ctx.seeds()
    samples = ctx.pick(100, 200)
    widths = ctx.pick([4, 32, 256], [4, 32, 512])
    steps = ctx.pick(300, 1000)
    splits = [_random_labels(seed, samples) for seed in seeds]
    accuracy: dict[int, np.ndarray] = {}
    curves = {}
    for width in widths:
        runs = train_arms(f"mlp:*-{width}-*:relu", [Arm(f"width {width}", "he_normal; bias=zeros")], seeds,
                          splits=splits, steps=steps, lr=0.05, optimizer="momentum", eval_every=steps,
                          log_every=max(1, steps // 100))
        results = runs[f"width {width}"]
        accuracy[width] = finals(results, "train_accuracy", diverged=0.0)
        curves[width] = loss_table(results, cap=10.0)
    fig, axes = figure()
    for index, width in enumerate(widths):
        curve_band(axes[0][0], *curves[width], f"width {width}", f"C{index}")
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("gradient step (full batch, momentum 0.9)")
    axes[0][0].set_ylabel("training loss, random labels")
    axes[0][0].legend()
    return Outcome(
        measurement=(
            f"{samples} digits per seed with labels drawn uniformly at random, 64-width-10 ReLU nets from He normal "
            f"init, {steps} full-batch gradient steps (lr 0.05, momentum 0.9); training accuracy"
        ),
        values={"wide": _stats.mean(accuracy[widths[-1]]), "narrow": _stats.mean(accuracy[widths[0]])},
        figures=[ctx.save_figure(fig, "loss")],
        tables={"widths": [{"width": width, "parameters": 64 * width + width + 10 * width + 10,
                            "training accuracy": mean_text(accuracy[width])} for width in widths]},
        notes="Random labels carry no pattern; fitting them is memorisation, which the convergence results for "
              "over-parameterised networks from Gaussian init guarantee once the width is large enough.",
        setting=f"{len(seeds)} seeds (subset, labels, init)",
        seeds=len(seeds),
    )

