"""Each statistic of a probe row against a direct computation on the same tensors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import initlab as il
from initlab.probe import DEFAULT_BINS, HistogramBins, Thresholds
from initlab.probe.layers import relative_derivative, saturated_count, select_layers
from initlab.probe.symmetry import symmetric_groups


class Emit(nn.Module):
    """Ignores its input and returns a fixed tensor (times a parameter, so gradients flow)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value * self.scale + 0 * x.sum()


def test_histogram_bins_mirror_around_zero_and_agree_with_numpy() -> None:
    bins = HistogramBins(low=-6, high=6, per_decade=3)
    edges = bins.edges()
    assert np.allclose(edges, -edges[::-1])
    assert len(edges) == bins.num_bins + 1
    generator = torch.Generator().manual_seed(0)
    magnitudes = 10.0 ** (torch.rand(20000, generator=generator, dtype=torch.float64) * 16 - 8)
    signs = torch.where(torch.rand(20000, generator=generator) < 0.3, -1.0, 1.0).to(torch.float64)
    values = magnitudes * signs
    counts = bins.count(values).numpy()
    positive = values[values > 0].numpy()
    negative = values[values < 0].numpy()
    # positive bins [m_k, m_k+1) with the outermost open to +inf
    upper = np.histogram(positive, np.concatenate([[0.0], bins.magnitudes()[:-1], [np.inf]]))[0]
    lower = np.histogram(-negative, np.concatenate([[0.0], bins.magnitudes()[:-1], [np.inf]]))[0]
    center = bins.center
    assert counts[center] == upper[0] + lower[0]  # below 10**low on either side
    assert np.array_equal(counts[center + 1 : bins.num_bins], upper[1:])
    assert np.array_equal(counts[:center][::-1], lower[1:])
    assert counts[bins.nan_slot] == 0
    assert counts.sum() == values.numel()


def test_histogram_puts_nan_and_inf_in_the_nonfinite_slot_and_keeps_the_sign() -> None:
    values = torch.tensor([float("nan"), float("inf"), -float("inf"), 2.0, -2.0, 0.0, 1e-12])
    counts = DEFAULT_BINS.count(values).numpy()
    assert counts[DEFAULT_BINS.nan_slot] == 3
    assert counts[DEFAULT_BINS.center] == 2
    plus, minus = (
        DEFAULT_BINS.center + 1 + 33,
        DEFAULT_BINS.center - 1 - 33,
    )  # log10(2) * 4 = 1.2 -> bin 33
    assert counts[plus] == 1 and counts[minus] == 1
    assert "non-finite" == DEFAULT_BINS.bin_label(DEFAULT_BINS.nan_slot)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_histogram_of_a_tensor_spanning_several_chunks_counts_every_value_once(dtype) -> None:
    from initlab.probe.histogram import CPU_CHUNK

    generator = torch.Generator().manual_seed(1)
    size = 2 * CPU_CHUNK + 1001  # three chunks, the last one short
    exponents = torch.rand(size, generator=generator, dtype=torch.float64) * 24 - 12
    values = (10.0**exponents * torch.where(torch.rand(size, generator=generator) < 0.5, -1.0, 1.0)).to(dtype)
    special = {0: 0.0, CPU_CHUNK - 1: float("nan"), CPU_CHUNK: float("inf"), size - 1: -float("inf")}
    for index, value in special.items():
        values[index] = value
    counts = DEFAULT_BINS.count(values).numpy()
    assert counts.sum() == size and counts[DEFAULT_BINS.nan_slot] == 3
    # the same values one chunk-sized piece at a time
    pieces = sum(DEFAULT_BINS.count(piece).numpy() for piece in values.split(1000))
    assert np.array_equal(counts, pieces)
    finite = values.double()[torch.isfinite(values.double())].numpy()
    upper = np.histogram(finite[finite > 0], np.concatenate([[0.0], DEFAULT_BINS.magnitudes()[:-1], [np.inf]]))[0]
    assert np.array_equal(counts[DEFAULT_BINS.center + 1 : DEFAULT_BINS.num_bins], upper[1:])


def test_row_moments_gain_and_bounds_match_direct_computation() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(30, 20)
    x = torch.randn(64, 30) * 3.0 + 0.5
    report = il.audit(layer, x)
    row = report.rows[0]
    y = layer(x).detach().double()
    assert row.act_mean == pytest.approx(y.mean().item(), rel=1e-9, abs=1e-12)
    assert row.act_std == pytest.approx(y.std(unbiased=False).item(), rel=1e-9)
    assert row.act_rms == pytest.approx(y.square().mean().sqrt().item(), rel=1e-9)
    assert row.act_min == pytest.approx(y.min().item()) and row.act_max == pytest.approx(
        y.max().item()
    )
    in_rms = x.double().square().mean().sqrt().item()
    assert row.in_rms == pytest.approx(in_rms, rel=1e-9)
    assert row.gain == pytest.approx(row.act_rms / in_rms, rel=1e-9)
    assert row.log_gain_cum == pytest.approx(math.log10(row.act_rms / in_rms), rel=1e-9)
    assert report.input_rms == pytest.approx(in_rms, rel=1e-9)
    assert sum(row.hist) == y.numel() and row.shape == (64, 20)


def test_nonfinite_values_are_counted_and_the_first_such_layer_named() -> None:
    value = torch.ones(4, 5)
    value[0, 0] = float("nan")
    value[1, :2] = float("inf")
    net = nn.Sequential(nn.Linear(3, 3), Emit(value), nn.Tanh())
    report = il.audit(net, torch.randn(4, 3))
    assert report["1"].nonfinite == 3
    assert report["1"].verdict == "non-finite"
    assert report.first_nonfinite_layer == "1"
    assert report["1"].act_max == float("inf")
    # tanh(inf) = 1 is finite again; NaN stays
    assert report["2"].nonfinite == 1
    assert report["1"].act_mean == pytest.approx(1.0)  # over the 17 finite entries


def test_saturated_fraction_counts_entries_whose_derivative_is_small() -> None:
    generator = torch.Generator().manual_seed(0)
    pre = torch.randn(200, 50, generator=generator) * 3.0
    for module, name in (
        (nn.Tanh(), "tanh"),
        (nn.Sigmoid(), "sigmoid"),
        (nn.Softsign(), "softsign"),
    ):
        net = nn.Sequential(Emit(pre), module)
        report = il.audit(net, torch.zeros(200, 1))
        output = module(pre)
        expected = (relative_derivative(name, output) < 0.1).double().mean().item()
        assert report["1"].saturated_fraction == pytest.approx(expected, abs=1e-12)
        assert saturated_count(name, output, 0.1).item() == pytest.approx(expected * pre.numel())
    # tanh: 1 - y^2 < 0.1 <=> |x| > atanh(sqrt(0.9)) = 1.818: P(|3 z| > 1.818) = 0.545
    tanh_report = il.audit(nn.Sequential(Emit(pre), nn.Tanh()), torch.zeros(200, 1))
    assert tanh_report["1"].saturated_fraction == pytest.approx(
        0.545, abs=4 * math.sqrt(0.25 / pre.numel())
    )
    assert tanh_report["1"].verdict == "saturated"


def test_dead_units_are_units_silent_for_every_sample_not_single_zeros() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(10, 40)
    with torch.no_grad():
        linear.bias[:12] = -100.0  # these 12 units never fire
    net = nn.Sequential(linear, nn.ReLU())
    report = il.audit(net, torch.randn(128, 10))
    row = report["1"]
    # about half of all entries are 0, but only the 12 units are dead
    zero_fraction = row.hist[report.bins.center] / sum(row.hist)
    assert zero_fraction > 0.5
    assert row.dead_units == 12 and row.units == 40
    assert row.dead_fraction == pytest.approx(12 / 40)
    assert row.verdict == "healthy"  # 30% < the 40% threshold
    with torch.no_grad():
        linear.bias[:20] = -100.0
    assert il.audit(net, torch.randn(128, 10))["1"].verdict == "dead"


def test_dead_units_of_a_conv_are_channels() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        conv.bias[:5] = -100.0
    report = il.audit(nn.Sequential(conv, nn.ReLU()), torch.randn(16, 3, 8, 8))
    assert report["1"].units == 8 and report["1"].dead_units == 5


def test_effective_rank_and_cosine_of_outputs_with_known_structure() -> None:
    generator = torch.Generator().manual_seed(0)
    # 64 samples on 5 orthonormal directions with equal weight: centred rank 5, flat spectrum
    basis = torch.linalg.qr(torch.randn(100, 5, generator=generator, dtype=torch.float64))[0].T
    coefficients = torch.linalg.qr(torch.randn(64, 5, generator=generator, dtype=torch.float64))[0]
    coefficients = coefficients - coefficients.mean(0)
    low_rank = (coefficients @ basis).float()
    report = il.audit(nn.Sequential(Emit(low_rank)), torch.zeros(64, 1))
    assert report["0"].effective_rank == pytest.approx(5.0, rel=0.05)
    same = torch.randn(1, 100, generator=generator).expand(64, 100).contiguous()
    collapsed = il.audit(nn.Sequential(Emit(same)), torch.zeros(64, 1))["0"]
    assert collapsed.mean_cosine == pytest.approx(1.0, abs=1e-6)
    assert collapsed.effective_rank == pytest.approx(0.0, abs=1e-6)
    assert collapsed.verdict == "collapsed"
    independent = il.audit(
        nn.Sequential(Emit(torch.randn(64, 100, generator=generator))), torch.zeros(64, 1)
    )["0"]
    # cosines of independent Gaussian vectors in 100 dims have std 0.1: the mean of 2016 pairs is ~0
    assert abs(independent.mean_cosine) < 4 * 0.1 / math.sqrt(64 * 63 / 2)


def test_gradient_statistics_match_autograd_per_layer_and_parameter() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    report = il.audit(net, x, target=y)
    hidden = net[0](x)
    hidden.retain_grad()
    logits = net[2](torch.tanh(hidden))
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    assert report.loss == pytest.approx(loss.item(), rel=1e-6)
    assert report["0"].grad_norm == pytest.approx(hidden.grad.norm().item(), rel=1e-5)
    assert report["0"].grad_std == pytest.approx(hidden.grad.std(unbiased=False).item(), rel=1e-5)
    weight = report["0"].params[0]
    assert weight.name == "0.weight"
    assert weight.grad_norm == pytest.approx(net[0].weight.grad.norm().item(), rel=1e-5)
    assert weight.weight_norm == pytest.approx(net[0].weight.norm().item(), rel=1e-6)
    assert report["0"].grad_weight_ratio == pytest.approx(
        weight.grad_norm / weight.weight_norm, rel=1e-9
    )
    assert report["0"].params[1].name == "0.bias"
    assert report["2"].params[0].grad_norm == pytest.approx(
        net[2].weight.grad.norm().item(), rel=1e-5
    )


def test_expected_std_follows_fans_and_the_init_reports_weight_std() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(200, 300, bias=False), nn.ReLU(), nn.Linear(300, 100, bias=False))
    scheme = il.he_normal(nonlinearity="relu")
    for index in (0, 2):
        scheme(net[index].weight)
    rows = [
        SimpleNamespace(name=f"{i}.weight", expected_std=scheme.describe(net[i].weight.shape).expected_std)
        for i in (0, 2)
    ]
    x = torch.randn(256, 200) * 2.0
    report = il.audit(net, x, expected=SimpleNamespace(rows=rows))
    # first layer: sqrt(fan_in * 2 / fan_in * E[x^2]) = sqrt(2) * 2
    assert report["0"].expected_std == pytest.approx(
        math.sqrt(2.0) * x.square().mean().sqrt().item(), rel=1e-6
    )
    # relu of N(0, s^2): std s * sqrt((1 - 1/pi) / 2)
    assert report["1"].expected_std == pytest.approx(
        report["0"].expected_std * math.sqrt((1 - 1 / math.pi) / 2), rel=1e-6
    )
    tolerance = 5 * math.sqrt(2 / (256 * 100))  # std of a std estimate from >= 256*100 entries
    for name in ("0", "1", "2"):
        assert report[name].act_std == pytest.approx(
            report[name].expected_std, rel=tolerance + 0.05
        )
    assert report["0"].params[0].expected_std == rows[0].expected_std
    # a layer name as key gives the output std directly
    direct = il.audit(net, x, expected={"2": 0.5})
    assert direct["2"].expected_std == 0.5 and direct["0"].expected_std is None


def test_mean_field_column_follows_the_theory_along_the_chain() -> None:
    from initlab.theory import predict_layer_stats

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(4):
        linear = nn.Linear(400, 400)
        nn.init.normal_(linear.weight, std=math.sqrt(1.5 / 400))
        nn.init.normal_(linear.bias, std=math.sqrt(0.05))
        layers += [linear, nn.Tanh()]
    net = nn.Sequential(*layers)
    x = torch.randn(128, 400)
    report = il.audit(net, x)
    linears = report.select("linear")
    sigma_w2 = [400 * net[2 * i].weight.square().mean().item() for i in range(4)]
    assert all(abs(s - 1.5) < 0.05 for s in sigma_w2)
    theory = predict_layer_stats("tanh", 4, x.square().mean().item(), 1.5, 0.05)
    assert [row.predicted_std for row in linears] == pytest.approx(theory, rel=0.03)
    # and the measurement agrees with the theory within the finite-width error
    assert [row.act_std for row in linears] == pytest.approx(
        [row.predicted_std for row in linears], rel=0.1
    )


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.second = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.first(x))
        return x + self.second(torch.relu(hidden))  # a functional activation breaks the chain


def test_mean_field_column_stops_where_the_network_leaves_the_chain() -> None:
    report = il.audit(Residual(), torch.randn(32, 16))
    assert report["first"].predicted_std is not None and report["act"].predicted_std is not None
    assert report["second"].predicted_std is None


def test_exploding_verdict_when_every_layer_multiplies_the_scale() -> None:
    torch.manual_seed(0)
    layers = []
    for _ in range(4):
        linear = nn.Linear(64, 64, bias=False)
        nn.init.normal_(linear.weight, std=3.0 / 8.0)  # gain 3 per layer
        layers.append(linear)
    report = il.audit(nn.Sequential(*layers), torch.randn(32, 64))
    assert [row.verdict for row in report.rows] == ["healthy", "healthy", "exploding", "exploding"]


def test_thresholds_change_the_verdicts_and_reject_nonsense() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 32), nn.Tanh())
    nn.init.normal_(net[0].weight, std=0.5 / math.sqrt(32))
    assert il.audit(net, torch.randn(64, 32))["1"].verdict == "healthy"
    strict = Thresholds(vanishing=0.6)
    assert il.audit(net, torch.randn(64, 32), thresholds=strict)["1"].verdict == "vanishing"
    with pytest.raises(ValueError, match="vanishing < exploding"):
        Thresholds(vanishing=20.0)
    with pytest.raises(TypeError, match="dead"):
        Thresholds(dead="many")  # type: ignore[arg-type]


def test_layer_selection_by_names_classes_objects_and_predicate() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.1), nn.Linear(4, 2))
    assert [name for name, _ in select_layers(net)] == ["0", "1", "3"]
    assert [name for name, _ in select_layers(net, ["3", "0"])] == ["0", "3"]
    assert [name for name, _ in select_layers(net, [nn.Linear])] == ["0", "3"]
    assert [name for name, _ in select_layers(net, [net[1]])] == ["1"]
    assert [name for name, _ in select_layers(net, lambda name, m: isinstance(m, nn.Dropout))] == [
        "2"
    ]
    with pytest.raises(ValueError, match="no module named 'fc'"):
        select_layers(net, ["fc"])
    with pytest.raises(TypeError, match="modules must be"):
        select_layers(net, "0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="selects no module"):
        select_layers(net, [nn.Conv2d])


def test_symmetric_groups_find_duplicates_within_tolerance_only() -> None:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(50, 20, generator=generator)
    rows[7] = rows[3]
    rows[30] = rows[3] + 1e-7
    rows[12] = rows[40]
    rows[20] = rows[21] + 1e-2  # different beyond the tolerance
    assert symmetric_groups(rows) == [(3, 7, 30), (12, 40)]
    grads = torch.randn(50, 20, generator=generator)
    grads[7] = grads[3]
    assert symmetric_groups(rows, grads) == [(3, 7)]
    # units of different convolution groups read different inputs: never symmetric
    paired = torch.cat([rows[:5], rows[:5]])
    assert symmetric_groups(paired, groups=2) == []
    assert len(symmetric_groups(paired, groups=1)) == 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_moments_of_a_tensor_spanning_several_chunks_match_a_direct_computation(dtype) -> None:
    from initlab.probe.collector import _moments
    from initlab.probe.histogram import CPU_CHUNK

    values = torch.randn(3 * CPU_CHUNK + 7, generator=torch.Generator().manual_seed(2), dtype=dtype) * 3 + 1
    values[10], values[CPU_CHUNK + 5], values[-1] = float("nan"), float("inf"), -1e30
    kept = values.clone()
    count, total, squares, low, negated_high = _moments(values, bounds=True).tolist()
    assert torch.equal(values.nan_to_num(nan=0.5), kept.nan_to_num(nan=0.5))  # the input is left alone
    finite = values.double()[torch.isfinite(values)]
    assert count == finite.numel()
    assert total == pytest.approx(finite.sum().item(), rel=1e-12)
    assert squares == pytest.approx(finite.square().sum().item(), rel=1e-12)
    assert low == pytest.approx(-1e30, rel=1e-6) and negated_high == -float("inf")


needs_numba = pytest.mark.skipif(
    __import__("importlib").util.find_spec("numba") is None, reason="numba is not installed"
)


def _edge_probe_values(dtype: torch.dtype) -> torch.Tensor:
    """Log-uniform values of both signs, every bin edge and its two neighbours in ``dtype``, zeros and non-finite values."""
    from initlab.probe.histogram import COMPILED_MIN

    generator = torch.Generator().manual_seed(3)
    count = 2 * COMPILED_MIN
    magnitudes = 10.0 ** (torch.rand(count, generator=generator, dtype=torch.float64) * 20 - 10)
    signs = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
    edges = torch.from_numpy(DEFAULT_BINS.magnitudes()).to(dtype)
    around = torch.cat([edges, torch.nextafter(edges, edges.new_tensor(0.0)), torch.nextafter(edges, edges.new_tensor(math.inf))])
    special = torch.tensor([0.0, -0.0, math.nan, math.inf, -math.inf], dtype=dtype)
    return torch.cat([(magnitudes * signs).to(dtype), around, -around, special])


def _exact_bins(values: torch.Tensor, bins: HistogramBins = DEFAULT_BINS) -> np.ndarray:
    """Counts per bin from float64 comparisons of |x| with the edges: bin k holds k edges <= |x|."""
    array = values.to(torch.float64).numpy()
    finite = np.isfinite(array)
    k = np.searchsorted(bins.magnitudes()[:-1], np.abs(array[finite]), side="right")
    index = np.where(np.signbit(array[finite]), bins.center - k, bins.center + k)
    counts = np.bincount(index, minlength=bins.num_bins + 1).astype(np.float64)
    counts[bins.nan_slot] += (~finite).sum()
    return counts


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_histogram_puts_every_value_in_its_exact_bin_even_next_to_an_edge(dtype: torch.dtype) -> None:
    values = _edge_probe_values(dtype)
    counts = DEFAULT_BINS.count(values).numpy()
    assert np.array_equal(counts, _exact_bins(values))


@needs_numba
@pytest.mark.parametrize("poison", [None, math.nan, math.inf])
def test_compiled_moments_equal_the_pytorch_sums(poison: float | None) -> None:
    from initlab.probe.collector import _moments, host_moments
    from initlab.probe.histogram import COMPILED_MIN

    values = torch.randn(3 * COMPILED_MIN, generator=torch.Generator().manual_seed(4)) * 3 + 1
    if poison is not None:
        values[::97] = poison
        values[5] = -math.inf
    count, total, squares, low, high = host_moments(values, bounds=True)
    expected = _moments(values, bounds=True).tolist()
    assert count == expected[0]
    assert total == pytest.approx(expected[1], rel=1e-12)
    assert squares == pytest.approx(expected[2], rel=1e-12)
    assert (low, high) == (expected[3], -expected[4])


def test_host_records_equal_the_device_records_of_the_same_rows() -> None:
    # on the CPU a row's record is packed with NumPy; the torch path (any device) must give the same numbers
    from initlab.probe import build

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(80, 64), torch.randint(0, 3, (80,))
    with il.Probe(net, every=1, optimizer=optimizer) as session:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        net(x)  # the next step's forward: its rows are the ones compared
        rows = list(session._collector.iter_recorded())
        assert len(rows) == 5
        for row in rows:
            host, _ = build.record_of(row)
            device = build._device_record(row)
            build._split_finite(device, row, row.hist[row.bins.nan_slot])
            assert host.shape == device.shape
            assert torch.allclose(host, device, rtol=1e-6, atol=1e-9), row.info.name


@needs_numba
def test_histograms_counted_from_several_threads_at_once_and_on_any_thread_count_agree() -> None:
    # nn.DataParallel calls hooks from several threads: the parallel count is taken by one at a time
    import threading

    from initlab.probe.histogram import PARALLEL_MIN

    generator = torch.Generator().manual_seed(3)
    tensors = [torch.randn(PARALLEL_MIN * 3 + 17, generator=generator) * 10.0 ** (k - 2) for k in range(4)]
    alone = [DEFAULT_BINS.count(values).numpy() for values in tensors]
    # pieces below PARALLEL_MIN (and above COMPILED_MIN) go through the one-thread compiled count
    pieces = [sum(DEFAULT_BINS.count(piece).numpy() for piece in values.split(20_000)) for values in tensors]
    assert all(np.array_equal(a, b) for a, b in zip(alone, pieces))
    before = il.rng.get_threads()
    try:
        il.rng.set_threads(1)
        assert all(np.array_equal(DEFAULT_BINS.count(v).numpy(), a) for v, a in zip(tensors, alone))
    finally:
        il.rng.set_threads(before)
    results: dict[int, list[np.ndarray]] = {}

    def work(index: int) -> None:
        results[index] = [DEFAULT_BINS.count(tensors[index]).numpy() for _ in range(20)]

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(4):
        assert all(np.array_equal(counts, alone[index]) for counts in results[index])


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bins", [DEFAULT_BINS, HistogramBins(low=-30, high=30, per_decade=10)], ids=["default", "fine"])
def test_compiled_histogram_of_random_bit_patterns_equals_the_exact_bins(dtype: torch.dtype, bins: HistogramBins) -> None:
    from initlab.probe.histogram import COMPILED_MIN

    # patterns drawn over the whole bit space: every exponent, subnormals, NaN payloads, both signs;
    # the fine bins have more slots than fit a byte, so the top-bits table holds 16-bit entries
    generator = np.random.default_rng(5)
    words = 1 << 17
    if dtype == torch.float32:
        patterns = generator.integers(0, 1 << 32, size=words, dtype=np.uint64).astype(np.uint32).view(np.int32)
    else:
        patterns = generator.integers(0, 1 << 63, size=words, dtype=np.uint64).astype(np.int64)
        patterns[::2] = -patterns[::2]  # both signs
    values = torch.from_numpy(patterns.view(np.float32 if dtype == torch.float32 else np.float64).copy())
    assert values.numel() >= 2 * COMPILED_MIN
    assert np.array_equal(bins.count(values).numpy(), _exact_bins(values, bins))
    # and near every edge of these bins
    edges = torch.from_numpy(bins.magnitudes()).to(dtype)
    around = torch.cat([edges, torch.nextafter(edges, edges.new_tensor(0.0)), torch.nextafter(edges, edges.new_tensor(math.inf))])
    near = torch.cat([around, -around]).repeat(COMPILED_MIN // around.numel() + 1)
    assert np.array_equal(bins.count(near).numpy(), _exact_bins(near, bins))


@needs_numba
def test_top_bits_table_leaves_few_values_to_the_edge_comparison() -> None:
    # the fast path: Gaussian activations mostly find their slot from their top 16 bits alone
    from initlab.probe.histogram import TOP_NO_SLOT, bin_table
    from initlab.probe.kernels import NO_SLOT

    assert int(NO_SLOT) == TOP_NO_SLOT  # the table's marker is the one the kernel tests for

    values = torch.randn(1 << 16, generator=torch.Generator().manual_seed(0))
    table = bin_table(DEFAULT_BINS, torch.float32)
    top = values.numpy().view(np.uint32) >> np.uint32(table.top_shift)
    compared = float(np.mean(table.top[top] == TOP_NO_SLOT))
    assert compared < 0.05


@needs_numba
@pytest.mark.parametrize("edit_after_step", [False, True])
def test_record_weight_sums_are_those_of_the_weights_when_the_step_is_written(edit_after_step: bool) -> None:
    # the update pass takes the new weights' sums for the record; a change made after it
    # (here in place, between optimizer.step() and a hand-made probe step) must be read again
    from initlab.probe import build

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(200, 100), nn.ReLU(), nn.Linear(100, 3))  # 20K weights: the compiled pass
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(32, 200), torch.randint(0, 3, (32,))
    with il.Probe(net, every=1, optimizer=optimizer, auto_step=False) as session:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        if edit_after_step:
            with torch.no_grad():
                net[0].weight.mul_(3.0)
        row = next(r for r in session._collector.iter_recorded() if r.info.name == "0")
        record, _ = build.record_of(row)
        weight = net[0].weight.detach().double()
        start = build._PARAM_START + build._WEIGHT  # the weight is the row's first parameter
        assert record[start].item() == pytest.approx(weight.sum().item(), rel=1e-9, abs=1e-9)
        assert record[start + 1].item() == pytest.approx((weight * weight).sum().item(), rel=1e-9)
        assert (row.params[0].current_sums() is None) == edit_after_step
        session.step()
