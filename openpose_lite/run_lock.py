"""One owner per output folder: an exclusive lock, held for the whole run.

A run takes ``<folder>/.openpose-lite.lock`` with ``fcntl.flock`` before it writes anything
into its folder and holds it until it ends (:func:`folder_lock`); a second run into that folder
is refused at once (:class:`FolderLockedError`, naming the holder's PID, host, command and start
time) instead of mixing its files with the first one's. Training run folders take it
(:mod:`openpose_lite.training.loop`); any other command that owns an output folder takes the same.

The kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a
lock is never stale and needs no clean-up. The lock file itself stays (emptied when its run
ends): deleting it would let a waiting run lock the deleted file while a third locks a new one
of the same name. :func:`check_unlocked` asks whether a live run holds a folder without taking
its lock. Whatever a
killed run left half-written (temporary files) may be removed by the next holder only, since
no live run can be writing into a folder whose lock another process holds.

Where ``fcntl`` does not exist (Windows) no lock is taken, with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "FolderLockedError", "check_unlocked", "folder_lock"]

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


def _read_holder(fd: int) -> dict:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        raw = os.pread(fd, 4096, 0)
        try:
            holder = json.loads(raw.decode("utf-8"))
            if isinstance(holder, dict):
                return holder
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(_HOLDER_POLL_S)


def _busy(exc: OSError) -> bool:
    return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


def check_unlocked(folder: str | os.PathLike[str], option: str = "--output-dir") -> None:
    """Refuse a folder whose lock another live run holds, without taking it (a check before the
    run's own, e.g. before judging the folder by the files it holds: a live run's files are not a
    finished run's). Call it only where this process does not hold the lock itself.

    Raises FolderLockedError naming the folder and the run that holds it.
    """
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released at once: only whether someone holds it
        except OSError as exc:
            if not _busy(exc):
                raise
            holder = _read_holder(fd)
            raise FolderLockedError(_describe(Path(folder), holder, option), holder) from None
    finally:
        os.close(fd)


def _describe(folder: Path, holder: dict, option: str) -> str:
    if holder.get("pid"):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
        who = (f"PID {holder['pid']} on {holder.get('host', '?')}, {holder.get('run') or 'a run'}, "
               f"started {since}")
    else:
        who = "a process that has just started"
    return (f"{folder}: in use by another run ({who}); wait for it to end, stop it, or choose another {option}")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], description: str, option: str = "--output-dir") -> Iterator[Path]:
    """Hold ``folder``'s lock (created, with the folder, if missing) for the ``with`` block.

    ``description`` says what the run is (``openpose-lite train``), for the message another run
    gets; ``option`` is the option that chose the folder, for that message's advice.

    Raises FolderLockedError (a ValueError) naming the folder and the run that holds it.
    """
    folder = Path(folder)
    if fcntl is None:
        logger.warning("%s: no file locking on this platform; make sure no other run writes into it", folder)
        yield folder / LOCK_NAME
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not _busy(exc):
                raise
            holder = _read_holder(fd)
            raise FolderLockedError(_describe(folder, holder, option), holder) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "run": description, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # no longer anyone's: a run refused meanwhile reads no stale PID
    finally:
        os.close(fd)  # releases the lock
