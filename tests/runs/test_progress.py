"""Live progress: the chunk program runs in blocks of updates and hands every update's metrics to the bar, in order;
neither it nor make_train holds a host callback (so the persistent compilation cache can keep it).

Uses the same tiny CartPole config (and seed count) as tests/test_cli.py and tests/test_checkpoint.py, so the
chunk program compiles once per pytest process (`progress.chunk_runner` caches it).
"""

import io

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.runs.checkpoint import batched_keys
from purejaxppo.runs.progress import (ProgressBar, chunk_runner, device_description, progress_enabled, return_summary,
                                 stack_metrics)

TINY = PPOConfig(num_envs=4, num_steps=16, total_timesteps=1280)  # == the CLI tests' config
NUM_SEEDS = 2


def _primitive_names(jaxpr) -> set[str]:
    """Every primitive name in a (closed) jaxpr, recursing into sub-jaxprs (jit, scan, while, cond, ...)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    names |= _primitive_names(sub)
    return names


@pytest.mark.timeout(120)
def test_every_update_reaches_the_sink_once_in_order_and_one_compile():
    runner = chunk_runner(TINY)
    assert runner.block == 1  # 20 updates: one per call (about 1% of the run, at least 1)
    seen = []
    states = runner.init(batched_keys(0, NUM_SEEDS))
    states, m1 = runner.run(states, 3, sink=lambda m: seen.append(m["update"].tolist()))
    # other test files in this process may have run this config with another seed count (one executable each)
    executables = runner.compiled_count()
    states, m2 = runner.run(states, 2, sink=lambda m: seen.append(m["update"].tolist()))
    assert seen == [[u] * NUM_SEEDS for u in range(1, 6)]
    assert m1["episode_return"].shape == (3, NUM_SEEDS) and m2["update"].tolist() == [[4, 4], [5, 5]]
    assert np.all(m2["env_steps"] == m2["update"] * TINY.batch_size)
    assert runner.compiled_count() == executables  # chunk lengths 3 and 2 share one executable
    states, m0 = runner.run(states, 0)
    assert m0 == {} and int(states.updates_done[0]) == 5


@pytest.mark.timeout(120)
def test_chunks_are_bit_identical_to_one_long_chunk():
    runner = chunk_runner(TINY)
    once, metrics_once = runner.run(runner.init(batched_keys(0, NUM_SEEDS)), 5)
    chunked, m_a = runner.run(runner.init(batched_keys(0, NUM_SEEDS)), 2)
    chunked, m_b = runner.run(chunked, 3)
    for a, b in zip(jax.tree.leaves(once.params), jax.tree.leaves(chunked.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    joined = {k: np.concatenate([m_a[k], m_b[k]]) for k in m_a}
    for k in metrics_once:
        np.testing.assert_array_equal(metrics_once[k], joined[k])


@pytest.mark.timeout(120)
def test_blocks_of_several_updates_give_the_same_bits_and_every_row():
    from purejaxppo.runs.progress import ChunkRunner

    one, blocks = chunk_runner(TINY), ChunkRunner(TINY)
    blocks.block = 2  # before its first trace: 5 updates are 3 calls (2, 2, 1)
    seen = []
    a, ma = one.run(one.init(batched_keys(0, NUM_SEEDS)), 5)
    b, mb = blocks.run(blocks.init(batched_keys(0, NUM_SEEDS)), 5, sink=lambda m: seen.append(int(m["update"][0])))
    assert seen == [1, 2, 3, 4, 5] and mb["update"][:, 0].tolist() == [1, 2, 3, 4, 5]
    for k in ma:
        np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.timeout(60)
def test_make_train_and_the_chunk_program_have_no_host_callbacks():
    pure = _primitive_names(jax.make_jaxpr(make_train(TINY))(jax.random.key(0)))
    assert "while" in pure or "scan" in pure  # the walker does reach inside the training loop
    assert not {n for n in pure if "callback" in n}, "make_train must not contain host callbacks"
    runner = chunk_runner(TINY)
    abstract = jax.eval_shape(runner.init, batched_keys(0, NUM_SEEDS))
    chunk = _primitive_names(jax.make_jaxpr(runner._chunk_fn)(abstract, np.int32(1)))
    assert "while" in chunk and not {n for n in chunk if "callback" in n}


def test_progress_bar_shows_steps_and_return_across_seeds():
    out = io.StringIO()
    bar = ProgressBar(total_steps=640, enabled=True, file=out, desc="CartPole-v1")
    for u in (1, 2):
        bar({"update": np.array([u, u]), "env_steps": np.array([64 * u] * 2),
             "episode_return": np.array([10.0 * u, np.nan])})
    bar.close()
    text = out.getvalue()
    assert "CartPole-v1" in text and "128/640" in text and "return=20" in text and "update=2" in text


def test_progress_off_when_quiet_or_not_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress_enabled(False, Tty()) and not progress_enabled(True, Tty())
    assert not progress_enabled(False, io.StringIO())
    assert return_summary(np.array([np.nan, np.nan])) == "n/a"
    assert return_summary(np.array([1.0, 3.0])) == "2±1"
    assert stack_metrics([]) == {}


def test_progress_bar_says_its_rate_is_per_seed():
    out = io.StringIO()
    bar = ProgressBar(total_steps=640, enabled=True, file=out, desc="CartPole-v1 x2")
    for u in (1, 2, 3):
        bar({"update": np.array([u, u]), "env_steps": np.array([64 * u] * 2), "episode_return": np.array([1.0, 2.0])})
    bar.close()
    text = out.getvalue()
    assert "steps per seed" in text and "steps/s per seed" in text


@pytest.mark.parametrize("desc", ["CartPole-v1", "CartPole-v1 x8", "Breakout-MinAtar PBT x16"])
def test_progress_bar_keeps_the_return_at_80_columns(desc):
    """A line wider than the terminal loses its end: at 80 columns the return (mean±std over seeds) still shows."""
    out = io.StringIO()
    bar = ProgressBar(total_steps=10_000_000, enabled=True, file=out, desc=desc, ncols=80)
    for u in (1, 2, 3):
        bar({"update": np.array([u] * 8), "env_steps": np.array([512 * u] * 8),
             "episode_return": np.linspace(-1234.5, -200.25, 8)})
    bar.close()
    line = out.getvalue().rstrip("\n").split("\r")[-1]
    assert len(line) == 80 and line.startswith(desc)
    assert f"return={return_summary(np.linspace(-1234.5, -200.25, 8))}" in line, line


def test_device_description_names_the_backend_and_device():
    text = device_description()
    assert text.startswith(f"{jax.default_backend()} (") and text.endswith(")")
    if jax.default_backend() == "cpu":
        assert str(jax.devices()[0]) in text


@pytest.mark.timeout(120)
def test_compile_is_timed_apart_and_changes_nothing():
    runner = chunk_runner(TINY)
    states = runner.init(batched_keys(0, NUM_SEEDS))
    compiled, seconds = runner.compile(states)
    executables = runner.compiled_count()  # 1 for this seed count (others: other files in this process)
    assert seconds >= 0 and int(compiled.updates_done[0]) == 0
    again, _ = runner.compile(compiled)
    assert runner.compiled_count() == executables  # zero updates, the same executable as every chunk
    reference, _ = runner.run(runner.init(batched_keys(0, NUM_SEEDS)), 2)
    after, _ = runner.run(again, 2)
    for a, b in zip(jax.tree.leaves(reference.params), jax.tree.leaves(after.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
