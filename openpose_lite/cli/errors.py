"""``CliError`` and the exit codes every command uses; JSON output helpers."""

from __future__ import annotations

from pathlib import Path


EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing error: printed without a traceback, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _write_json_atomic(path: Path, data: object) -> None:
    from openpose_lite.io import write_json_atomic

    write_json_atomic(path, data)
