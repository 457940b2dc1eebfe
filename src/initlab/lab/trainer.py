"""The lab's training loop: one model, one data set, plain SGD by default.

SGD is the default so that what an initialization does is not hidden by an
adaptive optimizer; Adam is one argument away. Every step logs the training
loss and accuracy of the batch it trained on (measured in that step's forward
pass, before the update); the test set is evaluated every ``eval_every``
steps and at the end. A loss that becomes NaN/inf (or exceeds
``diverge_loss``) ends the run with status ``"diverged"``; a run whose final
training loss is not at least ``stall_tolerance`` (5 %) below its first loss
ends ``"stalled"``; otherwise ``"ok"``.

The run is a pure function of (model, data set, options, seed): the
minibatch order comes from a generator derived from ``(seed, "lab.batches")``
and dropout from one derived from ``(seed, "lab.dropout")``; the global torch
RNG is left as it was.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.lab.data import Dataset
from initlab.rng import derive_generator, derive_seed
from initlab.rng.checks import check_choice, check_int, check_number, check_seed
from initlab.rng.deprecation import warn_deprecated

__all__ = [
    "RunResult",
    "TrainConfig",
    "train",
    "make_optimizer",
    "batch_order",
    "batch_orders",
    "run_status",
    "OPTIMIZERS",
    "STATUSES",
    "LOSSES",
    "per_example_loss",
]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
STATUSES = ("ok", "diverged", "stalled")
# cross_entropy: softmax cross-entropy of the logits; sigmoid_mse: mean over classes of
# (sigmoid(logit) - one_hot)^2, the squared error of logistic output units (Rumelhart et al. 1986)
LOSSES = ("cross_entropy", "sigmoid_mse")
_DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 1e-3, "adamw": 1e-3}
NAN = float("nan")


@dataclass(frozen=True)
class TrainConfig:
    """Validated training options shared by the one-model and the seed-batched trainers."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    steps: int = 100
    batch_size: int | None = None
    steps_per_epoch: int = 1
    log_every: int = 1
    eval_every: int = 1
    stall_tolerance: float = 0.05
    diverge_loss: float = 1e4
    loss: str = "cross_entropy"

    @classmethod
    def make(
        cls,
        num_train: int,
        *,
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float | None = None,
        weight_decay: float = 0.0,
        steps: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        log_every: int = 1,
        eval_every: int | None = None,
        stall_tolerance: float = 0.05,
        diverge_loss: float = 1e4,
        loss: str = "cross_entropy",
    ) -> TrainConfig:
        """Check every option (ValueError/TypeError naming it) and resolve the defaults."""
        check_choice("loss", loss, LOSSES)
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        optimizer = optimizer.lower()
        lr = _DEFAULT_LR[optimizer] if lr is None else check_number("lr", lr, minimum=0.0, strict=True)
        if momentum is None:
            momentum = 0.9 if optimizer in ("momentum", "nesterov") else 0.0
        momentum = check_number("momentum", momentum, minimum=0.0)
        if optimizer in ("adam", "adamw") and momentum:
            raise ValueError(f"momentum is for SGD; {optimizer} takes none, got momentum={momentum}")
        weight_decay = check_number("weight_decay", weight_decay, minimum=0.0)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        effective_batch = num_train if batch_size is None else min(batch_size, num_train)
        steps_per_epoch = math.ceil(num_train / effective_batch)
        if steps is not None and epochs is not None:
            raise ValueError(f"give steps or epochs, not both (got steps={steps}, epochs={epochs})")
        if steps is None:
            epochs = 10 if epochs is None else check_int("epochs", epochs, minimum=1)
            steps = epochs * steps_per_epoch
        steps = check_int("steps", steps, minimum=1)
        log_every = check_int("log_every", log_every, minimum=1)
        eval_every = steps_per_epoch if eval_every is None else check_int("eval_every", eval_every, minimum=1)
        if not 0.0 <= stall_tolerance < 1.0:
            raise ValueError(f"stall_tolerance must be in [0, 1), got {stall_tolerance}")
        diverge_loss = check_number("diverge_loss", diverge_loss, minimum=0.0, strict=True)
        return cls(
            optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, steps=steps,
            batch_size=None if batch_size is None or batch_size >= num_train else batch_size,
            steps_per_epoch=steps_per_epoch, log_every=log_every, eval_every=eval_every,
            stall_tolerance=float(stall_tolerance), diverge_loss=diverge_loss, loss=loss,
        )

    def logged(self, step: int) -> bool:
        """Whether ``step`` (1-based) gets a history row: logged, first, last or evaluated steps."""
        return step % self.log_every == 0 or step == 1 or step == self.steps or self.evaluated(step)

    def evaluated(self, step: int) -> bool:
        """Whether the test set is evaluated after ``step``."""
        return step % self.eval_every == 0 or step == self.steps


@dataclass
class RunResult:
    """What one training run produced.

    ``history``: one dict per logged step with ``step`` (1-based), ``epoch``,
    ``loss`` and ``accuracy`` (of that step's training batch, before the
    update), ``test_loss`` and ``test_accuracy`` (after the update; NaN at
    steps where the test set was not evaluated). ``final``: ``train_loss``,
    ``train_accuracy`` (whole training set), ``test_loss``, ``test_accuracy``
    after the last step (NaN if diverged). ``info``: the run's identity and
    options (init, seed, optimizer, lr, ...). ``probe``: the
    ``initlab.probe.ProbeReport`` of the run when probing was asked for.
    """

    status: str
    history: list[dict[str, float]]
    final: dict[str, float]
    steps: int
    wall_time: float
    diverged_at: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    probe: Any = None

    @property
    def losses(self) -> list[float]:
        """Training loss of every logged step."""
        return [row["loss"] for row in self.history]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (probe reports as their own ``to_dict()``)."""
        return {
            "status": self.status,
            "steps": self.steps,
            "wall_time": self.wall_time,
            "diverged_at": self.diverged_at,
            "final": dict(self.final),
            "info": dict(self.info),
            "history": [dict(row) for row in self.history],
            "probe": self.probe.to_dict() if hasattr(self.probe, "to_dict") else self.probe,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of :meth:`to_dict` (probe reports stay dicts)."""
        return cls(
            status=data["status"], history=[dict(r) for r in data["history"]], final=dict(data["final"]),
            steps=int(data["steps"]), wall_time=float(data["wall_time"]), diverged_at=data.get("diverged_at"),
            info=dict(data.get("info", {})), probe=data.get("probe"),
        )


# ---------------------------------------------------------------- pieces shared with batched training


def make_optimizer(params: Any, config: TrainConfig, *, foreach: bool | None = None) -> torch.optim.Optimizer:
    """The torch optimizer named by ``config`` over ``params`` (``foreach``: torch's multi-tensor kernels)."""
    if config.optimizer in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.optimizer == "nesterov", foreach=foreach,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, foreach=foreach)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=foreach)


def batch_order(num_train: int, config: TrainConfig, seed: int) -> Iterator[torch.Tensor | None]:
    """Row indices of each step's minibatch (None for full batch), epoch by epoch.

    Each epoch is a fresh permutation from the generator derived from
    ``(seed, "lab.batches")``; the last batch of an epoch may be smaller.
    """
    for rows in batch_orders(num_train, config, [seed]):
        yield None if rows is None else rows[0]


def batch_orders(num_train: int, config: TrainConfig, seeds: Sequence[int]) -> Iterator[torch.Tensor | None]:
    """:func:`batch_order` of every seed at once: an ``(len(seeds), rows)`` index tensor per step."""
    if config.batch_size is None:
        for _ in range(config.steps):
            yield None
        return
    generators = [derive_generator(seed, "lab.batches") for seed in seeds]
    done = 0
    while done < config.steps:
        permutations = torch.stack([torch.randperm(num_train, generator=g) for g in generators])
        for start in range(0, num_train, config.batch_size):
            if done == config.steps:
                return
            yield permutations[:, start : start + config.batch_size]
            done += 1


def run_status(first_loss: float, final_loss: float, diverged: bool, config: TrainConfig) -> str:
    """``diverged``, ``stalled`` (final loss > (1 - stall_tolerance) * first loss) or ``ok``."""
    if diverged:
        return "diverged"
    if not final_loss < (1.0 - config.stall_tolerance) * first_loss:
        return "stalled"
    return "ok"


def is_divergent(loss: float, config: TrainConfig) -> bool:
    """Whether a loss value ends a run: NaN, inf, or above ``config.diverge_loss``."""
    return not math.isfinite(loss) or loss > config.diverge_loss


def per_example_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str = "cross_entropy") -> torch.Tensor:
    """The loss of every example: ``logits`` ``(..., classes)``, integer ``targets`` of shape ``logits.shape[:-1]``.

    ``cross_entropy``: -log softmax(logits)[target]. ``sigmoid_mse``: mean over
    classes of (sigmoid(logit) - one_hot(target))^2.
    """
    if loss == "cross_entropy":
        flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return flat.view(targets.shape)
    if loss == "sigmoid_mse":
        one_hot = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
        return (torch.sigmoid(logits) - one_hot).square().mean(dim=-1)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy"
) -> tuple[float, float]:
    """(mean ``loss``, accuracy) of ``model`` in eval mode on (x, y); the mode is restored."""
    was_training = model.training
    model.eval()
    try:
        logits = model(x)
        loss_value = per_example_loss(logits, y, loss).mean().item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    finally:
        model.train(was_training)
    return loss_value, accuracy


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def input_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the inputs are cast to: that of the model's first floating parameter (float32 if none)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


# ---------------------------------------------------------------- the loop


def train(
    model: nn.Module,
    dataset: Dataset,
    *,
    seed: int = 0,
    probe_every: int | None = None,
    info: dict[str, Any] | None = None,
    on_step: Callable[[int], None] | None = None,
    **options: Any,
) -> RunResult:
    """Train ``model`` in place on ``dataset`` with ``loss`` (cross-entropy); return a :class:`RunResult`.

    ``options`` are the fields of :class:`TrainConfig`, checked by
    :meth:`TrainConfig.make`: ``optimizer`` ``sgd`` (default; lr 0.1, no
    momentum), ``momentum`` / ``nesterov`` (SGD with momentum 0.9; lr 0.05),
    ``adam``, ``adamw`` (lr 1e-3); ``lr``, ``momentum``, ``weight_decay``;
    ``steps`` or ``epochs`` (default 10 epochs); ``batch_size`` (None: full
    batch); ``log_every``, ``eval_every``, ``stall_tolerance``,
    ``diverge_loss``; ``loss``: ``cross_entropy`` or ``sigmoid_mse`` (see
    :func:`per_example_loss`). ``seed`` orders the minibatches. ``probe_every=N`` runs the training
    inside ``initlab.Probe(model, every=N, optimizer=...)``: per-layer
    activation, gradient and update statistics at steps 0, N, 2N, ...;
    the result's ``probe`` is its ``ProbeReport`` (with the history of the
    recorded steps). The data set is moved to the model's device and cast to
    its parameters' dtype (a float64 model trains in float64).
    ``on_step(step)`` is called after each step's forward pass, as in
    :func:`initlab.lab.batched.train_stacked`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an initlab.lab.data.Dataset, got {type(dataset).__name__}")
    check_seed(seed)
    legacy_callback = on_step is not None and takes_loss_too(on_step)
    if probe_every is not None:
        probe_every = check_int("probe_every", probe_every, minimum=1)
    config = TrainConfig.make(len(dataset.y_train), **options)
    device, dtype = _device_of(model), input_dtype(model)
    data = _Split(dataset.x_train.to(device, dtype), dataset.y_train.to(device), dataset.x_test.to(device, dtype),
                  dataset.y_test.to(device))
    opt = make_optimizer(model.parameters(), config)
    probe_report: Any = None
    model.train()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]))
        torch.manual_seed(derive_seed(seed, "lab.dropout"))
        session = stack.enter_context(_probe_session(model, probe_every, opt)) if probe_every is not None else None
        progress = _run_steps(model, opt, config, data, seed, on_step, legacy_callback)
        if session is not None:
            probe_report = session.report()
    final, diverged_at = _final_metrics(model, data, progress, config.loss)
    status = run_status(progress.first_loss, final["train_loss"], diverged_at is not None, config)
    return RunResult(
        status=status, history=progress.history, final=final, steps=progress.step,
        wall_time=time.perf_counter() - started, diverged_at=diverged_at,
        info={**config_info(config), "seed": seed, **(info or {})}, probe=probe_report,
    )


@dataclass(frozen=True)
class _Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class _Progress:
    """Where a training loop stands: its logged rows, first loss, last step and divergence step."""

    history: list[dict[str, float]] = field(default_factory=list)
    first_loss: float = NAN
    step: int = 0
    diverged_at: int | None = None


def _run_steps(
    model: nn.Module, opt: torch.optim.Optimizer, config: TrainConfig, data: _Split, seed: int,
    on_step: Callable[..., Any] | None, legacy_callback: bool,
) -> _Progress:
    """The steps of :func:`train`: forward, loss, callback, divergence check, backward, step, log."""
    progress = _Progress()
    device = data.x_train.device
    for step, rows in enumerate(batch_order(len(data.y_train), config, seed), start=1):
        progress.step = step
        x, y = (data.x_train, data.y_train) if rows is None else (data.x_train[rows.to(device)], data.y_train[rows.to(device)])
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        batch_loss = per_example_loss(logits, y, config.loss).mean()
        loss_value = batch_loss.item()
        if step == 1:
            progress.first_loss = loss_value
        if on_step is not None:
            on_step(*((step, loss_value) if legacy_callback else (step,)))
        if is_divergent(loss_value, config):
            progress.diverged_at = step
            progress.history.append(_row(step, config, loss_value, NAN))
            break
        batch_loss.backward()
        opt.step()
        if config.logged(step):
            accuracy = (logits.detach().argmax(dim=1) == y).float().mean().item()
            row = _row(step, config, loss_value, accuracy)
            if config.evaluated(step):
                row["test_loss"], row["test_accuracy"] = evaluate(model, data.x_test, data.y_test, config.loss)
            progress.history.append(row)
    return progress


def _final_metrics(
    model: nn.Module, data: _Split, progress: _Progress, loss: str
) -> tuple[dict[str, float], int | None]:
    """Train and test loss and accuracy after the last step (NaN for a diverged run), and the divergence step."""
    diverged_at = progress.diverged_at
    if diverged_at is not None:
        return dict.fromkeys(("train_loss", "train_accuracy", "test_loss", "test_accuracy"), NAN), diverged_at
    train_loss, train_accuracy = evaluate(model, data.x_train, data.y_train, loss)
    last = progress.history[-1] if progress.history else None
    if last is not None and last["step"] == progress.step and not math.isnan(last["test_loss"]):
        test_loss, test_accuracy = last["test_loss"], last["test_accuracy"]  # evaluated after the last step
    else:
        test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test, loss)
    if not math.isfinite(train_loss):
        diverged_at = progress.step
    final = {"train_loss": train_loss, "train_accuracy": train_accuracy, "test_loss": test_loss,
             "test_accuracy": test_accuracy}
    return final, diverged_at


def config_info(config: TrainConfig) -> dict[str, Any]:
    """The options of ``config`` as a flat dict for result records."""
    return {
        "optimizer": config.optimizer, "lr": config.lr, "momentum": config.momentum,
        "weight_decay": config.weight_decay, "total_steps": config.steps, "batch_size": config.batch_size,
        "steps_per_epoch": config.steps_per_epoch, "loss": config.loss,
    }


def _row(step: int, config: TrainConfig, loss: float, accuracy: float) -> dict[str, float]:
    return {
        "step": step, "epoch": (step - 1) // config.steps_per_epoch + 1, "loss": loss, "accuracy": accuracy,
        "test_loss": NAN, "test_accuracy": NAN,
    }


def takes_loss_too(on_step: Callable[..., Any]) -> bool:
    """Whether ``on_step`` still has the old two-argument form ``on_step(step, loss)`` (warns if so)."""
    try:
        parameters = inspect.signature(on_step).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature take the one-argument form
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) < 2:
        return False
    warn_deprecated("on_step(step, loss) callbacks", "on_step(step); the losses are in the run's history", stacklevel=4)
    return True


def _probe_session(model: nn.Module, every: int, optimizer: torch.optim.Optimizer) -> Any:
    from initlab.probe import Probe

    return Probe(model, every=every, optimizer=optimizer)
