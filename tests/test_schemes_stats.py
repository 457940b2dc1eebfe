"""Every random scheme x dtype x applicable layout: sample moments and a KS test against the declared law.

Tolerances come from the sample size: the mean within Z standard errors, the
std within Z standard errors of the sample std (which depend on the kurtosis),
the KS statistic below the critical value at alpha = 1e-4 plus, for bf16/fp16,
an allowance for the rounding of each value to the target dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import initlab as il

Z = 5.0  # standard errors allowed for moments (two-sided p ~ 6e-7 per check)
KS_ALPHA = 1e-4
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]

# one shape per layout with about 20,000 elements
SHAPES = {
    "linear": (200, 100),
    "conv": (40, 20, 5, 5),
    "conv_transpose": (20, 40, 5, 5),
    "embedding": (200, 100),
    "linear_t": (100, 200),
    "keras": (5, 5, 20, 40),
    "jax": (5, 5, 40, 20),
    "vector": (20000,),
}
WEIGHT_LAYOUTS = ["linear", "linear_t", "conv", "conv_transpose", "embedding", "keras", "jax"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    # small LAPACK calls spin for hundreds of ms on an oversubscribed machine with 2+ threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Law:
    """A declared distribution: its CDF and kurtosis (for the std's standard error)."""

    cdf: Callable[[np.ndarray], np.ndarray]
    kurtosis: float


def normal_law(mean: float, std: float) -> Law:
    return Law(scipy.stats.norm(loc=mean, scale=std).cdf, 3.0)


def uniform_law(low: float, high: float) -> Law:
    return Law(scipy.stats.uniform(loc=low, scale=high - low).cdf, 1.8)


def truncated_law(mean: float, sigma: float, a: float, b: float) -> Law:
    low, high = scipy.special.ndtr(a), scipy.special.ndtr(b)

    def cdf(x: np.ndarray) -> np.ndarray:
        z = np.clip((np.asarray(x) - mean) / sigma, a, b)
        return (scipy.special.ndtr(z) - low) / (high - low)

    kurtosis = float(scipy.stats.truncnorm(a, b).stats(moments="k")) + 3.0
    return Law(cdf, kurtosis)


def law_from_moments(init: il.schemes.Initializer, shape: tuple[int, ...], layout: str) -> Law:
    """The law a variance-scaling style scheme declares through describe()."""
    description = init.describe(shape, layout=layout)
    std = description.expected_std
    if description.distribution == "normal":
        return normal_law(description.expected_mean, std)
    if description.distribution == "uniform":
        assert description.bounds is not None
        return uniform_law(*description.bounds)
    if description.distribution == "truncated_normal":
        if isinstance(init, il.schemes.TruncatedNormal):
            return truncated_law(init.mean, init.sigma, init.a, init.b)
        assert description.bounds is not None
        sigma = description.bounds[1] / 2.0  # variance scaling cuts at +-2 sigma
        return truncated_law(0.0, sigma, -2.0, 2.0)
    raise AssertionError(f"no law for {description.distribution}")


def check_sample(
    values: torch.Tensor, law: Law, expected_mean: float, expected_std: float, dtype: torch.dtype
) -> None:
    sample = values.to(torch.float64).reshape(-1).numpy()
    n = sample.size
    # rounding to the target dtype moves each value by up to half a unit in the last place
    relative_rounding = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}.get(dtype, 0.0)
    mean_error = abs(sample.mean() - expected_mean)
    assert mean_error <= Z * expected_std / math.sqrt(n) + relative_rounding * np.abs(sample).mean(), (
        f"mean {sample.mean():.6g} vs {expected_mean:.6g}"
    )
    std_se = expected_std * math.sqrt(max(law.kurtosis - 1.0, 0.0) / (4.0 * n))
    assert abs(sample.std() - expected_std) <= Z * std_se + relative_rounding * expected_std, (
        f"std {sample.std():.6g} vs {expected_std:.6g}"
    )
    statistic = scipy.stats.kstest(sample, law.cdf).statistic
    critical = math.sqrt(-math.log(KS_ALPHA / 2.0) / 2.0) / math.sqrt(n)
    if relative_rounding:
        exact = values.to(torch.float64).reshape(-1).numpy()
        unrounded = exact * (1.0 + relative_rounding)  # the farthest an unrounded value can be
        allowance = float(np.max(np.abs(law.cdf(unrounded) - law.cdf(exact))))
        critical += 3.0 * allowance
    assert statistic <= critical, f"KS statistic {statistic:.4g} > {critical:.4g}"


VARIANCE_SCHEMES = [
    il.lecun_normal(),
    il.lecun_uniform(),
    il.lecun_truncated_normal(),
    il.glorot_normal(),
    il.glorot_uniform(gain=1.5),
    il.glorot_truncated_normal(),
    il.he_normal(),
    il.he_uniform(mode="fan_out", nonlinearity="leaky_relu", negative_slope=0.2),
    il.he_truncated_normal(nonlinearity="tanh"),
    il.variance_scaling(scale=2.0, mode="fan_avg", distribution="normal"),
    il.variance_scaling(scale=0.5, mode="fan_out", distribution="truncated_normal"),
    il.variance_scaling(scale=3.0, mode="fan_in", distribution="uniform"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("init", VARIANCE_SCHEMES, ids=str)
def test_variance_scaling_schemes_match_declared_law_in_every_layout(
    init: il.schemes.Initializer, dtype: torch.dtype
) -> None:
    for index, layout in enumerate(WEIGHT_LAYOUTS):
        shape = SHAPES[layout]
        generator = torch.Generator().manual_seed(100 + index)
        values = init.sample(shape, layout=layout, dtype=dtype, generator=generator)
        assert values.dtype == dtype and tuple(values.shape) == shape
        description = init.describe(shape, layout=layout)
        check_sample(
            values, law_from_moments(init, shape, layout), description.expected_mean,
            description.expected_std, dtype,
        )


FAN_FREE_SCHEMES = [
    il.normal(mean=0.5, std=2.0),
    il.uniform(a=-0.5, b=1.5),
    il.small_random(),
    il.truncated_normal(mean=1.0, std=0.5, a=-1.0, b=2.5),
    il.truncated_normal(std=0.02, std_after_truncation=True),
    il.truncated_normal(a=0.5, b=1.0),
    il.truncated_normal(a=4.0, b=6.0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("init", FAN_FREE_SCHEMES, ids=str)
def test_fan_free_schemes_match_declared_law_for_weights_and_vectors(
    init: il.schemes.Initializer, dtype: torch.dtype
) -> None:
    for index, layout in enumerate(("linear", "vector", "conv")):
        shape = SHAPES[layout]
        generator = torch.Generator().manual_seed(200 + index)
        values = init.sample(shape, layout=layout, dtype=dtype, generator=generator)
        description = init.describe(shape, layout=layout)
        check_sample(
            values, law_from_moments(init, shape, layout), description.expected_mean,
            description.expected_std, dtype,
        )


def test_truncated_normal_with_std_after_truncation_hits_requested_std() -> None:
    init = il.truncated_normal(std=0.3, a=-1.5, b=1.5, std_after_truncation=True)
    values = init.sample((100_000,), layout="vector", generator=torch.Generator().manual_seed(1))
    standard_error = 0.3 * math.sqrt((2.3 - 1.0) / (4 * values.numel()))
    assert abs(float(values.std()) - 0.3) < Z * standard_error
    assert float(values.abs().max()) <= 1.5 * init.sigma + 1e-6


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_presets_follow_their_library_rule_per_kind_of_tensor(dtype: torch.dtype) -> None:
    cases = [
        (il.torch_default(), (200, 100), "linear"),
        (il.torch_default(), (40, 20, 5, 5), "conv"),
        (il.torch_default(), (20, 40, 5, 5), "conv_transpose"),
        (il.torch_default(), (20000,), il.Fans(fan_in=64, fan_out=10)),
        (il.torch_default(), (200, 100), "embedding"),
        (il.keras_default(), (5, 5, 20, 40), "keras"),
        (il.keras_default(), (200, 100), "embedding"),
        (il.flax_default(), (5, 5, 20, 40), "jax"),
        (il.flax_default(), (200, 100), "embedding"),
        (il.lasagne_default(), (40, 20, 5, 5), "conv"),
        (il.lasagne_default(), (200, 100), "embedding"),
    ]
    for index, (init, shape, layout) in enumerate(cases):
        values = init.sample(shape, layout=layout, dtype=dtype, generator=torch.Generator().manual_seed(index))  # type: ignore[arg-type]
        description = init.describe(shape, layout=layout)  # type: ignore[arg-type]
        distribution = description.distribution
        if distribution == "normal":
            law = normal_law(0.0, description.expected_std)
        elif distribution == "uniform":
            assert description.bounds is not None
            law = uniform_law(*description.bounds)
        else:
            assert distribution == "truncated_normal" and description.bounds is not None
            law = truncated_law(0.0, description.bounds[1] / 2.0, -2.0, 2.0)
        check_sample(values, law, description.expected_mean, description.expected_std, dtype)


def test_presets_fill_biases_with_their_library_constant() -> None:
    for init in (il.keras_default(), il.flax_default(), il.lasagne_default()):
        bias = init.sample((32,), layout="vector")
        assert torch.count_nonzero(bias) == 0
        assert init.describe((32,), layout="vector").distribution == "constant"


def haar_entry_law(length: int) -> Law:
    """An entry x of a uniform unit vector in R^length: x^2 ~ Beta(1/2, (length - 1)/2), sign symmetric."""
    beta = scipy.stats.beta(0.5, (length - 1) / 2.0)

    def cdf(x: np.ndarray) -> np.ndarray:
        return 0.5 + 0.5 * np.sign(x) * beta.cdf(np.square(x))

    kurtosis = 3.0 * length / (length + 2.0)
    return Law(cdf, kurtosis)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", ["qr", "svd"])
def test_orthogonal_entries_follow_the_haar_marginal(method: str, dtype: torch.dtype) -> None:
    init = il.orthogonal(gain=1.0, method=method)
    cases = [
        ("linear", (200, 100), 1, 200),
        ("linear", (100, 200), 1, 200),
        ("conv", (40, 20, 5, 5), 1, 500),
        ("conv", (40, 10, 5, 5), 2, 250),
        ("keras", (5, 5, 20, 40), 1, 500),
        ("conv_transpose", (20, 40, 5, 5), 1, 1000),
    ]
    for index, (layout, shape, groups, length) in enumerate(cases):
        values = init.sample(
            shape, layout=layout, groups=groups, dtype=dtype, generator=torch.Generator().manual_seed(index)
        )
        expected_std = init.describe(shape, layout, groups).expected_std
        assert expected_std == pytest.approx(1.0 / math.sqrt(length))
        check_sample(values, haar_entry_law(length), 0.0, expected_std, dtype)


def test_orthogonal_qr_sign_correction_makes_the_first_entry_symmetric() -> None:
    """Without the sign(diag R) correction Q[0, 0] is always negative (LAPACK's Householder convention)."""
    generator = torch.Generator().manual_seed(5)
    firsts = torch.stack([il.orthogonal().sample((8, 8), generator=generator)[0, 0] for _ in range(400)])
    standard_error = (1.0 / math.sqrt(8)) / math.sqrt(400)
    assert abs(float(firsts.mean())) < Z * standard_error
    assert 0.35 < float((firsts > 0).double().mean()) < 0.65


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "layout,shape,groups",
    [("linear", (100, 200), 1), ("conv", (40, 20, 5, 5), 1), ("conv_transpose", (20, 20, 5, 5), 2),
     ("keras", (5, 5, 20, 40), 1), ("embedding", (200, 100), 1)],
)
def test_sparse_gives_each_unit_exact_zero_count_and_normal_nonzeros(
    layout: str, shape: tuple[int, ...], groups: int, dtype: torch.dtype
) -> None:
    init = il.sparse(sparsity=0.7, std=0.05)
    values = init.sample(shape, layout=layout, groups=groups, dtype=dtype, generator=torch.Generator().manual_seed(3))
    blocks = il.schemes.views.unit_blocks("test", shape, layout, groups)
    units = il.schemes.views.unit_view(values, layout, blocks).reshape(blocks.groups * blocks.out_per_group, -1)
    inputs = units.shape[1]
    zeros_per_unit = (units == 0).sum(dim=1)
    assert torch.all(zeros_per_unit == math.ceil(round(0.7 * inputs, 9)))
    nonzero = units[units != 0]
    check_sample(nonzero, normal_law(0.0, 0.05), 0.0, 0.05, dtype)
    assert float(values.to(torch.float64).std()) == pytest.approx(init.describe(shape, layout, groups).expected_std, rel=0.05)


def test_sparse_zero_positions_are_uniform_over_inputs() -> None:
    values = il.sparse(sparsity=0.5).sample((4000, 10), generator=torch.Generator().manual_seed(0))
    zero_rate = (values == 0).double().mean(dim=0)
    # each column is zero in a unit with probability 1/2; 4000 units per column
    assert torch.all((zero_rate - 0.5).abs() < Z * 0.5 / math.sqrt(4000))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", [info.name for info in il.schemes.list_schemes()])
def test_narrow_dtypes_keep_every_value_inside_the_schemes_bounds(name, dtype) -> None:
    # round-to-nearest into bf16/fp16 can step past a bound the narrow type cannot represent
    scheme = il.schemes.get(name)
    shape = (300, 257)
    try:
        bounds = scheme.moments(shape).bounds
    except (NotImplementedError, ValueError):
        pytest.skip(f"{name} states no moments for a plain 2-D weight")
    if bounds is None:
        pytest.skip(f"{name} is unbounded")
    filled = scheme(torch.empty(shape, dtype=dtype), generator=torch.Generator().manual_seed(3)).double()
    sampled = scheme.sample(shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    assert torch.equal(filled, sampled.double())
    assert filled.min().item() >= bounds[0] and filled.max().item() <= bounds[1]
