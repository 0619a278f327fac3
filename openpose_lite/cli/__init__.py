"""``openpose-lite``: a thin argparse shell over the public API.

Each sub-command lives in its own module of this package as a pair: ``_add_<name>(subparsers)``
declares its arguments and ``_run_<name>(args) -> int`` calls the library and prints. Only this
package (and train_vgg19.py) prints; the library logs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from openpose_lite.cli.bench import _add_bench, _run_bench
from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError
from openpose_lite.cli.eval import _add_eval, _run_eval
from openpose_lite.cli.export import _add_export, _run_export
from openpose_lite.cli.infer import _add_infer, _run_infer
from openpose_lite.cli.synth import _add_synth, _run_synth
from openpose_lite.cli.train import _add_train, _run_train

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "CliError", "build_parser", "main"]


# ---------------------------------------------------------------------------------------- main
COMMANDS = {
    "train": (_add_train, _run_train),
    "infer": (_add_infer, _run_infer),
    "eval": (_add_eval, _run_eval),
    "export": (_add_export, _run_export),
    "synth": (_add_synth, _run_synth),
    "bench": (_add_bench, _run_bench),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openpose-lite", description="Multi-person 2D pose estimation (OpenPose, HRNet).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        # Training has its own parser (shared with train_vgg19.py), with config overrides as positionals.
        return _run_train(argparse.Namespace(train_argv=argv[1:]))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command][1](args)
    except CliError as exc:
        print(f"openpose-lite {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except (FileNotFoundError, ValueError) as exc:
        print(f"openpose-lite {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
