"""``openpose-lite infer``: images, folders and videos -> OpenPose JSON, COCO results, drawings.

Nothing one input does stops the others: an unreadable or degenerate image, a frame the model
fails on, a truncated video is reported, listed at the end and skipped (exit code 1). What stops
a run (Ctrl-C, a full disk) still leaves every file written so far whole, writes the run's
results_coco.json and images.json for what was done when it can, and says what is on disk.

Reading and preparing the next batch, and decoding and writing the last one, overlap the
network (:func:`openpose_lite.inference.pipeline.run_pipelined`; ``--no-pipeline`` runs the
steps one after another). ``--track`` follows people across the frames of each video and of each
folder of frames (in name order) and writes their ids. Under torchrun the inputs are shared out
between the processes (:mod:`openpose_lite.cli.shards`).

The output folder follows the rule of every output folder (:mod:`openpose_lite.output_folder`):
one holding another run's outputs is refused unless ``--overwrite`` or ``--append``, and the run
holds its lock from before the first write to the end (under torchrun, rank 0 does).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK, CliError, describe_os_error, interrupt_code, interrupt_word
from openpose_lite.cli.live import (
    add_live_args,
    check_tracking_options,
    live_source,
    path_or_url,
    run_live,
    tracker_params,
)
from openpose_lite.cli.model_record import ModelRecord
from openpose_lite.cli.models_args import add_predictor_args, add_weights_args, build_predictor, weights_path
from openpose_lite.cli.outputs import (
    InferFolder,
    InferRun,
    VideoOutput,
    add_folder_args,
    add_image_limit_args,
    frame_count,
    progress_disabled,
    video_fps,
)
from openpose_lite.cli.shards import Gathered, Shard, current_shard
from openpose_lite.images import IMAGE_EXTENSIONS
from openpose_lite.io import file_problem, plural
from openpose_lite.structures import Poses
from openpose_lite.tracking import TrackerParams

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
        "truncated videos are reported and skipped; the exit code is then 1. Under torchrun "
        "(torchrun --nproc_per_node N -m openpose_lite infer ...) the inputs are shared out between the processes.",
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


@dataclass(frozen=True)
class _Input:
    kind: str  # "image" or "video"
    path: Path
    sequence: Path | None  # the folder it was listed from (images), the video itself, None for a lone image


def _collect_inputs(paths: Sequence[Path]) -> list[_Input]:
    """Every input; folders are listed (not recursively) in name order.

    A folder's entries with an image or video extension are inputs whatever they are: one that is
    no regular file (a FIFO, a device, a symbolic link loop) fails when it is read, named.
    """
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    inputs: list[_Input] = []
    for path in paths:
        problem = file_problem(path)
        if problem == "a folder":
            files = sorted(f for f in path.iterdir() if f.suffix.lower() in known and not f.is_dir())
            if not files:
                raise CliError(f"{path}: the folder holds no images or videos (looked for {' '.join(known)})")
            listed_from: Path | None = path
        elif problem is None:
            if path.suffix.lower() not in known:
                raise CliError(f"{path}: unsupported file type {path.suffix!r}; images: {' '.join(IMAGE_EXTENSIONS)}; "
                               f"videos: {' '.join(VIDEO_EXTENSIONS)}")
            files, listed_from = [path], None
        elif problem == "not found":
            raise CliError(f"input not found: {path}")
        else:
            raise CliError(f"input {path}: is {problem}, not an image, a video or a folder")
        for f in files:
            video = f.suffix.lower() in VIDEO_EXTENSIONS
            inputs.append(_Input("video" if video else "image", f, f if video else listed_from))
    return inputs


def _check_options(args: argparse.Namespace, inputs: Sequence[_Input]) -> None:
    if args.output.exists() and not args.output.is_dir():
        raise CliError(f"--output {args.output}: is a file; infer writes a folder of outputs there, so name a folder "
                       "(new or existing)")
    check_tracking_options(args)
    if args.track:
        lone = [i.path for i in inputs if i.sequence is None]
        if lone:
            raise CliError(f"--track follows people from frame to frame: give a video or a folder of frames, not the "
                           f"single image {lone[0]}")


# ------------------------------------------------------------------------------- the stream
@dataclass
class _Item:
    index: int  # the input's position in the run
    frame: int | None = None  # video frames: their index
    image: np.ndarray | None = None  # the pixels, once read (video frames: decoded by the reader)


class _Stream:
    """This rank's inputs as a stream of items (images, and video frames decoded as they are read)."""

    def __init__(self, inputs: Sequence[_Input], shard: Shard, track: bool, max_pixels: int | None = None) -> None:
        self.inputs = inputs
        self.max_pixels = max_pixels

        def unit(i: _Input) -> Path:
            # A video, or a folder of frames being tracked, is one sequence: it goes to one rank whole.
            return i.sequence if i.kind == "video" or (track and i.sequence is not None) else i.path

        units = list(dict.fromkeys(unit(i) for i in inputs))  # in input order
        unit_of = {u: n for n, u in enumerate(units)}
        self.mine = [n for n, i in enumerate(inputs) if shard.owns(unit_of[unit(i)])]
        self.frames_read: dict[int, int] = {}
        self.unopened: dict[int, str] = {}  # videos that could not be opened: why

    def __iter__(self) -> Iterator[_Item]:
        import cv2

        for n in self.mine:
            item = self.inputs[n]
            if item.kind == "image":
                yield _Item(n)
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
                    yield _Item(n, read, frame)
                    read += 1
                    self.frames_read[n] = read
            finally:
                capture.release()

    def load(self, item: _Item) -> np.ndarray | str:
        """The item's image (kept on the item for drawing), or why it has none."""
        if item.image is None:
            from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS, ImageReadError, read_image

            try:
                item.image = read_image(self.inputs[item.index].path, max_pixels=self.max_pixels or DEFAULT_MAX_IMAGE_PIXELS)
            except ImageReadError as exc:
                return str(exc)
        return item.image


class _Writer:
    """Records each item's people in stream order: tracking, JSON, drawings, rendered videos."""

    def __init__(self, args: argparse.Namespace, inputs: Sequence[_Input], run: InferRun, progress) -> None:
        self.args, self.inputs, self.run, self.progress = args, inputs, run, progress
        self.sequence: Path | None = None
        self.tracker = None
        self.video: VideoOutput | None = None
        self.video_index: int | None = None

    def _tracked(self, item: _Item, poses: Poses) -> Poses:
        if not self.args.track:
            return poses
        sequence = self.inputs[item.index].sequence
        if sequence != self.sequence or self.tracker is None:
            from openpose_lite.tracking import Tracker

            # The One Euro filter's cutoffs are in Hz: a video's own rate; frames in a folder, 30 fps.
            fps = video_fps(sequence) if self.inputs[item.index].kind == "video" else 0.0
            self.sequence = sequence
            self.tracker = Tracker(tracker_params(self.args, fps or 30.0))
        return self.tracker.update(poses)

    def __call__(self, item: _Item, result: Poses | str) -> None:
        source = self.inputs[item.index]
        if item.frame is not None and self.video_index != item.index:
            self.close_video()
            if self.args.render:
                self.video = VideoOutput(self.args.output / f"{self.run.names[item.index]}_rendered.mp4",
                                         video_fps(source.path))
            self.video_index = item.index
        if isinstance(result, str):
            where = source.path if item.frame is None else f"{source.path}, frame {item.frame}"
            # the image reader's messages name the file already
            named = item.frame is None and str(source.path) in result
            self.run.fail(result if named else f"{where}: {result}", item.index)
            result = Poses.empty()  # a tracker still counts the frame as seen without people
            if self.args.track:
                self._tracked(item, result)
        else:
            poses = self._tracked(item, result)
            if item.frame is None:
                self.run.record_image(item.index, item.image, poses)
            else:
                self.run.record(poses, item.index, item.frame)
                if self.video is not None:
                    from openpose_lite.viz import draw_poses

                    self.video.write(draw_poses(item.image, poses))
        self.progress.update(1)

    def close_video(self) -> None:
        if self.video is not None and self.video.close():
            self.run.written["rendered video"] += 1
        self.video = None

    def discard(self) -> None:
        if self.video is not None:
            self.video.discard()
            self.video = None


def _report_videos(stream: _Stream, run: InferRun) -> None:
    for n in stream.mine:
        source = stream.inputs[n]
        if source.kind != "video":
            continue
        read, announced = stream.frames_read.get(n, 0), frame_count(source.path)
        if n in stream.unopened:
            run.fail(f"cannot open video {source.path}{stream.unopened[n]}", n)
        elif read == 0:
            run.fail(f"no frame could be read from video {source.path}", n)
        elif read < announced:
            run.fail(f"video {source.path}: read {read} of the {announced} frames its header announces (truncated or "
                     "damaged); the frames read have their outputs", n, skipped=False)


def _names(paths: Sequence[Path], shown: int = 5) -> str:
    listed = ", ".join(str(p) for p in paths[:shown])
    return listed + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _stopped(run: InferRun, shard: Shard, reason: str, code: int) -> CliError:
    """The error for a run that stopped: its index written for what was done (when the disk lets it), and a summary.

    Under torchrun rank 0 writes the index of what every rank's journal holds (a lost rank's up
    to its last image) and names the inputs no rank finished; the other ranks write no index.
    """
    if shard.rank != 0:
        if run.journal is not None:
            run.journal.close(done=False)
        return CliError(f"[rank {shard.rank}] {reason} after {plural(run.num_images, 'image')} of its share; rank 0 "
                        "writes the run's index", code)
    gathered = _gather_now(run, shard)
    try:
        _write_index(run, shard, gathered)
    except OSError:
        pass  # the summary says which of the two is missing
    missing = run.unprocessed(gathered.entries, gathered.failures)
    lost = f" (unfinished: rank {', '.join(map(str, gathered.lost))})" if gathered.lost else ""
    left = f"; {len(missing)} inputs not processed: {_names(missing)}" if missing else ""
    held = f"; the index holds {len(gathered.entries)} images of all processes" if shard.distributed else ""
    return CliError(f"{reason} after {plural(run.num_images, 'image')}{lost}; {run.summary()}{held}{left}", code)


def _gather_now(run: InferRun, shard: Shard) -> Gathered:
    """Rank 0: what the run did, as far as every rank's journal says now (without waiting), or
    what the index already holds (the journals are gone once it is written)."""
    if not shard.distributed:
        return Gathered(list(run.entries), list(run.failures))
    if run.indexed is not None:
        return run.indexed
    run.journal.close(done=False)
    gathered = shard.merge(run.out_dir)
    gathered.lost = [r for r in gathered.lost if r != 0]
    return gathered


def _write_index(run: InferRun, shard: Shard, gathered: Gathered) -> None:
    """The run's index; then the journals it was merged from go (not before: a stop in between
    merges them again)."""
    run.write_index(gathered.entries)
    if shard.distributed:
        run.indexed = gathered
        shard.remove_journals(run.out_dir)


def _gather(run: InferRun, shard: Shard) -> Gathered | None:
    """Rank 0, once every rank finished its share: the whole run's entries and failures; None on the others.

    Raises CliError (exit 1) when a rank is lost meanwhile, having written the index of what there is.
    """
    if not shard.distributed:
        return Gathered(list(run.entries), list(run.failures))
    run.journal.close(done=True)
    try:
        shard.barrier()
    except RuntimeError as exc:  # gloo: a peer's connection closed (it was killed, or crashed)
        from openpose_lite.training.distributed import peer_lost

        reason = peer_lost(exc) or str(exc).splitlines()[0][:160]
        if shard.rank != 0:
            raise CliError(f"[rank {shard.rank}] stopped: rank 0 was lost ({reason})", EXIT_FAILURE) from None
        raise _stopped(run, shard, f"stopped: a process of the run was lost ({reason})", EXIT_FAILURE) from None
    return shard.merge(run.out_dir) if shard.rank == 0 else None


def _process(args: argparse.Namespace, predictor, inputs: Sequence[_Input], shard: Shard, run: InferRun) -> None:
    from tqdm import tqdm

    from openpose_lite.inference.pipeline import run_pipelined, run_sequential

    stream = _Stream(inputs, shard, args.track, args.max_image_pixels)
    total = sum(1 if inputs[n].kind == "image" else frame_count(inputs[n].path) for n in stream.mine)
    with tqdm(total=total, unit="img", desc="infer", disable=progress_disabled(args.no_progress),
              file=sys.stderr) as progress:
        writer = _Writer(args, inputs, run, progress)
        image_id = (lambda item: int(inputs[item.index].path.stem) if item.frame is None
                    and inputs[item.index].path.stem.isdigit() else None)  # box files name images by COCO id
        runner = run_sequential if args.no_pipeline else run_pipelined
        try:
            runner(predictor, stream, stream.load, writer, args.batch_size, image_id)
        except BaseException:
            writer.discard()
            raise
        writer.close_video()
    _report_videos(stream, run)


def _on_rank_0(shard: Shard, action: Callable[[], None], output: Path) -> None:
    """Run ``action`` on rank 0 (the owner of the output folder); every rank raises what it raised
    (the other ranks: that rank 0 could not take the folder)."""
    error: Exception | None = None
    if shard.rank == 0:
        try:
            action()
        except (CliError, ValueError, OSError) as exc:
            error = exc
    if not shard.all_agree(error is None):
        if error is not None:
            raise error
        raise CliError(f"[rank {shard.rank}] rank 0 could not take the output folder {output}")


@contextlib.contextmanager
def _owned_folder(args: argparse.Namespace, inputs: Sequence[_Input], shard: Shard, predictor) -> Iterator[InferRun]:
    """The run's output folder, held for the block (:mod:`openpose_lite.output_folder`): rank 0 takes
    its lock, checks it free under it, clears it (``--overwrite``) or reads its index and checks that
    its outputs are ``predictor``'s model's (``--append``), and every rank learns whether it could;
    then every rank reads the names the folder holds (which the run's names avoid) before any rank
    writes into it."""
    folder = InferFolder(args.output)
    previous: tuple[list[dict], dict[str, dict]] = ([], {})
    model: ModelRecord | None = None  # rank 0's: it writes the index, and the record with it
    with contextlib.ExitStack() as stack:
        def take() -> None:
            nonlocal previous, model
            model = ModelRecord.of(weights_path(args), predictor.skeleton)  # before the folder is touched
            stack.enter_context(folder.lock("openpose-lite infer"))
            folder.claim(args.overwrite, args.append)
            if args.append:
                previous = folder.previous_index()
                folder.check_model(model, previous[0])  # another model's outputs: refused, nothing written

        _on_rank_0(shard, take, args.output)
        run = InferRun.for_inputs(args.output, args.render, [(i.kind, i.path) for i in inputs], folder.taken_names(),
                                  previous, model)
        shard.barrier()  # every rank has seen the folder before any writes into it
        run.journal = shard.journal(args.output)
        yield run


def _run_infer(args: argparse.Namespace) -> int:
    source = live_source(args)
    if source is not None:
        return run_live(args, source)
    weights_path(args)
    inputs = _collect_inputs(args.paths)  # bad paths fail before the model is loaded
    _check_options(args, inputs)
    shard = current_shard()
    try:
        # a folder that will be refused is refused before the model loads
        _on_rank_0(shard, lambda: InferFolder(args.output).check_free(args.overwrite, args.append), args.output)
        predictor = build_predictor(args)
        with _owned_folder(args, inputs, shard, predictor) as run:
            try:
                _process(args, predictor, inputs, shard, run)
                gathered = _gather(run, shard)
                if gathered is not None:
                    _write_index(run, shard, gathered)
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (torchrun stops the others when a process is lost)
                raise _stopped(run, shard, interrupt_word(exc), interrupt_code(exc)) from None
            except OSError as exc:  # a full disk, a folder that became unwritable
                raise _stopped(run, shard, f"stopped: {describe_os_error(exc)}", EXIT_FAILURE) from None
    finally:
        shard.close()
    # Under torchrun every rank that finished its share exits 0, failed inputs included (rank 0
    # lists them): torchrun reports any other code as a ChildFailedError with a traceback.
    done = EXIT_OK if shard.distributed else EXIT_FAILURE
    if gathered is None:  # another rank than 0: its share is done; rank 0 reports the run
        return EXIT_OK
    people = sum(len(e["results"]) for e in gathered.entries)
    ranks = f" ({shard.world_size} processes)" if shard.distributed else ""
    print(f"{plural(len(gathered.entries), 'image')}, {plural(people, *predictor.skeleton.instance_words)}, "
          f"{plural(len(gathered.failures), 'failure')}{ranks}; outputs in {args.output}")
    for message, _ in gathered.failures:
        print(f"  failed: {message}", file=sys.stderr)
    return done if gathered.failures else EXIT_OK
