"""Shared test settings: small budgets, and silent broadcasting made an error inside our own maths tests."""

import jax
import pytest

# CI machines are 2-core CPUs: keep JAX on the CPU and quiet.
jax.config.update("jax_platforms", "cpu")


@pytest.fixture
def strict_ranks():
    """Raise on implicit rank promotion (catches silent broadcasting) for the duration of one test."""
    with jax.numpy_rank_promotion("raise"):
        yield

