"""torch's private kernels, used only through initlab.lab.torch_private: they must still be what autograd calls.

These tests fail when the installed torch is not a release the module was
checked against, or when a kernel's result no longer equals autograd's, so
that a torch upgrade is noticed here and not as silently different gradients.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.lab import torch_private

SOURCE = Path(torch_private.__file__).resolve().parent.parent

ACTIVATIONS = [
    (nn.ReLU(), ("relu",)),
    (nn.Tanh(), ("tanh",)),
    (nn.Sigmoid(), ("sigmoid",)),
    (nn.Hardtanh(-0.5, 0.7), ("hardtanh", -0.5, 0.7)),
    (nn.LeakyReLU(0.1), ("leaky_relu", 0.1)),
    (nn.ELU(0.8), ("elu", 0.8, 1.0)),
    (nn.GELU(), ("gelu", "none")),
    (nn.GELU(approximate="tanh"), ("gelu", "tanh")),
    (nn.SiLU(), ("silu",)),
    (nn.Softplus(2.0, 10.0), ("softplus", 2.0, 10.0)),
]


def test_the_installed_torch_is_a_release_the_private_kernels_were_checked_on() -> None:
    assert torch_private.AVAILABLE, (
        f"torch {torch.__version__} is outside initlab.lab.torch_private.TESTED_TORCH "
        f"{torch_private.TESTED_TORCH} or lacks one of its kernels: check the kernels against autograd "
        "(this file) and add the release to TESTED_TORCH"
    )


@pytest.mark.parametrize(("module", "kernel"), ACTIVATIONS, ids=lambda v: v[0] if isinstance(v, tuple) else None)
def test_each_derivative_kernel_equals_autograds_gradient(module: nn.Module, kernel: tuple) -> None:  # type: ignore[type-arg]
    generator = torch.Generator().manual_seed(0)
    z = (3 * torch.randn(64, 32, generator=generator, dtype=torch.float64)).requires_grad_(True)
    g = torch.randn(64, 32, generator=generator, dtype=torch.float64)
    y = module(z)
    (expected,) = torch.autograd.grad(y, z, g)
    got = torch_private.activation_backward(*kernel)(g, z.detach(), y.detach())
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_log_softmax_backward_equals_autograds_gradient() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 16, 10, generator=generator, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 16, 10, generator=generator, dtype=torch.float64)
    log_probs = F.log_softmax(logits, dim=2)
    (expected,) = torch.autograd.grad(log_probs, logits, upstream)
    got = torch_private.log_softmax_backward(upstream, log_probs.detach(), 2)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_foreach_add_adds_alpha_times_each_tensor_in_place() -> None:
    tensors = [torch.ones(3), torch.zeros(2, 2)]
    torch_private.foreach_add_(tensors, [torch.full((3,), 2.0), torch.ones(2, 2)], alpha=-0.5)
    assert torch.equal(tensors[0], torch.zeros(3)) and torch.equal(tensors[1], torch.full((2, 2), -0.5))


def test_unknown_activations_have_no_kernel() -> None:
    with pytest.raises(ValueError, match="no derivative kernel"):
        torch_private.activation_backward("swish")


@functools.cache
def _attribute_chains() -> list[tuple[str, int, str]]:
    """(file, line, dotted name) of every attribute chain and imported module in initlab's source."""
    chains = []
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Attribute):
                names = [ast.unparse(node)]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            chains.extend((str(path.relative_to(SOURCE)), node.lineno, name) for name in names)
    return chains


def test_no_other_module_of_initlab_calls_torch_privates() -> None:
    private = re.compile(r"^(torch\._[A-Za-z]|torch\.ops\.|torch\.distributed\.tensor\._)")
    found = sorted({f"{file}:{line} {name}" for file, line, name in _attribute_chains()
                    if private.match(name) and file != "lab/torch_private.py"})
    assert not found, "private torch APIs outside lab/torch_private.py:\n" + "\n".join(found)


def test_the_private_module_base_classes_used_for_isinstance_still_exist() -> None:
    # nn.modules.conv._ConvNd and friends: the common bases of torch's layer families
    bases = sorted({name for _, _, name in _attribute_chains() if re.match(r"^nn\.modules\.\w+\._\w+$", name)})
    assert bases
    for name in bases:
        value = eval(name, {"nn": nn})  # noqa: S307  (a dotted name read from our own source)
        assert isinstance(value, type) and issubclass(value, nn.Module), name
