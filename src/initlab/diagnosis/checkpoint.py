"""Read the tensors of a checkpoint without running anything in it: safetensors, or torch files with weights_only.

A safetensors file is an 8-byte little-endian header length N, N bytes of
JSON ({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
"__metadata__"}) and the raw data; every field is checked against the file
before a tensor is made (the file is untrusted). The tensors are views into
a private copy-on-write memory map, so a 500 MB checkpoint is not read
whole. A torch file (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) is loaded with
``torch.load(weights_only=True)``, which unpickles tensors and plain
containers only; nested dicts are flattened with dotted names.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_tensors", "SAFETENSORS_DTYPES"]

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER = 100 * 1024 * 1024
_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """{name: tensor} of the checkpoint at ``path`` (``.safetensors`` or a torch file)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {str(file)!r} does not exist or is not a file")
    suffix = file.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(file)
    if suffix in _TORCH_SUFFIXES:
        return _read_torch(file)
    raise ValueError(
        f"checkpoint {str(file)!r}: suffix must be .safetensors or one of {', '.join(_TORCH_SUFFIXES)}, got {suffix!r}"
    )


def _bad(file: Path, what: str) -> ValueError:
    return ValueError(f"checkpoint {str(file)!r} is not a valid safetensors file: {what}")


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise _bad(file, "shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            raise _bad(file, f"header length {length} exceeds the file ({size} bytes)")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _bad(file, f"header is not JSON ({error})") from None
        if not isinstance(header, dict):
            raise _bad(file, "header is not a JSON object")
        start = 8 + length
        data_size = size - start
        entries = []
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            entries.append((name, *_entry(file, name, entry, data_size)))
        if not entries:
            return {}
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    tensors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # frombuffer on a copy-on-write map
        for name, dtype, shape, begin, _ in entries:
            count = math.prod(shape)
            if count == 0:
                tensors[name] = torch.empty(shape, dtype=dtype)
                continue
            flat = torch.frombuffer(mapped, dtype=dtype, count=count, offset=start + begin)
            tensors[name] = flat.reshape(shape)
    return tensors


def _entry(file: Path, name: str, entry: Any, data_size: int) -> tuple[torch.dtype, tuple[int, ...], int, int]:
    if not isinstance(entry, dict):
        raise _bad(file, f"entry {name!r} is not an object")
    dtype = SAFETENSORS_DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise _bad(file, f"entry {name!r} has dtype {entry.get('dtype')!r}; readable: {', '.join(SAFETENSORS_DTYPES)}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(file, f"entry {name!r} has shape {shape!r}")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise _bad(file, f"entry {name!r} has data_offsets {offsets!r} outside the {data_size} data bytes")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if offsets[1] - offsets[0] != math.prod(shape) * itemsize:
        raise _bad(file, f"entry {name!r}: {offsets[1] - offsets[0]} bytes for shape {shape} of {entry['dtype']}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _read_torch(file: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        try:
            loaded = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"checkpoint {str(file)!r} cannot be read with torch.load(weights_only=True): {error}") from None
    except Exception as error:  # pickle errors of an untrusted file come in many types
        raise ValueError(f"checkpoint {str(file)!r} cannot be read with torch.load(weights_only=True): {error}") from None
    tensors: dict[str, torch.Tensor] = {}
    _flatten(_state_dict_of(loaded), "", tensors)
    if not tensors:
        raise ValueError(f"checkpoint {str(file)!r} holds no tensors")
    return tensors


def _state_dict_of(loaded: Any) -> Any:
    """The state dict inside a training checkpoint ({"model": ..., "optimizer": ...}), else ``loaded``."""
    if isinstance(loaded, Mapping) and not any(isinstance(v, torch.Tensor) for v in loaded.values()):
        for key in ("state_dict", "model_state_dict", "model", "module"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    return loaded


def _flatten(value: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(value, torch.Tensor):
        out[prefix or "tensor"] = value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
