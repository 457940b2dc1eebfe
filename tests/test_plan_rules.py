"""Plans: string, dict and file forms, rule matching order, selectors, bad plans."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from initlab.plan import RECIPES, Plan, init_model, named_plans

ROUND_TRIP = [
    "he_normal; bias=zeros; output=zeros",
    "he; Conv.bias=zeros; encoder.*.weight=orthogonal; stage=lsuv(tol=0.05)",
    "fixup",
    "auto(distribution=uniform); output=mup_output",
    "glorot_uniform(gain=2.0); LSTM.recurrent=orthogonal; forget_bias=ones; name:alpha=keep",
    "module_default; Norm=constant(value=0.5)",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_a_plan_string_prints_back_in_the_same_form(text: str) -> None:
    plan = Plan.parse(text)
    assert str(plan) == text
    assert Plan.parse(str(plan)) == plan


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_a_plan_file_round_trips_through_its_dict_form(tmp_path: Path, suffix: str) -> None:
    plan = Plan.parse("he; Conv.bias=zeros; encoder.*.weight=orthogonal(gain=2.0); stage=lsuv(tol=0.05)")
    path = plan.save(tmp_path / f"plan{suffix}")
    assert Plan.from_file(path) == plan
    assert Plan.coerce(str(path)) == plan
    assert Plan.from_dict(plan.to_dict()) == plan


def test_every_named_plan_parses_and_prints_as_its_name() -> None:
    for name in named_plans():
        plan = Plan.parse(name)
        assert str(plan) == name
        if name in RECIPES:  # a recipe's rules may need knobs read from a model; its description does not
            assert plan.describe().startswith(f"{name}: ")
            continue
        assert plan.effective_rules()


def test_the_first_matching_rule_wins_and_the_bare_scheme_comes_last() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = init_model(model, "ones; 0.weight=zeros; Linear=constant(value=0.5); output=zeros")
    # Linear= takes every weight first, so neither output= nor the bare default get any
    assert {str(w.message) for w in caught} == {"rule output=zeros matched no parameter", "rule ones matched no parameter"}
    assert torch.count_nonzero(model[0].weight) == 0  # the glob comes before Linear=
    assert torch.equal(model[2].weight.detach(), torch.full((8, 8), 0.5))
    assert torch.equal(model[3].weight.detach(), torch.full((2, 8), 0.5))  # Linear= precedes output=
    assert report["3.weight"].rule == "Linear=constant(value=0.5)"
    assert torch.count_nonzero(model[0].bias) == 0  # biases: implicit zeros


def test_a_type_selector_with_a_role_matches_only_that_role() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 4))
    init_model(model, "he_normal; Conv.bias=ones")
    assert torch.equal(model[0].bias.detach(), torch.ones(4))
    assert torch.count_nonzero(model[1].bias) == 0


@pytest.mark.parametrize("name", ["zeros", "small_random", "he_normal", "glorot_uniform", "orthogonal", "normal"])
def test_any_catalogue_scheme_is_a_plan_for_all_weights_with_zero_biases(name: str) -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.Linear(64, 8))
    report = init_model(model, name, seed=0)
    assert report["0.weight"].rule.endswith(f"default {name}")
    assert torch.count_nonzero(model[0].bias) == 0 and torch.count_nonzero(model[2].bias) == 0
    assert torch.equal(model[1].weight.detach(), torch.ones(64))


def test_an_unknown_scheme_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown scheme 'zerros'; did you mean zeros.*valid schemes:.*auto.*he_normal"):
        Plan.parse("he_normal; bias=zerros")
    with pytest.raises(ValueError, match="neither a ready plan"):
        Plan.parse("hee_normal")


def test_an_unknown_role_lists_the_valid_roles_and_types() -> None:
    with pytest.raises(ValueError, match="'baises' is not a role.*roles: weight, bias.*module families: Linear"):
        Plan.parse("he; baises=zeros")
    with pytest.raises(ValueError, match="unknown role 'bais'"):
        Plan.parse("he; Conv.bais=zeros")


def test_malformed_plans_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="two defaults"):
        Plan.parse("he_normal; glorot_uniform")
    with pytest.raises(ValueError, match="empty plan"):
        Plan.parse(" ; ")
    with pytest.raises(ValueError, match="gain"):
        Plan.parse("orthogonal(gain=-1.0)")
    with pytest.raises(ValueError, match="auto: distribution"):
        Plan.parse("auto(distribution=cauchy)")
    with pytest.raises(FileNotFoundError):
        Plan.coerce("missing_plan.yaml")


def test_implicit_defaults_follow_every_rule() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.PReLU(init=0.1))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init_model(model, "he_normal")
    assert torch.equal(model[1].weight.detach(), torch.ones(4))
    assert torch.equal(model[1].bias.detach(), torch.zeros(4))
    assert model[2].weight.item() == pytest.approx(0.1)


def test_yaml_plan_files_without_pyyaml_name_the_extra_and_json_still_works(tmp_path, monkeypatch) -> None:
    import sys

    plan = Plan.parse("he_normal; bias=zeros")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(ImportError, match=r"initlab\[yaml\]"):
        plan.save(tmp_path / "plan.yaml")
    assert Plan.from_file(plan.save(tmp_path / "plan.json")) == plan
