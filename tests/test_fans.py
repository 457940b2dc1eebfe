"""Fans come from a declared layout, never from rank alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import initlab as il


@pytest.mark.parametrize(
    "shape,layout,groups,expected",
    [
        ((64, 32), "linear", 1, (32, 64, 1)),
        ((32, 64), "linear_t", 1, (32, 64, 1)),
        ((64, 32, 3, 3), "conv", 1, (288, 576, 9)),
        ((64, 8, 3, 3), "conv", 4, (72, 144, 9)),
        ((32, 64, 3, 3), "conv_transpose", 1, (288, 576, 9)),
        ((32, 16, 3, 3), "conv_transpose", 4, (72, 144, 9)),
        ((1000, 64), "embedding", 1, (1000, 64, 1)),
        ((3, 3, 32, 64), "keras", 1, (288, 576, 9)),
        ((32, 64), "jax", 1, (32, 64, 1)),
        ((5, 7, 2, 3, 4), "conv", 1, (7 * 24, 5 * 24, 24)),
        ((17,), "vector", 1, (17, 17, 1)),
        ((), "vector", 1, (1, 1, 1)),
    ],
)
def test_fans_follow_the_declared_layout(shape: tuple[int, ...], layout: str, groups: int, expected: tuple[int, int, int]) -> None:
    result = il.fans(shape, layout=layout, groups=groups)
    assert (result.fan_in, result.fan_out, result.receptive) == expected


def test_the_same_kernel_in_torch_and_keras_layouts_has_the_same_fans() -> None:
    torch_kernel = (64, 32, 5, 3)
    keras_kernel = (5, 3, 32, 64)
    assert il.fans(torch_kernel, "conv") == il.fans(keras_kernel, "keras")


def test_conv_fans_agree_with_torch_without_groups_only() -> None:
    for shape in [(64, 32), (16, 8, 3), (16, 8, 3, 3), (4, 2, 3, 3, 3)]:
        layout = "linear" if len(shape) == 2 else "conv"
        torch_fans = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        ours = il.fans(shape, layout)
        assert (ours.fan_in, ours.fan_out) == torch_fans == (il.schemes.torch_fans(shape).fan_in, il.schemes.torch_fans(shape).fan_out)
    grouped = il.fans((16, 2, 3, 3), "conv", groups=8)
    assert grouped.fan_out == il.schemes.torch_fans((16, 2, 3, 3)).fan_out // 8


def test_fans_object_stands_in_for_a_layout() -> None:
    explicit = il.Fans(fan_in=10, fan_out=20)
    assert il.fans((3,), explicit) is explicit
    assert explicit.fan_avg == 15.0 and explicit.of("fan_avg") == 15.0


def test_zero_size_dimensions_give_zero_fans_and_zero_element_fills_are_noops() -> None:
    assert il.fans((0, 5), "linear").fan_out == 0
    empty = torch.empty(0, 5)
    assert il.he_normal()(empty) is empty
    assert il.he_normal().describe((5, 0)).expected_std == 0.0
    assert il.orthogonal()(torch.empty(4, 0, 3), layout="conv").shape == (4, 0, 3)


@pytest.mark.parametrize(
    "shape,layout,groups,message",
    [
        ((64,), "linear", 1, "expects a 2-D shape"),
        ((64, 32, 3), "linear", 1, "expects a 2-D shape"),
        ((64, 32), "conv", 1, "at least 3 dims"),
        ((3, 3), "vector", 1, "0-D and 1-D"),
        ((64, 32, 3), "conv", 5, "not divisible by groups=5"),
        ((64, 32, 3), "conv", 0, "groups must be an int >= 1"),
        ((64, 32), "dense", 1, "layout must be one of"),
        ((64, -1), "linear", 1, "negative sizes"),
    ],
)
def test_layouts_that_do_not_fit_the_shape_raise(shape: tuple[int, ...], layout: str, groups: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        il.fans(shape, layout=layout, groups=groups)


def test_fan_mode_names_are_checked() -> None:
    with pytest.raises(ValueError, match="fan_in"):
        il.Fans(1, 2).of("fan_mean")


@settings(max_examples=60, deadline=None)
@given(
    out_per_group=st.integers(1, 8),
    in_per_group=st.integers(1, 8),
    groups=st.integers(1, 4),
    kernel=st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_conv_and_conv_transpose_of_the_same_layer_have_swapped_fans(
    out_per_group: int, in_per_group: int, groups: int, kernel: list[int]
) -> None:
    conv = il.fans((out_per_group * groups, in_per_group, *kernel), "conv", groups)
    transpose = il.fans((in_per_group * groups, out_per_group, *kernel), "conv_transpose", groups)
    assert conv == transpose
    assert conv.fan_in * out_per_group == conv.fan_out * in_per_group
