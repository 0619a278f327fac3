"""``openpose-lite infer``: images, folders and videos -> OpenPose JSON, COCO results, drawings."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK, CliError, _write_json_atomic
from openpose_lite.cli.models_args import _add_predictor_args, _add_weights_args, _build_predictor, _weights_path


# --------------------------------------------------------------------------------------- infer
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# OpenPose names per-frame outputs <video>_<frame number, 12 digits>_keypoints.json.
_FRAME_DIGITS = 12


def _add_infer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="people in images, folders and videos -> OpenPose JSON, COCO results, drawings",
        description="Runs a model on images, folders of images/videos and video files: the bottom-up model, or a "
        "top-down one (HRNet) on person boxes from --boxes or --person-detector. Writes "
        "<stem>_keypoints.json per image (OpenPose JSON 1.3; video frames: <video stem>_<frame:012d>_keypoints.json), "
        "results_coco.json (COCO keypoint results for the whole run) and images.json (image_id -> file), and "
        "with --render <stem>_rendered.jpg or <video stem>_rendered.mp4. Unreadable inputs are reported and "
        "skipped; the exit code is then 1.",
    )
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files, video files or folders of them")
    _add_weights_args(p)
    _add_predictor_args(p)
    p.add_argument("--output", "-o", type=Path, default=Path("openpose_output"), help="output folder")
    p.add_argument("--render", action="store_true", help="also write the images (or videos) with the people drawn")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class _InferRun:
    """What one infer run has written so far."""

    out_dir: Path
    render: bool
    coco_results: list = field(default_factory=list)
    images: dict = field(default_factory=dict)  # image_id (str) -> {"file", "frame", "json"}
    reserved_ids: set = field(default_factory=set)  # the numeric file stems of the run's images
    used_ids: set = field(default_factory=set)
    used_stems: set = field(default_factory=set)
    next_id: int = 1
    num_images: int = 0
    num_people: int = 0
    failures: list = field(default_factory=list)

    def image_id(self, stem: str | None) -> int:
        """The COCO id when the file name is a number (COCO names its images so), else a running index.

        Running indices skip every numeric stem of the run (:attr:`reserved_ids`), so an image named
        ``1.jpg`` keeps id 1 even when a video frame or ``a.jpg`` comes first.
        """
        if stem is not None and stem.isdigit() and int(stem) not in self.used_ids:
            self.used_ids.add(int(stem))
            return int(stem)
        while self.next_id in self.used_ids or self.next_id in self.reserved_ids:
            self.next_id += 1
        self.used_ids.add(self.next_id)
        return self.next_id

    def unique_stem(self, stem: str) -> str:
        """``stem``, or ``stem-2``, ``stem-3`` ... when two inputs share a name (their outputs would collide)."""
        candidate, n = stem, 1
        while candidate in self.used_stems:
            n += 1
            candidate = f"{stem}-{n}"
        self.used_stems.add(candidate)
        return candidate

    def record(self, poses, name: str, file: Path, frame: int | None) -> None:
        """Write one image's OpenPose JSON and remember its COCO results."""
        json_name = f"{name}_keypoints.json"
        _write_json_atomic(self.out_dir / json_name, poses.to_openpose_json())
        image_id = self.image_id(name if frame is None else None)  # video frames: running index
        self.coco_results.extend(poses.to_coco(image_id))
        self.images[str(image_id)] = {"file": str(file), "frame": frame, "json": json_name}
        self.num_images += 1
        self.num_people += len(poses)

    def fail(self, message: str) -> None:
        from tqdm import tqdm

        self.failures.append(message)
        tqdm.write(f"openpose-lite infer: {message} (skipped)", file=sys.stderr)


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


def _frame_count(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()


def _write_image_atomic(path: Path, image) -> None:
    import cv2

    from openpose_lite.io import atomic_write

    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"could not encode {path}")
    atomic_write(path, lambda fh: fh.write(data.tobytes()), binary=True)


def _infer_images(predictor, batch: list[tuple[Path, object]], run: _InferRun, progress) -> None:
    from openpose_lite.viz import draw_poses

    # Box files name images by COCO id, which COCO file names carry.
    ids = [int(path.stem) if path.stem.isdigit() else None for path, _ in batch]
    all_poses = predictor.predict_batch([image for _, image in batch], ids)
    for (path, image), poses in zip(batch, all_poses):
        name = run.unique_stem(path.stem)
        run.record(poses, name, path, None)
        if run.render:
            _write_image_atomic(run.out_dir / f"{name}_rendered.jpg", draw_poses(image, poses))
    progress.update(len(batch))


class _NoFrames(Exception):
    pass


def _infer_video(predictor, path: Path, batch_size: int, run: _InferRun, progress) -> None:
    """Every frame of one video, in batches; with --render, an mp4 written to a temporary name and renamed when complete."""
    import cv2

    from openpose_lite.io import atomic_write_path

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        run.fail(f"cannot open video {path}")
        return
    name = run.unique_stem(path.stem)
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and 0 < fps < 1000 else 30.0

    def process(render_path: str | None) -> None:
        writer = None
        frame_index = 0
        try:
            while True:
                frames = []
                while len(frames) < batch_size:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    frames.append(frame)
                if not frames:
                    break
                for frame, poses in zip(frames, predictor.predict_batch(frames, [None] * len(frames))):
                    run.record(poses, f"{name}_{frame_index:0{_FRAME_DIGITS}d}", path, frame_index)
                    if render_path is not None:
                        from openpose_lite.viz import draw_poses

                        if writer is None:
                            size = (frame.shape[1], frame.shape[0])
                            writer = cv2.VideoWriter(render_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                            if not writer.isOpened():
                                raise ValueError(f"cannot write {render_path} with OpenCV's mp4v codec")
                        writer.write(draw_poses(frame, poses))
                    frame_index += 1
                progress.update(len(frames))
        finally:
            if writer is not None:
                writer.release()
        if frame_index == 0:
            raise _NoFrames

    try:
        if run.render:
            atomic_write_path(run.out_dir / f"{name}_rendered.mp4", process)
        else:
            process(None)
    except _NoFrames:
        run.fail(f"no frame could be read from video {path}")
    finally:
        capture.release()


def _run_infer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from openpose_lite.images import ImageReadError, read_image

    _weights_path(args)
    inputs = _collect_inputs(args.paths)  # bad paths fail before the model is loaded
    predictor = _build_predictor(args)
    args.output.mkdir(parents=True, exist_ok=True)
    reserved = {int(path.stem) for kind, path in inputs if kind == "image" and path.stem.isdigit()}
    run = _InferRun(out_dir=args.output, render=args.render, reserved_ids=reserved)
    total = sum(1 if kind == "image" else _frame_count(path) for kind, path in inputs)
    with tqdm(total=total, unit="img", desc="infer", disable=True if args.no_progress else None, file=sys.stderr) as progress:
        batch: list[tuple[Path, object]] = []
        for kind, path in inputs:
            if kind == "video":
                _infer_video(predictor, path, args.batch_size, run, progress)
                continue
            try:
                image = read_image(path)
            except ImageReadError as exc:
                run.fail(str(exc))
                progress.update(1)
                continue
            batch.append((path, image))
            if len(batch) == args.batch_size:
                _infer_images(predictor, batch, run, progress)
                batch = []
        if batch:
            _infer_images(predictor, batch, run, progress)

    _write_json_atomic(args.output / "results_coco.json", run.coco_results)
    _write_json_atomic(args.output / "images.json", run.images)
    print(f"{run.num_images} images, {run.num_people} people, {len(run.failures)} failures; outputs in {args.output}")
    for message in run.failures:
        print(f"  failed: {message}", file=sys.stderr)
    return EXIT_FAILURE if run.failures else EXIT_OK
