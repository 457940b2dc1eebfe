"""The initializer protocol, the registry and the string form.

Every scheme is a small frozen dataclass whose fields are its parameters. It
fills tensors in place (``init(tensor, layout=..., generator=...)``), samples
new ones (``sample``), makes NumPy arrays (``numpy``) and explains itself
(``describe``). ``str(init)`` is a call expression that :func:`get` turns
back into an equal object::

    >>> init = get("he_normal(mode=fan_out, nonlinearity=leaky_relu, negative_slope=0.2)")
    >>> get(str(init)) == init
    True
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from initlab.rng import GeneratorLike, check_generator
from initlab.schemes.fans import Fans, LayoutLike, fans, shape_of

__all__ = [
    "Initializer",
    "Description",
    "Moments",
    "SchemeInfo",
    "register",
    "get",
    "list_schemes",
    "check_float",
    "check_choice",
    "check_representable",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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


@dataclass(frozen=True)
class SchemeInfo:
    """One row of the catalogue."""

    name: str
    aliases: tuple[str, ...]
    formula: str
    reference: str
    parameters: tuple[str, ...]
    summary: str


def check_float(
    owner: str,
    argument: str,
    value: Any,
    *,
    minimum: float | None = None,
    strict: bool = False,
) -> float:
    """``value`` as a finite float, or a ValueError/TypeError naming ``owner.argument``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{owner}: {argument} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{owner}: {argument} must be finite, got {value!r}")
    if minimum is not None and (number < minimum or (strict and number == minimum)):
        relation = ">" if strict else ">="
        raise ValueError(f"{owner}: {argument} must be {relation} {minimum}, got {value!r}")
    return number


def check_choice(owner: str, argument: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner}: {argument} must be one of {', '.join(choices)}, got {value!r}")
    return value


class Initializer:
    """Base of every scheme.

    Subclasses are frozen dataclasses that set ``name``, ``formula`` and
    ``reference`` and implement ``_fill_`` (write values into a contiguous
    float32 or float64 buffer; ``_fill_with_layout_`` when the layout and
    groups matter, as for orthogonal or dirac) and ``moments`` (the promised
    mean/std for a shape).
    ``uses_fans`` says whether the layout matters to the scheme; schemes that
    ignore fans accept any rank.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    distribution: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    uses_fans: ClassVar[bool] = True

    # -- what subclasses provide -------------------------------------------------
    def _fill_(self, out: torch.Tensor, fans: Fans | None, generator: GeneratorLike) -> None:
        raise NotImplementedError

    def moments(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Moments:
        """Mean, std and bounds of the values this scheme puts in a tensor of ``shape``."""
        raise NotImplementedError

    def check_shape(self, shape: tuple[int, ...], layout: LayoutLike, groups: int) -> None:
        """Raise ValueError if the scheme cannot fill ``shape`` (e.g. orthogonal on 1-D)."""

    def _fill_with_layout_(
        self,
        out: torch.Tensor,
        layout: LayoutLike,
        groups: int,
        fans: Fans | None,
        generator: GeneratorLike,
    ) -> None:
        """Fill the contiguous float32/float64 ``out``; schemes that need the layout override this."""
        self._fill_(out, fans, generator)

    def distribution_for(self, shape: Sequence[int], layout: LayoutLike = "linear") -> str:
        """The distribution used for ``shape`` (presets pick one per kind of tensor)."""
        return self.distribution

    # -- public API ----------------------------------------------------------------
    def fans_of(self, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans | None:
        """The fans this scheme uses for ``shape`` (None when it ignores them)."""
        if not self.uses_fans:
            if not isinstance(layout, Fans):
                _check_layout_name(layout)
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
        _check_float_dtype(self.name, tensor.dtype, "tensor")
        check_generator(generator)
        shape = tuple(tensor.shape)
        scheme_fans = self.fans_of(shape, layout, groups)
        self.check_shape(shape, layout, groups)
        check_representable(self, shape, layout, groups, tensor.dtype)
        if tensor.numel() == 0 or tensor.is_meta:
            return tensor
        with torch.no_grad():
            if tensor.dtype in (torch.float32, torch.float64) and tensor.is_contiguous():
                self._fill_with_layout_(tensor, layout, groups, scheme_fans, generator)
            else:
                buffer = torch.empty(shape, dtype=_compute_dtype(tensor.dtype), device=tensor.device)
                self._fill_with_layout_(buffer, layout, groups, scheme_fans, generator)
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
        _check_float_dtype(self.name, dtype, "dtype")
        check_generator(generator)
        dims = shape_of(shape)
        scheme_fans = self.fans_of(dims, layout, groups)
        self.check_shape(dims, layout, groups)
        check_representable(self, dims, layout, groups, dtype)
        buffer = torch.empty(dims, dtype=_compute_dtype(dtype), device=device)
        if buffer.numel() > 0 and not buffer.is_meta:
            with torch.no_grad():
                self._fill_with_layout_(buffer, layout, groups, scheme_fans, generator)
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
        seed, or None for fresh entropy. Values are computed in float64.
        """
        if rng is None or isinstance(rng, int | np.integer):
            rng = np.random.default_rng(rng)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.name}: rng must be a numpy.random.Generator, an int or None, got {rng!r}")
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        values = self.sample(shape, layout=layout, groups=groups, dtype=torch.float64, generator=generator)
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
            layout=layout if isinstance(layout, str) else "explicit fans",
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
        """The std of the values this scheme puts in a tensor of ``shape``."""
        return self.moments(tuple(int(d) for d in shape), layout, groups).std

    # -- string form -----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``; ``get(config)`` rebuilds the scheme."""
        params = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"name": self.name, **params}

    def __str__(self) -> str:
        params = self.config()
        params.pop("name")
        inner = ", ".join(f"{key}={_format_value(value)}" for key, value in params.items())
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
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_float_dtype(owner: str, dtype: torch.dtype, argument: str) -> None:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{owner}: {argument} has dtype {dtype}; initializers fill floating tensors only "
            "(float16, bfloat16, float32, float64)"
        )


def _check_layout_name(layout: object) -> None:
    from initlab.schemes.fans import LAYOUTS

    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} or a Fans object, got {layout!r}")


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value if _IDENTIFIER.match(value) and value not in ("None", "True", "False") else repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


# -- registry ------------------------------------------------------------------------
_REGISTRY: dict[str, type[Initializer]] = {}
_ALIASES: dict[str, str] = {}

SchemeType = TypeVar("SchemeType", bound=type[Initializer])


def register(cls: SchemeType) -> SchemeType:
    """Class decorator: add a scheme (and its aliases) to the catalogue."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    for key in (cls.name, *cls.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"scheme name {key!r} is registered twice")
    _REGISTRY[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def _lookup(name: str) -> type[Initializer]:
    key = _ALIASES.get(name, name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    names = sorted(set(_REGISTRY) | set(_ALIASES))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown scheme {name!r}{hint} (initlab.list_schemes() lists all {len(_REGISTRY)})")


def _build(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Initializer:
    cls = _lookup(name)
    field_names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if len(args) > len(field_names):
        raise TypeError(
            f"{cls.name} takes at most {len(field_names)} positional parameters "
            f"({', '.join(field_names) or 'none'}), got {len(args)}"
        )
    merged = dict(zip(field_names, args))
    for key, value in kwargs.items():
        if key not in field_names:
            accepted = ", ".join(field_names) or "no parameters"
            raise TypeError(f"{cls.name} got an unknown parameter {key!r}; accepted: {accepted}")
        if key in merged:
            raise TypeError(f"{cls.name} got parameter {key!r} twice")
        merged[key] = value
    return cls(**merged)


def _literal(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal(node.operand, text)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Tuple):
        return tuple(_literal(element, text) for element in node.elts)
    raise ValueError(
        f"cannot read value {ast.get_source_segment(text, node)!r} in scheme string {text!r}; "
        "values are numbers, True/False/None, bare words or quoted strings"
    )


def parse(text: str) -> Initializer:
    """Build a scheme from its string form, e.g. ``"orthogonal(gain=1.0)"`` or ``"zeros"``."""
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise ValueError(
            f"malformed scheme string {text!r}: expected NAME or NAME(key=value, ...)"
        ) from error
    if isinstance(tree, ast.Name):
        return _build(tree.id, (), {})
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        args = [_literal(arg, source) for arg in tree.args]
        kwargs: dict[str, Any] = {}
        for keyword in tree.keywords:
            if keyword.arg is None:
                raise ValueError(f"malformed scheme string {text!r}: '**' is not accepted")
            if keyword.arg in kwargs:
                raise ValueError(f"scheme string {text!r} gives {keyword.arg!r} twice; give each parameter once")
            kwargs[keyword.arg] = _literal(keyword.value, source)
        return _build(tree.func.id, args, kwargs)
    raise ValueError(f"malformed scheme string {text!r}: expected NAME or NAME(key=value, ...)")


def get(spec: str | dict[str, Any] | Initializer | Callable[..., Any]) -> Initializer:
    """A scheme from its string form, a config dict, a scheme class, or a scheme itself.

    >>> get("glorot_uniform")
    glorot_uniform(gain=1.0)
    """
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, str):
        return parse(spec)
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"a scheme config needs a 'name' key, got keys {sorted(spec)}")
        params = dict(spec)
        return _build(str(params.pop("name")), (), params)
    if isinstance(spec, type) and issubclass(spec, Initializer):
        return spec()
    raise TypeError(
        f"a scheme is given as a string, a config dict or an Initializer, got {type(spec).__name__}"
    )


def list_schemes() -> list[SchemeInfo]:
    """The catalogue: one :class:`SchemeInfo` per scheme, in registration order."""
    rows = []
    for name, cls in _REGISTRY.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append(
            SchemeInfo(
                name=name,
                aliases=cls.aliases,
                formula=cls.formula,
                reference=cls.reference,
                parameters=tuple(field.name for field in dataclasses.fields(cls)),  # type: ignore[arg-type]
                summary=doc[0] if doc else "",
            )
        )
    return rows
