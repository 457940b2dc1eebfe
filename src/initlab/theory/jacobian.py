"""Singular values of a model's input-output Jacobian at a batch.

Dynamical isometry (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017):
a network trains fast from its first step when every singular value of
J = d f(x) / d x is close to 1, not only their mean square. Deep linear
networks with orthogonal weights are exactly isometric; Gaussian weights of
variance 1/n keep the mean square at 1 while the spread grows with depth.

Small models get every singular value (per-sample Jacobians by
``torch.func.jacrev`` and ``torch.linalg.svdvals``). Large ones get
estimates from Jacobian-vector products: the mean squared singular value by
Hutchinson's estimator tr(J^T J) ~ mean_v |J v|^2 with Gaussian probes, the
largest one by power iteration on J^T J and the smallest by power iteration
on sigma_max^2 I - J^T J (or J J^T when the output is smaller). The batch's
samples are treated as one block-diagonal Jacobian, so the estimates are
over all samples at once. The model runs in eval mode while measured.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.rng.checks import check_int, check_number

__all__ = ["JacobianSpectrum", "jacobian_singular_values", "is_isometric"]

# exact spectra are computed when batch * out_dim * in_dim stays below this
MAX_EXACT_ENTRIES = 2**22


@dataclass(frozen=True)
class JacobianSpectrum:
    """Singular values of the per-sample input-output Jacobians of a model.

    ``singular_values`` has shape (samples, min(in_dim, out_dim)) and is None
    for estimates. When not exact, ``max`` is a power-iteration estimate
    (a lower bound that converges fast) and ``min`` one from the shifted
    operator (an upper bound that converges slowly when the small singular
    values cluster).
    """

    singular_values: torch.Tensor | None
    mean_squared: float
    max: float
    min: float
    exact: bool
    samples: int
    input_dim: int
    output_dim: int

    @property
    def condition_number(self) -> float:
        """max / min (inf when the smallest singular value is 0)."""
        return math.inf if self.min <= 0 else self.max / self.min

    def __str__(self) -> str:
        kind = "exact" if self.exact else "estimated"
        return (
            f"Jacobian spectrum ({kind}, {self.samples} samples, {self.output_dim}x{self.input_dim}): "
            f"mean sigma^2 {self.mean_squared:.6g}, max {self.max:.6g}, min {self.min:.6g}, "
            f"condition {self.condition_number:.6g}"
        )


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def _check_inputs(model: nn.Module, batch: torch.Tensor) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"batch must be a tensor of inputs (samples first), got {type(batch).__name__}")
    if batch.dim() < 1 or batch.shape[0] < 1:
        raise ValueError(f"batch must hold at least one sample along dim 0, got shape {tuple(batch.shape)}")
    if not batch.is_floating_point():
        raise TypeError(f"batch must be a floating tensor to differentiate through, got dtype {batch.dtype}")
    if not bool(torch.isfinite(batch).all()):
        raise ValueError("batch contains NaN or inf values")


def _output(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    out = model(batch)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor to take its Jacobian, got {type(out).__name__}")
    return out


def jacobian_singular_values(
    model: nn.Module,
    batch: torch.Tensor,
    exact: bool | None = None,
    *,
    probes: int = 16,
    iterations: int = 50,
    seed: int = 0,
) -> JacobianSpectrum:
    """The input-output Jacobian spectrum of ``model`` at each sample of ``batch``.

    ``exact=None`` picks the exact route when batch * out_dim * in_dim <=
    MAX_EXACT_ENTRIES (4M), estimates otherwise; ``probes`` Gaussian vectors
    for the mean square, ``iterations`` power steps for the extremes; the
    probes come from a generator seeded with ``seed``.
    """
    _check_inputs(model, batch)
    if exact is not None and not isinstance(exact, bool):
        raise TypeError(f"exact must be True, False or None, got {exact!r}")
    check_int("probes", probes, minimum=1)
    check_int("iterations", iterations, minimum=1)
    with _eval_mode(model), torch.no_grad():
        sample_out = _output(model, batch[:1])
    samples = batch.shape[0]
    input_dim = batch[0].numel()
    output_dim = sample_out[0].numel() if sample_out.dim() > 0 else 1
    if exact is None:
        exact = samples * input_dim * output_dim <= MAX_EXACT_ENTRIES
    with _eval_mode(model):
        if exact:
            return _exact(model, batch, input_dim, output_dim)
        return _estimate(model, batch, input_dim, output_dim, probes, iterations, seed)


def _exact(model: nn.Module, batch: torch.Tensor, input_dim: int, output_dim: int) -> JacobianSpectrum:
    def single(x: torch.Tensor) -> torch.Tensor:
        return _output(model, x.unsqueeze(0)).reshape(-1)

    try:
        jacobians = torch.func.vmap(torch.func.jacrev(single))(batch.detach())
    except (RuntimeError, NotImplementedError, ValueError):
        # models that vmap cannot trace (data-dependent control flow, in-place ops on inputs)
        jacobians = torch.stack(
            [torch.autograd.functional.jacobian(single, x) for x in batch.detach()]
        )
    matrices = jacobians.reshape(batch.shape[0], output_dim, input_dim).detach()
    values = torch.linalg.svdvals(matrices.to(torch.float64) if matrices.dtype != torch.float64 else matrices)
    values = values.to(matrices.dtype)
    return JacobianSpectrum(
        singular_values=values,
        mean_squared=float((values.double() ** 2).mean()),
        max=float(values.max()),
        min=float(values.min()),
        exact=True,
        samples=batch.shape[0],
        input_dim=input_dim,
        output_dim=output_dim,
    )


def _estimate(
    model: nn.Module,
    batch: torch.Tensor,
    input_dim: int,
    output_dim: int,
    probes: int,
    iterations: int,
    seed: int,
) -> JacobianSpectrum:
    inputs = batch.detach()
    generator = torch.Generator(device=inputs.device).manual_seed(seed)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return _output(model, x)

    def jvp(v: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            # torch's first forward-mode call loads its jvp decompositions through torch.jit.script,
            # which warns that TorchScript is deprecated: torch's own use, nothing a caller can change
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
            return torch.func.jvp(forward, (inputs,), (v,))[1].detach()

    pulled: Any = torch.func.vjp(forward, inputs)
    out, vjp_fn = pulled[0], pulled[1]

    def vjp(u: torch.Tensor) -> torch.Tensor:
        return vjp_fn(u)[0].detach()

    def gaussian(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=inputs.dtype, device=inputs.device)

    samples = inputs.shape[0]
    rank = min(input_dim, output_dim)
    frobenius = sum(float(jvp(gaussian(inputs.shape)).double().pow(2).sum()) for _ in range(probes)) / probes
    mean_squared = frobenius / (samples * rank)

    # J^T J on inputs when the input side is the smaller one, J J^T on outputs otherwise
    if input_dim <= output_dim:
        shape = inputs.shape

        def gram(v: torch.Tensor) -> torch.Tensor:
            return vjp(jvp(v))
    else:
        shape = out.shape

        def gram(v: torch.Tensor) -> torch.Tensor:
            return jvp(vjp(v))

    largest = _power(gram, gaussian(shape), iterations)
    shift = largest * (1.0 + 1e-6)
    gap = _power(lambda v: shift * v - gram(v), gaussian(shape), iterations)
    smallest = max(shift - gap, 0.0)
    return JacobianSpectrum(
        singular_values=None,
        mean_squared=mean_squared,
        max=math.sqrt(max(largest, 0.0)),
        min=math.sqrt(smallest),
        exact=False,
        samples=samples,
        input_dim=input_dim,
        output_dim=output_dim,
    )


def _power(operator: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, iterations: int) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite operator (Rayleigh quotient)."""
    vector = start / start.norm()
    value = 0.0
    for _ in range(iterations):
        image = operator(vector)
        value = float((vector * image).sum())
        norm = image.norm()
        if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
            break
        vector = image / norm
    return value


def is_isometric(
    model: nn.Module, batch: torch.Tensor, tol: float = 1e-2, *, exact: bool | None = None
) -> bool:
    """True when every Jacobian singular value lies within [1 - tol, 1 + tol].

    Exact for small models; for large ones the largest and smallest singular
    values are power-iteration estimates (see :func:`jacobian_singular_values`).
    """
    check_number("tol", tol, minimum=0)
    spectrum = jacobian_singular_values(model, batch, exact=exact)
    return abs(spectrum.max - 1.0) <= tol and abs(spectrum.min - 1.0) <= tol
