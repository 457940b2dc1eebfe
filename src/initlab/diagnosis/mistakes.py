"""Recognised mistakes: init code that runs without error and gives the wrong scale.

* **Wrong fan convention** (``fan_convention``): a grouped or transposed
  convolution whose std matches a variance-scaling rule only under a fan
  convention that misreads its weight (torch's fan_out of a depthwise conv,
  fan_in without the groups, Keras's depthwise fans); see
  :mod:`initlab.diagnosis.explain`.
* **Truncation that never binds** (``truncation_never_binds``): a
  ``trunc_normal_`` call in the model's init code whose bounds ``a``, ``b``
  are absolute values (default +-2) lying beyond ``TRUNCATION_LIMIT`` stds of
  the values it fills: nothing is truncated. Read from the source of the
  model's classes with ``ast`` (never executed).
* **Residual projections without depth scaling** (``residual_not_scaled``):
  in a pre-norm stack of L blocks each residual branch adds its variance to
  the stream, so with every layer at one std the stream's std after the
  stack is about sqrt(2 L) times what the depth-scaled std / sqrt(2 L) of
  GPT-2 gives (Radford et al. 2019, sec. 2.3). It matters (warning) from the
  depth at which that factor reaches ``STREAM_GROWTH_LIMIT``.
* **Large output layer** (``large_output_init``): an output layer whose
  predicted logit std exceeds ``LARGE_LOGIT_STD``: the initial softmax is
  already confident, the initial loss is about log C + s^2 / 2 instead of log C.
* **Tied weights whose owners disagree** (``tied_owners_disagree``): an
  embedding tied to the output layer at the embedding's scale, or a model
  whose config declares tying while the two tensors are separate.
* **Parameters no reset_parameters covers** (``not_reset_by_module``):
  ``Module.to_empty`` leaves them as raw memory unless a module-level init
  writes them.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import statistics
import textwrap
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from initlab.diagnosis.explain import best_match, variance_candidates
from initlab.diagnosis.findings import Finding
from initlab.diagnosis.sample import TensorSummary
from initlab.diagnosis.structure import BlockStack, Layer
from initlab.diagnosis.values import rule

__all__ = [
    "TRUNCATION_LIMIT",
    "STREAM_GROWTH_LIMIT",
    "LARGE_LOGIT_STD",
    "UNSCALED_RATIO",
    "fan_convention_findings",
    "truncation_findings",
    "residual_findings",
    "output_findings",
    "declared_tying_findings",
    "reset_coverage_findings",
    "distribution_of",
]

# bounds farther than this many stds from the mean cut off less than 2e-9 of a normal
TRUNCATION_LIMIT = 6.0
# sqrt(2 L) >= 4, i.e. L >= 8 blocks: the unscaled stream's std is 4x the depth-scaled one
STREAM_GROWTH_LIMIT = 4.0
# a projection whose std is at least this share of its block's other layers' std is not depth-scaled
UNSCALED_RATIO = 0.75
# predicted logit std above which the initial softmax is far from uniform (loss log C + s^2/2)
LARGE_LOGIT_STD = 3.0

_INIT_METHOD = re.compile(r"init|reset", re.IGNORECASE)
_TRUNC_NAMES = {"trunc_normal_", "trunc_normal"}


def distribution_of(summary: TensorSummary) -> str:
    """normal, uniform or truncated_normal, read from the kurtosis (3, 1.8, and between for a 2-sigma cut)."""
    kurtosis = summary.kurtosis
    if not math.isfinite(kurtosis):
        return "normal"
    if kurtosis < 2.15:
        return "uniform"
    if kurtosis < 2.8:
        return "truncated_normal"
    return "normal"


def _scheme_for(label: str, rule_: tuple[float, str] | None, distribution: str) -> str:
    suffix = {"normal": "normal", "uniform": "uniform", "truncated_normal": "truncated_normal"}[distribution]
    if label == "lecun":
        return f"lecun_{suffix}"
    if label == "he":
        return f"he_{suffix}"
    if label == "he fan_out":
        return f"he_{suffix}(mode=fan_out)"
    if label == "glorot":
        return f"glorot_{suffix}"
    if label == "torch_default":
        return f"he_{suffix}(nonlinearity=leaky_relu, negative_slope=2.23606797749979)"
    c, mode = rule_ if rule_ is not None else (1.0, "fan_in")
    return f"variance_scaling(scale={c:.6g}, mode={mode}, distribution={distribution})"


def fan_convention_findings(layers: list[Layer], summaries: Mapping[str, TensorSummary]) -> list[Finding]:
    """Grouped and transposed convolutions whose std fits a known rule only under a misread fan convention."""
    findings = []
    for layer in layers:
        if layer.kind == "conv" and layer.groups == 1 or layer.kind not in ("conv", "conv_transpose"):
            continue
        summary = summaries.get(layer.weight)
        if summary is None or summary.constant or not summary.std > 0:
            continue
        tolerance = max(3.0 * summary.relative_error, 0.01)
        candidates = variance_candidates(layer.shape, layer.layout, layer.groups)
        declared = [c for c in candidates if c.convention == "declared"]
        if best_match(summary.std, declared, tolerance) is not None:
            continue
        distinct = [
            c
            for c in candidates
            if c.convention != "declared"
            and all(abs(math.log(c.std / d.std)) > math.log1p(2 * tolerance) for d in declared)
        ]
        match = best_match(summary.std, distinct, tolerance)
        if match is None or match.fans is None:
            continue
        also = sorted(
            {f"{c.label} ({c.convention} fans)" for c in distinct
             if c is not match and abs(math.log(summary.std / c.std)) <= math.log1p(tolerance)}
        )
        distribution = distribution_of(summary)
        own_default = layer.kind == "conv_transpose" and match.label == "torch_default" and match.convention == "torch"
        declared_fans = layer.fans
        c, mode = match.rule or (1.0, "fan_in")
        right_fan = declared_fans.of(mode)
        right_std = math.sqrt(c / right_fan) if right_fan > 0 else math.nan
        message = (
            f"{layer.weight}: std {summary.std:.4g} is {match.label} ({mode}) with the {match.convention} fans "
            f"(fan_in {match.fans.fan_in}, fan_out {match.fans.fan_out}); this {layer.kind} with groups={layer.groups} "
            f"has fan_in {declared_fans.fan_in}, fan_out {declared_fans.fan_out}, so {match.label} gives std {right_std:.4g}"
        )
        if also:
            message += f"; within the sample's error it is also {', '.join(also[:3])}"
        if own_default:
            message += " (nn.ConvTranspose's own reset_parameters reads fan_in from dim 1)"
        findings.append(
            Finding(
                code="fan_convention",
                severity="info" if own_default else "warning",
                message=message,
                parameters=(layer.weight,),
                evidence={
                    "std": summary.std,
                    "sampled": summary.sampled,
                    "matches": match.label,
                    "convention": match.convention,
                    "convention_fan": match.fans.of(mode),
                    "declared_fan": right_fan,
                    "std_with_declared_fans": right_std,
                    "ratio": summary.std / right_std if right_std > 0 else math.nan,
                },
                fix=rule(layer.weight, _scheme_for(match.label, match.rule, distribution)),
                reference="pytorch/pytorch#23854; huggingface/pytorch-image-models#84; initlab.fans layouts",
            )
        )
    return findings


# -- truncation bounds read from the init code ------------------------------------------------
def _literal(node: ast.expr | None) -> float | None:
    if node is None:
        return None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _trunc_calls(cls: type) -> list[tuple[str, int, dict[str, ast.expr | None]]]:
    """(method, line, arguments) of each trunc_normal_ call in the init methods of ``cls`` itself."""
    calls = []
    for method_name, function in vars(cls).items():
        if not _INIT_METHOD.search(method_name) or not inspect.isfunction(function):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(function))
            tree = ast.parse(source)
            first_line = inspect.getsourcelines(function)[1]
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called not in _TRUNC_NAMES:
                continue
            names = ("tensor", "mean", "std", "a", "b")
            arguments: dict[str, ast.expr | None] = dict(zip(names, node.args))
            for keyword in node.keywords:
                if keyword.arg in names:
                    arguments[keyword.arg] = keyword.value
            calls.append((f"{cls.__name__}.{method_name}", first_line + node.lineno - 1, arguments))
    return calls


def _classes(model: nn.Module) -> list[type]:
    seen: list[type] = []
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls in seen or cls is object or cls.__module__.split(".")[0] in ("torch", "builtins"):
                continue
            seen.append(cls)
    return seen


def truncation_findings(
    model: nn.Module, layers: list[Layer], summaries: Mapping[str, TensorSummary]
) -> list[Finding]:
    """trunc_normal_ calls whose absolute bounds lie beyond TRUNCATION_LIMIT stds of what they fill."""
    findings = []
    for cls in _classes(model):
        for where, line, arguments in _trunc_calls(cls):
            if "a" in arguments and _literal(arguments["a"]) is None:
                continue
            if "b" in arguments and _literal(arguments["b"]) is None:
                continue
            low = _literal(arguments.get("a")) if "a" in arguments else -2.0
            high = _literal(arguments.get("b")) if "b" in arguments else 2.0
            mean = _literal(arguments.get("mean")) if "mean" in arguments else 0.0
            if low is None or high is None or mean is None:
                continue
            owners = [name for name, module in model.named_modules() if isinstance(module, cls)]
            filled = [
                layer.weight
                for layer in layers
                if any(layer.name == owner or layer.name.startswith(f"{owner}.") or owner == "" for owner in owners)
                and layer.weight in summaries
                and not summaries[layer.weight].constant
            ]
            std = _literal(arguments.get("std")) if "std" in arguments else 1.0
            source = "literal"
            if std is not None:
                near = [name for name in filled if abs(math.log(summaries[name].std / std)) < math.log(1.25)]
                filled = near or filled
            else:
                fitted = [summaries[name].std for name in filled if distribution_of(summaries[name]) == "normal"]
                if not fitted:
                    continue
                std, source = statistics.median(fitted), "fitted"
            if not std or std <= 0:
                continue
            bound_sigma = min(abs(low - mean), abs(high - mean)) / std
            if bound_sigma < TRUNCATION_LIMIT:
                continue
            truncated = [name for name in filled if distribution_of(summaries[name]) == "truncated_normal"]
            if truncated and len(truncated) == len(filled):
                continue  # the values show a cut: the bounds bind after all
            findings.append(
                Finding(
                    code="truncation_never_binds",
                    severity="warning",
                    message=(
                        f"{where} (line {line}) calls trunc_normal_ with absolute bounds [{low:g}, {high:g}] and std "
                        f"{std:.4g} ({source}): the bounds are {bound_sigma:.0f} stds out, nothing is truncated; "
                        "torch's a, b are values, not stds"
                    ),
                    parameters=tuple(filled),
                    evidence={"a": low, "b": high, "std": std, "std_from": source, "bounds_in_std": bound_sigma, "line": line},
                    fix=f"weight=truncated_normal(std={std:.6g}, a=-2.0, b=2.0)",
                    reference="pytorch/torchtitan#3334; foundation-model-stack/foundation-model-stack#289",
                )
            )
    return findings


# -- residual projections ----------------------------------------------------------------------
def _glob(names: list[str]) -> str:
    patterns = {re.sub(r"\.\d+\.", ".*.", name) for name in names}
    return patterns.pop() if len(patterns) == 1 else names[0]


def residual_findings(stacks: list[BlockStack], summaries: Mapping[str, TensorSummary]) -> list[Finding]:
    """Pre-norm stacks whose residual projections keep the common std (no 1/sqrt(2L))."""
    findings = []
    for stack in stacks:
        depth = len(stack.blocks)
        if not stack.pre_norm or depth < 2:
            continue
        others = [summaries[n].std for block in stack.others for n in block if n in summaries and not summaries[n].constant]
        if not others:
            continue
        common = statistics.median(others)
        positions = max((len(block) for block in stack.projections), default=0)
        for position in range(positions):
            names = [block[position] for block in stack.projections if len(block) > position]
            stds = [summaries[n].std for n in names if n in summaries and not summaries[n].constant]
            if len(stds) < 2 or not common > 0:
                continue
            projection = statistics.median(stds)
            ratio = projection / common
            if ratio < UNSCALED_RATIO:
                continue
            growth = math.sqrt(2 * depth)
            matters_from = math.ceil(STREAM_GROWTH_LIMIT**2 / 2)
            severity = "warning" if growth >= STREAM_GROWTH_LIMIT else "info"
            scaled = common / math.sqrt(2 * depth)
            findings.append(
                Finding(
                    code="residual_not_scaled",
                    severity=severity,
                    message=(
                        f"{len(names)} residual projections of the pre-norm stack {stack.name} ({depth} blocks) keep the "
                        f"common std ({projection:.4g} vs {common:.4g}); each of the 2L = {2 * depth} branches adds its "
                        f"variance to the stream, about sqrt(2L) = {growth:.2f}x the std that depth scaling gives; "
                        f"this matters (>= {STREAM_GROWTH_LIMIT:g}x) from {matters_from} blocks"
                    ),
                    parameters=tuple(names),
                    evidence={
                        "blocks": depth,
                        "projection_std": projection,
                        "common_std": common,
                        "ratio": ratio,
                        "stream_growth": growth,
                        "matters_from_blocks": matters_from,
                        "depth_scaled_std": scaled,
                    },
                    fix=f"{_glob(names)}=normal(mean=0.0, std={scaled:.6g})",
                    reference="Radford et al. 2019 (GPT-2), sec. 2.3; Shoeybi et al. 2019 (Megatron-LM)",
                )
            )
    return findings


# -- output layers and tied weights ---------------------------------------------------------------
def _logit_std(summary: TensorSummary, fan_in: int, input_mean_square: float, bias: TensorSummary | None) -> float:
    bias_ms = bias.rms**2 if bias is not None and math.isfinite(bias.rms) else 0.0
    return math.sqrt(fan_in * summary.rms**2 * input_mean_square + bias_ms)


def output_findings(
    model: nn.Module,
    output_layers: list[str],
    layers: list[Layer],
    summaries: Mapping[str, TensorSummary],
    aliases: Mapping[str, tuple[str, ...]],
    predicted_input: Mapping[str, float],
) -> list[Finding]:
    """Output layers whose predicted logit std exceeds LARGE_LOGIT_STD (tied to an embedding: owners disagree)."""
    findings = []
    by_name = {layer.name: layer for layer in layers}
    canonical = {alias: name for name, names in aliases.items() for alias in names}
    for layer_name in output_layers:
        layer = by_name.get(layer_name)
        if layer is None or layer.kind == "embedding" or layer.out_width < 2:
            continue
        weight_name = canonical.get(layer.weight, layer.weight)
        summary = summaries.get(weight_name)
        if summary is None or summary.constant or not math.isfinite(summary.rms):
            continue
        input_ms = predicted_input.get(layer_name, 1.0)
        bias = summaries.get(layer.bias) if layer.bias else None
        logit_std = _logit_std(summary, layer.fans.fan_in, input_ms, bias)
        if logit_std <= LARGE_LOGIT_STD:
            continue
        names = (weight_name, *aliases.get(weight_name, ()))
        embeddings = {other.weight for other in layers if other.kind == "embedding"}
        tied_embedding = [n for n in names if n != layer.weight and n in embeddings]
        evidence = {
            "fan_in": layer.fans.fan_in,
            "weight_std": summary.std,
            "input_mean_square": input_ms,
            "predicted_logit_std": logit_std,
            "initial_loss_excess_nats": logit_std**2 / 2,
            "classes": layer.out_width,
        }
        target_std = 1.0 / math.sqrt(layer.fans.fan_in * max(input_ms, 1e-12))
        if tied_embedding:
            findings.append(
                Finding(
                    code="tied_owners_disagree",
                    severity="warning",
                    message=(
                        f"{layer.weight} is tied to the embedding {tied_embedding[0]}, initialised at the embedding's "
                        f"scale (std {summary.std:.4g}); as the output layer it gives logits of std {logit_std:.3g} "
                        f"(fan_in {layer.fans.fan_in}): the two owners need different scales"
                    ),
                    parameters=names,
                    evidence=evidence,
                    fix=rule(weight_name, f"normal(mean=0.0, std={target_std:.6g})"),
                    reference="Press & Wolf 2017 (tied embeddings); Modalities/modalities#456",
                )
            )
            continue
        findings.append(
            Finding(
                code="large_output_init",
                severity="warning",
                message=(
                    f"output layer {layer.weight}: predicted logit std {logit_std:.3g} (fan_in {layer.fans.fan_in}, "
                    f"weight std {summary.std:.4g}); the initial softmax is confident and the initial loss about "
                    f"log C + {logit_std**2 / 2:.3g} nats"
                ),
                parameters=names,
                evidence=evidence,
                fix=rule(weight_name, "lecun_normal"),
                reference="Glorot & Bengio 2010; Dosovitskiy et al. 2021 (zero-initialised ViT head)",
            )
        )
    return findings


def declared_tying_findings(model: nn.Module) -> list[Finding]:
    """A model whose config says tie_word_embeddings while input and output embeddings are separate tensors."""
    config = getattr(model, "config", None)
    if config is None or not getattr(config, "tie_word_embeddings", False):
        return []
    getter_in = getattr(model, "get_input_embeddings", None)
    getter_out = getattr(model, "get_output_embeddings", None)
    if not callable(getter_in) or not callable(getter_out):
        return []
    try:
        source, output = getter_in(), getter_out()
    except Exception:  # a model without one of the two raises its own kind of error
        return []
    if source is None or output is None:
        return []
    first, second = getattr(source, "weight", None), getattr(output, "weight", None)
    if not isinstance(first, torch.Tensor) or not isinstance(second, torch.Tensor) or first is second:
        return []
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    first_name, second_name = names.get(id(first), "input embedding"), names.get(id(second), "output embedding")
    evidence: dict[str, Any] = {"tie_word_embeddings": True}
    if not first.is_meta and not second.is_meta and first.shape == second.shape:
        evidence["max_abs_difference"] = float((first.detach() - second.detach()).abs().max())
    return [
        Finding(
            code="tied_owners_disagree",
            severity="warning",
            message=(
                f"the config declares tied word embeddings, but {second_name} and {first_name} are separate tensors: "
                "the output layer keeps its own random init and the checkpoint's single copy is loaded into one of them"
            ),
            parameters=(first_name, second_name),
            evidence=evidence,
            fix="model.tie_weights() (or set the output layer's weight to the embedding's Parameter)",
            reference="huggingface/transformers#43429",
        )
    ]


# -- reset_parameters coverage ---------------------------------------------------------------------
def _resets(cls: type) -> bool:
    return any(callable(getattr(cls, name, None)) for name in ("reset_parameters", "_reset_parameters"))


def _model_init(cls: type) -> str | None:
    for name in ("reset_parameters", "_reset_parameters", "_init_weights", "init_weights"):
        if callable(getattr(cls, name, None)):
            return name
    return None


def reset_coverage_findings(model: nn.Module, structure_only: bool) -> list[Finding]:
    """Tensors whose owning module has no reset_parameters: to_empty leaves them as raw memory."""
    modules = dict(model.named_modules())
    uncovered: list[str] = []
    covered_above: dict[str, str] = {}
    for name, module in modules.items():
        own = [n for n, _ in module.named_parameters(recurse=False)] + [n for n, _ in module.named_buffers(recurse=False)]
        if not own or _resets(type(module)):
            continue
        prefix = f"{name}." if name else ""
        parts = name.split(".") if name else []
        ancestor_init = None
        for depth in range(len(parts) - 1, -1, -1):
            ancestor = modules.get(".".join(parts[:depth]))
            found = _model_init(type(ancestor)) if ancestor is not None else None
            if found is not None:
                ancestor_init = f"{type(ancestor).__name__}.{found}"
                break
        for local in own:
            if ancestor_init is None:
                uncovered.append(prefix + local)
            else:
                covered_above[prefix + local] = ancestor_init
    findings = []
    if uncovered:
        findings.append(
            Finding(
                code="not_reset_by_module",
                severity="warning" if structure_only else "info",
                message=(
                    f"{len(uncovered)} tensors belong to modules without reset_parameters and no enclosing init: "
                    "after building on the meta device, Module.to_empty leaves them as raw memory and "
                    "reset_parameters-based materialisation (FSDP param_init_fn) never writes them"
                ),
                parameters=tuple(uncovered),
                evidence={"tensors": len(uncovered)},
                fix="give each such module a reset_parameters(), or materialise with "
                + "init_model(model, plan=...) which writes every parameter",
                reference="NVIDIA-BioNeMo/bionemo-recipes#1368; allenai/OLMo-core#698",
            )
        )
    if covered_above and structure_only:
        inits = sorted(set(covered_above.values()))
        findings.append(
            Finding(
                code="not_reset_by_module",
                severity="info",
                message=(
                    f"{len(covered_above)} tensors have no reset_parameters of their own and are written only by "
                    f"{', '.join(inits)}: run it after to_empty, module-wise materialisation skips them"
                ),
                parameters=tuple(covered_above),
                evidence={"tensors": len(covered_above), "written_by": inits},
                fix="call the model's init after to_empty, or init_model(model, plan=...)",
            )
        )
    return findings
