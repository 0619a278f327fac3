"""Atomic file writing: nothing already written is lost when a run dies mid-write."""

from __future__ import annotations

import glob
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable


def _umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp makes them owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    return (stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH) & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(file)`` on a temporary sibling of ``path``, fsync it, then rename it onto ``path``.

    The rename is atomic on one filesystem, so readers see the old file or the new one, never
    a partial one; on any error the temporary file is removed and the old file stays.
    """

    def to_file(tmp: str) -> None:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write_path(path, to_file)


def _temp_prefix(p: Path) -> str:
    return f".{p.name}."


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary siblings an atomic write of ``path`` leaves behind when its process is killed mid-write."""
    p = Path(path)
    return sorted(p.parent.glob(glob.escape(_temp_prefix(p)) + "*")) if p.parent.is_dir() else []


def atomic_write_path(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Like :func:`atomic_write` for writers that take a file name (exporters, image encoders)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(p), suffix=p.suffix or ".tmp", dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def write_json_atomic(path: str | os.PathLike[str], data: object, indent: int | None = None) -> Path:
    """Write ``data`` as JSON, atomically."""
    separators = None if indent else (",", ":")
    return atomic_write(path, lambda fh: json.dump(data, fh, indent=indent, separators=separators))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write text, atomically."""
    return atomic_write(path, lambda fh: fh.write(text))
