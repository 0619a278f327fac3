"""What ``openpose-lite infer`` writes, and how it names it; the progress-bar rule of every command.

Per image ``<name>_keypoints.json`` (OpenPose JSON 1.3), per video frame
``<video name>_<frame, 12 digits>_keypoints.json`` (OpenPose's naming), with ``--render``
``<name>_rendered.jpg`` / ``<video name>_rendered.mp4``; for the whole run ``results_coco.json``
(COCO keypoint results) and ``images.json`` (image id -> file, frame, JSON name). Every file is
written atomically (:mod:`openpose_lite.io`), so a stopped run leaves whole files only.

Names and ids never collide within a run: two inputs with one stem get ``stem``, ``stem-2``
...; a video whose frame names an image of the run would take (``clip.mp4`` beside
``clip_000000000003.jpg``) is named ``clip-2``; image ids are the numeric file stems (COCO's
naming) and a running index, which skips them, for everything else.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openpose_lite.io import atomic_write, atomic_write_path, write_json_atomic
from openpose_lite.structures import Poses

__all__ = ["FRAME_DIGITS", "InferRun", "frame_count", "infer_video", "progress_disabled", "write_image_atomic"]

# OpenPose names per-frame outputs <video>_<frame number, 12 digits>_keypoints.json.
FRAME_DIGITS = 12

# predict(images, image_ids=None): per image its Poses, or the reason it failed (a message).
Predict = Callable[..., list]


def progress_disabled(no_progress: bool = False) -> bool:
    """Whether to hide progress bars: when asked to, or when stderr is not a terminal (a pipe, a log file)."""
    return no_progress or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


@dataclass
class InferRun:
    """What one infer run has written so far, and the names and ids it has handed out."""

    out_dir: Path
    render: bool
    reserved_ids: set[int] = field(default_factory=set)  # the numeric file stems of the run's images
    image_stems: frozenset[str] = frozenset()  # every image stem of the run, known before the first is read
    coco_results: list[dict] = field(default_factory=list)
    images: dict[str, dict] = field(default_factory=dict)  # image_id (str) -> {"file", "frame", "json"}
    used_ids: set[int] = field(default_factory=set)
    used_names: set[str] = field(default_factory=set)
    next_id: int = 1
    num_images: int = 0
    num_people: int = 0
    failures: list[str] = field(default_factory=list)
    written: Counter = field(default_factory=Counter)  # kind of file -> how many

    @classmethod
    def for_inputs(cls, out_dir: Path, render: bool, inputs: Sequence[tuple[str, Path]]) -> "InferRun":
        """A run over ``inputs`` ((kind, path) with kind "image" or "video")."""
        stems = [path.stem for kind, path in inputs if kind == "image"]
        return cls(out_dir, render, reserved_ids={int(s) for s in stems if s.isdigit()}, image_stems=frozenset(stems))

    # ---------------------------------------------------------------- names and ids
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

    def _claim(self, stem: str, clashes: Callable[[str], bool] = lambda name: False) -> str:
        candidate, n = stem, 1
        while candidate in self.used_names or clashes(candidate):
            n += 1
            candidate = f"{stem}-{n}"
        self.used_names.add(candidate)
        return candidate

    def image_name(self, stem: str) -> str:
        """``stem``, or ``stem-2``, ``stem-3`` ... when an earlier output of the run took it."""
        return self._claim(stem)

    def video_name(self, stem: str) -> str:
        """Like :meth:`image_name`, and no image of the run is named like one of the video's frames."""
        def clashes(name: str) -> bool:
            pattern = re.compile(re.escape(name) + rf"_\d{{{FRAME_DIGITS}}}")
            return any(pattern.fullmatch(s) for s in self.image_stems)

        return self._claim(stem, clashes)

    # ---------------------------------------------------------------- writing
    def record(self, poses: Poses, name: str, file: Path, frame: int | None) -> None:
        """Write one image's (or frame's) OpenPose JSON and remember its COCO results."""
        json_name = f"{name}_keypoints.json"
        write_json_atomic(self.out_dir / json_name, poses.to_openpose_json())
        self.written["keypoint files"] += 1
        image_id = self.image_id(name if frame is None else None)  # video frames: running index
        self.coco_results.extend(poses.to_coco(image_id))
        self.images[str(image_id)] = {"file": str(file), "frame": frame, "json": json_name}
        self.num_images += 1
        self.num_people += len(poses)

    def record_image(self, path: Path, image: np.ndarray, poses: Poses) -> None:
        """One image's outputs: its JSON and, with ``render``, its drawing."""
        name = self.image_name(path.stem)
        self.record(poses, name, path, None)
        if self.render:
            from openpose_lite.viz import draw_poses

            write_image_atomic(self.out_dir / f"{name}_rendered.jpg", draw_poses(image, poses))
            self.written["rendered images"] += 1

    def fail(self, message: str, skipped: bool = True) -> None:
        """Note an input that failed (listed again in the summary) and say so now."""
        from tqdm import tqdm

        self.failures.append(message)
        tqdm.write(f"openpose-lite infer: {message}{' (skipped)' if skipped else ''}", file=sys.stderr)

    def write_index(self) -> None:
        """The run's ``results_coco.json`` and ``images.json`` (for what was recorded so far)."""
        write_json_atomic(self.out_dir / "results_coco.json", self.coco_results)
        self.written["results_coco.json"] += 1
        write_json_atomic(self.out_dir / "images.json", self.images)
        self.written["images.json"] += 1

    def summary(self) -> str:
        """What is on disk: ``wrote 12 keypoint files, results_coco.json and images.json to out``."""
        parts = [f"{n} {kind}" for kind, n in self.written.items() if not kind.endswith(".json") and n]
        parts += [kind for kind in ("results_coco.json", "images.json") if self.written[kind]]
        missing = [kind for kind in ("results_coco.json", "images.json") if not self.written[kind]]
        listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else (parts[0] if parts else "nothing")
        text = f"wrote {listed} to {self.out_dir}"
        return text + (f" ({' and '.join(missing)} not written)" if missing else "")


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` by ``path``'s extension and write it atomically."""
    import cv2

    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"could not encode {path}")
    atomic_write(path, lambda fh: fh.write(data.tobytes()), binary=True)


# ---------------------------------------------------------------------------------- videos
def frame_count(path: Path) -> int:
    """The frame count a video's header announces (0 when unknown or unreadable)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()


def infer_video(predict: Predict, path: Path, batch_size: int, run: InferRun, progress) -> None:
    """Every frame of one video, in batches: a JSON per frame and, with ``render``, an mp4.

    The mp4 is written to a temporary name and renamed when complete. A video that cannot be
    opened, or ends before the frame count of its header (truncated), is reported as a failure;
    the frames that were read keep their outputs. A frame that fails is reported and skipped.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        run.fail(f"cannot open video {path}")
        return
    name = run.video_name(path.stem)
    announced = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and 0 < fps < 1000 else 30.0
    read = 0

    def process(render_path: str | None) -> None:
        nonlocal read
        writer = None
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
                for frame, poses in zip(frames, predict(frames)):
                    if isinstance(poses, str):
                        run.fail(f"{path}, frame {read}: {poses}")
                    else:
                        run.record(poses, f"{name}_{read:0{FRAME_DIGITS}d}", path, read)
                        if render_path is not None:
                            writer = writer or _open_video_writer(render_path, fps, frame.shape[:2])
                            from openpose_lite.viz import draw_poses

                            writer.write(draw_poses(frame, poses))
                    read += 1
                progress.update(len(frames))
        finally:
            if writer is not None:
                writer.release()
        if render_path is not None and writer is None:
            raise _NothingRendered  # no empty mp4: atomic_write_path removes its temporary file

    try:
        if run.render:
            atomic_write_path(run.out_dir / f"{name}_rendered.mp4", process)
            run.written["rendered videos"] += 1
        else:
            process(None)
    except _NothingRendered:
        pass
    finally:
        capture.release()
    if read == 0:
        run.fail(f"no frame could be read from video {path}")
    elif read < announced:
        run.fail(f"video {path}: read {read} of the {announced} frames its header announces (truncated or "
                 "damaged); the frames read have their outputs", skipped=False)


class _NothingRendered(Exception):
    """No frame of a video was drawn, so there is no rendered video to keep."""


def _open_video_writer(path: str, fps: float, frame_hw: tuple[int, int]):
    import cv2

    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (int(frame_hw[1]), int(frame_hw[0])))
    if not writer.isOpened():
        raise ValueError(f"cannot write {path} with OpenCV's mp4v codec")
    return writer
