"""``openpose-lite``: a thin argparse shell over the public API.

Each sub-command is a pair: ``_add_<name>(subparsers)`` declares its arguments and
``_run_<name>(args) -> int`` calls the library and prints. Only this module (and
train_vgg19.py) prints; the library logs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing error: printed without a traceback, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _write_json_atomic(path: Path, data: object) -> None:
    from openpose_lite.io import write_json_atomic

    write_json_atomic(path, data)


# --------------------------------------------------------------------------------------- synth
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write generated multi-person scenes with COCO keypoint annotations")
    p.add_argument("out_dir", type=Path, help="output folder (images/ and annotations.json)")
    p.add_argument("--num-images", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, nargs=2, default=(368, 368), metavar=("H", "W"), help="image size")
    p.add_argument("--people", type=int, default=None, help="exactly this many people per image")


def _run_synth(args: argparse.Namespace) -> int:
    from openpose_lite.data.synthetic import SceneConfig, write_dataset

    if args.num_images < 1:
        raise CliError("--num-images must be at least 1")
    ann = write_dataset(args.out_dir, args.num_images, args.seed, SceneConfig(image_hw=tuple(args.size)), num_people=args.people)
    print(f"wrote {args.num_images} images and {ann}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- eval
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="COCO keypoint AP of a model, or of a codec alone (--oracle)",
        description="COCO keypoint metrics. With --oracle, the ground truth is encoded into maps at "
        "model resolution and decoded again: the AP a perfect network would get with this codec.",
    )
    p.add_argument("--ann", type=Path, required=True, help="COCO-format keypoint annotation file")
    p.add_argument("--oracle", choices=("bottomup", "topdown"), help="evaluate the codec on ground-truth maps")
    p.add_argument("--refine", choices=("dark", "quarter", "none"), default=None, help="sub-pixel refinement")
    p.add_argument("--input-size", type=int, default=368, help="bottom-up network input height")
    p.add_argument("--json-out", type=Path, help="write the COCO results here")


def _run_eval(args: argparse.Namespace) -> int:
    from openpose_lite.evaluation import format_metrics

    if not args.ann.is_file():
        raise CliError(f"annotation file not found: {args.ann}")
    if args.oracle is None:
        raise CliError("nothing to evaluate: pass --oracle bottomup|topdown")
    from openpose_lite.oracle import run_oracle

    codec_args: dict = {}
    if args.refine:
        codec_args["refine"] = args.refine
    if args.oracle == "bottomup":
        codec_args["input_size"] = args.input_size
    metrics, results = run_oracle(args.oracle, args.ann, progress=True, **codec_args)
    if args.json_out:
        _write_json_atomic(args.json_out, results)
    print(f"{args.oracle} oracle on {args.ann} ({len(results)} people)")
    print(format_metrics(metrics, style="markdown"))
    return EXIT_OK


# ---------------------------------------------------------------------------------------- main
COMMANDS = {
    "eval": (_add_eval, _run_eval),
    "synth": (_add_synth, _run_synth),
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
