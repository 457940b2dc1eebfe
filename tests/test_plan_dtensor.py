"""init_model on DTensor parameters (a one-process gloo group): shards get the values of the full tensor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from initlab.plan import init_model

dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)


@pytest.mark.distributed
def test_dtensor_parameters_get_the_values_of_the_plain_model_with_the_counter_stream(tmp_path: Path) -> None:
    import initlab

    if not hasattr(initlab.rng, "Keyed"):
        pytest.skip("initlab.rng.Keyed is not available")
    from torch.distributed.tensor import DeviceMesh, Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        mesh = DeviceMesh("cpu", [0])
        plain = nn.Linear(64, 32)
        init_model(plain, "he", 0, rng="counter")
        sharded = nn.Linear(64, 32)
        sharded.weight = nn.Parameter(distribute_tensor(sharded.weight.detach(), mesh, [Shard(0)]))
        sharded.bias = nn.Parameter(distribute_tensor(sharded.bias.detach(), mesh, [Shard(0)]))
        before = sharded.weight.full_tensor().clone()
        with pytest.raises(ValueError, match="rng='counter'"):
            init_model(sharded, "he", 0, rng="torch")
        assert torch.equal(sharded.weight.full_tensor(), before)
        report = init_model(sharded, "he", 0)
        assert torch.equal(sharded.weight.full_tensor(), plain.weight)
        assert torch.equal(sharded.bias.full_tensor(), plain.bias)
        assert report["weight"].measured_std == pytest.approx(report["weight"].expected_std, rel=0.1)
    finally:
        dist.destroy_process_group()
