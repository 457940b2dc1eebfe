"""The init report's text: scheme names read as their formula (no float noise) and wrap instead of being cut."""

from __future__ import annotations

import torch
from torch import nn

import initlab as il


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_auto_s_relu_scale_prints_as_2_and_equals_he_normal_s_draw() -> None:
    auto, he = _net(), _net()
    report = il.init_model(auto, "auto(distribution=truncated_normal)", seed=0)
    assert report["0.weight"].scheme == "variance_scaling(scale=2.0, mode=fan_in, distribution=truncated_normal)"
    il.init_model(he, "variance_scaling(scale=2.0, mode=fan_in, distribution=truncated_normal)", seed=0)
    assert torch.equal(auto[0].weight, he[0].weight)


def test_long_scheme_names_wrap_onto_continuation_lines_and_are_never_cut() -> None:
    report = il.init_model(_net(), "auto(distribution=truncated_normal)", seed=0)
    text = report.table(max_scheme=30)
    assert "..." not in text
    for row in report.rows:
        words = row.scheme.split()
        assert all(word in text for word in words)
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("0.weight"))
    assert lines[first + 1].lstrip().startswith("mode=fan_in,")  # the continuation of 0.weight's scheme
