"""Shared test settings: small budgets, and silent broadcasting made an error inside our own maths tests."""

import os

# The suite compiles with LLVM's optimisation level 1, as the command line, `sweep` and `pbt` always do
# (purejaxppo/compiler.py): its time is mostly compiling, and the level takes about a quarter off it (a fresh clone's
# run: 14 min 31 s -> 12 min 9 s). The level may round floats differently in the last bits, so the one test that
# compares bits with a record, test_pinned.py, runs its pinned runs in a process of their own with the XLA_FLAGS the
# suite was started with (GIVEN_XLA_FLAGS). A level the user sets in XLA_FLAGS is kept. Set before JAX starts its
# backend; the processes tests start inherit it.
OPT_LEVEL_FLAG = "--xla_backend_optimization_level=1"
GIVEN_XLA_FLAGS = "PUREJAXPPO_TEST_GIVEN_XLA_FLAGS"
os.environ.setdefault(GIVEN_XLA_FLAGS, os.environ.get("XLA_FLAGS", ""))  # pytest-xdist's workers inherit it
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {OPT_LEVEL_FLAG}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

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
