"""Reading checkpoints: safetensors (header checked against the file) and torch files with weights_only."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from initlab.cli.main import main
from initlab.diagnosis import load_tensors
from initlab.plan import init_model


def _write_safetensors(path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_safetensors_written_by_the_library_read_back_equal(tmp_path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = {
        "a.weight": torch.randn(16, 8),
        "a.bias": torch.randn(16).to(torch.bfloat16),
        "b": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "c": torch.randn(3).half(),
        "empty": torch.zeros(0, 4),
    }
    safetensors_torch.save_file(state, str(tmp_path / "m.safetensors"))
    loaded = load_tensors(tmp_path / "m.safetensors")
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 32]}}, bytes(16), "outside"),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, bytes(16), "bytes for shape"),
        ({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, bytes(16), "dtype"),
        ({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16), "shape"),
        (["not", "an", "object"], b"", "not a JSON object"),
    ],
)
def test_corrupt_safetensors_is_a_value_error(tmp_path, header, data, message) -> None:
    path = tmp_path / "bad.safetensors"
    _write_safetensors(path, header, data)
    with pytest.raises(ValueError, match=message):
        load_tensors(path)


def test_header_length_beyond_the_file_is_refused(tmp_path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError, match="exceeds the file"):
        load_tensors(path)


def test_torch_files_are_read_with_weights_only_and_nested_state_dicts_found(tmp_path) -> None:
    model = torch.nn.Linear(4, 3)
    torch.save({"model": model.state_dict(), "step": 0}, tmp_path / "ckpt.pt")
    loaded = load_tensors(tmp_path / "ckpt.pt")
    assert set(loaded) == {"weight", "bias"}
    assert torch.equal(loaded["weight"], model.weight.detach())


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_with_arbitrary_objects_is_refused_without_running_it(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(ValueError, match="weights_only"):
        load_tensors(path)
    assert "this must never run" not in capsys.readouterr().out


def test_unknown_suffix_and_missing_file(tmp_path) -> None:
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="suffix"):
        load_tensors(tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError):
        load_tensors(tmp_path / "missing.safetensors")


def test_fingerprint_cli_prints_and_writes_a_plan_that_init_model_reads(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    torch.save(model.state_dict(), tmp_path / "step0.pt")
    plan = tmp_path / "plan.yaml"
    assert main(["fingerprint", str(tmp_path / "step0.pt"), "--plan-out", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "torch_default (kaiming_uniform a=sqrt 5) fan_in=64" in out and plan.exists()
    report = init_model(model, plan=str(plan), seed=3)
    assert all(row.status != "untouched" for row in report.rows)
    assert main(["fingerprint", str(tmp_path / "step0.pt"), "--plan-out", str(plan)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["fingerprint", str(tmp_path / "step0.pt"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {row["family"] for row in data["tensors"]} == {"uniform"}


def test_fingerprint_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    assert main(["fingerprint", str(tmp_path / "none.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
