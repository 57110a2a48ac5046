"""One training process per run directory: an advisory lock on ``<run>/.lock``.

`RunLock` holds an exclusive `fcntl.flock` on the file for as long as the process trains, and writes its pid and host
into it. The kernel releases the lock when the process ends in any way (SIGKILL included), so a lock file left behind
by a killed process is stale by construction: the next `acquire` takes it over. A second live process is refused with
`RunLockedError`, naming the holder's pid. (POSIX only; on Windows the lock is a no-op.)
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"


class RunLockedError(ValueError):
    """The run directory is in use by another live process."""


class RunLock:
    """``with RunLock(run_dir):`` trains with the directory locked; raises `RunLockedError` if another process has it."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.stale_holder: str | None = None  # what a stale lock file said, when one was taken over

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{self.path.parent} is in use by another training process ({holder or 'pid unknown'}); "
                    "wait for it to finish or stop it first") from None
        self.stale_holder = _read(fd) or None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
                 .encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (a stale file is harmless)
            self._fd = None

    def __enter__(self) -> RunLock:  # noqa: PYI034
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode(errors="replace").strip()
