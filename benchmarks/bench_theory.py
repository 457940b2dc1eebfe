"""Mean-field theory timings: the 50-point critical line, fixed points and a phase diagram.

The reference is the textbook route with SciPy: for each sigma_b2, brentq
over sigma_w2 for chi1 = 1, with q* found by iterating the variance map to
convergence and expectations by 100-point Gauss-Hermite quadrature, one
point at a time. initlab solves the critical line as one vectorised root
find in q (sigma_b2(q) = q - E[phi^2] / E[phi'^2]). Both results are
compared (max |difference| in sigma_w2).

    .venv/bin/python benchmarks/bench_theory.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq

from initlab.theory import MeanField, critical_line, phase_diagram
from timing import machine_line

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(100)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)

FUNCTIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "tanh": (np.tanh, lambda x: 1.0 / np.cosh(x) ** 2),
    "erf": (lambda x: np.vectorize(math.erf)(x), lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
}


def reference_critical(name: str, sigma_b2: float) -> float:
    phi, derivative = FUNCTIONS[name]

    def q_star(sigma_w2: float) -> float:
        q = 1.0
        for _ in range(10_000):
            new = sigma_w2 * float(WEIGHTS @ phi(math.sqrt(q) * NODES) ** 2) + sigma_b2
            if abs(new - q) <= 1e-13 * max(q, 1e-300):
                return new
            q = new
        return q

    def chi1_minus_one(sigma_w2: float) -> float:
        q = q_star(sigma_w2)
        return sigma_w2 * float(WEIGHTS @ derivative(math.sqrt(q) * NODES) ** 2) - 1.0

    return brentq(chi1_minus_one, 0.5, 10.0, xtol=1e-12)


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    print(machine_line())  # load average per core; a warning when the machine is busy
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reference points and repeats")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    sigma_b2 = np.linspace(0.01, 0.5, 50)
    print(f"best of {repeats} run(s)\n")
    print("| task | initlab (s) | reference (s) | speed-up | max abs difference |")
    print("|---|---|---|---|---|")
    for name in FUNCTIONS:
        ours_time, ours = best_of(repeats, lambda name=name: critical_line(name, sigma_b2))
        points = sigma_b2[::10] if args.quick else sigma_b2
        reference_time, reference = best_of(1, lambda name=name, points=points: [reference_critical(name, b) for b in points])
        reference_time *= len(sigma_b2) / len(points)  # per 50 points
        ours_values = np.asarray(ours)[:: (10 if args.quick else 1)]
        difference = float(np.max(np.abs(ours_values - np.asarray(reference))))
        print(
            f"| critical line, 50 points, {name} | {ours_time:.4f} | {reference_time:.3f} | "
            f"{reference_time / ours_time:.0f}x | {difference:.1e} |"
        )
    fixed_time, _ = best_of(repeats, lambda: MeanField("tanh", 1.5, 0.05).summary())
    print(f"| MeanField(tanh).summary() (q*, chi1, c*, depth scales) | {fixed_time:.4f} | - | - | - |")
    diagram_time, _ = best_of(repeats, lambda: phase_diagram("tanh"))
    print(f"| phase diagram 60 x 40 grid, tanh | {diagram_time:.4f} | - | - | - |")


if __name__ == "__main__":
    main()
