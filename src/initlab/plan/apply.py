"""``init_model``: apply a plan to every parameter of a model, in two phases.

1. Decide (nothing is written): collect the parameters (tied ones once),
   read the data flow if the plan needs it, match every parameter block to
   its first rule, resolve the scheme, check shape, layout and fans, compute
   the expected statistics and any given values. Then check that every
   chosen parameter can be written: not created under ``inference_mode``,
   not an expanded view whose elements share memory, a strided tensor, and,
   for a parametrized tensor, a ``right_inverse`` on every parametrization
   that accepts the drawn values (tried on the values themselves, with the
   parametrization's state restored after). Every error a plan or a model
   can cause is raised here, before any parameter changes, as a ValueError
   that names the parameter.
2. Write, under ``torch.no_grad()``: materialize meta-device modules (new
   empty storage on the target device as ``to_empty`` gives, with tied
   tensors kept tied), then fill each parameter in place from its own stream,
   derived from (seed, qualified name). Parametrized tensors (weight_norm,
   spectral_norm) are written through their right inverse; DTensor
   parameters through ``initlab.plan.sharded.fill_dtensor_``.

Then the stages run (data-driven, on ``batch``); a failing stage restores
every parameter to its value before ``init_model`` was called.

The writes of parametrized and sharded tensors (the ones that run code
other than a fill) come first, under a snapshot; should one still fail, the
snapshot is restored and no plain parameter has been touched yet. A
``KeyboardInterrupt`` during the writes stays a ``KeyboardInterrupt``, with a
note saying which parameters kept their new values.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from initlab.plan.coverage import coverage_findings
from initlab.plan.graph import DataFlow, analyze
from initlab.plan.report import InitReport, InitRow, sample_stats
from initlab.plan.rules import DefaultRule, Plan, PlanLike, Rule, StageSpec
from initlab.plan.stages import Stage, get_stage
from initlab.plan.targets import Block, Target, collect_targets, is_weight_layer
from initlab.plan.values import Auto, ResolveContext, Resolved, TensorValue
from initlab.rng import GeneratorLike, Keyed, derive_generator, derive_seed
from initlab.schemes.fans import Fans, LayoutLike, fans
from initlab.schemes.initializer import check_representable

__all__ = ["init_model", "RNG_KINDS"]

RNG_KINDS = ("torch", "counter")


@dataclass
class _Decision:
    target: Target
    status: str
    rules: list[str] = field(default_factory=list)
    resolved: list[Resolved | None] = field(default_factory=list)
    values: torch.Tensor | None = None
    expected_mean: float | None = None
    expected_std: float | None = None
    gain: float | None = None
    fans: Fans | None = None
    layout: str = ""
    notes: list[str] = field(default_factory=list)


# -- checks --------------------------------------------------------------------------------------
def _refuse_lazy(model: nn.Module) -> None:
    lazy = [
        name or "<root>"
        for name, m in model.named_modules()
        # torch types has_uninitialized_params for a protocol of lazy modules that a plain mixin does not match
        if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()  # type: ignore[misc]
    ]
    lazy += [name for name, p in model.named_parameters() if isinstance(p, UninitializedParameter)]
    lazy += [name for name, b in model.named_buffers() if isinstance(b, UninitializedBuffer)]
    if lazy:
        raise ValueError(
            f"lazy modules have uninitialized parameters ({', '.join(sorted(set(lazy)))}); their shapes are "
            "unknown until a forward pass: run model(example) once to materialize them, then call init_model"
        )


def _check_arguments(model: Any, seed: Any, rng: Any, strict: Any = False) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_model: model must be a torch.nn.Module, got {type(model).__name__}")
    derive_seed(seed, "")
    if rng not in RNG_KINDS:
        raise ValueError(f"init_model: rng must be one of {', '.join(RNG_KINDS)}, got {rng!r}")
    if not isinstance(strict, bool):
        raise TypeError(f"init_model: strict must be True or False, got {strict!r}")


def _stream(rng: str, seed: int, name: str, device: torch.device) -> GeneratorLike:
    if rng == "torch":
        return derive_generator(seed, name, device)
    return Keyed(seed).child(name)


def _block_stream(stream: GeneratorLike, block: Block, count: int) -> GeneratorLike:
    if count == 1 or stream is None or isinstance(stream, torch.Generator):
        return stream
    return stream.child(block.label or str(block.index))


# -- the data flow -------------------------------------------------------------------------------
def _apply_flow(
    targets: list[Target], flow: DataFlow, plan: Plan, context: ResolveContext, notes: list[str]
) -> None:
    context.activations = dict(flow.activations)
    by_module: dict[str, list[Target]] = {}
    for target in targets:
        by_module.setdefault(target.module_name, []).append(target)

    def tag(module_name: str | None, weight_role: str, bias_role: str | None = None) -> None:
        for target in by_module.get(module_name or "", []):
            if target.roles & {"weight", "recurrent"}:
                target.with_roles({weight_role})
            elif bias_role and "bias" in target.roles:
                target.with_roles({bias_role})

    output = flow.output_layer
    modules = {target.module_name: target.module for target in targets}
    if output is not None and is_weight_layer(modules.get(output, nn.Identity())):
        tag(output, "output", "output_bias")
    for name in flow.input_layers:
        if is_weight_layer(modules.get(name, nn.Identity())):
            tag(name, "input")
    if plan.needs_residual():
        if flow.residual_branches is None:
            raise ValueError(
                f"plan {plan}: finding the residual branches needs the model's data flow, but {flow.reason}; "
                "pass example_input= (or batch=) so that a forward pass can be recorded"
            )
        branches = sorted(flow.residual_branches, key=len)
        count = len(branches)
        if count == 0:
            notes.append(f"plan {plan}: found no residual branches ({flow.method} flow); no layer was treated as residual")
        tagged: set[str] = set()
        for branch in branches:
            depth = len(branch)
            scale = count ** (-1.0 / (2 * depth - 2)) if depth >= 2 else 1.0
            for position, module_name in enumerate(branch):
                if module_name in tagged:
                    continue
                tagged.add(module_name)
                last = position == depth - 1
                tag(module_name, "residual_last" if last else "residual")
                if not last:
                    context.fixup_scale[module_name] = scale
    if flow.method == "static":
        read = "the activation after each layer, " if any(isinstance(r.value, Auto) for r, _ in plan.effective_rules()) else ""
        notes.append(f"data flow: {flow.reason}; {read}the output and input layers were read from registration order "
                     "(pass example_input= to record a forward pass)")


# -- phase 1: decide ----------------------------------------------------------------------------------
def _parametrization_list(target: Target) -> Any:
    parametrizations: Any = target.module.parametrizations
    return parametrizations[target.local_name]


def _is_frozen(target: Target) -> bool:
    if target.parametrized:
        plist = _parametrization_list(target)
        return not any(p.requires_grad for p in plist.parameters(recurse=False))
    return not target.tensor.requires_grad


def _layout_text(layout: LayoutLike) -> str:
    if isinstance(layout, Fans):
        return f"fans({layout.fan_in}, {layout.fan_out})"
    return str(layout)


def _block_fans(block: Block, resolved: Resolved) -> Fans | None:
    try:
        return fans(block.shape, resolved.layout, resolved.groups)
    except (ValueError, TypeError):
        return None


def _decide(target: Target, rules: list[tuple[Rule, str]], context: ResolveContext, include_frozen: bool,
            used: set[int], rng: str, seed: int) -> _Decision:
    if not target.tensor.is_floating_point():
        return _Decision(target, "non-float", notes=[f"dtype {target.tensor.dtype} is not floating point"])
    if _is_frozen(target) and not include_frozen:
        return _Decision(target, "frozen")
    decision = _Decision(target, "untouched")
    moments: list[tuple[int, float, float]] = []
    complete = True
    for block in target.blocks:
        match = next(((i, rule, origin) for i, (rule, origin) in enumerate(rules) if rule.matches(target, block)), None)
        if match is None:
            decision.resolved.append(None)
            complete = False
            continue
        index, rule, origin = match
        used.add(index)
        label = f"default {rule.value}" if isinstance(rule, DefaultRule) else str(rule)
        label = label if origin in ("plan", "implicit") else f"{origin}: {label}"
        if label not in decision.rules:
            decision.rules.append(label)
        if isinstance(rule.value, TensorValue):
            decision.values = _given_values(rule, target, rng, seed)
            decision.resolved = [Resolved(None, b.layout, b.groups, note="given values") for b in target.blocks]
            decision.status = "initialized"
            mean, std = sample_stats(decision.values)
            decision.expected_mean, decision.expected_std = mean, std
            return decision
        try:
            resolved = rule.value.resolve(target, block, context)
            if resolved.scheme is not None:
                scheme_fans = resolved.scheme.fans_of(block.shape, resolved.layout, resolved.groups)
                resolved.scheme.check_shape(block.shape, resolved.layout, resolved.groups)
                check_representable(resolved.scheme, block.shape, resolved.layout, resolved.groups,
                                    target.tensor.dtype)
                stats = resolved.scheme.moments(block.shape, resolved.layout, resolved.groups)
        except (ValueError, TypeError) as error:
            where = f"{target.name}" + (f" block {block.label}" if len(target.blocks) > 1 else "")
            hint = _unknown_layout_hint(target) if "other" in block.roles else ""
            raise ValueError(f"plan rule {rule} cannot initialise {where} {tuple(target.shape)}: {error}{hint}") from error
        decision.resolved.append(resolved)
        if resolved.note and resolved.note not in decision.notes:
            decision.notes.append(resolved.note)
        if resolved.scheme is None:
            complete = False
            if decision.status == "untouched":
                decision.status = "kept"
            continue
        decision.status = "initialized"
        size = math.prod(block.shape)
        moments.append((size, stats.mean, stats.std))
        if decision.gain is None:
            decision.gain = resolved.gain if resolved.gain is not None else stats.gain
        if decision.fans is None:
            decision.fans = scheme_fans or _block_fans(block, resolved)
            decision.layout = _layout_text(resolved.layout)
    if decision.status == "initialized" and complete and moments:
        total = sum(n for n, _, _ in moments)
        if total:
            mean = sum(n * m for n, m, _ in moments) / total
            second = sum(n * (s * s + m * m) for n, m, s in moments) / total
            decision.expected_mean = mean
            decision.expected_std = math.sqrt(max(second - mean * mean, 0.0))
        else:
            decision.expected_mean, decision.expected_std = 0.0, 0.0
    if decision.status == "untouched":
        decision.notes.append("no rule matched")
    return decision


def _unknown_layout_hint(target: Target) -> str:
    module_type = type(target.module).__name__
    return (f" (initlab does not know the layout of {module_type}.{target.local_name}; declare it with "
            f"initlab.register_layout({module_type}, {target.local_name!r}, layout))")


def _writable_problem(name: str, tensor: torch.Tensor) -> str:
    """Why ``tensor`` cannot be filled in place, or "" when it can."""
    if tensor.device.type == "meta":
        return ""  # gets new storage when materialized
    if tensor.is_inference():
        return (f"parameter {name} was created under torch.inference_mode and cannot be written outside it; "
                "re-create it outside inference mode (e.g. nn.Parameter(tensor.clone()))")
    if tensor.layout != torch.strided:
        return f"parameter {name} has layout {tensor.layout}; init_model fills dense (strided) tensors only"
    shared = [dim for dim, (size, stride) in enumerate(zip(tensor.shape, tensor.stride())) if size > 1 and stride == 0]
    if shared:
        return (f"parameter {name} is an expanded view (stride 0 along dim {shared[0]}): its elements share memory "
                "and cannot hold independent values; give it its own storage (nn.Parameter(tensor.clone())) first")
    return ""


def _parametrization_state(target: Target) -> list[tuple[nn.Module, str, str, torch.Tensor | None]]:
    """(module, "param"/"buffer", name, copy) of every tensor the parametrizations of ``target`` hold."""
    state: list[tuple[nn.Module, str, str, torch.Tensor | None]] = []
    for module in _parametrization_list(target).modules():
        for kind, store in (("param", module._parameters), ("buffer", module._buffers)):
            for key, tensor in store.items():
                state.append((module, kind, key, None if tensor is None else tensor.detach().clone()))
    return state


def _put_back(state: list[tuple[nn.Module, str, str, torch.Tensor | None]]) -> None:
    with torch.no_grad():
        for module, kind, key, saved in state:
            store = module._parameters if kind == "param" else module._buffers
            current = store.get(key)
            if saved is None or current is None or current.shape != saved.shape or current.dtype != saved.dtype:
                if kind == "buffer":
                    module._buffers[key] = saved
                continue
            current.copy_(saved)


def _try_right_inverse(decision: _Decision, rng: str, seed: int) -> None:
    """Draw the values of a parametrized target and run them through every ``right_inverse``.

    The parametrizations' own tensors are restored afterwards (orthogonal's
    ``right_inverse`` replaces its ``base`` buffer); the drawn values are kept
    in ``decision.values`` so that the write uses exactly the values tried.
    """
    target = decision.target
    plist = _parametrization_list(target)
    for parametrization in plist:
        if not callable(getattr(parametrization, "right_inverse", None)):
            raise ValueError(
                f"parameter {target.name}: parametrization {type(parametrization).__name__} has no right_inverse, "
                "so no value can be written through it; give it a right_inverse, remove it "
                "(torch.nn.utils.parametrize.remove_parametrizations) before init_model, or keep this parameter "
                f"out of the plan (rule 'name:{target.name}=keep' or '{target.name}=keep')"
            )
    with torch.no_grad():
        current = getattr(target.module, target.local_name)
    if current.device.type == "meta":
        return
    if decision.values is None:
        value = torch.empty_like(current)
        _fill_blocks(value, decision, _stream(rng, seed, target.name, value.device))
    else:
        value = decision.values.to(current)
    state = _parametrization_state(target)
    try:
        with torch.no_grad():
            result: Any = value
            for parametrization in reversed(list(plist)):
                result = parametrization.right_inverse(result)
    except Exception as error:
        raise ValueError(
            f"parameter {target.name}: the right_inverse of its parametrization "
            f"{', '.join(type(p).__name__ for p in plist)} refuses the planned values "
            f"({type(error).__name__}: {error}); remove the parametrization before init_model or keep this "
            "parameter out of the plan"
        ) from error
    finally:
        _put_back(state)
    decision.values = value


def _check_writable(decisions: list[_Decision], rng: str, seed: int) -> None:
    """Raise the ValueError a write would raise, for every parameter that is going to be written."""
    for decision in decisions:
        if decision.status != "initialized":
            continue
        target = decision.target
        if target.parametrized:
            plist = _parametrization_list(target)
            for name, original in zip(target.parametrized, plist.parameters(recurse=False)):
                problem = _writable_problem(name, original)
                if problem:
                    raise ValueError(problem)
            _try_right_inverse(decision, rng, seed)
            continue
        problem = _writable_problem(target.name, _current_tensor(target))
        if problem:
            raise ValueError(problem)


def _given_values(rule: Rule, target: Target, rng: str, seed: int) -> torch.Tensor:
    assert isinstance(rule.value, TensorValue)
    device = target.tensor.device if target.tensor.device.type != "meta" else torch.device("cpu")
    values = rule.value.values_for(target.shape, _stream(rng, seed, target.name, device))
    if tuple(values.shape) != target.shape:
        raise ValueError(
            f"plan rule {rule} would change the shape of parameter {target.name} from "
            f"{tuple(target.shape)} to {tuple(values.shape)}; a rule fills a parameter, it cannot reshape it"
        )
    if not values.is_floating_point():
        raise TypeError(f"plan rule {rule} gives {values.dtype} values for floating parameter {target.name}")
    finite = torch.isfinite(values)
    if values.device.type != "meta" and not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"plan rule {rule} gives {bad} NaN or infinite value(s) of {values.numel()} for parameter "
            f"{target.name}; given values must all be finite"
        )
    return values.detach()


# -- phase 2: write --------------------------------------------------------------------------------
def _meta_modules(model: nn.Module) -> list[nn.Module]:
    found = []
    for module in model.modules():
        tensors = [*module._parameters.values(), *module._buffers.values()]
        if any(t is not None and t.device.type == "meta" for t in tensors):
            found.append(module)
    return found


def _move_storage(modules: list[nn.Module], device: torch.device | str, from_meta: bool) -> None:
    """Give the parameters and buffers of ``modules`` new uninitialised storage on ``device``.

    Unlike ``Module.to_empty`` module by module, a tensor shared by several
    modules (tied weights) gets one new tensor, so ties survive.
    """
    memo: dict[int, torch.Tensor] = {}
    for module in modules:
        for store in (module._parameters, module._buffers):
            for key, tensor in store.items():
                if tensor is None or (tensor.device.type == "meta") != from_meta:
                    continue
                if id(tensor) not in memo:
                    fresh = torch.empty_like(tensor, device=device)
                    if isinstance(tensor, nn.Parameter):
                        fresh = nn.Parameter(fresh, requires_grad=tensor.requires_grad)
                    memo[id(tensor)] = fresh
                # _parameters holds Parameters, _buffers plain tensors: one loop writes both
                store[key] = memo[id(tensor)]  # type: ignore[assignment]


def _materialize(model: nn.Module, modules: list[nn.Module], device: torch.device, notes: list[str]) -> None:
    _move_storage(modules, device, from_meta=True)
    unknown: list[str] = []
    for module_name, module in model.named_modules():
        if module not in modules:
            continue
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.reset_running_stats()
            continue
        unknown.extend(f"{module_name}.{b}" if module_name else b for b, t in module._buffers.items() if t is not None)
    if unknown:
        notes.append(
            f"buffers {', '.join(unknown)} were on the meta device and have no known initial value; "
            "they hold uninitialised memory"
        )


def _current_tensor(target: Target) -> torch.Tensor:
    if target.parametrized:
        return getattr(target.module, target.local_name)
    param = target.module._parameters[target.local_name]
    assert param is not None
    return param


def _sharded() -> Any:
    """``initlab.plan.sharded``, imported when a model has DTensor parameters (it imports torch.distributed)."""
    import importlib

    return importlib.import_module("initlab.plan.sharded")


def _is_dtensor(tensor: torch.Tensor) -> bool:
    module = sys.modules.get("torch.distributed.tensor")
    dtensor = getattr(module, "DTensor", None) if module is not None else None
    return dtensor is not None and isinstance(tensor, dtensor)


def _fill_blocks(tensor: torch.Tensor, decision: _Decision, stream: GeneratorLike) -> None:
    blocks = decision.target.blocks
    for block, resolved in zip(blocks, decision.resolved):
        if resolved is None or resolved.scheme is None:
            continue
        view = tensor if len(blocks) == 1 else tensor[block.start:block.stop]
        block_stream = _block_stream(stream, block, len(blocks))
        if view.dtype in (torch.bfloat16, torch.float16) and isinstance(block_stream, Keyed):
            # drawn in float32 chunks and cast, not through a float32 copy of the whole tensor (same bits)
            _sharded().fill_block_(view, resolved.scheme, tuple(block.shape), (0,) * view.dim(), resolved.layout,
                                   resolved.groups, block_stream)
            continue
        resolved.scheme(view, layout=resolved.layout, groups=resolved.groups, generator=block_stream)


def _write(decision: _Decision, rng: str, seed: int) -> None:
    target = decision.target
    if target.parametrized:
        current = getattr(target.module, target.local_name)
        value = torch.empty_like(current) if decision.values is None else decision.values.to(current)
        if decision.values is None:
            _fill_blocks(value, decision, _stream(rng, seed, target.name, value.device))
        setattr(target.module, target.local_name, value)
        return
    param = _current_tensor(target)
    if decision.values is not None:
        param.copy_(decision.values)
        return
    stream = _stream(rng, seed, target.name, param.device)
    module = target.module
    padding = module.padding_idx if isinstance(module, nn.Embedding) and target.local_name == "weight" else None
    if _is_dtensor(param):
        streams = [_block_stream(stream, block, len(target.blocks)) for block in target.blocks]
        _sharded().write_dtensor_(param, target.blocks, decision.resolved, streams, padding)
    else:
        _fill_blocks(param, decision, stream)
        if padding is not None:
            param[padding].zero_()
    if padding is not None and "padding row zeroed" not in decision.notes:
        decision.notes.append("padding row zeroed")


# decision index -> (decision, the tensors it would overwrite, as they were)
_Snapshot = dict[int, tuple[_Decision, list[torch.Tensor]]]


def _snapshot(decisions: list[_Decision]) -> _Snapshot:
    saved: _Snapshot = {}
    for i, decision in enumerate(decisions):
        target = decision.target
        if target.parametrized:
            plist = _parametrization_list(target)
            saved[i] = (decision, [t.detach().clone() for t in (*plist.parameters(), *plist.buffers())])
        else:
            tensor = _current_tensor(target)
            if tensor.device.type != "meta":
                saved[i] = (decision, [tensor.detach().clone()])
    return saved


def _restore(saved: _Snapshot) -> None:
    with torch.no_grad():
        for decision, values in saved.values():
            target = decision.target
            if target.parametrized:
                plist = _parametrization_list(target)
                for tensor, value in zip((*plist.parameters(), *plist.buffers()), values):
                    if tensor.shape == value.shape:
                        tensor.copy_(value)
            else:
                _current_tensor(target).copy_(values[0])


def _row(decision: _Decision, measured: tuple[float | None, float | None], stage_note: str = "") -> InitRow:
    target = decision.target
    schemes: list[str] = []
    for resolved in decision.resolved:
        if resolved is None:
            continue
        text = str(resolved.scheme) if resolved.scheme is not None else resolved.note
        if text and text not in schemes:
            schemes.append(text)
    notes = [*decision.notes, *([stage_note] if stage_note else [])]
    if target.parametrized:
        notes.append(f"parametrized ({type(_parametrization_list(target)[0]).__name__})")
    return InitRow(
        name=target.name,
        shape=tuple(target.shape),
        dtype=str(target.tensor.dtype).replace("torch.", ""),
        rule=" | ".join(decision.rules),
        scheme=" | ".join(schemes),
        layout=decision.layout,
        fan_in=decision.fans.fan_in if decision.fans else None,
        fan_out=decision.fans.fan_out if decision.fans else None,
        gain=decision.gain,
        expected_mean=decision.expected_mean,
        expected_std=decision.expected_std,
        measured_mean=measured[0],
        measured_std=measured[1],
        status=decision.status,
        aliases=tuple(a for a in (*target.aliases, *target.parametrized) if a != target.name),
        blocks=len(target.blocks),
        note="; ".join(notes),
    )


def _example_from(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    return None


def _run_stages(model: nn.Module, stages: list[tuple[StageSpec, Stage]], batch: Any) -> dict[str, Any]:
    reports: dict[str, Any] = {}
    for spec, stage in stages:
        reports[spec.name] = stage.fn(model, batch, **dict(spec.options))
    return reports


# -- the entry point -------------------------------------------------------------------------------
def init_model(
    model: nn.Module,
    plan: PlanLike = "auto",
    seed: int = 0,
    *,
    rng: str = "counter",
    batch: Any = None,
    example_input: Any = None,
    include_frozen: bool = False,
    device: torch.device | str | None = None,
    strict: bool = False,
) -> InitReport:
    """Initialise every parameter of ``model`` by ``plan``; return an :class:`InitReport`.

    ``plan``: a ready plan name (``auto`` (default), ``torch_default``,
    ``lecun``, ``glorot``, ``he``, ``orthogonal``, ``fixup``, ``skipinit``,
    ``rezero``, ``mup``, and the data-driven ``lsuv``, ``wn``, ``calibrate``,
    ``pretrain``, ``gradinit``), any catalogue scheme (for all
    weights, biases zero), a plan string (``"he_normal; bias=zeros;
    output=zeros"``), a dict, a :class:`Plan` or a path to a YAML/TOML/JSON
    plan file.

    ``seed``: each parameter's stream derives from (seed, qualified name), so
    adding, removing or reordering other layers leaves its values unchanged.
    ``rng="counter"`` (default): ``initlab.rng.Keyed(seed).child(name)``, values
    independent of device, threads and sharding (DTensor parameters need it);
    ``"torch"``: ``initlab.rng.derive_generator``, torch's own generator.

    ``batch``: input data for data-driven stages (also used as example input
    for the data flow). ``example_input``: an input for a recorded forward
    pass when torch.fx cannot trace the model (``auto``, ``fixup``,
    output/input roles). ``include_frozen``: also initialise parameters with
    ``requires_grad=False``. ``device``: where meta-device modules are
    materialized (default CPU). ``strict``: a parameter no rule covers, or one
    a rule covers with a layout it cannot read, is listed in
    ``report.warnings``; ``strict=True`` raises a ValueError instead.

    Never calls ``reset_parameters``; always runs under ``torch.no_grad()``.
    Every error a plan or a model can cause is raised before the first write.
    """
    _check_arguments(model, seed, rng, strict)
    plan_obj = Plan.coerce(plan).bind(model)
    _refuse_lazy(model)
    stages = _stages(model, plan_obj)
    needing = [spec.name for spec, stage in stages if stage.needs_batch]
    if needing and batch is None:
        raise ValueError(f"plan {plan_obj} runs the data-driven stage(s) {', '.join(needing)}, which need batch=")
    rules = plan_obj.effective_rules()
    notes: list[str] = []
    targets = collect_targets(model)
    context = ResolveContext()
    flow = _flow(model, targets, plan_obj, example_input if example_input is not None else _example_from(batch),
                 context, notes)
    used: set[int] = set()
    decisions = [_decide(target, rules, context, include_frozen, used, rng, seed) for target in targets]
    notes.extend(f"rule {rule} matched no parameter" for index, (rule, origin) in enumerate(rules)
                 if origin == "plan" and index not in used)
    notes.extend(_refuse_or_list_skips(decisions, plan_obj, strict))
    _check_sharded(decisions, rng)
    _check_writable(decisions, rng, seed)
    meta_modules = _meta_modules(model)
    target_device = torch.device(device if device is not None else "cpu")
    risky_decisions = [d for d in decisions if d.target.parametrized or _is_dtensor(d.target.tensor)]
    saved = _snapshot(decisions) if stages else {}
    risky = {} if stages else _snapshot(risky_decisions)
    _write_all(model, decisions, risky_decisions, meta_modules, target_device, notes, saved, risky, rng, seed)
    notes.extend(_stale_notes(decisions) if meta_modules else [])
    stage_reports = _run_stages_or_restore(model, stages, batch, meta_modules, saved)
    stage_note = f"then stage {', '.join(spec.name for spec, _ in stages)}" if stages else ""
    rows = [_row(d, sample_stats(_current_tensor(d.target)), stage_note if d.status == "initialized" else "") for d in decisions]
    for note in notes:
        _warnings.warn(note, UserWarning, stacklevel=2)
    return InitReport(
        rows=rows, plan=str(plan_obj), seed=seed, rng=_describe_rng(rng),
        flow=flow.method if flow is not None else None, output_layer=flow.output_layer if flow is not None else None,
        warnings=notes, stage_reports=stage_reports, materialized=str(target_device) if meta_modules else None,
    )


def _stale_notes(decisions: list[_Decision]) -> list[str]:
    """The parameters materialized from the meta device that the plan did not fill."""
    stale = [d.target.name for d in decisions if d.status != "initialized"]
    if not stale:
        return []
    return [f"parameters {', '.join(stale)} were materialized from the meta device but not initialised; "
            "they hold uninitialised memory"]


def _refuse_or_list_skips(decisions: list[_Decision], plan: Plan, strict: bool) -> list[str]:
    """The silent skips of ``decisions`` (initlab.plan.coverage), raised as one ValueError when ``strict``."""
    skipped = coverage_findings([(d.target, d.status, d.resolved) for d in decisions])
    if strict and skipped:
        raise ValueError(f"init_model(strict=True): plan {plan} would skip parameters: " + "; ".join(skipped))
    return skipped


def _write_all(model: nn.Module, decisions: list[_Decision], risky_decisions: list[_Decision],
               meta_modules: list[nn.Module], device: torch.device, notes: list[str], saved: _Snapshot,
               risky: _Snapshot, rng: str, seed: int) -> None:
    """The writing phase: materialize meta modules, write every decided parameter; restore on failure.

    ``saved`` holds every decided parameter (when stages follow), ``risky``
    the ones whose write runs code other than a fill (parametrizations,
    DTensors), which go first so that a failure among them leaves the rest
    untouched.
    """
    order = [*risky_decisions, *(d for d in decisions if not (d.target.parametrized or _is_dtensor(d.target.tensor)))]
    written: list[str] = []
    try:
        with torch.no_grad():
            if meta_modules:
                _materialize(model, meta_modules, device, notes)
            for decision in order:
                if decision.status == "initialized":
                    _write(decision, rng, seed)
                    written.append(decision.target.name)
    except BaseException as error:
        if meta_modules:
            _move_storage(meta_modules, "meta", from_meta=False)
        _restore(saved or risky)
        kept = [name for name in written if not saved and name not in {d.target.name for d in risky_decisions}]
        if not kept:
            raise
        note = (f"init_model was stopped while writing: {len(kept)} parameter(s) without a snapshot keep their new "
                f"values ({', '.join(kept[:5])}{', ...' if len(kept) > 5 else ''}); the others are as before")
        if isinstance(error, Exception) and not isinstance(error, ValueError | TypeError):
            raise RuntimeError(note) from error
        _add_note(error, note)
        raise


def _flow(model: nn.Module, targets: list[Target], plan: Plan, example: Any, context: ResolveContext,
          notes: list[str]) -> DataFlow | None:
    """The model's data flow, when a rule of ``plan`` needs it (output/input/residual roles, auto, fixup)."""
    if not targets or not plan.needs_flow():
        return None
    with _sharded().hooks_off(model) if _has_dtensors(model) else contextlib.nullcontext():
        flow = analyze(model, example, need_residual=plan.needs_residual())
    _apply_flow(targets, flow, plan, context, notes)
    return flow


def _check_sharded(decisions: list[_Decision], rng: str) -> None:
    sharded = [d.target.name for d in decisions if d.status == "initialized" and _is_dtensor(d.target.tensor)]
    if sharded and rng != "counter":
        raise ValueError(
            f"parameters {', '.join(sharded[:5])} are DTensors; a shard takes its part of the global values "
            "only from a counter stream: pass rng='counter'"
        )


def _has_dtensors(model: nn.Module) -> bool:
    return any(_is_dtensor(param) for param in model.parameters())


def _stages(model: nn.Module, plan: Plan) -> list[tuple[StageSpec, Stage]]:
    """The plan's stages; ValueError before any write when one cannot run on the model's DTensor parameters."""
    stages = [(spec, get_stage(spec.name)) for spec in plan.effective_stages()]
    if stages and _has_dtensors(model):
        _sharded().check_stage_sharding(model, [stage for _, stage in stages])
    return stages


def _run_stages_or_restore(model: nn.Module, stages: list[tuple[StageSpec, Stage]], batch: Any,
                           meta_modules: list[nn.Module], saved: _Snapshot) -> dict[str, Any]:
    """The stages' reports; a failing stage leaves the model as it was before ``init_model``."""
    if not stages:
        return {}
    try:
        if not _has_dtensors(model):
            return _run_stages(model, stages, batch)
        with _sharded().sharded_stages(model, batch) as global_batch:
            return _run_stages(model, stages, global_batch)
    except BaseException:
        if meta_modules:
            _move_storage(meta_modules, "meta", from_meta=False)
        else:
            _restore(saved)
        raise


def _add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)`` (Python 3.11+); on 3.10 the note goes into ``__notes__`` all the same."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10
        error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]


def _describe_rng(rng: str) -> str:
    """The generator named in the report: the stream kind and its algorithm."""
    if rng == "counter":
        from initlab.rng import ALGORITHM

        return f"counter ({ALGORITHM}, keyed by seed and parameter name)"
    return "torch (torch.Generator seeded from seed and parameter name)"
