"""Cross-checks against torch.nn.init and torch's layer defaults on the same generator seed.

Where the algorithm is the same the bits must be the same; where initlab's
fans deliberately differ (grouped and transposed convolutions) the
difference must be exactly the documented factor.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import scipy.stats
import torch
from torch import nn

import initlab as il


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SAME_ALGORITHM: list[tuple[il.schemes.Initializer, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]] = [
    (il.normal(0.5, 2.0), lambda t, g: nn.init.normal_(t, 0.5, 2.0, generator=g)),
    (il.uniform(-1.0, 3.0), lambda t, g: nn.init.uniform_(t, -1.0, 3.0, generator=g)),
    (il.he_normal(), lambda t, g: nn.init.kaiming_normal_(t, generator=g)),
    (il.he_normal(mode="fan_out"), lambda t, g: nn.init.kaiming_normal_(t, mode="fan_out", generator=g)),
    (
        il.he_uniform(nonlinearity="leaky_relu", negative_slope=0.2),
        lambda t, g: nn.init.kaiming_uniform_(t, a=0.2, nonlinearity="leaky_relu", generator=g),
    ),
    (
        il.he_uniform(nonlinearity="tanh", convention="torch"),
        lambda t, g: nn.init.kaiming_uniform_(t, nonlinearity="tanh", generator=g),
    ),
    (
        il.he_normal(nonlinearity="selu", convention="torch"),
        lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="selu", generator=g),
    ),
    (il.glorot_uniform(gain=1.7), lambda t, g: nn.init.xavier_uniform_(t, gain=1.7, generator=g)),
    (il.glorot_normal(), lambda t, g: nn.init.xavier_normal_(t, generator=g)),
    (il.orthogonal(gain=1.3), lambda t, g: nn.init.orthogonal_(t, gain=1.3, generator=g)),
    (il.torch_default(), lambda t, g: nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)),
    (il.zeros(), lambda t, g: nn.init.zeros_(t)),
    (il.constant(0.25), lambda t, g: nn.init.constant_(t, 0.25)),
]


@pytest.mark.parametrize("init,reference", SAME_ALGORITHM, ids=[str(i) for i, _ in SAME_ALGORITHM])
@pytest.mark.parametrize("shape,layout", [((64, 32), "linear"), ((32, 64), "linear"), ((16, 8, 3, 3), "conv"), ((7, 5, 3), "conv")])
def test_same_algorithm_as_torch_gives_the_same_bits(
    init: il.schemes.Initializer, reference: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    shape: tuple[int, ...], layout: str,
) -> None:
    ours = init.sample(shape, layout=layout, generator=seeded())
    theirs = reference(torch.empty(shape), seeded())
    assert torch.equal(ours, theirs)


def test_torch_default_reproduces_linear_conv_and_embedding_layers_bit_for_bit() -> None:
    preset = il.torch_default()
    layers = [
        (lambda: nn.Linear(7, 3), "linear", 1),
        (lambda: nn.Conv2d(6, 4, 3, groups=2), "conv", 2),
        (lambda: nn.Conv1d(3, 5, 4), "conv", 1),
        (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), "conv_transpose", 2),
    ]
    for make, layout, groups in layers:
        torch.manual_seed(11)
        layer = make()
        torch.manual_seed(11)
        weight = preset(torch.empty_like(layer.weight), layout=layout, groups=groups)  # type: ignore[arg-type]
        bias = preset(torch.empty_like(layer.bias), layout=il.schemes.torch_fans(layer.weight.shape))  # type: ignore[arg-type]
        assert torch.equal(weight, layer.weight) and torch.equal(bias, layer.bias), type(layer).__name__  # type: ignore[arg-type]
    torch.manual_seed(11)
    embedding = nn.Embedding(50, 8)
    torch.manual_seed(11)
    assert torch.equal(preset(torch.empty(50, 8), layout="embedding"), embedding.weight)


def test_dirac_and_identity_equal_torch_dirac_and_eye() -> None:
    for shape, groups in [((6, 3, 3), 1), ((8, 2, 3, 3), 2), ((4, 4, 3, 3, 3), 1), ((6, 2, 5), 3)]:
        assert torch.equal(il.dirac(groups=groups).sample(shape, layout="conv"), nn.init.dirac_(torch.empty(shape), groups))
        assert torch.equal(il.dirac().sample(shape, layout="conv", groups=groups), nn.init.dirac_(torch.empty(shape), groups))
    for shape in [(5, 5), (3, 7), (7, 3)]:
        assert torch.equal(il.identity().sample(shape), nn.init.eye_(torch.empty(shape)))


def test_conv_transpose_fans_are_swapped_relative_to_torch() -> None:
    """torch reads dim 1 of a ConvTranspose weight as the input; initlab's fan_in is torch's fan_out / groups."""
    shape = (12, 4, 3, 3)  # ConvTranspose2d(12, 8, 3, groups=2): (in, out/g, k, k)
    ours = il.fans(shape, layout="conv_transpose", groups=2)
    torch_fan_in, torch_fan_out = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert (ours.fan_in, ours.fan_out) == (6 * 9, 4 * 9)
    assert (torch_fan_in, torch_fan_out) == (4 * 9, 12 * 9)
    # with groups=1 initlab's fan_in is exactly torch's fan_out: same bits as kaiming(mode=fan_out)
    ours_he = il.he_normal().sample(shape, layout="conv_transpose", generator=seeded())
    torch_he = nn.init.kaiming_normal_(torch.empty(shape), mode="fan_out", generator=seeded())
    assert torch.equal(ours_he, torch_he)
    # with groups=2 torch's fan_out overstates initlab's fan_in by the group count
    grouped = il.he_normal().sample(shape, layout="conv_transpose", groups=2, generator=seeded())
    torch.testing.assert_close(grouped, torch_he * math.sqrt(2.0), rtol=1e-6, atol=0.0)


def test_grouped_conv_fan_out_is_torch_fan_out_over_groups() -> None:
    shape = (16, 2, 3, 3)  # Conv2d(8, 16, 3, groups=4)
    ours = il.fans(shape, layout="conv", groups=4)
    torch_fan_in, torch_fan_out = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert ours.fan_in == torch_fan_in and ours.fan_out * 4 == torch_fan_out
    grouped = il.he_normal(mode="fan_out").sample(shape, layout="conv", groups=4, generator=seeded())
    reference = nn.init.kaiming_normal_(torch.empty(shape), mode="fan_out", generator=seeded())
    torch.testing.assert_close(grouped, reference * 2.0, rtol=1e-6, atol=0.0)
    glorot = il.glorot_uniform().sample(shape, layout="conv", groups=4, generator=seeded())
    reference = nn.init.xavier_uniform_(torch.empty(shape), generator=seeded())
    factor = math.sqrt((torch_fan_in + torch_fan_out) / (ours.fan_in + ours.fan_out))
    torch.testing.assert_close(glorot, reference * factor, rtol=1e-6, atol=0.0)


def test_truncated_normal_matches_torch_trunc_normal_in_distribution() -> None:
    """Different algorithms (rejection vs inverse CDF): a two-sample KS test; torch's bounds are absolute."""
    mean, std, a, b = 0.3, 0.5, -1.5, 2.0
    ours = il.truncated_normal(mean=mean, std=std, a=a, b=b).sample((40_000,), layout="vector", generator=seeded(1))
    theirs = nn.init.trunc_normal_(
        torch.empty(40_000), mean=mean, std=std, a=mean + a * std, b=mean + b * std, generator=seeded(2)
    )
    statistic = scipy.stats.ks_2samp(ours.numpy(), theirs.numpy()).statistic
    critical = math.sqrt(-math.log(1e-4 / 2) / 2) * math.sqrt(2 / 40_000)
    assert statistic < critical
    assert float(ours.min()) >= mean + a * std - 1e-6 and float(ours.max()) <= mean + b * std + 1e-6


def test_sparse_is_torch_sparse_with_rows_and_columns_exchanged() -> None:
    """torch zeroes ceil(s * rows) entries per column; initlab zeroes ceil(s * inputs) per output unit (row)."""
    ours = il.sparse(sparsity=0.3, std=0.02).sample((40, 90), generator=seeded())
    theirs = nn.init.sparse_(torch.empty(90, 40), sparsity=0.3, std=0.02, generator=seeded())
    assert torch.equal((ours == 0).sum(dim=1), (theirs == 0).sum(dim=0))
    statistic = scipy.stats.ks_2samp(ours[ours != 0].numpy(), theirs[theirs != 0].numpy()).statistic
    assert statistic < math.sqrt(-math.log(1e-4 / 2) / 2) * math.sqrt(2 / 2500)


def test_gains_in_torch_convention_equal_calculate_gain() -> None:
    for name, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert il.gain(name, param, convention="torch") == nn.init.calculate_gain(name, param)  # type: ignore[arg-type]
