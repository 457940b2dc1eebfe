"""What the scheme and the theory say a layer's output std should be.

Two columns sit next to each measured std:

* ``expected_std`` -- from the scheme, one layer at a time. The caller gives
  the expected std of each weight (``expected={"0.weight": 0.05, ...}`` or an
  ``InitReport`` of ``initlab.init_model``, whose rows have ``name`` and
  ``expected_std``), or of a layer's output directly (``{"0": 1.0}``). For a
  Linear/Conv layer fed by inputs of mean square m = E[x^2] (measured),

      expected_std = sqrt(fan_in * sigma_w^2 * m + sigma_b^2)

  (the variance argument of LeCun et al. 1998, Glorot & Bengio 2010 and He
  et al. 2015, with fans from the declared layout); an activation that
  follows such a layer expects the std of phi(h), h ~ N(0, expected_std^2).

* ``predicted_std`` -- the mean-field prediction of ``initlab.theory`` from
  the network input alone (Poole et al. 2016): along the chain of
  Linear/Conv layers and activations that starts at the model input,
  q_1 = sigma_w2 * E[x^2] + sigma_b2 and q_{l+1} = sigma_w2 * E[phi(sqrt(q_l) z)^2]
  + sigma_b2, with sigma_w2 = fan_in * mean(W^2) and sigma_b2 = mean(b^2) of
  the actual weights. Pre-activation rows get sqrt(q_l), activation rows the
  std of phi(sqrt(q_l) z). The chain stops at the first layer that does not
  read the previous row's output (a residual add, a norm, pooling, a
  functional activation): the theory does not cover what follows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab.rng.checks import check_number
from initlab.schemes.fans import fans as layout_fans
from initlab.schemes.gains import activation_function, gaussian_expectation

__all__ = ["ChainRow", "normalise_expected", "residual_parameters", "expected_stds", "mean_field_predictions", "check_expected_names",
           "batch_size_of"]

_WEIGHT_KINDS = ("linear", "conv", "conv_transpose")


@dataclass(frozen=True)
class ChainRow:
    """What the predictions need to know about one row, in forward order."""

    name: str
    kind: str
    module: nn.Module
    source: str | None  # row name or "<input>" this row read; None if unknown or ambiguous
    layout: str | None
    groups: int
    weight_shape: tuple[int, ...] | None
    weight_mean_square: float | None
    bias_mean_square: float | None
    input_mean_square: float | None


def normalise_expected(expected: Any) -> dict[str, float]:
    """``expected`` (a mapping, an InitReport or anything with ``.rows``) as {name: expected std}."""
    if expected is None:
        return {}
    items: list[tuple[Any, Any]]
    if isinstance(expected, Mapping):
        items = list(expected.items())
    elif hasattr(expected, "rows"):
        items = [
            (getattr(row, "name", None), getattr(row, "expected_std", None))
            for row in expected.rows
        ]
    else:
        raise TypeError(
            "expected must be a mapping {parameter or layer name: std}, an InitReport or an object with "
            f".rows (name, expected_std); got {type(expected).__name__}"
        )
    result: dict[str, float] = {}
    for name, value in items:
        if not isinstance(name, str):
            raise TypeError(f"expected: names must be strings, got {name!r}")
        if value is None:
            continue
        result[name] = check_number(f"expected[{name!r}]", value, minimum=0.0)
    return result


# plan roles of the layers inside a residual branch (initlab.plan: the data flow's branches)
_BRANCH_ROLES = ("residual", "residual_last")


def residual_parameters(expected: Any) -> frozenset[str]:
    """Names of the parameters an ``InitReport`` filled by a rule on a residual-branch role.

    Such a plan (``fixup``, ``residual_last=...``) scales the layers of each
    branch down on purpose, so that the branches add little to the stream at
    the start; the verdicts then read a small output there as by design. A
    rule reads ``KEY=SCHEME``, optionally after ``PLAN: `` (a ready plan's
    rule); the key is a role or ``Family.role``.
    """
    found = set()
    for row in getattr(expected, "rows", None) or ():
        rule = getattr(row, "rule", None)
        name = getattr(row, "name", None)
        if not isinstance(rule, str) or not isinstance(name, str):
            continue
        key = rule.rsplit(": ", 1)[-1].split("=", 1)[0].strip()
        if key.rsplit(".", 1)[-1] in _BRANCH_ROLES:
            found.add(name)
    return frozenset(found)


def check_expected_names(model: nn.Module, expected: Mapping[str, float]) -> None:
    """ValueError listing the names of ``expected`` that are neither a parameter nor a layer of ``model``.

    A misspelt name would otherwise be ignored and its layer left without an
    expected std, silently.
    """
    from torch.nn.utils import parametrize

    known = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    for module_name, module in model.named_modules(remove_duplicate=False):
        known.add(module_name)
        if parametrize.is_parametrized(module):
            prefix = f"{module_name}." if module_name else ""
            known.update(f"{prefix}{tensor_name}" for tensor_name in module.parametrizations)
    unknown = sorted(name for name in expected if name not in known)
    if unknown:
        examples = sorted(name for name, _ in model.named_parameters())[:6]
        raise ValueError(
            f"expected names {', '.join(map(repr, unknown[:10]))}{' ...' if len(unknown) > 10 else ''} are not "
            f"parameters or layers of the model; expected takes parameter names (e.g. "
            f"{', '.join(examples) or 'none'}) or layer names"
        )


def batch_size_of(batch: Any) -> int | None:
    """The number of samples in ``batch`` (dim 0 of its first tensor), or None when it holds no sized tensor."""
    from initlab.probe.collector import first_tensor

    tensor = first_tensor(batch)
    if tensor is None or tensor.dim() == 0:
        return None
    return int(tensor.shape[0])


def _fan_in(row: ChainRow) -> int | None:
    if row.layout is None or row.weight_shape is None:
        return None
    try:
        return layout_fans(row.weight_shape, row.layout, row.groups).fan_in
    except ValueError:
        return None


def _activation_std(module: nn.Module, pre_activation_std: float) -> float:
    """std of phi(h), h ~ N(0, pre_activation_std^2)."""
    phi = activation_function(module)
    first = float(gaussian_expectation(phi, pre_activation_std))
    second = float(gaussian_expectation(lambda x: phi(x) ** 2, pre_activation_std))
    return math.sqrt(max(second - first * first, 0.0))


def expected_stds(rows: list[ChainRow], expected: Mapping[str, float]) -> dict[str, float]:
    """The expected output std of each row that the caller's expectations determine."""
    result: dict[str, float] = {}
    for row in rows:
        if row.name in expected:
            result[row.name] = expected[row.name]
            continue
        prefix = f"{row.name}." if row.name else ""
        weight_std = expected.get(prefix + "weight")
        if (
            row.kind in _WEIGHT_KINDS
            and weight_std is not None
            and row.input_mean_square is not None
        ):
            fan_in = _fan_in(row)
            if fan_in is None:
                continue
            bias_std = expected.get(prefix + "bias", 0.0)
            result[row.name] = math.sqrt(
                fan_in * weight_std**2 * row.input_mean_square + bias_std**2
            )
        elif row.kind == "activation" and row.source in result:
            try:
                result[row.name] = _activation_std(row.module, result[row.source])
            except (ValueError, TypeError):
                continue
    return result


def mean_field_predictions(
    rows: list[ChainRow], input_mean_square: float | None
) -> dict[str, float]:
    """Mean-field predicted output std along the chain that starts at the model input."""
    if input_mean_square is None or not math.isfinite(input_mean_square):
        return {}
    from initlab.theory import MeanField, predict_layer_stats

    result: dict[str, float] = {}
    previous = "<input>"
    q: float | None = None  # pre-activation variance of the last weight layer
    activation: nn.Module | str = "linear"  # what maps that pre-activation to the current signal
    for row in rows:
        if row.source != previous:
            if row.kind in _WEIGHT_KINDS or row.kind == "activation":
                break
            continue  # a side row (e.g. a norm elsewhere) does not break the chain
        if row.kind in _WEIGHT_KINDS:
            fan_in = _fan_in(row)
            if fan_in is None or row.weight_mean_square is None:
                break
            sigma_w2 = fan_in * row.weight_mean_square
            sigma_b2 = row.bias_mean_square or 0.0
            if not (math.isfinite(sigma_w2) and math.isfinite(sigma_b2)):
                break
            try:
                if q is None:
                    q = (
                        predict_layer_stats("linear", 1, input_mean_square, sigma_w2, sigma_b2)[0]
                        ** 2
                    )
                else:
                    q = float(MeanField(activation, sigma_w2, sigma_b2).q_map(q))
            except (ValueError, TypeError):
                break  # an activation the theory cannot integrate ends the chain
            if q is None or not math.isfinite(q):
                break
            result[row.name] = math.sqrt(q)
            activation = "linear"
        elif row.kind == "activation" and q is not None and activation == "linear":
            try:
                result[row.name] = _activation_std(row.module, math.sqrt(q))
            except (ValueError, TypeError):
                break
            activation = row.module
        else:
            break
        previous = row.name
    return result
