"""What the claim modules share: per-seed data sets, arms trained through the lab's seed-batched trainer, figures.

A training claim compares *arms* (inits, or settings) over seeds. Seed ``s``
fixes the train/test split (``load_dataset(name, seed=s)``), the minibatch
order (the trainer's stream derived from ``s``) and the init (each
parameter's stream derived from ``s`` and its name), so arm A and arm B of
seed ``s`` share everything they do not differ in: differences are paired
by seed. Every (arm, seed) model is trained in one call of
:func:`initlab.lab.batched.train_stacked`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.lab.data import Dataset, load_dataset
from initlab.lab.trainer import RunResult
from initlab.rng import derive_seed

__all__ = ["Arm", "ArmRuns", "dataset", "train_arms", "finals", "figure", "fmt", "curve_band", "loss_table", "mean_text",
           "hidden_linears", "output_linear", "plot_losses"]

# an init: a plan string for initlab.init_model, or a callable (model, seed) -> None
InitLike = str | Callable[[nn.Module, int], Any]
ModelLike = str | Callable[[Dataset], nn.Module]


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment: a label, the model, its init, and (optionally) its own learning rate."""

    label: str
    init: InitLike
    model: ModelLike | None = None  # None: the experiment's shared model
    lr: float | None = None


@functools.lru_cache(maxsize=64)
def _cached_dataset(name: str, seed: int, options: tuple[tuple[str, Any], ...]) -> Dataset:
    return load_dataset(name, seed=seed, **dict(options))


def dataset(name: str, seed: int, **options: Any) -> Dataset:
    """``load_dataset(name, seed=seed, **options)``, cached: the split of seed ``seed`` (shared, never mutated)."""
    return _cached_dataset(name, seed, tuple(sorted(options.items())))


def build(model: ModelLike, data: Dataset) -> nn.Module:
    """A fresh model: a lab spec string, or a factory called with the data set."""
    if isinstance(model, str):
        from initlab.lab.models import build_model

        return build_model(model, data.input_shape, data.num_classes)
    return model(data)


def initialize(model: nn.Module, init: InitLike, seed: int) -> None:
    """Apply a plan (``initlab.init_model(model, plan=init, seed=seed)``) or a callable ``init(model, seed)``."""
    if callable(init):
        init(model, seed)
        return
    from initlab.plan import init_model

    init_model(model, plan=init, seed=seed)


class ArmRuns(dict[str, list[RunResult]]):
    """Run results by arm label (in seed order), with the trained models beside them in ``models``."""

    def __init__(self, results: dict[str, list[RunResult]], models: dict[str, list[nn.Module]]) -> None:
        super().__init__(results)
        self.models = models


def train_arms(
    model: ModelLike,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    *,
    data: str = "digits",
    data_options: dict[str, Any] | None = None,
    splits: Sequence[Dataset] | None = None,
    dtype: torch.dtype = torch.float32,
    lr: float = 0.1,
    **train_options: Any,
) -> ArmRuns:
    """Train every (arm, seed) pair in one seed-batched run; results by arm label, in seed order.

    Seed ``s`` gives each arm the split of ``load_dataset(data, seed=s)`` (or
    ``splits[i]`` for the i-th seed when given), the minibatch order of seed
    ``s`` and the init drawn with seed ``s``. The seed-batched trainer draws
    dropout masks from torch's global generator (one ``vmap`` over every
    model), so training runs under a global generator seeded from the seeds
    and restored afterwards: the result does not depend on what ran before in
    the process. Everything else is seeded explicitly (the inits, and
    :func:`initlab.datainit.layerwise_pretrain` through its ``seed``).
    ``train_options`` go to :func:`initlab.lab.batched.train_stacked`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(int(seeds[0]) if seeds else 0, f"claims/{len(seeds)}/{len(arms)}"))
        return _train_arms(model, arms, seeds, data=data, data_options=data_options, splits=splits, dtype=dtype,
                           lr=lr, **train_options)


def _train_arms(
    model: ModelLike,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    *,
    data: str,
    data_options: dict[str, Any] | None,
    splits: Sequence[Dataset] | None,
    dtype: torch.dtype,
    lr: float,
    **train_options: Any,
) -> ArmRuns:
    from initlab.lab.batched import train_stacked

    if splits is None:
        splits = [dataset(data, seed, **(data_options or {})) for seed in seeds]
    elif len(splits) != len(seeds):
        raise ValueError(f"train_arms: {len(splits)} splits for {len(seeds)} seeds")
    models, datasets, model_seeds, rates = [], [], [], []
    for arm in arms:
        for seed, split in zip(seeds, splits):
            network = build(arm.model if arm.model is not None else model, split).to(dtype)
            initialize(network, arm.init, seed)
            models.append(network)
            datasets.append(split)
            model_seeds.append(seed)
            rates.append(arm.lr if arm.lr is not None else lr)
    per_model_lr = rates if len(set(rates)) > 1 else rates[0]
    results = train_stacked(models, datasets if len(seeds) > 1 else splits[0], model_seeds, lr=per_model_lr,
                            **train_options)
    count = len(seeds)
    return ArmRuns({arm.label: results[index * count:(index + 1) * count] for index, arm in enumerate(arms)},
                   {arm.label: models[index * count:(index + 1) * count] for index, arm in enumerate(arms)})


def hidden_linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear layer of each hidden block of a lab MLP, in order."""
    blocks = getattr(model, "hidden", None)
    layers = [getattr(block, "linear", None) for block in (blocks if isinstance(blocks, nn.ModuleList) else [])]
    if not layers or not all(isinstance(layer, nn.Linear) for layer in layers):
        raise TypeError(f"expected a lab MLP with Linear hidden layers, got {type(model).__name__}")
    return layers  # type: ignore[return-value]


def output_linear(model: nn.Module) -> nn.Linear:
    """The Linear output layer of a lab model."""
    layer = getattr(model, "output", None)
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"expected a lab model with a Linear output layer, got {type(model).__name__}")
    return layer


def finals(results: Sequence[RunResult], key: str, *, diverged: float = math.nan) -> np.ndarray:
    """``result.final[key]`` of each run; a run that diverged counts as ``diverged``."""
    values = [result.final[key] if result.status != "diverged" else diverged for result in results]
    return np.asarray(values, dtype=np.float64)


def loss_table(results: Sequence[RunResult], *, cap: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses (runs, steps)) of the logged training losses; diverged runs are padded with ``cap``."""
    steps = np.asarray([row["step"] for row in max(results, key=lambda r: len(r.history)).history])
    table = np.full((len(results), steps.size), cap, dtype=np.float64)
    for index, result in enumerate(results):
        losses = np.asarray([row["loss"] for row in result.history], dtype=np.float64)
        losses = np.where(np.isfinite(losses), losses, cap)
        table[index, : losses.size] = losses
    return steps, table


def first_step_below(steps: np.ndarray, losses: np.ndarray, threshold: float, window: int = 1) -> np.ndarray:
    """For each run (row), the first logged step whose running mean over ``window`` logs is below ``threshold``.

    Runs that never get there give ``inf``.
    """
    if window > 1:
        kernel = np.ones(window) / window
        smooth = np.stack([np.convolve(row, kernel, mode="valid") for row in losses])
        steps = steps[window - 1:]
    else:
        smooth = losses
    first = np.full(losses.shape[0], np.inf)
    for index, row in enumerate(smooth):
        below = np.nonzero(row < threshold)[0]
        if below.size:
            first[index] = steps[below[0]]
    return first


def curve_band(axis: Any, steps: np.ndarray, table: np.ndarray, label: str, color: str) -> None:
    """Median over seeds as a line, min-max over seeds as a band."""
    axis.plot(steps, np.median(table, axis=0), color=color, lw=1.4, label=label)
    axis.fill_between(steps, table.min(axis=0), table.max(axis=0), color=color, alpha=0.2, lw=0)


def plot_losses(
    axis: Any,
    runs: dict[str, list[RunResult]],
    *,
    xlabel: str = "SGD step",
    ylabel: str = "training loss (batch)",
    clip: float | None = None,
    suffix: str = "",
) -> None:
    """One median line and min-max band per arm of the logged training losses, with labelled axes.

    ``clip`` caps the losses (and diverged runs) at that value on a log axis.
    """
    for index, (label, results) in enumerate(runs.items()):
        steps, table = loss_table(results, cap=clip if clip is not None else math.inf)
        if clip is not None:
            table = np.clip(table, 1.0 / clip, clip)
        curve_band(axis, steps, table, f"{label}{suffix}", f"C{index}")
    if clip is not None:
        axis.set_yscale("log")
        ylabel = f"{ylabel}, clipped to {clip:g}"
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend()


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.4, height: float = 3.3, **kwargs: Any) -> Any:
    """A matplotlib figure and axes grid on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    return fig, axes


def fmt(value: float, digits: int = 3) -> str:
    """A number for a table cell."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"


def mean_text(values: np.ndarray | Sequence[float], digits: int = 3) -> str:
    """``mean ± sd (n)`` of per-seed values, for tables."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 1:
        return f"{array[0]:.{digits}f}"
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1):.{digits}f} (n={array.size})"
