"""Files in and out: atomic writes (nothing already written is lost when a run dies mid-write), and
bounded reads (nothing read blows up memory or blocks).

Every data file the project reads (annotation, box, config and shard files; images through
:mod:`openpose_lite.images`) is opened with :func:`open_regular`: a path that is no regular file
is refused by what it is (a FIFO would block the reader, ``/dev/zero`` never ends, a symbolic
link loop is not "not found"), and :func:`read_bounded` refuses a file larger than its kind
ever is, before reading it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Iterator

# The largest files of each kind the project reads. COCO's biggest keypoint file
# (person_keypoints_train2017.json) is 238 MB and a detection file of all its training images
# a few hundred MB; a config file is a few KB.
MAX_JSON_BYTES = 1 << 30
MAX_CONFIG_BYTES = 1 << 20

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


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


# An atomic write's temporary file: ".<name>.<random><suffix>" beside the file it becomes.
_TEMP_PREFIX = ".{}."


def _temp_prefix(p: Path) -> str:
    return _TEMP_PREFIX.format(p.name)


def temp_files_glob(name_pattern: str) -> str:
    """The glob of the temporary files that atomic writes of files named ``name_pattern`` (a glob) leave."""
    return _TEMP_PREFIX.format(name_pattern) + "*"


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary siblings an atomic write of ``path`` leaves behind when its process is killed mid-write."""
    p = Path(path)
    return sorted(p.parent.glob(temp_files_glob(glob.escape(p.name)))) if p.parent.is_dir() else []


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


@contextlib.contextmanager
def naming_os_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Give an OSError without a file name (a write into an open file: a full disk) the name of ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def write_json_atomic(path: str | os.PathLike[str], data: object, indent: int | None = None) -> Path:
    """Write ``data`` as JSON, atomically."""
    separators = None if indent else (",", ":")
    return atomic_write(path, lambda fh: json.dump(data, fh, indent=indent, separators=separators))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write text, atomically."""
    return atomic_write(path, lambda fh: fh.write(text))


# ------------------------------------------------------------------------------ bounded reads
def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``a regular file``, ``a FIFO (named pipe)``, ``a folder`` ..."""
    return next((name for test, name in _KINDS if test(mode)), "a regular file" if stat.S_ISREG(mode) else "not a file")


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a regular file, in words (``not found``, ``a symbolic link loop``,
    ``a FIFO (named pipe)`` ...); None when it is one. Nothing is opened, so a FIFO does not block."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "not found"
    except OSError as exc:
        return "a symbolic link loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    return None if stat.S_ISREG(mode) else file_kind(mode)


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading, when it is a regular file.

    Opened without blocking (``O_NONBLOCK``: a FIFO would otherwise wait for a writer) and
    checked on the open descriptor, so what is read is what was checked.

    Raises:
        FileNotFoundError: ``<what> not found: <path>``.
        ValueError: ``<what> <path>: is a FIFO (named pipe), not a regular file`` (a folder, a
            device, a socket, a symbolic link loop alike).
        OSError: the file exists but cannot be opened (permissions, I/O error).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {path}: is a folder, not a regular file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{what} {path}: is a symbolic link loop, not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"{what} {path}: is {file_kind(mode)}, not a regular file")
    return os.fdopen(fd, "rb")


def format_bytes(n: int) -> str:
    """``1.5 GB``, ``12 MB``, ``300 bytes``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def plural(count: int, one: str, many: str | None = None) -> str:
    """A count in words for messages: ``1 image``, ``2 images``, ``1 stage``; ``many`` where adding an
    s is wrong (``plural(n, "person", "people")``)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def read_bounded(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see :func:`open_regular` for the errors);
    a larger one is refused, naming its size and the limit, before it is read."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(max_bytes + 1) if size <= max_bytes else b""  # + 1: a file that grew meanwhile
    if size > max_bytes or len(data) > max_bytes:
        raise ValueError(f"{what} {path}: {format_bytes(max(size, len(data)))}, more than a {what} may hold "
                         f"({format_bytes(max_bytes)})")
    return data


def read_json(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file read through :func:`read_bounded`; ValueError ``<path>: not a valid JSON <what> (...)``."""
    data = read_bounded(path, what, max_bytes)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid JSON {what} ({exc})") from None
