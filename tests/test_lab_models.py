"""Model specs: the grammar builds what it says, the output layer is named, misfits are errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from initlab.lab.models import OUTPUT_NAME, build_model, parse_spec


def test_mlp_spec_builds_the_written_widths_and_names_its_output() -> None:
    model = build_model("mlp:64-128x5-10:tanh", input_shape=(64,), num_classes=10)
    widths = [(b.linear.in_features, b.linear.out_features) for b in model.hidden]
    assert widths == [(64, 128)] + [(128, 128)] * 4
    assert all(isinstance(b.act, nn.Tanh) for b in model.hidden)
    assert getattr(model, OUTPUT_NAME) is model.output and model.output.out_features == 10
    assert model(torch.zeros(3, 64)).shape == (3, 10)
    names = [name for name, _ in model.named_modules()]
    assert names.index("hidden.4.linear") < names.index("hidden.4.act") < names.index("output")


def test_options_add_norms_dropout_and_residual_where_widths_agree() -> None:
    model = build_model("mlp:*-32x3-*:relu+bn+dropout=0.25+residual", input_shape=(8,), num_classes=3)
    assert all(isinstance(b.norm, nn.BatchNorm1d) for b in model.hidden)
    assert all(b.dropout.p == 0.25 for b in model.hidden)
    assert [b.residual for b in model.hidden] == [False, True, True]
    block = model.hidden[1].eval()
    x = torch.randn(4, 32)
    assert torch.allclose(block(x), x + block.act(block.norm(block.linear(x))))
    ln = build_model("mlp:8-16-3:gelu+ln")
    assert isinstance(ln.hidden[0].norm, nn.LayerNorm) and isinstance(ln.hidden[0].act, nn.GELU)


def test_conv_specs_read_the_image_shape_and_pool() -> None:
    model = build_model("cnn:*-8-p-16-*:relu+bn", input_shape=(64,), num_classes=10)
    assert model.image_shape == (1, 8, 8)
    assert isinstance(model.hidden[1], nn.MaxPool2d) and model.hidden[2].conv.in_channels == 8
    assert model(torch.randn(5, 64)).shape == (5, 10)
    one_d = build_model("cnn1d:1x40-4x2-10:leaky_relu=0.2+k=5", input_shape=(40,), num_classes=10)
    assert one_d.hidden[0].conv.kernel_size == (5,) and one_d.hidden[0].act.negative_slope == 0.2
    assert one_d(torch.randn(2, 40)).shape == (2, 10)


def test_spec_that_does_not_fit_the_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="takes 32 input features.*64"):
        build_model("mlp:32-16-10", input_shape=(64,), num_classes=10)
    with pytest.raises(ValueError, match="12 outputs but the data set has 10 classes"):
        build_model("mlp:64-16-12", input_shape=(64,), num_classes=10)
    with pytest.raises(ValueError, match="square"):
        build_model("cnn:*-4-*", input_shape=(40,), num_classes=10)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("rnn:1-2", "valid kinds: mlp, cnn, cnn1d"), ("mlp:64-a-10", "width must be a positive integer"),
     ("mlp:64-10:swoosh", "valid: relu, tanh"), ("mlp:64-10+wide", "valid options"),
     ("mlp:64-10+dropout=1.5", "dropout takes a rate"), ("mlp:64-p-10", "only for cnn"),
     ("mlp:64-10+bn+ln", "one of \\+bn and \\+ln")],
)
def test_bad_specs_name_what_is_accepted(spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spec(spec) if spec.startswith("mlp") else build_model(spec)


def test_factory_specs_get_the_data_shape_and_are_checked(tmp_path, monkeypatch) -> None:
    (tmp_path / "lab_factory_models.py").write_text(textwrap.dedent("""
        import math
        from torch import nn

        def make(input_shape, num_classes):
            return nn.Sequential(nn.Linear(math.prod(input_shape), 7), nn.ReLU(), nn.Linear(7, num_classes))

        def fixed():
            return nn.Linear(5, 3)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lab_factory_models", None)
    model = build_model("lab_factory_models:make", input_shape=(64,), num_classes=10)
    assert model(torch.zeros(2, 64)).shape == (2, 10)
    with pytest.raises(ValueError, match="does not accept inputs"):
        build_model("lab_factory_models:fixed", input_shape=(64,), num_classes=10)
    with pytest.raises(ValueError, match="has no attribute"):
        build_model("lab_factory_models:missing", input_shape=(64,), num_classes=10)
