"""Forward and backward written out for M stacked copies of a plain lab MLP.

Training S seeds of a small MLP together spends its time in two places: the
batched matrix products, which are the arithmetic itself, and everything
around them. With autograd, "around them" is most of it at lab sizes: a graph
built every step, a fresh allocation for every intermediate (page faults
included), gradients of transposed weights copied into place. For a
:class:`initlab.lab.models.MLP` without normalization or dropout the backward
pass is short enough to write out, so :class:`StackedMLP` does exactly that:

* forward: one ``baddbmm`` per layer into buffers kept from step to step, the
  activation applied in place where its derivative can be taken from its
  output (ReLU, tanh, sigmoid, hardtanh, leaky ReLU, ELU, SELU);
* backward: the softmax cross-entropy gradient, then per layer one ``bmm``
  for the weight gradient, a row sum for the bias gradient and one ``bmm``
  (``baddbmm`` across a residual connection) for the gradient of the layer
  input, each written into a buffer, the weight gradients straight into
  the stacked parameters' ``.grad``.

Each activation's derivative is the ATen kernel autograd itself calls
(``threshold_backward`` for ReLU, ``tanh_backward``, ``gelu_backward``, ...),
so the gradients are autograd's up to the order of float summation, and any
``torch.optim`` optimizer can take the step. Those kernels are not public
torch API: they are reached only through :mod:`initlab.lab.torch_private`,
whose version guard turns this engine off on torch releases it was not
checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from initlab.lab.torch_private import AVAILABLE, activation_backward, log_softmax_backward

__all__ = ["StackedMLP"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

Tensor = torch.Tensor


@dataclass(frozen=True)
class _Activation:
    """How one activation runs forward and backward on stacked tensors.

    ``forward(z)`` returns the activation of ``z``; when ``in_place`` it
    overwrites ``z``, and ``backward(g, z, y)`` may then only use ``y``.
    """

    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor, Tensor], Tensor]
    in_place: bool


def _activation_of(module: nn.Module) -> _Activation | None:
    """The forward/backward pair of a lab activation module, or None when it has none."""
    kind = type(module)
    if kind is nn.ReLU:
        return _Activation(torch.relu_, activation_backward("relu"), True)
    if kind is nn.Tanh:
        return _Activation(torch.tanh_, activation_backward("tanh"), True)
    if kind is nn.Sigmoid:
        return _Activation(torch.sigmoid_, activation_backward("sigmoid"), True)
    if kind is nn.Identity:
        return _Activation(lambda z: z, lambda g, z, y: g, True)
    if type(module) is nn.Hardtanh and module.min_val < module.max_val:
        low, high = float(module.min_val), float(module.max_val)
        return _Activation(lambda z: z.clamp_(low, high), activation_backward("hardtanh", low, high), True)
    if type(module) is nn.LeakyReLU and module.negative_slope > 0:
        slope = float(module.negative_slope)
        return _Activation(lambda z: F.leaky_relu_(z, slope), activation_backward("leaky_relu", slope), True)
    if type(module) is nn.ELU and module.alpha >= 0:
        alpha = float(module.alpha)
        return _Activation(lambda z: F.elu_(z, alpha), activation_backward("elu", alpha, 1.0), True)
    if kind is nn.SELU:
        return _Activation(torch.selu_, activation_backward("elu", _SELU_ALPHA, _SELU_SCALE), True)
    if type(module) is nn.GELU:
        approximate = str(module.approximate)
        return _Activation(lambda z: F.gelu(z, approximate=approximate), activation_backward("gelu", approximate), False)
    if kind is nn.SiLU:
        return _Activation(F.silu, activation_backward("silu"), False)
    if type(module) is nn.Softplus:
        beta, threshold = float(module.beta), float(module.threshold)
        return _Activation(lambda z: F.softplus(z, beta, threshold), activation_backward("softplus", beta, threshold), False)
    return None


@dataclass(frozen=True)
class _Layer:
    weight: str  # parameter name of the (out, in) weight
    bias: str | None
    activation: _Activation | None  # None: the output layer
    residual: bool


class StackedMLP:
    """Forward and written-out backward of M copies of one plain lab MLP.

    Build it with :meth:`of` (None when the model is not a plain MLP). The
    parameters are the stacked dict of ``torch.func.stack_module_state``:
    ``params[name]`` has shape ``(M, *shape)``. Buffers for one batch size
    are allocated at its first step and reused afterwards.
    """

    def __init__(self, layers: list[_Layer]) -> None:
        self.layers = layers
        self._buffers: dict[tuple[int, int, torch.dtype, torch.device], list[dict[str, Tensor]]] = {}

    @classmethod
    def of(cls, model: nn.Module) -> StackedMLP | None:
        """The engine for ``model`` when it is a lab MLP without norm or dropout, else None.

        None too on a torch release whose private kernels were not checked
        (``initlab.lab.torch_private.AVAILABLE``): the lab then uses autograd.
        """
        from initlab.lab.models import MLP, Block

        if type(model) is not MLP or not AVAILABLE:
            return None
        layers = []
        for index, block in enumerate(model.hidden):
            if not isinstance(block, Block) or hasattr(block, "norm") or hasattr(block, "dropout"):
                return None
            activation = _activation_of(block.act)
            if activation is None or not isinstance(block.layer, nn.Linear):
                return None
            prefix = f"hidden.{index}.linear"
            has_bias = block.layer.bias is not None
            layers.append(_Layer(prefix + ".weight", prefix + ".bias" if has_bias else None,
                                 activation, bool(block.residual)))
        layers.append(_Layer("output.weight", "output.bias" if model.output.bias is not None else None, None, False))
        return cls(layers)

    # ------------------------------------------------------------ forward

    def forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Logits ``(M, B, classes)`` of every copy: ``x`` is ``(B, in)`` shared or ``(M, B, in)``."""
        with torch.no_grad():
            return self._forward(params, self._as_stacked(params, x), keep=None)

    def _as_stacked(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        count = params[self.layers[0].weight].shape[0]
        if x.ndim == 2:
            return x.unsqueeze(0).expand(count, -1, -1)
        return x.reshape(x.shape[0], x.shape[1], -1)

    def _forward(self, params: dict[str, Tensor], h: Tensor, keep: list[dict[str, Tensor]] | None) -> Tensor:
        for index, layer in enumerate(self.layers):
            weight = params[layer.weight].transpose(1, 2)
            out = keep[index]["z"] if keep is not None else None
            z = torch.bmm(h, weight, out=out) if out is not None else torch.bmm(h, weight)
            if layer.bias is not None:
                z.add_(params[layer.bias].unsqueeze(1))
            if layer.activation is None:
                return z
            y = layer.activation.forward(z)
            if keep is not None:
                keep[index]["y"] = y
            h = h + y if layer.residual else y
            if keep is not None:
                keep[index + 1]["h"] = h
        raise AssertionError("an MLP ends with its output layer")

    # ------------------------------------------------------------ training step

    def loss_and_grad(self, params: dict[str, Tensor], x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Each copy's mean cross-entropy ``(M,)`` and the logits; gradients land in ``params[n].grad``.

        ``x`` is ``(B, in)`` (every copy sees the same rows) or ``(M, B, in)``;
        ``targets`` is ``(B,)`` or ``(M, B)``. Every ``.grad`` is overwritten,
        not accumulated, so there is nothing to zero between steps. The
        logits live in a buffer that the next step of the same batch size
        overwrites.
        """
        with torch.no_grad():
            h = self._as_stacked(params, x)
            count, batch = h.shape[0], h.shape[1]
            keep = self._step_buffers(params, count, batch)
            keep[0]["h"] = h
            logits = self._forward(params, h, keep)
            targets = targets.expand(count, batch) if targets.ndim == 1 else targets
            log_probs = torch.log_softmax(logits, dim=2)
            picked = log_probs.gather(2, targets.unsqueeze(2)).squeeze(2)
            losses = picked.sum(dim=1).div_(-batch)
            # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / B, by the kernels autograd uses:
            # -1/B at each target for the log-probabilities, then log-softmax's own backward
            grad_log_probs = keep[-1]["grad_log_probs"].zero_()
            grad_log_probs.scatter_(2, targets.unsqueeze(2), -1.0 / batch)
            grad = log_softmax_backward(grad_log_probs, log_probs, 2)
            skip: Tensor | None = None
            for index in range(len(self.layers) - 1, -1, -1):
                layer = self.layers[index]
                h_in = keep[index]["h"]
                weight = params[layer.weight]
                torch.bmm(grad.transpose(1, 2), h_in, out=self._grad_of(weight))
                if layer.bias is not None:
                    torch.sum(grad, dim=1, out=self._grad_of(params[layer.bias]))
                if index == 0:
                    break
                below = self.layers[index - 1]
                grad_h = keep[index]["grad_h"]
                if skip is None:
                    torch.bmm(grad, weight, out=grad_h)
                else:
                    torch.baddbmm(skip, grad, weight, out=grad_h)
                assert below.activation is not None
                grad = below.activation.backward(grad_h, keep[index - 1]["z"], keep[index - 1]["y"])
                skip = grad_h if below.residual else None
            return losses, logits

    @staticmethod
    def _grad_of(parameter: Tensor) -> Tensor:
        if parameter.grad is None or parameter.grad.shape != parameter.shape:
            parameter.grad = torch.empty_like(parameter, memory_format=torch.contiguous_format)
        return parameter.grad

    def _step_buffers(self, params: dict[str, Tensor], count: int, batch: int) -> list[dict[str, Tensor]]:
        first = params[self.layers[0].weight]
        key = (count, batch, first.dtype, first.device)
        if key not in self._buffers:
            buffers: list[dict[str, Tensor]] = []
            for layer in self.layers:
                out_features, in_features = params[layer.weight].shape[1:]
                buffers.append({"z": first.new_empty(count, batch, out_features),
                                "grad_h": first.new_empty(count, batch, in_features)})
            buffers[-1]["grad_log_probs"] = first.new_empty(buffers[-1]["z"].shape)
            self._buffers[key] = buffers  # the batch size, and the last batch of an epoch when smaller
        return self._buffers[key]
