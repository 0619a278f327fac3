"""``openpose-lite infer``: images, folders and videos -> OpenPose JSON, COCO results, drawings.

The run is :mod:`openpose_lite.runs`' (:class:`~openpose_lite.runs.Job`). Failed inputs are
reported, listed at the end and skipped (exit code 1); a stopped run (Ctrl-C, a full disk) writes
the index of what was done and says what is on disk. With ``--ray`` the run is spread over a Ray
cluster (:mod:`openpose_lite.cli.infer_ray`). Cameras and streams: :mod:`openpose_lite.cli.live`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK
from openpose_lite.cli.infer_ray import add_ray_args, run_infer_on_ray
from openpose_lite.cli.live import add_live_args, live_source, path_or_url, run_live
from openpose_lite.cli.models_args import add_predictor_args, add_weights_args, build_predictor, weights_path
from openpose_lite.cli.outputs import (
    ProgressBar,
    add_folder_args,
    add_image_limit_args,
    check_tracking_options,
    run_options,
    stopped_error,
)
from openpose_lite.runs import Job, RunStopped, Sources
from openpose_lite.tracking import TrackerParams


# --------------------------------------------------------------------------------------- infer
def _add_infer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="people in images, folders and videos -> OpenPose JSON, COCO results, drawings",
        description="Runs a model on images, folders of images/videos and video files: the bottom-up model, or a "
        "top-down one (HRNet) on person boxes from --boxes or --person-detector. Writes "
        "<stem>_keypoints.json per image (OpenPose JSON 1.3; video frames: <video stem>_<frame:012d>_keypoints.json), "
        "results_coco.json (COCO keypoint results for the whole run) and images.json (image_id -> file), and "
        "with --render <stem>_rendered.jpg or <video stem>_rendered.mp4. Unreadable or degenerate inputs and "
        "truncated videos are reported and skipped; the exit code is then 1. With --ray the inputs are shared out "
        "between the workers of a Ray cluster.",
    )
    p.add_argument("paths", type=path_or_url, nargs="*", metavar="PATH",
                   help="image files, video files or folders of them; or a stream URL (rtsp://, http://, udp:// ...)")
    add_weights_args(p)
    add_predictor_args(p)
    add_image_limit_args(p, annotations=False)
    p.add_argument("--output", "-o", type=Path, default=Path("openpose_output"),
                   help="output folder (default: %(default)s); one that holds another run's outputs is refused "
                   "unless --overwrite or --append")
    add_folder_args(p)
    p.add_argument("--render", action="store_true", help="also write the images (or videos) with the people drawn")
    add_hands_faces_args(p)
    p.add_argument("--track", action="store_true",
                   help="follow people across the frames of each video and of each folder of frames (name order): "
                   "person_id in the OpenPose JSON, track_id in results_coco.json, one colour per id in drawings")
    p.add_argument("--smooth", action="store_true", help="with --track: smooth keypoints over time (One Euro filter)")
    p.add_argument("--track-min-score", type=float, default=None, metavar="S",
                   help="with --track: people scoring under S get no id (person_id -1), so that a network's "
                   f"low-scoring fragments of people start no tracks (default: the tracker's, {TrackerParams.min_score}; "
                   "0: every person)")
    p.add_argument("--no-pipeline", action="store_true",
                   help="read, run and write one batch after another instead of overlapping them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is drawn when stderr is not a terminal)")
    add_live_args(p)
    add_ray_args(p)


def add_hands_faces_args(p: argparse.ArgumentParser) -> None:
    """``--hand`` / ``--face``: CMU's hand and face networks on each person (infer, serve)."""
    p.add_argument("--hand", type=Path, default=None, metavar="FILE",
                   help="CMU's hand model (hand/pose_iter_102000.caffemodel, or hand_pose_model.pth): each person's "
                   "hands, hand_left_keypoints_2d and hand_right_keypoints_2d in the OpenPose JSON")
    p.add_argument("--face", type=Path, default=None, metavar="FILE",
                   help="CMU's face model (face/pose_iter_116000.caffemodel): each person's face_keypoints_2d")


def hands_and_faces(args: argparse.Namespace, predictor):
    """``predictor`` with ``--hand`` / ``--face`` run on its people, on the body model's backend, device and
    precision (int8: calibrated on the crops of the people it finds in the ``--calibration`` images)."""
    from openpose_lite.inference.hands_faces import with_hands_faces

    return with_hands_faces(predictor, getattr(args, "hand", None), getattr(args, "face", None),
                            calibration=getattr(args, "calibration", None), device=args.device, backend=args.backend,
                            precision=args.precision)


def _run_infer(args: argparse.Namespace) -> int:
    if args.ray is not None or args.ray_workers is not None:
        return run_infer_on_ray(args)
    source = live_source(args)
    if source is not None:
        return run_live(args, source)
    weights = weights_path(args)
    sources = Sources.of(args.paths)  # bad paths fail before the model is loaded
    check_tracking_options(args)
    try:
        # the output, the options and a folder that will be refused are refused before the model loads
        with Job(sources, run_options(args, weights)) as job:
            predictor = hands_and_faces(args, build_predictor(args))
            with ProgressBar("img", "infer", args.no_progress) as bar:
                summary = job.run(predictor, progress=bar)
    except RunStopped as stop:  # Ctrl-C, SIGTERM, a full disk
        raise stopped_error(stop) from None
    print(summary.describe(predictor.skeleton.instance_words))
    for message in summary.failures:
        print(f"  failed: {message}", file=sys.stderr)
    return EXIT_FAILURE if summary.failures else EXIT_OK
