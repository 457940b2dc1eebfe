"""The one place where initlab calls torch outside its public API, behind a version guard.

The written-out backward of :mod:`initlab.lab.fused` calls the ATen derivative
kernels that autograd itself calls (``threshold_backward`` for ReLU,
``tanh_backward``, ``_log_softmax_backward_data``, ...), so its gradients are
autograd's; plain SGD over the stacked parameters is one multi-tensor add
(``torch._foreach_add_``). None of these is public API: their names and
argument lists may change in any torch release. So:

* :data:`AVAILABLE` is True only on the torch releases this module was
  checked against (:data:`TESTED_TORCH`) and only when every kernel it names
  exists; elsewhere the lab trains through autograd (``torch.func.vmap``)
  and an optimizer's ``step()``, with the same results up to float
  summation order;
* ``tests/test_torch_private.py`` fails when the installed torch is outside
  :data:`TESTED_TORCH` or when a kernel's results no longer match autograd's,
  so a torch upgrade is noticed before it silently changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["TESTED_TORCH", "AVAILABLE", "KERNELS", "activation_backward", "log_softmax_backward", "foreach_add_"]

# (major, minor) releases of torch whose private kernels were checked against autograd
TESTED_TORCH: tuple[tuple[int, int], ...] = ((2, 13),)

# the ATen derivative kernels used, by name
KERNELS = (
    "threshold_backward",
    "tanh_backward",
    "sigmoid_backward",
    "hardtanh_backward",
    "leaky_relu_backward",
    "elu_backward",
    "gelu_backward",
    "silu_backward",
    "softplus_backward",
    "_log_softmax_backward_data",
)

Tensor = torch.Tensor
_aten = torch.ops.aten


def _release() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


AVAILABLE = _release() in TESTED_TORCH and all(hasattr(_aten, name) for name in KERNELS) and hasattr(
    torch, "_foreach_add_"
)

# derivative of an activation: backward(grad_output, input z, output y) -> grad_input
Backward = Callable[[Tensor, Tensor, Tensor], Tensor]


def activation_backward(kind: str, *parameters: float | str) -> Backward:
    """The ATen derivative kernel of the activation ``kind`` with its ``parameters``, as g, z, y -> dz."""
    if kind == "relu":
        return lambda g, z, y: _aten.threshold_backward(g, y, 0)
    if kind == "tanh":
        return lambda g, z, y: _aten.tanh_backward(g, y)
    if kind == "sigmoid":
        return lambda g, z, y: _aten.sigmoid_backward(g, y)
    if kind == "hardtanh":
        low, high = parameters
        return lambda g, z, y: _aten.hardtanh_backward(g, y, low, high)
    if kind == "leaky_relu":
        (slope,) = parameters
        return lambda g, z, y: _aten.leaky_relu_backward(g, y, slope, True)
    if kind == "elu":
        alpha, scale = parameters
        return lambda g, z, y: _aten.elu_backward(g, alpha, scale, 1.0, True, y)
    if kind == "gelu":
        (approximate,) = parameters
        return lambda g, z, y: _aten.gelu_backward(g, z, approximate=approximate)
    if kind == "silu":
        return lambda g, z, y: _aten.silu_backward(g, z)
    if kind == "softplus":
        beta, threshold = parameters
        return lambda g, z, y: _aten.softplus_backward(g, z, beta, threshold)
    raise ValueError(f"no derivative kernel for activation {kind!r}")


def log_softmax_backward(grad_log_probs: Tensor, log_probs: Tensor, dim: int) -> Tensor:
    """d(loss)/d(logits) from d(loss)/d(log_softmax(logits)), by the kernel autograd uses."""
    return _aten._log_softmax_backward_data(grad_log_probs, log_probs, dim, log_probs.dtype)


def foreach_add_(tensors: Sequence[Tensor], others: Sequence[Tensor], alpha: float) -> None:
    """``t += alpha * o`` for every pair, as one multi-tensor kernel."""
    torch._foreach_add_(list(tensors), list(others), alpha=alpha)
