"""``package.module:factory`` model specs call only classes and functions defined outside the standard
library; specs the machine cannot allocate are a clear error."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from initlab.cli.main import main
from initlab.lab.factory import load_factory
from initlab.lab.models import build_model

MODULE = """
import functools
import importlib
import os
import subprocess
from collections import OrderedDict

from torch import nn

system = os.system                  # a builtin re-exported
run = subprocess.run                # a standard-library function re-exported
Ordered = OrderedDict               # a standard-library class re-exported
bound = functools.partial(nn.Linear, 4, 2)


class Net(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.layer = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.layer(x)


def make(num_classes: int = 2) -> nn.Module:
    return Net(num_classes)
"""


@pytest.fixture
def package(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "factory_spec_models.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("factory_spec_models", None)
    importlib.import_module("factory_spec_models")  # binds the real os.system before `calls` replaces it
    return "factory_spec_models"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any call that reaches os.system or subprocess.run."""
    seen: list[str] = []
    monkeypatch.setattr(os, "system", lambda *a, **k: seen.append("os.system") or 0)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: seen.append("subprocess.run"))
    return seen


@pytest.mark.parametrize("spec", ["os:system", "subprocess:run", "builtins:eval", "importlib:import_module",
                                  "collections:OrderedDict", "os.path:join"])
def test_standard_library_modules_are_refused(spec: str, calls: list[str]) -> None:
    with pytest.raises(ValueError, match="standard library"):
        load_factory(spec)
    assert calls == []


@pytest.mark.parametrize(("attribute", "message"), [("system", "not a class or function"),
                                                    ("run", "defined in 'subprocess'"),
                                                    ("Ordered", "defined in 'collections'"),
                                                    ("bound", "is a partial, not a class or function")])
def test_callables_that_are_not_the_package_s_own_classes_or_functions_are_refused(
        package: str, calls: list[str], attribute: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(f"{package}:{attribute}", input_shape=(4,), num_classes=2)
    assert calls == []


@pytest.mark.parametrize("attribute", ["Net", "make"])
def test_classes_and_functions_of_the_package_still_build_models(package: str, attribute: str) -> None:
    model = build_model(f"{package}:{attribute}", input_shape=(4,), num_classes=3)
    assert model.layer.out_features == 3


def test_describe_os_system_never_reaches_os_system(calls: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "os:system"]) == 2
    error = capsys.readouterr().err.strip()
    assert calls == [] and len(error.splitlines()) == 1 and "standard library" in error


def test_help_says_which_factories_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("describe", "audit", "lsuv", "compare"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "standard library" in " ".join(capsys.readouterr().out.split())


def test_a_spec_the_machine_cannot_allocate_is_a_value_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="cannot be built on this machine"):
        build_model("mlp:64-100000000000x2-10:relu")
    assert main(["describe", "mlp:64-100000000000x2-10:relu"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "mlp:64-100000000000x2-10:relu" in error
