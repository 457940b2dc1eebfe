"""The demonstration `make demo` prints: constant init keeps the 2-2-1 network's hidden units identical."""

from __future__ import annotations

import initlab as il
from initlab.demo import make_network, train


def test_constant_init_keeps_the_two_hidden_units_identical_and_fails_xor() -> None:
    network = make_network(il.constant(0.5), il.constant(0.5), seed=0)
    loss = train(network, steps=500)
    weights = network[0].weight.detach()
    assert bool((weights[0] == weights[1]).all())
    # one effective hidden unit is monotone in x1 + x2 in {0, 1, 2} with targets 0, 1, 0:
    # the least squared error over the four points is 1/6
    assert loss > 1 / 6 - 1e-3


def test_random_init_breaks_symmetry_and_learns_xor() -> None:
    network = make_network(il.glorot_uniform(), il.glorot_uniform(), seed=0)
    loss = train(network, steps=2000)
    weights = network[0].weight.detach()
    assert float((weights[0] - weights[1]).abs().max()) > 0.1
    assert loss < 0.01
