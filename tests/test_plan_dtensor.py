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


@pytest.mark.distributed
def test_orthogonal_on_sharded_parameters_runs_one_qr_per_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.tensor import DeviceMesh, Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        mesh = DeviceMesh("cpu", [0])
        shapes = [(48, 24), (24, 48), (40, 40)]
        plain = nn.Sequential(*(nn.Linear(i, o, bias=False) for o, i in shapes))
        init_model(plain, "orthogonal", 3)
        with torch.device("meta"):
            sharded = nn.Sequential(*(nn.Linear(i, o, bias=False) for o, i in shapes))
        for layer in sharded:
            layer.weight = nn.Parameter(distribute_tensor(layer.weight.detach(), mesh, [Shard(1)]))
        calls: list[tuple[int, ...]] = []
        qr = torch.linalg.qr

        def counting_qr(matrix: torch.Tensor, *args: object, **kwargs: object) -> object:
            calls.append(tuple(matrix.shape))
            return qr(matrix, *args, **kwargs)

        monkeypatch.setattr(torch.linalg, "qr", counting_qr)
        init_model(sharded, "orthogonal", 3)
        assert len(calls) == len(shapes)  # one QR per parameter, on its full (or transposed) matrix
        assert sorted(max(shape) for shape in calls) == sorted(max(shape) for shape in shapes)
        for layer, reference in zip(sharded, plain):
            assert torch.equal(layer.weight.full_tensor(), reference.weight)
    finally:
        dist.destroy_process_group()
