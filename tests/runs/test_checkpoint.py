"""Checkpoints and resume: a stopped or SIGKILL-ed run resumes to bit-identical parameters and metrics; corrupt,
truncated and mismatched checkpoints are refused with a clear message; saves are atomic; `load_policy` works from a
checkpoint alone.

Uses the same tiny CartPole config with 2 seeds as tests/test_cli.py (one compile of the chunk program per process).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from cli_helpers import TRAIN

import purejaxppo
from purejaxppo import cli, load_policy
from purejaxppo.runs.checkpoint import FORMAT_VERSION, Checkpointer, CheckpointError, RunLayout
from purejaxppo.runs.policy import restore_run_state
from purejaxppo.runs.progress import chunk_runner


def train(*argv) -> None:
    assert cli.main([*TRAIN, *map(str, argv)]) == 0


def final_state(run_dir: Path):
    state, meta, _ = restore_run_state(run_dir)
    assert meta["update"] == 20
    return state


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical final training state (every leaf) and identical metrics.jsonl."""
    sa, sb = final_state(a), final_state(b)
    la, lb = jax.tree_util.tree_leaves_with_path(sa), jax.tree_util.tree_leaves_with_path(sb)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: 20 updates in chunks of 5."""
    run_dir = tmp_path_factory.mktemp("ckpt") / "reference"
    train("--checkpoint-every", 5, "--logdir", run_dir)
    return run_dir


@pytest.mark.timeout(180)
def test_stop_and_resume_is_bit_identical(reference, tmp_path, capsys):
    run_dir = tmp_path / "stopped"
    runner = chunk_runner(cli.requested_config(cli.parse(TRAIN)))
    executables = runner.compiled_count()  # the reference's (and other files' seed counts in this process)
    train("--checkpoint-every", 5, "--logdir", run_dir, "--stop-after", 10)
    assert "stopped at update 10 of 20" in capsys.readouterr().out
    assert not json.loads((run_dir / "summary.json").read_text())["complete"]
    # A crash after the metrics of a chunk were written but before its checkpoint: those lines must be dropped.
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(lines[-1].replace('"update": 10', '"update": 11') + '{"update": 12, "se')  # + a partial line
    train("--resume", run_dir)
    assert_same_run(reference, run_dir)
    assert runner.compiled_count() == executables  # fresh, stopped and resumed runs share one executable


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_sigkill_mid_run_then_resume_reaches_the_same_parameters(reference, tmp_path):
    """Kill -9 a real training process once its first checkpoint exists; resuming loses at most one interval and
    ends bit-identical to the uninterrupted run (which used another checkpoint interval: one compiled program)."""
    run_dir = tmp_path / "killed"
    argv = [sys.executable, "-m", "purejaxppo", *TRAIN, "--checkpoint-every", "2", "--logdir", str(run_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    first = run_dir / "checkpoints" / "2"
    deadline = time.time() + 150
    while not first.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err.decode()[-2000:]}"
    with Checkpointer(run_dir / "checkpoints", read_only=True) as ckpt:
        killed_at = ckpt.latest_step()
    assert killed_at is not None and killed_at < 20
    assert not (run_dir / "summary.json").exists()
    assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    assert_same_run(reference, run_dir)


@pytest.mark.timeout(120)
def test_corrupt_and_truncated_checkpoints_are_refused(reference, tmp_path, capsys):
    def fresh_copy(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(reference, copy)
        (copy / "summary.json").unlink()
        shutil.rmtree(copy / "checkpoints" / "15")  # no intact older checkpoint to fall back to (tests/test_faults.py)
        return copy

    # Flipped bytes in the largest array file.
    flipped = fresh_copy("flipped")
    blob = max((p for p in (flipped / "checkpoints" / "20" / "state").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
    blob.write_bytes(bytes(data))
    # A truncated checkpoint: its array store is gone.
    truncated = fresh_copy("truncated")
    shutil.rmtree(truncated / "checkpoints" / "20" / "state")
    # Garbage metadata.
    garbled = fresh_copy("garbled")
    (garbled / "checkpoints" / "20" / "meta" / "metadata").write_text("{not json")
    for run_dir in (flipped, truncated, garbled):
        for argv in (["train", "--resume", run_dir, "--quiet"], ["eval", run_dir, "--episodes", "1"]):
            code = cli.main([str(a) for a in argv])
            _out, err = capsys.readouterr()
            assert code == 2, (run_dir.name, argv[0], err)
            assert err.startswith("error: checkpoint ") and "corrupt" in err and err.count("\n") == 1, err
        assert not (run_dir / "summary.json").exists()  # never a silent start


@pytest.mark.timeout(120)
def test_mismatched_checkpoints_are_refused(reference, tmp_path, capsys):
    # Another version of purejaxppo wrote it.
    other_version = tmp_path / "other_version"
    shutil.copytree(reference, other_version)
    meta_file = other_version / "checkpoints" / "20" / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "purejaxppo_version": "0.0.1"}))
    assert cli.main(["eval", str(other_version)]) == 2
    assert "written by purejaxppo 0.0.1" in capsys.readouterr().err

    # Resuming with another config: refused before anything is restored.
    assert cli.main(["train", "--resume", str(reference), "--learning-rate", "1e-3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "learning_rate" in err

    # The run directory says one config, its checkpoints hold another.
    swapped = tmp_path / "swapped"
    shutil.copytree(reference, swapped)
    config = json.loads((swapped / "config.json").read_text())
    (swapped / "config.json").write_text(json.dumps({**config, "num_envs": 8}))
    assert cli.main(["train", "--resume", str(swapped), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "belongs to a different run" in err and "num_envs: 4 (checkpoint) vs 8 (this run)" in err

    # Another seed count asked for.
    assert cli.main(["train", "--resume", str(reference), "--num-seeds", "3", "--quiet"]) == 2
    assert "--num-seeds 2, not 3" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_a_checkpoint_written_by_version_0_1_0_is_refused_naming_the_version(tmp_path, capsys):
    """tests/data/run_v0.1.0 was written by purejaxppo 0.1.0 (commit feee724), whose training state had another
    layout (format 1). Loading, evaluating or resuming it gives one clear line naming both versions."""
    run_dir = tmp_path / "old"
    shutil.copytree(Path(__file__).parents[1] / "data" / "run_v0.1.0", run_dir)
    expected = (f"written by purejaxppo 0.1.0 (checkpoint format 1); this is purejaxppo {purejaxppo.__version__} "
                f"(format {FORMAT_VERSION})")
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_policy(run_dir)
    for argv in (["eval", str(run_dir)], ["train", "--resume", str(run_dir), "--quiet"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err


def test_saves_are_atomic_and_interrupted_saves_are_ignored(tmp_path, monkeypatch):
    """orbax writes into a temporary directory and renames it when complete: a save that dies before the rename
    leaves no step directory, and the next Checkpointer ignores (and removes) the leftovers."""
    from orbax.checkpoint._src.path import atomicity

    state = {"params": jax.numpy.arange(6.0).reshape(2, 3), "key": jax.random.split(jax.random.key(1), 2),
             "updates_done": jax.numpy.array([3, 3], jax.numpy.int32)}
    layout = RunLayout(cli.requested_config(cli.parse(["train"])), 2, 0)
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.save(state, layout) == 3

    async def die(self, *args, **kwargs):
        raise RuntimeError("killed before the rename")

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", die)
    with Checkpointer(tmp_path) as ckpt, pytest.raises(RuntimeError, match="killed before the rename"):
        ckpt.save({**state, "updates_done": state["updates_done"] + 1}, layout)
    monkeypatch.undo()
    assert not (tmp_path / "4").exists() and any("tmp" in p.name for p in tmp_path.iterdir())
    with Checkpointer(tmp_path) as ckpt:  # cleans up the interrupted save
        assert ckpt.steps() == [3]
        restored, meta = ckpt.restore(jax.eval_shape(lambda: state), layout)
    assert not any("tmp" in p.name for p in tmp_path.iterdir())
    assert meta["update"] == 3
    np.testing.assert_array_equal(restored["params"], state["params"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
    with Checkpointer(tmp_path) as ckpt, pytest.raises(CheckpointError, match="no checkpoint for update 9"):
        ckpt.read_meta(9)


@pytest.mark.timeout(120)
def test_load_policy_from_a_checkpoint_alone(reference, tmp_path):
    only = tmp_path / "only_checkpoint"
    shutil.copytree(reference / "checkpoints" / "20", only / "20")  # no config.json, run.json, metrics
    loaded = load_policy(only / "20", seed_index=1)
    assert loaded.update == 20 and loaded.config.env_name == "CartPole-v1"
    obs, _ = loaded.setup.env.reset(jax.random.split(jax.random.key(0), 2))
    action = loaded.policy(obs[0], jax.random.key(1))
    assert action.shape == () and int(action) in (0, 1)
    assert loaded.policy(obs).shape == (2,)
    carry, actions = loaded.act(loaded.initial_carry(2), obs)  # the stateful form every policy has
    assert carry == () and np.array_equal(np.asarray(actions), np.asarray(loaded.policy(obs)))
    returns = loaded.evaluate(3, jax.random.key(2))
    assert returns.shape == (3,) and bool(np.all(np.asarray(returns) >= 1))
    with pytest.raises(ValueError, match=r"seed_index must be in \[0, 2\)"):
        load_policy(only, seed_index=2)


@pytest.mark.timeout(120)
def test_load_policy_of_a_recurrent_run(tmp_path):
    """One load_policy for every policy: a GRU acts through `act`, carrying its memory; the stateless `policy` form
    points there instead of silently dropping the memory."""
    run_dir = tmp_path / "gru"
    assert cli.main(["train", "--num-envs", "4", "--num-steps", "8", "--total-timesteps", "64", "--network", "gru",
                     "--gru-hidden-size", "8", "--hidden-sizes", "8", "--num-minibatches", "2", "--logdir",
                     str(run_dir), "--quiet"]) == 0
    loaded = load_policy(run_dir)
    obs, _ = loaded.setup.env.reset(jax.random.split(jax.random.key(0), 3))
    carry, action = loaded.act(loaded.initial_carry(3), obs, reset=np.ones(3, bool))
    assert carry.shape == (3, 8) and action.shape == (3,)
    again, _ = loaded.act(carry, obs)
    assert not np.allclose(np.asarray(again), np.asarray(carry))  # the memory moves on
    fresh, _ = loaded.act(carry, obs, reset=np.ones(3, bool))  # a reset forgets it
    np.testing.assert_allclose(np.asarray(fresh), np.asarray(carry), rtol=1e-6)
    with pytest.raises(ValueError, match=r"recurrent.*LoadedPolicy.act"):
        loaded.policy(obs)
    assert loaded.evaluate(2, jax.random.key(1)).shape == (2,)
