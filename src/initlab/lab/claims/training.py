"""Claims 11, 13, 14, 17: batch norm as a remedy, the Lasagne list, layer-wise pre-training, over-parameterisation."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from initlab.lab.claims._common import difference_se, figure, fmt, mean_se
from initlab.lab.claims._nets import InitSpec, StackedMLP, digits, seeded_generator, train_stacked
from initlab.lab.claims.base import Check, Context, Outcome, claim
from initlab.schemes import (
    constant,
    get,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    normal,
    uniform,
)


@claim(
    "11",
    title="Batch norm makes training robust to a bad init and allows higher learning rates",
    statement="Batch normalization makes training robust to a bad init and allows higher learning rates.",
    source="Korean answer (batch normalization section, Ioffe & Szegedy 2015)",
    order=11,
)
def batchnorm_remedy(ctx: Context) -> Outcome:
    x, y, _, _ = digits(ctx.seed)
    depth = ctx.pick(6, 8)
    steps = ctx.pick(200, 1500)
    inits = {"He": he_normal(nonlinearity="relu"), "std 0.01": normal(std=0.01), "std 0.5": normal(std=0.5)}
    rates = (0.05, 1.0)
    specs = [InitSpec(label, scheme, output=glorot_normal()) for label in inits for scheme in [inits[label]] for _ in rates]
    lrs = [rate for _ in inits for rate in rates]
    accuracy: dict[tuple[bool, str, float], float] = {}
    curves = {}
    for batchnorm in (False, True):
        model = StackedMLP([64] + [64] * depth + [10], "relu", len(specs), batchnorm=batchnorm)
        model.initialize(specs, [ctx.seed] * len(specs))
        log = train_stacked(model, x, y, steps=steps, lr=lrs, batch_size=128, seed=ctx.seed, record_every=10)
        for index, spec in enumerate(specs):
            accuracy[(batchnorm, spec.label, lrs[index])] = float(log.train_accuracy[index])
        curves[batchnorm] = log
    rows = [
        {"batch norm": "yes" if bn else "no", "init": label, "lr": rate, "train accuracy": fmt(accuracy[(bn, label, rate)])}
        for bn in (False, True) for label in inits for rate in rates
    ]
    low = rates[0]
    high = rates[1]
    bn_worst = min(accuracy[(True, label, low)] for label in inits)
    plain_worst = min(accuracy[(False, label, low)] for label in inits)
    high_gain = accuracy[(True, "He", high)] - accuracy[(False, "He", high)]
    fig, axes = figure(ncols=2)
    for column, batchnorm in enumerate((False, True)):
        log = curves[batchnorm]
        for index, spec in enumerate(specs):
            curve = np.clip(np.nan_to_num(log.losses[:, index], nan=1e3, posinf=1e3), 1e-3, 1e3)
            axes[0][column].plot(log.steps, curve, lw=1, ls="-" if lrs[index] == low else "--",
                                 label=f"{spec.label}, lr {lrs[index]}")
        axes[0][column].set_yscale("log")
        axes[0][column].set_title("with batch norm" if batchnorm else "without batch norm")
        axes[0][column].set_xlabel("SGD step")
    axes[0][0].set_ylabel("training loss (clipped to 1e3)")
    axes[0][1].legend(fontsize=6)
    figure_name = ctx.save_figure(fig, "loss")
    return Outcome(
        measurement=(
            f"{depth}-hidden-layer ReLU MLP (width 64) on digits, three inits x lr {low} and {high}, with and "
            f"without batch norm after each hidden layer, {steps} SGD steps; training accuracy"
        ),
        checks=[
            Check(f"with batch norm, worst training accuracy over the 3 inits (lr {low})", bn_worst, ">=", 0.9),
            Check(f"without batch norm, worst training accuracy over the 3 inits (lr {low})", plain_worst, "<", 0.5,
                  why="the bad inits must hurt without batch norm for the remedy to mean anything"),
            Check(f"He init at lr {high}: accuracy with minus without batch norm", high_gain, ">", 0.2),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"runs": rows},
        notes="Batch norm rescales every layer's output to unit variance, undoing a too-small or too-large init, "
              "and keeps the effective step size bounded so a large learning rate does not blow the network up.",
        setting="batch 128, one seed per cell",
    )


def _lasagne_schemes() -> dict[str, object]:
    # Lasagne's defaults: Constant(0.0), Normal(std=0.01), Uniform(range=0.01), Glorot/He with gain 1
    # (Lasagne's He takes gain=1.0 unless told, i.e. Var = 1/fan_in), Orthogonal(gain=1),
    # Sparse(sparsity=0.1 non-zeros, std=0.01) -- 90% zeros per unit.
    return {
        "Constant(0.0)": constant(0.0),
        "Normal(std=0.01)": normal(std=0.01),
        "Uniform(range=0.01)": uniform(a=-0.01, b=0.01),
        "GlorotNormal": glorot_normal(),
        "GlorotUniform": glorot_uniform(),
        "HeNormal": he_normal(nonlinearity="linear"),
        "HeUniform": he_uniform(nonlinearity="linear"),
        "Orthogonal": get("orthogonal(gain=1.0)"),
        "Sparse(0.1 non-zero, std=0.01)": get("sparse(sparsity=0.9, std=0.01)"),
    }


@claim(
    "13",
    title="The Lasagne list: every random scheme trains a small network",
    statement=(
        "Sparse init and the other random schemes of the Lasagne list (Normal, Uniform, Glorot, He, Orthogonal, "
        "Sparse) all train a small network, while Constant, also in the list, does not; their ranking on digits."
    ),
    source="Korean answer (Lasagne lasagne.init list)",
    order=13,
)
def lasagne_list(ctx: Context) -> Outcome:
    x, y, x_test, y_test = digits(ctx.seed)
    schemes = _lasagne_schemes()
    n_seeds = ctx.pick(2, 5)
    steps = ctx.pick(300, 2000)
    labels = list(schemes)
    specs = [InitSpec(label, schemes[label]) for label in labels for _ in range(n_seeds)]  # type: ignore[arg-type]
    model = StackedMLP([64, 64, 10], "tanh", len(specs))
    model.initialize(specs, [ctx.seed + s for s in range(n_seeds)] * len(labels))
    log = train_stacked(model, x, y, steps=steps, lr=0.1, batch_size=64, seed=ctx.seed, record_every=10,
                        x_test=x_test, y_test=y_test)
    assert log.test_accuracy is not None
    results = []
    for index, label in enumerate(labels):
        part = slice(index * n_seeds, (index + 1) * n_seeds)
        mean, error = mean_se(log.test_accuracy[part])
        results.append((mean, error, label))
    results.sort(reverse=True)
    rows = [{"rank": rank + 1, "scheme": label, "test accuracy": f"{mean:.4f} ± {error:.4f}"}
            for rank, (mean, error, label) in enumerate(results)]
    by_label = {label: mean for mean, _, label in results}
    random_worst = min(value for label, value in by_label.items() if not label.startswith("Constant"))
    worst_label = min((value, label) for label, value in by_label.items() if not label.startswith("Constant"))[1]
    fig, axes = figure(width=6.0)
    axes[0][0].barh([label for _, _, label in results][::-1], [mean for mean, _, _ in results][::-1],
                    xerr=[error for _, error, _ in results][::-1], color="C0")
    axes[0][0].set_xlabel("test accuracy")
    axes[0][0].set_xlim(0, 1)
    figure_name = ctx.save_figure(fig, "ranking")
    return Outcome(
        measurement=(
            f"64-64-10 tanh MLP on digits, each Lasagne scheme with its default arguments, {n_seeds} seeds, "
            f"{steps} SGD steps; test accuracy"
        ),
        checks=[
            Check(f"worst test accuracy of the random schemes ({worst_label})", random_worst, ">=", 0.85),
            Check("test accuracy of Constant(0.0)", by_label["Constant(0.0)"], "<", 0.3,
                  why="the one non-random entry of the list cannot break symmetry (claims 1 and 2)"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"ranking": rows},
        notes="Constant is in the Lasagne list for biases; used for weights it leaves one effective unit per layer "
              "(with 0 no gradient reaches the hidden weights at all). With one hidden layer the fixed-scale defaults "
              "(Normal 0.01, Uniform 0.01, Sparse 0.01) train too, if more slowly; with two or more hidden ReLU "
              "layers they stall (claim 7), which is why the fan-scaled schemes replaced them.",
        setting="SGD lr 0.1, batch 64, zero biases",
    )


def _pretrain_layers(model: StackedMLP, x: torch.Tensor, steps: int, lr: float, seed: int) -> int:
    """Greedy layer-wise autoencoder pre-training of every hidden layer; returns the gradient steps spent."""
    hidden = x
    spent = 0
    generator = torch.Generator().manual_seed(seed)
    act = torch.sigmoid
    for layer in range(model.n_layers - 1):
        weight, bias = model.weights[layer], model.biases[layer]
        slices, width, fan_in = weight.shape
        decoder = (torch.randn(slices, fan_in, width, generator=generator) / math.sqrt(width)).requires_grad_(True)
        decoder_bias = torch.zeros(slices, 1, fan_in, requires_grad=True)
        encoder = weight.detach().clone().requires_grad_(True)
        encoder_bias = bias.detach().clone().requires_grad_(True)
        target = hidden if hidden.dim() == 3 else hidden.unsqueeze(0).expand(slices, -1, -1)
        for _ in range(steps):
            index = torch.randint(0, target.shape[1], (64,), generator=generator)
            batch = target[:, index]
            code = act(torch.bmm(batch, encoder.transpose(1, 2)) + encoder_bias.unsqueeze(1))
            reconstruction = torch.bmm(code, decoder.transpose(1, 2)) + decoder_bias
            loss = ((reconstruction - batch) ** 2).mean(dim=(1, 2)).sum()
            grads = torch.autograd.grad(loss, [encoder, encoder_bias, decoder, decoder_bias])
            with torch.no_grad():
                for parameter, gradient in zip((encoder, encoder_bias, decoder, decoder_bias), grads):
                    parameter -= lr * gradient
            spent += 1
        with torch.no_grad():
            weight.copy_(encoder)
            bias.copy_(encoder_bias)
            hidden = act(torch.bmm(target, encoder.transpose(1, 2)) + encoder_bias.unsqueeze(1))
    return spent


@claim(
    "14",
    title="Unsupervised layer-wise pre-training as an init",
    statement=(
        "Unsupervised layer-wise pre-training, used as an initialization, rarely hurts and sometimes helps, "
        "at the cost of extra training time."
    ),
    source="Korean answer (Bengio 2012: 'helps more often than it hurts, but costs training time and hyper-parameters')",
    order=14,
)
def layerwise_pretraining(ctx: Context) -> Outcome:
    x, y, x_test, y_test = digits(ctx.seed)
    labelled = ctx.pick(200, 300)
    x_labelled, y_labelled = x[:labelled], y[:labelled]
    n_seeds = ctx.pick(3, 8)
    pretrain_steps = ctx.pick(200, 2000)
    finetune_steps = ctx.pick(200, 2000)
    widths = [64, 128, 64, 10]
    seeds = [ctx.seed + s for s in range(n_seeds)]
    accuracy = {}
    seconds = {}
    for variant in ("random", "pretrained"):
        started = time.perf_counter()
        model = StackedMLP(widths, "sigmoid", n_seeds)
        model.initialize([InitSpec("glorot", glorot_uniform())] * n_seeds, seeds)
        pretrain_time = 0.0
        if variant == "pretrained":
            # pre-training sees every training image, without labels; fine-tuning sees only the labelled ones
            _pretrain_layers(model, x, pretrain_steps, lr=0.5, seed=ctx.seed)
            pretrain_time = time.perf_counter() - started
        log = train_stacked(model, x_labelled, y_labelled, steps=finetune_steps, lr=0.5, batch_size=64,
                            seed=ctx.seed, x_test=x_test, y_test=y_test)
        assert log.test_accuracy is not None
        accuracy[variant] = log.test_accuracy
        seconds[variant] = (time.perf_counter() - started, pretrain_time)
    difference, se = difference_se(accuracy["pretrained"], accuracy["random"])
    if difference > 2 * se:
        effect = "helps"
    elif difference < -2 * se:
        effect = "hurts"
    else:
        effect = "neither helps nor hurts measurably"
    compute_ratio = seconds["pretrained"][0] / max(seconds["random"][0], 1e-9)
    rows = []
    for variant in ("random", "pretrained"):
        mean, error = mean_se(accuracy[variant])
        rows.append({"init": variant, "test accuracy": f"{mean:.4f} ± {error:.4f}",
                     "wall seconds": fmt(seconds[variant][0])})
    return Outcome(
        measurement=(
            f"{'-'.join(map(str, widths))} sigmoid MLP, {labelled} labelled digits; glorot_uniform init vs the same "
            f"init after greedy autoencoder pre-training of each hidden layer on all {x.shape[0]} unlabelled "
            f"training images ({pretrain_steps} steps per layer); {finetune_steps} supervised steps; test accuracy"
        ),
        checks=[
            Check("test accuracy, pre-trained minus random", difference, ">=", -0.01, margin=2 * se,
                  why="'rarely hurts': no loss beyond 1 point"),
            Check("wall time, pre-trained / random", compute_ratio, ">", 1.0, why="the extra compute it costs"),
        ],
        tables={"runs": rows},
        notes=(
            f"In this setting pre-training {effect} (difference {difference:+.4f} ± {se:.4f}) and costs "
            f"{compute_ratio:.1f}x the wall time of random init plus fine-tuning."
        ),
        setting=f"{n_seeds} seeds, SGD lr 0.5, batch 64",
    )


@claim(
    "17",
    title="Wide random networks fit even random labels",
    statement=(
        "From random Gaussian init a wide enough network reaches zero training loss on a small data set, even "
        "with random labels (over-parameterisation)."
    ),
    source="German answer (Du et al. 2019; Allen-Zhu, Li & Song 2019; Zou et al. 2018)",
    order=17,
)
def overparameterised(ctx: Context) -> Outcome:
    x, _, _, _ = digits(ctx.seed)
    samples = ctx.pick(100, 300)
    x = x[:samples]
    generator = seeded_generator(ctx.seed, "claim17/labels")
    y = torch.randint(0, 10, (samples,), generator=generator)
    widths = ctx.pick([4, 32, 1024], [4, 32, 512, 4096])
    steps = ctx.pick(300, 2000)
    rows = []
    results = {}
    for width in widths:
        model = StackedMLP([64, width, 10], "relu", 1)
        model.initialize([InitSpec("he", he_normal(nonlinearity="relu"))], [ctx.seed])
        log = train_stacked(model, x, y, steps=steps, lr=0.05, momentum=0.9, record_every=10)
        results[width] = (float(log.train_loss[0]), float(log.train_accuracy[0]), log)
        rows.append({"width": width, "parameters": 64 * width + width + 10 * width + 10,
                     "final training loss": fmt(results[width][0]), "training accuracy": fmt(results[width][1])})
    wide = widths[-1]
    fig, axes = figure()
    for width in widths:
        log = results[width][2]
        axes[0][0].plot(log.steps, log.losses[:, 0], label=f"width {width}")
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("GD step (full batch)")
    axes[0][0].set_ylabel("training loss, random labels")
    axes[0][0].legend()
    figure_name = ctx.save_figure(fig, "loss")
    return Outcome(
        measurement=(
            f"{samples} digits with labels drawn uniformly at random, 64-width-10 ReLU nets from He normal init, "
            f"{steps} full-batch GD steps with momentum 0.9"
        ),
        checks=[
            Check(f"training accuracy on random labels, width {wide}", results[wide][1], "==", 1.0, margin=0.0),
            Check(f"final training loss, width {wide}", results[wide][0], "<", 0.05),
            Check(f"training accuracy, width {widths[0]}", results[widths[0]][1], "<", 1.0,
                  why="a narrow network cannot memorise the labels: width matters"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"widths": rows},
        notes="Random labels carry no pattern; fitting them is memorisation, which the convergence proofs for "
              "over-parameterised networks from Gaussian init guarantee once the width is large enough.",
        setting="lr 0.05, momentum 0.9",
    )



