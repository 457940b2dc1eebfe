"""Shared test settings: fixed seeds and few threads, so statistics and timings are repeatable."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _fixed_global_seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread() -> object:
    """torch on one thread for a module's tests: sorting, small fills and small LAPACK calls on a shared
    2-core machine spin instead of working when they have more threads than free cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
