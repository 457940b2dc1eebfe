"""Generated hostile input -- scheme strings, plan files, ``initlab compare`` arguments -- gets a clear error
(ValueError/TypeError, or exit 2 with a one-line message) or a correct result: never another exception, never
a changed file outside ``--out``. Bounded and derandomized, so the examples are the same on every run."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import initlab
from initlab.cli.main import main
from initlab.plan import init_model
from initlab.schemes import list_schemes

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

PARAMETERS = {info.name: info.parameters for info in list_schemes()}
NAMES = sorted(PARAMETERS) + ["auto", "fixup", "bogus", "", "os.system", "__import__"]
OTHER_KEYS = ["mode", "nonlinearity", "x", "__class__"]
VALUES = ["0", "1", "-1", "0.5", "1e308", "-1e308", "1e-320", "nan", "inf", "-inf", "True", "None", "fan_in",
          "fan_out", "relu", "tanh", "leaky_relu", "'x'", "(1, 2)", "()", "[1]", "{}", "__import__('os')", "1j",
          "10**400", "normal", "exact", "torch", "qr"]


NUMBERS = ["0", "1", "2.0", "0.5", "0.01", "-1", "1e308", "-1e308", "1e-320", "nan", "inf", "10**400", "True", "'1'"]
WORDS = {"mode": ["fan_in", "fan_out", "fan_avg", "fan_inn"], "nonlinearity": ["relu", "tanh", "leaky_relu", "selu", "x"],
         "distribution": ["normal", "uniform", "truncated_normal", "x"], "method": ["qr", "svd", "x"],
         "convention": ["exact", "torch", "x"], "activation": ["tanh", "relu", "erf", "x"],
         "std_after_truncation": ["True", "False", "1"]}


@st.composite
def scheme_strings(draw: st.DrawFn) -> str:
    """NAME or NAME(key=value, ...): keys mostly the scheme's own (sometimes twice), values valid or hostile;
    some strings are then mangled."""
    name = draw(st.sampled_from(NAMES))
    items = []
    for _ in range(draw(st.integers(0, 3))):
        own = PARAMETERS.get(name, ())
        key = draw(st.sampled_from(own if own and draw(st.integers(0, 5)) else OTHER_KEYS))
        value = draw(st.sampled_from(WORDS.get(key, NUMBERS) if draw(st.integers(0, 5)) else VALUES))
        items.append(f"{key}={value}" if draw(st.integers(0, 9)) else value)
    text = f"{name}({', '.join(items)})" if items or draw(st.booleans()) else name
    mangle = draw(st.sampled_from(["", "", "", "", "", "", ")", "(", "==", "; x", "cut"]))
    if mangle == "==":
        return text.replace("=", "==", 1)
    if mangle == "cut":
        return text[:-1]
    if mangle == "(":
        return "(" + text
    return text + mangle


def _keywords(text: str) -> list[tuple[str, object]]:
    """The ``key=value`` pairs of a call expression, values as literals (bare words as strings)."""
    call = ast.parse(text.strip(), mode="eval").body
    if not isinstance(call, ast.Call):
        return []
    pairs = []
    for keyword in call.keywords:
        node = keyword.value
        value = node.id if isinstance(node, ast.Name) else ast.literal_eval(node)
        pairs.append((str(keyword.arg), value))
    return pairs


def _same(built: object, written: object) -> bool:
    if isinstance(written, int | float) and not isinstance(written, bool) and isinstance(built, int | float):
        return float(built) == float(written)
    return built == written


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3), nn.LayerNorm(3))


@settings(FUZZ, max_examples=300)
@given(scheme_strings())
def test_a_scheme_string_is_a_clear_error_or_a_scheme_that_round_trips_and_fills_finite_values(text: str) -> None:
    try:
        scheme = initlab.get(text)
    except (ValueError, TypeError):
        return
    assert initlab.get(str(scheme)) == scheme
    config = scheme.config()
    for key, value in _keywords(text):  # what was written is what was built: no key silently dropped or replaced
        assert _same(config[key], value), (text, key, config[key])
    try:
        values = scheme.sample((5, 4))
    except (ValueError, TypeError):
        return
    assert values.shape == (5, 4) and bool(torch.isfinite(values).all()), text


PLAN_KEYS = ["default", "plan", "bias", "output", "weight", "Linear", "Linear.bias", "Norm", "0.weight", "*.weight",
             "name:0.bias", "stage", "bogus", "Conv.nope", "norm_scale", "recurrent"]
PLAN_VALUES = ["he_normal", "zeros", "ones", "orthogonal(gain=2.0)", "normal(std=1e308)", "keep", "auto", "lsuv",
               "he", "fixup", "bogus", "he_normal(mode=fan_inn)", "uniform(a=1.0, b=0.0)", "module_default", ""]


@st.composite
def plan_files(draw: st.DrawFn) -> tuple[str, str]:
    """(suffix, text) of a YAML/JSON/TOML plan file: valid pieces, repeated keys, broken syntax, tags."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(PLAN_KEYS), st.sampled_from(PLAN_VALUES)), max_size=5))
    suffix = draw(st.sampled_from([".yaml", ".json", ".toml"]))
    if suffix == ".yaml":
        text = "".join(f"{json.dumps(k)}: {json.dumps(v)}\n" for k, v in pairs)
    elif suffix == ".json":
        text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    else:
        text = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in pairs)
    damage = draw(st.sampled_from(["", "", "", "cut", "tag", "list", "binary"]))
    if damage == "cut":
        text = text[: len(text) // 2]
    elif damage == "tag":
        text = "default: !!python/object/apply:os.system ['true']\n" if suffix == ".yaml" else text + "!!"
    elif damage == "list":
        text = "[1, 2]" if suffix != ".toml" else "x = [1, 2"
    elif damage == "binary":
        text = "\udcff\x00"
    return suffix, text


@FUZZ
@given(plan_files())
def test_a_plan_file_is_a_clear_error_with_the_model_unchanged_or_a_finite_initialisation(case: tuple[str, str]) -> None:
    suffix, text = case
    model = _model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"plan{suffix}"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                init_model(model, path, seed=0, batch=torch.randn(16, 6))
        except (ValueError, TypeError):
            assert all(torch.equal(before[n], p) for n, p in model.named_parameters()), text
            return
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters()), text


COMPARE_OPTIONS: dict[str, list[str]] = {
    "--inits": ["zeros", "he_normal", "he_normal(mode=fan_inn)", "zeros,zeros", "", "bogus", "he; bias=ones; bias=zeros",
                "orthogonal; stage=lsuv(tl=1)", "normal(std=1e308)", "lsuv"],
    "--seeds": ["1", "2", "0", "-1", "1,1", "3:2", "x", "99999999999999999999"],
    "--steps": ["1", "3", "0", "-2", "x"],
    "--batch-size": ["full", "8", "0", "-1", "x"],
    "--lr": ["0.1", "nan", "-1", "inf", "0"],
    "--model": ["mlp:*-4-*:tanh", "mlp:*-4-3:relu", "os:system", "mlp:*-100000000000-*", "cnn:*-4-*", "x"],
    "--data-option": ["n_samples=60", "n_samples=-1", "noise=nan", "bogus=1", "n_samples"],
    "--workers": ["1", "0", "-3"],
    "--loss-threshold": ["0.5", "nan", "-1"],
    "--log-every": ["1", "0"],
}


@st.composite
def compare_arguments(draw: st.DrawFn) -> tuple[list[str], str]:
    """(arguments without --out, which --out to use): each option valid or not, some left out."""
    arguments = ["compare", "--dataset", "circles", "--executor", "inline", "--quiet", "--no-plots"]
    chosen = draw(st.lists(st.sampled_from(sorted(COMPARE_OPTIONS)), unique=True, max_size=4))
    for option in chosen:
        arguments += [option, draw(st.sampled_from(COMPARE_OPTIONS[option]))]
    if "--data-option" not in chosen:
        arguments += ["--data-option", "n_samples=60"]
    if "--steps" not in chosen:
        arguments += ["--steps", "2"]
    if "--seeds" not in chosen:
        arguments += ["--seeds", "1"]
    if "--inits" not in chosen:
        arguments += ["--inits", "zeros"]
    out = draw(st.sampled_from(["new", "new", "user-folder", "a-file", "through-a-file", "", "again", "again-forced"]))
    return arguments, out


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@settings(FUZZ, max_examples=40)
@given(compare_arguments())
def test_compare_arguments_give_a_one_line_error_or_a_sweep_and_touch_nothing_outside_out(
        case: tuple[list[str], str]) -> None:
    arguments, where = case
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "user-folder").mkdir()
        (root / "user-folder" / "results.csv").write_text("mine\n")
        (root / "a-file").write_text("mine\n")
        (root / "bystander").mkdir()
        (root / "bystander" / "notes.txt").write_text("mine\n")
        out = {"new": "sweep", "user-folder": "user-folder", "a-file": "a-file", "through-a-file": "a-file/sweep",
               "": "", "again": "sweep", "again-forced": "sweep"}[where]
        extra = ["--force"] if where == "again-forced" else []
        runs = 2 if where.startswith("again") else 1
        before = {name: data for name, data in _tree(root).items() if not name.startswith("sweep/")}
        for run in range(runs):
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    code = main([*arguments, *(extra if run else []), "--out", str(root / out) if out else ""])
                except SystemExit as exit_:  # argparse: usage line, then one error line
                    code = exit_.code
            message = stderr.getvalue().strip().splitlines()
            assert code in (0, 2), (arguments, where, stderr.getvalue())
            assert "Traceback" not in stderr.getvalue()
            if code == 2:
                assert message and message[-1].startswith("initlab compare: error: "), stderr.getvalue()
                assert len([line for line in message if not line.startswith(("usage:", " "))]) == 1, message
            elif run == 0:
                assert (root / out / "manifest.json").is_file() and (root / out / "leaderboard.md").is_file()
        after = {name: data for name, data in _tree(root).items() if not name.startswith("sweep/")}
        assert after == before, (arguments, where)
