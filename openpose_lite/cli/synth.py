"""``openpose-lite synth``: generated scenes with COCO annotations."""

from __future__ import annotations

import argparse
from pathlib import Path

from openpose_lite.cli.errors import EXIT_OK, CliError, interrupt_code, interrupt_word
from openpose_lite.io import plural


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
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the scenes, an integer >= 0 (default: %(default)s)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="image height and width in pixels, at least 16 each (default: 368 368; with --video 360 640)")
    p.add_argument("--people", type=int, default=None,
                   help="exactly this many people per image (default: 1 to 4, drawn per image; with --video: 8)")
    p.add_argument("--video", action="store_true",
                   help="write a video instead: OUT/video.mp4 of people walking, crossing and hiding each other, and "
                   "OUT/annotations.json with a COCO image per frame and a track_id per person (for infer --track)")
    p.add_argument("--frames", type=int, default=90, help="with --video: frames of the video (default: %(default)s)")
    p.add_argument("--fps", type=float, default=30.0, help="with --video: frames per second (default: %(default)s)")
    p.add_argument("--skeleton", type=Path, metavar="FILE",
                   help="draw figures of another skeleton instead of people: a COCO-format keypoint file whose "
                   "category gives the keypoints and limbs and whose annotated instances give the poses "
                   "(articulated and jittered); annotations.json then holds that category. body25: people with "
                   "feet, in CMU's BODY_25 layout")
    p.add_argument("--category", default=None, metavar="NAME|ID",
                   help="with --skeleton: the keypoint category to take (default: the one with the most annotations)")


def _run_synth(args: argparse.Namespace) -> int:
    from openpose_lite.data.synthetic import SceneConfig, write_dataset

    if args.video:
        from openpose_lite.data.synthetic_video import VideoConfig, write_video

        if args.skeleton is not None:
            raise CliError("--video draws walking people; --skeleton figures are still scenes (leave out --video)")
        size = tuple(args.size) if args.size is not None else VideoConfig().image_hw
        try:
            cfg = VideoConfig(image_hw=size, num_frames=args.frames, fps=args.fps, seed=args.seed,
                              num_people=8 if args.people is None else args.people)
        except ValueError as exc:
            raise CliError(f"--video: {exc}") from None
        video, ann = write_video(args.out_dir, cfg)
        print(f"wrote {video} ({cfg.num_frames} frames of {cfg.num_people} people) and {ann}")
        return EXIT_OK

    if args.num_images < 1:
        raise CliError(f"--num-images must be at least 1, got {args.num_images}")
    if args.people is not None and args.people < 0:
        raise CliError(f"--people must be >= 0, got {args.people}")
    size = tuple(args.size) if args.size is not None else SceneConfig().image_hw
    try:
        cfg = SceneConfig(image_hw=size)
    except ValueError as exc:
        raise CliError(f"--size {size[0]} {size[1]}: {exc}") from None
    bank = _pose_bank(args)
    try:
        ann = write_dataset(args.out_dir, args.num_images, args.seed, cfg, num_people=args.people, bank=bank)
    except KeyboardInterrupt as exc:
        written = len(list((args.out_dir / "images").glob("*"))) if (args.out_dir / "images").is_dir() else 0
        raise CliError(f"{interrupt_word(exc)}; wrote {plural(written, 'image')} to {args.out_dir / 'images'} and no "
                       "annotations.json (run the same command again to write them all)", interrupt_code(exc)) from None
    what = "" if bank is None else f" of {bank.skeleton.name} figures ({bank.skeleton.num_keypoints} keypoints)"
    print(f"wrote {plural(args.num_images, 'image')}{what} and {ann}")
    return EXIT_OK


def _pose_bank(args: argparse.Namespace):
    """The figures of --skeleton FILE (None without it); a bad file is refused before anything is written."""
    if args.skeleton is None:
        if args.category is not None:
            raise CliError("--category chooses a category of --skeleton FILE; pass --skeleton too")
        return None
    from openpose_lite.data.skeleton_figures import NAMED_PEOPLE, scene_figures

    if str(args.skeleton) not in NAMED_PEOPLE and not args.skeleton.is_file():
        raise CliError(f"--skeleton: annotation file not found: {args.skeleton}")
    category = int(args.category) if args.category is not None and args.category.isdigit() else args.category
    return scene_figures(args.skeleton, category=category)
