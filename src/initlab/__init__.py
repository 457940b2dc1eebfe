"""initlab: neural-network weight initialization for PyTorch.

Every initializer with declared fans and exact gains (``initlab.schemes``),
whole-model plans (``initlab.plan``), per-layer diagnostics
(``initlab.probe``), signal-propagation theory (``initlab.theory``),
data-driven inits (``initlab.datainit``), experiments (``initlab.lab``) and a
counter-based generator (``initlab.rng``). The top level holds one spelling
of each everyday name; docs/api.md lists them, docs/schemes.md the
deprecated ones.

>>> import initlab as il
>>> init = il.get("he_normal(mode=fan_in, nonlinearity=relu)")
>>> w = init.sample((256, 512), layout="linear")
>>> round(init.describe((256, 512), layout="linear").expected_std ** 2 * 512, 6)
2.0
"""

from __future__ import annotations

import importlib
from typing import Any

from initlab import datainit, plan, schemes, theory
from initlab.datainit import lsuv
from initlab.plan import InitReport, Plan, init_model, recommend, register_layout
from initlab.rng.deprecation import moved_attributes
from initlab.schemes import (
    Axes,
    Fans,
    constant,
    delta_orthogonal,
    dirac,
    fans,
    flax_default,
    gain,
    get,
    glorot_normal,
    glorot_truncated_normal,
    glorot_uniform,
    he_normal,
    he_truncated_normal,
    he_uniform,
    identity,
    keras_default,
    lasagne_default,
    lecun_normal,
    lecun_truncated_normal,
    lecun_uniform,
    list_schemes,
    normal,
    ones,
    orthogonal,
    register,
    small_random,
    sparse,
    torch_default,
    truncated_normal,
    uniform,
    variance_scaling,
    zero_hadamard,
    zeros,
)
from initlab.theory import edge_of_chaos

__version__ = "0.1.0"

# -- wiring: the higher layers register into the extension points of the lower ones ----------
register(theory.EdgeOfChaos)
for _method in datainit.METHODS.values():
    plan.register_stage(_method.name, _method.stage, base=_method.base, description=_method.description,
                        sharded=_method.sharded)
del _method

# served from the probe, doctor and lab layers, imported on first use so that ``import initlab`` stays light
_LAZY: dict[str, tuple[str, str | None]] = {
    "audit": ("initlab.probe", "audit"),
    "Probe": ("initlab.probe", "Probe"),
    "ProbeReport": ("initlab.probe", "ProbeReport"),
    "probe": ("initlab.probe", None),
    "lab": ("initlab.lab", None),
    "mup": ("initlab.mup", None),
    "doctor": ("initlab.diagnosis", "doctor"),
    "fingerprint": ("initlab.diagnosis", "fingerprint"),
}

# old top-level names -> (module, name) where they live now; each use warns (docs/schemes.md)
DEPRECATED: dict[str, tuple[str, str]] = {
    **{name: ("initlab.schemes", name) for name in schemes.CLASSES},
    "EdgeOfChaos": ("initlab.theory", "EdgeOfChaos"),
    **{alias: ("initlab", name) for alias, name in schemes.ALIASES.items()},
    **{
        name: ("initlab.schemes", name)
        for name in ("Description", "Initializer", "Moments", "SchemeInfo", "LAYOUTS", "activation_function",
                     "gaussian_expectation", "torch_fans")
    },
    "find_activations": ("initlab.plan", "find_activations"),
    "output_layer": ("initlab.plan", "output_layer"),
}
_moved = moved_attributes("initlab", DEPRECATED)

__all__ = [
    "__version__",
    # schemes: the catalogue's factories
    "variance_scaling",
    "lecun_normal",
    "lecun_uniform",
    "lecun_truncated_normal",
    "glorot_normal",
    "glorot_uniform",
    "glorot_truncated_normal",
    "he_normal",
    "he_uniform",
    "he_truncated_normal",
    "constant",
    "zeros",
    "ones",
    "normal",
    "uniform",
    "small_random",
    "truncated_normal",
    "orthogonal",
    "sparse",
    "identity",
    "dirac",
    "delta_orthogonal",
    "zero_hadamard",
    "torch_default",
    "keras_default",
    "flax_default",
    "lasagne_default",
    "edge_of_chaos",
    # schemes: strings, the catalogue, fans and gains
    "get",
    "list_schemes",
    "register",
    "fans",
    "Fans",
    "Axes",
    "gain",
    # whole models
    "init_model",
    "InitReport",
    "Plan",
    "register_layout",
    "recommend",
    # diagnostics
    "audit",
    "Probe",
    "ProbeReport",
    # data-driven init
    "lsuv",
    # init bugs found in a model, and the init read back out of a checkpoint
    "doctor",
    "fingerprint",
    # layers reached by name (initlab.theory.MeanField, initlab.schemes.HeNormal)
    "schemes",
    "theory",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    return _moved(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
