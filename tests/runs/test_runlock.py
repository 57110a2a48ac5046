"""`purejaxppo.runs.runlock`: a released lock leaves no file, a file left by a process that died is taken over and reported,
a live holder refuses a second one, and a lock released between another's open and flock is not shared."""

from __future__ import annotations

import os

import pytest

from purejaxppo.runs import runlock
from purejaxppo.runs.runlock import LOCK_FILE, RunLock, RunLockedError

pytestmark = pytest.mark.skipif(runlock.fcntl is None, reason="the lock is a no-op without fcntl (Windows)")


def test_a_released_lock_leaves_no_file_and_reports_nothing(tmp_path):
    for _ in range(2):  # a stop, then a resume
        with RunLock(tmp_path) as lock:
            assert lock.stale_holder is None
            assert f"pid {os.getpid()} " in (tmp_path / LOCK_FILE).read_text()
        assert not (tmp_path / LOCK_FILE).exists()


def test_a_live_holder_refuses_a_second_lock(tmp_path):
    with RunLock(tmp_path):  # flock conflicts between two opens of the file, in one process too
        with pytest.raises(RunLockedError, match=f"in use by another training process \\(pid {os.getpid()} "):
            RunLock(tmp_path).acquire()
        assert (tmp_path / LOCK_FILE).exists()  # the refused one removed nothing
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_file_left_by_a_process_that_died_is_taken_over(tmp_path):
    left = "pid 999999 on elsewhere since 2020-01-01T00:00:00"
    (tmp_path / LOCK_FILE).write_text(left + "\n")  # as a killed holder leaves it: its text, no flock
    with RunLock(tmp_path) as lock:
        assert lock.stale_holder == left
        assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")  # no NULs before it
    assert not (tmp_path / LOCK_FILE).exists()


def test_takeovers_in_a_row_keep_the_file_one_line(tmp_path):
    """A takeover reads the stale holder, then writes its own line at the start: after two killed holders in a row the
    file was NULs (a hole) followed by the pid, and the pid fell out of the messages once the NULs passed 512 bytes."""
    lock_file = tmp_path / LOCK_FILE
    lock_file.write_text("pid 999999 on elsewhere since 2020-01-01T00:00:00\n")
    for _ in range(3):  # each holder "killed": its file left behind as it was
        lock = RunLock(tmp_path).acquire()
        text = lock_file.read_text()
        os.close(lock._fd)  # drop the flock without the clean release that removes the file
        lock._fd = None
        assert text.startswith(f"pid {os.getpid()} ") and text.count("\n") == 1 and "\x00" not in text, repr(text)
    with RunLock(tmp_path) as lock:
        assert lock.stale_holder.startswith(f"pid {os.getpid()} ")


def test_a_lock_released_between_open_and_flock_is_not_shared(tmp_path, monkeypatch):
    """The holder removes the file while releasing: a process that opened it just before got the old file's flock,
    and must lock the file at the path instead, or two processes would each hold "the" lock."""
    holder = RunLock(tmp_path).acquire()
    real_flock = runlock.fcntl.flock
    calls = []

    def flock_after_the_holder_released(fd, op):
        if not calls:
            holder.release()  # between this acquire's open and its flock
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(runlock.fcntl, "flock", flock_after_the_holder_released)
    with RunLock(tmp_path) as lock:
        assert len(calls) == 2 and lock.stale_holder is None
        assert (tmp_path / LOCK_FILE).exists()
        monkeypatch.setattr(runlock.fcntl, "flock", real_flock)
        with pytest.raises(RunLockedError):
            RunLock(tmp_path).acquire()
