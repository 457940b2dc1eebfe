"""Random streams for initlab: torch generators, derived per-name seeds and counter-based streams."""

from initlab.rng.streams import (
    CounterStream,
    GeneratorLike,
    check_generator,
    derive_generator,
    derive_seed,
    normal_,
    truncated_normal_,
    uniform_,
)

__all__ = [
    "CounterStream",
    "GeneratorLike",
    "check_generator",
    "derive_generator",
    "derive_seed",
    "normal_",
    "truncated_normal_",
    "uniform_",
]
