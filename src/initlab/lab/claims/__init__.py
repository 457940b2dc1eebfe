"""Every claim of the seed texts as an experiment with a measured verdict, and classic results reproduced.

>>> from initlab.lab.claims import get_claim
>>> get_claim("matmul100").kind
'reproduction'

``run_claims(["1", "matmul100"], quick=True)`` runs experiments and returns their verdicts.

Each module holds one group of claims; importing this package registers
them all. Ids are stable: ``1`` ... ``17`` for the claims, names for the
reproductions (``he2015``, ``glorot2010``, ``dlai-circles``, ``matmul100``,
``mup``, ``residual-zero``).
"""

from initlab.lab.claims import geometry, reproductions, scale, symmetry, training  # noqa: F401  (registration)
from initlab.lab.claims.base import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    VERDICTS,
    Check,
    Claim,
    ClaimResult,
    Context,
    Outcome,
    combine_verdicts,
    get_claim,
    registered_claims,
)
from initlab.lab.claims.runner import ClaimsRun, load_run, run_claims, write_run

__all__ = [
    "INCONCLUSIVE",
    "NOT_SUPPORTED",
    "SUPPORTED",
    "VERDICTS",
    "Check",
    "Claim",
    "ClaimResult",
    "ClaimsRun",
    "Context",
    "Outcome",
    "combine_verdicts",
    "get_claim",
    "load_run",
    "registered_claims",
    "run_claims",
    "write_run",
]
