"""A run's sources: image files, folders of images and videos, video files (:class:`Sources`, read as
a stream of images and decoded frames by :class:`FileStream`), or one live source, a camera index
or a stream URL (:class:`~openpose_lite.live.LiveSource`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS, IMAGE_EXTENSIONS
from openpose_lite.io import file_problem
from openpose_lite.live import LiveSource, is_stream_url

__all__ = ["VIDEO_EXTENSIONS", "FileStream", "Input", "Item", "Source", "Sources", "frame_count", "frames_to_read", "live_source_of",
           "sequence_units", "video_fps"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# A path (image, video, folder), a stream URL, a camera index, or a live source.
Source = Union[str, "os.PathLike[str]", int, LiveSource]


@dataclass(frozen=True)
class Input:
    kind: str  # "image" or "video"
    path: Path
    sequence: Path | None  # the folder it was listed from (images), the video itself, None for a lone image


def live_source_of(items: Sequence[Source]) -> LiveSource | None:
    """The live source among ``items``, else None (files); ValueError when it is not alone."""
    for item in items:
        live = item if isinstance(item, LiveSource) else (
            LiveSource(camera=item) if isinstance(item, int) else
            LiveSource(url=item) if isinstance(item, str) and is_stream_url(item) else None)
        if live is not None:
            if len(items) > 1:
                shown = live.name if isinstance(item, LiveSource) else item
                raise ValueError(f"a live source is read alone: {shown} cannot be combined with other inputs "
                                 f"(got {len(items)}); run one infer per source")
            return live
    return None


def _collect(paths: Sequence[Path]) -> list[Input]:
    """Every input; folders are listed (not recursively) in name order, each entry with an image or video
    extension an input whatever it is (one that is no regular file fails when it is read)."""
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    inputs: list[Input] = []
    for path in paths:
        problem = file_problem(path)
        if problem == "a folder":
            files = sorted(f for f in path.iterdir() if f.suffix.lower() in known and not f.is_dir())
            if not files:
                raise ValueError(f"{path}: the folder holds no images or videos (looked for {' '.join(known)})")
            listed_from: Path | None = path
        elif problem is None:
            if path.suffix.lower() not in known:
                raise ValueError(f"{path}: unsupported file type {path.suffix!r}; images: {' '.join(IMAGE_EXTENSIONS)}; "
                                 f"videos: {' '.join(VIDEO_EXTENSIONS)}")
            files, listed_from = [path], None
        elif problem == "not found":
            raise ValueError(f"input not found: {path}")
        else:
            raise ValueError(f"input {path}: is {problem}, not an image, a video or a folder")
        for f in files:
            video = f.suffix.lower() in VIDEO_EXTENSIONS
            inputs.append(Input("video" if video else "image", f, f if video else listed_from))
    return inputs


@dataclass(frozen=True)
class Sources:
    """What a run reads: ``inputs`` (images and videos, folders listed) or one ``live`` source."""

    inputs: tuple[Input, ...] = ()
    live: LiveSource | None = None

    @classmethod
    def of(cls, items: Sequence[Source]) -> "Sources":
        """The sources ``items`` name; ValueError naming a path that is missing, unsupported or no file."""
        if not items:
            raise ValueError("no sources: give images, videos or folders, a stream URL, or a camera index")
        live = live_source_of(items)
        return cls(live=live) if live is not None else cls(inputs=tuple(_collect([Path(p) for p in items])))


# ------------------------------------------------------------------------------- video headers
def _header_value(path: Path, prop: str) -> float:
    """A property (``cv2.CAP_PROP_*`` name) of a video's header; 0.0 for a file that cannot be opened."""
    import cv2

    if file_problem(path) is not None:
        return 0.0
    capture = cv2.VideoCapture(str(path))
    try:
        return float(capture.get(getattr(cv2, prop))) if capture.isOpened() else 0.0
    finally:
        capture.release()


def frame_count(path: Path) -> int:
    """The frame count a video's header announces (0 when unknown or unreadable)."""
    return max(0, int(_header_value(path, "CAP_PROP_FRAME_COUNT")))


def frames_to_read(inputs: Sequence[Input]) -> int:
    """How many images a run over ``inputs`` reads: one per image file, a video's announced frames."""
    return sum(1 if i.kind == "image" else frame_count(i.path) for i in inputs)


def video_fps(path: Path) -> float:
    """The frame rate a video's header announces (0.0 when unknown, unreadable or implausible)."""
    fps = _header_value(path, "CAP_PROP_FPS")
    return fps if 0 < fps < 1000 else 0.0


# ------------------------------------------------------------------------------- the stream
@dataclass
class Item:
    index: int  # the input's position in the run
    frame: int | None = None  # video frames: their index
    image: np.ndarray | None = None  # the pixels, once read (video frames: decoded by the reader)


def sequence_units(inputs: Sequence[Input], track: bool) -> list[list[int]]:
    """The inputs (positions) of each unit of work, in input order, which one worker of a spread run takes
        whole: a video; with ``track`` a folder of frames (tracked in name order); any other image alone."""

    def unit(i: Input) -> Path:
        return i.sequence if i.kind == "video" or (track and i.sequence is not None) else i.path

    units: dict[Path, list[int]] = {}
    for n, i in enumerate(inputs):
        units.setdefault(unit(i), []).append(n)
    return list(units.values())


class FileStream:
    """``inputs`` as a stream of items (images, and video frames decoded as they are read)."""

    def __init__(self, inputs: Sequence[Input], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        self.inputs = inputs
        self.max_pixels = max_pixels
        self.frames_read: dict[int, int] = {}
        self.unopened: dict[int, str] = {}  # videos that could not be opened: why

    def __iter__(self) -> Iterator[Item]:
        import cv2

        for n, item in enumerate(self.inputs):
            if item.kind == "image":
                yield Item(n)
                continue
            problem = file_problem(item.path)  # a FIFO would block the reader
            capture = cv2.VideoCapture(str(item.path)) if problem is None else None
            if capture is None or not capture.isOpened():
                self.unopened[n] = f": it is {problem}, not a regular file" if problem else ""
                continue
            read = 0
            try:
                while True:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    yield Item(n, read, frame)
                    read += 1
                    self.frames_read[n] = read
            finally:
                capture.release()

    def load(self, item: Item) -> np.ndarray | str:
        """The item's image (kept on the item for drawing), or why it has none."""
        if item.image is None:
            from openpose_lite.images import ImageReadError, read_image

            try:
                item.image = read_image(self.inputs[item.index].path, max_pixels=self.max_pixels)
            except ImageReadError as exc:
                return str(exc)
        return item.image

    def video_problems(self) -> Iterator[tuple[int, str, bool]]:
        """(input, message, skipped) of each video that could not be opened, gave no frame or was truncated."""
        for n, source in enumerate(self.inputs):
            if source.kind != "video":
                continue
            read, announced = self.frames_read.get(n, 0), frame_count(source.path)
            if n in self.unopened:
                yield n, f"cannot open video {source.path}{self.unopened[n]}", True
            elif read == 0:
                yield n, f"no frame could be read from video {source.path}", True
            elif read < announced:
                yield n, (f"video {source.path}: read {read} of the {announced} frames its header announces (truncated "
                          "or damaged); the frames read have their outputs"), False
