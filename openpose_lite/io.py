"""Files in and out: atomic writes (nothing already written is lost when a run dies mid-write), and
bounded reads (nothing read blows up memory or blocks).

Every data file is opened with :func:`open_regular`: a path that is no regular file is refused by what
it is (a FIFO would block, ``/dev/zero`` never ends). :func:`read_bounded` refuses a file larger than
its kind ever is; :func:`read_json` also bounds what the file costs once parsed (``[[],[],...]``
becomes tens of times its size in Python lists) and how deep it nests (a stack overflow in every
recursive reader after it). A write replaces only a regular file, or nothing (:func:`check_destination`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np

# The largest files of each kind the project reads. COCO's biggest keypoint file
# (person_keypoints_train2017.json) is 238 MB and a detection file of all its training images
# a few hundred MB; a config file is a few KB.
MAX_JSON_BYTES = 1 << 30
MAX_CONFIG_BYTES = 1 << 20
# What a JSON file may cost once parsed, estimated before parsing (:class:`JsonShape`): COCO's
# 238 MB keypoint file is estimated at about 2.5 GB (it takes about 0.9 GB), while 210 MB of
# ``[[],[],...]`` would take 5.8 GB. Raised with the environment variable named here (in MB).
MAX_JSON_MEMORY_MB = 4096
MAX_JSON_MEMORY_ENV = "OPENPOSE_LITE_MAX_JSON_MB"
# How deep a JSON or YAML file may nest: a COCO file nests 5 deep (file, annotations, annotation,
# segmentation, polygon), a config 3; Python's parsers and every recursive reader after them fail
# near 1000 (a RecursionError).
MAX_NESTING_DEPTH = 64

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp makes them owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    return (stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH) & ~mask


def env_limit(name: str, default: int) -> int:
    """The positive integer in the environment variable ``name``, else ``default``; ValueError for anything else."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"environment variable {name}={text[:40]!r}: expected a positive integer")
    return value


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(file)`` on a temporary sibling of ``path``, fsync it, then rename it onto ``path``: readers
    see the old file or the new one, never a partial one; on any error the temporary file is removed and the old
    file stays. Only a regular file is replaced (:func:`check_destination`)."""

    def to_file(tmp: str) -> None:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write_path(path, to_file)


# An atomic write's temporary file: ".<name>.openpose-lite-tmp-<random><suffix>" beside the file it
# becomes. The clean-up of an interrupted write deletes what matches, so the name says whose it is:
# a user's ".last.pt.bak" or ".config.yaml.orig" never matches.
_TEMP_PREFIX = ".{}.openpose-lite-tmp-"


def temp_files_glob(name_pattern: str) -> str:
    """The glob of the temporary files that atomic writes of files named ``name_pattern`` (a glob) leave."""
    return _TEMP_PREFIX.format(name_pattern) + "*"


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary siblings an atomic write of ``path`` leaves behind when its process is killed mid-write."""
    p = Path(path)
    return sorted(p.parent.glob(temp_files_glob(glob.escape(p.name)))) if p.parent.is_dir() else []


def temp_sibling(path: str | os.PathLike[str]) -> Path:
    """A new, empty temporary file beside ``path``, named as an atomic write of ``path`` names its own (a
    run's clean-up finds it after a kill), for writers that replace ``path`` themselves (a video encoder)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX.format(p.name), suffix=p.suffix or ".tmp", dir=p.parent)
    os.close(fd)
    return Path(tmp)


def check_destination(path: str | os.PathLike[str]) -> None:
    """Refuse to write over ``path`` unless it is a regular file or nothing (or a symbolic link, which the
    rename replaces): ValueError ``<path>: is a FIFO (named pipe), not a regular file ...``."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return  # not ours to judge: the write itself names what is wrong (permissions ...)
        kind = "a symbolic link loop"
    else:
        if stat.S_ISREG(mode):
            return
        kind = file_kind(mode)
    raise ValueError(f"{path}: is {kind}, not a regular file; an output is written only as a regular file "
                     "(replacing nothing else): name another file")


def atomic_write_path(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Like :func:`atomic_write` for writers that take a file name (exporters, image encoders); ValueError
    (:func:`check_destination`) before anything is written, and again if something took ``path``'s place meanwhile.
    """
    p = Path(path)
    check_destination(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(p)
    try:
        write(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return replace_from_temp(tmp, p)


def replace_from_temp(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Move a finished :func:`temp_sibling` onto ``path``: the mode a new file gets (the temporary file
    was made owner-only), only a regular file replaced (:func:`check_destination`), one rename. On
    any error the temporary file is removed and ``path`` stays as it was."""
    p = Path(path)
    try:
        os.chmod(tmp, _umask_mode())
        check_destination(p)
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
    separators = None if indent else (",", ":")
    return atomic_write(path, lambda fh: json.dump(data, fh, indent=indent, separators=separators))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
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


def files_sha256(paths: Iterable[str | os.PathLike[str]], what: str = "file") -> str:
    """SHA-256 (hex) of the bytes of ``paths`` one after the other, each a regular file (:func:`open_regular`)."""
    digest = hashlib.sha256()
    for path in paths:
        with open_regular(path, what) as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading when it is a regular file: opened without blocking and checked on
    the open descriptor. FileNotFoundError ``<what> not found: <path>``; ValueError ``<what> <path>: is a FIFO
    (named pipe), not a regular file`` (a folder, a device ... alike); OSError (permissions ...)."""
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
    """A count in words: ``1 image``, ``2 images``; ``many`` where adding an s is wrong (``people``)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def read_bounded(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file (:func:`open_regular`) of at most ``max_bytes``, refused before it is read."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(max_bytes + 1) if size <= max_bytes else b""  # + 1: a file that grew meanwhile
    if max(size, len(data)) > max_bytes:
        raise _too_large(path, what, max(size, len(data)), max_bytes)
    return data


def _too_large(path: str | os.PathLike[str], what: str, size: int, max_bytes: int) -> ValueError:
    return ValueError(f"{what} {path}: {format_bytes(size)}, more than a {what} may hold ({format_bytes(max_bytes)})")


# What a parsed JSON value costs at most, about (CPython, 64 bit): a list or dict with the slot that
# holds it 64 bytes (an empty list is 56); a number or a string with its slot 56 (a float is 24, a
# string 49 and its characters, counted with the text; a dict entry's key and value less, keys
# being shared).
_CONTAINER_BYTES, _VALUE_BYTES = 64, 56
_JSON_CHUNK = 1 << 20
_NESTING = np.zeros(256, np.int8)  # byte -> +1 opens a list or object, -1 closes one
_NESTING[[ord("["), ord("{")]], _NESTING[[ord("]"), ord("}")]] = 1, -1


class JsonShape:
    """The shape of JSON text fed in pieces, before it is parsed: its containers and separators (which
    bound how many Python objects it becomes) and how deep it nests, brackets inside strings left out."""

    def __init__(self) -> None:
        self.containers = self.separators = self.depth = self.deepest = self.size = 0
        self.in_string = False
        self.backslashes = 0  # how many backslashes the text so far ends with

    def cost(self) -> int:
        """The estimated bytes of the parsed value, about an upper bound: its objects, and the text
        itself (its strings hold as many characters; commas inside strings count as values too)."""
        return _CONTAINER_BYTES * self.containers + _VALUE_BYTES * self.separators + self.size

    def feed(self, raw: bytes) -> None:
        """Count the next piece of the text (any split of it counts the same)."""
        self.size += len(raw)
        self.containers += raw.count(b"[") + raw.count(b"{")
        self.separators += raw.count(b",") + raw.count(b":")
        # An odd run of backslashes carried over escapes a quote that starts this piece: one stands for it.
        text = b"\\" * (self.backslashes % 2) + raw
        a = np.frombuffer(text, np.uint8)
        quotes = np.flatnonzero(a == ord('"'))
        if quotes.size and b"\\" in text:
            # A quote is escaped when an odd run of backslashes precedes it.
            position = np.arange(a.size)
            last_other = np.maximum.accumulate(np.where(a == ord("\\"), -1, position))
            before = quotes - 1
            run = np.where(before >= 0, before - last_other[np.maximum(before, 0)], 0)
            quotes = quotes[run % 2 == 0]
        steps = _NESTING[a]
        brackets = np.flatnonzero(steps)
        if brackets.size:
            # Outside a string where an even number of quotes precedes (one more when one is open).
            outside = (np.searchsorted(quotes, brackets) + self.in_string) % 2 == 0
            kept = brackets[outside]
            if kept.size:
                levels = self.depth + np.cumsum(steps[kept], dtype=np.int64)
                self.deepest = max(self.deepest, int(levels.max()))
                self.depth = int(levels[-1])
        self.in_string ^= bool(quotes.size % 2)
        self.backslashes = len(text) - len(text.rstrip(b"\\"))


def _scan_json(pieces: Iterable[bytes], label: str, max_bytes: int | None = None) -> bytearray:
    """The JSON text of ``pieces``, refused (ValueError ``<label> refused, ...``) as soon as what was read
    would cost too much once parsed or nests too deep; reading stops past ``max_bytes``."""
    max_memory = env_limit(MAX_JSON_MEMORY_ENV, MAX_JSON_MEMORY_MB) << 20
    data, shape = bytearray(), JsonShape()
    for piece in pieces:
        data += piece
        shape.feed(piece)
        if shape.cost() > max_memory:
            raise ValueError(f"{label} refused, it would take more than {max_memory >> 20} MB of memory once parsed "
                             f"({shape.containers:,} lists and objects and {shape.separators:,} values in its first "
                             f"{format_bytes(shape.size)}); raise the limit with the environment variable "
                             f"{MAX_JSON_MEMORY_ENV}=<MB>")
        if shape.deepest > MAX_NESTING_DEPTH:
            raise ValueError(f"{label} refused, it nests lists or objects more than {MAX_NESTING_DEPTH} deep (no JSON "
                             "file the project reads nests 10)")
        if max_bytes is not None and len(data) > max_bytes:
            break
    return data


def _loads(raw: bytes | bytearray, source: str | os.PathLike[str], what: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not a valid JSON {what} ({exc})") from None
    except RecursionError:  # nesting the scan let through (it never should): still one line
        raise ValueError(f"{source}: not a valid JSON {what} (nested too deep)") from None


def parse_json(text: str | bytes, source: str, what: str = "JSON") -> Any:
    """JSON text held in memory, bounded as :func:`read_json` bounds a file's; ValueError naming ``source``."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    pieces = (raw[start:start + _JSON_CHUNK] for start in range(0, len(raw), _JSON_CHUNK))
    return _loads(_scan_json(pieces, f"{source}: {what}"), source, what)


def read_json(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file, bounded: a regular file of at most ``max_bytes``, whose parsed value would cost at
    most ``$OPENPOSE_LITE_MAX_JSON_MB`` MB and nests at most :data:`MAX_NESTING_DEPTH` deep, judged while
    it is read, before it is parsed. ValueError ``<path>: not a valid JSON <what> (...)``, or naming the bound."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        # (a file that grows meanwhile stops too)
        data = b"" if size > max_bytes else _scan_json(iter(lambda: fh.read(_JSON_CHUNK), b""), f"{what} {path}:",
                                                       max_bytes)
    if max(size, len(data)) > max_bytes:
        raise _too_large(path, what, max(size, len(data)), max_bytes)
    return _loads(data, path, what)
