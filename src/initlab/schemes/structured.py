"""Structured schemes: orthogonal, sparse, identity, dirac, delta-orthogonal and ZerO.

Unlike variance scaling these place values by structure, not only by scale:
an orthogonal matrix keeps every singular value at ``gain``; sparse leaves
each unit a fixed number of inputs; identity, dirac and ZerO start the
network as (nearly) the identity map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from initlab import rng
from initlab.rng import CounterStream, GeneratorLike
from initlab.rng.checks import check_choice, check_int, check_number
from initlab.schemes.fans import Fans, LayoutLike
from initlab.schemes.initializer import Initializer, Moments
from initlab.schemes.registry import register
from initlab.schemes.views import (
    CENTERS,
    UnitBlocks,
    centre_tap,
    effective_layout,
    unit_blocks,
    unit_view,
)

__all__ = [
    "Orthogonal",
    "Sparse",
    "Identity",
    "Dirac",
    "DeltaOrthogonal",
    "ZeroHadamard",
    "orthogonal_matrices_",
    "orthogonal_stack_",
    "hadamard_block",
    "zero_matrix",
]

ORTHOGONAL_METHODS = ("qr", "svd")


def _substream(generator: GeneratorLike, name: str) -> GeneratorLike:
    """A stream for a second draw: a child of a counter stream, or the same sequential generator."""
    if isinstance(generator, CounterStream):
        return generator.child(name)
    return generator


# -- orthogonal ------------------------------------------------------------------------
_SIMD_ALIGN = 64  # bytes: a batched QR gives each matrix the bits of a separate call when each starts aligned


def orthogonal_matrices_(
    out: torch.Tensor, method: str = "qr", generator: GeneratorLike = None
) -> torch.Tensor:
    """Fill ``out`` of shape (batch, rows, cols) with Haar-random (semi-)orthogonal matrices.

    Each matrix has orthonormal columns when rows >= cols and orthonormal
    rows otherwise. ``method="qr"``: Q of the QR decomposition of a Gaussian
    matrix, with Q's columns multiplied by sign(diag R) so that Q is exactly
    Haar distributed (Mezzadri 2007); this is the algorithm of
    ``torch.nn.init.orthogonal_``. ``method="svd"``: U (or V^T, whichever has
    the shape) of the SVD of a Gaussian matrix.
    """
    rng.normal_(out, 0.0, 1.0, generator)
    return _orthonormalize_(out, method)


def orthogonal_stack_(
    out: torch.Tensor, generators: Sequence[GeneratorLike], method: str = "qr"
) -> torch.Tensor:
    """Fill ``out`` (n, rows, cols): matrix i from its own ``generators[i]``, all decomposed in one batched call.

    Each matrix gets the Gaussian draw of ``orthogonal_matrices_(out[i:i+1],
    method, generators[i])`` and then one ``torch.linalg.qr`` (or SVD) on the
    whole stack, which factors each matrix as a separate call does, so the
    values are those of n separate calls. One call costs less than n on
    small matrices, where the per-call overhead dominates. Matrices whose
    size is not a multiple of 64 bytes are factored one call each: inside a
    stack they would start off a 64-byte boundary, where LAPACK's vector
    code rounds differently.
    """
    if out.dim() != 3 or out.shape[0] != len(generators):
        raise ValueError(
            f"orthogonal_stack_: needs out of shape (n, rows, cols) and n generators, "
            f"got shape {tuple(out.shape)} and {len(generators)} generators"
        )
    for matrix, generator in zip(out, generators):
        rng.normal_(matrix, 0.0, 1.0, generator)
    if (out[0].numel() * out.element_size()) % _SIMD_ALIGN:
        # LAPACK's vector code rounds differently on a matrix that does not start on a
        # 64-byte boundary, as every other one of an odd-sized stack would: one call each
        for matrix in out:
            _orthonormalize_(matrix.unsqueeze(0), method)
        return out
    return _orthonormalize_(out, method)


def _orthonormalize_(out: torch.Tensor, method: str) -> torch.Tensor:
    """Replace each Gaussian matrix of ``out`` (..., rows, cols) with its sign-corrected Q (or SVD factor)."""
    rows, cols = out.shape[-2], out.shape[-1]
    tall = out if rows >= cols else out.transpose(-2, -1)
    if method == "qr":
        q, r = torch.linalg.qr(tall)
        signs = torch.diagonal(r, dim1=-2, dim2=-1).sign()
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        q *= signs.unsqueeze(-2)
    else:
        q = torch.linalg.svd(tall, full_matrices=False)[0]
    out.copy_(q if rows >= cols else q.transpose(-2, -1))
    return out


@register
@dataclass(frozen=True, repr=False)
class Orthogonal(Initializer):
    """(Semi-)orthogonal weights: every singular value equals ``gain``.

    The tensor is flattened to a matrix by its layout: ``linear``/``embedding``
    (dim 0, rest); ``conv`` (out, in/g * k) and ``conv_transpose``
    (in, out/g * k), one orthogonal block per group; ``keras``/``jax``
    (k * in, out), i.e. orthogonal columns. With groups=1 the conv and linear
    flattening is torch's, and for the same generator the values are
    bit-identical to ``torch.nn.init.orthogonal_``. bf16/fp16 targets are
    computed in float32 and cast.
    """

    gain: float = 1.0
    method: str = "qr"

    name = "orthogonal"
    distribution = "orthogonal"
    formula = "W = gain * Q, Q^T Q = I (QR of a Gaussian matrix, sign-corrected); std = gain / sqrt(max(rows, cols))"
    reference = "Saxe, McClelland & Ganguli 2014, Exact solutions to the nonlinear dynamics of learning in deep linear networks"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", check_number(f"{self.name}: gain", self.gain, minimum=0.0))
        check_choice(f"{self.name}: method", self.method, ORTHOGONAL_METHODS)

    def _blocks(self, shape: Sequence[int], layout: LayoutLike, groups: int) -> tuple[int, int, int]:
        dims = tuple(int(d) for d in shape)
        name = effective_layout(dims, layout)
        if name == "vector" or len(dims) < 2:
            raise ValueError(
                f"{self.name}: needs a tensor with at least 2 dims, got shape {dims} with layout {layout!r}"
            )
        if groups != 1 and name not in ("conv", "conv_transpose", "keras", "jax"):
            raise ValueError(
                f"{self.name}: groups={groups} applies to conv, conv_transpose, keras and jax layouts, "
                f"got layout {name!r}"
            )
        if name in ("keras", "jax"):
            if dims[-1] % groups:
                raise ValueError(f"{self.name}: out ({dims[-1]}) is not divisible by groups={groups}")
            return groups, math.prod(dims[:-1]), dims[-1] // groups
        if dims[0] % groups:
            raise ValueError(f"{self.name}: dim 0 ({dims[0]}) is not divisible by groups={groups}")
        return groups, dims[0] // groups, math.prod(dims[1:])

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        self._blocks(shape, layout, groups)

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        g, rows, cols = self._blocks(tuple(out.shape), layout, groups)
        name = effective_layout(tuple(out.shape), layout)
        if name in ("keras", "jax"):
            matrices = torch.empty((g, rows, cols), dtype=out.dtype, device=out.device)
            orthogonal_matrices_(matrices, self.method, generator)
            out.view(rows, g, cols).copy_(matrices.transpose(0, 1))
        else:
            orthogonal_matrices_(out.view(g, rows, cols), self.method, generator)
        if self.gain != 1.0:
            out.mul_(self.gain)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        _, rows, cols = self._blocks(shape, layout, groups)
        longest = max(rows, cols)
        std = 0.0 if longest == 0 else self.gain / math.sqrt(longest)
        return Moments(mean=0.0, std=std, bounds=(-self.gain, self.gain), gain=self.gain)


# -- sparse ------------------------------------------------------------------------------
def _zeros_per_unit(sparsity: float, inputs: int) -> int:
    # round first so that 0.9 * 10 = 9.000000000000002 gives 9 zeros, not 10
    return min(inputs, math.ceil(round(sparsity * inputs, 9)))


@register
@dataclass(frozen=True, repr=False)
class Sparse(Initializer):
    """Sparse weights: each output unit keeps only a few random inputs (Martens 2010).

    ``sparsity`` is the fraction of zeros among each output unit's incoming
    weights: every unit gets exactly ceil(sparsity * n) zeros, n = its
    inputs (in/g * k for a conv kernel), at positions drawn uniformly
    without replacement; the other weights are N(0, std^2). So
    ``sparse(sparsity=0.9)`` keeps 10% of each unit's inputs.

    ``torch.nn.init.sparse_`` counts the zeros along each *column* of the
    (out, in) matrix instead (per input unit), and Lasagne's ``Sparse``
    calls the fraction of non-zeros ``sparsity``.
    """

    sparsity: float = 0.9
    std: float = 0.01

    name = "sparse"
    distribution = "sparse_normal"
    formula = "ceil(sparsity * n) zeros per output unit, the rest ~ N(0, std^2)"
    reference = "Martens 2010, Deep learning via Hessian-free optimization"

    def __post_init__(self) -> None:
        sparsity = check_number(f"{self.name}: sparsity", self.sparsity)
        if not 0.0 <= sparsity <= 1.0:
            raise ValueError(f"{self.name}: sparsity must be in [0, 1] (fraction of zeros per unit), got {self.sparsity!r}")
        object.__setattr__(self, "sparsity", sparsity)
        object.__setattr__(self, "std", check_number(f"{self.name}: std", self.std, minimum=0.0))

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        unit_blocks(self.name, shape, layout, groups)

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        blocks = unit_blocks(self.name, tuple(out.shape), layout, groups)
        units = blocks.groups * blocks.out_per_group
        inputs = blocks.in_per_group * blocks.taps
        values = torch.empty((units, inputs), dtype=out.dtype, device=out.device)
        rng.normal_(values, 0.0, self.std, generator)
        zeros = _zeros_per_unit(self.sparsity, inputs)
        if 0 < zeros < inputs:
            keys = torch.empty((units, inputs), dtype=out.dtype, device=out.device)
            rng.uniform_(keys, 0.0, 1.0, _substream(generator, "sparse_mask"))
            # the `zeros` smallest keys of each row are a uniform random subset of that size
            positions = torch.topk(keys, zeros, dim=1, largest=False, sorted=False).indices
            values.scatter_(1, positions, 0.0)
        elif zeros == inputs:
            values.zero_()
        shape = (blocks.groups, blocks.out_per_group, blocks.in_per_group, blocks.taps)
        unit_view(out, layout, blocks).copy_(values.view(shape))

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        blocks = unit_blocks(self.name, shape, layout, groups)
        inputs = blocks.in_per_group * blocks.taps
        kept = inputs - _zeros_per_unit(self.sparsity, inputs)
        std = 0.0 if inputs == 0 else self.std * math.sqrt(kept / inputs)
        return Moments(mean=0.0, std=std)


# -- identity, dirac -----------------------------------------------------------------------
def _diagonal_moments(value: float, count: int, size: int) -> Moments:
    """Moments of a tensor of ``size`` elements holding ``value`` at ``count`` places, 0 elsewhere."""
    if size == 0:
        return Moments(mean=0.0, std=0.0, bounds=(0.0, value), gain=value)
    mean = value * count / size
    second = value * value * count / size
    return Moments(mean=mean, std=math.sqrt(max(second - mean * mean, 0.0)), bounds=(0.0, value), gain=value)


@register
@dataclass(frozen=True, repr=False)
class Identity(Initializer):
    """``gain`` times the (rectangular) identity matrix, as ``torch.nn.init.eye_``.

    Matrices only; convolution kernels take :class:`Dirac`. In every 2-D
    layout w[i, i] = gain, which maps input i to output i.
    """

    gain: float = 1.0

    name = "identity"
    aliases = ("eye",)
    distribution = "deterministic"
    formula = "W = gain * I (rectangular: ones on the main diagonal)"
    reference = "Le, Jaitly & Hinton 2015, A simple way to initialize recurrent networks of rectified linear units"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", check_number(f"{self.name}: gain", self.gain, minimum=0.0))

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        if len(shape) != 2 or effective_layout(shape, layout) == "vector":
            raise ValueError(
                f"{self.name}: fills 2-D matrices, got shape {tuple(shape)} with layout {layout!r}; "
                "use dirac for convolution kernels"
            )
        if groups != 1:
            raise ValueError(f"{self.name}: groups must be 1 for a matrix, got {groups}")

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        out.zero_()
        out.diagonal().fill_(self.gain)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        rows, cols = (int(d) for d in shape)
        return _diagonal_moments(self.gain, min(rows, cols), rows * cols)


def _kernel_blocks(owner: str, shape: Sequence[int], layout: LayoutLike, groups: int) -> UnitBlocks:
    dims = tuple(int(d) for d in shape)
    if len(dims) < 3 or effective_layout(dims, layout) not in ("conv", "conv_transpose", "keras", "jax"):
        raise ValueError(
            f"{owner}: fills convolution kernels (rank >= 3, layout conv, conv_transpose, keras or jax), "
            f"got shape {dims} with layout {layout!r}; use identity or orthogonal for matrices"
        )
    return unit_blocks(owner, dims, layout, groups)


@register
@dataclass(frozen=True, repr=False)
class Dirac(Initializer):
    """Dirac delta kernel: a convolution that passes channel i to channel i unchanged.

    w[g*out/g + d, d, centre] = gain for d < min(out/g, in/g) in each group
    (conv layout; the other layouts place the same unit entries), zero
    elsewhere; the centre tap is k // 2 along each axis. ``groups`` may be set
    on the scheme (as in ``torch.nn.init.dirac_``) or passed at call time.
    """

    groups: int = 1
    gain: float = 1.0

    name = "dirac"
    distribution = "deterministic"
    formula = "w[o, i, centre] = gain if o = i (per group), else 0"
    reference = "torch.nn.init.dirac_; Zagoruyko & Komodakis 2017, DiracNets"

    def __post_init__(self) -> None:
        check_int(f"{self.name}: groups", self.groups, minimum=1)
        object.__setattr__(self, "gain", check_number(f"{self.name}: gain", self.gain, minimum=0.0))

    def _groups(self, groups: int) -> int:
        if groups != 1 and self.groups != 1 and groups != self.groups:
            raise ValueError(
                f"{self.name}: groups={groups} at call time disagrees with the scheme's groups={self.groups}"
            )
        return groups if groups != 1 else self.groups

    def fans_of(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans | None:
        return super().fans_of(shape, layout, self._groups(groups))

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        _kernel_blocks(self.name, shape, layout, self._groups(groups))

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        blocks = _kernel_blocks(self.name, tuple(out.shape), layout, self._groups(groups))
        out.zero_()
        diagonal = min(blocks.out_per_group, blocks.in_per_group)
        group_index = torch.arange(blocks.groups, device=out.device).repeat_interleave(diagonal)
        unit_index = torch.arange(diagonal, device=out.device).repeat(blocks.groups)
        view = unit_view(out, layout, blocks)
        view[group_index, unit_index, unit_index, centre_tap(blocks.kernel)] = self.gain

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        blocks = _kernel_blocks(self.name, shape, layout, self._groups(groups))
        count = blocks.groups * min(blocks.out_per_group, blocks.in_per_group)
        return _diagonal_moments(self.gain, count, math.prod(int(d) for d in shape))


@register
@dataclass(frozen=True, repr=False)
class DeltaOrthogonal(Initializer):
    """Delta-orthogonal kernel: an orthogonal channel matrix at the centre tap, zeros elsewhere.

    Per group, w[:, :, centre] = gain * Q with Q an (out/g, in/g) Haar
    orthogonal matrix; the convolution is then norm-preserving (dynamical
    isometry) when out/g >= in/g. Xiao et al. train 10,000-layer vanilla CNNs
    with it.

    ``center`` says where the centre tap of an even kernel is: ``"torch"``
    (default, k // 2 along each axis, as torch's ``dirac_``) or ``"jax"``
    ((k - 1) // 2, as ``jax.nn.initializers.delta_orthogonal``); odd kernels
    have one centre.
    """

    gain: float = 1.0
    center: str = "torch"

    name = "delta_orthogonal"
    distribution = "orthogonal"
    formula = "w[:, :, centre] = gain * Q (Q orthogonal per group), 0 at the other taps"
    reference = "Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington 2018, Dynamical isometry and a mean field theory of CNNs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", check_number(f"{self.name}: gain", self.gain, minimum=0.0))
        check_choice(f"{self.name}: center", self.center, CENTERS)

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        _kernel_blocks(self.name, shape, layout, groups)

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        blocks = _kernel_blocks(self.name, tuple(out.shape), layout, groups)
        matrices = torch.empty(
            (blocks.groups, blocks.out_per_group, blocks.in_per_group), dtype=out.dtype, device=out.device
        )
        orthogonal_matrices_(matrices, "qr", generator)
        out.zero_()
        unit_view(out, layout, blocks)[..., centre_tap(blocks.kernel, self.center)] = matrices.mul_(self.gain)

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        blocks = _kernel_blocks(self.name, shape, layout, groups)
        longest = max(blocks.out_per_group, blocks.in_per_group)
        denominator = longest * blocks.taps
        std = 0.0 if denominator == 0 else self.gain / math.sqrt(denominator)
        return Moments(mean=0.0, std=std, bounds=(-self.gain, self.gain), gain=self.gain)


# -- ZerO ------------------------------------------------------------------------------------
def hadamard_block(rows: int, cols: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The top-left (rows, cols) block of a Sylvester Hadamard matrix: H[i, j] = (-1)^popcount(i & j)."""
    i = torch.arange(rows, dtype=torch.int64).unsqueeze(1)
    j = torch.arange(cols, dtype=torch.int64).unsqueeze(0)
    both = i & j
    parity = torch.zeros_like(both)
    for bit in range(max(rows, cols, 1).bit_length()):
        parity ^= (both >> bit) & 1
    return (1 - 2 * parity).to(dtype)


def zero_matrix(out_features: int, in_features: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ZerO matrix mapping ``in_features`` to ``out_features`` (Zhao et al. 2022, Algorithm 1).

    * out = in: the identity;
    * out < in: the partial identity I* (keeps the first ``out`` inputs);
    * out > in: c * I* H_m I* with H_m the 2^m x 2^m Hadamard matrix,
      m = ceil(log2(out)), c = 2^(-(m-1)/2) -- the top-left (out, in) block of c * H_m.
    """
    if out_features <= in_features:
        return torch.eye(out_features, in_features, dtype=dtype)
    m = math.ceil(math.log2(out_features))
    scale = 2.0 ** (-(m - 1) / 2.0)
    return hadamard_block(out_features, in_features, dtype=dtype) * scale


@register
@dataclass(frozen=True, repr=False)
class ZeroHadamard(Initializer):
    """ZerO: a deterministic init from identity and Hadamard matrices, no randomness at all.

    Each (out, in) channel matrix is the identity (square), a partial identity
    (out < in) or c * I* H_m I* (out > in, see :func:`zero_matrix`); a
    convolution kernel holds that matrix at its centre tap, per group, and
    zeros at the other taps. The Hadamard part breaks the symmetry that a
    plain partial identity would leave when a layer widens.
    """

    name = "zero_hadamard"
    distribution = "deterministic"
    formula = "W = I (out = in), I* (out < in), 2^(-(m-1)/2) I* H_m I* (out > in), m = ceil(log2 out)"
    reference = "Zhao, Schaefer & Anandkumar 2022, ZerO initialization: initializing neural networks with only zeros and ones"

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        unit_blocks(self.name, shape, layout, groups)

    def fill_contiguous_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        blocks = unit_blocks(self.name, tuple(out.shape), layout, groups)
        matrix = zero_matrix(blocks.out_per_group, blocks.in_per_group, dtype=out.dtype).to(out.device)
        out.zero_()
        unit_view(out, layout, blocks)[..., centre_tap(blocks.kernel)] = matrix

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        blocks = unit_blocks(self.name, shape, layout, groups)
        size = math.prod(int(d) for d in shape)
        if size == 0:
            return Moments(mean=0.0, std=0.0)
        matrix = zero_matrix(blocks.out_per_group, blocks.in_per_group)
        total = float(matrix.sum()) * blocks.groups
        squares = float((matrix * matrix).sum()) * blocks.groups
        mean = total / size
        bound = float(matrix.abs().max()) if matrix.numel() else 0.0
        return Moments(mean=mean, std=math.sqrt(max(squares / size - mean * mean, 0.0)), bounds=(-bound, bound))
