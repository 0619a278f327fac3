"""What ``openpose-lite infer`` writes, and how it names it; the progress-bar rule and the image-size
options of every command.

Per image ``<name>_keypoints.json`` (OpenPose JSON 1.3), per video frame
``<video name>_<frame, 12 digits>_keypoints.json`` (OpenPose's naming), with ``--render``
``<name>_rendered.jpg`` / ``<video name>_rendered.mp4``; for the whole run ``results_coco.json``
(COCO keypoint results) and ``images.json`` (image id -> file, frame, JSON name). Every file is
written atomically (:mod:`openpose_lite.io`), so a stopped run leaves whole files only.

Names and ids never collide within a run, and do not depend on the order the work is done in
or on how it is split between processes: every input's output name is fixed before the first
image is read (two inputs with one stem get ``stem``, ``stem-2`` ...; a video whose frame names
an image of the run would take is named ``clip-2``), and the image ids of ``results_coco.json``
are handed out when the index is written, in input order: the numeric file stem (COCO's naming)
where there is one, else a running index that skips every numeric stem of the run.

The output folder follows the rule of every output folder (:mod:`openpose_lite.output_folder`,
:class:`InferFolder`): one that holds another run's outputs is refused unless ``--overwrite``
(its files are removed first) or ``--append``: the new run's names then avoid the earlier ones,
its image ids avoid theirs, and ``results_coco.json`` and ``images.json`` cover every image of
the folder, earlier and new. A folder's outputs are one model's: the index is written with a
record of it (:mod:`openpose_lite.cli.model_record`: the weights file and the SHA-256 of its
content, the skeleton and category of the results), and ``--append`` of another model (another
skeleton, other weights) is refused naming both, before anything is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openpose_lite.cli.errors import CliError
from openpose_lite.cli.model_record import MODEL_RECORD, RESULTS_CATEGORY_ID, ModelRecord
from openpose_lite.cli.shards import Gathered, Journal
from openpose_lite.io import (
    MAX_CONFIG_BYTES,
    atomic_write,
    file_problem,
    plural,
    read_json,
    replace_from_temp,
    temp_sibling,
    write_json_atomic,
)
from openpose_lite.output_folder import OutputFolder
from openpose_lite.skeleton import COCO_17
from openpose_lite.structures import Poses

__all__ = ["FRAME_DIGITS", "InferFolder", "InferRun", "VideoOutput", "add_folder_args", "add_image_limit_args",
           "frame_count", "output_names", "progress_disabled", "video_fps", "write_image_atomic"]

# OpenPose names per-frame outputs <video>_<frame number, 12 digits>_keypoints.json.
FRAME_DIGITS = 12


def _pixel_limit(text: str) -> int:
    from openpose_lite.images import check_max_pixels

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}")
    try:
        return check_max_pixels(int(value), "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).lstrip(": ")) from None


def add_image_limit_args(p: argparse.ArgumentParser, annotations: bool) -> None:
    """``--max-image-pixels`` (every command that reads images) and, for those that read image names
    from an annotation file (``annotations``), ``--images-anywhere``."""
    from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS

    p.add_argument("--max-image-pixels", type=_pixel_limit, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                   help="refuse an image of more than N pixels (width x height), read from its header before it "
                   "is decoded (default: %(default)s = 2^27, e.g. 16384 x 8192). Not --max-input-pixels, which "
                   "bounds the network input an image is scaled to")
    if annotations:
        p.add_argument("--images-anywhere", action="store_true",
                       help="let the annotation file's file_name be an absolute path or leave --images with '..' "
                       "(refused by default)")


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """``--overwrite`` / ``--append``: what infer does with an output folder that holds another run's outputs."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true",
                       help="replace the outputs of an earlier run in the output folder (its keypoint files, drawings and "
                       "index are removed first); without it, or --append, such a folder is refused")
    group.add_argument("--append", action="store_true",
                       help="add this run to the earlier one in the output folder, of the same model (skeleton and "
                       "weights; another is refused): new names and image ids avoid its ones, and results_coco.json "
                       "and images.json cover every image of the folder")


class InferFolder(OutputFolder):
    """``infer``'s output folder: the files of its runs, and the index of the earlier run(s) and the
    record of their model for ``--append``."""

    RUN_FILES = (("*_keypoints.json", "keypoint file"), ("*_rendered.jpg", "rendered image"),
                 ("*_rendered.mp4", "rendered video"), ("results_coco.json", None), ("images.json", None),
                 (".infer-shard-*.jsonl", "torchrun journal"))
    RECORDS = (MODEL_RECORD,)
    OPTION = "--output"
    WAYS = ("add to it with --append", "replace it with --overwrite")

    def recorded_model(self) -> ModelRecord | None:
        """The record of the model the folder's outputs are of; None where there is none.

        Raises CliError (exit 2) for a record that cannot be read.
        """
        path = self.path / MODEL_RECORD
        if not (path.is_symlink() or path.exists()):
            return None
        try:
            return ModelRecord.from_dict(read_json(path, "model record", MAX_CONFIG_BYTES), str(path))
        except (OSError, ValueError) as exc:
            raise CliError(f"--append: {exc}; replace the earlier run with --overwrite, or choose another --output") from None

    def check_model(self, model: ModelRecord, results: Sequence[dict]) -> None:
        """Refuse to add ``model``'s outputs (``--append``) to the folder's when they are another model's.

        ``results``: the folder's ``results_coco.json`` (:meth:`previous_index`). Outputs without a
        record (written before infer kept one, or by a live run) are taken to be a person model's,
        the default, when their results agree (a person's 17 keypoints each, or none): a person
        model may add to them, and the run records it; any other model is refused, since nothing
        says whose they are. Raises CliError (exit 2) naming both models.
        """
        if not self.run_files():
            return
        ways = "replace them with --overwrite, or choose another --output"
        recorded = self.recorded_model()
        if recorded is not None:
            why = recorded.difference(model)
            if why is not None:
                raise CliError(f"--append: {self.path} holds the outputs of {recorded.describe()}, and this run's "
                               f"model is {model.describe()}: {why}; a folder holds one model's outputs: {ways}")
            return
        person = model.keypoints == COCO_17.keypoints
        sizes = sorted({len(r["keypoints"]) // 3 for r in results if isinstance(r.get("keypoints"), list)})
        if not person or sizes not in ([], [len(model.keypoints)]):
            held = f"results of {' and '.join(map(str, sizes))} keypoints" if sizes else "outputs"
            raise CliError(f"--append: {self.path} holds {held} without a record of their model ({MODEL_RECORD}), "
                           f"which only a person model's of 17 keypoints may join, and this run's model is "
                           f"{model.describe()}; a folder holds one model's outputs: {ways}")

    def taken_names(self) -> set[str]:
        """The names of the files this folder holds (what a new run's names must not take)."""
        return {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()

    def previous_index(self) -> tuple[list[dict], dict[str, dict]]:
        """(results, images) of the earlier run(s) the folder holds, for ``--append``; empty for an empty folder.

        Raises CliError (exit 2) for outputs without a readable index (a run killed before it wrote
        one, or a torchrun run that did not finish): appending to them would leave images out of it.
        """
        held = self.run_files()
        if not held:
            return [], {}
        unfinished = [p for p in held if p.name.startswith(".infer-shard-")]
        if unfinished:
            raise self.refusal(held, "holds a torchrun run that did not finish (its journals are there)",
                               ["replace it with --overwrite"])
        index = (self.path / "results_coco.json", self.path / "images.json")
        if not all(p.is_file() for p in index):
            raise self.refusal(held, "holds outputs without their index (a run stopped before writing it)",
                               ["replace them with --overwrite"])
        try:
            results, images = read_json(index[0], "results file"), read_json(index[1], "image index")
        except (OSError, ValueError) as exc:
            raise CliError(f"--append: {exc}; replace the earlier run with --overwrite, or choose another --output") from None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise CliError(f"--append: {index[0]}: expected a list of COCO results; replace the earlier run with --overwrite")
        if not isinstance(images, dict) or not all(k.isdigit() and isinstance(v, dict) for k, v in images.items()):
            raise CliError(f"--append: {index[1]}: expected an object of image ids; replace the earlier run with --overwrite")
        return results, images


def progress_disabled(no_progress: bool = False) -> bool:
    """Whether to hide progress bars: when asked to, or when stderr is not a terminal (a pipe, a log file)."""
    return no_progress or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def output_names(inputs: Sequence[tuple[str, Path]], taken: set[str] = frozenset()) -> list[str]:
    """The output name of every input ((kind, path), kind "image" or "video"), unique within the run.

    ``stem``, or ``stem-2``, ``stem-3`` ... when an earlier input took it; a video is also kept
    from a name under which one of its frames would be named like an image of the run. ``taken``:
    file names already in the output folder (``--append``), whose outputs no name may overwrite.
    """
    image_stems = {path.stem for kind, path in inputs if kind == "image"}
    held = {name[: -len("_keypoints.json")] for name in taken if name.endswith("_keypoints.json")}
    used: set[str] = set()
    names = []
    for kind, path in inputs:
        def clashes(name: str) -> bool:
            if kind != "video":
                return name in held or f"{name}_rendered.jpg" in taken
            pattern = re.compile(re.escape(name) + rf"_\d{{{FRAME_DIGITS}}}")
            return (any(pattern.fullmatch(s) for s in image_stems | held) or name in held
                    or f"{name}_rendered.mp4" in taken)

        candidate, n = path.stem, 1
        while candidate in used or clashes(candidate):
            n += 1
            candidate = f"{path.stem}-{n}"
        used.add(candidate)
        names.append(candidate)
    return names


@dataclass
class InferRun:
    """What one infer run has written so far (its entries, by input and frame) and what failed."""

    out_dir: Path
    render: bool
    inputs: list[tuple[str, Path]]
    names: list[str]
    entries: list[dict] = field(default_factory=list)  # {"input", "frame", "json", "results"}
    failures: list[tuple[str, int | None]] = field(default_factory=list)  # (message, input index or None)
    written: Counter = field(default_factory=Counter)  # kind of file -> how many
    journal: Journal | None = None  # under torchrun: where each entry and failure is also written as it comes
    indexed: Gathered | None = None  # under torchrun, rank 0: what the index written holds (the journals are gone)
    # --append: the earlier run's (results, images), kept in the index with their ids
    previous: tuple[list[dict], dict[str, dict]] = field(default_factory=lambda: ([], {}))
    # recorded with the index where the folder has none yet (None: this process writes no index)
    model: ModelRecord | None = None

    @classmethod
    def for_inputs(cls, out_dir: Path, render: bool, inputs: Sequence[tuple[str, Path]], taken: set[str] = frozenset(),
                   previous: tuple[list[dict], dict[str, dict]] = ([], {}),
                   model: ModelRecord | None = None) -> "InferRun":
        """A run over ``inputs`` ((kind, path) with kind "image" or "video"); their names are fixed here,
        avoiding the file names ``taken`` in the folder; ``previous``: the index of the run appended to;
        ``model``: the run's model, recorded with the index (:data:`MODEL_RECORD`)."""
        return cls(out_dir, render, list(inputs), output_names(inputs, taken), previous=previous, model=model)

    @property
    def num_images(self) -> int:
        return len(self.entries)

    @property
    def num_people(self) -> int:
        return sum(len(e["results"]) for e in self.entries)

    # ---------------------------------------------------------------- writing
    def record(self, poses: Poses, index: int, frame: int | None) -> str:
        """Write one image's (or frame's) OpenPose JSON and keep its COCO results; returns its output name."""
        name = self.names[index] if frame is None else f"{self.names[index]}_{frame:0{FRAME_DIGITS}d}"
        json_name = f"{name}_keypoints.json"
        write_json_atomic(self.out_dir / json_name, poses.to_openpose_dict())
        self.written["keypoint file"] += 1
        entry = {"input": index, "frame": frame, "json": json_name, "results": poses.to_coco(0, RESULTS_CATEGORY_ID)}
        self.entries.append(entry)
        if self.journal is not None:
            self.journal.entry(entry)
        return name

    def record_image(self, index: int, image: np.ndarray, poses: Poses) -> None:
        """One image's outputs: its JSON and, with ``render``, its drawing."""
        name = self.record(poses, index, None)
        if self.render:
            from openpose_lite.viz import draw_poses

            write_image_atomic(self.out_dir / f"{name}_rendered.jpg", draw_poses(image, poses))
            self.written["rendered image"] += 1

    def fail(self, message: str, index: int | None = None, skipped: bool = True) -> None:
        """Note that input ``index`` failed (listed again in the summary) and say so now."""
        from tqdm import tqdm

        self.failures.append((message, index))
        if self.journal is not None:
            self.journal.failure(message, index)
        tqdm.write(f"openpose-lite infer: {message}{' (skipped)' if skipped else ''}", file=sys.stderr)

    def unprocessed(self, entries: Sequence[dict], failures: Sequence[tuple[str, int | None]]) -> list[Path]:
        """The inputs that neither ``entries`` nor ``failures`` mention: what a stopped run did not reach."""
        seen = {e["input"] for e in entries} | {index for _, index in failures}
        return [path for n, (_, path) in enumerate(self.inputs) if n not in seen]

    def index(self, entries: Sequence[dict] | None = None) -> tuple[list[dict], dict[str, dict]]:
        """(results_coco, images) of ``entries`` (default: this run's), ids handed out in input order,
        after the earlier run's (``--append``), whose ids they avoid."""
        reserved = {int(path.stem) for kind, path in self.inputs if kind == "image" and path.stem.isdigit()}
        results, images = list(self.previous[0]), dict(self.previous[1])
        used = {int(key) for key in images}
        next_id = 1
        for entry in sorted(entries if entries is not None else self.entries,
                            key=lambda e: (e["input"], -1 if e["frame"] is None else e["frame"])):
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

    def write_index(self, entries: Sequence[dict] | None = None) -> None:
        """The run's ``results_coco.json`` and ``images.json`` (for what was recorded so far), after the
        record of its model where the folder has none (a folder that has one holds this model's
        outputs: :meth:`InferFolder.check_model` saw to it, and the first record is kept)."""
        results, images = self.index(entries)
        if self.model is not None:
            self.model.keep_in(self.out_dir)
        write_json_atomic(self.out_dir / "results_coco.json", results)
        self.written["results_coco.json"] += 1
        write_json_atomic(self.out_dir / "images.json", images)
        self.written["images.json"] += 1

    def summary(self) -> str:
        """What is on disk: ``wrote 12 keypoint files, results_coco.json and images.json to out``."""
        parts = [plural(n, kind) for kind, n in self.written.items() if not kind.endswith(".json") and n]
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
def _header_value(path: Path, prop: str) -> float:
    """A property (``cv2.CAP_PROP_*`` name) of a video's header, 0.0 when the file cannot be opened
    (or is no regular file: a FIFO would block the reader)."""
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


def video_fps(path: Path) -> float:
    """The frame rate a video's header announces (0.0 when unknown, unreadable or implausible)."""
    fps = _header_value(path, "CAP_PROP_FPS")
    return fps if 0 < fps < 1000 else 0.0


class VideoOutput:
    """A rendered video written to a temporary name beside its target and renamed when complete.

    Nothing is left behind by a run that stops: :meth:`discard` (or a video with no frame) removes
    the temporary file, as the atomic writes of :mod:`openpose_lite.io` do for single files.
    """

    def __init__(self, path: Path, fps: float) -> None:
        """``fps``: the source's rate as :func:`video_fps` gives it (0.0: unknown)."""
        self.path = path
        self.fps = fps or 30.0  # a header without a rate: OpenCV's writer needs one
        self.tmp: Path | None = None  # made with the first frame, named as atomic writes name theirs
        self.writer = None

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            h, w = frame.shape[:2]
            self.tmp = temp_sibling(self.path)
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (int(w), int(h)))
            if not self.writer.isOpened():
                self.discard()
                raise ValueError(f"cannot write {self.path} with OpenCV's mp4v codec")
        self.writer.write(frame)

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
