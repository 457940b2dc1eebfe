"""Argument checks shared by every layer of initlab.

Each check returns the value in its plain Python type or raises an error that
names the argument and says what is accepted: ``TypeError`` for the wrong
kind of value (a string where a number goes, ``True`` where a count goes),
``ValueError`` for a value of the right kind outside the accepted range. The
module sits in the lowest layer (``initlab.rng``) so that every layer above
can use it.

>>> check_number("std", 0.5, minimum=0.0)
0.5
>>> check_int("steps", 3, minimum=1)
3
>>> check_choice("mode", "fan_in", ("fan_in", "fan_out"))
'fan_in'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["check_number", "check_int", "check_choice", "check_seed", "MAX_SEED"]

# seeds are 63-bit so that they fit a signed int64 (torch.Generator.manual_seed, NumPy)
MAX_SEED = 2**63 - 1


def _is_number(value: Any) -> bool:
    # numpy scalars register as numbers.Real/Integral; booleans are refused although bool is an int
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _range_text(minimum: float | None, maximum: float | None, strict: bool) -> str:
    low, high = (">", "<") if strict else (">=", "<=")
    parts = []
    if minimum is not None:
        parts.append(f"{low} {minimum}")
    if maximum is not None:
        parts.append(f"{high} {maximum}")
    return " and ".join(parts)


def check_number(
    argument: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a float within [minimum, maximum] (open bounds with ``strict``).

    ``finite=False`` admits +-inf (never NaN), e.g. for one-sided truncation
    bounds. ``argument`` is the name shown in the error ("he_normal: gain").
    """
    if not _is_number(value):
        raise TypeError(f"{argument} must be a number, got {value!r}")
    number = float(value)
    if finite and not math.isfinite(number):
        raise ValueError(f"{argument} must be finite, got {value!r}")
    if math.isnan(number):
        raise ValueError(f"{argument} must not be NaN")
    too_low = minimum is not None and (number < minimum or (strict and number == minimum))
    too_high = maximum is not None and (number > maximum or (strict and number == maximum))
    if too_low or too_high:
        raise ValueError(f"{argument} must be {_range_text(minimum, maximum, strict)}, got {value!r}")
    return number


def check_int(argument: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum]; floats such as 3.0 are refused."""
    if not (isinstance(value, numbers.Integral) and _is_number(value)):
        raise TypeError(f"{argument} must be an int, got {value!r}")
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{argument} must be an int {_range_text(minimum, maximum, False)}, got {value!r}")
    return number


def check_choice(argument: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{argument} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_seed(value: Any, argument: str = "seed") -> int:
    """``value`` as an int seed in [0, 2**63 - 1] (NumPy integers accepted)."""
    if not (isinstance(value, numbers.Integral) and _is_number(value)):
        raise TypeError(f"{argument} must be an int in [0, 2**63 - 1], got {value!r} ({type(value).__name__})")
    seed = int(value)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{argument} must be in [0, 2**63 - 1], got {seed}")
    return seed
