"""Models of the lab, built from short spec strings.

Grammar
-------
::

    spec      := mlp | cnn | cnn1d | FACTORY
    mlp       := "mlp:"   IN "-" WIDTHS "-" OUT [":" ACT] OPTIONS
    cnn       := "cnn:"   IN "-" LAYERS "-" OUT [":" ACT] OPTIONS
    cnn1d     := "cnn1d:" IN "-" LAYERS "-" OUT [":" ACT] OPTIONS
    WIDTHS    := WIDTH ("-" WIDTH)*        WIDTH := N | N "x" COUNT     (COUNT layers of N)
    LAYERS    := LAYER ("-" LAYER)*        LAYER := WIDTH (channels of a conv) | "p" (2x max-pool)
    IN        := N | C "x" H "x" W (cnn) | C "x" L (cnn1d) | "*" (taken from the data set)
    OUT       := N | "*" (the data set's number of classes)
    ACT       := relu | tanh | sigmoid | linear | gelu | selu | elu | silu | softplus
                 | leaky_relu | hardtanh      (default relu; "leaky_relu=0.2" sets the slope)
    OPTIONS   := ("+bn" | "+ln" | "+dropout=P" | "+residual" | "+nobias" | "+k=K")*
    FACTORY   := "package.module:callable"   (called with input_shape= and num_classes=
                                              where its signature takes them)

Examples: ``mlp:64-128x5-10:tanh``, ``mlp:*-256-256-*:relu+bn+dropout=0.1``,
``cnn:1x8x8-16-p-32-10:relu+bn``, ``cnn1d:1x40-32x3-10:relu+residual``.

Structure and names (the plan layer relies on them)
---------------------------------------------------
* ``model.hidden[i]`` is a :class:`Block` holding, in call order, ``linear``
  (or ``conv``), then ``norm`` (``+bn``: BatchNorm; ``+ln``: LayerNorm for
  MLPs, GroupNorm(1, C) for convolutions), ``act`` (an ``nn.Module``, so the
  activation following each layer can be found), ``dropout``. ``+residual``
  adds the block's input to its output wherever the widths agree.
* ``model.output`` is the final ``nn.Linear`` that produces the logits; its
  qualified name is :data:`OUTPUT_NAME` (``"output"``) and
  ``model.output_name`` says the same. Convolutional models average-pool
  globally before ``output``.
* Every model takes flat rows ``(n, prod(input_shape))`` or ``(n, *shape)``.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.lab.factory import load_factory
from initlab.rng.checks import check_int

__all__ = [
    "OUTPUT_NAME",
    "ModelSpec",
    "Block",
    "MLP",
    "ConvNet",
    "parse_spec",
    "build_model",
    "list_activations",
    "list_model_kinds",
]

OUTPUT_NAME = "output"

_ACTIVATIONS: dict[str, Callable[[float | None], nn.Module]] = {
    "relu": lambda p: nn.ReLU(),
    "tanh": lambda p: nn.Tanh(),
    "sigmoid": lambda p: nn.Sigmoid(),
    "linear": lambda p: nn.Identity(),
    "gelu": lambda p: nn.GELU(),
    "selu": lambda p: nn.SELU(),
    "elu": lambda p: nn.ELU(alpha=1.0 if p is None else p),
    "silu": lambda p: nn.SiLU(),
    "softplus": lambda p: nn.Softplus(),
    "leaky_relu": lambda p: nn.LeakyReLU(0.01 if p is None else p),
    "hardtanh": lambda p: nn.Hardtanh(),
}
_ACTIVATION_ALIASES = {"identity": "linear", "none": "linear", "swish": "silu", "leakyrelu": "leaky_relu",
                       "lrelu": "leaky_relu"}
_KINDS = ("mlp", "cnn", "cnn1d")
_OPTION_HELP = "+bn, +ln, +dropout=P, +residual, +nobias, +k=K"


def list_activations() -> list[str]:
    """Activation names accepted in a model spec."""
    return list(_ACTIVATIONS)


def list_model_kinds() -> list[str]:
    """Built-in spec kinds (anything else of the form ``package.module:factory`` is a factory)."""
    return [*_KINDS, "package.module:factory"]


@dataclass(frozen=True)
class ModelSpec:
    """A parsed built-in spec. ``input_shape``/``num_classes`` are None where the spec says ``*``."""

    kind: str
    input_shape: tuple[int, ...] | None
    layers: tuple[int | str, ...]
    num_classes: int | None
    activation: str
    activation_param: float | None = None
    batch_norm: bool = False
    layer_norm: bool = False
    dropout: float = 0.0
    residual: bool = False
    bias: bool = True
    kernel_size: int = 3
    text: str = field(default="", compare=False)


# ---------------------------------------------------------------- parsing


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(
        f"bad model spec {spec!r}: {why}. Grammar: KIND:IN-WIDTHS-OUT[:ACT][+options] with KIND in "
        f"{', '.join(_KINDS)} (e.g. 'mlp:64-128x5-10:tanh+bn', 'cnn:1x8x8-16-p-32-10:relu'), "
        f"or 'package.module:factory'"
    )


def _positive(spec: str, token: str, what: str) -> int:
    if not token.isdigit() or int(token) < 1:
        raise _bad(spec, f"{what} must be a positive integer, got {token!r}")
    return int(token)


def _input_shape(spec: str, kind: str, token: str) -> tuple[int, ...] | None:
    """N (mlp), CxHxW or N (cnn), CxL or N (cnn1d); ``*`` for the data set's own."""
    if token == "*":
        return None
    shape = tuple(_positive(spec, part, "input size") for part in token.split("x"))
    wanted = {"mlp": None, "cnn": (1, 3), "cnn1d": (1, 2)}[kind]
    if wanted is not None and len(shape) not in wanted:
        raise _bad(spec, f"{kind} input is N or " + ("CxHxW" if kind == "cnn" else "CxL") + f", got {token!r}")
    return shape


def _hidden_layers(spec: str, kind: str, tokens: list[str]) -> tuple[int | str, ...]:
    """Widths (``128x5`` repeats 128 five times) and ``p`` (pooling, convolutional kinds only)."""
    layers: list[int | str] = []
    for token in tokens:
        if token == "p":
            if kind == "mlp":
                raise _bad(spec, "'p' (pooling) is only for cnn and cnn1d")
            layers.append("p")
            continue
        width, times, count = token.partition("x")
        repeat = _positive(spec, count, "repeat count") if times else 1
        layers.extend([_positive(spec, width, "width")] * repeat)
    return tuple(layers)


def _parse_activation(spec: str, text: str) -> tuple[str, float | None]:
    """(activation name, parameter) of ``NAME`` or ``NAME=VALUE``; relu when empty."""
    name, _, param_text = (text.strip().lower() or "relu").partition("=")
    name = _ACTIVATION_ALIASES.get(name, name)
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r} in model spec {spec!r}; valid: {', '.join(list_activations())}"
        )
    if not param_text:
        return name, None
    try:
        return name, float(param_text)
    except ValueError:
        raise _bad(spec, f"activation parameter must be a number, got {param_text!r}") from None


def _options(spec: str, kind: str, options: list[str]) -> dict[str, Any]:
    """The ModelSpec fields set by ``+bn``, ``+ln``, ``+residual``, ``+nobias``, ``+dropout=R``, ``+k=K``."""
    settings: dict[str, Any] = {}
    flags = {"bn": ("batch_norm", True), "ln": ("layer_norm", True), "residual": ("residual", True),
             "nobias": ("bias", False)}
    for option in options:
        key, _, value = option.strip().lower().partition("=")
        if key in flags:
            field_name, setting = flags[key]
            settings[field_name] = setting
        elif key == "dropout":
            try:
                rate = float(value)
            except ValueError:
                raise _bad(spec, f"dropout takes a rate in [0, 1), got {value!r}") from None
            if not 0.0 <= rate < 1.0:
                raise _bad(spec, f"dropout takes a rate in [0, 1), got {value!r}")
            settings["dropout"] = rate
        elif key == "k":
            if kind == "mlp":
                raise _bad(spec, "+k= (kernel size) is only for cnn and cnn1d")
            settings["kernel_size"] = _positive(spec, value, "kernel size")
        else:
            raise _bad(spec, f"unknown option '+{option}'; valid options: {_OPTION_HELP}")
    if settings.get("batch_norm") and settings.get("layer_norm"):
        raise _bad(spec, "choose one of +bn and +ln")
    return settings


def parse_spec(spec: str) -> ModelSpec:
    """Parse a built-in spec (``mlp:``, ``cnn:``, ``cnn1d:``) into a :class:`ModelSpec`."""
    if not isinstance(spec, str):
        raise TypeError(f"model spec must be a str, got {type(spec).__name__}")
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind not in _KINDS:
        raise ValueError(
            f"unknown model kind {kind!r} in spec {spec!r}; valid kinds: {', '.join(list_model_kinds())}"
        )
    head, *options = rest.split("+")
    layers_text, _, activation_text = head.partition(":")
    tokens = [t.strip().lower() for t in layers_text.split("-")]
    if len(tokens) < 2 or any(not t for t in tokens):
        raise _bad(spec, "need at least an input size and an output size separated by '-'")
    # checked in the order they are written, so the first mistake is the one reported
    input_shape = _input_shape(spec, kind, tokens[0])
    num_classes = None if tokens[-1] == "*" else _positive(spec, tokens[-1], "output size")
    layers = _hidden_layers(spec, kind, tokens[1:-1])
    activation, activation_param = _parse_activation(spec, activation_text)
    return ModelSpec(
        kind=kind,
        input_shape=input_shape,
        layers=layers,
        num_classes=num_classes,
        activation=activation,
        activation_param=activation_param,
        text=text,
        **_options(spec, kind, options),
    )


# ---------------------------------------------------------------- modules


class Block(nn.Module):
    """One hidden layer: linear/conv -> norm -> activation -> dropout, optionally residual."""

    def __init__(self, layer: nn.Module, norm: nn.Module | None, act: nn.Module, dropout: float,
                 residual: bool) -> None:
        super().__init__()
        # registration order is call order, which is how plans find the activation after a layer
        if isinstance(layer, nn.Linear):
            self.linear = layer
        else:
            self.conv = layer
        if norm is not None:
            self.norm = norm
        self.act = act
        if dropout > 0:
            self.dropout = nn.Dropout(dropout)
        self.residual = residual

    @property
    def layer(self) -> nn.Module:
        """The weight layer of the block (``linear`` or ``conv``)."""
        return self.linear if hasattr(self, "linear") else self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        if hasattr(self, "norm"):
            out = self.norm(out)
        out = self.act(out)
        if hasattr(self, "dropout"):
            out = self.dropout(out)
        return x + out if self.residual else out

    def extra_repr(self) -> str:
        return "residual=True" if self.residual else ""


def _activation(spec: ModelSpec) -> nn.Module:
    return _ACTIVATIONS[spec.activation](spec.activation_param)


class MLP(nn.Module):
    """Fully connected classifier: flatten -> hidden blocks -> ``output`` (logits)."""

    output_name = OUTPUT_NAME

    def __init__(self, spec: ModelSpec, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.spec = spec.text
        self.activation = spec.activation
        self.input_shape = (in_features,)
        blocks = []
        width = in_features
        for hidden in spec.layers:
            assert isinstance(hidden, int)
            norm: nn.Module | None = None
            if spec.batch_norm:
                norm = nn.BatchNorm1d(hidden)
            elif spec.layer_norm:
                norm = nn.LayerNorm(hidden)
            residual = spec.residual and hidden == width
            blocks.append(Block(nn.Linear(width, hidden, bias=spec.bias), norm, _activation(spec),
                                spec.dropout, residual))
            width = hidden
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Linear(width, num_classes, bias=spec.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        for block in self.hidden:
            x = block(x)
        return self.output(x)


class ConvNet(nn.Module):
    """Convolutional classifier (2-d or 1-d): conv blocks and pools -> global mean -> ``output``."""

    output_name = OUTPUT_NAME

    def __init__(self, spec: ModelSpec, image_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.spec = spec.text
        self.activation = spec.activation
        self.image_shape = tuple(image_shape)
        self.input_shape = (math.prod(image_shape),)
        two_d = spec.kind == "cnn"
        conv_type = nn.Conv2d if two_d else nn.Conv1d
        pool_type = nn.MaxPool2d if two_d else nn.MaxPool1d
        channels = image_shape[0]
        spatial = list(image_shape[1:])
        layers: list[nn.Module] = []
        for item in spec.layers:
            if item == "p":
                if min(spatial) < 2:
                    raise ValueError(
                        f"model spec {spec.text!r}: pooling below size 1 (input {tuple(image_shape)})"
                    )
                spatial = [s // 2 for s in spatial]
                layers.append(pool_type(2))
                continue
            assert isinstance(item, int)
            norm: nn.Module | None = None
            if spec.batch_norm:
                norm = nn.BatchNorm2d(item) if two_d else nn.BatchNorm1d(item)
            elif spec.layer_norm:
                norm = nn.GroupNorm(1, item)
            conv = conv_type(channels, item, spec.kernel_size, padding=spec.kernel_size // 2, bias=spec.bias)
            residual = spec.residual and item == channels and spec.kernel_size % 2 == 1
            layers.append(Block(conv, norm, _activation(spec), spec.dropout, residual))
            channels = item
        self.hidden = nn.ModuleList(layers)
        self.output = nn.Linear(channels, num_classes, bias=spec.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.image_shape)
        for layer in self.hidden:
            x = layer(x)
        x = x.flatten(2).mean(dim=2)
        return self.output(x)


# ---------------------------------------------------------------- building


def _image_shape(spec: ModelSpec, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """(C, H, W) or (C, L) for a conv model from the spec and/or the data's shape."""
    dims = 3 if spec.kind == "cnn" else 2
    shape = spec.input_shape
    if shape is not None and len(shape) == dims:
        return shape
    if shape is None and input_shape is not None and len(input_shape) == dims:
        return tuple(input_shape)
    features = math.prod(shape) if shape is not None else (math.prod(input_shape) if input_shape else None)
    if features is None:
        raise ValueError(
            f"model spec {spec.text!r} has input '*' but no input_shape was given; pass input_shape "
            f"or write the input shape in the spec"
        )
    if dims == 2:
        return (1, features)
    side = math.isqrt(features)
    if side * side != features:
        raise ValueError(
            f"model spec {spec.text!r}: cannot read {features} input features as a square "
            f"1-channel image; write the input as CxHxW (e.g. 'cnn:3x32x32-...')"
        )
    return (1, side, side)


def _normalise_shape(input_shape: Any) -> tuple[int, ...] | None:
    if input_shape is None:
        return None
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be an int or a tuple of ints, got {input_shape!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"input_shape must be positive sizes, got {input_shape!r}")
    return shape


def _check_fits(model: nn.Module, spec: str, input_shape: tuple[int, ...], num_classes: int | None) -> None:
    """A dry forward pass on two zero rows: the model must accept the data and emit num_classes logits."""
    probe_input = torch.zeros(2, math.prod(input_shape))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(probe_input)
    except Exception as error:  # a factory model of any kind: report what it did not accept
        raise ValueError(
            f"model {spec!r} does not accept inputs of the data set's shape {input_shape} "
            f"(flat rows of {math.prod(input_shape)} features): {error}"
        ) from error
    finally:
        model.train(was_training)
    if num_classes is not None and (out.ndim != 2 or out.shape[1] != num_classes):
        raise ValueError(
            f"model {spec!r} outputs shape {tuple(out.shape[1:])} per example but the data set has "
            f"{num_classes} classes"
        )


def _build_factory(spec: str, input_shape: tuple[int, ...] | None, num_classes: int | None) -> nn.Module:
    factory = load_factory(spec)
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and some C extensions have no signature
        parameters = {}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs: dict[str, Any] = {}
    if input_shape is not None and ("input_shape" in parameters or accepts_any):
        kwargs["input_shape"] = input_shape
    if num_classes is not None and ("num_classes" in parameters or accepts_any):
        kwargs["num_classes"] = num_classes
    try:
        model = factory(**kwargs)
    except (RuntimeError, MemoryError, ValueError, TypeError) as error:
        raise ValueError(f"factory {spec!r} raised {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def build_model(
    spec: str,
    input_shape: tuple[int, ...] | int | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Build the model described by ``spec`` (see the module docstring for the grammar).

    ``input_shape`` and ``num_classes`` come from the data set
    (``ds.input_shape``, ``ds.num_classes``; a conv model also reads
    ``ds.image_shape`` if passed as ``input_shape``). Sizes written in the
    spec must agree with them, else ValueError; a ``*`` in the spec takes
    them. Parameters are left at PyTorch's defaults: initialize with
    ``initlab.init_model``.
    """
    shape = _normalise_shape(input_shape)
    if num_classes is not None:
        check_int("num_classes", num_classes, minimum=1)
    if not isinstance(spec, str):
        raise TypeError(f"model spec must be a str, got {type(spec).__name__}")
    kind = spec.strip().partition(":")[0].lower()
    if kind not in _KINDS:
        if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_][\w.]*", spec.strip()):
            built = _build_factory(spec.strip(), shape, num_classes)
            if shape is not None:
                _check_fits(built, spec, shape, num_classes)
            return built
        raise ValueError(
            f"unknown model kind {kind!r} in spec {spec!r}; valid kinds: {', '.join(list_model_kinds())}"
        )
    parsed = parse_spec(spec)
    if parsed.num_classes is not None and num_classes is not None and parsed.num_classes != num_classes:
        raise ValueError(
            f"model spec {spec!r} has {parsed.num_classes} outputs but the data set has {num_classes} classes"
        )
    classes = parsed.num_classes if parsed.num_classes is not None else num_classes
    if classes is None:
        raise ValueError(f"model spec {spec!r} has output '*' but no num_classes was given")
    if parsed.input_shape is not None and shape is not None:
        if math.prod(parsed.input_shape) != math.prod(shape):
            raise ValueError(
                f"model spec {spec!r} takes {math.prod(parsed.input_shape)} input features "
                f"{parsed.input_shape} but the data set's inputs have shape {shape} "
                f"({math.prod(shape)} features)"
            )
    model: nn.Module
    try:
        if parsed.kind == "mlp":
            features = parsed.input_shape or shape
            if features is None:
                raise ValueError(f"model spec {spec!r} has input '*' but no input_shape was given")
            model = MLP(parsed, math.prod(features), classes)
        else:
            model = ConvNet(parsed, _image_shape(parsed, shape), classes)
    except (RuntimeError, MemoryError) as error:  # sizes the machine cannot allocate
        raise ValueError(f"model spec {spec!r} cannot be built on this machine: {error}") from error
    return model
