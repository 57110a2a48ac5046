"""Several processes from the command line (--coordinator-address, --num-processes, --process-id): two processes on
this machine train one run of 4 seeds, process 0 writes it alone, and a process that dies stops the other with one
error line within the heartbeat timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import TINY, free_port

from purejaxppo.cli import main
from purejaxppo.scale.processes import EXIT_PEER_LOST, HostSpec, check


def start_processes(args: list[str], port: int, heartbeat: int = 60) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env["JAX_PLATFORMS"] = "cpu"
    return [subprocess.Popen(
        [sys.executable, "-m", "purejaxppo", *args, "--coordinator-address", f"127.0.0.1:{port}",
         "--num-processes", "2", "--process-id", str(i), "--heartbeat-timeout", str(heartbeat)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


def finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            p.kill()
    return out


def records(run) -> dict[tuple[int, int], dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {(r["update"], r["seed"]): r for r in rows}


@pytest.mark.parametrize("spec, match", [
    (HostSpec("127.0.0.1:1234"), "missing --num-processes, --process-id"),
    (HostSpec(None, 2, 0), "missing --coordinator-address"),
    (HostSpec("localhost", 2, 0), "must be HOST:PORT"),
    (HostSpec("127.0.0.1:1234", 2, 2), r"--process-id must be in 0 \.\. 1"),
    (HostSpec("127.0.0.1:1234", 0, 0), "--num-processes must be >= 1"),
    (HostSpec("127.0.0.1:1234", 2, 1, heartbeat_timeout=0), "--heartbeat-timeout must be >= 1"),
])
def test_incomplete_or_inconsistent_flags_name_the_flag(spec, match):
    with pytest.raises(ValueError, match=match):
        check(spec)
    check(HostSpec())  # a lone process
    check(HostSpec(auto=True))  # --distributed: jax finds the rest


def test_the_cli_refuses_a_half_given_group_in_one_line(capsys):
    assert main(["train", *TINY, "--coordinator-address", "127.0.0.1:1"]) == 2
    assert "missing --num-processes, --process-id" in capsys.readouterr().err


def test_distributed_outside_a_cluster_says_what_to_give_instead(capsys, monkeypatch):
    for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(name, raising=False)
    assert main(["sweep", *TINY, "--grid", "learning_rate=1e-3,2e-3", "--distributed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --distributed found no cluster to join") and "--coordinator-address" in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_processes_train_one_run_that_process_zero_writes_and_resume_it(tmp_path):
    """Both exit 0; the one run directory holds all 4 seeds; stopped half-way and resumed by two processes, its episodes
    are those of one process training the 4 seeds straight through (each process trains 2 of them: the losses agree
    to float rounding, vmap over 2 rows against 4)."""
    run, alone = tmp_path / "run", tmp_path / "alone"
    first = ["train", *TINY, "--num-seeds", "4", "--logdir", str(run), "--quiet", "--stop-after", "10"]
    for rc, stdout, stderr in finish(start_processes(first, free_port()), timeout=240):
        assert rc == 0, stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # process 1 wrote nothing anywhere here
    assert {u for u, _ in records(run)} == set(range(1, 11))
    results = finish(start_processes(["train", "--resume", str(run), "--quiet"], free_port()), timeout=240)
    for rc, stdout, stderr in results:
        assert rc == 0, stderr[-2000:]
    assert "x 4 seed(s)" in results[0][1] and "process 0 wrote the run" in results[1][1]
    assert main(["train", *TINY, "--num-seeds", "4", "--logdir", str(alone), "--quiet"]) == 0
    shared, reference = records(run), records(alone)
    assert sorted(shared) == sorted(reference) and {s for _, s in shared} == {0, 1, 2, 3}
    for key, row in reference.items():
        assert shared[key]["episode_return"] == row["episode_return"], key
        np.testing.assert_allclose(shared[key]["value_loss"], row["value_loss"], rtol=1e-3)
    assert json.loads((run / "summary.json").read_text())["complete"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_process_that_dies_stops_the_other_with_one_error_line(tmp_path):
    heartbeat = 10
    args = ["train", "--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "2000000", "--logdir",
            str(tmp_path / "run"), "--quiet"]
    procs = start_processes(args, free_port(), heartbeat)
    try:
        deadline = time.time() + 180
        while not (tmp_path / "run" / "metrics.jsonl").exists():  # both are training
            assert time.time() < deadline and all(p.poll() is None for p in procs), "the run did not start"
            time.sleep(0.5)
        procs[1].kill()
        killed = time.time()
        _, stderr = procs[0].communicate(timeout=heartbeat + 60)
        waited = time.time() - killed
    finally:
        for p in procs:
            p.kill()
    assert procs[0].returncode == EXIT_PEER_LOST, stderr[-2000:]
    assert waited < heartbeat + 30
    assert "error: process 0 of 2: process 1 has shown no sign of life" in stderr and "--resume" in stderr
