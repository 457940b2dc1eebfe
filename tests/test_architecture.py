"""The shape of the code: layers import only downwards, functions stay short.

The layer table is DESIGN.md's (and docs/architecture.md's): each layer may
import the layers listed for it and nothing above. Imports are read from the
source, so imports inside functions and ``importlib.import_module("...")``
calls with a literal name count as much as the ones at the top of a module.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "initlab"

# layer -> the layers it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "rng": frozenset(),
    "schemes": frozenset({"rng"}),
    "plan": frozenset({"schemes", "rng"}),
    "theory": frozenset({"schemes", "rng"}),
    "datainit": frozenset({"plan", "theory", "schemes", "rng"}),
    "probe": frozenset({"theory", "schemes", "rng"}),
    "diagnosis": frozenset({"probe", "theory", "datainit", "plan", "schemes", "rng"}),
    "integrations": frozenset({"plan", "schemes", "rng"}),
    "lab": frozenset({"integrations", "diagnosis", "probe", "datainit", "theory", "plan", "schemes", "rng", "initlab"}),
    "cli": frozenset({"lab", "integrations", "diagnosis", "probe", "datainit", "theory", "plan", "schemes", "rng",
                      "initlab"}),
}
# the numba and Triton kernels are written as long flat functions on purpose (one kernel, one body)
KERNEL_FILES = {"rng/kernels.py", "rng/gpu.py"}
MAX_FUNCTION_LINES = 80

# "initlab" stands for the package itself (its __init__ wires every layer together); top-level
# modules of the package (initlab/__init__.py, thin re-exports such as initlab/demo.py) may import any layer


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``tree``, at any depth."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from initlab import rng`` imports initlab.rng; ``from initlab import get`` the package itself
            found.extend((node.lineno, f"{source}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((node.lineno, first.value))
    return found


def _layer_of(module: str) -> str | None:
    """The layer of an initlab module: its sub-package, "initlab" for the package or a top-level module."""
    parts = module.split(".")
    if parts[0] != "initlab":
        return None
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return "initlab"


def upward_imports(path: Path, text: str | None = None) -> list[str]:
    """Imports in the file at ``path`` (or in ``text``, as if it were that file) that break the layer table."""
    module = _module_name(path)
    own = _layer_of(module)
    if own == "initlab":
        return []
    tree = _tree(path) if text is None else ast.parse(text)
    problems = []
    for line, imported in _imported_modules(tree, module, path.name == "__init__.py"):
        target = _layer_of(imported)
        if target is None or target == own:
            continue
        if target not in ALLOWED[str(own)]:
            problems.append(f"{path.relative_to(SOURCE)}:{line} ({own}) imports {imported} ({target})")
    return problems


def _sources() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def test_every_sub_package_is_a_layer_of_the_table() -> None:
    packages = {path.parent.relative_to(SOURCE).parts[0] for path in SOURCE.glob("*/__init__.py")}
    assert packages <= set(ALLOWED), f"sub-packages missing from the layer table: {packages - set(ALLOWED)}"


def test_no_layer_imports_a_higher_one_statically_or_at_run_time() -> None:
    problems = [problem for path in _sources() for problem in upward_imports(path)]
    assert not problems, "upward imports:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "text",
    [
        "import initlab.datainit\n",
        "from initlab.datainit import lsuv\n",
        "def load():\n    from initlab import datainit\n",
        "def load():\n    import importlib\n    importlib.import_module('initlab.datainit')\n",
        "from importlib import import_module\nimport_module('initlab.lab.models')\n",
        "from .. import probe\n",
        "import initlab\n",
    ],
)
def test_the_layer_check_sees_upward_imports_of_every_form(text: str) -> None:
    assert upward_imports(SOURCE / "plan" / "stages.py", text)


def test_the_layer_check_lets_downward_imports_pass() -> None:
    text = "from initlab.schemes import get\nfrom initlab import rng\nfrom . import targets\nimport torch\n"
    assert upward_imports(SOURCE / "plan" / "stages.py", text) == []


def _long_functions(path: Path, text: str | None = None) -> list[str]:
    """Functions over the limit in the file at ``path`` (or in ``text``, as if it were that file)."""
    tree = _tree(path) if text is None else ast.parse(text)
    where = str(path.relative_to(SOURCE))
    return [
        f"{where}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_longer_than_80_lines_outside_the_kernels() -> None:
    long = [
        problem
        for path in _sources()
        if str(path.relative_to(SOURCE)) not in KERNEL_FILES
        for problem in _long_functions(path)
    ]
    assert not long, "functions over 80 lines (signature and docstring included):\n" + "\n".join(long)


def test_the_length_check_counts_every_line_of_a_function() -> None:
    def function_of(lines: int) -> str:
        return "def f():\n" + "".join(f"    x = {i}\n" for i in range(lines - 1))

    where = SOURCE / "plan" / "stages.py"
    assert _long_functions(where, function_of(MAX_FUNCTION_LINES)) == []
    assert len(_long_functions(where, function_of(MAX_FUNCTION_LINES + 1))) == 1
