"""``openpose-lite``: a thin argparse shell over the public API.

Each sub-command's module holds ``_add_<name>(subparsers)`` and ``_run_<name>(args) -> int``. Only
this package (and train_vgg19.py) prints; the library logs. Every failure goes through
:func:`openpose_lite.cli.errors.report`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from openpose_lite import __version__
from openpose_lite.cli.bench import _add_bench, _run_bench
from openpose_lite.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    report,
    sigterm_as_interrupt,
)
from openpose_lite.cli.eval import _add_eval, _run_eval
from openpose_lite.cli.export import _add_export, _run_export
from openpose_lite.cli.infer import _add_infer, _run_infer
from openpose_lite.cli.serve import _add_serve, _run_serve
from openpose_lite.cli.synth import _add_synth, _run_synth
from openpose_lite.cli.train import _add_train, _run_train

__all__ = ["COMMANDS", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "CliError", "build_parser", "main"]

_VERBOSE = ("-v", "--verbose")


COMMANDS = {
    "train": (_add_train, _run_train),
    "infer": (_add_infer, _run_infer),
    "eval": (_add_eval, _run_eval),
    "export": (_add_export, _run_export),
    "synth": (_add_synth, _run_synth),
    "bench": (_add_bench, _run_bench),
    "serve": (_add_serve, _run_serve),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openpose-lite", description="Multi-person 2D pose estimation (OpenPose, HRNet).")
    parser.add_argument("--version", action="version", version=f"openpose-lite {__version__}")
    parser.add_argument(*_VERBOSE, action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def _quiet_opencv() -> None:
    """Commands report unreadable files themselves, so OpenCV's and FFmpeg's own warnings are silenced
    (``[ WARN:0@...] global loadsave.cpp ...`` per image, ``[mjpeg @ ...] overread`` per damaged frame)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg is first used
    try:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except (ImportError, AttributeError):  # an OpenCV build without the logging utilities
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # "openpose-lite [-v] train ...": training has its own parser (shared with train_vgg19.py), with
    # config overrides as positionals, so it gets everything after "train".
    first = next((i for i, arg in enumerate(argv) if arg not in _VERBOSE), len(argv))
    if argv[first:first + 1] == ["train"]:
        if first:
            logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
        return _run_train(argparse.Namespace(train_argv=argv[first + 1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _quiet_opencv()
    try:
        with sigterm_as_interrupt():  # SIGTERM stops a command as Ctrl-C does: what was done is written
            return COMMANDS[args.command][1](args)
    except (CliError, KeyboardInterrupt, OSError, ValueError, MemoryError) as exc:
        return report(args.command, exc)


if __name__ == "__main__":
    sys.exit(main())
