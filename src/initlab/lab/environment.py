"""What a result was computed with: versions, platform and threads, recorded beside every run."""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["environment"]


def environment() -> dict[str, Any]:
    """initlab, torch, NumPy and Python versions, the platform, the CPU count and torch's threads.

    >>> sorted(environment())[:3]
    ['cpu_count', 'initlab', 'machine']
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
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
