"""``openpose-lite synth``: generated scenes with COCO annotations."""

from __future__ import annotations

import argparse
from pathlib import Path

from openpose_lite.cli.errors import EXIT_OK, CliError


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
