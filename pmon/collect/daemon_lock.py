"""One daemon per database: an flock on ``<db>.collect.lock`` holding the daemon's pid.

An flock dies with its process, so a killed daemon never leaves a stale lock
that needs cleaning by hand; the pid in the file is only for the message.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from pmon.store.schema import StoreError

RETRY_SECONDS = 0.5
"""How long a starting daemon retries a held lock before refusing (a probe holds it for microseconds)."""


class AlreadyRunning(RuntimeError):
    """Another daemon holds the lock; ``pid`` is the one it wrote (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"{path}: already collected by a running daemon ({who}); stop it first")
        self.pid = pid


def lock_path(db_path: Path) -> Path:
    """Where the lock of a database lives."""
    return db_path.with_name(db_path.name + ".collect.lock")


def running_daemon(db_path: Path) -> int | None:
    """The pid of the daemon collecting into ``db_path``, or None when there is none."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


class DaemonLock:
    """Held for the daemon's lifetime; released by ``release()`` or by the process ending."""

    def __init__(self, db_path: Path) -> None:
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``AlreadyRunning`` naming the holder's pid (``StoreError`` for a bad path)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the daemon's lock file: {exc.strerror or exc}") from None
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # `pmon status` probes with a brief shared lock
                    time.sleep(0.01)
                    continue
                pid = _read_pid(fd)
                os.close(fd)
                raise AlreadyRunning(self.path.with_name(self.path.name.removesuffix(".collect.lock")), pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays: deleting it would race with a starting daemon)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AnalysisLease:
    """One analyser per database (``<db>.analysis.lock``): the daemon, or else one host application.

    Two analysers would record every finding twice and close each other's
    alerts; whoever holds this analyses, the others wait (and the daemon wins:
    a host gives the lease up while a daemon runs).
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".analysis.lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this process holds the lease."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lease if free (never waits); True if held now."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lease up."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
