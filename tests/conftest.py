"""Shared test settings: small budgets, and silent broadcasting made an error inside our own maths tests."""

import os

import jax
import pytest

# CI machines are 2-core CPUs: keep JAX on the CPU and quiet.
jax.config.update("jax_platforms", "cpu")

# The command line's persistent compilation cache stays off in tests (and in the processes they start): a test reads
# no program another test or the user compiled. tests/cli/test_compile_cache.py turns it on for its own processes.
os.environ["PUREJAXPPO_CACHE_DIR"] = "off"


@pytest.fixture
def strict_ranks():
    """Raise on implicit rank promotion (catches silent broadcasting) for the duration of one test."""
    with jax.numpy_rank_promotion("raise"):
        yield

