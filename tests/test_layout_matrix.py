"""The layout matrix of docs/scale.md: sharded init gives one process's bits, and the page shows the committed run.

``tests/layout_matrix.py`` builds the matrix (world sizes 1-4, FSDP2, tensor
parallel, HSDP, FSDP2 over tensor parallel, 2-D DTensors; float32 and
bfloat16; every ready plan). Here: the committed results are complete and
hold only bit-identical or refused-before-writing cells, the page is what the
script makes of them, and a fresh 4-rank run (one spawn: uneven splits, the
2 x 2 meshes) reproduces its cells of the committed matrix and measures each
rank's peak memory against the bound.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import layout_matrix as lm  # noqa: E402

# the plans the fresh run covers: elementwise, whole-tensor (QR), data flow, muP, two stages (run on FSDP2, refused under TP)
FRESH_PLANS = ["he", "orthogonal", "auto", "mup", "lsuv", "wn"]


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(lm.RESULTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def memory_rows() -> list[dict]:
    return json.loads(lm.MEMORY.read_text(encoding="utf-8"))["rows"]


def test_the_page_is_what_the_script_makes_of_the_committed_results(committed: dict, memory_rows: list[dict]) -> None:
    page = lm.PAGE.read_text(encoding="utf-8")
    assert lm.render(page, committed, memory_rows) == page, "run: python tests/layout_matrix.py --render"


def test_the_committed_matrix_covers_every_world_layout_dtype_and_ready_plan(committed: dict) -> None:
    cells = committed["cells"]
    assert committed["seed"] == lm.SEED
    assert {cell["world"] for cell in cells} == set(lm.WORLDS)
    assert {cell["plan"] for cell in cells} == set(lm.ready_plans()), "plans changed: python tests/layout_matrix.py --write"
    assert {cell["dtype"] for cell in cells} == set(lm.DTYPES)
    for world in lm.WORLDS:
        layouts = {cell["layout"] for cell in cells if cell["world"] == world}
        expected = {"FSDP2", "tensor parallel"} | ({"HSDP", "FSDP2 + tensor parallel", "DTensor 2-D"} if world in lm.MESH_2D else set())
        assert layouts == expected
    assert len(cells) == len({(c["world"], c["layout"], c["dtype"], c["plan"]) for c in cells})


def test_every_committed_cell_is_bit_identical_or_refused_before_any_write(committed: dict) -> None:
    stages = lm.stage_plans()
    for cell in committed["cells"]:
        where = f"{cell['plan']} on {cell['layout']} {cell['mesh']} {cell['dtype']}"
        if cell["outcome"] == lm.REFUSED:
            assert cell["plan"] in stages, f"{where}: only data-driven stages may be refused"
            assert cell["untouched"], f"{where}: refused after writing"
        else:
            assert cell["outcome"] == lm.IDENTICAL and cell["differing"] == 0 and cell["elements"] > 0, where
    # LSUV, weight-norm init and calibration run on every FSDP2-only layout (1-D and HSDP), for every world size
    for plan in ("lsuv", "wn", "calibrate"):
        ran = [c for c in committed["cells"] if c["plan"] == plan and c["layout"] in ("FSDP2", "HSDP")]
        assert len(ran) == 2 * (len(lm.WORLDS) + len(lm.MESH_2D)) and all(c["outcome"] == lm.IDENTICAL for c in ran), plan


def test_dtensor_random_ops_differ_from_one_process_where_initlab_does_not(committed: dict) -> None:
    rows = committed["dtensor_random"]
    assert all(row["initlab_differing"] == 0 for row in rows)
    sharded = [row for row in rows if row["world"] > 1 and row["placements"] != "[Replicate(), Shard(0)]"]
    assert sharded and all(row["dtensor_normal_differing"] > row["elements"] // 4 for row in sharded)


def test_committed_peak_memory_per_rank_stays_within_shard_plus_one_parameters_scratch(memory_rows: list[dict]) -> None:
    assert {row["world"] for row in memory_rows} == set(lm.WORLDS)
    for row in memory_rows:
        assert all(peak <= row["bound_bytes"] for peak in row["peak_bytes"]), row
        if row["world"] == 4 and row["plan"] != "orthogonal":
            assert max(row["peak_bytes"]) < row["full_model_bytes"] / 2, row  # a quarter of the model, plus scratch


@pytest.mark.distributed
@pytest.mark.slow
def test_a_fresh_four_rank_run_reproduces_the_committed_cells_within_the_memory_bound(committed: dict) -> None:
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    fresh = lm.run((4,), with_memory=True, plans=FRESH_PLANS)
    key = ("world", "layout", "mesh", "dtype", "plan")
    recorded = {tuple(cell[k] for k in key): cell for cell in committed["cells"]}
    assert len(fresh["cells"]) == 5 * 2 * len(FRESH_PLANS)
    for cell in fresh["cells"]:
        assert cell.get("outcome") in (lm.IDENTICAL, lm.REFUSED), cell
        assert cell == recorded[tuple(cell[k] for k in key)]
    assert fresh["dtensor_random"] == [row for row in committed["dtensor_random"] if row["world"] == 4]
    # peak memory per rank, measured in this run: within the rank's shard plus one parameter's scratch
    assert len(fresh["memory"]) == 4
    for row in fresh["memory"]:
        assert all(0 < peak <= row["bound_bytes"] for peak in row["peak_bytes"]), row
