"""The layout-invariance matrix: ``init_model`` on sharded models gives one process's bits.

For world sizes 1-4, gloo processes on the CPU build the same small model on
the meta device, shard it (FSDP2 ``fully_shard``; tensor parallel
``parallelize_module`` with Colwise/Rowwise; HSDP's [Replicate, Shard(0)];
FSDP2 over tensor parallel; a 2-D [Shard(0), Shard(1)] DTensor), initialize it
with every ready plan in float32 and bfloat16, gather every parameter and
compare it, bit for bit, with the same plan on the plain model in one
process. Each world also measures the same random tensors drawn by DTensor's
own random ops and the peak memory of a rank during ``init_model``.

``tests/test_layout_matrix.py`` runs it and checks the committed results;
``python tests/layout_matrix.py --write`` re-runs it and rewrites
docs/scale/matrix.json, docs/scale/memory.json and the generated parts of
docs/scale.md; ``--render`` rewrites the page from the committed results;
``--update PLAN[,PLAN...]`` re-runs those plans' cells only and renders.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "scale" / "matrix.json"
MEMORY = ROOT / "docs" / "scale" / "memory.json"
PAGE = ROOT / "docs" / "scale.md"
WORLDS = (1, 2, 3, 4)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
SEED = 17
IN, WIDTH, HIDDEN, OUT, HEADS = 10, 12, 20, 6, 2
# the 2-D meshes of each world size: (outer, inner)
MESH_2D = {2: (1, 2), 3: (3, 1), 4: (2, 2)}
HSDP_MESH = {2: (2, 1), 3: (1, 3), 4: (2, 2)}
REFUSED = "refused"
IDENTICAL = "identical"


# -- the model ---------------------------------------------------------------------------
class Block(nn.Module):
    """A pre-norm residual MLP block with a residual scalar (SkipInit/ReZero's alpha)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH)
        self.up = nn.Linear(WIDTH, HIDDEN)
        self.act = nn.ReLU()
        self.down = nn.Linear(HIDDEN, WIDTH)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.down(self.act(self.up(self.norm(x))))


class Net(nn.Module):
    """Input layer, packed attention (in_proj_weight: q, k, v blocks), two residual blocks, a head on the mean token."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(IN, WIDTH)
        self.attn = nn.MultiheadAttention(WIDTH, HEADS, batch_first=True)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(WIDTH, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(dim=1))


def ready_plans() -> list[str]:
    """Every ready plan of the catalogue and of initlab's data-driven stages, aliases left out.

    (Stages other code registered in this process, test stages say, are left out.)
    """
    import initlab.plan

    others = set(initlab.plan.list_stages()) - stage_plans()
    return [name for name, text in initlab.plan.named_plans().items()
            if not text.startswith("same as") and name not in others]


def stage_plans() -> set[str]:
    """The data-driven stages initlab registers (``initlab.datainit.METHODS``)."""
    import initlab.datainit

    return set(initlab.datainit.METHODS)


def plan_text(plan: str) -> str:
    """The plan as run: data-driven plans also set the residual scalars, which they leave alone.

    (Left alone, a scalar materialized from the meta device holds uninitialised
    memory, and the statistics a stage measures would depend on it.)
    """
    return f"{plan}; blocks.*.scale=ones" if plan in stage_plans() else plan


def global_batch() -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(12, 3, IN, generator=generator)


def rank_batch(rank: int, world: int) -> torch.Tensor:
    """This rank's part of the global batch: data-parallel ranks hold different samples."""
    return global_batch().tensor_split(world)[rank]


# -- the layouts -----------------------------------------------------------------------------
def _tp_plan(prefix: str = "") -> dict[str, Any]:
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan: dict[str, Any] = {"inp": ColwiseParallel(), "head": RowwiseParallel()}
    for index in range(2):
        plan[f"blocks.{index}.up"] = ColwiseParallel()
        plan[f"blocks.{index}.down"] = RowwiseParallel()
    return {prefix + key: value for key, value in plan.items()}


def _fully_shard(model: Net, mesh: Any) -> None:
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _shard_2d(model: Net, mesh: Any) -> None:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    for module in model.modules():
        for key, value in list(module.named_parameters(recurse=False)):
            placements = [Shard(0), Shard(1)] if value.dim() >= 2 else [Shard(0), Replicate()]
            module.register_parameter(key, nn.Parameter(distribute_tensor(value.detach(), mesh, placements)))


def layouts(world: int) -> list[tuple[str, str, Callable[[Net], None]]]:
    """(name, mesh text, shard function) of every layout tested at ``world`` ranks."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import parallelize_module

    line = init_device_mesh("cpu", (world,))
    found: list[tuple[str, str, Callable[[Net], None]]] = [
        ("FSDP2", f"({world},) [Shard(0)]", lambda model: _fully_shard(model, line)),
        ("tensor parallel", f"({world},) Colwise/Rowwise", lambda model: parallelize_module(model, line, _tp_plan())),
    ]
    if world in MESH_2D:
        grid = init_device_mesh("cpu", MESH_2D[world], mesh_dim_names=("dp", "tp"))
        hsdp = init_device_mesh("cpu", HSDP_MESH[world], mesh_dim_names=("replicate", "shard"))

        def fsdp_over_tp(model: Net) -> None:
            parallelize_module(model, grid["tp"], _tp_plan())
            _fully_shard(model, grid["dp"])

        found += [
            ("HSDP", f"{HSDP_MESH[world]} [Replicate, Shard(0)]", lambda model: _fully_shard(model, hsdp)),
            ("FSDP2 + tensor parallel", f"{MESH_2D[world]} [Shard(0), Shard(0 or 1)]", fsdp_over_tp),
            ("DTensor 2-D", f"{MESH_2D[world]} [Shard(0), Shard(1)]", lambda model: _shard_2d(model, grid)),
        ]
    return found


# -- comparing with one process --------------------------------------------------------------
_REFERENCES: dict[tuple[str, torch.dtype], dict[str, torch.Tensor]] = {}


def reference(plan: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The parameters ``plan`` initializes on the plain model in this process, on the global batch (once).

    Parameters a plan leaves alone (status ``untouched``, e.g. the residual
    scalars outside SkipInit/ReZero) hold uninitialised memory after
    materialization from the meta device, so they are not compared.
    """
    import initlab

    if (plan, dtype) not in _REFERENCES:
        torch.manual_seed(0)
        model = Net().to(dtype)
        report = initlab.init_model(model, plan_text(plan), SEED, batch=global_batch().to(dtype))
        written = {row.name for row in report.rows if row.status == "initialized"}
        _REFERENCES[plan, dtype] = {name: value.detach().clone() for name, value in model.named_parameters()
                                    if name in written}
    return _REFERENCES[plan, dtype]


def differing(first: torch.Tensor, second: torch.Tensor) -> int:
    """How many elements of two tensors differ in their bits."""
    if first.shape != second.shape or first.dtype != second.dtype:
        return max(first.numel(), second.numel())
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[first.element_size()]
    return int((first.contiguous().view(bits) != second.contiguous().view(bits)).sum())


def _gathered(value: torch.Tensor) -> torch.Tensor:
    full = getattr(value, "full_tensor", None)
    return full().detach() if callable(full) else value.detach()


def _untouched(model: nn.Module) -> bool:
    """True while every parameter is still on the meta device (nothing was materialized or written)."""
    return all((p.to_local() if hasattr(p, "to_local") else p).is_meta for p in model.parameters())


def check_cell(shard: Callable[[Net], None], plan: str, dtype: torch.dtype, batch: torch.Tensor) -> dict[str, Any]:
    """Shard a meta model, init it by ``plan``, gather it: the outcome and the count of differing elements."""
    import initlab

    with torch.device("meta"):
        model = Net().to(dtype)
    shard(model)
    try:
        initlab.init_model(model, plan_text(plan), SEED, batch=batch.to(dtype))
    except ValueError as error:
        return {"outcome": REFUSED, "untouched": _untouched(model), "message": str(error).split(";")[0]}
    expected = reference(plan, dtype)
    # every rank gathers every parameter (a collective), compared when the plan wrote it
    gathered = {name: _gathered(value) for name, value in model.named_parameters()}
    different = sum(differing(gathered[name], value) for name, value in expected.items())
    total = sum(value.numel() for value in expected.values())
    return {"outcome": IDENTICAL if different == 0 else "differs", "differing": different, "elements": total}


# -- DTensor's own random init on the same meshes ----------------------------------------------
def dtensor_random(world: int) -> list[dict[str, Any]]:
    """Gathered DTensor random values vs one process's, under the same seed; initlab's Keyed beside them."""
    import torch.distributed.tensor as dtensor
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard

    import initlab
    from initlab.plan.sharded import fill_dtensor_
    from initlab.rng import Keyed

    shape = (48, 40)
    meshes = [(f"({world},)", init_device_mesh("cpu", (world,)), [[Shard(0)], [Shard(1)]])]
    if world in MESH_2D:
        grid = init_device_mesh("cpu", MESH_2D[world])
        meshes.append((str(MESH_2D[world]), grid, [[Shard(0), Shard(1)], [Replicate(), Shard(0)]]))
    torch.manual_seed(SEED)
    single_torch = torch.randn(shape)
    single_keyed = initlab.get("normal(std=1.0)").sample(shape, generator=Keyed(SEED).child("w"))
    rows = []
    for mesh_text, mesh, all_placements in meshes:
        for placements in all_placements:
            # what reset_parameters does to an FSDP2/TP parameter: a random op on the DTensor; a CPU mesh has
            # no RNG tracker (torch.distributed.tensor.randn refuses one), so each rank draws its own block
            native = dtensor.distribute_tensor(torch.zeros(shape), mesh, placements)
            torch.manual_seed(SEED)
            nn.init.normal_(native)
            torch.manual_seed(SEED)
            scattered = dtensor.distribute_tensor(torch.randn(shape), mesh, placements).full_tensor()
            keyed = dtensor.distribute_tensor(torch.zeros(shape), mesh, placements)
            fill_dtensor_(keyed, "normal(std=1.0)", "linear", 1, Keyed(SEED).child("w"))
            rows.append({
                "world": world, "mesh": mesh_text, "placements": str(list(placements)).replace("dim=", ""),
                "elements": math.prod(shape),
                "dtensor_normal_differing": differing(native.full_tensor(), single_torch),
                "distribute_tensor_randn_differing": differing(scattered, single_torch),
                "initlab_differing": differing(keyed.full_tensor(), single_keyed),
            })
    return rows


# -- memory ----------------------------------------------------------------------------------------
def _resident_peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _resident(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_during(fn: Callable[[], Any]) -> int:
    """Bytes the process's resident set grew by, at its peak, while ``fn`` ran (Linux VmHWM)."""
    before = _resident("VmRSS")
    _resident_peak_reset()
    fn()
    return _resident("VmHWM") - before


class Wide(nn.Module):
    """About 8.4M parameters in six matrices: large enough that a rank's memory is measurable."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(4096, 1024)
        self.layers = nn.ModuleList([nn.Linear(1024, 1024, bias=False) for _ in range(4)])
        self.head = nn.Linear(1024, 200, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


def memory(world: int) -> list[dict[str, Any]]:
    """Per-rank peak resident growth during init_model on sharded meta models, against the bound."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    import initlab
    from initlab.plan.sharded import SCRATCH_ELEMENTS

    line = init_device_mesh("cpu", (world,))
    cases: list[tuple[str, str, torch.dtype, Callable[[nn.Module], None]]] = [
        ("FSDP2 [Shard(0)]", "normal(std=0.02)", torch.float32, lambda model: _fully_shard_all(model, line)),
        ("FSDP2 [Shard(0)]", "normal(std=0.02)", torch.bfloat16, lambda model: _fully_shard_all(model, line)),
        ("FSDP2 [Shard(0)]", "orthogonal", torch.float32, lambda model: _fully_shard_all(model, line)),
    ]
    if world in MESH_2D:
        grid = init_device_mesh("cpu", MESH_2D[world])

        def shard_2d(model: nn.Module) -> None:
            for module in model.modules():
                for key, value in list(module.named_parameters(recurse=False)):
                    placements = [Shard(0), Shard(1)] if value.dim() >= 2 else [Shard(0), Replicate()]
                    module.register_parameter(key, nn.Parameter(distribute_tensor(value.detach(), grid, placements)))

        cases.append((f"{MESH_2D[world]} [Shard(0), Shard(1)]", "normal(std=0.02)", torch.float32, shard_2d))
    rows = []
    for layout, plan, dtype, shard in cases:
        with torch.device("meta"):
            model = Wide().to(dtype)
        shard(model)
        peak = peak_during(lambda model=model, plan=plan: initlab.init_model(model, plan, SEED))
        local = [(p.to_local() if hasattr(p, "to_local") else p) for p in model.parameters()]
        local_bytes = sum(t.numel() * t.element_size() for t in local)
        full_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        largest = max(p.numel() for p in model.parameters())
        if plan == "orthogonal":
            # one parameter's scratch: what one process needs to draw the largest parameter in full
            # (the Gaussian, its QR factors and the sign-corrected Q), measured here the same way
            shape = max((tuple(p.shape) for p in model.parameters()), key=math.prod)
            scratch = peak_during(lambda shape=shape: initlab.get("orthogonal").sample(shape))
        else:
            # a float32 window of at most SCRATCH_ELEMENTS values (bfloat16 shards are drawn in such chunks and cast)
            scratch = min(SCRATCH_ELEMENTS, largest) * 4
        peaks = [0] * world
        dist.all_gather_object(peaks, peak)
        rows.append({
            "world": world, "layout": layout, "plan": plan, "dtype": str(dtype).replace("torch.", ""),
            "full_model_bytes": full_bytes, "rank0_local_bytes": local_bytes, "bound_bytes": local_bytes + scratch,
            "largest_parameter_bytes": largest * 4, "peak_bytes": peaks,
        })
        del model
    return rows


def _fully_shard_all(model: nn.Module, mesh: Any) -> None:
    from torch.distributed.fsdp import fully_shard

    for layer in getattr(model, "layers", []):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


# -- one world -------------------------------------------------------------------------------------
def run_world(rank: int, world: int, port: int, out: str, with_memory: bool, plans: list[str] | None) -> None:
    """One rank of a gloo world: the matrix cells, DTensor's random ops and memory; rank 0 writes ``out``."""
    import torch.distributed as dist

    import initlab

    torch.set_num_threads(1)
    initlab.rng.set_threads(1)
    if initlab.rng.get_backend() == "numba":
        initlab.rng.set_backend("numba")  # small fills too: the same bits as the PyTorch backend, faster
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    try:
        import warnings

        warnings.simplefilter("ignore")
        cells = []
        plans = plans or ready_plans()
        for layout, mesh, shard in layouts(world):
            for dtype_name, dtype in DTYPES.items():
                for plan in plans:
                    cell = check_cell(shard, plan, dtype, rank_batch(rank, world))
                    cells.append({"world": world, "layout": layout, "mesh": mesh, "dtype": dtype_name,
                                  "plan": plan, **cell})
        result = {"cells": cells, "dtensor_random": dtensor_random(world),
                  "memory": memory(world) if with_memory else []}
        if rank == 0:
            Path(out).write_text(json.dumps(result), encoding="utf-8")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(worlds: tuple[int, ...] = WORLDS, with_memory: bool = True, plans: list[str] | None = None) -> dict[str, Any]:
    """Spawn each world, merge what rank 0 of each wrote: the matrix, the DTensor rows, the memory rows."""
    import torch.multiprocessing as mp

    merged: dict[str, Any] = {"cells": [], "dtensor_random": [], "memory": []}
    # allocations of 64 KiB and more get their own pages, returned on free: the resident peak then
    # follows the live tensors instead of the heap's high-water mark
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    try:
        with tempfile.TemporaryDirectory() as folder:
            for world in worlds:
                out = os.path.join(folder, f"world{world}.json")
                mp.spawn(run_world, args=(world, _free_port(), out, with_memory, plans), nprocs=world, join=True)
                part = json.loads(Path(out).read_text(encoding="utf-8"))
                for key in merged:
                    merged[key].extend(part[key])
    finally:
        if saved is None:
            os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    return merged


def deterministic(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a run that must not change from machine to machine: the matrix and the DTensor counts."""
    return {"seed": SEED, "cells": result["cells"], "dtensor_random": result["dtensor_random"]}


# -- the page -------------------------------------------------------------------------------------------
BEGIN = "<!-- generated by tests/layout_matrix.py: {} -->"
END = "<!-- end of generated {} -->"


def _cell_text(cells: list[dict[str, Any]]) -> str:
    outcomes = {cell["outcome"] for cell in cells}
    if outcomes == {IDENTICAL}:
        return "="
    if outcomes == {REFUSED}:
        return "refused"
    return " / ".join(
        f"{cell['dtype']}: {cell['outcome']}" + (f" ({cell['differing']})" if cell["outcome"] == "differs" else "")
        for cell in cells
    )


def matrix_table(data: dict[str, Any]) -> str:
    cells = data["cells"]
    plans = list(dict.fromkeys(cell["plan"] for cell in cells))
    rows = list(dict.fromkeys((cell["layout"], cell["mesh"], cell["world"]) for cell in cells))
    lines = ["| layout | mesh, placements | world | " + " | ".join(plans) + " |",
             "|---|---|---|" + "---|" * len(plans)]
    for layout, mesh, world in rows:
        texts = [_cell_text([c for c in cells if (c["layout"], c["mesh"], c["world"], c["plan"]) == (layout, mesh, world, plan)])
                 for plan in plans]
        lines.append(f"| {layout} | {mesh} | {world} | " + " | ".join(texts) + " |")
    identical = sum(cell["outcome"] == IDENTICAL for cell in cells)
    refused = sum(cell["outcome"] == REFUSED for cell in cells)
    lines.append("")
    lines.append(f"{len(cells)} cells (float32 and bfloat16 counted apart): {identical} bit-identical to one process, "
                 f"{refused} refused before any write, {len(cells) - identical - refused} other.")
    return "\n".join(lines)


def dtensor_table(data: dict[str, Any]) -> str:
    lines = ["| world | mesh | placements | elements | `nn.init.normal_` on the DTensor | "
             "`distribute_tensor(torch.randn(...))` | initlab `Keyed` (rank's block only) |",
             "|---|---|---|---|---|---|---|"]
    for row in data["dtensor_random"]:
        lines.append(f"| {row['world']} | {row['mesh']} | {row['placements']} | {row['elements']} | "
                     f"{row['dtensor_normal_differing']} differ | {row['distribute_tensor_randn_differing']} differ | "
                     f"{row['initlab_differing']} differ |")
    return "\n".join(lines)


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def memory_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| world | layout | plan | dtype | full model MiB | rank 0 shard MiB | bound: shard + one parameter's scratch, MiB | peak per rank MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        peaks = ", ".join(_mib(p) for p in row["peak_bytes"])
        lines.append(f"| {row['world']} | {row['layout']} | {row['plan']} | {row['dtype']} | "
                     f"{_mib(row['full_model_bytes'])} | {_mib(row['rank0_local_bytes'])} | "
                     f"{_mib(row['bound_bytes'])} | {peaks} |")
    return "\n".join(lines)


def render(page: str, data: dict[str, Any], memory_rows: list[dict[str, Any]]) -> str:
    """``page`` with its generated sections replaced by the tables of ``data`` and ``memory_rows``."""
    for name, table in (("matrix", matrix_table(data)), ("dtensor", dtensor_table(data)),
                        ("memory", memory_table(memory_rows))):
        begin, end = BEGIN.format(name), END.format(name)
        head, found, rest = page.partition(begin)
        if not found:
            raise ValueError(f"{PAGE.name} has no line {begin!r}")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"{PAGE.name} has no line {end!r}")
        page = f"{head}{begin}\n{table}\n{end}{tail}"
    return page


def update(plans: list[str]) -> None:
    """Re-run the cells of ``plans`` in every world and put them into the committed results (memory kept).

    The cells are deterministic, so this gives what ``--write`` would for those plans; new plans are added.
    """
    fresh = run(with_memory=False, plans=plans)["cells"]
    data = json.loads(RESULTS.read_text(encoding="utf-8"))

    def key(cell: dict[str, Any]) -> tuple[Any, ...]:
        return (cell["world"], cell["layout"], cell["dtype"], cell["plan"])

    replacing = {key(cell): cell for cell in fresh}
    cells = [replacing.pop(key(cell), cell) for cell in data["cells"]]
    data["cells"] = in_run_order(cells + list(replacing.values()))
    RESULTS.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def in_run_order(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``cells`` in the order ``--write`` makes them: world, layout, dtype, then the ready plans' order."""
    plans = {plan: index for index, plan in enumerate(ready_plans())}
    layouts = {(cell["world"], cell["layout"]): index for index, cell in reversed(list(enumerate(cells)))}
    dtypes = {name: index for index, name in enumerate(DTYPES)}
    return sorted(cells, key=lambda cell: (cell["world"], layouts[cell["world"], cell["layout"]],
                                           dtypes[cell["dtype"]], plans.get(cell["plan"], len(plans))))


def main(arguments: list[str]) -> int:
    if arguments == ["--write"]:
        started = time.perf_counter()
        result = run()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(deterministic(result), indent=1) + "\n", encoding="utf-8")
        load = os.getloadavg()
        MEMORY.write_text(json.dumps({"load_average": [round(x, 2) for x in load], "rows": result["memory"]},
                                     indent=1) + "\n", encoding="utf-8")
        print(f"ran {len(WORLDS)} worlds in {time.perf_counter() - started:.1f} s; wrote {RESULTS.name}, {MEMORY.name}")
    elif len(arguments) == 2 and arguments[0] == "--update":
        plans = arguments[1].split(",")
        unknown = sorted(set(plans) - set(ready_plans()))
        if unknown:
            print(f"unknown plans {', '.join(unknown)}; ready plans: {', '.join(ready_plans())}")
            return 2
        started = time.perf_counter()
        update(plans)
        print(f"re-ran {', '.join(plans)} in {len(WORLDS)} worlds in {time.perf_counter() - started:.1f} s; "
              f"updated {RESULTS.name}")
    elif arguments != ["--render"]:
        print("usage: python tests/layout_matrix.py --write | --render | --update PLAN[,PLAN...]")
        return 2
    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    memory_rows = json.loads(MEMORY.read_text(encoding="utf-8"))["rows"]
    PAGE.write_text(render(PAGE.read_text(encoding="utf-8"), data, memory_rows), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
