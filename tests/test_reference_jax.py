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


# -- the jax: dialect -------------------------------------------------------------------------
KS_ALPHA = 1e-4
KURTOSIS = {"truncated_normal": 2.36, "uniform": 1.8, "normal": 3.0}


def assert_same_distribution(reference: np.ndarray, ours: np.ndarray, expected_std: float, kurtosis: float) -> None:
    import scipy.stats

    assert scipy.stats.ks_2samp(reference.ravel(), ours.ravel()).pvalue > KS_ALPHA
    tolerance = Z * expected_std * math.sqrt((kurtosis - 1.0) / (4 * reference.size))
    assert abs(reference.std() - expected_std) < tolerance
    assert abs(ours.std() - expected_std) < tolerance


@pytest.mark.parametrize(
    "name,distribution",
    [("glorot_normal", "truncated_normal"), ("glorot_uniform", "uniform"), ("he_normal", "truncated_normal"),
     ("he_uniform", "uniform"), ("lecun_normal", "truncated_normal"), ("lecun_uniform", "uniform")],
)
@pytest.mark.parametrize("axes", [{}, {"batch_axis": 0}, {"in_axis": 0, "out_axis": (1, 2)}], ids=["default", "batch", "tuple"])
def test_jax_names_draw_what_jax_draws_on_jax_axes(jax, name, distribution, axes) -> None:  # type: ignore[no-untyped-def]
    from jax.nn import initializers

    shape = (6, 40, 90)
    reference = _jax_sample(jax, getattr(initializers, name)(**axes), shape)
    scheme = il.get(f"jax:{name}")
    layout = Axes(**axes)
    description = scheme.describe(shape, layout)
    assert description.fans == il.fans(shape, layout)
    ours = scheme.sample(shape, layout=layout, generator=torch.Generator().manual_seed(2)).double().numpy()
    assert_same_distribution(reference, ours, description.expected_std, KURTOSIS[distribution])
    # the axes may be the scheme's own fields instead; the string form keeps them
    own = il.get(f"jax:{name}")
    if axes:
        own = type(own)(**axes)
        assert il.get(str(own)) == own
        assert own.describe(shape, "jax").expected_std == description.expected_std


def test_jax_names_on_a_torch_layout_use_the_fans_of_the_flax_kernel(jax, compute_fans) -> None:  # type: ignore[no-untyped-def]
    # a torch Conv2d(32, 48, 3, groups=4) weight (48, 8, 3, 3) is the Flax kernel (3, 3, 8, 48)
    fan_in, fan_out = compute_fans((3, 3, 8, 48))
    fans = il.get("jax:glorot_normal").describe((48, 8, 3, 3), "conv", groups=4).fans
    assert (fans.fan_in, fans.fan_out) == (fan_in, fan_out)
    with pytest.raises(ValueError, match="describe a tensor in JAX's layout"):
        il.get("jax:he_normal(in_axis=0)").sample((4, 5), layout="linear")
    with pytest.raises(ValueError, match="given twice"):
        il.get("jax:he_normal(batch_axis=0)").sample((2, 4, 5), layout=Axes(batch_axis=0))


def test_jax_normal_names_mean_what_jax_means(jax) -> None:  # type: ignore[no-untyped-def]
    from jax.nn import initializers

    shape = (300, 200)
    for ours_name, reference_init in [
        ("jax:normal", initializers.normal()),
        ("jax:uniform", initializers.uniform()),
        ("jax:truncated_normal(stddev=0.5, lower=-1.0, upper=3.0)", initializers.truncated_normal(0.5, lower=-1.0, upper=3.0)),
        ("jax:variance_scaling(2.0, fan_geo_avg, normal)", initializers.variance_scaling(2.0, "fan_geo_avg", "normal")),
    ]:
        reference = _jax_sample(jax, reference_init, shape)
        scheme = il.get(ours_name)
        ours = scheme.sample(shape, layout="jax", generator=torch.Generator().manual_seed(3)).double().numpy()
        import scipy.stats

        assert scipy.stats.ks_2samp(reference.ravel(), ours.ravel()).pvalue > KS_ALPHA, ours_name
        assert abs(reference.mean() - ours.mean()) < Z * scheme.describe(shape, "jax").expected_std * math.sqrt(2 / reference.size)
    # JAX's uniform is U[0, scale), torch's and initlab's are centred or given by both ends
    assert il.get("jax:uniform").describe((3, 3)).bounds == (0.0, 0.01)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_jax_dialect_draws_jax_complex_laws_with_jax_constant(jax, distribution) -> None:  # type: ignore[no-untyped-def]
    import jax.numpy as jnp
    import scipy.stats
    from jax.nn import initializers

    shape = (400, 500)
    reference = _jax_sample(jax, initializers.variance_scaling(1.0, "fan_in", distribution), shape, jnp.complex64)
    ours = il.get(f"jax:variance_scaling(1.0, fan_in, {distribution})").sample(
        shape, layout="jax", dtype=torch.complex64, generator=torch.Generator().manual_seed(4)).numpy().astype(np.complex128)
    # the modulus has the same law; the phase is uniform in both
    assert scipy.stats.ks_2samp(np.abs(reference).ravel(), np.abs(ours).ravel()).pvalue > KS_ALPHA
    squares = np.corrcoef(ours.real.ravel() ** 2, ours.imag.ravel() ** 2)[0, 1]
    expected_correlation = np.corrcoef(reference.real.ravel() ** 2, reference.imag.ravel() ** 2)[0, 1]
    assert abs(squares - expected_correlation) < 2 * Z / math.sqrt(reference.size)
    if distribution == "uniform":  # a disk of radius sqrt(2) std, not a square
        assert np.abs(ours).max() <= math.sqrt(2.0 / 400) + 1e-6


@pytest.mark.parametrize("kernel", [(4, 4, 8, 8), (3, 3, 8, 8), (4, 8, 16), (2, 4, 2, 6, 6)])
def test_delta_orthogonal_center_jax_puts_the_matrix_where_jax_does(jax, kernel) -> None:  # type: ignore[no-untyped-def]
    from jax.nn import initializers

    reference = _jax_sample(jax, initializers.delta_orthogonal(), kernel)
    taps = np.argwhere(np.abs(reference).sum(axis=(-2, -1)) > 0)
    ours = il.delta_orthogonal(center="jax").sample(kernel, layout="jax", generator=torch.Generator().manual_seed(5)).numpy()
    assert np.array_equal(np.argwhere(np.abs(ours).sum(axis=(-2, -1)) > 0), taps)
    dialect = il.get("jax:delta_orthogonal").sample(kernel, layout="jax", generator=torch.Generator().manual_seed(5)).numpy()
    assert np.array_equal(dialect, ours)
    matrix = ours[tuple(taps[0])]
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(kernel[-2]), atol=1e-5)  # out >= in: orthonormal rows
    torch_taps = np.argwhere(np.abs(il.delta_orthogonal().sample(kernel, layout="jax").numpy()).sum(axis=(-2, -1)) > 0)
    assert np.array_equal(torch_taps[0], [k // 2 for k in kernel[:-2]])
    assert np.array_equal(taps[0], [(k - 1) // 2 for k in kernel[:-2]])
    with pytest.raises(ValueError, match="out >= in"):
        il.get("jax:delta_orthogonal").sample((3, 3, 8, 4), layout="jax")


# -- Flax layers and flax_default -----------------------------------------------------------------
@pytest.fixture(scope="module")
def flax(jax: Any) -> Any:
    return pytest.importorskip("flax.linen")


def _flax_kernel(jax: Any, module: Any, inputs: tuple[int, ...]) -> dict[str, np.ndarray]:
    import jax.numpy as jnp

    params = module.init(jax.random.key(7), jnp.zeros(inputs))["params"]
    return {key: np.asarray(value, dtype=np.float64) for key, value in params.items()}


@pytest.mark.parametrize(
    "make,inputs,weight,layout,groups",
    [
        (lambda nn: nn.Dense(120), (1, 90), (120, 90), "linear", 1),
        (lambda nn: nn.Conv(48, (3, 3)), (1, 8, 8, 32), (48, 32, 3, 3), "conv", 1),
        (lambda nn: nn.Conv(48, (3, 3), feature_group_count=4), (1, 8, 8, 32), (48, 8, 3, 3), "conv", 4),
        (lambda nn: nn.Conv(64, (3, 3), feature_group_count=32), (1, 8, 8, 32), (64, 1, 3, 3), "conv", 32),
        (lambda nn: nn.ConvTranspose(48, (3, 3)), (1, 8, 8, 32), (32, 48, 3, 3), "conv_transpose", 1),
    ],
    ids=["dense", "conv", "grouped", "depthwise", "transposed"],
)
def test_flax_default_draws_what_flax_layers_draw_with_the_fans_flax_uses(jax, flax, compute_fans, make, inputs, weight, layout, groups) -> None:  # type: ignore[no-untyped-def]
    params = _flax_kernel(jax, make(flax), inputs)
    kernel = params["kernel"]
    fan_in, fan_out = compute_fans(kernel.shape)
    preset = il.get("flax:default")
    assert preset == il.flax_default()
    description = preset.describe(weight, layout, groups)
    assert (description.fans.fan_in, description.fans.fan_out) == (fan_in, fan_out)  # printed = used
    ours = preset.sample(weight, layout=layout, groups=groups, generator=torch.Generator().manual_seed(7)).double().numpy()
    assert description.expected_std == pytest.approx(1.0 / math.sqrt(fan_in), rel=1e-12)
    assert_same_distribution(kernel, ours, description.expected_std, KURTOSIS["truncated_normal"])
    assert np.array_equal(params["bias"], np.zeros_like(params["bias"]))


def test_flax_default_embeddings_match_flax_embed(jax, flax) -> None:  # type: ignore[no-untyped-def]
    import jax.numpy as jnp

    params = flax.Embed(400, 60).init(jax.random.key(8), jnp.zeros((1, 3), dtype=jnp.int32))["params"]
    reference = np.asarray(params["embedding"], dtype=np.float64)
    ours = il.flax_default().sample((400, 60), layout="embedding", generator=torch.Generator().manual_seed(8)).double().numpy()
    assert_same_distribution(reference, ours, 1.0 / math.sqrt(60), KURTOSIS["normal"])


# -- every jax: and flax: name against jax.nn.initializers / flax.linen.initializers of that name ----------
JAX_ARGUMENTS: dict[str, tuple[Any, ...]] = {"constant": (0.3,), "variance_scaling": (2.0, "fan_avg", "uniform")}
JAX_NAMES = [row for row in il.list_schemes("jax") if row.name.startswith("jax:")]


@pytest.mark.parametrize("row", JAX_NAMES, ids=lambda row: row.name)
def test_every_jax_name_draws_what_the_jax_initializer_of_that_name_draws(jax, row) -> None:  # type: ignore[no-untyped-def]
    import flax.linen.initializers as flax_initializers
    from jax.nn import initializers

    name = row.name.split(":", 1)[1]
    factory = getattr(initializers, name)
    for alias in row.aliases:  # JAX's own aliases and flax.linen's re-exports are the same function
        namespace, spelled = alias.split(":", 1)
        source = flax_initializers if namespace == "flax" else initializers
        found = getattr(source, spelled)
        assert found is factory or (spelled.endswith("_init") and found() is factory), alias
        assert il.get(alias) == il.get(row.name)
    arguments = JAX_ARGUMENTS.get(name, ())
    reference_init = factory if name in ("zeros", "ones") else factory(*arguments)
    shape = (3, 3, 20, 30) if name == "delta_orthogonal" else (40, 60)
    reference = _jax_sample(jax, reference_init, shape)
    scheme = il.get(row.name)
    if arguments:
        scheme = type(scheme)(*arguments)
    description = scheme.describe(shape, "jax")
    ours = scheme.sample(shape, layout="jax", generator=torch.Generator().manual_seed(8)).double().numpy()
    if description.distribution == "constant":
        assert np.array_equal(reference, ours)
        return
    if name == "delta_orthogonal":  # zero but at the centre tap, where both hold an orthogonal (20, 30) matrix
        for values in (reference, ours):
            assert np.count_nonzero(values) == np.count_nonzero(values[1, 1])
            np.testing.assert_allclose(values[1, 1] @ values[1, 1].T, np.eye(20), atol=1e-5)
        return
    import scipy.stats

    assert scipy.stats.ks_2samp(reference.ravel(), ours.ravel()).pvalue > KS_ALPHA, row.name
    tolerance = Z * description.expected_std * math.sqrt(2.0 / (4 * reference.size))
    assert abs(reference.std() - description.expected_std) < tolerance and abs(ours.std() - description.expected_std) < tolerance
