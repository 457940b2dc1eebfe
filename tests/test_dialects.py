"""Framework dialects: torch's meaning bit for bit, timm's and Lasagne's from their source formulas.

torch is the reference library itself (the pinned 2.13). timm and Lasagne do
not install beside it (timm needs torchvision, Lasagne Theano); their tests
follow timm/layers/weight_init.py (huggingface/pytorch-image-models aa4b585)
and lasagne/init.py (Lasagne/Lasagne 5d3c63c), the formulas written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

import initlab as il

Z = 5.0
KS_ALPHA = 1e-4


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- strings and the catalogue -------------------------------------------------------------------
@pytest.mark.parametrize("namespace", ["keras", "jax", "flax", "torch", "timm", "lasagne"])
def test_every_dialect_name_round_trips_and_is_listed_under_its_namespace(namespace: str) -> None:
    rows = il.list_schemes(namespace)
    assert rows and all(any(key.startswith(f"{namespace}:") for key in (row.name, *row.aliases)) for row in rows)
    assert namespace in il.schemes.registry.namespaces()
    for row in rows:
        scheme = il.get(row.name)
        assert il.get(str(scheme)) == scheme
        assert il.get(scheme.config()) == scheme
    assert not any(":" in row.name for row in il.list_schemes())  # initlab's own catalogue stays as it was


def test_dialect_strings_work_in_plans_and_unknown_names_say_where_to_look() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    plan = il.Plan.parse("keras:he_normal; bias=torch:constant_(val=0.1)")
    assert il.Plan.parse(str(plan)) == plan
    report = il.init_model(model, plan=plan, seed=0)
    assert torch.all(model[0].bias == 0.1)
    assert report["0.weight"].expected_std == pytest.approx(math.sqrt(2 / 8), rel=1e-12)
    with pytest.raises(ValueError, match="no framework 'kerass'"):
        il.get("kerass:he_normal")
    with pytest.raises(ValueError, match=r"list_schemes\('keras'\)"):
        il.get("keras:kaiming_normal")
    with pytest.raises(ValueError, match="dialect must be None or one of"):
        il.list_schemes("caffe")
    assert il.get("flax:default") == il.flax_default() and il.get("torch:default") == il.torch_default()


# -- torch: the same bits as torch.nn.init ---------------------------------------------------------
# (weight shape, layout, groups) where initlab's own fans differ from torch's and where they agree
LAYERS = [
    ((64, 32), "linear", 1),
    ((16, 8, 3, 3), "conv", 1),
    ((16, 2, 3, 3), "conv", 4),
    ((12, 8, 3, 3), "conv_transpose", 1),
    ((12, 4, 3, 3), "conv_transpose", 2),
    ((8, 4, 5), "conv", 1),
]


@pytest.mark.parametrize("shape,layout,groups", LAYERS)
@pytest.mark.parametrize(
    "name,reference",
    [
        ("torch:kaiming_normal_", lambda w, g: nn.init.kaiming_normal_(w, generator=g)),
        ("torch:kaiming_uniform_(a=2.23606797749979)", lambda w, g: nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)),
        ("torch:kaiming_normal_(mode=fan_out, nonlinearity=relu)", lambda w, g: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g)),
        ("torch:kaiming_uniform_(nonlinearity=tanh)", lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="tanh", generator=g)),
        ("torch:xavier_uniform_(gain=1.5)", lambda w, g: nn.init.xavier_uniform_(w, gain=1.5, generator=g)),
        ("torch:xavier_normal_", lambda w, g: nn.init.xavier_normal_(w, generator=g)),
        ("torch:uniform_(a=-0.3, b=0.7)", lambda w, g: nn.init.uniform_(w, -0.3, 0.7, generator=g)),
        ("torch:normal_(mean=0.1, std=0.2)", lambda w, g: nn.init.normal_(w, 0.1, 0.2, generator=g)),
        ("torch:orthogonal_(gain=2.0)", lambda w, g: nn.init.orthogonal_(w, gain=2.0, generator=g)),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_torch_names_give_torchs_bits_for_the_same_generator(name, reference, shape, layout, groups) -> None:  # type: ignore[no-untyped-def]
    expected = reference(torch.empty(shape), seeded(3))
    ours = il.get(name)(torch.empty(shape), layout=layout, groups=groups, generator=seeded(3))
    assert torch.equal(ours, expected)


def test_torch_fans_differ_from_initlabs_for_grouped_and_transposed_convs() -> None:
    # Conv2d(8, 16, 3, groups=4): torch's fan_out is out * k = 144, initlab's out/g * k = 36
    grouped = (16, 2, 3, 3)
    assert il.get("torch:kaiming_normal_(mode=fan_out)").describe(grouped, "conv", 4).expected_std == pytest.approx(math.sqrt(2 / 144), rel=1e-12)
    assert il.he_normal(mode="fan_out").describe(grouped, "conv", 4).expected_std == pytest.approx(math.sqrt(2 / 36), rel=1e-12)
    # ConvTranspose2d(12, 8, 3): torch's fan_in is dim 1 * k = 72 (the layer's outputs), initlab's 12 * 9 = 108
    transposed = (12, 8, 3, 3)
    assert il.get("torch:kaiming_normal_").describe(transposed, "conv_transpose").expected_std == pytest.approx(math.sqrt(2 / 72), rel=1e-12)
    assert il.he_normal().describe(transposed, "conv_transpose").expected_std == pytest.approx(math.sqrt(2 / 108), rel=1e-12)


def test_torch_trunc_normal_takes_absolute_bounds() -> None:
    reference = nn.init.trunc_normal_(torch.empty(200, 100), std=0.02, a=-0.03, b=0.05, generator=seeded(4))
    scheme = il.get("torch:trunc_normal_(std=0.02, a=-0.03, b=0.05)")
    ours = scheme.sample((200, 100), generator=seeded(4))
    assert scipy.stats.ks_2samp(reference.numpy().ravel(), ours.numpy().ravel()).pvalue > KS_ALPHA
    assert scheme.describe((200, 100)).bounds == pytest.approx((-0.03, 0.05))
    # the default bounds are +-2 absolute: with std 0.02 nothing is cut
    assert il.get("torch:trunc_normal_(std=0.02)").describe((4, 4)).expected_std == pytest.approx(0.02, rel=1e-12)


def test_torch_sparse_counts_its_zeros_per_column_and_dirac_and_eye_are_torchs() -> None:
    values = il.get("torch:sparse_(sparsity=0.3)").sample((20, 50), generator=seeded(5))
    reference = nn.init.sparse_(torch.empty(20, 50), 0.3, generator=seeded(5))
    assert torch.equal((values == 0).sum(dim=0), (reference == 0).sum(dim=0))  # ceil(0.3 * 20) = 6 per column
    assert torch.equal(il.get("torch:dirac_(groups=2)").sample((8, 3, 4, 4), layout="conv"),
                       nn.init.dirac_(torch.empty(8, 3, 4, 4), groups=2))
    assert torch.equal(il.get("torch:eye_").sample((3, 5)), nn.init.eye_(torch.empty(3, 5)))


# -- timm: from timm/layers/weight_init.py -----------------------------------------------------------
def timm_trunc_normal_tf_(tensor: torch.Tensor, mean: float, std: float, a: float, b: float, generator: torch.Generator) -> torch.Tensor:
    """timm's formula: a standard normal cut to [a, b], then times std plus mean."""
    nn.init.trunc_normal_(tensor, 0.0, 1.0, a, b, generator=generator)
    return tensor.mul_(std).add_(mean)


def timm_variance_scaling_(tensor: torch.Tensor, scale: float, mode: str, distribution: str, generator: torch.Generator) -> torch.Tensor:
    """timm's formula: torch's fans, "normal" untruncated, "truncated_normal" std / 0.87962566103423978."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(tensor)
    variance = scale / {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    if distribution == "truncated_normal":
        return timm_trunc_normal_tf_(tensor, 0.0, math.sqrt(variance) / 0.87962566103423978, -2.0, 2.0, generator)
    if distribution == "normal":
        return tensor.normal_(0.0, math.sqrt(variance), generator=generator)
    bound = math.sqrt(3 * variance)
    return tensor.uniform_(-bound, bound, generator=generator)


@pytest.mark.parametrize(
    "name,reference",
    [
        ("timm:trunc_normal_(std=0.02)", lambda w, g: nn.init.trunc_normal_(w, std=0.02, generator=g)),
        ("timm:trunc_normal_tf_(mean=0.1, std=0.02, a=-1.5, b=2.5)", lambda w, g: timm_trunc_normal_tf_(w, 0.1, 0.02, -1.5, 2.5, g)),
        ("timm:variance_scaling_", lambda w, g: timm_variance_scaling_(w, 1.0, "fan_in", "normal", g)),
        ("timm:variance_scaling_(scale=2.0, mode=fan_avg, distribution=uniform)", lambda w, g: timm_variance_scaling_(w, 2.0, "fan_avg", "uniform", g)),
        ("timm:lecun_normal_", lambda w, g: timm_variance_scaling_(w, 1.0, "fan_in", "truncated_normal", g)),
    ],
)
@pytest.mark.parametrize("shape,layout,groups", [((64, 32, 3, 3), "conv", 1), ((64, 8, 3, 3), "conv", 4), ((48, 64, 3, 3), "conv_transpose", 1)])
def test_timm_names_follow_timms_formulas(name, reference, shape, layout, groups) -> None:  # type: ignore[no-untyped-def]
    expected = reference(torch.empty(shape, dtype=torch.float64), seeded(6)).numpy().ravel()
    scheme = il.get(name)
    ours = scheme.sample(shape, layout=layout, groups=groups, dtype=torch.float64, generator=seeded(7)).numpy().ravel()
    assert scipy.stats.ks_2samp(expected, ours).pvalue > KS_ALPHA
    std = scheme.describe(shape, layout, groups).expected_std
    assert abs(expected.std() - std) < Z * std * math.sqrt(2.0 / (4 * expected.size))


# -- Lasagne: from lasagne/init.py -----------------------------------------------------------------------
def lasagne_glorot_std(w_shape: tuple[int, ...], gain: float) -> float:
    """Lasagne Glorot: gain * sqrt(2 / ((n1 + n2) * receptive)), (n1, n2) = W.shape[:2]."""
    n1, n2 = w_shape[:2]
    return gain * math.sqrt(2.0 / ((n1 + n2) * math.prod(w_shape[2:])))


def lasagne_he_std(w_shape: tuple[int, ...], gain: float) -> float:
    """Lasagne He: gain / sqrt(fan_in), fan_in = W.shape[0] for 2-D, prod(W.shape[1:]) otherwise."""
    fan_in = w_shape[0] if len(w_shape) == 2 else math.prod(w_shape[1:])
    return gain / math.sqrt(fan_in)


# torch weight, its layout and groups, and the W Lasagne's layer holds: DenseLayer (in, out), Conv2DLayer (out, in/g, *k)
LASAGNE_LAYERS = [((30, 70), "linear", 1, (70, 30)), ((32, 16, 3, 3), "conv", 1, (32, 16, 3, 3)), ((32, 4, 3, 3), "conv", 4, (32, 4, 3, 3))]


@pytest.mark.parametrize("torch_shape,layout,groups,lasagne_shape", LASAGNE_LAYERS)
@pytest.mark.parametrize("gain", [1.0, "relu", 0.5])
def test_lasagne_glorot_and_he_follow_lasagnes_formula_on_lasagnes_weight(torch_shape, layout, groups, lasagne_shape, gain) -> None:  # type: ignore[no-untyped-def]
    value = math.sqrt(2.0) if gain == "relu" else gain
    written = f"gain={gain}" if gain == "relu" else f"gain={gain!r}"
    for name, std in [("GlorotNormal", lasagne_glorot_std(lasagne_shape, value)), ("GlorotUniform", lasagne_glorot_std(lasagne_shape, value)),
                      ("HeNormal", lasagne_he_std(lasagne_shape, value)), ("HeUniform", lasagne_he_std(lasagne_shape, value))]:
        scheme = il.get(f"lasagne:{name}({written})")
        assert scheme.describe(torch_shape, layout, groups).expected_std == pytest.approx(std, rel=1e-12), name
    # He's default gain is 1: Lasagne's HeNormal() is LeCun's variance, not He's
    assert il.get("lasagne:HeNormal").describe((30, 70)).expected_std == pytest.approx(1 / math.sqrt(70), rel=1e-12)


def test_lasagne_uniform_normal_and_sparse_follow_lasagnes_definitions() -> None:
    assert il.get("lasagne:Uniform").describe((3, 3)).bounds == (-0.01, 0.01)
    assert il.get("lasagne:Uniform(range=(-0.5, 2.0))").describe((3, 3)).bounds == (-0.5, 2.0)
    low, high = il.get("lasagne:Uniform(std=0.1, mean=1.0)").describe((3, 3)).bounds
    assert (low, high) == pytest.approx((1.0 - math.sqrt(3) * 0.1, 1.0 + math.sqrt(3) * 0.1))
    assert il.get("lasagne:Normal").describe((3, 3)).expected_std == 0.01
    # Sparse(sparsity): int(sparsity * n_inputs) non-zeros per output unit
    values = il.get("lasagne:Sparse(sparsity=0.25, std=0.5)").sample((40, 30), generator=seeded(8))
    assert torch.all((values != 0).sum(dim=1) == int(0.25 * 30))
    assert torch.equal(il.get("lasagne:Constant(val=0.3)").sample((2, 2)), torch.full((2, 2), 0.3))
    orthogonal = il.get("lasagne:Orthogonal(gain=relu)").sample((20, 30), generator=seeded(9)).double()
    torch.testing.assert_close(orthogonal @ orthogonal.T, 2.0 * torch.eye(20, dtype=torch.float64), atol=1e-5, rtol=0)


def test_lasagne_default_uses_lasagnes_glorot_on_lasagnes_fans() -> None:
    for torch_shape, layout, groups, lasagne_shape in LASAGNE_LAYERS:
        description = il.get("lasagne:default").describe(torch_shape, layout, groups)
        assert description.expected_std == pytest.approx(lasagne_glorot_std(lasagne_shape, 1.0), rel=1e-12)
        assert description.fans.fan_in + description.fans.fan_out == sum(lasagne_shape[:2]) * math.prod(lasagne_shape[2:])


def test_presets_print_the_fans_their_std_comes_from() -> None:
    for preset in (il.keras_default(), il.flax_default(), il.lasagne_default()):
        for shape, layout, groups in LAYERS:
            description = preset.describe(shape, layout, groups)
            fans = description.fans
            mode_n = fans.fan_in if preset.name == "flax_default" else (fans.fan_in + fans.fan_out) / 2
            factor = 1.0 / il.schemes.variance.TRUNCATED_STD_FACTOR if preset.name == "flax_default" else math.sqrt(3.0)
            assert description.bounds[1] == pytest.approx(factor * math.sqrt(1.0 / mode_n) * (2.0 if preset.name == "flax_default" else 1.0), rel=1e-12)
            sample = preset.sample(shape, layout=layout, groups=groups, generator=seeded(10))
            assert float(sample.abs().max()) <= description.bounds[1]


def test_jax_uniform_is_not_centred_unlike_torch_uniform() -> None:
    values = il.get("jax:uniform(scale=1.0)").sample((100, 100), generator=seeded(11)).numpy()
    assert values.min() >= 0.0 and abs(values.mean() - 0.5) < Z * math.sqrt(1 / 12 / values.size)
    assert np.allclose(il.get("torch:uniform_").describe((2, 2)).bounds, (0.0, 1.0))


# -- every torch: name against torch.nn.init of that name, torch's defaults ---------------------------------
TORCH_ARGUMENTS: dict[str, dict[str, float]] = {"constant_": {"val": 0.3}, "sparse_": {"sparsity": 0.25}}
TORCH_NAMES = [row for row in il.list_schemes("torch") if row.name.startswith("torch:")]


@pytest.mark.parametrize("row", TORCH_NAMES, ids=lambda row: row.name)
def test_every_torch_name_gives_the_bits_of_the_torch_init_of_that_name(row) -> None:  # type: ignore[no-untyped-def]
    name = row.name.split(":", 1)[1]
    arguments = TORCH_ARGUMENTS.get(name, {})
    shape, layout = ((8, 4, 3, 3), "conv") if name == "dirac_" else ((60, 40), "linear")
    expected = getattr(nn.init, name)(torch.empty(shape), **arguments, **({} if name in ("ones_", "zeros_", "eye_", "dirac_", "constant_") else {"generator": seeded(12)}))
    scheme = type(il.get(row.name))(**arguments)
    ours = scheme(torch.empty(shape), layout=layout, generator=seeded(12))
    if name == "trunc_normal_":  # torch draws it by inverse CDF, initlab by its own sampler: the same law
        assert scipy.stats.ks_2samp(expected.numpy().ravel(), ours.numpy().ravel()).pvalue > KS_ALPHA
    elif name == "sparse_":  # the same number of zeros in each column, the same law elsewhere; other positions
        assert torch.equal((ours == 0).sum(dim=0), (expected == 0).sum(dim=0))
        assert scipy.stats.ks_2samp(expected[expected != 0].numpy(), ours[ours != 0].numpy()).pvalue > KS_ALPHA
    else:
        assert torch.equal(ours, expected)
