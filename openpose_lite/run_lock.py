"""One owner per output folder: ``<folder>/.openpose-lite.lock``, taken with ``fcntl.flock`` before a run
writes anything there and held to its end (:func:`folder_lock`); a second run is refused at once
(:class:`FolderLockedError`, naming the holder's PID, host, command and start time).

The kernel drops the lock when its process ends (``kill -9`` included), so a lock is never stale.
The lock file stays (emptied at the end): deleting it would let a waiting run lock the deleted file
while a third locks a new one. Only a regular file of the folder's own is used: a symbolic link, a
second hard link, a FIFO or a device is refused, never opened through or written
(:class:`NotALockFileError`). Without ``fcntl`` (Windows) no lock is taken, with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import Iterator

from openpose_lite.io import file_kind

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "FolderLockedError", "NotALockFileError", "check_unlocked", "folder_lock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".openpose-lite.lock"
# A holder writes who it is right after taking the lock; a refused run reads it, waiting this
# long at most for a holder that has just taken it.
_HOLDER_WAIT_S, _HOLDER_POLL_S = 1.0, 0.02


class FolderLockedError(ValueError):
    """The folder is locked by another live run; ``holder`` is what that run wrote about itself."""

    def __init__(self, message: str, holder: dict) -> None:
        super().__init__(message)
        self.holder = holder


class NotALockFileError(ValueError):
    """What stands at the lock's name is not a lock file a run made (a symbolic link, a hard link, a FIFO ...)."""


# Opening the lock never follows a symbolic link (O_NOFOLLOW) nor waits on a FIFO (O_NONBLOCK).
_OPEN_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _not_a_lock(path: Path, what: str, option: str) -> NotALockFileError:
    return NotALockFileError(f"{path}: is {what}, not a lock file a run made (a run never opens, truncates or writes "
                             f"through it); remove it, or choose another {option}")


def _problem(st: os.stat_result) -> str | None:
    """Why a file of ``st`` (from lstat or fstat) cannot be a run's lock file, in words; None when it can."""
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return file_kind(st.st_mode)
    if st.st_nlink > 1:  # a hard link to a file elsewhere: truncating the lock would empty that file
        return f"a file with {st.st_nlink} hard links"
    return None


def _open_lock(path: Path, flags: int, option: str) -> int:
    """A descriptor of the lock file ``path`` (created with ``os.O_CREAT`` in ``flags``), checked to be a lock
    file of the folder's own: NotALockFileError for a symbolic link, a special file or a file with other hard
    links; FileNotFoundError where there is none and ``flags`` does not create it."""
    with contextlib.suppress(FileNotFoundError):
        problem = _problem(os.lstat(path))  # a device is refused unopened: opening one can act (a tape rewinds)
        if problem:
            raise _not_a_lock(path, problem, option)
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a link put there since the lstat
            raise _not_a_lock(path, "a symbolic link", option) from None
        raise
    problem = _problem(os.fstat(fd))  # what was opened, whatever was checked before
    if problem:
        os.close(fd)
        raise _not_a_lock(path, problem, option)
    return fd


def _read_holder(fd: int) -> dict:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        raw = os.pread(fd, 4096, 0)
        try:
            holder = json.loads(raw.decode("utf-8"))
            if isinstance(holder, dict):
                return holder
        except (UnicodeDecodeError, ValueError, RecursionError):  # half written, or not a holder's
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(_HOLDER_POLL_S)


def _flock(fd: int, mode: int, folder: Path, option: str) -> None:
    """``flock(fd, mode)`` without waiting; FolderLockedError naming the run that holds it."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise
        holder = _read_holder(fd)
        if holder.get("pid"):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
            who = f"PID {holder['pid']} on {holder.get('host', '?')}, {holder.get('run') or 'a run'}, started {since}"
        else:
            who = "a process that has just started"
        raise FolderLockedError(f"{folder}: in use by another run ({who}); wait for it to end, stop it, or choose "
                                f"another {option}", holder) from None


def check_unlocked(folder: str | os.PathLike[str], option: str = "--output-dir") -> None:
    """Refuse a folder whose lock another live run holds, without taking it: FolderLockedError, or
    NotALockFileError where the lock's name holds something else."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None:
        return
    try:
        fd = _open_lock(path, os.O_RDONLY, option)
    except FileNotFoundError:
        return
    try:
        _flock(fd, fcntl.LOCK_SH, Path(folder), option)  # released at once: only whether someone holds it
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], description: str, option: str = "--output-dir") -> Iterator[Path]:
    """Hold ``folder``'s lock (created, with the folder, if missing) for the ``with`` block; ``description``
    says what the run is and ``option`` which option chose the folder, for another run's message."""
    folder = Path(folder)
    if fcntl is None:
        logger.warning("%s: no file locking on this platform; make sure no other run writes into it", folder)
        yield folder / LOCK_NAME
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _open_lock(path, os.O_RDWR | os.O_CREAT, option)
    try:
        _flock(fd, fcntl.LOCK_EX, folder, option)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "run": description, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # no longer anyone's: a run refused meanwhile reads no stale PID
    finally:
        os.close(fd)  # releases the lock
