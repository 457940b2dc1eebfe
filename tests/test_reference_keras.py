"""Against Keras 3 (torch backend): the keras: dialect and keras_default, fans included.

Keras 3.15.1 is in the dev extra (the same source as keras-team/keras commit
3422977). KERAS_BACKEND is set to torch for the import here only. Two samples
are "the same distribution" when a two-sample KS test does not reject at
alpha = 1e-4 and the stds agree within Z standard errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

import initlab as il
from initlab.schemes.frameworks import keras_fans

Z = 5.0
KS_ALPHA = 1e-4


@pytest.fixture(scope="module")
def keras() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_BACKEND", "torch")
        keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was imported with the {keras.backend.backend()} backend before these tests")
    return keras


@pytest.fixture(scope="module")
def compute_fans(keras: Any) -> Any:
    from keras.src.initializers.random_initializers import compute_fans

    return compute_fans


def _numpy(keras: Any, values: Any) -> np.ndarray:
    """Keras' values (a torch tensor, or a Variable holding one, on the torch backend) as float64."""
    tensor = getattr(values, "value", values)
    return tensor.detach().cpu().double().numpy().ravel()


def assert_same_distribution(reference: np.ndarray, ours: np.ndarray, expected_std: float, kurtosis: float) -> None:
    assert scipy.stats.ks_2samp(reference, ours).pvalue > KS_ALPHA
    tolerance = Z * expected_std * math.sqrt((kurtosis - 1.0) / (4 * reference.size))
    assert abs(reference.std() - expected_std) < tolerance
    assert abs(ours.std() - expected_std) < tolerance


# keras kernel (*k, in, out) and the torch conv weight (out, in, *k) of the same layer
KERNEL = (3, 3, 40, 60)
WEIGHT = (60, 40, 3, 3)
KURTOSIS = {"truncated_normal": 2.36, "uniform": 1.8, "normal": 3.0}


@pytest.mark.parametrize(
    "keras_name,initlab_name,distribution",
    [
        ("GlorotNormal", "keras:glorot_normal", "truncated_normal"),
        ("GlorotUniform", "keras:glorot_uniform", "uniform"),
        ("HeNormal", "keras:he_normal", "truncated_normal"),
        ("HeUniform", "keras:he_uniform", "uniform"),
        ("LecunNormal", "keras:lecun_normal", "truncated_normal"),
        ("LecunUniform", "keras:lecun_uniform", "uniform"),
    ],
)
def test_keras_variance_scaling_names_draw_what_keras_draws(keras, keras_name, initlab_name, distribution) -> None:  # type: ignore[no-untyped-def]
    reference = _numpy(keras, getattr(keras.initializers, keras_name)(seed=1)(KERNEL))
    scheme = il.get(initlab_name)
    assert scheme == il.get(f"keras:{keras_name}")  # Keras' CamelCase spelling is an alias
    description = scheme.describe(WEIGHT, "conv")
    ours = scheme.sample(WEIGHT, layout="conv", generator=torch.Generator().manual_seed(1)).double().numpy().ravel()
    assert_same_distribution(reference, ours, description.expected_std, KURTOSIS[distribution])
    assert description.distribution == distribution
    if distribution == "truncated_normal":  # Keras' *_normal never go past 2 sigma
        sigma = description.expected_std / il.schemes.variance.TRUNCATED_STD_FACTOR
        assert np.abs(reference).max() <= 2 * sigma + 1e-6 and np.abs(ours).max() <= 2 * sigma + 1e-6


def test_initlab_he_normal_is_untruncated_where_keras_he_normal_is_truncated(keras) -> None:  # type: ignore[no-untyped-def]
    keras_values = _numpy(keras, keras.initializers.HeNormal(seed=2)(KERNEL))
    ours = il.he_normal().sample(WEIGHT, layout="conv", generator=torch.Generator().manual_seed(2)).double().numpy().ravel()
    std = math.sqrt(2.0 / (40 * 9))
    assert np.abs(ours).max() > 3 * std > np.abs(keras_values).max()
    # N(0, std^2) puts 4.55% of its mass past 2 std; Keras' cut at 2 sigma (sigma = std / 0.88) none past 2.27 std
    sigma = std / il.schemes.variance.TRUNCATED_STD_FACTOR
    beyond = np.mean(np.abs(ours) > 2 * sigma)
    assert abs(beyond - 2 * scipy.stats.norm.sf(2 / 0.87962566)) < Z * math.sqrt(0.023 / ours.size)
    assert np.mean(np.abs(keras_values) > 2 * sigma) == 0.0


@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "untruncated_normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_keras_variance_scaling_reads_normal_as_truncated(keras, mode, distribution) -> None:  # type: ignore[no-untyped-def]
    keras_init = keras.initializers.VarianceScaling(scale=2.0, mode=mode, distribution=distribution, seed=3)
    reference = _numpy(keras, keras_init(KERNEL))
    scheme = il.get(f"keras:variance_scaling(scale=2.0, mode={mode}, distribution={distribution})")
    assert scheme.distribution == keras_init.get_config()["distribution"]  # Keras stores "normal" as truncated
    description = scheme.describe(WEIGHT, "conv")
    ours = scheme.sample(WEIGHT, layout="conv", generator=torch.Generator().manual_seed(3)).double().numpy().ravel()
    law = {"normal": "truncated_normal", "untruncated_normal": "normal"}.get(distribution, distribution)
    assert_same_distribution(reference, ours, description.expected_std, KURTOSIS[law])


@pytest.mark.parametrize(
    "keras_init,initlab_name,kurtosis",
    [
        ("RandomNormal", "keras:random_normal", 3.0),
        ("RandomUniform", "keras:random_uniform", 1.8),
        ("TruncatedNormal", "keras:truncated_normal", 2.36),
        ("Orthogonal", "keras:orthogonal", 3.0),
    ],
)
def test_keras_fixed_scale_initializers_keep_keras_defaults(keras, keras_init, initlab_name, kurtosis) -> None:  # type: ignore[no-untyped-def]
    shape = (200, 300)
    reference = _numpy(keras, getattr(keras.initializers, keras_init)(seed=4)(shape))
    scheme = il.get(initlab_name)
    ours = scheme.sample((300, 200), generator=torch.Generator().manual_seed(4)).double().numpy().ravel()
    expected = scheme.describe((300, 200)).expected_std
    assert_same_distribution(reference, ours, expected, kurtosis)


def test_keras_constant_like_initializers_match(keras) -> None:  # type: ignore[no-untyped-def]
    for keras_init, name in [("Zeros", "keras:zeros"), ("Ones", "keras:ones")]:
        assert np.array_equal(_numpy(keras, getattr(keras.initializers, keras_init)()((4, 5))),
                              il.get(name).sample((5, 4)).double().numpy().ravel())
    assert np.array_equal(_numpy(keras, keras.initializers.Constant(0.7)((4, 5))),
                          il.get("keras:constant(value=0.7)").sample((5, 4)).double().numpy().ravel())
    eye = _numpy(keras, keras.initializers.Identity(gain=2.0)((4, 6)))
    # the same map: a Keras (in, out) identity is the transpose of a torch (out, in) one
    ours = il.get("keras:identity(gain=2.0)").sample((6, 4)).double().numpy().T.ravel()
    assert np.array_equal(eye, ours)


def _build(keras: Any, layer: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    keras.utils.set_random_seed(5)
    layer.build(input_shape)
    return _numpy(keras, layer.kernel), tuple(layer.kernel.shape)


@pytest.mark.parametrize(
    "make,input_shape,weight,layout,groups",
    [
        (lambda k: k.layers.Dense(70), (None, 90), (70, 90), "linear", 1),
        (lambda k: k.layers.Conv2D(24, 3), (None, 10, 10, 16), (24, 16, 3, 3), "conv", 1),
        (lambda k: k.layers.Conv2D(24, 3, groups=4), (None, 10, 10, 16), (24, 4, 3, 3), "conv", 4),
        # depth_multiplier 2: torch's Conv2d(16, 32, 3, groups=16), weight (32, 1, 3, 3)
        (lambda k: k.layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 10, 10, 16), (32, 1, 3, 3), "conv", 16),
        (lambda k: k.layers.Conv2DTranspose(24, 3), (None, 10, 10, 16), (16, 24, 3, 3), "conv_transpose", 1),
        (lambda k: k.layers.Conv1D(24, 5), (None, 30, 16), (24, 16, 5), "conv", 1),
    ],
    ids=["dense", "conv", "grouped", "depthwise", "transposed", "conv1d"],
)
def test_keras_default_uses_the_fans_keras_layers_use_and_prints_them(keras, compute_fans, make, input_shape, weight, layout, groups) -> None:  # type: ignore[no-untyped-def]
    values, kernel_shape = _build(keras, make(keras), input_shape)
    fan_in, fan_out = compute_fans(kernel_shape)
    description = il.keras_default().describe(weight, layout, groups)
    assert (description.fans.fan_in, description.fans.fan_out) == (fan_in, fan_out)  # printed = used
    assert keras_fans(weight, layout, groups) == description.fans
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert description.bounds == pytest.approx((-limit, limit), rel=1e-12)
    assert np.abs(values).max() <= limit
    ours = il.keras_default().sample(weight, layout=layout, groups=groups, generator=torch.Generator().manual_seed(5))
    assert float(ours.abs().max()) <= limit
    assert_same_distribution(values, ours.double().numpy().ravel(), description.expected_std, 1.8)


def test_keras_default_embeddings_and_biases_match_keras_layers(keras) -> None:  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(6)
    embedding = keras.layers.Embedding(500, 40)
    embedding.build((None, 7))
    reference = _numpy(keras, embedding.embeddings)
    ours = il.keras_default().sample((500, 40), layout="embedding", generator=torch.Generator().manual_seed(6))
    assert_same_distribution(reference, ours.double().numpy().ravel(), 0.05 / math.sqrt(3.0), 1.8)
    dense = keras.layers.Dense(8)
    dense.build((None, 4))
    assert np.array_equal(_numpy(keras, dense.bias), il.keras_default().sample((8,), layout="vector").double().numpy())


# -- every keras: name against keras.initializers.get of the same name, with Keras' defaults --------------
KERAS_ARGUMENTS: dict[str, dict[str, Any]] = {"constant": {"value": 0.3},
                                              "variance_scaling": {"scale": 2.0, "mode": "fan_avg", "distribution": "normal"}}
KERAS_NAMES = [row for row in il.list_schemes("keras") if row.name.startswith("keras:")]


@pytest.mark.parametrize("row", KERAS_NAMES, ids=lambda row: row.name)
def test_every_keras_name_draws_what_the_keras_initializer_of_that_name_draws(keras, row) -> None:  # type: ignore[no-untyped-def]
    name = row.name.split(":", 1)[1]
    arguments = KERAS_ARGUMENTS.get(name, {})
    # the snake_case name and the CamelCase alias are Keras' two spellings of one initializer class
    camel = next(alias.split(":", 1)[1] for alias in row.aliases if alias.split(":", 1)[1][0].isupper())
    keras_class = getattr(keras.initializers, camel)
    if name != "constant":  # keras.initializers.get("constant") cannot build a Constant without a value
        assert type(keras.initializers.get(name)) is keras_class
    for alias in row.aliases:
        assert il.get(alias) == il.get(row.name)
    reference_init = keras_class(**arguments)
    keras.utils.set_random_seed(7)
    kernel = (40, 60)  # Keras' (in, out); initlab reads it in the "keras" layout
    reference = _numpy(keras, reference_init(kernel))
    scheme = type(il.get(row.name))(**arguments)
    description = scheme.describe(kernel, "keras")
    ours = scheme.sample(kernel, layout="keras", generator=torch.Generator().manual_seed(7)).double().numpy().ravel()
    if description.distribution in ("constant", "deterministic"):
        assert np.array_equal(reference, ours)
        return
    assert_same_distribution(reference, ours, description.expected_std, 3.0)
    assert abs(reference.mean() - ours.mean()) < Z * description.expected_std * math.sqrt(2.0 / reference.size)
