"""One writer per run folder: a lock file with the writer's pid and host.

``zoo train`` holds :class:`RunLock` on its ``--out`` for as long as it writes there, so two
runs never interleave their ``metrics.jsonl`` or checkpoints. The lock is ``LOCK_FILE`` in the
folder, locked with ``flock`` while its holder lives (the kernel drops the lock of a process
that dies, even of one killed with SIGKILL) and holding ``{"pid", "host", "started", "argv"}``
so a refusal can say who holds it. Taking the lock:

- the file is ``flock``-ed by a live process: refused (:class:`RunLockedError`);
- it names a process on this host that is gone (or a pid now used by another program, told
  apart by its start time): a stale lock, taken over with a ``RuntimeWarning``;
- it names a live process on this host that does not hold the ``flock`` (a file system without
  locks): refused;
- it names another host: refused (this host cannot tell whether that run is alive), saying to
  delete the file if that run has ended.

The lock is released (the file deleted) when the holder leaves the ``with`` block, by an error
too. Locks are advisory: readers (``zoo eval``, ``zoo sample``) do not take them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings

from train.errors import UsageError

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "holder_of"]

LOCK_FILE = "run.lock"

try:
    import fcntl
except ImportError:  # not POSIX: the pid and host alone decide
    fcntl = None


class RunLockedError(UsageError):
    """Another live process writes the run folder (or a lock this host cannot judge)."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is a running process, and the same one that started at ``started``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: it exists
        pass
    except OSError:
        return False
    now = _start_time(pid)
    return started is None or now is None or now == started


def holder_of(directory: str) -> dict | None:
    """What the lock file of ``directory`` says about its holder (``None``: no lock file or
    an unreadable one)."""
    try:
        with open(os.path.join(directory, LOCK_FILE), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _who(info: dict) -> str:
    started = info.get("started")
    when = f" since {started}" if isinstance(started, str) else ""
    return f"pid {info.get('pid')} on host {info.get('host')!r}{when}"


class RunLock:
    """The lock of one run folder (see the module docstring); a context manager.

    Args:
        directory: the run folder; it must exist when :meth:`acquire` is called.
    """

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, LOCK_FILE)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _refuse(self, why: str) -> RunLockedError:
        return RunLockedError(f"the run folder {self.directory!r} is in use: {why}; wait for "
                              f"that run to end or choose another --out (lock file "
                              f"{self.path})")

    def acquire(self) -> RunLock:
        """Take the lock (a no-op when this object holds it already).

        Raises:
            RunLockedError: another writer holds it (the message names its pid and host).
            UsageError: the lock file cannot be created (the folder is not writable).
        """
        if self._fd is not None:
            return self
        for _ in range(10):   # the holder may delete the file between our open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UsageError(f"cannot create the lock file {self.path}: "
                                 f"{e.strerror or e}") from e
            try:
                locked = self._flock(fd)
                if self._same_file(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        else:
            raise self._refuse("its lock file keeps being replaced")
        try:
            self._take_over(fd, locked)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _flock(self, fd: int) -> bool:
        """flock ``fd``: True when locked, False when the file system has no locks."""
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            info = holder_of(self.directory) or {}
            raise self._refuse(f"it is being written by {_who(info)}" if info
                               else "another process holds its lock") from None
        except OSError:   # ENOLCK, EINVAL, ENOTSUP: no locking here
            return False

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _take_over(self, fd: int, locked: bool) -> None:
        raw = os.read(fd, 65536)
        info = None
        if raw.strip():
            try:
                info = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                info = None
            if not isinstance(info, dict):
                warnings.warn(f"the lock file {self.path} was damaged; taking it over",
                              RuntimeWarning, stacklevel=3)
                info = None
        host = socket.gethostname()
        if info is not None:
            pid = info.get("pid")
            pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else -1
            if info.get("host") != host:
                raise self._refuse(f"its lock names {_who(info)}, which this host cannot "
                                   "check; if that run has ended, delete the lock file")
            if pid != os.getpid() and _alive(pid, info.get("start_time")):
                raise self._refuse(f"it is being written by {_who(info)}" + (
                    "" if not locked else " (the lock file names a live process)"))
            warnings.warn(f"taking over the stale lock of {self.directory!r}: {_who(info)} is "
                          "gone (it ended without releasing it)", RuntimeWarning,
                          stacklevel=3)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        mine = {"pid": os.getpid(), "host": host, "started": started,
                "start_time": _start_time(os.getpid()), "argv": list(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode("utf-8"), 0)
        os.fsync(fd)

    def release(self) -> None:
        """Delete the lock file and drop the lock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._same_file(fd):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)
