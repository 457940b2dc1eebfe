"""Greedy layer-wise unsupervised pre-training as an initializer
(Hinton, Osindero & Teh 2006; Bengio, Lamblin, Popovici & Larochelle 2007).

Each Linear or Conv layer, in forward order, is trained as the encoder of a
one-layer autoencoder on the inputs it receives from the already
pre-trained layers below it:

    h = phi(layer(x + noise)),   x_hat = decoder(h),   loss = mean |x_hat - x|^2

with a fresh decoder (Linear out->in, or the matching transposed
convolution) that is thrown away afterwards, and phi the activation that
follows the layer in the model (identity if none is found). Each layer gets
``steps`` Adam steps on minibatches of ``data``; the output layer is left to
supervised training unless ``include_last``. ConvTranspose and attention
layers are skipped. On an exception every layer is restored.

The result is a function of (model, data, options, ``seed``): minibatches
and noise come from a generator seeded with ``seed``, each decoder's init
from a stream derived from ``seed`` and the layer's name; torch's global
generator is neither read nor advanced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.datainit._common import (
    DataInitReport,
    StopForward,
    call_model,
    call_order,
    call_with_hooks,
    check_batch,
    covered_layers,
    evaluation,
    restore,
    select,
    snapshot,
)
from initlab.rng import derive_generator
from initlab.rng.checks import check_int, check_number, check_seed
from initlab.rng.deprecation import renamed_keywords
from initlab.schemes.gains import resolve_activation

__all__ = ["PretrainRow", "layerwise_pretrain", "following_activations"]

_TRAINABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CHUNK = 1024


@dataclass
class PretrainRow:
    """One layer: Adam steps taken, reconstruction loss at the first and last step, outcome."""

    name: str
    kind: str
    activation: str
    steps: int
    loss_start: float
    loss_end: float
    status: str


def following_activations(model: nn.Module, batch: Any, layers: list[tuple[str, nn.Module]]) -> dict[int, nn.Module | None]:
    """For each layer (by id), the activation module the forward pass calls right after it, or None."""
    leaves = [module for module in model.modules() if not list(module.children()) or isinstance(module, _TRAINABLE)]
    calls: list[nn.Module] = []

    def record(module: nn.Module, args: Any, output: Any) -> None:
        calls.append(module)

    with torch.no_grad():
        call_with_hooks(model, batch, leaves, record)
    found: dict[int, nn.Module | None] = {}
    for index, module in enumerate(calls):
        if id(module) in found or index + 1 >= len(calls):
            continue
        following = calls[index + 1]
        found[id(module)] = following if _is_activation(following) else None
    return {id(module): found.get(id(module)) for _, module in layers}


def _is_activation(module: nn.Module) -> bool:
    if isinstance(module, nn.Identity | nn.Dropout | nn.Flatten) or list(module.children()):
        return False
    try:
        name, _, _ = resolve_activation(module)
    except (TypeError, ValueError):
        return False
    return name is not None


def _decoder(layer: Any, generator: torch.Generator) -> nn.Module:
    """The layer's decoder (Linear out -> in, or the matching transposed convolution), drawn from ``generator``.

    Weight and bias are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the decoder's
    fan-in, the distribution torch's own ``reset_parameters`` gives these
    layers (``kaiming_uniform_(a=sqrt(5))``, torch 2.13.0,
    torch/nn/modules/linear.py and conv.py), drawn from ``generator`` instead
    of torch's global generator.
    """
    decoder: nn.Module
    if isinstance(layer, nn.Linear):
        decoder = torch.nn.utils.skip_init(nn.Linear, layer.out_features, layer.in_features)
    else:
        transposed: Any = {nn.Conv1d: nn.ConvTranspose1d, nn.Conv2d: nn.ConvTranspose2d,
                           nn.Conv3d: nn.ConvTranspose3d}[type(layer)]
        if isinstance(layer.padding, str):
            raise ValueError(f"layerwise_pretrain: convolutions with padding={layer.padding!r} are not supported; use numbers")
        decoder = torch.nn.utils.skip_init(
            transposed,
            layer.out_channels,
            layer.in_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
        )
    parameters: list[torch.Tensor] = [decoder.weight, decoder.bias]  # type: ignore[list-item]
    shape = parameters[0].shape
    bound = 1.0 / math.sqrt(shape[1] * math.prod(shape[2:]))
    with torch.no_grad():
        for parameter in parameters:
            parameter.copy_(torch.empty(parameter.shape).uniform_(-bound, bound, generator=generator))
    return decoder


def _layer_inputs(model: nn.Module, data: Any, layer: nn.Module, samples: int) -> torch.Tensor | None:
    """The first positional input of ``layer`` for every sample of ``data``, forward stopped at the layer."""
    pieces: list[torch.Tensor] = []

    def hook(module: nn.Module, args: Any) -> None:
        pieces.append(args[0].detach())
        raise StopForward

    handle = layer.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            for start in range(0, samples, _CHUNK):
                index = torch.arange(start, min(start + _CHUNK, samples))
                before = len(pieces)
                try:
                    call_model(model, select(data, index))
                except StopForward:
                    pass
                if len(pieces) == before:
                    return None
    finally:
        handle.remove()
    return torch.cat(pieces)


@renamed_keywords("layerwise_pretrain", {"data": "batch"})
def layerwise_pretrain(
    model: nn.Module,
    batch: Any,
    *,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 64,
    noise: float = 0.0,
    include_last: bool = False,
    seed: int = 0,
) -> DataInitReport:
    """Pre-train each Linear/Conv layer as a (denoising if ``noise`` > 0) autoencoder, in place.

    ``batch``: the model's inputs (a tensor, or tuple/dict of tensors), all
    the samples to train on along dim 0; ``steps`` Adam steps of learning rate ``lr`` per
    layer (the budget), minibatches of ``batch_size`` and the noise drawn with
    ``seed``, each decoder's init from ``seed`` and the layer's name. Torch's
    global generator is left as it was: the same ``seed`` gives the same
    weights whatever ran before.
    """
    seed = check_seed(seed, "layerwise_pretrain: seed")
    check_int("layerwise_pretrain: steps", steps, minimum=0)
    check_int("layerwise_pretrain: batch_size", batch_size, minimum=1)
    check_number("layerwise_pretrain: lr", lr, minimum=0)
    check_number("layerwise_pretrain: noise", noise, minimum=0)
    layers = covered_layers(model, "layerwise_pretrain")
    samples = check_batch(batch, "layerwise_pretrain")
    saved = snapshot([module for _, module in layers])
    generator = torch.Generator().manual_seed(seed)
    rows: list[PretrainRow] = []
    try:
        with evaluation(model):
            probe = select(batch, torch.arange(min(samples, batch_size)))
            ordered = call_order(model, probe, layers)
            activations = following_activations(model, probe, layers)
            called = _called(model, probe, layers)
            last = max((i for i, (_, m) in enumerate(ordered) if id(m) in called), default=-1)
            for index, (name, layer) in enumerate(ordered):
                kind = type(layer).__name__
                activation = activations.get(id(layer))
                label = type(activation).__name__ if activation is not None else "identity"
                if id(layer) not in called:
                    rows.append(PretrainRow(name, kind, label, 0, math.nan, math.nan, "not_called"))
                elif not isinstance(layer, _TRAINABLE):
                    rows.append(PretrainRow(name, kind, label, 0, math.nan, math.nan, "unsupported"))
                elif index == last and not include_last:
                    rows.append(PretrainRow(name, kind, label, 0, math.nan, math.nan, "output_layer"))
                else:
                    inputs = _layer_inputs(model, batch, layer, samples)
                    if inputs is None:
                        rows.append(PretrainRow(name, kind, label, 0, math.nan, math.nan, "not_called"))
                        continue
                    decoder = _decoder(layer, derive_generator(seed, f"layerwise_pretrain/decoder/{name}"))
                    first, final = _train_autoencoder(layer, activation, decoder, inputs, steps, lr, batch_size,
                                                      noise, generator)
                    rows.append(PretrainRow(name, kind, label, steps, first, final, "trained"))
    except BaseException:
        restore(saved)
        raise
    summary = {"steps_per_layer": steps, "lr": lr, "noise": noise, "samples": samples, "trained": sum(r.status == "trained" for r in rows)}
    return DataInitReport("pretrain", rows, summary)


def _called(model: nn.Module, batch: Any, layers: list[tuple[str, nn.Module]]) -> set[int]:
    seen: set[int] = set()

    def record(module: nn.Module, args: Any, output: Any) -> None:
        seen.add(id(module))

    with torch.no_grad():
        call_with_hooks(model, batch, (module for _, module in layers), record)
    return seen


def _train_autoencoder(
    layer: nn.Module,
    activation: nn.Module | None,
    decoder: nn.Module,
    inputs: torch.Tensor,
    steps: int,
    lr: float,
    batch_size: int,
    noise: float,
    generator: torch.Generator,
) -> tuple[float, float]:
    decoder = decoder.to(device=inputs.device, dtype=inputs.dtype)
    parameters = [p for p in layer.parameters() if p.requires_grad] + list(decoder.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    count = inputs.shape[0]
    first = final = math.nan
    with torch.enable_grad():
        for step in range(steps):
            index = torch.randint(0, count, (min(batch_size, count),), generator=generator)
            clean = inputs[index.to(inputs.device)]
            corrupted = clean
            if noise > 0:
                corrupted = clean + noise * torch.randn(clean.shape, generator=generator).to(clean)
            hidden = layer(corrupted)
            if activation is not None:
                hidden = activation(hidden)
            if isinstance(decoder, nn.Linear):
                reconstruction = decoder(hidden)
            else:
                reconstruction = decoder(hidden, output_size=list(clean.shape[2:]))
            loss = nn.functional.mse_loss(reconstruction, clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if step == 0:
                first = value
            final = value
    for parameter in layer.parameters():
        parameter.grad = None
    return first, final
