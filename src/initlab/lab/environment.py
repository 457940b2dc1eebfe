"""What a result was computed with: versions, machine, BLAS and threads, recorded beside every run."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path
from typing import Any

__all__ = ["environment"]


def environment() -> dict[str, Any]:
    """initlab, torch, NumPy and Python versions, the platform and CPU, the BLAS builds and torch's threads.

    >>> info = environment()
    >>> info["torch"].startswith("2."), info["cpu_count"] >= 1
    (True, True)
    """
    import numpy
    import torch

    import initlab

    return {
        "initlab": initlab.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **_torch_build(),
        "numpy_blas": _numpy_blas(),
        "torch_threads": torch.get_num_threads(),
    }


def _torch_build() -> dict[str, str]:
    """BLAS and LAPACK of the torch build, from ``torch.__config__.show()``."""
    import torch

    text = torch.__config__.show()
    found: dict[str, str] = {}
    for key in ("BLAS_INFO", "LAPACK_INFO"):
        match = re.search(rf"\b{key}=([^,\s]+)", text)
        if match:
            found[key.lower()] = match.group(1)
    for line in text.splitlines():
        if "Math Kernel Library" in line or "OpenBLAS" in line:
            found["blas_version"] = line.strip(" -")
            break
    return found


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def _numpy_blas() -> str:
    import numpy as np

    with contextlib.suppress(Exception):
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    return "unknown"
