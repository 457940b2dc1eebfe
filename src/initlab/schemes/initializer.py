"""The initializer protocol: what every scheme is and does.

Every scheme is a small frozen dataclass whose fields are its parameters. It
fills tensors in place (``init(tensor, layout=..., generator=...)``), samples
new ones (``sample``), makes NumPy arrays (``numpy``) and explains itself
(``describe``, the one place to read its std). ``str(init)`` is a call
expression that :func:`initlab.schemes.get` turns back into an equal object.

Extension points that the layers above read (declared here, so that nobody
needs to probe for them):

=================  ==========================================================
``uses_fans``      whether the layout matters; schemes that ignore fans
                   accept any rank
``elementwise``    element i of the output depends only on element i of the
                   random stream (one draw per element, parameters from the
                   global shape), so a shard can be filled alone
                   (``initlab.plan.sharded``)
``bias_scheme()``  the scheme this weight scheme prescribes for the biases of
                   the same layers, or None (plans add it as a ``bias`` rule)
``supports_complex`` whether complex64/complex128 tensors are filled
                   (``fill_complex_``): E|w|^2 is the scheme's variance
=================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from initlab.rng import GeneratorLike, check_generator
from initlab.schemes.fans import LAYOUTS, Axes, Fans, LayoutLike, fans, shape_of
from initlab.schemes.strings import format_value

__all__ = ["Initializer", "Description", "Moments", "check_representable"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_COMPLEX_DTYPES = (torch.complex64, torch.complex128)


@dataclass(frozen=True)
class Moments:
    """What a scheme promises for one tensor: mean, std, support bounds and gain."""

    mean: float
    std: float
    bounds: tuple[float, float] | None = None
    gain: float | None = None


@dataclass(frozen=True)
class Description:
    """What ``init.describe(shape, layout)`` reports."""

    scheme: str
    shape: tuple[int, ...]
    layout: str
    fans: Fans | None
    gain: float | None
    expected_mean: float
    expected_std: float
    bounds: tuple[float, float] | None
    distribution: str
    formula: str
    reference: str

    def __str__(self) -> str:
        lines = [f"{self.scheme} on {self.shape} ({self.layout})"]
        if self.fans is not None:
            lines.append(
                f"  fans        fan_in={self.fans.fan_in} fan_out={self.fans.fan_out} "
                f"receptive={self.fans.receptive}"
            )
        if self.gain is not None:
            lines.append(f"  gain        {self.gain:.6g}")
        lines.append(f"  mean, std   {self.expected_mean:.6g}, {self.expected_std:.6g}")
        if self.bounds is not None:
            lines.append(f"  bounds      [{self.bounds[0]:.6g}, {self.bounds[1]:.6g}]")
        lines.append(f"  distribution {self.distribution}")
        lines.append(f"  formula     {self.formula}")
        lines.append(f"  reference   {self.reference}")
        return "\n".join(lines)


class Initializer:
    """Base of every scheme.

    Subclasses are frozen dataclasses that set ``name``, ``formula`` and
    ``reference`` and implement ``_fill_`` (write values into a contiguous
    float32 or float64 buffer; ``fill_contiguous_`` when the layout and
    groups matter, as for orthogonal or dirac) and ``moments`` (the promised
    mean/std for a shape, which ``describe`` reports). The extension points
    ``uses_fans``, ``elementwise`` and ``bias_scheme()`` are described in the
    module docstring.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    distribution: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    uses_fans: ClassVar[bool] = True
    elementwise: ClassVar[bool] = False
    supports_complex: ClassVar[bool] = False

    # -- what subclasses provide -------------------------------------------------
    def bias_scheme(self) -> Initializer | None:
        """The scheme for the biases of layers whose weights this scheme fills; None: no opinion."""
        return None

    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        raise NotImplementedError

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        """Mean, std and bounds of the values this scheme puts in a tensor of ``shape``."""
        raise NotImplementedError

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        """Raise ValueError if the scheme cannot fill ``shape`` (e.g. orthogonal on 1-D)."""

    def fill_contiguous_(
        self,
        out: torch.Tensor,
        layout: LayoutLike,
        groups: int,
        fans: Fans | None,
        generator: GeneratorLike,
    ) -> None:
        """Fill the contiguous float32/float64 ``out``; schemes that need the layout override this."""
        self._fill_(out, fans, generator)

    def fill_complex_(
        self,
        out: torch.Tensor,
        layout: LayoutLike,
        groups: int,
        fans: Fans | None,
        generator: GeneratorLike,
    ) -> None:
        """Fill the contiguous complex64/complex128 ``out``; schemes with ``supports_complex`` provide it."""
        raise NotImplementedError

    def _fill_buffer_(
        self, out: torch.Tensor, layout: LayoutLike, groups: int, fans: Fans | None, generator: GeneratorLike
    ) -> None:
        if out.is_complex():
            self.fill_complex_(out, layout, groups, fans, generator)
        else:
            self.fill_contiguous_(out, layout, groups, fans, generator)

    def distribution_for(self, shape: Sequence[int], layout: LayoutLike = "linear") -> str:
        """The distribution used for ``shape`` (presets pick one per kind of tensor)."""
        return self.distribution

    # -- public API ----------------------------------------------------------------
    def fans_of(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans | None:
        """The fans this scheme uses for ``shape`` (None when it ignores them)."""
        if not self.uses_fans:
            if not isinstance(layout, Fans):
                check_layout_name(layout)
            return None
        return fans(shape, layout, groups)

    def __call__(
        self,
        tensor: torch.Tensor,
        *,
        layout: LayoutLike = "linear",
        groups: int = 1,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """Fill ``tensor`` in place under ``torch.no_grad()`` and return it.

        Values are computed in float32 (float64 for float64 tensors) and cast,
        so bf16/fp16 tensors get the same distribution. Zero-element and meta
        tensors are returned unchanged (after the layout is checked).
        """
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{self.name}: expected a torch.Tensor, got {type(tensor).__name__}")
        _check_float_dtype(self.name, tensor.dtype, "tensor", self.supports_complex)
        check_generator(generator)
        shape = tuple(tensor.shape)
        scheme_fans = self.fans_of(shape, layout, groups)
        self.check_shape(shape, layout, groups)
        check_representable(self, shape, layout, groups, tensor.dtype)
        if tensor.numel() == 0 or tensor.is_meta:
            return tensor
        with torch.no_grad():
            if tensor.dtype == _compute_dtype(tensor.dtype) and tensor.is_contiguous():
                self._fill_buffer_(tensor, layout, groups, scheme_fans, generator)
            else:
                buffer = torch.empty(shape, dtype=_compute_dtype(tensor.dtype), device=tensor.device)
                self._fill_buffer_(buffer, layout, groups, scheme_fans, generator)
                tensor.copy_(self.cast_within_bounds(buffer, tensor.dtype, shape, layout, groups))
        return tensor

    def sample(
        self,
        shape: Sequence[int],
        *,
        layout: LayoutLike = "linear",
        groups: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """A new tensor of ``shape`` and ``dtype`` filled by this scheme."""
        _check_float_dtype(self.name, dtype, "dtype", self.supports_complex)
        check_generator(generator)
        dims = shape_of(shape)
        scheme_fans = self.fans_of(dims, layout, groups)
        self.check_shape(dims, layout, groups)
        check_representable(self, dims, layout, groups, dtype)
        buffer = torch.empty(dims, dtype=_compute_dtype(dtype), device=device)
        if buffer.numel() > 0 and not buffer.is_meta:
            with torch.no_grad():
                self._fill_buffer_(buffer, layout, groups, scheme_fans, generator)
                return self.cast_within_bounds(buffer, dtype, dims, layout, groups)
        return buffer.to(dtype)

    def cast_within_bounds(
        self, values: torch.Tensor, dtype: torch.dtype, shape: Sequence[int], layout: LayoutLike, groups: int
    ) -> torch.Tensor:
        """``values`` drawn for a tensor of ``shape`` (the whole tensor, for a shard), cast to ``dtype``.

        Rounding to the nearest bfloat16/float16 can step past a bound that
        the narrow type cannot represent (±sqrt(3)·std of a uniform scheme,
        say); such values are set to the representable value just inside it.
        """
        cast = values.to(dtype)
        if cast.dtype == values.dtype:
            return cast
        try:
            bounds = self.moments(shape, layout, groups).bounds
        except NotImplementedError:
            return cast
        if bounds is None or not bounds[0] < bounds[1]:
            return cast
        low, high = _representable_inside(bounds, dtype, values.device)
        return cast.clamp_(low, high) if low <= high else cast

    def numpy(
        self,
        shape: Sequence[int],
        *,
        layout: LayoutLike = "linear",
        groups: int = 1,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> np.ndarray:
        """A NumPy array of ``shape`` filled by this scheme.

        ``rng`` is a ``numpy.random.Generator`` (advanced by one draw), an int
        seed, or None for fresh entropy. Values are computed in float64
        (complex128 for a complex ``dtype``).
        """
        if rng is None or isinstance(rng, int | np.integer):
            rng = np.random.default_rng(rng)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.name}: rng must be a numpy.random.Generator, an int or None, got {rng!r}")
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        wide = torch.complex128 if np.dtype(dtype).kind == "c" else torch.float64
        values = self.sample(shape, layout=layout, groups=groups, dtype=wide, generator=generator)
        return values.numpy().astype(dtype, copy=False)

    def describe(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Description:
        """Fans, gain, expected mean/std, bounds, formula and reference for ``shape``."""
        dims = shape_of(shape)
        scheme_fans = self.fans_of(dims, layout, groups)
        self.check_shape(dims, layout, groups)
        stats = self.moments(dims, layout, groups)
        return Description(
            scheme=str(self),
            shape=dims,
            layout=str(layout) if isinstance(layout, str | Axes) else "explicit fans",
            fans=scheme_fans,
            gain=stats.gain,
            expected_mean=stats.mean,
            expected_std=stats.std,
            bounds=stats.bounds,
            distribution=self.distribution_for(dims, layout),
            formula=self.formula,
            reference=self.reference,
        )

    def expected_std(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> float:
        """Deprecated: ``describe(shape, layout, groups).expected_std``."""
        warnings.warn(
            "Initializer.expected_std(shape) is deprecated and will be removed in initlab 0.3; "
            "read describe(shape, layout).expected_std",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.describe(shape, layout, groups).expected_std

    # -- string form -----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``; ``get(config)`` rebuilds the scheme."""
        # every scheme is a dataclass; Initializer itself is not, so the type cannot say so
        params = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"name": self.name, **params}

    def __str__(self) -> str:
        params = self.config()
        params.pop("name")
        inner = ", ".join(f"{key}={format_value(value)}" for key, value in params.items())
        return f"{self.name}({inner})"

    def __repr__(self) -> str:
        return str(self)


# values beyond this many standard deviations from the mean are not expected from an unbounded scheme
REPRESENTABLE_SIGMAS = 6.0


def check_representable(
    scheme: Initializer, shape: tuple[int, ...], layout: LayoutLike, groups: int, dtype: torch.dtype
) -> None:
    """ValueError when the values ``scheme`` promises for ``shape`` overflow ``dtype`` (they would fill inf).

    The support must lie within the largest finite value of ``dtype`` (and of
    float32, where the values are drawn): the bounds where the scheme has
    them, else |mean| + 6 std.
    """
    try:
        stats = scheme.moments(shape, layout, groups)
    except NotImplementedError:
        return
    reach = max(abs(stats.bounds[0]), abs(stats.bounds[1])) if stats.bounds is not None else (
        abs(stats.mean) + REPRESENTABLE_SIGMAS * stats.std)
    largest = min(torch.finfo(dtype).max, torch.finfo(_compute_dtype(dtype)).max)
    if not math.isfinite(reach) or reach > largest:
        what = f"bounds {stats.bounds}" if stats.bounds is not None else f"mean {stats.mean:.4g}, std {stats.std:.4g}"
        raise ValueError(
            f"{scheme}: values with {what} overflow {str(dtype).replace('torch.', '')} (largest finite "
            f"{largest:.4g}): they would be inf; choose parameters that keep "
            f"{'|bounds|' if stats.bounds is not None else '|mean| + 6 std'} <= {largest:.4g}"
        )


def _representable_inside(
    bounds: tuple[float, float], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest ``dtype`` value >= bounds[0] and the largest <= bounds[1]."""
    low = torch.tensor(bounds[0], dtype=torch.float64, device=device).to(dtype)
    high = torch.tensor(bounds[1], dtype=torch.float64, device=device).to(dtype)
    if float(low) < bounds[0]:
        low = torch.nextafter(low, torch.full_like(low, math.inf))
    if float(high) > bounds[1]:
        high = torch.nextafter(high, torch.full_like(high, -math.inf))
    return low, high


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float64, *_COMPLEX_DTYPES):
        return dtype
    return torch.float32


def _check_float_dtype(owner: str, dtype: torch.dtype, argument: str, complex_ok: bool = False) -> None:
    if complex_ok and dtype in _COMPLEX_DTYPES:
        return
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{owner}: {argument} has dtype {dtype}; initializers fill floating tensors only "
            "(float16, bfloat16, float32, float64; complex64 and complex128 for the variance-scaling schemes)"
        )


def check_layout_name(layout: object) -> None:
    """ValueError unless ``layout`` is one of the declared layout names or axes."""
    if isinstance(layout, Axes):
        return
    if isinstance(layout, str) and layout.lstrip().startswith("axes("):
        Axes.parse(layout)
        return
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, a Fans or an Axes object, got {layout!r}")
