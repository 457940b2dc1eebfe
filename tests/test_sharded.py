"""Sharded init over torch.distributed: each rank fills its shard, the gathered weights equal one process's."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import initlab
from initlab.plan.sharded import (
    _single_draw,
    fill_dtensor_,
    init_sharded,
    is_elementwise,
    shard_range,
)
from initlab.rng import Keyed

# (name, shape, dtype, scheme, layout, placement) -- 2 ranks: odd first dims split unevenly
CASES = [
    ("embed.weight", (11, 8), torch.float32, "truncated_normal(std=0.02)", "embedding", "shard0"),
    ("attn.q.weight", (7, 12), torch.float32, "he_normal", "linear", "shard0"),
    ("mlp.up.weight", (9, 6), torch.bfloat16, "glorot_truncated_normal", "linear", "shard0"),
    # bound 0.1 rounds up to 0.10009 in bf16: both paths keep the values inside it the same way
    ("mlp.down.weight", (65, 300), torch.bfloat16, "lecun_uniform", "linear", "shard0"),
    ("mlp.up.bias", (5,), torch.float32, "uniform(a=-0.1, b=0.1)", "vector", "shard0"),
    ("head.weight", (3, 10), torch.float64, "lecun_uniform", "linear", "shard0"),
    ("rnn.weight_hh", (6, 6), torch.float32, "orthogonal", "linear", "shard0"),
    ("proj.weight", (4, 9), torch.float32, "he_uniform", "linear", "shard1"),
    ("norm.weight", (1, 8), torch.float32, "normal(std=0.5)", "linear", "shard0"),  # rank 1 holds no rows
    ("pos.weight", (5, 4), torch.float32, "small_random", "linear", "replicate"),
]
SEED = 1234


def _reference(name: str, shape: tuple[int, ...], dtype: torch.dtype, scheme: str, layout: str) -> torch.Tensor:
    full = torch.empty(shape, dtype=dtype)
    initlab.get(scheme)(full, layout=layout, generator=Keyed(SEED).child(name))
    return full


def _worker(rank: int, world: int, init_file: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,))
        placements = {"shard0": [Shard(0)], "shard1": [Shard(1)], "replicate": [Replicate()]}
        for name, shape, dtype, scheme, layout, placement in CASES:
            param = distribute_tensor(torch.zeros(shape, dtype=dtype), mesh, placements[placement])
            fill_dtensor_(param, initlab.get(scheme), layout, 1, Keyed(SEED).child(name))
            gathered = param.full_tensor()
            expected = _reference(name, shape, dtype, scheme, layout)
            assert torch.equal(gathered.view(torch.uint8), expected.view(torch.uint8)), f"{name} differs from one process"
        # a whole model built on the meta device, sharded, materialized, then initialized
        with torch.device("meta"):
            model = nn.Sequential(nn.Embedding(13, 6), nn.Linear(6, 7), nn.Linear(7, 3))
        for module in model:
            for key, value in list(module.named_parameters(recurse=False)):
                sharded = distribute_tensor(torch.empty(value.shape), mesh, [Shard(0)])
                module.register_parameter(key, nn.Parameter(sharded))
        rows = init_sharded(model, "he_truncated_normal", seed=SEED)
        assert [row.windowed for row in rows] == [True, True, False, True, False]
        assert all(row.local_shape[0] < row.shape[0] for row in rows)
        for name, value in model.named_parameters():
            gathered = value.full_tensor()
            if value.dim() < 2:
                assert torch.equal(gathered, torch.zeros_like(gathered))
            else:
                expected = _reference(name, tuple(value.shape), torch.float32, "he_truncated_normal", "linear")
                assert torch.equal(gathered, expected), name
        # the same through the plan layer: init_model(..., rng="counter") calls fill_dtensor_
        with torch.device("meta"):
            model = nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 3))
        for module in (model[0], model[2]):
            for key, value in list(module.named_parameters(recurse=False)):
                sharded = distribute_tensor(torch.empty(value.shape), mesh, [Shard(0)])
                module.register_parameter(key, nn.Parameter(sharded))
        initlab.init_model(model, plan="glorot_normal", seed=SEED, rng="counter")
        for name in ("0.weight", "2.weight"):
            gathered = model.get_parameter(name).full_tensor()
            expected = _reference(name, tuple(gathered.shape), torch.float32, "glorot_normal", "linear")
            assert torch.equal(gathered, expected), name
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_gloo_ranks_gather_the_single_process_weights_bit_for_bit() -> None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is unavailable")
    with tempfile.TemporaryDirectory() as folder:
        init_file = os.path.join(folder, "rendezvous")
        mp.spawn(_worker, args=(2, init_file), nprocs=2, join=True)


def test_shard_range_is_contiguous_only_for_leading_dimension_splits() -> None:
    assert shard_range((10, 4, 3), (4, 4, 3), (6, 0, 0)) == (72, 120)
    assert shard_range((10, 4), (10, 2), (0, 2)) is None
    assert shard_range((5,), (2,), (3,)) == (3, 5)


def test_whole_tensor_schemes_are_not_taken_for_elementwise() -> None:
    assert is_elementwise(initlab.he_normal())
    assert is_elementwise(initlab.truncated_normal(std=0.02))
    assert not is_elementwise(initlab.get("orthogonal"))
    assert not is_elementwise(initlab.get("sparse"))


def test_every_scheme_declared_elementwise_makes_one_draw_over_the_whole_tensor() -> None:
    declared = [initlab.get(info.name) for info in initlab.list_schemes() if initlab.get(info.name).elementwise]
    assert {"he_normal", "normal", "torch_default", "edge_of_chaos"} <= {scheme.name for scheme in declared}
    for scheme in declared:
        assert _single_draw(scheme, (6, 4), torch.float32, "linear", 1) is not None, scheme.name


def test_presets_are_replayed_with_the_parameters_of_the_global_shape() -> None:
    from initlab.plan.sharded import _single_draw

    draw = _single_draw(initlab.get("torch_default"), (7, 5), torch.float32, "linear", 1)
    assert draw is not None and draw.method == "uniform_" and draw.numel == 35
    low, high = draw.arguments
    assert high == pytest.approx(1 / 5**0.5) and low == pytest.approx(-high)
    draw = _single_draw(initlab.he_truncated_normal(), (13, 6), torch.bfloat16, "linear", 1)
    assert draw is not None and draw.method == "truncated_normal_" and draw.arguments[2:] == (-2.0, 2.0)


def test_plain_tensors_and_sequential_generators_are_refused() -> None:
    with pytest.raises(TypeError, match="DTensor"):
        fill_dtensor_(torch.empty(3, 3), initlab.he_normal(), "linear", 1, Keyed(0).child("w"))


def test_init_sharded_on_plain_modules_matches_the_per_parameter_streams() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 2))
    rows = init_sharded(model, "glorot_uniform", seed=SEED)
    assert [row.name for row in rows] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    expected = _reference("1.weight", (2, 4), torch.float32, "glorot_uniform", "linear")
    assert torch.equal(model[1].weight.detach(), expected)
    assert torch.equal(model[0].bias.detach(), torch.zeros(4))

