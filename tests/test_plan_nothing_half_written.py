"""init_model checks every parameter it is going to write before the first write: a model it cannot
initialise is refused with a ValueError naming the parameter, and no tensor of the model changes."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from initlab.plan import init_model


class Doubles(nn.Module):
    """A parametrization without right_inverse: nothing can be assigned through it."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return 2 * weight


class RefusesLargeValues(nn.Module):
    """A right_inverse that accepts small values only (the ones present at registration)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.abs().max() > 0.6:
            raise ValueError("values beyond 0.6 cannot be inverted")
        return weight


def _two_layers() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))


def _without_right_inverse() -> nn.Module:
    model = _two_layers()
    parametrize.register_parametrization(model[2], "weight", Doubles())
    return model


def _orthogonal_without_trivialization() -> nn.Module:
    model = _two_layers()
    parametrizations.orthogonal(model[2], use_trivialization=False)
    return model


def _refusing_right_inverse() -> nn.Module:
    model = _two_layers()
    with torch.no_grad():
        model[2].weight.mul_(0.1)  # registration succeeds; he_normal's draws (std 0.5) do not
    parametrize.register_parametrization(model[2], "weight", RefusesLargeValues())
    return model


def _expanded() -> nn.Module:
    model = _two_layers()
    model[2].weight = nn.Parameter(torch.randn(1, 8).expand(8, 8))
    return model


def _inference_mode() -> nn.Module:
    model = _two_layers()
    with torch.inference_mode():
        model[2] = nn.Linear(8, 8)
    return model


CASES: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "no right_inverse": (_without_right_inverse, r"parameter 2\.weight: parametrization Doubles has no right_inverse"),
    "orthogonal, use_trivialization=False": (_orthogonal_without_trivialization,
                                             r"parameter 2\.weight: the right_inverse .*_Orthogonal"),
    "right_inverse refuses the drawn values": (_refusing_right_inverse,
                                               r"parameter 2\.weight: .*RefusesLargeValues.*beyond 0\.6"),
    "expanded (stride-0) parameter": (_expanded, r"parameter 2\.weight is an expanded view"),
    "parameter created under inference_mode": (_inference_mode, r"parameter 2\.(weight|bias) was created under "
                                                                 r"torch\.inference_mode"),
}


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the model, parametrization originals and buffers included."""
    tensors = {f"p:{n}": t for n, t in model.named_parameters(remove_duplicate=False)}
    tensors.update({f"b:{n}": t for n, t in model.named_buffers(remove_duplicate=False) if t is not None})
    return {name: tensor.detach().clone() for name, tensor in tensors.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_a_model_that_cannot_be_written_is_refused_before_the_first_write(case: str) -> None:
    build, message = CASES[case]
    model = build()
    before = _snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message):
            init_model(model, "he_normal", seed=0)
    after = _snapshot(model)
    assert after.keys() == before.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed == [], f"{case}: {changed} changed"


def test_parametrizations_with_a_right_inverse_are_still_written_through_it() -> None:
    model = _two_layers()
    parametrizations.orthogonal(model[2])  # the default (trivialization) accepts any square matrix
    report = init_model(model, "orthogonal(gain=1.0)", seed=3)
    weight = model[2].weight.detach()
    assert torch.allclose(weight @ weight.T, torch.eye(8), atol=1e-5)
    assert report["2.weight"].status == "initialized"


def test_ctrl_c_while_writing_stays_a_keyboard_interrupt_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    from initlab.schemes.variance import HeNormal

    real_fill = HeNormal._fill_
    calls = []

    def interrupted_fill(self, out, fans, generator):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fill(self, out, fans, generator)

    monkeypatch.setattr(HeNormal, "_fill_", interrupted_fill)
    model = _two_layers()
    with pytest.raises(KeyboardInterrupt) as caught:
        init_model(model, "he_normal", seed=0)
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "stopped while writing" in notes[0] and "0.weight" in notes[0]


@pytest.mark.parametrize("values", [torch.full((8, 8), float("nan")), torch.eye(8).masked_fill(torch.eye(8) > 0, float("inf"))])
def test_given_values_that_are_not_finite_are_refused(values: torch.Tensor) -> None:
    model = _two_layers()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"NaN or infinite value\(s\) .* parameter 2\.weight"):
        init_model(model, {"default": "he_normal", "2.weight": values})
    assert all(torch.equal(before[k], v) for k, v in _snapshot(model).items())
