"""The one error path of every command: exit codes, and one line per failure instead of a traceback.

Exit codes (docs/cli.md): 0 done; 1 a run that stopped, or finished with failures; 2 bad input or
usage, refused before anything is written; 130 Ctrl-C; 143 SIGTERM, handled as Ctrl-C is
(:func:`sigterm_as_interrupt`). A handler raises :class:`CliError` with its message and code;
:func:`report` turns every other expected exception into the same kind of line.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
from typing import Iterator

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TERMINATED", "EXIT_USAGE", "CliError", "Terminated",
           "describe_os_error", "interrupt_code", "interrupt_word", "report", "sigterm_as_interrupt"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 128 + signal.SIGTERM


class CliError(Exception):
    """A user-facing error: printed as one line without a traceback, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by :func:`sigterm_as_interrupt`: every ``except
    KeyboardInterrupt`` that saves what was done handles it as it handles Ctrl-C."""


def interrupt_code(exc: BaseException) -> int:
    """The exit code of a stop: 143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def interrupt_word(exc: BaseException) -> str:
    """``terminated (SIGTERM)`` or ``interrupted``."""
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` in the main thread, once: a second one while
    the first is handled (the run writing its index) is ignored, so the stop finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_os_error(exc: OSError, output_option: str = "-o") -> str:
    """``<file>: <reason>`` for an OSError; a full disk: with a hint to write elsewhere with ``output_option``."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += f" (free some space or write elsewhere with {output_option})"
    return where + reason


def report(command: str, exc: BaseException) -> int:
    """Print one line for ``exc`` on stderr and return its exit code; anything unexpected is raised again."""
    prefix = f"openpose-lite {command}" if command else "openpose-lite"
    if isinstance(exc, CliError):
        line = f"{prefix}: {exc}" if exc.code in (EXIT_INTERRUPTED, EXIT_TERMINATED) else f"{prefix}: error: {exc}"
        code = exc.code
    elif isinstance(exc, KeyboardInterrupt):
        line, code = f"{prefix}: {interrupt_word(exc)}; nothing was written", interrupt_code(exc)
    elif isinstance(exc, (FileNotFoundError, ValueError)):  # bad input: a path, a file, an option
        line, code = f"{prefix}: error: {exc}", EXIT_USAGE
    elif isinstance(exc, OSError):
        line, code = f"{prefix}: error: {describe_os_error(exc)}", EXIT_FAILURE
    elif isinstance(exc, MemoryError):
        line, code = f"{prefix}: error: out of memory; use a smaller --batch-size or input", EXIT_FAILURE
    else:
        raise exc
    print(line, file=sys.stderr)
    return code
