"""initlab: neural-network weight initialization for PyTorch.

Every initializer with declared fans and exact gains (``initlab.schemes``),
whole-model plans (``initlab.plan``), per-layer diagnostics
(``initlab.probe``), signal-propagation theory (``initlab.theory``),
data-driven inits (``initlab.datainit``), experiments (``initlab.lab``) and a
counter-based generator (``initlab.rng``).

>>> import initlab as il
>>> init = il.get("he_normal(mode=fan_in, nonlinearity=relu)")
>>> w = init.sample((256, 512), layout="linear")
"""

from __future__ import annotations

import importlib
from typing import Any

from initlab import rng, schemes, theory  # theory registers the edge_of_chaos scheme
from initlab.schemes import *  # noqa: F403  (the catalogue is the top-level API)
from initlab.schemes import __all__ as _schemes_all

__version__ = "0.1.0"

# names served from the higher layers, imported on first use so that
# ``import initlab`` stays light
_LAZY: dict[str, tuple[str, str | None]] = {
    "init_model": ("initlab.plan", "init_model"),
    "Plan": ("initlab.plan", "Plan"),
    "InitReport": ("initlab.plan", "InitReport"),
    "audit": ("initlab.probe", "audit"),
    "probe": ("initlab.probe", None),
    "find_activations": ("initlab.plan", "find_activations"),
    "output_layer": ("initlab.plan", "output_layer"),
    "ProbeReport": ("initlab.probe", "ProbeReport"),
    "lsuv": ("initlab.datainit", "lsuv"),
    "plan": ("initlab.plan", None),
    "datainit": ("initlab.datainit", None),
    "lab": ("initlab.lab", None),
    "doctor": ("initlab.doctor", None),
    "fingerprint": ("initlab.doctor", "fingerprint"),
}

__all__ = ["rng", "schemes", "theory", "__version__", *_schemes_all, *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
