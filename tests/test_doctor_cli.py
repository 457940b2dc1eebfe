"""``initlab doctor``: specs, factory files and checkpoints; --strict, --json; one-line errors with exit 2."""

from __future__ import annotations

import json
import textwrap

import torch

from initlab.cli.main import main

BROKEN = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
        nn.init.zeros_(model[2].weight)
        return model

    def healthy():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    """
)


def test_strict_exits_1_on_an_error_finding_and_json_is_machine_readable(tmp_path, capsys) -> None:
    source = tmp_path / "models.py"
    source.write_text(BROKEN)
    assert main(["doctor", f"{source}:build"]) == 0
    assert "[error] zero_weights" in capsys.readouterr().out
    assert main(["doctor", f"{source}:build", "--strict", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["error"] == 1 and data["findings"][0]["fix"] == "2.weight=auto"
    assert main(["doctor", f"{source}:healthy", "--strict"]) == 0


def test_a_model_spec_with_a_plan_and_the_meta_device(capsys) -> None:
    assert main(["doctor", "mlp:16-64x12-4:relu", "--plan", "small_random"]) == 0
    assert "vanishing_signal" in capsys.readouterr().out
    assert main(["doctor", "mlp:16-64x3-4:relu", "--meta"]) == 0
    assert "structure only" in capsys.readouterr().out


def test_a_checkpoint_gets_its_value_checks(tmp_path, capsys) -> None:
    state = {"w": torch.full((4, 4), float("nan")), "b": torch.zeros(4)}
    torch.save(state, tmp_path / "ckpt.pt")
    assert main(["doctor", str(tmp_path / "ckpt.pt"), "--strict"]) == 1
    assert "nonfinite" in capsys.readouterr().out


def test_bad_input_is_one_line_with_exit_2(tmp_path, capsys) -> None:
    for argv in (
        ["doctor", str(tmp_path / "missing.safetensors")],
        ["doctor", "nosuchkind:1-2-3"],
        ["doctor", f"{tmp_path / 'absent.py'}:build"],
        ["doctor", "mlp:16-64-4:relu", "--meta", "--plan", "he"],
        ["doctor", "mlp:16-64-4:relu", "--sample-size", "3"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("initlab doctor: error:") and "\n" not in err, err
