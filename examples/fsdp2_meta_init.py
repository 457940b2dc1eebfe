"""FSDP2 (and FSDP1) meta-device init with initlab, end to end: processes over gloo on the CPU.

Each rank builds the model on the meta device (no memory), shards it with
``fully_shard``, and calls ``initlab.integrations.init_sharded_model``: the
rank allocates and fills only its own shards, with the values a single
process would give the whole model. No ``reset_parameters``, no seed
checkpoint. Then every rank gathers the weights and rank 0 checks them, bit
for bit, against ``init_model`` on the plain model in one process. The same
model wrapped by FSDP1 with ``param_init_fn=initlab.integrations.param_init_fn(model)``
is checked the same way.

    python examples/fsdp2_meta_init.py            # 2 ranks
    python examples/fsdp2_meta_init.py --world 3  # an uneven split
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import warnings

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import initlab
from initlab.integrations import init_sharded_model, param_init_fn

PLAN = "he; *.norm.weight=ones"  # the residual MLP blocks' norms are written too
SEED = 1234


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(self.norm(x))))


class Model(nn.Module):
    def __init__(self, vocab: int = 100, width: int = 30, depth: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.layers = nn.ModuleList([Block(width) for _ in range(depth)])
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


def fsdp2(world: int) -> tuple[dict[str, torch.Tensor], int]:
    """Meta model, ``fully_shard`` per block and at the root, initlab: the gathered weights and the local count."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    with torch.device("meta"):
        model = Model()
    for layer in model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    init_sharded_model(model, PLAN, SEED)
    local = sum(p.to_local().numel() for p in model.parameters())
    return {name: p.full_tensor() for name, p in model.named_parameters()}, local


def fsdp1() -> dict[str, torch.Tensor]:
    """Meta model wrapped by FSDP1 (one unit per block) with initlab's ``param_init_fn``: the full state dict."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    with torch.device("meta"):
        model = Model()
    wrapped = FSDP(model, auto_wrap_policy=ModuleWrapPolicy({Block}), param_init_fn=param_init_fn(model, PLAN, SEED),
                   device_id=torch.device("cpu"))
    with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=False)):
        return dict(wrapped.state_dict())


def rank_main(rank: int, world: int, port: int) -> None:
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        gathered, local = fsdp2(world)
        state = fsdp1()
        if rank == 0:
            single = Model()
            initlab.init_model(single, PLAN, SEED)
            same = all(torch.equal(gathered[name], p) for name, p in single.named_parameters())
            same_fsdp1 = all(torch.equal(state[name], p) for name, p in single.named_parameters())
            total = sum(p.numel() for p in single.parameters())
            print(f"{world} ranks, FSDP2: rank 0 filled {local} of {total} values; gathered weights equal one "
                  f"process's bit for bit: {same}")
            print(f"{world} ranks, FSDP1 param_init_fn: full state dict equals one process's bit for bit: {same_fsdp1}")
            if not (same and same_fsdp1):
                sys.exit(1)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=int, default=2, help="number of processes (default: 2)")
    args = parser.parse_args(argv)
    if args.world < 1:
        parser.error(f"--world must be at least 1, got {args.world}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    mp.spawn(rank_main, args=(args.world, port), nprocs=args.world, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
