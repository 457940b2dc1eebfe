"""The initializer protocol: in-place fills, sampling, string forms, structure and bad input."""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import initlab as il
from initlab.cli import list_cmd
from initlab.schemes.registry import _REGISTRY
from initlab.schemes.structured import hadamard_block, zero_matrix


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# a shape and layout every scheme can fill
def fitting(init: il.schemes.Initializer) -> tuple[tuple[int, ...], str]:
    base = init.name.split(":")[-1].rstrip("_").lower()  # keras:he_normal, torch:dirac_, lasagne:Sparse
    if base in ("dirac", "delta_orthogonal"):
        return (8, 6, 3, 3), "conv"
    if base == "sparse":
        return (12, 40), "linear"  # 10% of 8 inputs would keep none
    return (12, 8), "linear"


ALL_SCHEMES = [cls() for cls in _REGISTRY.values()]
RANDOM_SCHEMES = [init for init in ALL_SCHEMES if init.distribution not in ("constant", "deterministic")]


# -- the protocol -------------------------------------------------------------------------
@pytest.mark.parametrize("init", ALL_SCHEMES, ids=str)
def test_every_scheme_fills_in_place_under_no_grad_and_returns_the_tensor(init: il.schemes.Initializer) -> None:
    shape, layout = fitting(init)
    parameter = torch.nn.Parameter(torch.full(shape, float("nan")))
    returned = init(parameter, layout=layout, generator=seeded())
    assert returned is parameter
    assert parameter.requires_grad and parameter.grad_fn is None
    assert torch.isfinite(parameter).all()
    assert torch.equal(parameter.detach(), init.sample(shape, layout=layout, generator=seeded()))


@pytest.mark.parametrize("init", RANDOM_SCHEMES, ids=str)
def test_same_generator_seed_gives_the_same_bits_and_another_seed_differs(init: il.schemes.Initializer) -> None:
    shape, layout = fitting(init)
    first = init.sample(shape, layout=layout, generator=seeded(3))
    again = init.sample(shape, layout=layout, generator=seeded(3))
    other = init.sample(shape, layout=layout, generator=seeded(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("init", ALL_SCHEMES, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_targets_get_the_float32_values_rounded(init: il.schemes.Initializer, dtype: torch.dtype) -> None:
    shape, layout = fitting(init)
    half = init.sample(shape, layout=layout, dtype=dtype, generator=seeded(1))
    full = init.sample(shape, layout=layout, dtype=torch.float32, generator=seeded(1))
    assert half.dtype == dtype
    # rounded to the nearest, except past a bound the narrow type cannot hold (jax:uniform's 0.01)
    assert torch.equal(half, init.cast_within_bounds(full, dtype, shape, layout, 1))
    inplace = init(torch.empty(shape, dtype=dtype), layout=layout, generator=seeded(1))
    assert torch.equal(inplace, half)


def test_non_contiguous_tensors_are_filled_through_their_view() -> None:
    base = torch.zeros(8, 12)
    view = base.t()  # (12, 8), not contiguous
    il.he_normal()(view, generator=seeded(2))
    assert torch.equal(view, il.he_normal().sample((12, 8), generator=seeded(2)))


def test_numpy_returns_a_seeded_float64_array() -> None:
    first = il.orthogonal().numpy((16, 16), rng=np.random.default_rng(0))
    second = il.orthogonal().numpy((16, 16), rng=0)
    assert isinstance(first, np.ndarray) and first.dtype == np.float64 and first.shape == (16, 16)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first.T @ first, np.eye(16), atol=1e-12)
    assert il.glorot_uniform().numpy((4, 3), rng=1, dtype=np.float32).dtype == np.float32


def test_describe_reports_fans_gain_std_bounds_formula_and_reference() -> None:
    description = il.he_uniform(nonlinearity="relu").describe((256, 512), layout="linear")
    assert description.fans == il.Fans(512, 256)
    assert description.gain == math.sqrt(2.0)
    assert description.expected_std == pytest.approx(math.sqrt(2.0 / 512))
    assert description.bounds == pytest.approx((-math.sqrt(6.0 / 512), math.sqrt(6.0 / 512)))
    assert "He" in description.reference and "fan" in description.formula
    assert "fan_in=512" in str(description)


def test_torch_default_needs_the_weight_fans_for_a_bias() -> None:
    with pytest.raises(ValueError, match="torch_fans"):
        il.torch_default()(torch.empty(10))
    bias = il.torch_default()(torch.empty(10_000), layout=il.Fans(fan_in=25, fan_out=10), generator=seeded())
    assert float(bias.abs().max()) <= 1 / 5 and float(bias.abs().max()) > 0.19


class CountingStream:
    """A minimal counter stream: value i of a named stream is a function of (name, i)."""

    def __init__(self, name: str = "root") -> None:
        self.name = name

    def _generator(self) -> torch.Generator:
        return il.rng.derive_generator(0, self.name)

    def normal_(self, out: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        return out.normal_(mean, std, generator=self._generator())

    def uniform_(self, out: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return out.uniform_(low, high, generator=self._generator())

    def truncated_normal_(self, out: torch.Tensor, mean: float, std: float, a: float, b: float) -> torch.Tensor:
        return il.rng.truncated_normal_(out, mean, std, a, b, generator=self._generator())

    def child(self, name: str) -> CountingStream:
        return CountingStream(f"{self.name}/{name}")


def test_counter_streams_are_accepted_and_sparse_draws_its_mask_from_a_child() -> None:
    stream = CountingStream()
    assert isinstance(stream, il.rng.CounterStream)
    values = il.he_truncated_normal().sample((32, 64), generator=stream)
    assert torch.equal(values, il.he_truncated_normal().sample((32, 64), generator=CountingStream()))
    sparse = il.sparse(sparsity=0.5, std=1.0).sample((64, 64), generator=stream)
    # with the same stream for values and mask, the zeroed positions would be the smallest normals
    kept = sparse != 0
    assert (kept.sum(dim=1) == 32).all()
    dense = torch.empty(64, 64).normal_(generator=il.rng.derive_generator(0, "root"))
    assert torch.equal(sparse[kept], dense[kept])
    assert 0.3 < float((dense[~kept] < 0).double().mean()) < 0.7


# -- structure ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["qr", "svd"])
@pytest.mark.parametrize(
    "shape,layout,groups",
    [((64, 64), "linear", 1), ((96, 32), "linear", 1), ((32, 96), "linear", 1),
     ((32, 16, 3, 3), "conv", 1), ((64, 4, 3), "conv", 2), ((4, 8, 3, 3), "conv_transpose", 1),
     ((3, 3, 16, 32), "keras", 1), ((3, 3, 16, 32), "jax", 2), ((50, 20), "embedding", 1)],
)
def test_orthogonal_blocks_satisfy_wtw_equals_identity(
    method: str, shape: tuple[int, ...], layout: str, groups: int
) -> None:
    gain = 1.5
    weight = il.orthogonal(gain=gain, method=method).sample(shape, layout=layout, groups=groups, generator=seeded())
    if layout in ("keras", "jax"):
        matrix = weight.reshape(-1, shape[-1])
        blocks = matrix.reshape(matrix.shape[0], groups, -1).transpose(0, 1)
    else:
        blocks = weight.reshape(groups, shape[0] // groups, -1)
    for block in blocks / gain:
        rows, cols = block.shape
        gram = block.T @ block if rows >= cols else block @ block.T
        assert float((gram - torch.eye(min(rows, cols))).abs().max()) < 1e-5


def test_delta_orthogonal_is_orthogonal_at_the_centre_and_zero_elsewhere() -> None:
    weight = il.delta_orthogonal(gain=2.0).sample((32, 16, 3, 3), layout="conv", generator=seeded())
    centre = weight[:, :, 1, 1] / 2.0
    assert float((centre.T @ centre - torch.eye(16)).abs().max()) < 1e-5
    weight[:, :, 1, 1] = 0
    assert torch.count_nonzero(weight) == 0
    grouped = il.delta_orthogonal().sample((3, 3, 8, 16), layout="keras", groups=2, generator=seeded())
    for g in range(2):
        block = grouped[1, 1, :, 8 * g : 8 * (g + 1)]
        assert float((block.T @ block - torch.eye(8)).abs().max()) < 1e-5


def test_dirac_kernel_makes_the_convolution_an_identity_map() -> None:
    x = torch.randn(2, 6, 9, 9, generator=seeded())
    conv = il.dirac().sample((6, 6, 3, 3), layout="conv")
    torch.testing.assert_close(torch.nn.functional.conv2d(x, conv, padding=1), x)
    grouped = il.dirac(groups=3).sample((6, 2, 3, 3), layout="conv")
    torch.testing.assert_close(torch.nn.functional.conv2d(x, grouped, padding=1, groups=3), x)
    transpose = il.dirac().sample((6, 3, 3, 3), layout="conv_transpose", groups=2)
    torch.testing.assert_close(torch.nn.functional.conv_transpose2d(x, transpose, padding=1, groups=2), x)


def test_zero_hadamard_follows_the_three_cases_of_zero_init() -> None:
    assert torch.equal(il.zero_hadamard().sample((8, 8)), torch.eye(8))
    assert torch.equal(il.zero_hadamard().sample((4, 8)), torch.eye(4, 8))
    sylvester = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(4):
        sylvester = torch.cat([torch.cat([sylvester, sylvester], 1), torch.cat([sylvester, -sylvester], 1)], 0)
    assert torch.equal(hadamard_block(16, 16), sylvester)
    grown = zero_matrix(12, 5)  # m = ceil(log2 12) = 4, c = 2^(-3/2)
    torch.testing.assert_close(grown, sylvester[:12, :5] * 2.0 ** -1.5, rtol=0, atol=1e-15)
    widening = il.zero_hadamard().sample((16, 4), dtype=torch.float64)  # out = 2^m: W^T W = c^2 2^m I = 2 I
    torch.testing.assert_close(widening.T @ widening, 2.0 * torch.eye(4, dtype=torch.float64))
    kernel = il.zero_hadamard().sample((16, 4, 3, 3), layout="conv")
    assert torch.equal(kernel[:, :, 1, 1], widening.float()) and torch.count_nonzero(kernel) == 64


def test_zero_hadamard_widening_layer_gives_units_different_weights_where_identity_cannot() -> None:
    # two Hadamard rows differ on the first `in` columns iff their indices differ in a bit below in - 1's length
    for out_features, in_features in [(8, 5), (12, 9), (16, 9), (12, 7), (8, 4)]:
        weight = il.zero_hadamard().sample((out_features, in_features))
        distinct = min(out_features, 2 ** (in_features - 1).bit_length())
        assert torch.unique(weight, dim=0).shape[0] == distinct
        partial_identity = torch.eye(out_features, in_features)
        assert torch.unique(partial_identity, dim=0).shape[0] == in_features + 1


@pytest.mark.parametrize(
    "init,shape,layout",
    [(il.identity(gain=2.0), (6, 4), "linear"), (il.dirac(gain=0.5), (4, 6, 3), "conv"),
     (il.zero_hadamard(), (12, 5, 3), "conv"), (il.zero_hadamard(), (5, 12), "embedding"),
     (il.constant(0.3), (7, 3), "linear"), (il.ones(), (5,), "vector")],
)
def test_deterministic_schemes_declare_their_exact_moments(init: il.schemes.Initializer, shape: tuple[int, ...], layout: str) -> None:
    values = init.sample(shape, layout=layout, dtype=torch.float64)
    moments = init.moments(shape, layout)
    assert float(values.mean()) == pytest.approx(moments.mean, abs=1e-12)
    assert float(values.std(unbiased=False)) == pytest.approx(moments.std, abs=1e-12)


# -- string forms ----------------------------------------------------------------------------
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "gain": positive,
    "scale": positive,
    "std": positive,
    "mean": finite,
    "value": finite,
    "negative_slope": st.just(0.0),
    "sparsity": st.floats(min_value=0.0, max_value=1.0),
    "mode": st.sampled_from(["fan_in", "fan_out"]),
    "distribution": st.sampled_from(["normal", "uniform", "truncated_normal"]),
    "nonlinearity": st.sampled_from(["relu", "tanh", "gelu", "linear", "selu"]),
    "convention": st.just("exact"),
    "method": st.sampled_from(["qr", "svd"]),
    "groups": st.integers(1, 8),
    "std_after_truncation": st.booleans(),
    "activation": st.sampled_from(["tanh", "erf", "sigmoid"]),
    "sigma_b2": st.floats(min_value=0.0, max_value=0.5),
    "center": st.sampled_from(["torch", "jax"]),
    # the frameworks' parameters (initlab.schemes.dialects)
    "stddev": positive,
    "val": finite,
    "in_axis": st.sampled_from([-2, 0, (0,), (0, 1)]),
    "out_axis": st.sampled_from([-1, 1, (1, 2)]),
    "batch_axis": st.sampled_from([(), 0, (0, 2)]),
    "column_axis": st.just(-1),
    "range": st.one_of(st.floats(min_value=1e-3, max_value=1e3), st.just((-0.5, 2.0))),
}
# parameters that must be strictly positive in some frameworks (Keras' scale, JAX's uniform scale)
STRICTLY_POSITIVE = st.floats(min_value=1e-6, max_value=1e6)


@st.composite
def scheme_configs(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(_REGISTRY)))
    config: dict[str, Any] = {"name": name}
    for field in dataclasses.fields(_REGISTRY[name]):  # type: ignore[arg-type]
        if field.name in ("a", "b", "minval", "maxval", "lower", "upper"):
            continue
        config[field.name] = draw(FIELD_VALUES[field.name])
    if name in ("keras:variance_scaling", "jax:uniform"):
        config["scale"] = draw(STRICTLY_POSITIVE)
    if name in ("torch:trunc_normal_", "timm:trunc_normal_", "lasagne:Uniform") and "std" in config:
        config["std"] = draw(st.one_of(STRICTLY_POSITIVE, st.none())) if name == "lasagne:Uniform" else draw(STRICTLY_POSITIVE)
    if name.startswith(("keras:", "jax:", "timm:")) and "mode" in config:
        config["mode"] = draw(st.sampled_from(["fan_in", "fan_out", "fan_avg"]))
    if name.startswith(("keras:", "jax:", "timm:")) and "distribution" in config:
        config["distribution"] = draw(st.sampled_from(["normal", "uniform", "truncated_normal"]))
    if name.startswith("torch:kaiming"):
        config["nonlinearity"] = draw(st.sampled_from(["leaky_relu", "relu", "tanh", "selu", "linear", "conv2d"]))
    if name.startswith("lasagne:") and "gain" in config and draw(st.booleans()):
        config["gain"] = "relu"
    if name == "lasagne:Sparse":
        config["sparsity"] = draw(st.floats(min_value=0.0, max_value=1.0))
    if name == "uniform":
        low = draw(st.floats(-1e3, 1e3))
        config.update(a=low, b=low + draw(st.floats(1e-3, 1e3)))
    if name == "truncated_normal":
        low = draw(st.floats(-5.0, 1.0))
        config.update(a=low, b=low + draw(st.floats(0.5, 5.0)))
    if name == "edge_of_chaos":
        config["distribution"] = draw(st.sampled_from(["normal", "truncated_normal"]))
    if name == "variance_scaling":
        config["mode"] = draw(st.sampled_from(["fan_in", "fan_out", "fan_avg"]))
    if name.startswith("he_") and draw(st.booleans()):
        config.update(nonlinearity="leaky_relu", negative_slope=draw(positive), convention=draw(st.sampled_from(["exact", "torch"])))
    return config


@settings(max_examples=300, deadline=None)
@given(scheme_configs())
def test_every_registered_scheme_round_trips_through_its_string(config: dict[str, Any]) -> None:
    init = il.get(config)
    assert il.get(str(init)) == init
    assert il.get(repr(init)) == init
    assert il.get(init.config()) == init
    assert str(il.get(str(init))) == str(init)


def test_strings_accept_bare_names_aliases_and_positional_values() -> None:
    assert il.get("zeros") == il.zeros()
    assert il.get("kaiming_normal") == il.he_normal()
    assert il.get("xavier_uniform(2.0)") == il.glorot_uniform(gain=2.0)
    assert il.get("he_normal(mode=fan_out, nonlinearity=leaky_relu, negative_slope=0.2)") == il.he_normal(
        mode="fan_out", nonlinearity="leaky_relu", negative_slope=0.2
    )
    assert il.get(" sparse ( 0.5 , std = 0.1 ) ") == il.sparse(0.5, 0.1)


def test_catalogue_lists_every_scheme_with_formula_and_reference(capsys: pytest.CaptureFixture[str]) -> None:
    rows = il.list_schemes()
    names = {row.name for row in rows}
    required = {"lecun_normal", "glorot_uniform", "he_truncated_normal", "orthogonal", "sparse", "identity",
                "dirac", "delta_orthogonal", "zero_hadamard", "torch_default", "keras_default",
                "flax_default", "lasagne_default", "small_random", "truncated_normal"}
    assert required <= names
    assert all(row.formula and row.reference and row.summary for row in rows)
    assert list_cmd.run(argparse.Namespace(names=False, json=False, query=None)) == 0
    printed = capsys.readouterr().out
    assert all(row.name in printed and row.formula in printed and row.reference in printed for row in rows)
    assert list_cmd.run(argparse.Namespace(names=True, json=False, query="orth")) == 0
    assert capsys.readouterr().out.split() == ["orthogonal", "delta_orthogonal"]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: il.get("he_norml"), ValueError, "unknown scheme 'he_norml'; did you mean he_normal"),
        (lambda: il.get("he_normal(mode=fan_in"), ValueError, "malformed scheme string"),
        (lambda: il.get("he_normal(mode=1+2)"), ValueError, "cannot read value"),
        (lambda: il.get("he_normal(**x)"), ValueError, "'\\*\\*' is not accepted"),
        (lambda: il.get("he_normal(fan=3)"), TypeError, "unknown parameter 'fan'; accepted: mode"),
        (lambda: il.get("glorot_uniform(1.0, 2.0)"), TypeError, "at most 1 positional"),
        (lambda: il.get("normal()()"), ValueError, "malformed scheme string"),
        (lambda: il.get({"std": 1.0}), ValueError, "'name' key"),
        (lambda: il.get(3), TypeError, "string, a config dict or an Initializer"),  # type: ignore[arg-type]
        (lambda: il.normal(std=-1.0), ValueError, "std must be >= 0.0, got -1.0"),
        (lambda: il.small_random(scale=-0.01), ValueError, "scale must be >= 0.0"),
        (lambda: il.variance_scaling(scale=-2.0), ValueError, "scale must be >= 0.0"),
        (lambda: il.normal(std=float("nan")), ValueError, "std must be finite"),
        (lambda: il.normal(std="1"), TypeError, "std must be a number"),  # type: ignore[arg-type]
        (lambda: il.sparse(sparsity=1.5), ValueError, "sparsity must be in \\[0, 1\\]"),
        (lambda: il.sparse(sparsity=-0.1), ValueError, "sparsity must be in \\[0, 1\\]"),
        (lambda: il.orthogonal(method="cholesky"), ValueError, "method must be one of qr, svd, got 'cholesky'"),
        (lambda: il.orthogonal(gain=-1.0), ValueError, "gain must be >= 0.0"),
        (lambda: il.uniform(a=1.0, b=0.0), ValueError, "a < b"),
        (lambda: il.truncated_normal(a=2.0, b=-2.0), ValueError, "a < b"),
        (lambda: il.he_normal(mode="fan_avg"), ValueError, "mode must be one of fan_in, fan_out"),
        (lambda: il.he_normal(nonlinearity="relux"), ValueError, "unknown activation 'relux'"),
        (lambda: il.dirac(groups=0), ValueError, "groups must be an int >= 1"),
        (lambda: il.he_normal()(torch.empty(10)), ValueError, "expects a 2-D shape"),
        (lambda: il.he_normal()(torch.empty(4, 3, 3), layout="linear"), ValueError, "expects a 2-D shape"),
        (lambda: il.he_normal()(torch.empty(4, 3), layout="dense"), ValueError, "layout must be one of"),
        (lambda: il.normal()(torch.empty(4, 3), layout="dense"), ValueError, "layout must be one of"),
        (lambda: il.orthogonal()(torch.empty(10), layout="vector"), ValueError, "at least 2 dims"),
        (lambda: il.orthogonal()(torch.empty(6, 3), groups=2), ValueError, "groups=2 applies to"),
        (lambda: il.identity()(torch.empty(4, 3, 3), layout="conv"), ValueError, "use dirac for convolution kernels"),
        (lambda: il.dirac()(torch.empty(4, 3)), ValueError, "use identity or orthogonal for matrices"),
        (lambda: il.dirac(groups=2)(torch.empty(4, 2, 3), layout="conv", groups=4), ValueError, "disagrees"),
        (lambda: il.sparse()(torch.empty(5), layout="vector"), ValueError, "at least 2 dims"),
        (lambda: il.zero_hadamard()(torch.empty(6, 2, 3), layout="conv", groups=4), ValueError, "not divisible"),
        (lambda: il.he_normal()(torch.empty(4, 3, dtype=torch.int64)), TypeError, "dtype torch.int64"),
        (lambda: il.normal()(torch.empty(4, 3, dtype=torch.bool)), TypeError, "floating tensors only"),
        (lambda: il.normal().sample((3,), dtype=torch.int32), TypeError, "floating tensors only"),
        (lambda: il.normal()([1.0, 2.0]), TypeError, "expected a torch.Tensor"),  # type: ignore[arg-type]
        (lambda: il.normal()(torch.empty(3), generator=0), TypeError, "generator must be None"),  # type: ignore[arg-type]
        (lambda: il.normal().numpy((3,), rng="seed"), TypeError, "rng must be"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_raises_naming_the_argument_and_what_is_accepted(call, error: type[Exception], message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()


def test_failed_fill_leaves_the_tensor_untouched() -> None:
    weight = torch.full((4, 3, 3), 7.0)
    with pytest.raises(ValueError):
        il.he_normal()(weight, layout="linear")
    with pytest.raises(ValueError):
        il.dirac()(weight, layout="conv", groups=3)
    assert torch.all(weight == 7.0)
