"""``openpose-lite synth``: generated scenes with COCO annotations."""

from __future__ import annotations

import argparse
from pathlib import Path

from openpose_lite.cli.errors import EXIT_INTERRUPTED, EXIT_OK, CliError


# --------------------------------------------------------------------------------------- synth
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write generated multi-person scenes with COCO keypoint annotations",
        description="Draws multi-person scenes of stick figures with known keypoints, no download needed: "
        "OUT/images/000001.jpg ... and OUT/annotations.json (COCO keypoint format, written after the last image). "
        "Image i depends only on --seed and i, so a larger set extends a smaller one. Use them to try the "
        "codec (eval --oracle), to train on a CPU (the synthetic configs) or as inputs to infer.",
    )
    p.add_argument("out_dir", type=Path, metavar="OUT", help="output folder (images/ and annotations.json)")
    p.add_argument("--num-images", type=int, default=100, help="how many scenes to write (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scenes, an integer >= 0 (default: %(default)s)")
    p.add_argument("--size", type=int, nargs=2, default=(368, 368), metavar=("H", "W"),
                   help="image height and width in pixels, at least 16 each (default: 368 368)")
    p.add_argument("--people", type=int, default=None,
                   help="exactly this many people per image (default: 1 to 4, drawn per image)")


def _run_synth(args: argparse.Namespace) -> int:
    from openpose_lite.data.synthetic import SceneConfig, write_dataset

    if args.num_images < 1:
        raise CliError(f"--num-images must be at least 1, got {args.num_images}")
    if args.people is not None and args.people < 0:
        raise CliError(f"--people must be >= 0, got {args.people}")
    try:
        cfg = SceneConfig(image_hw=tuple(args.size))
    except ValueError as exc:
        raise CliError(f"--size {args.size[0]} {args.size[1]}: {exc}") from None
    try:
        ann = write_dataset(args.out_dir, args.num_images, args.seed, cfg, num_people=args.people)
    except KeyboardInterrupt:
        written = len(list((args.out_dir / "images").glob("*"))) if (args.out_dir / "images").is_dir() else 0
        raise CliError(f"interrupted; wrote {written} images to {args.out_dir / 'images'} and no annotations.json "
                       "(run the same command again to write them all)", EXIT_INTERRUPTED) from None
    print(f"wrote {args.num_images} images and {ann}")
    return EXIT_OK
