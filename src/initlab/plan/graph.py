"""The data flow of a model: which activation follows each layer, the output and input layers, residual branches.

The flow is read, in order of preference, from

1. a ``torch.fx`` symbolic trace (torch.nn modules stay leaves, user code is
   traced through);
2. a recorded forward pass on an example input (a tensor, a tuple of
   positional arguments or a dict of keyword arguments; without one, the
   ``dummy_inputs`` Hugging Face models carry): forward hooks on the leaf
   modules plus a ``TorchFunctionMode`` that sees every tensor function called
   in user code, linked by tensor identity;
3. registration order (no data flow): the activation module that follows a
   layer among its siblings, the last layer as output, the first as input.

Layers inside a torch.nn container that fx keeps as one leaf
(``nn.TransformerEncoder``, ``nn.MultiheadAttention``) are resolved by
registration order within that container.

From the flow:

* the activation of a layer is the first activation reached from its output
  through shape-only and normalising operations (dropout, norms, pooling,
  reshapes, residual additions, scaling by a constant); reaching another
  layer, an unknown operation or the output means "no activation" (gain 1).
  ``x * sigmoid(x)`` is recognised as SiLU.
* the output layers are the layers reached walking back from the model's
  output without crossing another layer; the output layer is the last of them
  to run.
* a residual branch is the operand of an addition whose layers are not
  ancestors of the other operand (the skip path); the operand with more such
  layers is the branch, ties are not treated as residual.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from initlab.plan.layouts import normalising_role
from initlab.plan.targets import is_weight_layer
from initlab.schemes.gains import resolve_activation

__all__ = ["DataFlow", "analyze", "find_activations", "output_layer"]

ActivationFound = str | nn.Module | None

_ACTIVATION_FUNCTIONS = {
    "relu", "tanh", "sigmoid", "gelu", "silu", "elu", "selu", "celu", "leaky_relu", "softplus", "mish",
    "hardtanh", "relu6", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "logsigmoid", "sin", "erf",
}
_TRANSPARENT_FUNCTIONS = {
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm",
    "view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "contiguous", "squeeze",
    "unsqueeze", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "getitem", "__getitem__", "to", "float", "double", "half", "bfloat16", "type_as", "clone", "pad",
    "mean", "cat", "concat", "concatenate", "stack", "chunk", "split", "narrow", "expand", "expand_as",
    "repeat", "interpolate", "pixel_shuffle", "pixel_unshuffle", "neg", "__neg__", "movedim",
}
_ADD_FUNCTIONS = {"add", "add_", "iadd", "__add__", "__radd__", "__iadd__", "sub", "sub_", "isub", "__sub__", "__rsub__", "__isub__"}
_MUL_FUNCTIONS = {"mul", "mul_", "imul", "__mul__", "__rmul__", "__imul__", "truediv", "div", "div_", "__truediv__", "__itruediv__"}
_LAYER_FUNCTIONS = {
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "bilinear", "matmul", "mm", "bmm", "einsum", "__matmul__", "__rmatmul__", "addmm", "baddbmm",
    "embedding", "scaled_dot_product_attention",
}
_PASS_TO_OUTPUT = {"softmax", "log_softmax", "sigmoid", "tanh", "squeeze", "logsigmoid"}

_TRANSPARENT_MODULES: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd, nn.Upsample,
    nn.PixelShuffle, nn.PixelUnshuffle, nn.RMSNorm,
)
_OUTPUT_MODULES: tuple[type[nn.Module], ...] = (nn.Softmax, nn.LogSoftmax, nn.Sigmoid, nn.Tanh)
_TRANSFORMER_LAYERS: tuple[type[nn.Module], ...] = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def is_activation_module(module: nn.Module) -> bool:
    """A module whose gain initlab knows (ReLU, Tanh, GELU, LeakyReLU, single-slope PReLU, ...); not Identity."""
    if isinstance(module, nn.Identity):
        return False
    try:
        name = resolve_activation(module)[0]
    except ValueError:  # e.g. a PReLU with one slope per channel
        return False
    return name is not None


def _function_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return str(getattr(target, "__name__", target))


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, key: str, default: Any) -> Any:
    if key in kwargs:
        return kwargs[key]
    return args[index] if len(args) > index else default


def functional_activation(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationFound:
    """The activation a functional call stands for, as a name or an equivalent module (None if none).

    ``args`` are the call's positional arguments including the input tensor.
    """
    base = name.rstrip("_")
    if base not in _ACTIVATION_FUNCTIONS:
        return None
    if base == "leaky_relu":
        slope = _arg(args, kwargs, 1, "negative_slope", 0.01)
        return nn.LeakyReLU(float(slope)) if isinstance(slope, int | float) else "leaky_relu"
    if base in ("elu", "celu"):
        alpha = _arg(args, kwargs, 1, "alpha", 1.0)
        if isinstance(alpha, int | float):
            return nn.ELU(float(alpha)) if base == "elu" else nn.CELU(float(alpha))
        return base
    if base == "gelu":
        approximate = _arg(args, kwargs, 1, "approximate", "none")
        return nn.GELU(approximate="tanh") if approximate == "tanh" else "gelu"
    if base == "hardtanh":
        low, high = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
        if isinstance(low, int | float) and isinstance(high, int | float) and (low, high) != (-1.0, 1.0):
            return nn.Hardtanh(float(low), float(high))
        return "hardtanh"
    return base


@dataclass
class Op:
    """One operation of the flow: what it is, and which operations feed it."""

    kind: str  # input, output, layer, container, embedding, activation, transparent, add, mul, param, layer_fn, other
    name: str
    inputs: list[int]
    activation: ActivationFound = None
    modules: tuple[str, ...] = ()  # weight-bearing modules a layer / container op stands for


@dataclass
class DataFlow:
    """What :func:`analyze` found about a model."""

    method: str  # fx | recorded | static
    activations: dict[str, ActivationFound]
    output_layers: list[str]
    input_layers: list[str]
    residual_branches: list[list[str]] | None
    reason: str = ""
    execution_order: list[str] = field(default_factory=list)

    @property
    def output_layer(self) -> str | None:
        return self.output_layers[-1] if self.output_layers else None


# -- classification -----------------------------------------------------------------------
def _weight_modules(module: nn.Module, name: str) -> tuple[str, ...]:
    """The modules with layer weights inside ``module`` (itself included), in registration order."""
    found = []
    for sub_name, sub in module.named_modules(prefix=name):
        if is_weight_layer(sub) or isinstance(sub, nn.MultiheadAttention | nn.RNNBase):
            found.append(sub_name)
    return tuple(found)


def _classify_module(module: nn.Module, name: str) -> Op:
    if is_weight_layer(module):
        return Op("layer", name, [], modules=(name,))
    if isinstance(module, _TRANSPARENT_MODULES) or normalising_role(module, "weight") is not None:
        return Op("transparent", name, [])
    if is_activation_module(module):
        return Op("activation", name, [], activation=module)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return Op("embedding", name, [], modules=(name,))
    if isinstance(module, _OUTPUT_MODULES):
        return Op("output_fn", name, [])
    inner = _weight_modules(module, name)
    if inner:
        return Op("container", name, [], modules=inner)
    return Op("other", name, [])


def _classify_function(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], data_inputs: int) -> Op:
    activation = functional_activation(name, args, kwargs)
    if activation is not None:
        return Op("activation", name, [], activation=activation)
    base = name if name.startswith("__") else name.rstrip("_")
    if name in _ADD_FUNCTIONS:
        return Op("add" if data_inputs >= 2 else "transparent", name, [])
    if name in _MUL_FUNCTIONS:
        return Op("mul" if data_inputs >= 2 else "transparent", name, [])
    if name in _TRANSPARENT_FUNCTIONS or base in _TRANSPARENT_FUNCTIONS:
        return Op("transparent", name, [])
    if name in _LAYER_FUNCTIONS:
        return Op("layer_fn", name, [])
    if base in _PASS_TO_OUTPUT:
        return Op("output_fn", name, [])
    return Op("other", name, [])


# -- builders -------------------------------------------------------------------------------
class _LeafTracer(torch.fx.Tracer):
    """torch.fx's default leaves (torch.nn modules), plus any module without children."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return super().is_leaf_module(m, module_qualified_name) or not any(True for _ in m.children())


def _ops_from_fx(model: nn.Module) -> list[Op]:
    graph = _LeafTracer().trace(model)
    modules = dict(model.named_modules())
    index: dict[torch.fx.Node, int] = {}
    ops: list[Op] = []
    for node in graph.nodes:
        inputs = [index[n] for n in node.all_input_nodes if n in index]
        if node.op == "placeholder":
            op = Op("input", str(node.target), [])
        elif node.op == "output":
            op = Op("output", "output", inputs)
        elif node.op == "get_attr":
            op = Op("param", str(node.target), [])
        elif node.op == "call_module":
            op = _classify_module(modules[str(node.target)], str(node.target))
        else:
            name = _function_name(node.target)
            if node.target is operator.getitem:
                name = "getitem"
            data_inputs = sum(1 for i in inputs if ops[i].kind != "param")
            op = _classify_function(name, tuple(node.args), dict(node.kwargs), data_inputs)
        op.inputs = inputs
        index[node] = len(ops)
        ops.append(op)
    return ops


def _leaf_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Outermost modules that fx would keep as leaves."""
    tracer = _LeafTracer()
    leaves: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not name:
            continue
        if any(name.startswith(f"{leaf}.") for leaf in leaves):
            continue
        # lists and dicts of modules are never called, so they cannot be leaves (fx counts them as torch.nn ones)
        if not isinstance(module, nn.ModuleList | nn.ModuleDict) and tracer.is_leaf_module(module, name):
            leaves[name] = module
    return leaves


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class _Recorder(TorchFunctionMode):
    """Records the tensor functions called outside leaf modules, and the leaf module calls."""

    def __init__(self, params: dict[int, str]) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.producer: dict[int, int] = {}
        self.keep: list[Any] = []
        self.depth = 0
        self.params = params

    def _inputs(self, values: Any) -> list[int]:
        inputs = []
        for tensor in _tensors(values):
            key = id(tensor)
            if key not in self.producer and key in self.params:
                self.producer[key] = len(self.ops)
                self.ops.append(Op("param", self.params[key], []))
            if key in self.producer:
                inputs.append(self.producer[key])
        return inputs

    def add(self, op: Op, inputs: Any, outputs: Any) -> None:
        op.inputs = self._inputs(inputs)
        position = len(self.ops)
        self.ops.append(op)
        for tensor in _tensors(outputs):
            self.producer[id(tensor)] = position
            self.keep.append(tensor)

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.depth == 0 and any(True for _ in _tensors(result)):
            name = _function_name(func)
            inputs = self._inputs((args, kwargs))
            data_inputs = sum(1 for i in inputs if self.ops[i].kind != "param")
            op = _classify_function(name, args, kwargs, data_inputs)
            self.add(op, (args, kwargs), result)
        return result


def _call_arguments(example_input: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of the forward call: a tuple is the positional arguments, a dict the keyword ones."""
    if isinstance(example_input, dict):
        return (), dict(example_input)
    return (example_input if isinstance(example_input, tuple) else (example_input,)), {}


def conventional_example(model: nn.Module) -> Any:
    """The example input a model carries by convention: Hugging Face's ``dummy_inputs`` (a dict); else None."""
    if not isinstance(getattr(type(model), "dummy_inputs", None), property):
        return None
    try:
        example = model.dummy_inputs
    except Exception:  # a property of third-party code may fail in any way; then there is no example
        return None
    return example if isinstance(example, dict) and example else None


def _ops_from_recording(model: nn.Module, example_input: Any) -> list[Op]:
    params = {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}
    recorder = _Recorder(params)
    handles = []
    leaves = _leaf_modules(model)
    # classified before the hooks go on: a module with hooks is never probed as a norm (initlab.plan.layouts)
    classified = {name: _classify_module(module, name) for name, module in leaves.items()}
    for name, module in leaves.items():
        def pre_hook(module: nn.Module, args: Any) -> None:
            recorder.depth += 1

        def post_hook(module: nn.Module, args: Any, output: Any, name: str = name) -> None:
            recorder.depth -= 1
            if recorder.depth == 0:
                recorder.add(replace(classified[name], inputs=[]), args, output)

        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook))
    args, kwargs = _call_arguments(example_input)
    for tensor in _tensors((args, kwargs)):
        recorder.add(Op("input", "input", []), (), tensor)
    training = {name: m.training for name, m in model.named_modules()}
    try:
        model.eval()
        with torch.no_grad(), recorder:
            result = model(*args, **kwargs)
        recorder.ops.append(Op("output", "output", recorder._inputs(result)))
    finally:
        for handle in handles:
            handle.remove()
        for name, module in model.named_modules():
            module.training = training.get(name, module.training)
    return recorder.ops


# -- analyses on the op list ----------------------------------------------------------------
def _users(ops: list[Op]) -> list[list[int]]:
    users: list[list[int]] = [[] for _ in ops]
    for i, op in enumerate(ops):
        for j in op.inputs:
            users[j].append(i)
    return users


def _activation_after(ops: list[Op], users: list[list[int]], start: int) -> ActivationFound:
    queue = deque(users[start])
    seen = set()
    while queue:
        i = queue.popleft()
        if i in seen:
            continue
        seen.add(i)
        op = ops[i]
        if op.kind == "activation":
            if op.activation == "sigmoid" or isinstance(op.activation, nn.Sigmoid):
                source = op.inputs[0] if op.inputs else None
                for user in users[i]:
                    if ops[user].kind == "mul" and source in ops[user].inputs:
                        return "silu"
            return op.activation
        if op.kind in ("transparent", "add") or (op.kind == "mul" and _scales(ops, op)):
            queue.extend(users[i])
    return None


def _scales(ops: list[Op], op: Op) -> bool:
    """A product where all but one factor are parameters (a learned scale)."""
    return sum(1 for i in op.inputs if ops[i].kind != "param") <= 1


def _output_layers(ops: list[Op]) -> list[str]:
    outputs = [i for i, op in enumerate(ops) if op.kind == "output"]
    found: dict[int, tuple[str, ...]] = {}
    stack = [j for i in outputs for j in ops[i].inputs]
    seen = set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        op = ops[i]
        if op.kind in ("layer", "container"):
            found[i] = op.modules
        elif op.kind in ("transparent", "add", "mul", "activation", "output_fn", "other"):
            stack.extend(op.inputs)
    names: list[str] = []
    for i in sorted(found):
        last = found[i][-1] if found[i] else None
        if last is not None and last not in names:
            names.append(last)
    return names


def _input_layers(ops: list[Op], users: list[list[int]]) -> list[str]:
    queue = deque(j for i, op in enumerate(ops) if op.kind == "input" for j in users[i])
    seen = set()
    found: list[str] = []
    while queue:
        i = queue.popleft()
        if i in seen:
            continue
        seen.add(i)
        op = ops[i]
        if op.kind in ("layer", "embedding"):
            found.extend(m for m in op.modules if m not in found)
        elif op.kind == "container":
            if op.modules and op.modules[0] not in found:
                found.append(op.modules[0])
        elif op.kind in ("transparent", "add", "mul", "activation", "output_fn", "other"):
            queue.extend(users[i])
    return found


def _residual_branches(ops: list[Op]) -> list[list[str]]:
    ancestors: list[frozenset[int]] = []
    for i, op in enumerate(ops):
        acc: set[int] = set()
        for j in op.inputs:
            acc |= ancestors[j]
        if op.kind in ("layer", "container"):
            acc.add(i)
        ancestors.append(frozenset(acc))
    branches: list[list[str]] = []
    for op in ops:
        if op.kind != "add":
            continue
        data = [j for j in op.inputs if ops[j].kind != "param"]
        if len(data) != 2:
            continue
        first = ancestors[data[0]] - ancestors[data[1]]
        second = ancestors[data[1]] - ancestors[data[0]]
        if len(first) == len(second):
            continue
        branch = first if len(first) > len(second) else second
        modules: list[str] = []
        for k in sorted(branch):
            modules.extend(m for m in ops[k].modules if m not in modules)
        branches.append(modules)
    return branches


def _flow_from_ops(model: nn.Module, ops: list[Op], method: str, need_residual: bool) -> DataFlow:
    users = _users(ops)
    activations: dict[str, ActivationFound] = {}
    order: list[str] = []
    for i, op in enumerate(ops):
        if op.kind == "layer":
            name = op.modules[0]
            if name not in order:
                order.append(name)
            if activations.get(name) is None:
                activations[name] = _activation_after(ops, users, i)
        elif op.kind == "container":
            order.extend(m for m in op.modules if m not in order)
    static = _static_activations(model)
    for name, found in static.items():
        activations.setdefault(name, found)
    layers = [name for name, m in model.named_modules() if is_weight_layer(m)]
    embeddings = [name for name, m in model.named_modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
    return DataFlow(
        method=method,
        activations=activations,
        output_layers=_output_layers(ops) or layers[-1:],
        input_layers=_input_layers(ops, users) or embeddings + layers[:1],
        residual_branches=_residual_branches(ops) if need_residual else None,
        execution_order=order,
    )


# -- registration order -----------------------------------------------------------------------
def _transformer_activation(parent: nn.Module, local: str) -> tuple[bool, ActivationFound]:
    if local == "linear2":
        return True, None
    if local != "linear1":
        return False, None
    activation = getattr(parent, "activation", None)
    if isinstance(activation, nn.Module):
        return True, activation if is_activation_module(activation) else None
    if callable(activation):
        name = _function_name(activation)
        return True, functional_activation(name, (None,), {})
    return True, None


def _static_activations(model: nn.Module) -> dict[str, ActivationFound]:
    modules = dict(model.named_modules())
    found: dict[str, ActivationFound] = {}
    for name, module in modules.items():
        if not is_weight_layer(module):
            continue
        parent_name, _, local = name.rpartition(".")
        parent = modules.get(parent_name)
        if parent is None:
            found[name] = None
            continue
        if isinstance(parent, _TRANSFORMER_LAYERS):
            handled, activation = _transformer_activation(parent, local)
            if handled:
                found[name] = activation
                continue
        siblings = list(parent.named_children())
        position = [key for key, _ in siblings].index(local)
        activation = None
        for _, sibling in siblings[position + 1:]:
            if is_activation_module(sibling):
                activation = sibling
                break
            if not isinstance(sibling, _TRANSPARENT_MODULES):
                break
        found[name] = activation
    return found


def _static_flow(model: nn.Module, reason: str) -> DataFlow:
    layers = [name for name, m in model.named_modules() if is_weight_layer(m)]
    embeddings = [name for name, m in model.named_modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
    return DataFlow(
        method="static",
        activations=_static_activations(model),
        output_layers=layers[-1:],
        input_layers=embeddings + layers[:1],
        residual_branches=None,
        reason=reason,
        execution_order=layers,
    )


def analyze(model: nn.Module, example_input: Any = None, *, need_residual: bool = False) -> DataFlow:
    """The model's data flow: by torch.fx, else by a recorded forward pass, else by registration order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    reasons = []
    try:
        ops = _ops_from_fx(model)
        return _flow_from_ops(model, ops, "fx", need_residual)
    except Exception as error:  # fx raises many kinds of errors on untraceable code
        reasons.append(f"torch.fx could not trace the model ({type(error).__name__}: {_first_line(error)})")
    if example_input is None:
        example_input = conventional_example(model)
    if example_input is not None:
        try:
            ops = _ops_from_recording(model, example_input)
            return _flow_from_ops(model, ops, "recorded", need_residual)
        except Exception as error:  # a model may fail on the example input in any way
            reasons.append(f"the forward pass on example_input failed ({type(error).__name__}: {_first_line(error)})")
    else:
        reasons.append("no example_input to record a forward pass")
    return _static_flow(model, "; ".join(reasons))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


def find_activations(model: nn.Module, example_input: Any = None) -> dict[str, ActivationFound]:
    """{qualified name of each Linear/Bilinear/Conv/ConvTranspose: the activation that follows it}.

    The activation is a name (``"relu"``), an ``nn.Module`` (``nn.LeakyReLU(0.2)``,
    also built for functional calls with parameters) or None when no
    activation follows (gain 1). See the module docstring for how the flow is
    read.
    """
    flow = analyze(model, example_input)
    return {name: flow.activations.get(name) for name, m in model.named_modules() if is_weight_layer(m)}


def output_layer(model: nn.Module, example_input: Any = None) -> str | None:
    """Qualified name of the model's output layer (None for a model without Linear/Conv layers)."""
    return analyze(model, example_input).output_layer
