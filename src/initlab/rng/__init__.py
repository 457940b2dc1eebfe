"""Random streams for initlab: torch generators, derived per-name seeds and counter-based streams.

``Keyed(seed)`` is the counter-based generator (Philox4x32-10): the value of
element i of ``Keyed(seed).child(name)`` is a pure function of (seed, name,
i), so any slice can be generated alone, in parallel, on any device, with the
same bits. See docs/rng.md.
"""

from initlab.rng.checks import check_choice, check_int, check_number
from initlab.rng.derived import bernoulli_, orthogonal_
from initlab.rng.keyed import (
    ALGORITHM,
    MAX_INDEX,
    Keyed,
    KeySpace,
    check_unique_names,
    get_backend,
    get_threads,
    set_backend,
    set_threads,
    stream_key,
    truncation_plan,
    use_backend,
)
from initlab.rng.streams import (
    CounterStream,
    GeneratorLike,
    check_generator,
    derive_generator,
    derive_seed,
    normal_,
    normal_mass,
    truncated_normal_,
    uniform_,
)

__all__ = [
    "ALGORITHM",
    "MAX_INDEX",
    "CounterStream",
    "GeneratorLike",
    "Keyed",
    "KeySpace",
    "bernoulli_",
    "check_choice",
    "check_int",
    "check_number",
    "check_generator",
    "check_unique_names",
    "derive_generator",
    "derive_seed",
    "get_backend",
    "get_threads",
    "normal_",
    "normal_mass",
    "orthogonal_",
    "set_backend",
    "set_threads",
    "stream_key",
    "truncated_normal_",
    "truncation_plan",
    "uniform_",
    "use_backend",
]
