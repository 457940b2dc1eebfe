"""Claims 12, 15, 16: orthogonal init, random restarts, and distinct inputs kept distinct through depth."""

from __future__ import annotations

import math

import numpy as np
import torch

from initlab.lab.claims._common import figure, fmt
from initlab.lab.claims._nets import InitSpec, StackedMLP, seeded_generator, train_stacked
from initlab.lab.claims.base import Check, Context, Outcome, claim
from initlab.schemes import constant, get, lecun_normal, normal


@claim(
    "12",
    title="Orthogonal init preserves norms",
    statement=(
        "Orthogonal init (u of the SVD of a Gaussian matrix) preserves norms: W^T W = I, and deep linear "
        "networks keep all Jacobian singular values at 1."
    ),
    source="Korean answer (W = randn(n, n); u, s, v = svd(W); use u); Saxe et al. 2014",
    order=12,
)
def orthogonal_norms(ctx: Context) -> Outcome:
    from initlab.theory import jacobian_singular_values

    width = 64
    depth = ctx.pick(30, 100)
    rng = np.random.default_rng(ctx.seed)
    # the seed text's recipe, literally
    u, _, _ = np.linalg.svd(rng.standard_normal((width, width)))
    recipe_error = float(np.abs(u.T @ u - np.eye(width)).max())
    scheme = get("orthogonal(gain=1.0, method=svd)")
    generator = seeded_generator(ctx.seed, "claim12")
    w = scheme.sample((width, width), dtype=torch.float64, generator=generator)
    scheme_error = float((w.T @ w - torch.eye(width, dtype=torch.float64)).abs().max())
    x = torch.randn(256, width, generator=generator, dtype=torch.float64)
    norm_ratio = (x @ w.T).norm(dim=1) / x.norm(dim=1)
    norm_error = float((norm_ratio - 1).abs().max())

    spectra = {}
    for label, layer_scheme in (("orthogonal", scheme), ("Gaussian, Var = 1/n (LeCun)", lecun_normal())):
        layers = []
        for layer in range(depth):
            linear = torch.nn.Linear(width, width, bias=False).double()
            with torch.no_grad():
                linear.weight.copy_(layer_scheme.sample((width, width), dtype=torch.float64,
                                                        generator=seeded_generator(ctx.seed, f"{label}/{layer}")))
            layers.append(linear)
        model = torch.nn.Sequential(*layers)
        spectrum = jacobian_singular_values(model, x[:2], exact=True)
        assert spectrum.singular_values is not None
        spectra[label] = spectrum.singular_values[0].numpy()
    orthogonal_values = spectra["orthogonal"]
    gaussian_values = spectra["Gaussian, Var = 1/n (LeCun)"]
    fig, axes = figure()
    for label, values in spectra.items():
        axes[0][0].plot(np.sort(values)[::-1], marker=".", label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("index")
    axes[0][0].set_ylabel(f"singular value of the {depth}-layer Jacobian")
    axes[0][0].legend(fontsize=7)
    figure_name = ctx.save_figure(fig, "spectrum")
    return Outcome(
        measurement=(
            f"max |W^T W - I| of a {width}x{width} orthogonal matrix (numpy SVD recipe and initlab's orthogonal); "
            f"singular values of the input-output Jacobian of a {depth}-layer linear network (float64)"
        ),
        checks=[
            Check("max |W^T W - I|, u of svd(randn)", recipe_error, "<", 1e-12),
            Check("max |W^T W - I|, initlab orthogonal", scheme_error, "<", 1e-12),
            Check(f"max |s - 1| over Jacobian singular values, {depth} orthogonal layers",
                  float(np.abs(orthogonal_values - 1).max()), "<", 1e-9),
            Check(f"condition number, {depth} Gaussian layers", float(gaussian_values.max() / gaussian_values.min()),
                  ">", 100.0, why="the contrast: products of Gaussian matrices spread their singular values"),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"spectra": [
            {"layers": label, "largest s": fmt(float(values.max())), "smallest s": fmt(float(values.min()))}
            for label, values in spectra.items()
        ], "norms": [{"max | |Wx| / |x| - 1 |": fmt(norm_error)}]},
        notes="A product of orthogonal matrices is orthogonal, so the deep linear map is an isometry; the Gaussian "
              "product keeps the average squared singular value near 1 but not the individual ones.",
        setting="float64, Jacobian from initlab.theory.jacobian_singular_values (exact)",
    )


_XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
_XOR_Y = torch.tensor([0.0, 1.0, 1.0, 0.0])


@claim(
    "15",
    title="Random restarts land on different solutions; best of k improves",
    statement=(
        "From one fixed init gradient descent lands on the same solution every time; from different random inits "
        "it lands on different ones, and the best of k restarts improves as k grows."
    ),
    source="Spanish answer (helicopter analogy; greedy training, restarts as for k-means/EM); German answer",
    order=15,
)
def random_restarts(ctx: Context) -> Outcome:
    runs = ctx.pick(48, 128)
    repeats = 4
    steps = ctx.pick(1500, 5000)
    spec = InitSpec("restart", normal(std=1.0))
    seeds = [ctx.seed] * repeats + [ctx.seed + 1 + r for r in range(runs)]
    model = StackedMLP([2, 2, 1], "sigmoid", len(seeds), dtype=torch.float64)
    model.initialize([spec] * len(seeds), seeds)
    log = train_stacked(model, _XOR_X.double(), _XOR_Y.double(), steps=steps, lr=2.0, loss="bce", record_every=50)
    solutions = torch.cat([torch.cat([w.detach().reshape(len(seeds), -1), b.detach().reshape(len(seeds), -1)], 1)
                           for w, b in zip(model.weights, model.biases)], 1)
    same = solutions[:repeats]
    repeat_distance = float((same - same[0:1]).abs().max())
    different = solutions[repeats:]
    distances = torch.cdist(different, different)
    distinct = float(distances[~torch.eye(runs, dtype=torch.bool)].median())
    losses = log.train_loss[repeats:]
    losses = np.where(np.isfinite(losses), losses, np.inf)
    stuck = float(np.mean(losses > 0.1))
    # expected best-of-k loss: the k-th order statistic averaged over all subsets of size k
    ordered = np.sort(losses)
    best_of = {}
    for k in (1, 2, 4, 8, 16):
        # P(min of a random k-subset is the i-th smallest) = C(n-1-i, k-1) / C(n, k)
        weights = np.array([math.comb(runs - 1 - i, k - 1) for i in range(runs)], dtype=float) / math.comb(runs, k)
        best_of[k] = float(np.sum(weights * ordered))
    fig, axes = figure(ncols=2)
    axes[0][0].hist(np.log10(np.clip(losses, 1e-6, None)), bins=30)
    axes[0][0].set_xlabel("log10 final loss")
    axes[0][0].set_title(f"{runs} random inits, XOR 2-2-1")
    axes[0][1].plot(list(best_of), list(best_of.values()), marker="o")
    axes[0][1].set_xscale("log", base=2)
    axes[0][1].set_yscale("log")
    axes[0][1].set_xlabel("restarts k")
    axes[0][1].set_ylabel("expected best final loss")
    figure_name = ctx.save_figure(fig, "restarts")
    return Outcome(
        measurement=(
            f"2-2-1 sigmoid network on XOR (a problem with bad local minima), {steps} full-batch GD steps from "
            f"{repeats} copies of one init and from {runs} random N(0, 1) inits, float64"
        ),
        checks=[
            Check("max difference between the solutions of the repeated fixed init", repeat_distance, "==", 0.0),
            Check("median distance between solutions of different inits", distinct, ">", 0.5),
            Check("fraction of random inits ending above loss 0.1 (stuck)", stuck, ">", 0.0,
                  why="there must be bad minima or plateaus for restarts to matter"),
            Check("expected best-of-16 loss / best-of-1 loss", best_of[16] / max(best_of[1], 1e-300), "<", 0.5),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"best of k": [{"k": k, "expected best final loss": fmt(v)} for k, v in best_of.items()]},
        notes="Full-batch gradient descent is deterministic: the same start gives bit-identical weights. Different "
              "starts fall into different basins, some of them poor, and taking the best of several restarts "
              "removes most of that risk.",
        setting="binary cross-entropy, lr 2.0",
    )


def _correlation_profile(activation: str, sigma_w2: float, sigma_b2: float, depth: int, width: int,
                         c0: float, seed: int, networks: int, input_q: float = 1.0) -> np.ndarray:
    """Cosine similarity of two inputs' pre-activations per layer, averaged over networks.

    The inputs have per-unit second moment ``input_q`` and correlation ``c0``.
    """
    generator = seeded_generator(seed, f"claim16/{activation}/{sigma_w2}")
    z = torch.randn(networks, 2, width, generator=generator, dtype=torch.float64) * math.sqrt(input_q)
    first = z[:, 0]
    second = c0 * z[:, 0] + math.sqrt(1 - c0**2) * z[:, 1]
    hidden = torch.stack([first, second], dim=1)
    act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
    values = []
    for layer in range(depth):
        w = torch.randn(networks, width, width, generator=generator, dtype=torch.float64) * math.sqrt(sigma_w2 / width)
        b = torch.randn(networks, 1, width, generator=generator, dtype=torch.float64) * math.sqrt(sigma_b2)
        source = hidden if layer == 0 else act(hidden)
        hidden = torch.bmm(source, w.transpose(1, 2)) + b
        cosine = (hidden[:, 0] * hidden[:, 1]).sum(-1) / (hidden[:, 0].norm(dim=-1) * hidden[:, 1].norm(dim=-1))
        values.append(float(cosine.mean()))
    return np.array(values)


@claim(
    "16",
    title="Random weights keep distinct inputs distinct through depth",
    statement=(
        "Random Gaussian weights keep distinct inputs distinct through depth (the correlation between two inputs' "
        "representations stays below 1, as mean-field theory predicts), while a constant init maps all inputs "
        "to one representation."
    ),
    source="German answer ('random weights preserve the separation of inputs'); Poole et al. 2016",
    order=16,
)
def distinct_inputs(ctx: Context) -> Outcome:
    from initlab.theory import MeanField

    depth = ctx.pick(20, 50)
    width = ctx.pick(400, 1000)
    networks = ctx.pick(2, 4)
    c0 = 0.5
    sigma_w2, sigma_b2 = 2.0, 0.05
    field = MeanField("tanh", sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    q_star = field.q_star
    # inputs scaled so that the first pre-activations already have variance q*: the c-map at q* then
    # predicts every layer, from c1 = (sigma_w2 q_x c0 + sigma_b2) / q*
    input_q = (q_star - sigma_b2) / sigma_w2
    measured = _correlation_profile("tanh", sigma_w2, sigma_b2, depth, width, c0, ctx.seed, networks, input_q)
    predicted = [(sigma_w2 * input_q * c0 + sigma_b2) / q_star]
    for _ in range(depth - 1):
        predicted.append(float(field.c_map(predicted[-1])))
    predicted_array = np.array(predicted)
    deviation = float(np.abs(measured - predicted_array).max())
    tolerance = 5.0 / math.sqrt(width * networks)
    ordered_field = MeanField("tanh", sigma_w2=0.8, sigma_b2=sigma_b2)
    ordered = _correlation_profile("tanh", 0.8, sigma_b2, depth, width, c0, ctx.seed, networks,
                                   (ordered_field.q_star - sigma_b2) / 0.8)

    # constant init: every unit computes the same number, so any two inputs point the same way
    constant_model = StackedMLP([width] + [width] * 3 + [width], "tanh", 1)
    constant_model.initialize([InitSpec("constant", constant(0.01), biases=constant(0.0))], [ctx.seed])
    generator = seeded_generator(ctx.seed, "claim16/constant")
    pair = torch.randn(2, width, generator=generator).abs()
    keep: list[torch.Tensor] = []
    with torch.no_grad():
        constant_model(pair, keep=keep)
    last = keep[-1][0].double()
    constant_cosine = float((last[0] @ last[1]) / (last[0].norm() * last[1].norm()))

    fig, axes = figure()
    layers = np.arange(1, depth + 1)
    axes[0][0].plot(layers, measured, "o", ms=3, label=f"measured, sigma_w^2={sigma_w2} (chaotic)")
    axes[0][0].plot(layers, predicted_array, "-", label="mean-field prediction")
    axes[0][0].plot(layers, ordered, "s", ms=3, label="measured, sigma_w^2=0.8 (ordered)")
    axes[0][0].axhline(field.c_star, color="gray", ls=":", lw=0.8)
    axes[0][0].set_xlabel("layer")
    axes[0][0].set_ylabel("correlation of the two inputs")
    axes[0][0].set_ylim(0, 1.05)
    axes[0][0].legend(fontsize=7)
    figure_name = ctx.save_figure(fig, "correlation")
    return Outcome(
        measurement=(
            f"cosine similarity of two inputs (start {c0}) through {depth} tanh layers of width {width} with "
            f"W ~ N(0, {sigma_w2}/n), b ~ N(0, {sigma_b2}); mean-field c-map from initlab.theory; constant init for contrast"
        ),
        checks=[
            Check(f"correlation at layer {depth}, random init", float(measured[-1]), "<", 0.99),
            Check("max |measured - predicted| correlation over layers", deviation, "<", tolerance,
                  why=f"finite-width fluctuations: 5 / sqrt(width * networks) = {tolerance:.3f}"),
            Check("correlation at the last layer, constant init", constant_cosine, "==", 1.0, margin=1e-6),
        ],
        figures=[figure_name] if figure_name else [],
        tables={"fixed points": [
            {"sigma_w^2": sigma_w2, "q*": fmt(q_star), "c*": fmt(field.c_star), "chi1": fmt(field.chi1), "phase": field.phase},
            {"sigma_w^2": 0.8, "q*": fmt(ordered_field.q_star), "c*": fmt(ordered_field.c_star),
             "chi1": fmt(ordered_field.chi1), "phase": ordered_field.phase},
        ]},
        notes=(
            f"In the chaotic phase (chi1 = {field.chi1:.2f} > 1) the correlation settles at c* = {field.c_star:.3f} < 1: "
            "the inputs stay apart. In the ordered phase (chi1 < 1) it creeps to 1 -- random weights alone do not "
            "guarantee separation; their scale decides it. A constant init gives every unit the same value, so all "
            "inputs map to multiples of one vector."
        ),
        setting=f"{networks} networks, float64",
    )
