"""``fingerprint(state_dict)``: the init read back out of a checkpoint, and a plan that regenerates it.

For each floating tensor: the family (:mod:`~initlab.diagnosis.fit`), its
parameters, the KS distance and p-value on a fixed-size sample, and the
scheme that explains its std (:mod:`~initlab.diagnosis.explain`): a
variance-scaling rule on the tensor's fans (2-D tensors are read both as
(out, in) and as (in, out); 1-D biases take the fan_in of the weight beside
them), or a round constant, possibly depth-scaled with the number of blocks
found in the names. When an explanation lies within the sample's error bound
(3 standard errors) the reported std is the explanation's exact value: the
fitted value is kept in ``fitted_std``.

The relative standard error of the fitted std from m sampled values is
sqrt((kurtosis - 1) / (4 m)); ``std_error`` reports 1.96 of them (a 95%
bound): 0.54% for a normal at m = 65536.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from initlab.diagnosis.explain import (
    Candidate,
    best_match,
    constant_candidates,
    variance_candidates,
)
from initlab.diagnosis.findings import jsonable
from initlab.diagnosis.fit import Fit, fit_values
from initlab.diagnosis.planwrite import group_rules, plan_yaml, scheme_of
from initlab.diagnosis.sample import SAMPLE_SIZE, sample_values, std_error
from initlab.rng.checks import check_int
from initlab.schemes.variance import truncated_std_factor

__all__ = ["TensorFingerprint", "Fingerprint", "fingerprint"]

_EMBEDDING_NAME = re.compile(r"emb|wte|wpe|tok|word|position", re.IGNORECASE)
_ROUND_BOUNDS = (2.0, 3.0, 2.5, 1.5, 4.0)
# families read exactly from the whole tensor, not estimated from the sample
_EXACT = ("zeros", "ones", "constant", "identity", "dirac")


@dataclass(frozen=True)
class TensorFingerprint:
    """One tensor's most likely init."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    family: str
    parameters: dict[str, float]
    std: float
    fitted_std: float
    ks_distance: float
    ks_pvalue: float
    sample_size: int
    std_error: float  # relative 95% bound on fitted_std
    explanation: str | None
    scheme: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fingerprint:
    """Every tensor's fingerprint, the tensors skipped (with why), and the regenerating plan."""

    tensors: tuple[TensorFingerprint, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    sample_size: int = SAMPLE_SIZE

    def __getitem__(self, name: str) -> TensorFingerprint:
        for row in self.tensors:
            if row.name == name or name in row.aliases:
                return row
        raise KeyError(f"no tensor named {name!r} in the fingerprint")

    def __iter__(self) -> Any:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def rules(self) -> list[tuple[str, str, str]]:
        """(key, scheme, comment) plan rules, one glob per repeated layer where exact."""
        entries = [(row.name, row.scheme, row.explanation or "") for row in self.tensors]
        names = [name for row in self.tensors for name in (row.name, *row.aliases)]
        names += [name for name, _ in self.skipped]
        return group_rules(entries, names)

    def plan(self) -> Any:
        """The :class:`initlab.plan.Plan` of :meth:`rules`."""
        from initlab.plan import Plan

        return Plan.from_dict({key: scheme for key, scheme, _ in self.rules()})

    def plan_text(self, source: str = "") -> str:
        """The plan as YAML with each rule's explanation as a comment."""
        header = [
            f"initlab fingerprint plan{' of ' + source if source else ''}: {len(self.tensors)} tensors, "
            f"{self.sample_size} sampled values each",
            "init_model(model, plan=THIS_FILE) draws each tensor from the fitted distribution",
        ]
        return plan_yaml(self.rules(), header)

    def save_plan(self, path: str | os.PathLike[str], *, source: str = "", overwrite: bool = False) -> Path:
        """Write :meth:`plan_text` to ``path`` (.yaml/.yml); an existing file only with ``overwrite``."""
        file = Path(path)
        if file.suffix.lower() not in (".yaml", ".yml"):
            raise ValueError(f"plan path {str(file)!r}: suffix must be .yaml or .yml")
        if file.exists() and not overwrite:
            raise FileExistsError(f"plan path {str(file)!r} exists; pass overwrite=True (CLI: --force) to replace it")
        file.write_text(self.plan_text(source), encoding="utf-8")
        return file

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "sample_size": self.sample_size,
                "tensors": [asdict(row) for row in self.tensors],
                "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
                "plan": {key: scheme for key, scheme, _ in self.rules()},
            }
        )

    def to_json(self, *, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        lines = [
            f"initlab fingerprint: {len(self.tensors)} tensors ({len(self.skipped)} skipped), "
            f"{self.sample_size} sampled values each"
        ]
        header = f"  {'tensor':<44} {'shape':<16} {'family':<17} {'std':>10} {'+-95%':>7} {'KS p':>6}  explanation"
        lines.append(header)
        for row in self.tensors:
            shape = "x".join(str(d) for d in row.shape) or "()"
            bound = f"{100 * row.std_error:.2f}%" if math.isfinite(row.std_error) else "-"
            lines.append(
                f"  {row.name:<44} {shape:<16} {_family_label(row):<17} {row.std:>10.4g} {bound:>7} "
                f"{row.ks_pvalue:>6.3f}  {row.explanation or '-'}"
            )
        for name, reason in self.skipped:
            lines.append(f"  {name:<44} skipped: {reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _family_label(row: TensorFingerprint) -> str:
    p = row.parameters
    if row.family == "truncated_normal":
        return f"trunc_normal +-{p['b']:.2g}s"
    if row.family == "sparse":
        return f"sparse {p['fraction']:.0%}"
    return row.family


# -- explanation --------------------------------------------------------------------------------
def _depths(names: list[str]) -> tuple[int | None, dict[str, int]]:
    """The number of blocks (the most populated numbered container) and each name's block index."""
    containers: dict[str, set[int]] = {}
    for name in names:
        match = re.match(r"^(.*?)\.(\d+)\.", name)
        if match:
            containers.setdefault(match.group(1), set()).add(int(match.group(2)))
    if not containers:
        return None, {}
    prefix = max(containers, key=lambda key: len(containers[key]))
    indices = {}
    for name in names:
        match = re.match(rf"^{re.escape(prefix)}\.(\d+)\.", name)
        if match:
            indices[name] = int(match.group(1))
    return max(containers[prefix]) + 1, indices


def _torch_fan_in(shape: tuple[int, ...]) -> int:
    return shape[1] * math.prod(shape[2:]) if len(shape) >= 2 else 0


def _candidates(name: str, shape: tuple[int, ...], state: Mapping[str, torch.Tensor], depth: int | None) -> list[Candidate]:
    found: list[Candidate] = []
    if len(shape) == 2:
        for layout in ("linear", "keras"):
            found += [c for c in variance_candidates(shape, layout) if c.convention == "declared"]
        if _EMBEDDING_NAME.search(name):
            found += constant_candidates(depth, width=shape[1])
    elif len(shape) >= 3:
        found += variance_candidates(shape, "conv", 1)
        if shape[1] == 1:
            found += [c for c in variance_candidates(shape, "conv", shape[0]) if c.convention == "declared"]
    elif len(shape) == 1 and name.endswith("bias"):
        weight = state.get(name[: -len("bias")] + "weight")
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            fan_in = _torch_fan_in(tuple(weight.shape))
            if fan_in > 0:
                found.append(Candidate(f"torch_default bias U(+-1/sqrt({fan_in}))", 1.0 / math.sqrt(3.0 * fan_in)))
    found += constant_candidates(depth)
    return found


def _describe(candidate: Candidate, family: str, before_truncation: bool) -> str:
    label = candidate.label
    if candidate.rule is not None and candidate.fans is not None:
        c, mode = candidate.rule
        distribution = {"uniform": "uniform", "truncated_normal": "truncated_normal"}.get(family, "normal")
        base = {"lecun": "lecun", "he": "he", "glorot": "glorot", "torch_default": "torch_default (kaiming_uniform a=sqrt 5)"}.get(
            label, label
        )
        name = base if label == "torch_default" else f"{base}_{distribution}"
        return f"{name} {mode}={candidate.fans.of(mode):g}"
    if before_truncation:
        return f"{label} before truncation"
    return label


def _snap_bound(k: float) -> float:
    for value in _ROUND_BOUNDS:
        if abs(k - value) < 0.03:
            return value
    return k


def _log_distance(candidate: Candidate | None, std: float) -> float:
    return abs(math.log(std / candidate.std)) if candidate is not None else math.inf


def _explain(fit: Fit, candidates: list[Candidate], tolerance: float) -> tuple[Fit, str | None]:
    """``fit`` with its std set to the explaining candidate's, and the explanation; unchanged without one."""
    p = dict(fit.parameters)
    if fit.family == "normal":
        match = best_match(fit.std, candidates, tolerance)
        if match is None:
            return fit, None
        p["std"] = match.std
        return replace(fit, parameters=p, std=match.std), _describe(match, fit.family, False)
    if fit.family == "uniform" and p["a"] == -p["b"]:
        match = best_match(fit.std, candidates, tolerance)
        if match is None:
            return fit, None
        p["a"], p["b"] = -math.sqrt(3.0) * match.std, math.sqrt(3.0) * match.std
        return replace(fit, parameters=p, std=match.std), _describe(match, fit.family, False)
    if fit.family == "truncated_normal":
        k = _snap_bound(p["b"])
        factor = truncated_std_factor(a=-k, b=k)
        after = best_match(fit.std, candidates, tolerance)
        before = best_match(p["sigma"], candidates, tolerance)
        if after is None and before is None:
            p["a"], p["b"] = -k, k
            p["sigma"] = fit.std / factor
            return replace(fit, parameters=p), None
        if _log_distance(after, fit.std) <= _log_distance(before, p["sigma"]):
            assert after is not None
            sigma, text = after.std / factor, _describe(after, fit.family, False)
        else:
            assert before is not None
            sigma, text = before.std, _describe(before, fit.family, True)
        p.update({"a": -k, "b": k, "sigma": sigma})
        return replace(fit, parameters=p, std=sigma * factor), text
    if fit.family == "sparse":
        match = best_match(p["std"], candidates, tolerance)
        if match is None:
            return fit, None
        p["std"] = match.std
        return replace(fit, parameters=p, std=match.std * math.sqrt(1 - p["fraction"])), _describe(match, "normal", False)
    if fit.family == "orthogonal":
        return fit, f"orthogonal gain {p['gain']:.4g}"
    if fit.family in ("identity", "dirac"):
        return fit, f"{fit.family} gain {p['gain']:.4g}"
    return fit, None


# -- public -----------------------------------------------------------------------------------
def fingerprint(
    state_dict: Mapping[str, torch.Tensor] | torch.nn.Module,
    *,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> Fingerprint:
    """The most likely init of every floating tensor of ``state_dict`` (or of a module's state dict).

    Each tensor is fitted on at most ``sample_size`` values drawn uniformly
    (default 65536: the std to 0.54% at 95% for a normal); ``seed`` fixes the
    draw. Integer and empty tensors are listed as skipped.

    >>> import torch, initlab as il
    >>> fp = il.fingerprint({"w": torch.nn.init.orthogonal_(torch.empty(64, 32))})
    >>> fp["w"].family
    'orthogonal'
    """
    if isinstance(state_dict, torch.nn.Module):
        state_dict = state_dict.state_dict(keep_vars=False)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"fingerprint: expected a state dict (mapping of names to tensors) or a module, got {type(state_dict).__name__}")
    check_int("sample_size", sample_size, minimum=16)
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"fingerprint: a state dict maps names (str) to tensors, got {type(name).__name__} -> {type(tensor).__name__}"
            )
        tensors[name] = tensor.detach()
    names = list(tensors)
    depth, _ = _depths(names)
    rows: list[TensorFingerprint] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for name, tensor in tensors.items():
        if tensor.is_meta:
            skipped.append((name, "meta tensor (no values)"))
            continue
        if not tensor.is_floating_point():
            skipped.append((name, f"{str(tensor.dtype).replace('torch.', '')} tensor"))
            continue
        if tensor.numel() == 0:
            skipped.append((name, "empty"))
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if key in seen:
            index = seen[key]
            rows[index] = replace(rows[index], aliases=(*rows[index].aliases, name))
            continue
        seen[key] = len(rows)
        rows.append(_fingerprint_tensor(name, tensor, tensors, depth, sample_size, seed))
    return Fingerprint(tuple(rows), tuple(skipped), sample_size)


def _fingerprint_tensor(
    name: str,
    tensor: torch.Tensor,
    state: Mapping[str, torch.Tensor],
    depth: int | None,
    sample_size: int,
    seed: int,
) -> TensorFingerprint:
    values = sample_values(tensor, size=sample_size, seed=seed, name=name)
    values = values[torch.isfinite(values)]
    fit = fit_values(tensor, values, seed=seed)
    count = int(values.numel())
    centred = values - values.mean() if count else values
    variance = float((centred * centred).mean()) if count else 0.0
    kurtosis = float((centred**4).mean()) / (variance * variance) if variance > 0 else 3.0
    relative = std_error(count, kurtosis)
    explained, text = _explain(fit, _candidates(name, tuple(tensor.shape), state, depth), max(3.0 * relative, 0.002))
    return TensorFingerprint(
        name=name,
        shape=tuple(int(d) for d in tensor.shape),
        dtype=str(tensor.dtype).replace("torch.", ""),
        family=explained.family,
        parameters=dict(explained.parameters),
        std=explained.std,
        fitted_std=fit.std,
        ks_distance=fit.ks_distance,
        ks_pvalue=fit.ks_pvalue,
        sample_size=count,
        std_error=0.0 if explained.family in _EXACT else 1.96 * relative if math.isfinite(relative) else math.inf,
        explanation=text,
        scheme=scheme_of(explained),
    )
