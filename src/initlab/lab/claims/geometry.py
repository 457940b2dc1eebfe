"""Claims 12, 15, 16: orthogonal init, random restarts, and distinct inputs kept distinct through depth."""

from __future__ import annotations

import math

import numpy as np
import torch

from initlab.lab.claims import _stats
from initlab.lab.claims._common import Arm, figure, finals, fmt, train_arms
from initlab.lab.claims.base import Context, Measurement, Outcome, Rule, claim
from initlab.lab.data import Dataset
from initlab.rng import derive_generator
from initlab.schemes import get, lecun_normal


@claim(
    "12",
    title="Orthogonal init preserves norms",
    statement=(
        "Orthogonal init (u of the SVD of a Gaussian matrix) preserves norms: W^T W = I, and deep linear "
        "networks keep all Jacobian singular values at 1."
    ),
    references=("Saxe, McClelland & Ganguli 2014, 'Exact solutions to the nonlinear dynamics of learning in deep "
                "linear neural networks'",),
    hypothesis="A product of orthogonal matrices is orthogonal: an identity of linear algebra, shown numerically.",
    rules=(
        Rule("recipe", "max |W^T W - I|, u of svd(randn)", "<", 1e-12, role="demonstration"),
        Rule("scheme", "max |W^T W - I|, initlab orthogonal", "<", 1e-12, role="demonstration"),
        Rule("jacobian", "max |s - 1| over Jacobian singular values, orthogonal layers", "<", 1e-9,
             role="demonstration"),
        Rule("gaussian", "condition number of the Jacobian, Gaussian 1/n layers", ">", 100.0, role="demonstration",
             why="the contrast: products of Gaussian matrices spread their singular values"),
    ),
    order=12,
)
def orthogonal_norms(ctx: Context) -> Outcome:
    from initlab.theory import jacobian_singular_values

    width = 64
    depth = ctx.pick(30, 100)
    rng = np.random.default_rng(ctx.seed)
    u, _, _ = np.linalg.svd(rng.standard_normal((width, width)))
    recipe_error = float(np.abs(u.T @ u - np.eye(width)).max())
    scheme = get("orthogonal(gain=1.0, method=svd)")
    generator = derive_generator(ctx.seed, "claim12")
    w = scheme.sample((width, width), dtype=torch.float64, generator=generator)
    scheme_error = float((w.T @ w - torch.eye(width, dtype=torch.float64)).abs().max())
    x = torch.randn(2, width, generator=generator, dtype=torch.float64)
    spectra = {}
    for label, layer_scheme in (("orthogonal", scheme), ("Gaussian, Var = 1/n (LeCun)", lecun_normal())):
        layers = []
        for layer in range(depth):
            linear = torch.nn.Linear(width, width, bias=False).double()
            with torch.no_grad():
                linear.weight.copy_(layer_scheme.sample((width, width), dtype=torch.float64,
                                                        generator=derive_generator(ctx.seed, f"{label}/{layer}")))
            layers.append(linear)
        spectrum = jacobian_singular_values(torch.nn.Sequential(*layers), x, exact=True)
        assert spectrum.singular_values is not None
        spectra[label] = spectrum.singular_values[0].numpy()
    orthogonal_values = spectra["orthogonal"]
    gaussian_values = spectra["Gaussian, Var = 1/n (LeCun)"]
    fig, axes = figure()
    for label, values in spectra.items():
        axes[0][0].plot(np.sort(values)[::-1], marker=".", label=label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("index (largest first)")
    axes[0][0].set_ylabel(f"singular value of the {depth}-layer Jacobian")
    axes[0][0].legend()
    return Outcome(
        measurement=(
            f"max |W^T W - I| of a {width}x{width} orthogonal matrix (NumPy SVD recipe and initlab's orthogonal); "
            f"singular values of the input-output Jacobian of a {depth}-layer linear network (float64, "
            "initlab.theory.jacobian_singular_values)"
        ),
        values={
            "recipe": _stats.exact(recipe_error),
            "scheme": _stats.exact(scheme_error),
            "jacobian": _stats.exact(float(np.abs(orthogonal_values - 1).max())),
            "gaussian": _stats.exact(float(gaussian_values.max() / gaussian_values.min())),
        },
        figures=[ctx.save_figure(fig, "spectrum")],
        tables={"spectra": [{"layers": label, "largest s": fmt(float(v.max())), "smallest s": fmt(float(v.min()))}
                            for label, v in spectra.items()]},
        notes="A product of orthogonal matrices is orthogonal, so the deep linear map is an isometry; the Gaussian "
              "product keeps the average squared singular value near 1 but not the individual ones.",
        setting="float64, one draw",
    )


def _xor() -> Dataset:
    """The four XOR points as a two-class data set (train = test)."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    return Dataset(x_train=x, y_train=y, x_test=x, y_test=y, num_classes=2, input_shape=(2,), name="xor")


def _expected_best(losses: np.ndarray, k: int) -> np.ndarray:
    """Expected minimum of k runs drawn without replacement, for each row of ``losses`` (rows: resamples)."""
    runs = losses.shape[-1]
    # P(the minimum of a random k-subset is the i-th smallest) = C(n-1-i, k-1) / C(n, k)
    weights = np.array([math.comb(runs - 1 - i, k - 1) for i in range(runs)], dtype=float) / math.comb(runs, k)
    return (np.sort(losses, axis=-1) * weights).sum(axis=-1)


def _restarts(spec: str, seeds: list[int], steps: int) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Final training losses and flattened solutions of one XOR net per seed (full-batch GD, float64)."""
    runs = train_arms(spec, [Arm("restart", "normal(std=1.0); bias=zeros")], seeds, splits=[_xor()] * len(seeds),
                      dtype=torch.float64, steps=steps, lr=1.0, eval_every=steps, log_every=steps)
    losses = finals(runs["restart"], "train_loss", diverged=math.inf)
    solutions = [torch.cat([p.detach().flatten() for p in model.parameters()]) for model in runs.models["restart"]]
    return losses, solutions


@claim(
    "15",
    title="Random restarts land on different solutions; best of k improves",
    statement=(
        "From one fixed init gradient descent lands on the same solution every time; from different random inits "
        "it lands on different ones, and the best of k restarts improves as k grows."
    ),
    references=("Bishop 1995, 'Neural Networks for Pattern Recognition' (multiple restarts of non-convex training)",),
    hypothesis=(
        "On XOR, a problem with bad local minima and plateaus, a 2-2-2 sigmoid net lands on different solutions "
        "from different random inits, and the expected best of 16 restarts has less than half the final loss "
        "of one; a linear network, which has no bad minima, gains nothing from restarts."
    ),
    rules=(
        Rule("distinct", "median distance between the solutions of different inits", ">", 0.5),
        Rule("best_of_16", "expected best-of-16 over best-of-1 final loss, sigmoid net", "<", 0.5),
        Rule("linear", "expected best-of-16 over best-of-1 final loss, linear net", ">", 0.9, role="control",
             predicts="restarts help only where there are bad minima: a linear net ends every run at the same "
                      "loss, so the best of 16 is no better than one"),
        Rule("repeat", "max difference between the solutions of 4 runs from one init", "==", 0.0,
             role="demonstration", why="full-batch gradient descent is deterministic"),
        Rule("stuck", "fraction of sigmoid runs ending above loss 0.1", ">", 0.0, role="demonstration",
             why="there must be bad minima or plateaus for restarts to matter"),
    ),
    order=15,
)
def random_restarts(ctx: Context) -> Outcome:
    runs = ctx.pick(48, 128)
    steps = ctx.pick(1500, 4000)
    seeds = [ctx.seed + 1 + index for index in range(runs)]
    losses, solutions = _restarts("mlp:2-2-2:sigmoid", seeds, steps)
    _, repeated = _restarts("mlp:2-2-2:sigmoid", [ctx.seed] * 4, steps)
    linear_losses, _ = _restarts("mlp:2-2-2:linear", seeds, steps)
    stacked = torch.stack(solutions)
    distances = torch.cdist(stacked, stacked)
    distinct = float(distances[~torch.eye(runs, dtype=torch.bool)].median())
    repeat_distance = max(float((s - repeated[0]).abs().max()) for s in repeated)

    def gain(values: np.ndarray) -> Measurement:
        return _stats.bootstrap(lambda a: _expected_best(a, 16) / _expected_best(a, 1), values, what="restarts")

    finite = np.where(np.isfinite(losses), losses, np.inf)
    best = {k: float(_expected_best(finite[None], k)[0]) for k in (1, 2, 4, 8, 16)}
    fig, axes = figure(ncols=2)
    axes[0][0].hist(np.log10(np.clip(finite, 1e-6, None)), bins=30)
    axes[0][0].set_xlabel("log10 final training loss")
    axes[0][0].set_ylabel("runs")
    axes[0][0].set_title(f"{runs} random inits, XOR 2-2-2")
    axes[0][1].plot(list(best), list(best.values()), marker="o")
    axes[0][1].set_xscale("log", base=2)
    axes[0][1].set_yscale("log")
    axes[0][1].set_xlabel("restarts k")
    axes[0][1].set_ylabel("expected best final loss")
    return Outcome(
        measurement=(
            f"2-2-2 sigmoid (and linear) networks on the four XOR points, {steps} full-batch gradient steps at lr "
            f"1.0 with cross-entropy, float64, from {runs} N(0, 1) inits and from 4 copies of one init"
        ),
        values={
            "distinct": _stats.exact(distinct, n=runs),
            "best_of_16": gain(finite),
            "linear": gain(linear_losses),
            "repeat": _stats.exact(repeat_distance, n=4),
            "stuck": _stats.exact(float(np.mean(finite > 0.1)), n=runs),
        },
        figures=[ctx.save_figure(fig, "restarts")],
        tables={"best of k": [{"k": k, "expected best final loss": fmt(v)} for k, v in best.items()],
                "linear net": [{"final loss, median": fmt(float(np.median(linear_losses))),
                                "final loss, max - min": fmt(float(np.ptp(linear_losses)))}]},
        notes=(
            f"{np.mean(finite > 0.1):.0%} of the sigmoid runs end above loss 0.1 (a plateau or a poor minimum); the "
            "best of several restarts avoids them. Full-batch gradient descent is deterministic: the same start "
            "gives bit-identical weights."
        ),
        setting=f"{runs} restarts (init seeds)",
        seeds=runs,
    )


def _correlations(sigma_w2: float, sigma_b2: float, depth: int, width: int, c0: float, seed: int,
                  input_q: float) -> np.ndarray:
    """Cosine of two inputs' pre-activations at each of ``depth`` tanh layers of one random network.

    Weights N(0, sigma_w2 / width), biases N(0, sigma_b2), drawn layer by layer (float64); the inputs have
    per-unit second moment ``input_q`` and correlation ``c0``.
    """
    generator = derive_generator(seed, f"claim16/{sigma_w2}")
    z = torch.randn(2, width, generator=generator, dtype=torch.float64) * math.sqrt(input_q)
    hidden = torch.stack([z[0], c0 * z[0] + math.sqrt(1 - c0**2) * z[1]])
    values = []
    for layer in range(depth):
        w = torch.randn(width, width, generator=generator, dtype=torch.float64) * math.sqrt(sigma_w2 / width)
        b = torch.randn(width, generator=generator, dtype=torch.float64) * math.sqrt(sigma_b2)
        hidden = (hidden if layer == 0 else torch.tanh(hidden)) @ w.T + b
        values.append(float(torch.nn.functional.cosine_similarity(hidden[0], hidden[1], dim=0)))
    return np.asarray(values)


ORDERED_SIGMA_W2 = (0.8, 1.2)
CHAOTIC_SIGMA_W2 = (2.5, 4.0)
SIGMA_B2 = 0.05


def _constant_init_cosine(width: int, seed: int) -> float:
    """Cosine of two random positive inputs after 4 layers whose weights are all 0.01 (biases 0)."""
    constant = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(4)]).double()
    for module in constant:
        assert isinstance(module, torch.nn.Linear)
        torch.nn.init.constant_(module.weight, 0.01)
        torch.nn.init.zeros_(module.bias)
    pair = torch.randn(2, width, generator=derive_generator(seed, "claim16/constant"), dtype=torch.float64).abs()
    with torch.no_grad():
        last = constant(pair)
    return float(torch.nn.functional.cosine_similarity(last[0], last[1], dim=0))


@claim(
    "16",
    title="Random weights keep distinct inputs distinct through depth",
    statement=(
        "Random Gaussian weights keep distinct inputs distinct through depth (the correlation between two inputs' "
        "representations stays below 1), while a constant init maps all inputs to one representation."
    ),
    references=(
        "Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli 2016, 'Exponential expressivity in deep neural networks "
        "through transient chaos'",
        "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, 'Deep information propagation'",
    ),
    hypothesis=(
        "In deep tanh networks with W ~ N(0, sigma_w^2/n), b ~ N(0, 0.05), the correlation of two inputs follows "
        "the mean-field correlation map layer by layer: above the critical sigma_w^2 (1.761) it settles at a "
        "fixed point c* < 1 (inputs stay distinct); below it c* = 1 (they merge)."
    ),
    rules=(
        Rule("chaotic", "largest last-layer correlation over the chaotic points (sigma_w^2 = 2.5, 4)", "<", 0.9),
        Rule("prediction", "mean |measured - predicted| correlation over layers and the four sigma_w^2, in units "
             "of 1/sqrt(width x networks)", "<", 3.0,
             why="a cosine of two width-n vectors fluctuates by about 1/sqrt(n) per network; the mean of k networks "
                 "by 1/sqrt(n k)"),
        Rule("ordered", "smallest last-layer correlation over the ordered points (sigma_w^2 = 0.8, 1.2)", ">", 0.99,
             role="control",
             predicts="below the critical line the same theory gives c* = 1: there the random weights do not keep "
                      "inputs distinct, they merge them"),
        Rule("constant", "last-layer correlation of two inputs, constant init", "in", (1 - 1e-9, 1 + 1e-9),
             role="demonstration", why="every unit computes the same number"),
    ),
    order=16,
)
def distinct_inputs(ctx: Context) -> Outcome:
    from initlab.theory import MeanField

    depth = ctx.pick(30, 50)
    width = ctx.pick(300, 500)
    networks = ctx.seeds()
    c0 = 0.5
    measured: dict[float, np.ndarray] = {}
    predicted: dict[float, np.ndarray] = {}
    fields = {}
    for sigma_w2 in ORDERED_SIGMA_W2 + CHAOTIC_SIGMA_W2:
        field = MeanField("tanh", sigma_w2=sigma_w2, sigma_b2=SIGMA_B2)
        fields[sigma_w2] = field
        # inputs scaled so the first pre-activations already have variance q*: the c-map at q* then predicts
        # every layer, from c1 = (sigma_w2 q_x c0 + sigma_b2) / q*
        input_q = (field.q_star - SIGMA_B2) / sigma_w2
        measured[sigma_w2] = np.stack([_correlations(sigma_w2, SIGMA_B2, depth, width, c0, seed, input_q)
                                       for seed in networks])
        curve = [(sigma_w2 * input_q * c0 + SIGMA_B2) / field.q_star]
        for _ in range(depth - 1):
            curve.append(float(field.c_map(curve[-1])))
        predicted[sigma_w2] = np.asarray(curve)
    grid = list(measured)
    stacked = np.stack([measured[s] for s in grid], axis=1)  # (networks, points, layers)
    prediction = np.stack([predicted[s] for s in grid])  # (points, layers)
    unit = math.sqrt(width * len(networks))  # deviations in units of 1/sqrt(width x networks)
    chaotic_index = [grid.index(s) for s in CHAOTIC_SIGMA_W2]
    ordered_index = [grid.index(s) for s in ORDERED_SIGMA_W2]

    constant_cosine = _constant_init_cosine(width, ctx.seed)

    fig, axes = figure(width=5.5)
    layers = np.arange(1, depth + 1)
    for index, sigma_w2 in enumerate(grid):
        mean = measured[sigma_w2].mean(axis=0)
        axes[0][0].plot(layers, mean, "o", ms=3, color=f"C{index}",
                        label=f"sigma_w^2 = {sigma_w2:g} ({fields[sigma_w2].phase}), measured")
        axes[0][0].plot(layers, predicted[sigma_w2], "-", color=f"C{index}", lw=1)
    axes[0][0].set_xlabel("layer")
    axes[0][0].set_ylabel("correlation of the two inputs (lines: mean-field)")
    axes[0][0].set_ylim(0, 1.05)
    axes[0][0].legend()
    return Outcome(
        measurement=(
            f"cosine similarity of two inputs (start {c0}) through {depth} tanh layers of width {width}, "
            f"W ~ N(0, sigma_w^2/n), b ~ N(0, {SIGMA_B2}), one value per random network; mean-field c-map from "
            "initlab.theory.MeanField; a 4-layer constant-init net for contrast"
        ),
        values={
            "chaotic": _stats.bootstrap(lambda a: a[..., -1].mean(axis=1)[:, chaotic_index].max(axis=-1), stacked,
                                        what="networks"),
            "prediction": _stats.bootstrap(lambda a: np.abs(a.mean(axis=1) - prediction).mean(axis=(-2, -1)) * unit,
                                           stacked, what="networks"),
            "ordered": _stats.bootstrap(lambda a: a[..., -1].mean(axis=1)[:, ordered_index].min(axis=-1), stacked,
                                        what="networks"),
            "constant": _stats.exact(constant_cosine),
        },
        figures=[ctx.save_figure(fig, "correlation")],
        tables={"fixed points": [
            {"sigma_w^2": s, "q*": fmt(f.q_star), "c*": fmt(f.c_star), "chi1": fmt(f.chi1), "phase": f.phase,
             f"measured, layer {depth}": fmt(float(measured[s][:, -1].mean())),
             f"predicted, layer {depth}": fmt(float(predicted[s][-1]))}
            for s, f in fields.items()
        ]},
        notes=(
            "In the chaotic phase (chi1 > 1) the correlation settles at c* < 1: the inputs stay apart. In the "
            "ordered phase (chi1 < 1) it creeps to 1: random weights alone do not guarantee separation; their "
            "scale decides it. A constant init gives every unit the same value, so all inputs map to multiples of "
            "one vector."
        ),
        setting=f"{len(networks)} networks per sigma_w^2, float64",
        seeds=len(networks),
    )
