"""``torch:``: the functions of ``torch.nn.init`` with torch's meaning, and timm's ``timm:`` ones.

torch (torch/nn/init.py of torch 2.13, the pinned release): fans are dim 1
and dim 0 times the receptive field whatever the layer
(``_calculate_fan_in_and_fan_out``), gains come from ``calculate_gain``
(``kaiming_*_(a=0, mode="fan_in", nonlinearity="leaky_relu")``: sqrt(2)),
``trunc_normal_(mean=0, std=1, a=-2, b=2)`` takes *absolute* bounds,
``sparse_`` counts ceil(sparsity * rows) zeros per *column*,
``orthogonal_`` flattens to (shape[0], rest), ``dirac_`` reads
(out, in/groups, *k). For the same ``torch.Generator``, ``kaiming_*_``,
``xavier_*_``, ``uniform_``, ``normal_`` and ``orthogonal_`` give the same bits
as torch. ``torch:default`` is the ``torch_default`` preset.

timm (timm/layers/weight_init.py at huggingface/pytorch-image-models commit
aa4b585; timm is not installed beside the pinned torch, so these follow the
source): ``trunc_normal_(mean=0, std=1, a=-2, b=2)`` with absolute bounds,
as torch's; ``trunc_normal_tf_`` with bounds in units of std (std before
truncation); ``variance_scaling_(scale=1, mode="fan_in",
distribution="normal")`` on torch's fans, where "normal" is untruncated and
"truncated_normal" divides by 0.87962566103423978; ``lecun_normal_`` is
``variance_scaling_(mode="fan_in", distribution="truncated_normal")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from initlab.rng.checks import check_choice, check_int
from initlab.schemes.basic import Normal, Ones, TruncatedNormal, Uniform, Zeros
from initlab.schemes.dialects.base import (
    Filled,
    Fixed,
    FixedConstant,
    Translated,
    Translation,
    number,
)
from initlab.schemes.fans import LayoutLike, fans
from initlab.schemes.frameworks import framework_fans
from initlab.schemes.registry import register
from initlab.schemes.structured import Dirac, Identity, Orthogonal, Sparse
from initlab.schemes.variance import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    VarianceScaling,
)

__all__ = [
    "TorchUniform", "TorchNormal", "TorchTruncNormal", "TorchConstant", "TorchOnes", "TorchZeros", "TorchEye",
    "TorchDirac", "TorchXavierUniform", "TorchXavierNormal", "TorchKaimingUniform", "TorchKaimingNormal",
    "TorchOrthogonal", "TorchSparse", "TimmTruncNormal", "TimmTruncNormalTf", "TimmVarianceScaling",
    "TimmLecunNormal",
]

TORCH_REFERENCE = "torch.nn.init (torch 2.13, torch/nn/init.py)"
TIMM_REFERENCE = "timm.layers.weight_init (huggingface/pytorch-image-models aa4b585, timm/layers/weight_init.py)"
# calculate_gain's names; kaiming's `a` is the slope of leaky_relu and ignored otherwise
TORCH_NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def _torch_layout(shape: tuple[int, ...], layout: LayoutLike, groups: int) -> LayoutLike:
    """torch's fans for the declared layer, as an explicit Fans (checks the layout and groups)."""
    return framework_fans("torch", shape, layout, groups)


def _flat_layout(owner: str, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> str:
    """torch reads any >= 2-D tensor as (shape[0], rest): linear for matrices, conv for kernels."""
    fans(shape, layout, groups)  # the declared layout must fit the tensor all the same
    if len(shape) < 2:
        raise ValueError(f"{owner}: torch needs a tensor with at least 2 dims, got shape {shape}")
    return "linear" if len(shape) == 2 else "conv"


class _Torch(Translated):
    framework = "torch"
    reference = TORCH_REFERENCE


@register
@dataclass(frozen=True, repr=False)
class TorchUniform(_Torch):
    """torch uniform_: U[a, b)."""

    a: float = 0.0
    b: float = 1.0

    name = "torch:uniform_"
    distribution = "uniform"
    uses_fans = False
    elementwise = True
    formula = "U[a, b)"

    def __post_init__(self) -> None:
        number(self, "a")
        number(self, "b")
        Uniform(self.a, self.b)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Uniform(self.a, self.b), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class TorchNormal(_Torch):
    """torch normal_: N(mean, std^2), std 1 by default."""

    mean: float = 0.0
    std: float = 1.0

    name = "torch:normal_"
    distribution = "normal"
    uses_fans = False
    elementwise = True
    formula = "N(mean, std^2)"

    def __post_init__(self) -> None:
        number(self, "mean")
        number(self, "std", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Normal(self.mean, self.std), layout, groups)


@dataclass(frozen=True, repr=False)
class _AbsoluteTruncNormal(Translated):
    """N(mean, std^2) cut to the *absolute* interval [a, b]: trunc_normal_(std=0.02) cuts almost nothing."""

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0

    uses_fans = False
    elementwise = True
    formula = "N(mean, std^2) restricted to [a, b] (absolute bounds; std before truncation)"

    def __post_init__(self) -> None:
        for field in ("mean", "a", "b"):
            number(self, field)
        number(self, "std", minimum=0.0, strict=True)
        if not self.a < self.b:
            raise ValueError(f"{self.name}: needs a < b, got a={self.a}, b={self.b}")

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        low, high = (self.a - self.mean) / self.std, (self.b - self.mean) / self.std
        return Translation(TruncatedNormal(self.mean, self.std, low, high), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class TorchTruncNormal(_AbsoluteTruncNormal):
    """torch trunc_normal_: N(mean, std^2) cut to the absolute interval [a, b] = [-2, 2] by default."""

    name = "torch:trunc_normal_"
    distribution = "truncated_normal"
    framework = "torch"
    reference = TORCH_REFERENCE


@register
@dataclass(frozen=True, repr=False)
class TorchConstant(Filled, _Torch):
    """torch constant_(val)."""

    val: float = 0.0

    name = "torch:constant_"
    formula = "w = val"
    value_field = "val"


@register
@dataclass(frozen=True, repr=False)
class TorchOnes(FixedConstant, _Torch):
    """torch ones_."""

    name = "torch:ones_"
    formula = "w = 1"
    fixed = Ones()


@register
@dataclass(frozen=True, repr=False)
class TorchZeros(FixedConstant, _Torch):
    """torch zeros_."""

    name = "torch:zeros_"
    formula = "w = 0"
    fixed = Zeros()


@register
@dataclass(frozen=True, repr=False)
class TorchEye(Fixed, _Torch):
    """torch eye_: the (rectangular) identity matrix."""

    name = "torch:eye_"
    distribution = "deterministic"
    formula = "W = I"
    fixed = Identity()


@register
@dataclass(frozen=True, repr=False)
class TorchDirac(_Torch):
    """torch dirac_(groups=1): the identity convolution on an (out, in/groups, *k) kernel, centre k // 2."""

    groups: int = 1

    name = "torch:dirac_"
    distribution = "deterministic"
    formula = "w[o, o, centre] = 1 per group, centre k // 2"

    def __post_init__(self) -> None:
        check_int(f"{self.name}: groups", self.groups, minimum=1)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        fans(shape, layout, groups)
        return Translation(Dirac(self.groups), "conv", groups)


@dataclass(frozen=True, repr=False)
class _TorchXavier(_Torch):
    gain: float = 1.0

    elementwise = True
    supports_complex = True
    kind: ClassVar[type[GlorotNormal] | type[GlorotUniform]] = GlorotNormal

    def __post_init__(self) -> None:
        number(self, "gain", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(self.kind(self.gain), _torch_layout(shape, layout, groups))


@register
@dataclass(frozen=True, repr=False)
class TorchXavierUniform(_TorchXavier):
    """torch xavier_uniform_(gain=1): U[+-gain sqrt(6 / (fan_in + fan_out))] on torch's fans."""

    name = "torch:xavier_uniform_"
    kind = GlorotUniform
    formula = "U[+-gain * sqrt(6 / (fan_in + fan_out))], torch's fans"


@register
@dataclass(frozen=True, repr=False)
class TorchXavierNormal(_TorchXavier):
    """torch xavier_normal_(gain=1): N(0, gain^2 * 2 / (fan_in + fan_out)) on torch's fans."""

    name = "torch:xavier_normal_"
    kind = GlorotNormal
    formula = "N(0, gain^2 * 2 / (fan_in + fan_out)), torch's fans"


@dataclass(frozen=True, repr=False)
class _TorchKaiming(_Torch):
    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"

    elementwise = True
    supports_complex = True
    kind: ClassVar[type[HeNormal] | type[HeUniform]] = HeNormal

    def __post_init__(self) -> None:
        number(self, "a")
        check_choice(f"{self.name}: mode", self.mode, ("fan_in", "fan_out"))
        check_choice(f"{self.name}: nonlinearity", self.nonlinearity, TORCH_NONLINEARITIES)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        slope = self.a if self.nonlinearity == "leaky_relu" else 0.0
        scheme = self.kind(mode=self.mode, nonlinearity=self.nonlinearity, negative_slope=slope, convention="torch")
        return Translation(scheme, _torch_layout(shape, layout, groups))


@register
@dataclass(frozen=True, repr=False)
class TorchKaimingUniform(_TorchKaiming):
    """torch kaiming_uniform_(a=0, mode=fan_in, nonlinearity=leaky_relu): U[+-gain sqrt(3 / fan)] on torch's fans."""

    name = "torch:kaiming_uniform_"
    kind = HeUniform
    formula = "U[+-calculate_gain(nonlinearity, a) * sqrt(3 / fan)], torch's fans"


@register
@dataclass(frozen=True, repr=False)
class TorchKaimingNormal(_TorchKaiming):
    """torch kaiming_normal_(a=0, mode=fan_in, nonlinearity=leaky_relu): N(0, gain^2 / fan) on torch's fans."""

    name = "torch:kaiming_normal_"
    kind = HeNormal
    formula = "N(0, calculate_gain(nonlinearity, a)^2 / fan), torch's fans"


@register
@dataclass(frozen=True, repr=False)
class TorchOrthogonal(_Torch):
    """torch orthogonal_(gain=1): gain * Q over the (shape[0], rest) flattening."""

    gain: float = 1.0

    name = "torch:orthogonal_"
    distribution = "orthogonal"
    formula = "gain * Q, Q Haar (semi-)orthogonal over (shape[0], prod(shape[1:]))"

    def __post_init__(self) -> None:
        number(self, "gain", minimum=0.0)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(Orthogonal(self.gain), _flat_layout(self.name, shape, layout, groups))


@register
@dataclass(frozen=True, repr=False)
class TorchSparse(_Torch):
    """torch sparse_(sparsity, std=0.01): ceil(sparsity * rows) zeros in each *column* of a matrix."""

    sparsity: float = 0.1
    std: float = 0.01

    name = "torch:sparse_"
    distribution = "sparse_normal"
    formula = "ceil(sparsity * rows) zeros per column, the rest N(0, std^2)"

    def __post_init__(self) -> None:
        number(self, "sparsity", minimum=0.0)
        number(self, "std", minimum=0.0)
        Sparse(self.sparsity, self.std)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        fans(shape, layout, groups)
        if len(shape) != 2:
            raise ValueError(f"{self.name}: torch fills 2-D tensors only, got shape {shape}")
        # the embedding view reads columns as units: each column gets its zeros
        return Translation(Sparse(self.sparsity, self.std), "embedding", 1)


# -- timm -----------------------------------------------------------------------------------------
class _Timm(Translated):
    framework = "timm"
    reference = TIMM_REFERENCE


@register
@dataclass(frozen=True, repr=False)
class TimmTruncNormal(_AbsoluteTruncNormal):
    """timm trunc_normal_: as torch's, N(mean, std^2) cut to the absolute interval [a, b]."""

    name = "timm:trunc_normal_"
    distribution = "truncated_normal"
    framework = "timm"
    reference = TIMM_REFERENCE


@register
@dataclass(frozen=True, repr=False)
class TimmTruncNormalTf(_Timm):
    """timm trunc_normal_tf_: mean + std * z, z ~ N(0, 1) cut to [a, b] (bounds in units of std)."""

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0

    name = "timm:trunc_normal_tf_"
    distribution = "truncated_normal"
    uses_fans = False
    elementwise = True
    formula = "mean + std * z, z ~ N(0, 1) restricted to [a, b]"

    def __post_init__(self) -> None:
        for field in ("mean", "a", "b"):
            number(self, field)
        number(self, "std", minimum=0.0)
        TruncatedNormal(self.mean, self.std, self.a, self.b)

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(TruncatedNormal(self.mean, self.std, self.a, self.b), layout, groups)


@register
@dataclass(frozen=True, repr=False)
class TimmVarianceScaling(_Timm):
    """timm variance_scaling_: std sqrt(scale / n) on torch's fans; "normal" (the default) untruncated."""

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "normal"  # type: ignore[misc]

    name = "timm:variance_scaling_"
    elementwise = True
    supports_complex = True
    formula = "std = sqrt(scale / n), torch's fans; truncated_normal: std after the cut at 2 sigma"

    def __post_init__(self) -> None:
        number(self, "scale", minimum=0.0)
        check_choice(f"{self.name}: mode", self.mode, ("fan_in", "fan_out", "fan_avg"))
        check_choice(f"{self.name}: distribution", self.distribution, ("normal", "truncated_normal", "uniform"))

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        scheme = VarianceScaling(self.scale, self.mode, self.distribution)
        return Translation(scheme, _torch_layout(shape, layout, groups))


@register
@dataclass(frozen=True, repr=False)
class TimmLecunNormal(_Timm):
    """timm lecun_normal_: variance_scaling_(mode=fan_in, distribution=truncated_normal), torch's fans."""

    name = "timm:lecun_normal_"
    elementwise = True
    supports_complex = True
    formula = "std sqrt(1 / fan_in) after truncation at 2 sigma, torch's fans"

    def translate(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> Translation:
        return Translation(VarianceScaling(1.0, "fan_in", "truncated_normal"), _torch_layout(shape, layout, groups))
