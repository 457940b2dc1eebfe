"""What a plan can initialise: every parameter of a model, with its roles, layout and blocks.

A :class:`Target` is one parameter (tied parameters appear once, under their
first qualified name, with the other names as aliases). It is split into
:class:`Block` s along dim 0 where the tensor packs several matrices:

* ``nn.MultiheadAttention.in_proj_weight`` (3E, E): q, k, v, each (E, E);
* ``nn.LSTM`` weights and biases: 4 gate blocks (i, f, g, o); ``nn.GRU``: 3
  (r, z, n); ``nn.RNN``: 1.

Each block carries the roles a rule can match and the layout its fans come
from, so q, k and v get their own fans, and a bias takes the fans of its
weight (block by block).

Roles (``ROLES``) describe what a parameter does; module families
(``MODULE_FAMILIES``) name groups of torch.nn types.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from initlab.plan import layouts
from initlab.schemes.fans import Fans, LayoutLike, fans

__all__ = [
    "ROLES",
    "MODULE_FAMILIES",
    "Block",
    "Target",
    "collect_targets",
    "is_weight_layer",
    "module_family_types",
    "GRAPH_ROLES",
]

ROLES: dict[str, str] = {
    "weight": "weight of Linear, Bilinear, ConvNd, ConvTransposeNd, attention projections, RNN input weights",
    "bias": "bias of those layers (fans of its weight), RNN and attention biases",
    "embedding": "weight of Embedding / EmbeddingBag",
    "recurrent": "hidden-to-hidden weight of RNN / LSTM / GRU (weight_hh_l*)",
    "norm_scale": "weight (gamma) of BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm, and of modules that normalise",
    "norm_shift": "bias (beta) of those norms",
    "output": "weight of the model's output layer (the last Linear/Conv whose result reaches the output)",
    "output_bias": "bias of the model's output layer",
    "input": "weight of the layers that read the model's input, and embeddings",
    "query": "the q block of a packed attention in_proj_weight / in_proj_bias",
    "key": "the k block of a packed attention in_proj_weight / in_proj_bias",
    "value": "the v block of a packed attention in_proj_weight / in_proj_bias",
    "forget_bias": "the forget-gate block of an LSTM's bias_ih_l* (bias_hh_l* keeps the bias rule)",
    "residual": "weight of a layer inside a residual branch, other than the branch's last layer",
    "residual_last": "weight of the last layer of a residual branch",
    "scalar": "a single-element parameter outside torch.nn layers (e.g. SkipInit / ReZero alpha)",
    "activation": "parameter of an activation (PReLU slope)",
    "other": "any other parameter of a custom module (layout unknown; initlab.register_layout declares it)",
}

# roles that need the model's data flow (torch.fx trace or a recorded forward pass)
GRAPH_ROLES = frozenset({"output", "output_bias", "input", "residual", "residual_last"})

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
)

MODULE_FAMILIES: dict[str, tuple[type[nn.Module], ...]] = {
    "Linear": (nn.Linear,),
    "Bilinear": (nn.Bilinear,),
    "Conv": _CONV,
    "ConvTranspose": _CONV_T,
    "Embedding": (nn.Embedding, nn.EmbeddingBag),
    "Norm": _NORMS,
    "MultiheadAttention": (nn.MultiheadAttention,),
    "RNN": (nn.RNN,),
    "LSTM": (nn.LSTM,),
    "GRU": (nn.GRU,),
    "Recurrent": (nn.RNNBase,),
}

_GATES = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n"), "RNN_TANH": ("h",), "RNN_RELU": ("h",)}


def module_family_types(name: str) -> tuple[type[nn.Module], ...] | None:
    """The module types a rule key like ``Linear`` or ``Conv2d`` names, or None if unknown."""
    if name in MODULE_FAMILIES:
        return MODULE_FAMILIES[name]
    candidate = getattr(nn, name, None)
    if isinstance(candidate, type) and issubclass(candidate, nn.Module):
        return (candidate,)
    return None


def is_weight_layer(module: nn.Module) -> bool:
    """Linear, Bilinear, ConvNd, ConvTransposeNd or a registered layer: the layers whose gain an activation sets.

    A registered layer is one whose ``weight`` has a weight layout in
    :mod:`initlab.plan.layouts` (e.g. Hugging Face ``Conv1D``).
    """
    return isinstance(module, nn.Linear | nn.Bilinear | nn.modules.conv._ConvNd) or layouts.is_registered_layer(module)


@dataclass(frozen=True)
class Block:
    """A slice ``[start, stop)`` of a target along dim 0 with its own roles and fans."""

    index: int
    start: int
    stop: int
    shape: tuple[int, ...]
    layout: LayoutLike
    groups: int
    roles: frozenset[str]
    label: str = ""


@dataclass
class Target:
    """One parameter of the model, as a plan sees it."""

    name: str
    tensor: torch.Tensor
    module: nn.Module
    module_name: str
    local_name: str
    roles: frozenset[str]
    blocks: list[Block]
    aliases: tuple[str, ...] = ()
    parametrized: tuple[str, ...] = ()  # names of the parametrization originals
    ancestors: tuple[nn.Module, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    def with_roles(self, added: set[str]) -> None:
        """Add graph-derived roles to the target and all its blocks."""
        self.roles = self.roles | added
        self.blocks = [
            Block(b.index, b.start, b.stop, b.shape, b.layout, b.groups, b.roles | added, b.label)
            for b in self.blocks
        ]


def _whole(shape: tuple[int, ...], layout: LayoutLike, roles: set[str], groups: int = 1) -> list[Block]:
    return [Block(0, 0, shape[0] if shape else 1, shape, layout, groups, frozenset(roles))]


def _split(
    shape: tuple[int, ...], count: int, layouts: list[LayoutLike], roles: list[set[str]], labels: list[str]
) -> list[Block]:
    size = shape[0] // count
    return [
        Block(i, i * size, (i + 1) * size, (size, *shape[1:]), layouts[i], 1, frozenset(roles[i]), labels[i])
        for i in range(count)
    ]


def _vector_layout(shape: tuple[int, ...]) -> LayoutLike:
    if len(shape) <= 1:
        return "vector"
    n = math.prod(shape)
    return Fans(n, n, 1)


def _weight_layout(module: nn.Module) -> tuple[LayoutLike, int]:
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return "conv_transpose", module.groups
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv", module.groups
    return "linear", 1


def _bilinear_fans(weight_shape: tuple[int, ...]) -> Fans:
    out_features, in1, in2 = weight_shape
    return Fans(in1 * in2, out_features, 1)


def _layer_blocks(module: nn.Module, local: str, shape: tuple[int, ...]) -> tuple[set[str], list[Block]]:
    """Roles and blocks of a parameter owned by a Linear / Bilinear / Conv module."""
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Bilinear):
        weight_fans = _bilinear_fans(tuple(module.weight.shape))
        if local == "weight":
            return {"weight"}, _whole(shape, weight_fans, {"weight"})
        return {"bias"}, _whole(shape, weight_fans, {"bias"})
    layout, groups = _weight_layout(module)
    if local == "weight":
        return {"weight"}, _whole(shape, layout, {"weight"}, groups)
    if local == "bias" and isinstance(weight, torch.Tensor) and weight.dim() >= 2:
        weight_fans = fans(tuple(weight.shape), layout, groups)
        return {"bias"}, _whole(shape, weight_fans, {"bias"})
    return {"other"}, _whole(shape, _vector_layout(shape), {"other"})


def _attention_blocks(module: nn.MultiheadAttention, local: str, shape: tuple[int, ...]) -> tuple[set[str], list[Block]]:
    embed = module.embed_dim
    qkv = ["query", "key", "value"]
    if local == "in_proj_weight":
        roles = [{"weight", role} for role in qkv]
        return {"weight"}, _split(shape, 3, ["linear"] * 3, roles, ["q", "k", "v"])
    if local == "in_proj_bias":
        in_dims = [embed, module.kdim, module.vdim]
        layouts: list[LayoutLike] = [Fans(d, embed, 1) for d in in_dims]
        roles = [{"bias", role} for role in qkv]
        return {"bias"}, _split(shape, 3, layouts, roles, ["q", "k", "v"])
    if local in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        role = qkv[("q_proj_weight", "k_proj_weight", "v_proj_weight").index(local)]
        return {"weight", role}, _whole(shape, "linear", {"weight", role})
    if local in ("bias_k", "bias_v"):
        return {"bias"}, _whole(shape, Fans(embed, embed, 1), {"bias"})
    return {"other"}, _whole(shape, _vector_layout(shape), {"other"})


def _recurrent_blocks(module: nn.RNNBase, local: str, shape: tuple[int, ...]) -> tuple[set[str], list[Block]]:
    gates = _GATES.get(module.mode, ("h",))
    count = len(gates)
    if local.startswith("weight_hr"):
        return {"weight"}, _whole(shape, "linear", {"weight"})
    if local.startswith("weight_ih") or local.startswith("weight_hh"):
        role = "weight" if local.startswith("weight_ih") else "recurrent"
        return {role}, _split(shape, count, ["linear"] * count, [{role} for _ in gates], list(gates))
    if local.startswith("bias_ih") or local.startswith("bias_hh"):
        weight = getattr(module, local.replace("bias", "weight", 1), None)
        in_dim = int(weight.shape[1]) if isinstance(weight, torch.Tensor) else module.hidden_size
        layouts: list[LayoutLike] = [Fans(in_dim, module.hidden_size, 1)] * count
        roles = [{"bias"} for _ in gates]
        if module.mode == "LSTM" and local.startswith("bias_ih"):
            roles[1] = {"bias", "forget_bias"}
        return {"bias"}, _split(shape, count, layouts, roles, list(gates))
    return {"other"}, _whole(shape, _vector_layout(shape), {"other"})


def _groups(module: nn.Module, layout: str) -> int:
    return int(getattr(module, "groups", 1) or 1) if layout in ("conv", "conv_transpose") else 1


def _registered_blocks(module: nn.Module, local: str, shape: tuple[int, ...]) -> tuple[set[str], list[Block]] | None:
    """Roles and blocks from :mod:`initlab.plan.layouts`; a registered layer's bias takes its weight's fans."""
    entry = layouts.registered_layout(module, local)
    if entry is not None:
        return set(entry.roles), _whole(shape, entry.layout, set(entry.roles), _groups(module, entry.layout))
    weight = getattr(module, "weight", None)
    weight_entry = layouts.registered_layout(module, "weight")
    if local != "bias" or not isinstance(weight, torch.Tensor) or weight_entry is None:
        return None
    if weight_entry.layout not in layouts.WEIGHT_LAYOUTS:
        return None
    try:
        weight_fans = fans(tuple(weight.shape), weight_entry.layout, _groups(module, weight_entry.layout))
    except ValueError:
        return None
    return {"bias"}, _whole(shape, weight_fans, {"bias"})


def describe_parameter(module: nn.Module, local: str, tensor: torch.Tensor) -> tuple[set[str], list[Block]]:
    """Roles and blocks of ``module.<local>`` (``tensor`` is its current value)."""
    shape = tuple(int(d) for d in tensor.shape)
    registered = _registered_blocks(module, local, shape)
    if registered is not None:
        return registered
    if isinstance(module, nn.Linear | nn.Bilinear | nn.modules.conv._ConvNd):
        return _layer_blocks(module, local, shape)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag) and local == "weight":
        return {"embedding", "input"}, _whole(shape, "embedding", {"embedding", "input"})
    if isinstance(module, _NORMS):
        role = "norm_scale" if local == "weight" else "norm_shift" if local == "bias" else "other"
        return {role}, _whole(shape, _vector_layout(shape), {role})
    if isinstance(module, nn.MultiheadAttention):
        return _attention_blocks(module, local, shape)
    if isinstance(module, nn.RNNBase):
        return _recurrent_blocks(module, local, shape)
    if isinstance(module, nn.PReLU):
        return {"activation"}, _whole(shape, _vector_layout(shape), {"activation"})
    norm_role = layouts.normalising_role(module, local)
    if norm_role is not None:
        return {norm_role}, _whole(shape, "vector", {norm_role})
    if tensor.numel() == 1:
        return {"scalar"}, _whole(shape, _vector_layout(shape), {"scalar"})
    if tensor.dim() == 1 and "bias" in local:
        return {"bias"}, _whole(shape, "vector", {"bias"})
    return {"other"}, _whole(shape, _vector_layout(shape) if tensor.dim() <= 1 else "linear", {"other"})


def _parametrized_tensors(module: nn.Module) -> Iterator[tuple[str, list[tuple[str, nn.Parameter]]]]:
    if not parametrize.is_parametrized(module):
        return
    parametrizations: Any = module.parametrizations
    for tensor_name, plist in parametrizations.items():
        originals = [(name, p) for name, p in plist.named_parameters(recurse=False)]
        yield tensor_name, originals


def _check_old_style(module: nn.Module, module_name: str) -> None:
    for hook in module._forward_pre_hooks.values():
        kind = type(hook).__name__
        if kind in ("WeightNorm", "SpectralNorm"):
            which = "weight_norm" if kind == "WeightNorm" else "spectral_norm"
            raise ValueError(
                f"module {module_name or '<root>'!r} uses the hook-based torch.nn.utils.{which}; "
                f"init_model handles the parametrization form torch.nn.utils.parametrizations.{which} "
                "(re-create the module with it, or remove the hook before init)"
            )


def collect_targets(model: nn.Module) -> list[Target]:
    """Every parameter of ``model`` once, in registration order, with roles, layout and blocks."""
    targets: list[Target] = []
    by_id: dict[int, Target] = {}
    ancestors_of: dict[str, tuple[nn.Module, ...]] = {"": ()}
    for module_name, module in model.named_modules(remove_duplicate=False):
        parent = module_name.rsplit(".", 1)[0] if "." in module_name else ""
        chain = (*ancestors_of.get(parent, ()), module) if module_name else (module,)
        ancestors_of[module_name] = chain
        if isinstance(module, parametrize.ParametrizationList):
            continue
        _check_old_style(module, module_name)
        prefix = f"{module_name}." if module_name else ""
        for tensor_name, originals in _parametrized_tensors(module):
            first = originals[0][1]
            original_names = tuple(f"{prefix}parametrizations.{tensor_name}.{n}" for n, _ in originals)
            if id(first) in by_id:
                by_id[id(first)].aliases += (f"{prefix}{tensor_name}",)
                continue
            with torch.no_grad():
                shape_source = getattr(module, tensor_name)  # the effective tensor (meta stays meta)
            roles, blocks = describe_parameter(module, tensor_name, shape_source)
            target = Target(
                name=f"{prefix}{tensor_name}",
                tensor=shape_source,
                module=module,
                module_name=module_name,
                local_name=tensor_name,
                roles=frozenset(roles),
                blocks=blocks,
                parametrized=original_names,
                ancestors=chain,
            )
            for _, p in originals:
                by_id[id(p)] = target
            targets.append(target)
        for local, param in module._parameters.items():
            if param is None:
                continue
            qualified = f"{prefix}{local}"
            if id(param) in by_id:
                by_id[id(param)].aliases += (qualified,)
                continue
            roles, blocks = describe_parameter(module, local, param)
            target = Target(
                name=qualified,
                tensor=param,
                module=module,
                module_name=module_name,
                local_name=local,
                roles=frozenset(roles),
                blocks=blocks,
                ancestors=chain,
            )
            by_id[id(param)] = target
            targets.append(target)
    return targets

