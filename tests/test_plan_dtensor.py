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


# -- data-driven stages on FSDP2-sharded models, against one process -----------------------------
# weight-norm init and calibration: world sizes 2 and 3 (3 splits every width of the model unevenly),
# FSDP2 on a 1-D mesh (and HSDP at 2), float32 and bfloat16; training stages refused before any write
STAGE_WORLDS = (2, 3)
RUN_SHARDED = ("wn", "calibrate")
TRAINING = ("pretrain", "gradinit")


def _stage_cells(rank: int, world: int, store: str, out: str) -> None:
    """One rank: every (layout, plan, dtype) of the stages that run sharded, and the training stages' refusals."""
    import json
    import sys
    import warnings

    from torch.distributed.device_mesh import init_device_mesh

    import initlab

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import layout_matrix as lm

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        line = init_device_mesh("cpu", (world,))
        meshes = [("FSDP2", line)]
        if world == 2:  # HSDP's [Replicate, Shard(0)] on a (2, 1) mesh: two replicas, one shard each
            meshes.append(("HSDP", init_device_mesh("cpu", (2, 1), mesh_dim_names=("replicate", "shard"))))
        cells = []
        for layout, mesh in meshes:
            for plan in RUN_SHARDED:
                for dtype_name, dtype in lm.DTYPES.items():
                    with torch.device("meta"):
                        model = lm.Net().to(dtype)
                    lm._fully_shard(model, mesh)
                    report = initlab.init_model(model, lm.plan_text(plan), lm.SEED,
                                                batch=lm.rank_batch(rank, world).to(dtype))
                    expected = lm.reference(plan, dtype)
                    gathered = {name: lm._gathered(value) for name, value in model.named_parameters()}
                    cells.append({
                        "layout": layout, "plan": plan, "dtype": dtype_name,
                        "differing": sum(lm.differing(gathered[name], value) for name, value in expected.items()),
                        "elements": sum(value.numel() for value in expected.values()),
                        "summary": report.stage_reports[plan].to_dict()["summary"],
                    })
        refusals = []
        for plan in TRAINING:
            with torch.device("meta"):
                model = lm.Net()
            lm._fully_shard(model, line)
            try:
                initlab.init_model(model, lm.plan_text(plan), lm.SEED, batch=lm.rank_batch(rank, world))
                refusals.append({"plan": plan, "message": None})
            except ValueError as error:
                refusals.append({"plan": plan, "message": str(error), "untouched": lm._untouched(model)})
        if rank == 0:
            Path(out).write_text(json.dumps({"cells": cells, "refusals": refusals}), encoding="utf-8")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=STAGE_WORLDS, ids=lambda world: f"world{world}")
def stage_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    import json

    import torch.multiprocessing as mp

    folder = tmp_path_factory.mktemp(f"stages{request.param}")
    out = folder / "cells.json"
    mp.spawn(_stage_cells, args=(request.param, str(folder / "store"), str(out)), nprocs=request.param, join=True)
    return {"world": request.param, **json.loads(out.read_text(encoding="utf-8"))}


@pytest.mark.distributed
def test_weight_norm_init_and_calibration_on_fsdp2_give_one_process_bits(stage_world: dict) -> None:
    # every rank measures the all-gathered batch in one process's order and computes the gradient of the
    # gathered weights in full (no reduce-scatter): no sum is reordered, so the tolerance is zero
    cells = stage_world["cells"]
    assert len(cells) == (2 if stage_world["world"] == 2 else 1) * len(RUN_SHARDED) * 2
    for cell in cells:
        where = f"{cell['plan']} on {cell['layout']} at world {stage_world['world']} in {cell['dtype']}"
        assert cell["elements"] > 0 and cell["differing"] == 0, where
        summary = cell["summary"]
        # the stages measured the global batch (12 samples, 4 per rank at world 3) and changed the model
        if cell["plan"] == "wn":
            assert summary["samples"] == 12 and summary["layers"] == 7, where
        else:
            assert summary["rounds"] >= 1 and summary["spread_after"] < summary["spread_before"], where


@pytest.mark.distributed
def test_training_stages_are_refused_on_fsdp2_before_any_write(stage_world: dict) -> None:
    for refusal in stage_world["refusals"]:
        assert refusal["message"] is not None, f"{refusal['plan']} ran on a sharded model"
        assert f"stage {refusal['plan']} cannot run" in refusal["message"]
        assert "train" in refusal["message"] and "wn" in refusal["message"], refusal
        assert refusal["untouched"], f"{refusal['plan']}: refused after writing"
