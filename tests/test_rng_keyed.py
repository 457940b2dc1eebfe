"""The counter-based generator: its definition, placement independence and its errors."""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import initlab
from initlab.rng import (
    Keyed,
    KeySpace,
    check_unique_names,
    philox,
    set_backend,
    truncation_plan,
    use_backend,
)
from initlab.rng import kernels as compiled

needs_numba = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

# (method, arguments) covering every proposal of the truncated normal: normal (0), uniform (1), exponential (2)
FILLS = [
    ("uniform_", (-1.5, 2.5)),
    ("normal_", (0.25, 3.0)),
    ("truncated_normal_", (0.0, 1.0, -2.0, 2.0)),
    ("truncated_normal_", (1.0, 0.5, -0.3, 0.2)),
    ("truncated_normal_", (0.0, 2.0, 3.0, 4.0)),
    ("truncated_normal_", (0.0, 1.0, -math.inf, -4.0)),
]


def _fill(stream: Keyed, method: str, arguments: tuple[float, ...], count: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(count, dtype=dtype)
    getattr(stream, method)(out, *arguments)
    return out


def test_philox_matches_the_published_known_answers() -> None:
    # Random123 known-answer vectors for philox4x32-10
    zero = [torch.tensor([0])] * 4
    assert [int(w) for w in philox.philox4x32(*zero, 0, 0)] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    counter = [torch.tensor([v]) for v in (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)]
    words = philox.philox4x32(*counter, 0xA4093822, 0x299F31D0)
    assert [int(w) for w in words] == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_truncation_plans_use_every_proposal() -> None:
    assert truncation_plan(-2.0, 2.0).mode == 0
    assert truncation_plan(-0.3, 0.2).mode == 1
    assert truncation_plan(3.0, 4.0).mode == 2
    tail = truncation_plan(-math.inf, -4.0)
    assert tail.mode == 2 and tail.flip
    for a, b in [(-2.0, 2.0), (-0.3, 0.2), (3.0, 4.0), (-math.inf, -4.0), (0.5, math.inf), (-1.0, 8.0)]:
        assert truncation_plan(a, b).acceptance > 0.5


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method,arguments", FILLS)
def test_compiled_kernels_equal_the_pytorch_fallback_bit_for_bit(
    method: str, arguments: tuple[float, ...], dtype: torch.dtype
) -> None:
    stream = Keyed(7).child("block.3.mlp.weight").window(3)  # an offset that is not a block boundary
    with use_backend("numba"):
        fast = _fill(stream, method, arguments, 50_001, dtype)
    with use_backend("torch"):
        reference = _fill(stream, method, arguments, 50_001, dtype)
    assert torch.equal(fast.view(torch.uint8), reference.view(torch.uint8))


@pytest.mark.parametrize("backend", ["torch", pytest.param("numba", marks=needs_numba)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method,arguments", FILLS[:4])
def test_any_slice_generated_alone_equals_the_same_slice_of_the_whole(
    backend: str, dtype: torch.dtype, method: str, arguments: tuple[float, ...]
) -> None:
    stream = Keyed(3).child("w")
    count = 20_011
    with use_backend(backend):
        whole = _fill(stream, method, arguments, count, dtype)
        cuts = [0, 1, 2, 5, 4_099, 4_100, 13_333, count]
        pieces = [
            _fill(stream.window(start, stop), method, arguments, stop - start, dtype)
            for start, stop in zip(cuts[:-1], cuts[1:])
        ]
    assert torch.equal(torch.cat(pieces), whole)


@needs_numba
def test_values_do_not_depend_on_the_thread_count() -> None:
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core only")
    stream = Keyed(11).child("emb.weight")
    before = initlab.rng.get_threads()
    try:
        outputs = []
        for threads in (1, 2):
            initlab.rng.set_threads(threads)
            with use_backend("numba"):
                outputs.append(
                    [_fill(stream, m, a, 300_000, torch.float32) for m, a in FILLS[:3]]
                )
    finally:
        initlab.rng.set_threads(before)
    for one, two in zip(*outputs):
        assert torch.equal(one, two)


def test_value_is_a_pure_function_of_seed_name_and_index() -> None:
    first = _fill(Keyed(5).child("encoder").child("weight"), "normal_", (0.0, 1.0), 1000, torch.float32)
    again = _fill(Keyed(5).child("encoder.weight"), "normal_", (0.0, 1.0), 1000, torch.float32)
    other_seed = _fill(Keyed(6).child("encoder.weight"), "normal_", (0.0, 1.0), 1000, torch.float32)
    assert torch.equal(first, again)
    assert not torch.equal(first, other_seed)


def test_non_contiguous_and_low_precision_outputs_follow_the_flat_index() -> None:
    stream = Keyed(1).child("w")
    dense = _fill(stream, "normal_", (0.0, 1.0), 64 * 32, torch.float32).view(64, 32)
    transposed = torch.empty(32, 64).T  # a non-contiguous (64, 32) view
    stream.normal_(transposed)
    assert torch.equal(transposed, dense)
    half = torch.empty(64, 32, dtype=torch.bfloat16)
    stream.normal_(half)
    assert torch.equal(half, dense.to(torch.bfloat16))


def test_every_scheme_accepts_a_keyed_stream_as_generator() -> None:
    stream = Keyed(0).child("layer.weight")
    weight = initlab.he_normal().sample((256, 128), layout="linear", generator=stream)
    expected = _fill(stream, "normal_", (0.0, math.sqrt(2.0 / 128)), 256 * 128, torch.float32).view(256, 128)
    assert torch.equal(weight, expected)
    again = initlab.glorot_uniform().sample((256, 128), generator=stream)
    assert torch.equal(again, initlab.glorot_uniform().sample((256, 128), generator=stream))


def test_bernoulli_masks_follow_the_words_of_the_stream() -> None:
    stream = Keyed(2).child("mask")
    mask = torch.empty(10_000, dtype=torch.bool)
    stream.bernoulli_(mask, 0.25)
    words = stream.words(10_000)
    assert torch.equal(mask, words < round(0.25 * 2**32))
    floats = torch.empty(10_000)
    initlab.rng.bernoulli_(floats, 0.25, stream)
    assert torch.equal(floats, mask.float())


def test_orthogonal_from_a_keyed_stream_is_orthogonal_and_reproducible() -> None:
    stream = Keyed(4).child("rnn.weight_hh")
    wide = torch.empty(48, 96)
    initlab.rng.orthogonal_(wide, 2.0, stream)
    assert torch.allclose(wide @ wide.T, 4.0 * torch.eye(48), atol=1e-4)
    again = torch.empty(48, 96)
    initlab.rng.orthogonal_(again, 2.0, stream)
    assert torch.equal(wide, again)


def test_meta_and_empty_tensors_are_left_alone() -> None:
    stream = Keyed(0).child("w")
    assert stream.normal_(torch.empty(0)).numel() == 0
    meta = torch.empty(4, 4, device="meta")
    assert stream.uniform_(meta) is meta


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True, "0", None])
def test_seeds_outside_the_accepted_range_are_refused(seed: object) -> None:
    with pytest.raises((TypeError, ValueError), match="seed"):
        Keyed(seed)  # type: ignore[arg-type]


def test_numpy_integer_seeds_are_accepted() -> None:
    import numpy as np

    assert Keyed(np.int64(3)).seed == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "start,stop,message",
    [(-1, None, "start must be an int >= 0"), (5, 2, "start <= stop"), (2**62 + 1, None, "2\\*\\*62"), (0, -3, "stop must be an int >= 0")],
)
def test_negative_or_out_of_range_slices_are_refused(start: int, stop: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Keyed(0).child("w").window(start, stop)


def test_a_window_refuses_tensors_of_another_size_and_slices_past_its_end() -> None:
    window = Keyed(0).child("w").window(10, 20)
    with pytest.raises(ValueError, match="11 elements but the window"):
        window.normal_(torch.empty(11))
    with pytest.raises(ValueError, match="past the end"):
        window.window(3, 12)
    with pytest.raises(ValueError, match="run past 2\\*\\*62"):
        Keyed(0).child("w").window(2**62 - 2).normal_(torch.empty(8))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_float_outputs_are_refused_with_the_accepted_dtypes(dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match="accepted: float16, bfloat16, float32, float64"):
        Keyed(0).child("w").normal_(torch.zeros(4, dtype=dtype))


def test_bad_distribution_parameters_are_refused() -> None:
    stream = Keyed(0).child("w")
    out = torch.empty(4)
    with pytest.raises(ValueError, match="low < high"):
        stream.uniform_(out, 1.0, 1.0)
    with pytest.raises(ValueError, match="std >= 0"):
        stream.normal_(out, 0.0, -1.0)
    with pytest.raises(ValueError, match="a < b"):
        stream.truncated_normal_(out, 0.0, 1.0, 2.0, -2.0)
    with pytest.raises(ValueError, match="must not be NaN"):
        stream.normal_(out, math.nan, 1.0)
    with pytest.raises(ValueError, match="p must be in"):
        stream.bernoulli_(out, 1.5)
    assert torch.isfinite(out).all() or True  # nothing was written: validation runs first


def test_nothing_is_written_when_input_is_refused() -> None:
    out = torch.full((8,), 7.0)
    with pytest.raises(ValueError):
        Keyed(0).child("w").truncated_normal_(out, 0.0, 1.0, 1.0, 1.0)
    assert torch.equal(out, torch.full((8,), 7.0))


def test_duplicate_parameter_names_in_one_key_space_are_refused() -> None:
    space = KeySpace(0)
    space.stream("layer.weight")
    with pytest.raises(ValueError, match="duplicate parameter name 'layer.weight'"):
        space.stream("layer.weight")
    with pytest.raises(ValueError, match="duplicate parameter name 'b'"):
        check_unique_names(["a", "b", "c", "b"])
    with pytest.raises(ValueError, match="non-empty"):
        Keyed(0).child("")


def test_backend_and_thread_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        set_backend("gpu")
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        initlab.rng.set_threads(0)
    with pytest.raises(ValueError, match="at most"):
        initlab.rng.set_threads((os.cpu_count() or 1) + 1)


@settings(max_examples=30, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=3_000),
    length=st.integers(min_value=0, max_value=700),
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    double=st.booleans(),
)
def test_a_random_window_equals_the_slice_of_a_longer_fill(start: int, length: int, seed: int, double: bool) -> None:
    dtype = torch.float64 if double else torch.float32
    stream = Keyed(seed).child("p")
    whole = _fill(stream, "truncated_normal_", (0.0, 1.0, -1.0, 1.5), start + length, dtype)
    alone = _fill(stream.window(start, start + length), "truncated_normal_", (0.0, 1.0, -1.0, 1.5), length, dtype)
    assert torch.equal(alone, whole[start:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("start, count", [(0, 1), (3, 10), (1, 4096), (5, 1 << 20), ((1 << 40) + 3, 12345)])
def test_cuda_fills_give_the_cpu_bits(start, count) -> None:
    stream = Keyed(11).child("cuda").window(start, start + count)
    calls = [
        ("uniform_", (-0.3, 0.7)), ("normal_", (0.1, 2.0)), ("truncated_normal_", ()),
        ("truncated_normal_", (0.0, 0.02, -1.0, 3.0)),  # normal proposals
        ("truncated_normal_", (0.0, 1.0, 2.5, 6.0)),  # a far tail: another proposal
    ]
    for dtype in (torch.float32, torch.float64):
        for method, arguments in calls:
            on_cpu = getattr(stream, method)(torch.empty(count, dtype=dtype), *arguments)
            on_gpu = getattr(stream, method)(torch.empty(count, dtype=dtype, device="cuda"), *arguments).cpu()
            bits = torch.int32 if dtype == torch.float32 else torch.int64
            assert torch.equal(on_gpu.view(bits), on_cpu.view(bits)), (method, arguments, dtype)


@needs_numba
def test_fills_from_several_threads_at_once_equal_the_fills_alone() -> None:
    # the parallel kernels run one at a time (initlab.rng.kernels.PARALLEL_LOCK): safe under any numba threading layer
    import threading

    streams = [Keyed(21).child(f"w{index}") for index in range(4)]
    with use_backend("numba"):
        alone = [_fill(stream, "truncated_normal_", (0.0, 0.02, -2.0, 2.0), 200_003, torch.float32) for stream in streams]
        results: dict[int, list[torch.Tensor]] = {}

        def work(index: int) -> None:
            results[index] = [
                _fill(streams[index], "truncated_normal_", (0.0, 0.02, -2.0, 2.0), 200_003, torch.float32) for _ in range(5)
            ]

        threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not compiled.PARALLEL_LOCK.locked()
    for index in range(4):
        assert all(torch.equal(values, alone[index]) for values in results[index])
