"""Faults and bad input on the command line: each gives one ``error:`` line with the right exit status, creates no
half-made run directory and loses nothing already saved.

Divergence (non-finite training), file-system faults (a file where a directory should be, a read-only or full file
system, part-way failed writes), a corrupt newest checkpoint, two processes on one run, resuming a finished run, bad
seeds and missing extras. Training uses the tiny 2-seed CartPole config of tests/test_cli.py and
tests/test_checkpoint.py (its chunk program compiles once per process); the divergence tests add one more.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from cli_helpers import TRAIN, one_error_line, records, run_cli, steps

from purejaxppo import PPOConfig, cli
from purejaxppo.runs import logs
from purejaxppo.runs.checkpoint import Checkpointer, RunLayout
from purejaxppo.runs.policy import restore_run_state
from purejaxppo.runs.progress import ChunkRunner
from purejaxppo.runs.runlock import RunLock, RunLockedError

DIVERGING = ["--learning-rate", "1e30", "--max-grad-norm", "1e30"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: 20 updates in chunks of 5 (checkpoints kept: 15 and 20)."""
    run_dir = tmp_path_factory.mktemp("faults") / "reference"
    assert cli.main([*TRAIN, "--checkpoint-every", "5", "--logdir", str(run_dir)]) == 0
    return run_dir


# ------------------------------------------------------------------------------------------------ 1. divergence
@pytest.mark.timeout(180)
def test_diverging_training_stops_with_an_error_and_keeps_the_last_finite_checkpoint(capsys, tmp_path, reference):
    assert all(r["nonfinite"] == 0 for r in records(reference))  # a healthy run counts none

    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, *TRAIN, *DIVERGING, "--checkpoint-every", "1", "--logdir", run_dir)
    line = one_error_line(err)
    assert code == cli.EXIT_DIVERGED == 3
    assert "training diverged at update 1 " in line and "non-finite" in line and "grad_norm" in line
    assert "no checkpoint was saved before it" in line
    assert steps(run_dir) == []  # the non-finite state is never saved
    rows = records(run_dir)
    assert [r["update"] for r in rows] == [1, 1] and all(r["nonfinite"] > 0 for r in rows)
    # the episodes of update 1 were played by the initial, finite policy: their returns stay finite
    assert all(r["episodes_finished"] > 0 and r["episode_return"] > 0 for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["diverged"].startswith("training diverged at update 1") and summary["checkpoint"] is None
    assert summary["final_episode_return"]["mean"] > 0 and not summary["complete"]


@pytest.mark.timeout(180)
def test_divergence_after_a_checkpoint_names_that_checkpoint(capsys, tmp_path, reference, monkeypatch):
    real_run, calls = ChunkRunner.run, []

    def run_diverging_in_chunk_3(self, states, n, sink=None):  # as if update 13 of seed 1 went non-finite
        states, metrics = real_run(self, states, n, sink)
        calls.append(n)
        if len(calls) == 3:
            metrics = {k: np.array(v) for k, v in metrics.items()}
            metrics["nonfinite"][2, 1], metrics["policy_loss"][2, 1] = 7, np.nan
        return states, metrics

    monkeypatch.setattr(ChunkRunner, "run", run_diverging_in_chunk_3)
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, *TRAIN, "--checkpoint-every", "5", "--logdir", run_dir)
    line = one_error_line(err)
    assert code == 3
    assert "training diverged at update 13 (seed 1): non-finite policy_loss and 7 non-finite values" in line
    assert f"the last finite checkpoint is {run_dir.resolve() / 'checkpoints' / '10'} (update 10)" in line
    assert steps(run_dir) == [5, 10] and [r["update"] for r in records(run_dir)][-1] == 13


def test_eval_refuses_a_checkpoint_with_non_finite_parameters(capsys, tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
    state, meta, _ = restore_run_state(reference)
    layout = RunLayout(PPOConfig.from_dict(meta["config"]), meta["num_seeds"], meta["seed"])
    with Checkpointer(run_dir / "checkpoints") as ckpt:
        ckpt.save(state.replace(params=jax.tree.map(lambda x: x * np.nan, state.params)), layout)
    code, _, err = run_cli(capsys, "eval", run_dir, "--episodes", "2")
    assert code == 2 and "non-finite parameter value(s) for seed 0" in one_error_line(err)


def test_summary_says_episodes_finished_when_their_returns_are_not_finite():
    summary = {"env_name": "Pendulum-v1", "num_seeds": 1, "env_steps_per_seed": 100, "updates": 1,
               "wall_seconds": 1.0, "episodes_finished": 16,
               "final_episode_return": {"mean": None, "std": None, "per_seed": [None]}}
    assert "16 episodes finished, none with a finite return" in cli.summary_line(summary, Path("r"))
    assert "no episode finished" in cli.summary_line({**summary, "episodes_finished": 0}, Path("r"))


# ---------------------------------------------------------------------------------------- 3. file-system faults
def test_logdir_that_is_a_file_or_under_a_file_is_refused(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    for logdir, expected in ((a_file, "is a file"), (a_file / "run", f"lies under the file {a_file}")):
        code, _, err = run_cli(capsys, *TRAIN, "--logdir", logdir)
        assert code == 2 and expected in one_error_line(err)
    assert a_file.read_text() == "mine"


def test_a_run_killed_while_its_directory_was_created_can_be_started_again(tmp_path):
    """Killed between config.json and run.json: --resume cannot read the directory (no run.json), so a new run into it
    must not be refused as "already holds a run"; anything more than that is still refused."""
    from purejaxppo.cli.args import UsageError
    from purejaxppo.cli.plans import check_new_run_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / logs.CONFIG_FILE).write_text("{}")
    (run_dir / (logs.RUN_FILE + ".tmp")).write_text("{")
    check_new_run_dir(run_dir)  # taken over
    with pytest.raises(UsageError, match="is not empty: a sweep writes into a new directory"):
        check_new_run_dir(run_dir, resumable=False)  # a sweep's directory is never a run's
    for other in (logs.RUN_FILE, logs.METRICS_FILE):
        (run_dir / other).write_text("{}")
        with pytest.raises(UsageError, match="already holds a run: continue it with --resume"):
            check_new_run_dir(run_dir)
        (run_dir / other).unlink()


def test_a_run_directory_that_cannot_be_written_is_removed_again(capsys, tmp_path, monkeypatch):
    def read_only(path, obj):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(logs, "write_json", read_only)
    logdir = tmp_path / "a" / "b" / "run"
    code, _, err = run_cli(capsys, *TRAIN, "--logdir", logdir)
    line = one_error_line(err)
    assert code == 2 and "cannot create the run directory" in line and "Read-only file system" in line
    assert list(tmp_path.iterdir()) == []  # every directory it made is gone


def test_plot_to_an_unwritable_place_is_one_error_line(capsys, tmp_path, reference, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = run_cli(capsys, "plot", reference, "--out", a_file / "curves.png")
    assert code == 2 and "cannot write the plot to" in one_error_line(err)

    from matplotlib.figure import Figure

    def read_only(self, fname, **kwargs):
        open(fname, "wb").close()  # opened, then the write fails: no empty file may stay
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Figure, "savefig", read_only)
    out = tmp_path / "curves.png"
    code, _, err = run_cli(capsys, "plot", reference, "--out", out)
    assert code == 2 and "Read-only file system" in one_error_line(err) and not out.exists()


def test_resume_with_a_file_where_the_checkpoints_belong_is_refused(capsys, tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
    (run_dir / "checkpoints").write_text("not a directory")
    code, _, err = run_cli(capsys, "train", "--resume", run_dir)
    assert code == 2 and "checkpoints is a file" in one_error_line(err)


class FullDisk:
    """`open` for purejaxppo.runs.logs whose appends write half their bytes, then fail as a full disk does."""

    def __init__(self, fail_after: int):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)  # noqa: SIM115
        if "a" not in mode:
            return f
        self.calls += 1
        if self.calls <= self.fail_after:
            return f

        class Half:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                f.write(data[: len(data) // 2])
                f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return Half()


@pytest.mark.timeout(180)
def test_disk_full_during_a_metrics_append_loses_nothing(capsys, tmp_path, reference, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(logs, "open", FullDisk(fail_after=2), raising=False)  # chunks 1-2 written, chunk 3 fails
    code, _, err = run_cli(capsys, *TRAIN, "--checkpoint-every", "5", "--logdir", run_dir)
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and f"--resume {run_dir}" in line
    assert [r["update"] for r in records(run_dir)][-1] == 10  # no half line, nothing of the failed chunk
    assert (run_dir / "metrics.jsonl").read_text().endswith("\n")
    assert steps(run_dir) == [5, 10]

    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()


@pytest.mark.timeout(180)
def test_a_failed_checkpoint_save_is_one_line_and_keeps_the_previous_checkpoint(capsys, tmp_path, reference,
                                                                             monkeypatch):
    import orbax.checkpoint as ocp

    run_dir = tmp_path / "run"
    real_save, calls = ocp.CheckpointManager.save, []

    def failing_save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 3:  # the third save writes part of its files, then the disk is full
            (Path(self.directory) / f"{step}.orbax-checkpoint-tmp-1").mkdir()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
    code, _, err = run_cli(capsys, *TRAIN, "--checkpoint-every", "5", "--logdir", run_dir)
    line = one_error_line(err)
    assert code == 2 and "saving checkpoint" in line and "No space left on device" in line
    assert "intact (updates [5, 10])" in line and steps(run_dir) == [5, 10]

    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 0  # metrics of update 11-15 trimmed, redone
    assert (run_dir / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_a_really_full_disk_gives_one_line_and_the_run_resumes(tmp_path, reference):
    """A small tmpfs (where this machine allows mounting one): training fills it, in a real process."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "400k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        run_dir = disk / "run"
        argv = [sys.executable, "-m", "purejaxppo", *TRAIN, "--checkpoint-every", "1", "--logdir", str(run_dir)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=200)
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = one_error_line(proc.stderr)
        assert "No space left on device" in line or "space" in line.lower(), line
        kept = steps(run_dir)
        assert kept, "the disk filled before the first checkpoint: enlarge the tmpfs"
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = subprocess.run([sys.executable, "-m", "purejaxppo", "train", "--resume", str(run_dir), "--quiet"],
                                 capture_output=True, text=True, timeout=200)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert [(r["update"], r["seed"]) for r in records(run_dir)] == [(u, s) for u in range(1, 21) for s in (0, 1)]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# ---------------------------------------------------------------------------------------- 5. corrupt newest
@pytest.mark.timeout(180)
def test_resume_falls_back_from_a_corrupt_newest_checkpoint(capsys, tmp_path, reference):
    run_dir = tmp_path / "run"
    assert cli.main([*TRAIN, "--checkpoint-every", "5", "--stop-after", "15", "--logdir", str(run_dir)]) == 0
    assert steps(run_dir) == [10, 15]
    for f in (run_dir / "checkpoints" / "15" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(b"\0" * f.stat().st_size)  # same size, wrong bytes
    code, out, err = run_cli(capsys, "train", "--resume", run_dir)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "checkpoints/15 is corrupt" in warning[0]
    assert "falling back to the checkpoint of update 10" in warning[0]
    assert "Resuming" in out and "from update 10 of 20" in out
    assert (run_dir / "checkpoints" / "15.corrupt").is_dir() and steps(run_dir) == [15, 20]
    # metrics.jsonl was trimmed to update 10 and redone: identical to the uninterrupted run, no duplicates
    assert (run_dir / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()


# ------------------------------------------------------------------------------------------- 6. two processes
HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from purejaxppo.runs.runlock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_second_process_is_refused_and_a_killed_holders_lock_is_stale(capsys, tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "20")  # a run with work left to do
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} "):
            RunLock(run_dir).acquire()
        code, _, err = run_cli(capsys, "train", "--resume", run_dir)
        line = one_error_line(err)
        assert code == 2 and "in use by another training process" in line and f"pid {holder.pid}" in line
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind
        holder.wait()
    assert f"pid {holder.pid}" in (run_dir / ".lock").read_text()
    with RunLock(run_dir) as lock:
        assert f"pid {holder.pid}" in lock.stale_holder
        assert f"pid {os.getpid()}" in (run_dir / ".lock").read_text()
    assert not (run_dir / ".lock").exists()  # released: removed


# ------------------------------------------------------------------------------------ 7. a finished run
def test_resuming_a_finished_run_changes_nothing(capsys, tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}
    time.sleep(0.01)
    code, out, err = run_cli(capsys, "train", "--resume", run_dir)
    assert code == 0 and err == ""
    assert "already at update 20 of 20 (complete): nothing to do" in out and "compiling" not in out
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


def test_a_run_killed_before_its_summary_gets_it_on_resuming(capsys, tmp_path, reference):
    """Killed after its last checkpoint and before summary.json (or with the summary of an earlier --stop-after):
    resuming writes the summary of the finished run, without compiling or training, and then has nothing to do."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    expected = json.loads((run_dir / logs.SUMMARY_FILE).read_text())
    for stale in (None, {**expected, "updates": 8, "complete": False}):
        if stale is None:
            (run_dir / logs.SUMMARY_FILE).unlink()
        else:
            (run_dir / logs.SUMMARY_FILE).write_text(json.dumps(stale))
        code, out, err = run_cli(capsys, "train", "--resume", run_dir)
        assert code == 0 and err == "" and "nothing to do" not in out and "compiling..." not in out, out
        summary = json.loads((run_dir / logs.SUMMARY_FILE).read_text())
        assert summary["updates"] == 20 and summary["complete"]
        assert summary["final_episode_return"] == expected["final_episode_return"]  # read from the run's metrics
    code, out, _ = run_cli(capsys, "train", "--resume", run_dir)
    assert code == 0 and "(complete): nothing to do" in out


# ------------------------------------------------------------------------------------------- 9, 10. flags
@pytest.mark.parametrize("seed", ["-1", str(2**40), str(2**32)])
def test_seed_outside_jax_range_is_refused(capsys, tmp_path, seed):
    code, _, err = run_cli(capsys, *TRAIN, "--seed", seed, "--logdir", tmp_path / "run")
    assert code == 2 and "--seed must be an integer in [0, 2**32 - 1]" in one_error_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, module", [("--tensorboard", "tensorboardX"), ("--wandb", "wandb")])
def test_a_missing_extra_is_reported_before_anything_is_created(capsys, tmp_path, monkeypatch, flag, module):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    logdir = tmp_path / "run"
    code, _, err = run_cli(capsys, *TRAIN, flag, "--logdir", logdir)
    assert code == 2 and f"{flag} needs {module}: pip install" in one_error_line(err)
    assert not logdir.exists()


# -------------------------------------------------------------------------------- 2, 4. env_kwargs and the budget
@pytest.mark.parametrize("key, value, expected", [
    ("bogus", 1, "PPOConfig.env_kwargs has unknown key(s) ['bogus'] for Catch-bsuite; it takes ['rows', 'columns']"),
    ("rows", 0, "PPOConfig.env_kwargs {'rows': 0} (key(s) ['rows']) do not give a working Catch-bsuite"),
])
def test_bad_env_kwargs_from_a_flag_or_a_toml_file_are_one_line_and_create_nothing(capsys, tmp_path, key, value,
                                                                                 expected):
    toml = tmp_path / "catch.toml"
    toml.write_text(f'env_name = "Catch-bsuite"\n\n[env_kwargs]\n{key} = {value}\n')
    for source in (["--env", "Catch-bsuite", "--env-kwargs", json.dumps({key: value})], ["--config-file", toml]):
        code, _, err = run_cli(capsys, "train", *source, "--logdir", tmp_path / "run", "--quiet")
        assert code == 2 and expected in one_error_line(err)
        assert not (tmp_path / "run").exists()


def test_a_budget_past_int32_is_refused_naming_the_limit(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--total-timesteps", "1e13", "--logdir", tmp_path / "run")
    assert code == 2 and "total_timesteps must be <= 2**31 - 1 = 2147483647 per seed" in one_error_line(err)
    assert not (tmp_path / "run").exists()
