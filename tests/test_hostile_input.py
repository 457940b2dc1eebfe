"""Input that used to be taken silently, or to end in a traceback, is a ValueError/TypeError that names the
argument and what is accepted (CLI: one line, exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import initlab
from initlab.cli.main import main
from initlab.plan import Plan


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr; return it."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# ---------------------------------------------------------------- a key given twice


@pytest.mark.parametrize("text", ["he_normal(mode=fan_in, mode=fan_out)", "orthogonal(gain=1.0, gain=2.0)"])
def test_a_parameter_given_twice_in_a_scheme_string_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="twice"):
        initlab.get(text)


@pytest.mark.parametrize("text", ["he_normal; bias=zeros; bias=ones", "he; Linear.bias=zeros; Linear.bias = ones",
                                  "he; stage=lsuv(tol=0.1, tol=0.2)"])
def test_a_key_given_twice_in_a_plan_string_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="twice"):
        Plan.parse(text)


@pytest.mark.parametrize(("suffix", "text"), [
    (".yaml", "default: he_normal\nbias: zeros\nbias: ones\n"),
    (".json", '{"default": "he_normal", "bias": "zeros", "bias": "ones"}'),
    (".toml", 'default = "he_normal"\nbias = "zeros"\nbias = "ones"\n'),
])
def test_a_key_given_twice_in_a_plan_file_is_refused_with_the_file_named(tmp_path: Path, capsys, suffix: str,
                                                                         text: str) -> None:
    path = tmp_path / f"plan{suffix}"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Plan.from_file(path)
    assert str(path) in _cli_error(capsys, ["describe", "mlp:4-8-2:relu", "--plan", str(path)])


@pytest.mark.parametrize("text", ["default: he_normal\nbias: [zeros\n", "default: !!python/object:os.system ls\n",
                                  "default: !!python/name:os.system\n", "\xff\xfe"])
def test_malformed_yaml_and_yaml_tags_are_one_line_naming_the_file(tmp_path: Path, capsys, text: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(text.encode("latin-1"))
    error = _cli_error(capsys, ["describe", "mlp:4-8-2:relu", "--plan", str(path)])
    assert f"plan file {str(path)!r} cannot be read" in error
