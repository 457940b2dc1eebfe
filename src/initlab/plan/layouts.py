"""Layouts of parameters that torch.nn does not define: a registry, known third-party layers, norms found by behaviour.

initlab reads fans from a declared layout (:mod:`initlab.schemes.fans`). The
torch.nn layers declare theirs in :mod:`initlab.plan.targets`; a parameter of
any other module would have role ``other`` and no layout a plan could trust.
Three things give such parameters a layout and a role:

1. :func:`register_layout`, for the user's own layers::

       initlab.register_layout(MyLinear, "kernel", "linear_t")              # role weight
       initlab.register_layout(MyNorm, "gain", "vector", role="norm_scale")

   The bias of a layer whose weight is registered with a weight layout takes
   the weight's fans (as torch.nn biases do).
2. Third-party layers known without registering: Hugging Face ``Conv1D``
   (GPT-1, GPT-2: ``weight`` stored (in, out), layout ``linear_t``).
3. Normalising modules found by behaviour: a leaf module without buffers or
   hooks whose parameters are a 1-D ``weight`` and, optionally, a 1-D
   ``bias`` of the same size, and whose forward returns
   ``weight * normalised(x) + bias`` with ``normalised(x)`` of RMS 1 (RMSNorm)
   or of mean 0 and std 1 (LayerNorm) along the last dimension. The check
   runs the module once on a fixed 4 x n input with stand-in values for its
   parameters (``torch.func.functional_call``), so the module's own tensors
   are never read or written (meta-device modules are fine). LLaMA's
   ``LlamaRMSNorm``, T5's ``T5LayerNorm`` and nanoGPT's ``LayerNorm`` are
   found this way; Gemma's RMSNorm, which multiplies by ``1 + weight`` (its
   neutral weight is 0, not 1), is not, and stays ``other``.

The registry belongs to the plan layer; ``initlab.register_layout`` is its
top-level spelling.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from initlab.schemes.fans import LAYOUTS

__all__ = ["register_layout", "registered_layout", "LayoutEntry", "WEIGHT_LAYOUTS", "REGISTRABLE_ROLES",
           "is_registered_layer", "normalising_role"]

# layouts of a layer's weight matrix or kernel: a registered parameter with one of these is a layer weight
WEIGHT_LAYOUTS = ("linear", "linear_t", "conv", "conv_transpose", "keras", "jax")

# roles a registered parameter may take; output, input and the residual roles come from the data flow,
# query/key/value and forget_bias from splitting packed tensors, so they cannot be declared per type
REGISTRABLE_ROLES = ("weight", "bias", "embedding", "recurrent", "norm_scale", "norm_shift", "scalar",
                     "activation", "other")


@dataclass(frozen=True)
class LayoutEntry:
    """The declared layout and roles of one parameter of a module type."""

    layout: str
    roles: frozenset[str]


# (module type or "module.QualName", parameter name) -> entry; a string key names a type without importing it
_REGISTRY: dict[tuple[type[nn.Module] | str, str], LayoutEntry] = {}


def _default_roles(layout: str, role: str | None, where: str) -> frozenset[str]:
    if role is not None:
        return frozenset({role, "input"} if role == "embedding" else {role})
    if layout in WEIGHT_LAYOUTS:
        return frozenset({"weight"})
    if layout == "embedding":
        return frozenset({"embedding", "input"})
    raise ValueError(
        f"{where}: a parameter with layout {layout!r} needs role=, one of {', '.join(REGISTRABLE_ROLES)} "
        "(e.g. role='norm_scale' for a norm's gain)"
    )


def register_layout(module_type: type[nn.Module], param_name: str, layout: str, role: str | None = None) -> None:
    """Declare the layout (and role) of ``module_type``'s parameter ``param_name``.

    ``layout`` is one of ``initlab.schemes.LAYOUTS`` (``linear`` (out, in),
    ``linear_t`` (in, out), ``conv``, ``conv_transpose``, ``embedding``,
    ``keras``, ``jax``, ``vector``). ``role`` defaults to ``weight`` for the
    weight layouts and ``embedding`` for ``embedding``; a ``vector``
    parameter needs one (``norm_scale``, ``norm_shift``, ``bias``,
    ``scalar``, ...). Subclasses of ``module_type`` inherit the entry;
    registering the same pair again replaces it. Conv layouts read the
    module's ``groups`` attribute (default 1).

    >>> import torch, initlab
    >>> class Transposed(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.kernel = torch.nn.Parameter(torch.empty(16, 4))   # (in, out)
    >>> initlab.register_layout(Transposed, "kernel", "linear_t")
    >>> initlab.init_model(Transposed(), "lecun_normal")["kernel"].fan_in
    16
    """
    where = "register_layout"
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"{where}: module_type must be a torch.nn.Module subclass, got {module_type!r}")
    if not isinstance(param_name, str) or not param_name.isidentifier():
        raise ValueError(f"{where}: param_name must be a parameter name like 'weight', got {param_name!r}")
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"{where}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if role is not None and role not in REGISTRABLE_ROLES:
        raise ValueError(
            f"{where}: role must be one of {', '.join(REGISTRABLE_ROLES)} or None, got {role!r} "
            "(output, input and residual roles come from the model's data flow)"
        )
    _REGISTRY[(module_type, param_name)] = LayoutEntry(layout, _default_roles(layout, role, where))


def _register_by_name(qualified_type: str, param_name: str, layout: str) -> None:
    """Register a third-party type by its import path, so that its package is never imported here."""
    _REGISTRY[(qualified_type, param_name)] = LayoutEntry(layout, _default_roles(layout, None, qualified_type))


def registered_layout(module: nn.Module, param_name: str) -> LayoutEntry | None:
    """The entry for ``module.<param_name>`` (the nearest registered class in the MRO), or None."""
    for cls in type(module).__mro__:
        entry = _REGISTRY.get((cls, param_name)) or _REGISTRY.get((f"{cls.__module__}.{cls.__qualname__}", param_name))
        if entry is not None:
            return entry
    return None


def is_registered_layer(module: nn.Module) -> bool:
    """Whether ``module``'s ``weight`` is registered with a weight layout (a layer whose gain a flow reads)."""
    entry = registered_layout(module, "weight")
    return entry is not None and entry.layout in WEIGHT_LAYOUTS


# -- normalising modules, by behaviour ---------------------------------------------------------------
# a fixed input with mean 1 and std 3 per row, so that neither normalisation is the identity
_PROBE_ROWS = 4
_PROBE_SEED = 0
# RMS, mean and std of the normalised rows are compared to 1, 0 and 1 within this tolerance; it leaves room for
# eps (1e-5 against a variance of about 9) and float32 rounding, and none for a module that does not normalise
_PROBE_TOLERANCE = 1e-3

_NORMALISING: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _probe_candidate(module: nn.Module) -> tuple[int, bool] | None:
    """(size, has_bias) when ``module`` has the parameters of a norm and can be run safely, else None."""
    if any(True for _ in module.children()) or any(b is not None for b in module._buffers.values()):
        return None
    if module._forward_hooks or module._forward_pre_hooks:
        return None
    params = {name: p for name, p in module._parameters.items() if p is not None}
    weight, bias = params.get("weight"), params.get("bias")
    if weight is None or set(params) - {"weight", "bias"} or weight.dim() != 1 or weight.numel() < 2:
        return None
    if bias is not None and (bias.dim() != 1 or bias.numel() != weight.numel()):
        return None
    return weight.numel(), bias is not None


def _is_normalised(rows: torch.Tensor) -> bool:
    rms = rows.square().mean(dim=-1).sqrt()
    mean = rows.mean(dim=-1)
    std = (rows - mean[:, None]).square().mean(dim=-1).sqrt()
    rms_one = bool(((rms - 1).abs() < _PROBE_TOLERANCE).all())
    standardised = bool((mean.abs() < _PROBE_TOLERANCE).all() and ((std - 1).abs() < _PROBE_TOLERANCE).all())
    return rms_one or standardised


def _behaves_as_norm(module: nn.Module, size: int, has_bias: bool) -> bool:
    generator = torch.Generator().manual_seed(_PROBE_SEED)
    x = torch.randn(_PROBE_ROWS, size, generator=generator) * 3 + 1
    scale = torch.linspace(0.5, 2.0, size)
    shift = torch.linspace(-1.0, 1.0, size)
    neutral = {"weight": torch.ones(size), **({"bias": torch.zeros(size)} if has_bias else {})}
    moved = {"weight": scale, **({"bias": shift} if has_bias else {})}
    try:
        with torch.no_grad():
            base = functional_call(module, neutral, (x,))
            scaled = functional_call(module, moved, (x,))
    except Exception:  # a module that does not take a (rows, size) float tensor is not one we can read
        return False
    if not (isinstance(base, torch.Tensor) and isinstance(scaled, torch.Tensor)) or base.shape != x.shape:
        return False
    base, scaled = base.float(), scaled.float()
    if not (torch.isfinite(base).all() and _is_normalised(base)):
        return False
    expected = base * scale + (shift if has_bias else 0.0)
    return bool(torch.allclose(scaled, expected, atol=_PROBE_TOLERANCE, rtol=_PROBE_TOLERANCE))


def normalising_role(module: nn.Module, param_name: str) -> str | None:
    """``norm_scale``/``norm_shift`` for the weight/bias of a module that normalises (see the module docstring)."""
    if param_name not in ("weight", "bias"):
        return None
    known = _NORMALISING.get(module)
    if known is None:
        candidate = _probe_candidate(module)
        known = candidate is not None and _behaves_as_norm(module, *candidate)
        _NORMALISING[module] = known
    if not known:
        return None
    return "norm_scale" if param_name == "weight" else "norm_shift"


# Hugging Face transformers' Conv1D (GPT-1, GPT-2): weight (nx, nf) = (in, out), y = x @ W + b
_register_by_name("transformers.pytorch_utils.Conv1D", "weight", "linear_t")
_register_by_name("transformers.modeling_utils.Conv1D", "weight", "linear_t")
