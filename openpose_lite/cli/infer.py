"""``openpose-lite infer``: images, folders and videos -> OpenPose JSON, COCO results, drawings; the run is
:class:`~openpose_lite.runs.Job`'s, or :func:`~openpose_lite.runs.run_on_ray`'s with ``--ray``. Cameras
and streams: :mod:`openpose_lite.cli.live`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from openpose_lite.cli.errors import CliError
from openpose_lite.cli.live import add_live_args, live_source, path_or_url, run_live
from openpose_lite.cli.models_args import (
    add_hands_faces_args,
    add_model_args,
    build_predictor,
    hands_and_faces,
    positive_int,
    predictor_setup,
    weights_path,
)
from openpose_lite.cli.outputs import ProgressBar, add_folder_args, finish, run_options
from openpose_lite.runs import Job, Sources
from openpose_lite.tracking import TrackerParams


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
    add_model_args(p, annotations=False)
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
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'openpose-lite[ray]'): without ADDRESS a local Ray on this machine's "
                   "cores, else the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), whose nodes see the "
                   "inputs, weights and output folder at the same paths; workers lost are replaced "
                   "(docs/scale_out.md)")
    p.add_argument("--ray-workers", type=positive_int, default=None, metavar="N",
                   help="with --ray: N workers, each building the model once (default: one per GPU of the cluster, "
                   "else one per CPU)")


def _run_infer(args: argparse.Namespace) -> int:
    if args.ray is not None or args.ray_workers is not None:
        return _run_on_ray(args)
    source = live_source(args)
    if source is not None:
        return run_live(args, source)
    weights = weights_path(args)
    sources = Sources.of(args.paths)  # bad paths fail before the model is loaded
    # the output, the options and a folder that will be refused are refused before the model loads
    with Job(sources, run_options(args, weights)) as job:
        predictor = hands_and_faces(args, build_predictor(args))
        with ProgressBar("img", "infer", args.no_progress) as bar:
            summary = job.run(predictor, progress=bar)
    return finish(summary, predictor.skeleton.instance_words)


def _run_on_ray(args: argparse.Namespace) -> int:
    """``infer --ray``: refused in one line without the ``ray`` extra, or with a camera or stream."""
    from openpose_lite.runs import PredictorRecipe, RayOptions
    from openpose_lite.runs.ray_run import import_ray, run_job_on_ray

    if args.ray is None:
        raise CliError("--ray-workers sets the workers of a Ray run; add --ray")
    if args.ray and not args.paths and Path(args.ray).exists():  # `infer --ray photos/`: argparse took it as ADDRESS
        raise CliError(f"--ray {args.ray}: taken as the cluster's address, and it is a path: give the PATHs before "
                       "--ray (or --ray=ADDRESS)")
    import_ray()
    if not args.verbose:  # the progress bar and the summary say how the run goes; Ray's notes stay in its logs
        for name in ("ray", "ray.data"):  # errors too: the run's own line names what stopped it
            logging.getLogger(name).setLevel(logging.CRITICAL)
    if live_source(args) is not None:
        raise CliError("--ray runs files, folders and videos; a camera or stream is read by one process "
                       "(leave out --ray)")
    # bad paths, the output, the options and a folder that will be refused are refused before the model loads
    job = Job(Sources.of(args.paths), run_options(args, weights_path(args)))
    path, loaded, predictor_options = predictor_setup(args)
    recipe = PredictorRecipe(path, predictor_options, args.hand, args.face, args.threads)
    with ProgressBar("img", "infer", args.no_progress) as bar:
        summary = run_job_on_ray(recipe, job, RayOptions(address=args.ray or None, workers=args.ray_workers),
                                 progress=bar, loaded=loaded)
    return finish(summary, loaded.skeleton.instance_words)
