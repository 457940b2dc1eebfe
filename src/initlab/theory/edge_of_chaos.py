"""The edge-of-chaos initializer: weights at the critical point of mean-field theory.

For an activation phi and a bias variance sigma_b2, the critical weight
variance sigma_w2* solves chi1 = sigma_w2 * E[phi'(sqrt(q*) z)^2] = 1 at the
fixed point q* of the variance map (see :mod:`initlab.theory.meanfield`).
Weights are drawn with

    std = sqrt(sigma_w2* / fan_in)

and biases should be N(0, sigma_b2) (``EdgeOfChaos.bias_scheme()``). Signals
and gradients then neither die out nor explode over depth (Poole et al. 2016;
Schoenholz et al. 2017). tanh: sigma_w2* = 1 at sigma_b2 = 0; ReLU: 2 at 0
(He init), and no critical point with sigma_b2 > 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from initlab.rng import GeneratorLike
from initlab.rng.checks import check_choice, check_number
from initlab.schemes.basic import Normal
from initlab.schemes.fans import Fans, LayoutLike
from initlab.schemes.initializer import Initializer, Moments
from initlab.schemes.variance import bounds_for, fill_with_std_, variance_scaling_std
from initlab.theory.meanfield import critical_sigma_w2

__all__ = ["EdgeOfChaos", "edge_of_chaos"]


@functools.lru_cache(maxsize=128)
def _critical_weight_variance(activation: str, sigma_b2: float) -> float:
    return critical_sigma_w2(activation, sigma_b2)


@dataclass(frozen=True, repr=False)
class EdgeOfChaos(Initializer):
    """Critical initialization: Var[w] = sigma_w2* / fan_in with chi1 = 1 for (activation, sigma_b2)."""

    activation: str = "tanh"
    sigma_b2: float = 0.0
    # a dataclass field here, a class constant of most schemes (Initializer.distribution)
    distribution: str = "normal"  # type: ignore[misc]

    name = "edge_of_chaos"
    elementwise = True
    aliases = ("critical",)
    formula = "Var[w] = sigma_w2* / fan_in, sigma_w2* solves sigma_w2 * E[phi'(sqrt(q*) z)^2] = 1"
    reference = (
        "Poole et al. 2016, Exponential expressivity in deep neural networks through transient chaos; "
        "Schoenholz et al. 2017, Deep information propagation"
    )

    def __post_init__(self) -> None:
        if not isinstance(self.activation, str):
            raise TypeError(f"{self.name}: activation must be an activation name, got {self.activation!r}")
        object.__setattr__(self, "sigma_b2", check_number(f"{self.name}: sigma_b2", self.sigma_b2, minimum=0.0))
        check_choice(f"{self.name}: distribution", self.distribution, ("normal", "uniform", "truncated_normal"))
        try:
            _critical_weight_variance(self.activation, self.sigma_b2)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from error

    @property
    def sigma_w2(self) -> float:
        """The critical weight variance sigma_w2* (times 1/fan_in per weight)."""
        return _critical_weight_variance(self.activation, self.sigma_b2)

    @property
    def gain(self) -> float:
        return math.sqrt(self.sigma_w2)

    def bias_scheme(self) -> Initializer:
        """N(0, sigma_b2) for the biases of the same layers (zeros when sigma_b2 = 0)."""
        return Normal(mean=0.0, std=math.sqrt(self.sigma_b2))

    def _std(self, fans: Fans) -> float:
        return variance_scaling_std(fans, 1.0, "fan_in", self.gain)

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        assert fans is not None
        fill_with_std_(out, self._std(fans), self.distribution, generator)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        scheme_fans = self.fans_of(shape, layout, groups)
        assert scheme_fans is not None
        std = self._std(scheme_fans)
        return Moments(mean=0.0, std=std, bounds=bounds_for(std, self.distribution), gain=self.gain)


edge_of_chaos = EdgeOfChaos
