"""What a run writes into its output folder (the rows of :data:`WRITERS`, then ``results_coco.json`` and
``images.json``: image id -> file, frame, JSON name), atomically, and how it names it.

Names and ids never depend on the order the work is done in or on how it is split between workers:
every input's output name is fixed before the first image is read (:func:`output_names`), and image
ids are handed out when the index is written, in input order: the numeric file stem (COCO's naming)
where there is one, else a running index that skips every numeric stem of the run. With ``append``
(:class:`InferFolder`) names and ids also avoid the folder's, and the index covers every image of it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openpose_lite.io import (
    MAX_CONFIG_BYTES,
    atomic_write,
    plural,
    read_json,
    replace_from_temp,
    temp_sibling,
    write_json_atomic,
)
from openpose_lite.output_folder import OutputFolder
from openpose_lite.runs.model_record import MODEL_RECORD, RESULTS_CATEGORY_ID, ModelRecord
from openpose_lite.skeleton import COCO_17
from openpose_lite.structures import Poses

__all__ = ["FRAME_DIGITS", "WRITERS", "InferFolder", "InferRun", "RenderedVideo", "Writer", "close_videos",
           "entry_order", "open_videos", "output_names", "write_files", "write_index"]

# OpenPose names per-frame outputs <video>_<frame number, 12 digits>_keypoints.json.
FRAME_DIGITS = 12


class RenderedVideo:
    """A video of the frames with their people drawn, written to a temporary name beside its target
    and renamed when complete: :meth:`discard` (or a video with no frame) leaves nothing behind."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps or 30.0  # a header without a rate: OpenCV's writer needs one
        self.tmp: Path | None = None  # made with the first frame, named as atomic writes name theirs
        self.writer = None
        self.start: float | None = None  # live: the first frame's capture time
        self.slots = 0  # frames written
        self.last: np.ndarray | None = None

    def add(self, image: np.ndarray, poses: Poses, at: float | None = None) -> None:
        """Draw ``poses`` on ``image`` and write it; with ``at`` (a live frame's capture time, s) the frame
        before is held until then, so that the video plays at the processed rate."""
        from openpose_lite.viz import draw_poses

        drawn = draw_poses(image, poses)
        if at is not None:
            self.start = at if self.start is None else self.start
            while self.last is not None and self.slots < int(round((at - self.start) * self.fps)):
                self._write(self.last)
            self.last = drawn
        self._write(drawn)

    def _write(self, frame: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            h, w = frame.shape[:2]
            self.tmp = temp_sibling(self.path)
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (int(w), int(h)))
            if not self.writer.isOpened():
                self.discard()
                raise ValueError(f"cannot write {self.path} with OpenCV's mp4v codec")
        self.writer.write(frame)
        self.slots += 1

    def close(self) -> bool:
        """Finish the file and move it into place; False (and no file) when no frame was written."""
        if self.writer is None:
            return False
        self.writer.release()
        self.writer = None
        replace_from_temp(self.tmp, self.path)
        return True

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None and self.tmp.exists():
            self.tmp.unlink()


@dataclass(frozen=True)
class Writer:
    """One kind of output file: ``<output name><suffix>``, counted as ``words``, written per ``image`` (images
    and frames), ``still`` (images only) or ``video`` (``write`` makes the object frames are added to)."""

    name: str
    suffix: str
    words: str
    per: str
    write: Callable


def _keypoints(path: Path, image: np.ndarray, poses: Poses) -> None:
    write_json_atomic(path, poses.to_openpose_dict())


def _rendered(path: Path, image: np.ndarray, poses: Poses) -> None:
    import cv2

    from openpose_lite.viz import draw_poses

    ok, data = cv2.imencode(path.suffix, draw_poses(image, poses))
    if not ok:
        raise ValueError(f"could not encode {path}")
    atomic_write(path, lambda fh: fh.write(data.tobytes()), binary=True)


# What a run can write, in the order the folder's files are counted in messages.
WRITERS = (
    Writer("keypoints", "_keypoints.json", "keypoint file", "image", _keypoints),
    Writer("rendered_image", "_rendered.jpg", "rendered image", "still", _rendered),
    Writer("rendered_video", "_rendered.mp4", "rendered video", "video", RenderedVideo),
)


def write_files(out_dir: Path, name: str, image: np.ndarray, poses: Poses, writers: Collection[str],
                per: tuple[str, ...], written: Counter) -> None:
    """Write the files of the rows of :data:`WRITERS` in ``writers`` written ``per`` one of ``per``."""
    for w in WRITERS:
        if w.per in per and w.name in writers:
            w.write(out_dir / f"{name}{w.suffix}", image, poses)
            written[w.words] += 1


def open_videos(out_dir: Path, name: str, fps: float, writers: Collection[str]) -> list[tuple[Writer, object]]:
    """(row, open file) of each per-video row of :data:`WRITERS` in ``writers``."""
    return [(w, w.write(out_dir / f"{name}{w.suffix}", fps)) for w in WRITERS if w.per == "video" and w.name in writers]


def close_videos(videos: list[tuple[Writer, object]], keep: bool, written: Counter) -> None:
    """Finish the files :func:`open_videos` opened (``written`` counts them), or discard them."""
    for row, video in videos:
        if not keep:
            video.discard()
        elif video.close():
            written[row.words] += 1


def _suffixes(*per: str) -> tuple[str, ...]:
    return tuple(w.suffix for w in WRITERS if w.per in per)


def output_names(inputs: Sequence[tuple[str, Path]], taken: set[str] = frozenset()) -> list[str]:
    """The output name of every input ((kind, path)), unique within the run: ``stem``, or ``stem-2`` ... when
    an earlier input, a file name ``taken`` in the folder, or (videos) an image named like one of its frames
    has it."""
    image_stems = {path.stem for kind, path in inputs if kind == "image"}
    held = {name[: -len(s)] for name in taken for s in _suffixes("image") if name.endswith(s)}
    used: set[str] = set()
    names = []
    for kind, path in inputs:
        def clashes(name: str) -> bool:
            if kind != "video":
                return any(f"{name}{s}" in taken for s in _suffixes("image", "still"))
            pattern = re.compile(re.escape(name) + rf"_\d{{{FRAME_DIGITS}}}")
            return (any(pattern.fullmatch(s) for s in image_stems | held)
                    or any(f"{name}{s}" in taken for s in _suffixes("image", "video")))

        candidate, n = path.stem, 1
        while candidate in used or clashes(candidate):
            n += 1
            candidate = f"{path.stem}-{n}"
        used.add(candidate)
        names.append(candidate)
    return names


def write_index(out_dir: Path, results: list[dict], images: dict[str, dict], model: ModelRecord | None,
                written: Counter | None = None) -> None:
    """``results_coco.json`` and ``images.json`` (``written`` counts each), after the model record if none."""
    if model is not None:
        model.keep_in(out_dir)
    for name, data in (("results_coco.json", results), ("images.json", images)):
        write_json_atomic(out_dir / name, data)
        if written is not None:
            written[name] += 1


class InferFolder(OutputFolder):
    """A run's output folder, with the index and model record of the earlier run(s) for ``append``."""

    RUN_FILES = tuple((f"*{w.suffix}", w.words) for w in WRITERS) + (
        ("results_coco.json", None), ("images.json", None))
    RECORDS = (MODEL_RECORD,)
    OPTION = "--output"
    WAYS = ("add to it with --append", "replace it with --overwrite")
    _AGAIN = "replace the earlier run with --overwrite"

    def taken_names(self) -> set[str]:
        """The names of the files this folder holds (what a new run's names must not take)."""
        return {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()

    def previous_index(self, model: ModelRecord) -> tuple[list[dict], dict[str, dict]]:
        """(results, images) of the earlier run(s) the folder holds, to which ``append`` adds ``model``'s
        outputs. ValueError for outputs without a readable index, and for another model's. Outputs without
        a record are taken to be a person model's when their results have 17 keypoints each (or none)."""
        held = self.run_files()
        if not held:
            return [], {}
        index = (self.path / "results_coco.json", self.path / "images.json")
        if not all(p.is_file() for p in index):
            raise self.refusal(held, "holds outputs without their index (a run stopped before writing it)",
                               ["replace them with --overwrite"])
        try:
            results, images = read_json(index[0], "results file"), read_json(index[1], "image index")
        except (OSError, ValueError) as exc:
            raise ValueError(f"--append: {exc}; {self._AGAIN}, or choose another --output") from None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise ValueError(f"--append: {index[0]}: expected a list of COCO results; {self._AGAIN}")
        if not isinstance(images, dict) or not all(k.isdigit() and isinstance(v, dict) for k, v in images.items()):
            raise ValueError(f"--append: {index[1]}: expected an object of image ids; {self._AGAIN}")
        ways = "replace them with --overwrite, or choose another --output"
        record = self.path / MODEL_RECORD
        if record.is_symlink() or record.exists():
            try:
                recorded = ModelRecord.from_dict(read_json(record, "model record", MAX_CONFIG_BYTES), str(record))
            except (OSError, ValueError) as exc:
                raise ValueError(f"--append: {exc}; {self._AGAIN}, or choose another --output") from None
            why = recorded.difference(model)
            if why is not None:
                raise ValueError(f"--append: {self.path} holds the outputs of {recorded.describe()}, and this run's "
                                 f"model is {model.describe()}: {why}; a folder holds one model's outputs: {ways}")
            return results, images
        sizes = sorted({len(r["keypoints"]) // 3 for r in results if isinstance(r.get("keypoints"), list)})
        if model.keypoints != COCO_17.keypoints or sizes not in ([], [len(model.keypoints)]):
            held_words = f"results of {' and '.join(map(str, sizes))} keypoints" if sizes else "outputs"
            raise ValueError(f"--append: {self.path} holds {held_words} without a record of their model "
                             f"({MODEL_RECORD}), which only a person model's of 17 keypoints may join, and this run's "
                             f"model is {model.describe()}; a folder holds one model's outputs: {ways}")
        return results, images


def entry_order(entry: dict) -> tuple[int, int]:
    """An index entry's place in the run: its input's, then its frame's (an image before any frame)."""
    return entry["input"], -1 if entry["frame"] is None else entry["frame"]


@dataclass
class InferRun:
    """What one run over files has written so far (its entries, by input and frame) and what failed."""

    out_dir: Path
    writers: Collection[str]
    inputs: list[tuple[str, Path]]
    names: list[str]
    entries: list[dict] = field(default_factory=list)  # {"input", "frame", "json", "results"}
    failures: list[tuple[str, int | None]] = field(default_factory=list)  # (message, input index or None)
    written: Counter = field(default_factory=Counter)  # kind of file -> how many
    # append: the earlier run's (results, images), kept in the index with their ids
    previous: tuple[list[dict], dict[str, dict]] = field(default_factory=lambda: ([], {}))
    # recorded with the index where the folder has none yet (None: no record)
    model: ModelRecord | None = None

    @classmethod
    def for_inputs(cls, out_dir: Path, writers: Collection[str], inputs: Sequence[tuple[str, Path]],
                   taken: set[str] = frozenset(), previous: tuple[list[dict], dict[str, dict]] = ([], {}),
                   model: ModelRecord | None = None) -> "InferRun":
        """A run over ``inputs`` ((kind, path)), their names fixed here avoiding those ``taken``;
        ``previous``: the index of the run appended to; ``model``: recorded with the index."""
        return cls(out_dir, frozenset(writers), list(inputs), output_names(inputs, taken), previous=previous,
                   model=model)

    def record(self, index: int, frame: int | None, image: np.ndarray, poses: Poses) -> str:
        """Write one image's (or video frame's) files and keep its COCO results; returns its output name."""
        name = self.names[index] if frame is None else f"{self.names[index]}_{frame:0{FRAME_DIGITS}d}"
        entry = {"input": index, "frame": frame, "json": f"{name}_keypoints.json",
                 "results": poses.to_coco(0, RESULTS_CATEGORY_ID)}
        per = ("image",) if frame is not None else ("image", "still")
        write_files(self.out_dir, name, image, poses, self.writers, per, self.written)
        self.entries.append(entry)
        return name

    def unprocessed(self) -> list[Path]:
        """The inputs that neither an entry nor a failure mentions: what a stopped run did not reach."""
        seen = {e["input"] for e in self.entries} | {index for _, index in self.failures}
        return [path for n, (_, path) in enumerate(self.inputs) if n not in seen]

    def index(self) -> tuple[list[dict], dict[str, dict]]:
        """(results_coco, images) of the entries after the earlier run's (``append``), ids in input order."""
        reserved = {int(path.stem) for kind, path in self.inputs if kind == "image" and path.stem.isdigit()}
        results, images = list(self.previous[0]), dict(self.previous[1])
        used = {int(key) for key in images}
        next_id = 1
        for entry in sorted(self.entries, key=entry_order):
            kind, path = self.inputs[entry["input"]]
            stem = path.stem if entry["frame"] is None else None  # video frames: running index
            if stem is not None and stem.isdigit() and int(stem) not in used:
                image_id = int(stem)
            else:
                while next_id in used or next_id in reserved:
                    next_id += 1
                image_id = next_id
            used.add(image_id)
            results.extend({**r, "image_id": image_id} for r in entry["results"])
            images[str(image_id)] = {"file": str(path), "frame": entry["frame"], "json": entry["json"]}
        return results, images

    def write_index(self) -> None:
        write_index(self.out_dir, *self.index(), self.model, self.written)

    def summary(self) -> str:
        """What is on disk: ``wrote 12 keypoint files, results_coco.json and images.json to out``."""
        parts = [plural(n, kind) for kind, n in self.written.items() if not kind.endswith(".json") and n]
        parts += [kind for kind in ("results_coco.json", "images.json") if self.written[kind]]
        missing = [kind for kind in ("results_coco.json", "images.json") if not self.written[kind]]
        listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else (parts[0] if parts else "nothing")
        text = f"wrote {listed} to {self.out_dir}"
        return text + (f" ({' and '.join(missing)} not written)" if missing else "")
