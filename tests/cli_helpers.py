"""What the command-line tests share (tests/cli/, tests/runs/): the tiny CartPole run they all train, and helpers to
run the command line and read a run directory; and, for the several-process tests (tests/cli/test_hosts.py,
tests/scale/test_distributed.py), a free port for the coordinator. Importable from any test (pyproject's pytest
``pythonpath``).

The tiny run's chunk program is compiled once per process (the runner cache of `purejaxppo.runs.progress`), so every
file that trains it pays that compile once.
"""

from __future__ import annotations

import socket
from pathlib import Path

from purejaxppo import cli
from purejaxppo.runs import logs

TINY = ["--num-envs", "4", "--num-steps", "16", "--total-timesteps", "1280"]  # 20 updates of 64 steps
TRAIN = ["train", *TINY, "--num-seeds", "2", "--quiet"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a coordinator's address)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``purejaxppo *argv`` run in this process."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The one ``error: ...`` line `err` must be (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def records(run_dir: Path) -> list[dict]:
    """The run's metrics.jsonl, one dict per update and seed."""
    return logs.read_records(run_dir / logs.METRICS_FILE)


def steps(run_dir: Path) -> list[int]:
    """The updates of the run's finalised checkpoints, oldest first."""
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
