"""Claims about weight initialization as pre-registered experiments with measured verdicts.

>>> from initlab.lab.claims import run_claims
>>> run = run_claims(["matmul100"], quick=True)
>>> [r.verdict for r in run.results]
['demonstration']

Each claim states a hypothesis and its decision rules (primary, control,
demonstration) where it is registered, before it runs; see
:mod:`initlab.lab.claims.base`. Each module holds one group of claims;
importing this package registers them all. Ids are stable: ``1`` ... ``17``
for the claims, names for the reproductions (``he2015``, ``glorot2010``,
``dlai-circles``, ``matmul100``, ``mup``, ``residual-zero``, ``saxe2014``).
"""

from initlab.lab.claims import geometry, reproductions, scale, symmetry, training  # noqa: F401  (registration)
from initlab.lab.claims.base import (
    DEMONSTRATION,
    ERROR,
    INCONCLUSIVE,
    INVALID,
    NOT_SUPPORTED,
    SUPPORTED,
    VERDICTS,
    Amendment,
    Claim,
    ClaimResult,
    Context,
    Measurement,
    Outcome,
    Rule,
    decide,
    get_claim,
    registered_claims,
)
from initlab.lab.claims.runner import ClaimsRun, load_run, run_claims, run_one, write_run

__all__ = [
    "DEMONSTRATION",
    "ERROR",
    "INCONCLUSIVE",
    "INVALID",
    "NOT_SUPPORTED",
    "SUPPORTED",
    "VERDICTS",
    "Amendment",
    "Claim",
    "ClaimResult",
    "ClaimsRun",
    "Context",
    "Measurement",
    "Outcome",
    "Rule",
    "decide",
    "get_claim",
    "load_run",
    "registered_claims",
    "run_claims",
    "run_one",
    "write_run",
]
