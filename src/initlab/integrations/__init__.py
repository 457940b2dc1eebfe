"""Entry points for FSDP, FSDP2/DTensor and Hugging Face models: one process's weights on any layout.

Every function here initializes with counter streams
(``initlab.rng.Keyed(seed).child(name)``), so the values are those of
``initlab.init_model(model, plan, seed)`` on the plain model in one process,
whatever the world size, mesh or placement, and ``reset_parameters`` is
never called (no double init).

* FSDP2 (``fully_shard``) and tensor parallel (``parallelize_module``):
  build the model on the meta device, shard it, then :func:`init_sharded_model`
  (each rank allocates and fills only its own shards)::

      with torch.device("meta"):
          model = Transformer(config)
      for block in model.layers:
          fully_shard(block, mesh=mesh)
      fully_shard(model, mesh=mesh)
      initlab.integrations.init_sharded_model(model, "auto", seed=0)

  ``docs/scale.md`` runs this end to end in two processes
  (``examples/fsdp2_meta_init.py``).
* FSDP1: ``FullyShardedDataParallel(model, param_init_fn=param_init_fn(model, plan, seed))``.
* Hugging Face: :func:`from_config` builds ``AutoModel*.from_config`` with
  its parameters on the meta device (transformers' own init then runs on
  meta tensors and costs nothing; buffers such as rotary frequencies keep
  their computed values) and initializes it once with initlab.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from initlab.plan import InitReport, PlanLike, init_model

__all__ = ["init_sharded_model", "param_init_fn", "from_config", "empty_parameters"]


def _has_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in (*module.parameters(), *module.buffers()))


def init_sharded_model(
    model: nn.Module,
    plan: PlanLike = "auto",
    seed: int = 0,
    *,
    batch: Any = None,
    example_input: Any = None,
    device: torch.device | str | None = None,
) -> InitReport:
    """Materialize and initialize a model sharded by FSDP2 and/or tensor parallelism; every rank calls it.

    ``init_model(model, plan, seed, rng="counter", ...)``: meta parameters get
    storage for this rank's shards only (on ``device``, default CPU), and each
    rank fills its shards with the values the full tensor has in one process
    (``initlab.plan.sharded``). The recipe replaces ``model.to_empty(...)``
    followed by ``reset_parameters()``. Data-driven stages (``plan="lsuv"``)
    need ``batch`` (each rank's part; the ranks measure the gathered batch).
    TypeError unless ``model`` is an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_sharded_model: model must be a torch.nn.Module, got {type(model).__name__}")
    return init_model(model, plan, seed, rng="counter", batch=batch, example_input=example_input, device=device)


def param_init_fn(
    model: nn.Module,
    plan: PlanLike = "auto",
    seed: int = 0,
    *,
    device: torch.device | str | None = None,
    example_input: Any = None,
) -> Callable[[nn.Module], None]:
    """FSDP1's ``param_init_fn`` for a meta-device ``model``: ``FSDP(model, param_init_fn=param_init_fn(model))``.

    FSDP1 calls the function on each module that still holds meta tensors
    before it flattens them. At its first call the function materializes
    and initializes the whole ``model`` with ``init_model(model, plan, seed,
    rng="counter", device=device)``, so every parameter keeps its qualified
    name (and its stream) and the plan sees the whole data flow; later calls
    find nothing on the meta device and return. Peak memory is one full
    model per rank, as with FSDP1's own meta-device init.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"param_init_fn: model must be a torch.nn.Module, got {type(model).__name__}")
    reports: list[InitReport] = []

    def initialize(module: nn.Module) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"param_init_fn: FSDP passes a torch.nn.Module, got {type(module).__name__}")
        if not _has_meta(module):
            return
        reports.append(init_model(model, plan, seed, rng="counter", device=device, example_input=example_input))

    initialize.reports = reports  # type: ignore[attr-defined]
    return initialize


@contextlib.contextmanager
def empty_parameters() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device; buffers keep their device and values.

    ``nn.Module.register_parameter`` moves each new parameter to the meta
    device as it is registered, so a constructor's ``reset_parameters`` (and
    any init a library runs after construction) touches no memory, while
    buffers computed in the constructor (rotary frequencies, position ids)
    keep their values. (accelerate's ``init_empty_weights`` has the same
    effect with ``include_buffers=False``.)
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and not param.is_meta:
            moved = module._parameters[name]
            assert moved is not None
            module._parameters[name] = type(moved)(moved.to("meta"), requires_grad=moved.requires_grad)

    nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def from_config(
    config: Any,
    plan: PlanLike = "auto",
    seed: int = 0,
    *,
    auto_class: Any = None,
    device: torch.device | str | None = None,
    example_input: Any = None,
) -> tuple[nn.Module, InitReport]:
    """A Hugging Face model built from ``config`` on the meta device, then initialized once by initlab.

    ``auto_class`` (default ``transformers.AutoModelForCausalLM``) builds the
    model with ``from_config(config)`` inside :func:`empty_parameters`:
    transformers' ``_init_weights`` runs on meta parameters, which hold no
    values, so the only fill is initlab's ``init_model(model, plan, seed,
    rng="counter", device=device)``. Tied weights (``lm_head`` and the input
    embedding) stay tied. Returns (model, report). Needs ``transformers``.
    ValueError when the plan leaves a parameter alone (it would hold
    uninitialised memory): give it a rule, e.g. ``"he; *norm.weight=ones"``.
    """
    if auto_class is None:
        try:
            from transformers import AutoModelForCausalLM
        except ImportError as error:  # pragma: no cover - transformers is in the dev extra
            raise ImportError("from_config needs transformers (pip install transformers)") from error
        auto_class = AutoModelForCausalLM
    if not hasattr(auto_class, "from_config"):
        raise TypeError(f"from_config: auto_class must have from_config (an AutoModel class), got {auto_class!r}")
    with empty_parameters():
        model = auto_class.from_config(config)
    report = init_model(model, plan, seed, rng="counter", device=device, example_input=example_input)
    left = [row.name for row in report.rows if row.status != "initialized"]
    if left:
        raise ValueError(
            f"from_config: plan {report.plan} leaves {', '.join(left[:5])}{' ...' if len(left) > 5 else ''} "
            "uninitialised (their values were never made); add a rule for them, e.g. '*norm.weight=ones'"
        )
    return model, report
