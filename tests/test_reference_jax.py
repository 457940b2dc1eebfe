"""Against JAX (CPU): axis layouts, fan_geo_avg, both meanings of "normal", complex dtypes.

jax.nn.initializers is the reference (jax 0.10.2 in the dev extra; the same
source as jax-ml/jax commit cec06d1, jax/_src/nn/initializers.py).
Statistical checks allow Z standard errors of the sample moment.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import numpy as np
import pytest
import torch

import initlab as il
from initlab.schemes.fans import Axes

Z = 5.0
SHAPE = (3, 4, 5, 6)


@pytest.fixture(scope="module")
def jax() -> Any:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return pytest.importorskip("jax")


@pytest.fixture(scope="module")
def compute_fans(jax: Any) -> Any:
    from jax._src.nn import initializers

    return initializers._compute_fans


def _spellings(axes: tuple[int, ...], rank: int) -> list[Any]:
    """An axis set as JAX takes it: an int (positive and negative) for one axis, else a tuple."""
    if len(axes) == 1:
        return [axes[0], axes[0] - rank, (axes[0],)]
    return [axes, tuple(a - rank for a in axes)]


def _assignments(rank: int) -> list[tuple[Any, Any, Any]]:
    """Every way to give each axis one role (in, out, batch, receptive) with in and out non-empty."""
    found = []
    for roles in itertools.product("iobr", repeat=rank):
        ins = tuple(a for a, r in enumerate(roles) if r == "i")
        outs = tuple(a for a, r in enumerate(roles) if r == "o")
        batch = tuple(a for a, r in enumerate(roles) if r == "b")
        if not ins or not outs:
            continue
        for spelled_in in _spellings(ins, rank)[:2]:
            found.append((spelled_in, _spellings(outs, rank)[-1], batch))
    return found


@pytest.mark.parametrize("in_axis,out_axis,batch_axis", _assignments(len(SHAPE)))
def test_axes_layout_gives_jax_compute_fans_for_every_assignment_of_roles(compute_fans, in_axis, out_axis, batch_axis) -> None:  # type: ignore[no-untyped-def]
    expected = compute_fans(SHAPE, in_axis, out_axis, batch_axis)
    ours = il.fans(SHAPE, Axes(in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis))
    assert (ours.fan_in, ours.fan_out) == expected


@pytest.mark.parametrize(
    "shape,in_axis,out_axis,batch_axis",
    [
        ((8, 64, 128), -2, -1, 0),  # a batch of dense kernels
        ((8, 64, 128), 0, (1, 2), ()),  # one input axis, two output axes
        ((8, 64, 128), (0, 1), -1, ()),
        ((3, 3, 16, 32), -2, -1, ()),  # the jax layout
        ((100, 16), -2, 0, ()),  # flax Embed: in and out on the same axis
        ((2, 3, 5, 7), 1, 3, (0, 2)),
    ],
)
def test_axes_layout_reproduces_jax_on_the_cases_it_is_used_for(compute_fans, shape, in_axis, out_axis, batch_axis) -> None:  # type: ignore[no-untyped-def]
    ours = il.fans(shape, Axes(in_axis, out_axis, batch_axis))
    assert (ours.fan_in, ours.fan_out) == compute_fans(shape, in_axis, out_axis, batch_axis)
    text = str(Axes(in_axis, out_axis, batch_axis))
    assert il.fans(shape, text) == ours  # the string form is a layout too
    assert Axes.parse(text) == Axes(in_axis, out_axis, batch_axis)


def test_overlapping_axes_with_fractional_jax_fans_are_refused(compute_fans) -> None:  # type: ignore[no-untyped-def]
    fan_in, fan_out = compute_fans((4, 6), 0, (1, 1), ())  # in 4, out 36: receptive 24 / 144
    assert fan_in != int(fan_in)  # 4 / 6
    with pytest.raises(ValueError, match="fractions"):
        il.fans((4, 6), Axes(in_axis=0, out_axis=(1, 1)))
    with pytest.raises(ValueError, match="out of range"):
        il.fans((4, 6), Axes(in_axis=2))
    with pytest.raises(ValueError, match="in_axis -2 needs at least 2 dims"):
        il.fans((4,), Axes())


def _jax_sample(jax: Any, init: Any, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
    import jax.numpy as jnp

    return np.asarray(init(jax.random.key(0), shape, dtype or jnp.float32), dtype=np.complex128 if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating) else np.float64)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
def test_variance_scaling_std_matches_jax_for_every_mode_and_distribution(jax, mode, distribution) -> None:  # type: ignore[no-untyped-def]
    from jax.nn import initializers

    shape, axes = (8, 60, 90), Axes(in_axis=-2, out_axis=-1, batch_axis=0)
    reference = _jax_sample(jax, initializers.variance_scaling(2.0, mode, distribution, -2, -1, 0), shape)
    scheme = il.variance_scaling(scale=2.0, mode=mode, distribution=distribution)
    expected = scheme.describe(shape, axes).expected_std
    n = reference.size
    kurtosis = {"normal": 3.0, "uniform": 1.8, "truncated_normal": 2.36}[distribution]
    tolerance = Z * expected * math.sqrt((kurtosis - 1.0) / (4 * n))
    assert abs(reference.std() - expected) < tolerance
    ours = scheme.sample(shape, layout=axes, generator=torch.Generator().manual_seed(0)).double().numpy()
    assert abs(ours.std() - expected) < tolerance
    if distribution == "normal":  # JAX's "normal" is untruncated: values beyond 2 sigma occur
        assert np.abs(reference).max() > 3.0 * expected and np.abs(ours).max() > 3.0 * expected


def test_untruncated_normal_is_the_keras_spelling_of_jax_normal() -> None:
    keras_spelling = il.variance_scaling(distribution="untruncated_normal")
    assert keras_spelling == il.variance_scaling(distribution="normal")
    assert il.get(str(keras_spelling)) == keras_spelling
    assert keras_spelling.describe((10, 10)).bounds is None


# complex: E|w|^2 = variance. JAX draws circular laws (a disk for uniform, a modulus cut at 2 for
# truncated_normal, divided by 0.95311164380491208); initlab's own schemes draw independent parts.
JAX_COMPLEX_TRUNCATED_FACTOR = (1 - 4 * math.exp(-4) / (1 - math.exp(-4))) / 0.95311164380491208**2


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_complex_weights_have_the_schemes_variance_as_mean_squared_modulus(jax, distribution) -> None:  # type: ignore[no-untyped-def]
    import jax.numpy as jnp
    from jax.nn import initializers

    shape = (400, 500)
    variance = 1.0 / 400  # fan_in of a (in, out) = (400, 500) kernel
    reference = _jax_sample(jax, initializers.variance_scaling(1.0, "fan_in", distribution), shape, jnp.complex64)
    ours = il.variance_scaling(distribution=distribution).sample((500, 400), dtype=torch.complex64,
                                                                 generator=torch.Generator().manual_seed(1))
    ours_np = ours.numpy().astype(np.complex128)
    n = reference.size
    # |w|^2 / variance has std <= 1 for all three laws (exponential for the normal)
    tolerance = Z / math.sqrt(n)
    jax_factor = JAX_COMPLEX_TRUNCATED_FACTOR if distribution == "truncated_normal" else 1.0
    assert abs(np.mean(np.abs(reference) ** 2) / variance - jax_factor) < tolerance
    assert abs(np.mean(np.abs(ours_np) ** 2) / variance - 1.0) < tolerance
    # independent parts: the squares of the real and imaginary parts are uncorrelated
    correlation = np.corrcoef(ours_np.real.ravel() ** 2, ours_np.imag.ravel() ** 2)[0, 1]
    assert abs(correlation) < Z / math.sqrt(n)
    assert abs(np.mean(ours_np.real**2) - np.mean(ours_np.imag**2)) < Z * variance / math.sqrt(n)


def test_complex_fills_work_in_place_and_refuse_schemes_without_complex_support() -> None:
    weight = torch.zeros(64, 32, dtype=torch.complex128)
    il.he_normal()(weight, generator=torch.Generator().manual_seed(0))
    assert weight.imag.abs().sum() > 0 and weight.real.abs().sum() > 0
    assert il.glorot_uniform().numpy((4, 5), rng=0, dtype=np.complex64).dtype == np.complex64
    with pytest.raises(TypeError, match="complex64 and complex128 for the variance-scaling schemes"):
        il.orthogonal()(torch.zeros(4, 4, dtype=torch.complex64))
