"""Presets: other libraries' default initialization, formula for formula.

A preset picks its rule by the kind of tensor, the way the library's layers
do:

=================  ===================================  ==========================  ==================
preset             weights (matrices, kernels)          biases (0-D/1-D)            embeddings
=================  ===================================  ==========================  ==================
``torch_default``  U[+-1/sqrt(fan_in)] (kaiming_uniform  U[+-1/sqrt(fan_in)], fan_in  N(0, 1)
                   with a = sqrt 5, on torch's fans)    of the weight (pass Fans)
``keras_default``  glorot_uniform                       zeros                       U[-0.05, 0.05]
``flax_default``   lecun_normal (truncated at 2 sigma,  zeros                       N(0, 1/dim)
                   std corrected, as jax.nn)
``lasagne_default`` GlorotUniform                       zeros                       N(0, 0.01^2)
=================  ===================================  ==========================  ==================

Each preset reads the fans its library reads (:mod:`initlab.schemes.frameworks`):
Keras' for ``keras_default`` (a depthwise kernel, groups = in_channels, gets
``DepthwiseConv2D``'s fan_in = in * k), Flax's for ``flax_default``,
Lasagne's for ``lasagne_default``, with the ``groups`` given; ``describe``
prints the same fans the std is computed from.

``torch_default`` reproduces ``nn.Linear``/``nn.ConvNd``/``nn.ConvTransposeNd``
``reset_parameters`` bit for bit for the same generator, including torch's
own fans (dim 1 times the receptive field), which for a ConvTranspose weight
is out/g * k, not the in/g * k of :func:`initlab.fans`. Its bias rule needs
the weight's fan_in: pass ``layout=initlab.schemes.torch_fans(weight.shape)`` (or any
:class:`Fans`) for the 1-D bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from initlab import rng
from initlab.rng import GeneratorLike
from initlab.schemes.fans import Fans, LayoutLike, torch_fans
from initlab.schemes.frameworks import framework_fans
from initlab.schemes.initializer import Initializer, Moments, check_layout_name
from initlab.schemes.registry import register
from initlab.schemes.variance import bounds_for, fill_with_std_, variance_scaling_std

__all__ = ["TorchDefault", "KerasDefault", "FlaxDefault", "LasagneDefault", "TORCH_DEFAULT_SLOPE"]

# nn.Linear and nn.ConvNd call kaiming_uniform_(weight, a=math.sqrt(5))
TORCH_DEFAULT_SLOPE = math.sqrt(5)


def _kind(shape: Sequence[int], layout: LayoutLike) -> str:
    """'bias' for 0-D/1-D tensors, 'embedding' for the embedding layout, else 'weight'."""
    if len(shape) <= 1:
        return "bias"
    if layout == "embedding":
        return "embedding"
    return "weight"


class _Preset(Initializer):
    """Dispatch on the kind of tensor; subclasses give the three rules."""

    elementwise = True
    # whose fans the preset reads (initlab.schemes.frameworks)
    framework: ClassVar[str] = "initlab"

    def fans_of(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans | None:
        dims = tuple(int(d) for d in shape)
        if isinstance(layout, Fans):
            return layout
        check_layout_name(layout)
        if len(dims) <= 1:
            return None
        return framework_fans(self.framework, dims, layout, groups)

    def distribution_for(self, shape: Sequence[int], layout: LayoutLike = "linear") -> str:
        return self._rule(tuple(int(d) for d in shape), layout)[0]

    def _rule(self, shape: tuple[int, ...], layout: LayoutLike, groups: int = 1) -> tuple[str, float, float]:
        """(distribution, std, mean) for a tensor of ``shape``; distribution in normal/uniform/truncated_normal/constant."""
        raise NotImplementedError

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        distribution, std, mean = self._rule(tuple(out.shape), layout, groups)
        if distribution == "constant":
            out.fill_(mean)
        else:
            fill_with_std_(out, std, distribution, generator)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        self.fans_of(shape, layout, groups)
        distribution, std, mean = self._rule(tuple(int(d) for d in shape), layout, groups)
        if distribution == "constant":
            return Moments(mean=mean, std=0.0, bounds=(mean, mean))
        return Moments(mean=mean, std=std, bounds=bounds_for(std, distribution))


@register
@dataclass(frozen=True, repr=False)
class TorchDefault(_Preset):
    """PyTorch's layer defaults: weights and biases U[+-1/sqrt(fan_in)], embeddings N(0, 1).

    Weights: kaiming_uniform with a = sqrt 5, i.e. gain sqrt(2 / (1 + 5)) and
    bound gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in), fan_in as torch computes
    it (dim 1 * receptive field) for the linear, conv and conv_transpose
    layouts, the declared fan_in for keras/jax. Biases: U[+-1/sqrt(fan_in)]
    with the weight's fan_in, given as ``layout=Fans(...)``.
    """

    name = "torch_default"
    aliases = ("torch:default",)
    distribution = "uniform"
    formula = "weights: kaiming_uniform(a=sqrt 5) = U[+-1/sqrt(fan_in)]; bias: U[+-1/sqrt(fan_in of weight)]; embedding: N(0, 1)"
    reference = "PyTorch nn.Linear / nn.ConvNd reset_parameters; nn.Embedding"

    def fans_of(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans | None:
        dims = tuple(int(d) for d in shape)
        declared = super().fans_of(dims, layout, groups)
        if len(dims) <= 1 and not isinstance(layout, Fans):
            raise ValueError(
                f"{self.name}: a bias of shape {dims} takes its weight's fan_in; pass "
                "layout=initlab.schemes.torch_fans(weight.shape) (or a Fans object), got layout "
                f"{layout!r}"
            )
        if layout in ("linear", "conv", "conv_transpose"):
            return torch_fans(dims)
        return declared

    def _rule(self, shape: tuple[int, ...], layout: LayoutLike, groups: int = 1) -> tuple[str, float, float]:
        if _kind(shape, layout) == "embedding":
            return "normal", 1.0, 0.0
        return "uniform", _torch_bound(shape, self.fans_of(shape, layout, groups)) / math.sqrt(3.0), 0.0

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        if _kind(tuple(out.shape), layout) == "embedding":
            rng.normal_(out, 0.0, 1.0, generator)
        else:
            bound = _torch_bound(tuple(out.shape), fans)
            rng.uniform_(out, -bound, bound, generator)


def _torch_bound(shape: tuple[int, ...], scheme_fans: Fans | None) -> float:
    """Half-width of torch's default uniform, with torch's float operations so the bits agree."""
    fan_in = scheme_fans.fan_in if scheme_fans is not None else 0
    if fan_in <= 0:
        return 0.0
    if len(shape) <= 1:
        return 1 / math.sqrt(fan_in)
    gain = math.sqrt(2.0 / (1 + TORCH_DEFAULT_SLOPE**2))
    std = gain / math.sqrt(fan_in)
    return math.sqrt(3.0) * std


@register
@dataclass(frozen=True, repr=False)
class KerasDefault(_Preset):
    """Keras defaults: Dense/Conv kernels glorot_uniform, biases zeros, Embedding U[-0.05, 0.05].

    Fans as Keras reads them: a depthwise kernel (groups = in_channels) has
    fan_in = in * k and fan_out = depth_multiplier * k, as Keras'
    ``DepthwiseConv2D``; a grouped one in/g * k and out * k.
    """

    framework = "keras"

    name = "keras_default"
    aliases = ("keras:default",)
    distribution = "uniform"
    formula = "kernels: U[+-sqrt(6 / (fan_in + fan_out))]; bias: 0; embedding: U[-0.05, 0.05]"
    reference = "Keras 3 layers.Dense / Conv / Embedding defaults; Glorot & Bengio 2010"

    def _rule(self, shape: tuple[int, ...], layout: LayoutLike, groups: int = 1) -> tuple[str, float, float]:
        kind = _kind(shape, layout)
        if kind == "bias":
            return "constant", 0.0, 0.0
        if kind == "embedding":
            return "uniform", 0.05 / math.sqrt(3.0), 0.0
        scheme_fans = self.fans_of(shape, layout, groups)
        assert scheme_fans is not None
        return "uniform", variance_scaling_std(scheme_fans, 1.0, "fan_avg"), 0.0

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        if _kind(tuple(out.shape), layout) == "embedding":
            rng.uniform_(out, -0.05, 0.05, generator)
        else:
            super().fill_contiguous_(out, layout, groups, fans, generator)


@register
@dataclass(frozen=True, repr=False)
class FlaxDefault(_Preset):
    """Flax defaults: Dense/Conv kernels lecun_normal (truncated), biases zeros, Embed N(0, 1/dim).

    ``jax.nn.initializers.lecun_normal`` is variance_scaling(1, fan_in,
    truncated_normal): a normal cut at +-2 sigma with sigma = 1/sqrt(fan_in)
    / 0.8796, so that the std after truncation is 1/sqrt(fan_in).
    """

    name = "flax_default"
    aliases = ("flax:default",)
    framework = "flax"
    distribution = "truncated_normal"
    formula = "kernels: std 1/sqrt(fan_in) after truncation at 2 sigma; bias: 0; embedding: N(0, 1/dim)"
    reference = "Flax linen Dense / Conv / Embed defaults; LeCun et al. 1998"

    def _rule(self, shape: tuple[int, ...], layout: LayoutLike, groups: int = 1) -> tuple[str, float, float]:
        kind = _kind(shape, layout)
        if kind == "bias":
            return "constant", 0.0, 0.0
        if kind == "embedding":
            dim = shape[1]
            return "normal", (1.0 / math.sqrt(dim) if dim > 0 else 0.0), 0.0
        scheme_fans = self.fans_of(shape, layout, groups)
        assert scheme_fans is not None
        return "truncated_normal", variance_scaling_std(scheme_fans, 1.0, "fan_in"), 0.0


@register
@dataclass(frozen=True, repr=False)
class LasagneDefault(_Preset):
    """Lasagne defaults: DenseLayer/Conv W GlorotUniform, b Constant(0), EmbeddingLayer Normal(0.01)."""

    name = "lasagne_default"
    aliases = ("lasagne:default",)
    framework = "lasagne"
    distribution = "uniform"
    formula = "W: U[+-sqrt(6 / (fan_in + fan_out))]; b: 0; embedding: N(0, 0.01^2)"
    reference = "Lasagne lasagne.init.GlorotUniform (DenseLayer, Conv2DLayer defaults)"

    def _rule(self, shape: tuple[int, ...], layout: LayoutLike, groups: int = 1) -> tuple[str, float, float]:
        kind = _kind(shape, layout)
        if kind == "bias":
            return "constant", 0.0, 0.0
        if kind == "embedding":
            return "normal", 0.01, 0.0
        scheme_fans = self.fans_of(shape, layout, groups)
        assert scheme_fans is not None
        return "uniform", variance_scaling_std(scheme_fans, 1.0, "fan_avg"), 0.0
