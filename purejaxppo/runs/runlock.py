"""One training process per run directory: an advisory lock on ``<run>/.lock``.

`RunLock` holds an exclusive `fcntl.flock` on the file for as long as the process trains, and writes its pid and host
into it. On release it removes the file while still holding the flock (so no other process can have locked that file
meanwhile); a run directory at rest has no ``.lock``. A process that is killed (SIGKILL included) keeps no lock, since
the kernel releases its flock, but leaves its file behind: the next `acquire` takes it over and reports what it said as
`RunLock.stale_holder`. A second live process is refused with `RunLockedError`, naming the holder's pid. (POSIX only; on
Windows the lock is a no-op.)
"""

from __future__ import annotations

import contextlib
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
    """``with RunLock(run_dir):`` trains with the directory locked; raises `RunLockedError` if another process has
    it."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.stale_holder: str | None = None  # what a lock file left by a process that died said, when taken over

    def acquire(self) -> RunLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{self.path.parent} is in use by another training process ({holder or 'pid unknown'}); "
                    "wait for it to finish or stop it first") from None
            if _is_file_at(fd, self.path):
                break
            os.close(fd)  # its holder released it (removed the file) between our open and flock: lock the new one
        # Released locks are removed, so a file with a holder in it was left by a process that did not exit cleanly.
        self.stale_holder = _read(fd) or None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)  # reading the stale holder left the offset at its end: no hole of NULs before us
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
                 .encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then release the lock (closing the file releases the flock)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fcntl is None:  # Windows: no lock is held, and an open file cannot be removed
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            return
        if _is_file_at(fd, self.path):  # ours: while we hold the lock nobody else can have replaced it
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)

    def __enter__(self) -> RunLock:  # noqa: PYI034
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode(errors="replace").strip()


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not removed, not replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
