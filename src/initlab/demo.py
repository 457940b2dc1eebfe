"""Why weights start random: a 2-2-1 network trained from a constant and from a random init.

Run with ``python -m initlab.demo``. With every weight equal, both hidden
units compute the same function and receive the same gradient, so they stay
identical however long the network trains (it can only ever use one hidden
unit). A random init breaks that symmetry and the network learns XOR.
"""

from __future__ import annotations

import torch
from torch import nn

import initlab as il

XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)


def make_network(hidden_init: il.schemes.Initializer, output_init: il.schemes.Initializer, seed: int) -> nn.Sequential:
    """A 2-2-1 tanh network in float64 with weights from the given schemes and zero biases."""
    generator = torch.Generator().manual_seed(seed)
    hidden, output = nn.Linear(2, 2).double(), nn.Linear(2, 1).double()
    hidden_init(hidden.weight, layout="linear", generator=generator)
    output_init(output.weight, layout="linear", generator=generator)
    il.zeros()(hidden.bias, layout="vector")
    il.zeros()(output.bias, layout="vector")
    return nn.Sequential(hidden, nn.Tanh(), output)


def hidden_weight(network: nn.Sequential) -> torch.Tensor:
    """The hidden layer's weight matrix W1 (one row per hidden unit), detached."""
    layer = network[0]
    assert isinstance(layer, nn.Linear)
    return layer.weight.detach()


def train(network: nn.Sequential, steps: int = 2000, lr: float = 0.5) -> float:
    """Full-batch gradient descent on XOR with squared error; returns the final loss."""
    optimizer = torch.optim.SGD(network.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((network(XOR_INPUTS) - XOR_TARGETS) ** 2).mean()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def main() -> None:
    print("A 2-2-1 tanh network learning XOR, 2000 steps of gradient descent (float64)\n")
    cases = [
        ("constant 0.5", il.constant(0.5), il.constant(0.5)),
        ("random (glorot_uniform)", il.glorot_uniform(), il.glorot_uniform()),
    ]
    for label, hidden_init, output_init in cases:
        network = make_network(hidden_init, output_init, seed=0)
        loss = train(network)
        weights = hidden_weight(network)
        difference = float((weights[0] - weights[1]).abs().max())
        rows = "  ".join(f"W1[{i}]=({row[0]:+.4f}, {row[1]:+.4f})" for i, row in enumerate(weights.tolist()))
        print(f"{label:<24} final loss {loss:.4f}   {rows}")
        print(f"{'':<24} max |W1[0] - W1[1]| = {difference:.3g}"
              + ("   (the two hidden units are still identical)" if difference == 0.0 else ""))
    print("\nConstant init: both hidden units receive identical gradients, so they never differ.")
    print("Random init breaks the symmetry; each unit learns a different feature.")


if __name__ == "__main__":
    main()
