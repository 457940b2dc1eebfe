"""Small networks for the claims: S independent MLPs stacked on a leading axis, and their training loop.

Every slice of a :class:`StackedMLP` is a separate network (its own init,
seed, learning rate and dropout masks); one forward pass evaluates all of
them with batched matrix products, so comparing eight inits over four seeds
costs little more than training one network. The per-slice losses are
summed before ``backward``: slices share no parameter, so each gets exactly
the gradient it would get alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from initlab.rng import derive_seed
from initlab.schemes import Initializer, zeros

__all__ = [
    "ACTIVATIONS",
    "InitSpec",
    "StackedMLP",
    "TrainLog",
    "train_stacked",
    "digits",
    "seeded_generator",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "linear": lambda t: t,
}

WeightFill = Callable[[tuple[int, int], torch.Generator, torch.dtype], torch.Tensor]


def seeded_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded from (seed, name), so each layer's stream is independent."""
    return torch.Generator().manual_seed(derive_seed(seed, name))


@dataclass(frozen=True)
class InitSpec:
    """How one slice is initialised: a scheme per weight matrix and one for the biases.

    ``weights`` is one scheme for every layer, or one per layer (a scheme may
    also be a function ``(shape, generator, dtype) -> tensor``); ``output``
    overrides the last layer's scheme.
    """

    label: str
    weights: Initializer | WeightFill | Sequence[Initializer | WeightFill]
    biases: Initializer | WeightFill = field(default_factory=zeros)
    output: Initializer | WeightFill | None = None

    def weight_scheme(self, layer: int, n_layers: int) -> Initializer | WeightFill:
        if self.output is not None and layer == n_layers - 1:
            return self.output
        if isinstance(self.weights, Sequence):
            if len(self.weights) != n_layers:
                raise ValueError(
                    f"InitSpec {self.label!r}: weights lists {len(self.weights)} schemes for {n_layers} layers"
                )
            return self.weights[layer]
        return self.weights


def _draw(
    scheme: Initializer | WeightFill,
    shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype,
    layout: str,
) -> torch.Tensor:
    if isinstance(scheme, Initializer):
        return scheme.sample(shape, layout=layout, dtype=dtype, generator=generator)
    return scheme(shape, generator, dtype)  # type: ignore[arg-type]


class StackedMLP(nn.Module):
    """``slices`` independent MLPs with layer widths ``widths`` (input first, output last).

    Hidden layers apply ``activation`` (tanh, relu, sigmoid or linear), then
    optional batch normalisation (over the batch, per slice; the statistics of
    the batch being evaluated are used in training and evaluation alike) and
    dropout. The output layer is linear (logits).
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: str,
        slices: int,
        *,
        batchnorm: bool = False,
        dropout: float = 0.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if len(widths) < 2 or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must list at least two positive sizes, got {list(widths)!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.widths = [int(w) for w in widths]
        self.activation = activation
        self.slices = int(slices)
        self.batchnorm = batchnorm
        self.dropout = float(dropout)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(slices, fan_out, fan_in, dtype=dtype))
            for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(slices, fan_out, dtype=dtype)) for fan_out in self.widths[1:]
        )
        hidden = self.widths[1:-1]
        self.bn_scale = nn.ParameterList(
            nn.Parameter(torch.ones(slices, 1, width, dtype=dtype)) for width in (hidden if batchnorm else [])
        )
        self.bn_shift = nn.ParameterList(
            nn.Parameter(torch.zeros(slices, 1, width, dtype=dtype)) for width in (hidden if batchnorm else [])
        )

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def initialize(self, specs: Sequence[InitSpec], seeds: Sequence[int]) -> None:
        """Slice s gets ``specs[s]`` drawn with ``seeds[s]`` (same spec and seed: same values)."""
        if len(specs) != self.slices or len(seeds) != self.slices:
            raise ValueError(
                f"initialize needs one spec and one seed per slice ({self.slices}), got {len(specs)} and {len(seeds)}"
            )
        dtype = self.weights[0].dtype
        with torch.no_grad():
            for index, (spec, seed) in enumerate(zip(specs, seeds)):
                for layer in range(self.n_layers):
                    weight = self.weights[layer]
                    shape = tuple(weight.shape[1:])
                    scheme = spec.weight_scheme(layer, self.n_layers)
                    generator = seeded_generator(seed, f"{spec.label}/layer{layer}/weight")
                    weight[index].copy_(_draw(scheme, shape, generator, dtype, "linear"))
                    bias_generator = seeded_generator(seed, f"{spec.label}/layer{layer}/bias")
                    self.biases[layer][index].copy_(
                        _draw(spec.biases, (shape[0],), bias_generator, dtype, "vector")
                    )

    def forward(self, x: torch.Tensor, *, keep: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits of shape (slices, batch, classes); ``x`` is (batch, features) or (slices, batch, features).

        With ``keep`` a list, the pre-activations of every layer are appended to it.
        """
        hidden = x
        act = ACTIVATIONS[self.activation]
        for layer in range(self.n_layers):
            weight, bias = self.weights[layer], self.biases[layer]
            pre = torch.matmul(hidden, weight.transpose(1, 2)) + bias.unsqueeze(1)
            if keep is not None:
                keep.append(pre)
            if layer == self.n_layers - 1:
                return pre
            hidden = act(pre)
            if self.batchnorm:
                mean = hidden.mean(dim=1, keepdim=True)
                var = hidden.var(dim=1, unbiased=False, keepdim=True)
                hidden = (hidden - mean) / torch.sqrt(var + 1e-5) * self.bn_scale[layer] + self.bn_shift[layer]
            if self.dropout > 0 and self.training:
                hidden = F.dropout(hidden, self.dropout, training=True)
        raise AssertionError("unreachable")


def per_slice_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss of each slice, shape (slices,)."""
    slices, batch = logits.shape[:2]
    if loss == "ce":
        values = F.cross_entropy(
            logits.reshape(slices * batch, -1), targets.repeat(slices), reduction="none"
        )
        return values.view(slices, batch).mean(dim=1)
    if loss == "bce":
        expanded = targets.to(logits.dtype).view(1, batch).expand(slices, batch)
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), expanded, reduction="none").mean(dim=1)
    if loss == "sigmoid_mse":
        one_hot = F.one_hot(targets, logits.shape[-1]).to(logits.dtype).unsqueeze(0)
        return ((torch.sigmoid(logits) - one_hot) ** 2).mean(dim=(1, 2))
    if loss == "mse":
        expanded = targets.to(logits.dtype).view(1, batch, -1).expand_as(logits)
        return ((logits - expanded) ** 2).mean(dim=(1, 2))
    raise ValueError(f"loss must be 'ce', 'bce', 'mse' or 'sigmoid_mse', got {loss!r}")


def per_slice_accuracy(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> np.ndarray:
    """Fraction of correct predictions per slice (NaN logits count as wrong)."""
    with torch.no_grad():
        if loss == "bce":
            predictions = (logits.squeeze(-1) > 0).long()
        else:
            predictions = torch.nan_to_num(logits, nan=-math.inf).argmax(dim=-1)
        finite = torch.isfinite(logits).all(dim=-1)
        correct = (predictions == targets.view(1, -1)) & finite
        return correct.double().mean(dim=1).numpy()


@dataclass
class TrainLog:
    """Per-slice history of a stacked training run."""

    steps: list[int]
    losses: np.ndarray  # (records, slices): training loss on the batch of that step
    train_loss: np.ndarray  # (slices,) full training set, after training
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray | None
    seconds: float

    def first_step_below(self, threshold: float) -> np.ndarray:
        """For each slice, the first recorded step whose loss is below ``threshold`` (inf: never)."""
        result = np.full(self.losses.shape[1], np.inf)
        for slice_index in range(self.losses.shape[1]):
            below = np.nonzero(self.losses[:, slice_index] < threshold)[0]
            if below.size:
                result[slice_index] = self.steps[below[0]]
        return result


def train_stacked(
    model: StackedMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float | Sequence[float] | torch.Tensor,
    loss: str = "ce",
    batch_size: int | None = None,
    seed: int = 0,
    record_every: int = 1,
    layer_lr: Sequence[float] | None = None,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    momentum: float = 0.0,
) -> TrainLog:
    """Plain (mini-batch) SGD on every slice at once.

    ``lr`` is one rate or one per slice; ``layer_lr`` multiplies it per layer
    (weights and biases of that layer). ``batch_size=None`` is full-batch
    gradient descent. Slices that diverge keep NaN values; the others go on.
    """
    import time

    started = time.perf_counter()
    slices = model.slices
    dtype = model.weights[0].dtype
    rates = torch.as_tensor(lr, dtype=dtype).reshape(-1)
    if rates.numel() == 1:
        rates = rates.expand(slices)
    if rates.numel() != slices:
        raise ValueError(f"lr lists {rates.numel()} rates for {slices} slices")
    n_layers = model.n_layers
    multipliers = list(layer_lr) if layer_lr is not None else [1.0] * n_layers
    if len(multipliers) != n_layers:
        raise ValueError(f"layer_lr lists {len(multipliers)} factors for {n_layers} layers")
    groups: list[tuple[nn.Parameter, float]] = []
    for layer in range(n_layers):
        groups.append((model.weights[layer], multipliers[layer]))
        groups.append((model.biases[layer], multipliers[layer]))
    for scale, shift in zip(model.bn_scale, model.bn_shift):
        groups.append((scale, 1.0))
        groups.append((shift, 1.0))
    velocity = [torch.zeros_like(p) for p, _ in groups]
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    record_steps: list[int] = []
    records: list[np.ndarray] = []
    model.train()
    for step in range(steps):
        if batch_size is None or batch_size >= n:
            batch_x, batch_y = x, y
        else:
            rows = torch.randint(0, n, (batch_size,), generator=generator)
            batch_x, batch_y = x[rows], y[rows]
        losses = per_slice_loss(model(batch_x), batch_y, loss)
        if step % record_every == 0:
            record_steps.append(step)
            records.append(losses.detach().double().numpy().copy())
        gradients = torch.autograd.grad(losses.sum(), [p for p, _ in groups], allow_unused=True)
        with torch.no_grad():
            for index, ((parameter, factor), gradient) in enumerate(zip(groups, gradients)):
                if gradient is None:
                    continue
                rate = (rates * factor).view(-1, *([1] * (parameter.dim() - 1)))
                step_direction = gradient
                if momentum:
                    velocity[index].mul_(momentum).add_(gradient)
                    step_direction = velocity[index]
                parameter.sub_(rate * step_direction)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        final_loss = per_slice_loss(logits, y, loss).double().numpy()
        train_accuracy = per_slice_accuracy(logits, y, loss)
        test_accuracy = None
        if x_test is not None and y_test is not None:
            test_accuracy = per_slice_accuracy(model(x_test), y_test, loss)
    record_steps.append(steps)
    records.append(final_loss.copy())
    return TrainLog(
        steps=record_steps,
        losses=np.stack(records),
        train_loss=final_loss,
        train_accuracy=train_accuracy,
        test_accuracy=test_accuracy,
        seconds=time.perf_counter() - started,
    )


_DIGITS_CACHE: dict[tuple[int, int | None], tuple[torch.Tensor, ...]] = {}


def digits(seed: int = 0, n_train: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 handwritten digits, standardised: (x_train, y_train, x_test, y_test).

    Loaded with :func:`initlab.lab.data.load_dataset`; ``n_train`` keeps a
    fixed subset of the training split (the first rows of a seeded permutation).
    """
    key = (seed, n_train)
    if key not in _DIGITS_CACHE:
        from initlab.lab.data import load_dataset

        dataset = load_dataset("digits", seed=seed)
        x_train, y_train = dataset.x_train.float(), dataset.y_train.long()
        if n_train is not None and n_train < x_train.shape[0]:
            order = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(seed))[:n_train]
            x_train, y_train = x_train[order], y_train[order]
        _DIGITS_CACHE[key] = (x_train, y_train, dataset.x_test.float(), dataset.y_test.long())
    x_train, y_train, x_test, y_test = _DIGITS_CACHE[key]
    return x_train, y_train, x_test, y_test
