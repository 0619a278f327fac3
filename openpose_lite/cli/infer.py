"""``openpose-lite infer``: images, folders and videos -> OpenPose JSON, COCO results, drawings.

Nothing one input does stops the others: an unreadable or degenerate image, a frame the model
fails on, a truncated video is reported, listed at the end and skipped (exit code 1). What stops
a run (Ctrl-C, a full disk) still leaves every file written so far whole, writes the run's
results_coco.json and images.json for what was done when it can, and says what is on disk.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from openpose_lite.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    describe_os_error,
)
from openpose_lite.cli.models_args import (
    add_predictor_args,
    add_weights_args,
    build_predictor,
    weights_path,
)
from openpose_lite.cli.outputs import (
    InferRun,
    Predict,
    frame_count,
    infer_video,
    progress_disabled,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


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
        "truncated videos are reported and skipped; the exit code is then 1.",
    )
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files, video files or folders of them")
    add_weights_args(p)
    add_predictor_args(p)
    p.add_argument("--output", "-o", type=Path, default=Path("openpose_output"),
                   help="output folder (default: %(default)s)")
    p.add_argument("--render", action="store_true", help="also write the images (or videos) with the people drawn")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is drawn when stderr is not a terminal)")


def _collect_inputs(paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """(kind, path) for every input, kind "image" or "video"; folders are listed (not recursively) in name order."""
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    inputs: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in known)
            if not files:
                raise CliError(f"{path}: the folder holds no images or videos (looked for {' '.join(known)})")
        elif path.is_file():
            if path.suffix.lower() not in known:
                raise CliError(f"{path}: unsupported file type {path.suffix!r}; images: {' '.join(IMAGE_EXTENSIONS)}; "
                               f"videos: {' '.join(VIDEO_EXTENSIONS)}")
            files = [path]
        else:
            raise CliError(f"input not found: {path}")
        inputs.extend(("video" if f.suffix.lower() in VIDEO_EXTENSIONS else "image", f) for f in files)
    return inputs


def _check_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise CliError(f"--output {path}: is a file; infer writes a folder of outputs there, so name a folder "
                       "(new or existing)")


def _safe_predict(predictor, ids: list[int | None] | None = None) -> Predict:
    """``predict(images)``: one Poses per image or, for an image the predictor refuses or fails on, the reason.

    A batch that fails is retried image by image, so one bad image costs only itself.
    """
    import cv2

    problem_of = getattr(predictor, "input_problem", None)  # the bottom-up input bound

    def predict(images: list[np.ndarray], image_ids: list[int | None] | None = None) -> list:
        image_ids = image_ids if image_ids is not None else [None] * len(images)
        out: list = [problem_of(image.shape[:2]) if problem_of else None for image in images]
        todo = [i for i, reason in enumerate(out) if reason is None]
        try:
            results = predictor.predict_batch([images[i] for i in todo], [image_ids[i] for i in todo]) if todo else []
        except (ValueError, RuntimeError, MemoryError, cv2.error) as exc:
            if len(todo) == 1:  # one line, without the batch position the predictor names ("images[0]: ")
                out[todo[0]] = re.sub(r"^images\[\d+\]: ", "", str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
                return out
            results = [predict([images[i]], [image_ids[i]])[0] for i in todo]
        for i, poses in zip(todo, results):
            out[i] = poses
        return out

    return predict


def _infer_images(predict, batch: list[tuple[Path, np.ndarray]], run: InferRun, progress) -> None:
    # Box files name images by COCO id, which COCO file names carry.
    ids = [int(path.stem) if path.stem.isdigit() else None for path, _ in batch]
    for (path, image), poses in zip(batch, predict([image for _, image in batch], ids)):
        if isinstance(poses, str):
            run.fail(f"{path}: {poses}")
        else:
            run.record_image(path, image, poses)
    progress.update(len(batch))


def _run_inputs(predictor, inputs: list[tuple[str, Path]], batch_size: int, run: InferRun, progress) -> None:
    from openpose_lite.images import ImageReadError, read_image

    predict = _safe_predict(predictor)
    batch: list[tuple[Path, np.ndarray]] = []
    for kind, path in inputs:
        if kind == "video":
            infer_video(predict, path, batch_size, run, progress)
            continue
        try:
            batch.append((path, read_image(path)))
        except ImageReadError as exc:
            run.fail(str(exc))
            progress.update(1)
            continue
        if len(batch) == batch_size:
            _infer_images(predict, batch, run, progress)
            batch = []
    if batch:
        _infer_images(predict, batch, run, progress)


def _stopped(run: InferRun, reason: str, code: int) -> CliError:
    """The error for a run that stopped: its index written for what was done (when the disk lets it), and a summary."""
    try:
        run.write_index()
    except OSError:
        pass  # the summary says which of the two is missing
    return CliError(f"{reason} after {run.num_images} images; {run.summary()}", code)


def _run_infer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    weights_path(args)
    inputs = _collect_inputs(args.paths)  # bad paths fail before the model is loaded
    _check_output_dir(args.output)
    predictor = build_predictor(args)
    args.output.mkdir(parents=True, exist_ok=True)
    run = InferRun.for_inputs(args.output, args.render, inputs)
    total = sum(1 if kind == "image" else frame_count(path) for kind, path in inputs)
    try:
        with tqdm(total=total, unit="img", desc="infer", disable=progress_disabled(args.no_progress),
                  file=sys.stderr) as progress:
            _run_inputs(predictor, inputs, args.batch_size, run, progress)
        run.write_index()
    except KeyboardInterrupt:
        raise _stopped(run, "interrupted", EXIT_INTERRUPTED) from None
    except OSError as exc:  # a full disk, a folder that became unwritable
        raise _stopped(run, f"stopped: {describe_os_error(exc)}", EXIT_FAILURE) from None
    print(f"{run.num_images} images, {run.num_people} people, {len(run.failures)} failures; outputs in {args.output}")
    for message in run.failures:
        print(f"  failed: {message}", file=sys.stderr)
    return EXIT_FAILURE if run.failures else EXIT_OK
