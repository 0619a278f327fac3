"""``openpose-lite infer`` on a live source: a camera (``--camera N``) or a stream URL, newest frame first.

The source is read by :class:`~openpose_lite.live.LatestFrameReader` (a thread that keeps only
the newest frame) and the network takes the newest frame each time it is free
(:func:`~openpose_lite.inference.pipeline.run_newest_first`); the frames it never took are
dropped and counted. Per processed frame ``<stem>_<frame number, 12 digits>_<capture time,
UTC>_keypoints.json``; ``results_coco.json`` and ``images.json`` are rewritten (atomically) as
frames come, so what was processed is valid on disk at any moment; ``--render`` writes an mp4
in real time, ``--show`` a window. The stream's end, ``--max-frames``, ``--duration``, Ctrl-C
and SIGTERM end the run with exit 0 (a second Ctrl-C stops at once, 130); a lost source is
retried ``--reconnect`` times, then reported (exit 1); a source that cannot be opened exits 2.
A bad frame (undecodable, or claiming a size no decoder takes) is skipped and counted, and the
run goes on. The summary gives processed, dropped and skipped frames and the capture-to-result
latency.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, CliError, describe_os_error
from openpose_lite.cli.model_record import RESULTS_CATEGORY_ID, ModelRecord
from openpose_lite.cli.models_args import build_predictor, non_negative_int, positive_float, positive_int, weights_path
from openpose_lite.cli.outputs import FRAME_DIGITS, InferFolder, VideoOutput, progress_disabled
from openpose_lite.io import plural, write_json_atomic
from openpose_lite.live import LatestFrameReader, LiveFrame, LiveSource, SourceUnavailable, is_stream_url
from openpose_lite.structures import Poses

__all__ = ["add_live_args", "check_tracking_options", "live_source", "path_or_url", "run_live", "tracker_params"]

_INDEX_MIN_INTERVAL_S = 1.0  # results_coco.json / images.json: rewritten at most this often ...
_INDEX_MAX_SHARE = 0.1  # ... and taking at most this share of the time, however long the run
_LIVE_ONLY = (("max_frames", "--max-frames"), ("duration", "--duration"), ("reconnect", "--reconnect"), ("show", "--show"))


# ------------------------------------------------------------------------------ options
def path_or_url(text: str) -> Path | str:
    """``infer``'s PATH: a stream URL stays text (a Path would fold its ``//``), anything else is a Path."""
    return text if is_stream_url(text) else Path(text)



def add_live_args(p: argparse.ArgumentParser) -> None:
    """The live-source options of ``infer``."""
    g = p.add_argument_group("cameras and streams (newest frame first; docs/cli.md#cameras-and-streams)")
    g.add_argument("--camera", type=non_negative_int, metavar="N", help="read camera N (0: the first) instead of PATHs")
    g.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N processed frames")
    g.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds of processing")
    g.add_argument("--reconnect", type=non_negative_int, default=0, metavar="N",
                   help="reopen a lost camera or stream up to N times, waiting 0.5, 1, 2 ... 8 s between tries "
                   "(default: %(default)s)")
    g.add_argument("--show", action="store_true", help="show the people drawn on the frames, live, in a window "
                   "(q or Esc stops)")


def live_source(args: argparse.Namespace) -> LiveSource | None:
    """The live source the arguments name (``--camera N``, or one stream URL as PATH), else None (files)."""
    urls = [p for p in args.paths if isinstance(p, str)]
    if args.camera is not None or urls:
        if args.camera is not None and args.paths:
            raise CliError(f"--camera {args.camera} reads a camera: give no PATH with it (got {args.paths[0]})")
        if len(args.paths) > 1:
            raise CliError(f"a live source is read alone: {urls[0]} cannot be combined with other inputs "
                           f"(got {len(args.paths)}); run one infer per source")
        return LiveSource(camera=args.camera) if args.camera is not None else LiveSource(url=urls[0])
    if not args.paths:
        raise CliError("give the images, videos or folders to read (PATH ...), a stream URL, or --camera N")
    for dest, option in _LIVE_ONLY:
        if getattr(args, dest):
            raise CliError(f"{option} is for cameras and streams (--camera N or a stream URL); files are read whole")
    return None


def _check_options(args: argparse.Namespace) -> None:
    if args.output.exists() and not args.output.is_dir():
        raise CliError(f"--output {args.output}: is a file; infer writes a folder of outputs there, so name a folder")
    if args.boxes is not None:
        raise CliError("--boxes: a box file names images by id, and a live source's frames have none; "
                       "use --person-detector FILE for a top-down model")
    if args.batch_size != 1:
        raise CliError(f"--batch-size {args.batch_size}: a live source runs one frame at a time, the newest")
    check_tracking_options(args)


def check_tracking_options(args: argparse.Namespace) -> None:
    """``--smooth`` and ``--track-min-score`` only with ``--track``, and a minimum score the tracker
    takes (its own range check), before the model loads."""
    if args.smooth and not args.track:
        raise CliError("--smooth smooths tracked people over time; add --track")
    if args.track_min_score is not None and not args.track:
        raise CliError("--track-min-score sets which people the tracker follows; add --track")
    if args.track:
        try:
            tracker_params(args)
        except ValueError as exc:
            raise CliError(f"--track-min-score {args.track_min_score}: {exc}") from None


def tracker_params(args: argparse.Namespace, fps: float = 30.0):
    """The tracker settings of ``infer --track``: ``--smooth``, ``--track-min-score`` (else the tracker's
    default) and the frame rate. Raises ValueError for a value the tracker refuses."""
    from openpose_lite.tracking import TrackerParams

    chosen = {} if args.track_min_score is None else {"min_score": args.track_min_score}
    return TrackerParams(smooth=args.smooth, fps=fps, **chosen)


# ------------------------------------------------------------------------------ the window
class _Window:
    """``--show``: a window in the calling (main) thread; the finisher thread hands it drawn frames."""

    TITLE = "openpose-lite"

    def __init__(self) -> None:
        import cv2

        info = cv2.getBuildInformation()
        gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
        if gui is None or gui.group(1).upper() == "NONE":
            raise CliError("--show needs OpenCV with a GUI, and this one has none (GUI: NONE in its build "
                           "information: the opencv-python-headless wheel); install opencv-python instead "
                           "(pip uninstall opencv-python-headless; pip install opencv-python), or drop --show "
                           "and keep the drawn frames with --render")
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise CliError(f"--show: OpenCV cannot open a window here ({str(exc).strip().splitlines()[-1]}); "
                           "is there a display?") from None
        self._image: np.ndarray | None = None
        self._lock = threading.Lock()

    def put(self, image: np.ndarray, rate: float) -> None:
        import cv2

        cv2.putText(image, f"{rate:.1f} fps", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        with self._lock:
            self._image = image

    def refresh(self) -> bool:
        """Draw the newest image; False when the user pressed q or Esc or closed the window."""
        import cv2

        with self._lock:
            image, self._image = self._image, None
        if image is not None:
            cv2.imshow(self.TITLE, image)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.TITLE, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.TITLE)


# ------------------------------------------------------------------------------ recording
def _utc(wall_time: float, compact: bool) -> str:
    """A capture time as UTC with milliseconds: ``20250102T030405.678Z`` (names) or ISO 8601 (fields)."""
    ms = int(round((wall_time % 1) * 1000)) % 1000
    fmt = "%Y%m%dT%H%M%S" if compact else "%Y-%m-%dT%H:%M:%S"
    return time.strftime(fmt, time.gmtime(int(wall_time))) + f".{ms:03d}Z"


def _free_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2`` ... when an earlier run's rendered video in the folder has its name (``--append``)."""
    candidate, n = stem, 1
    while f"{candidate}_rendered.mp4" in taken:
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


class _LiveRun:
    """Handles each processed frame in order: tracking, its JSON, the run's index, the video, the window.

    ``previous``: the index of the run appended to (``--append``), kept with its image ids; ``taken``:
    the names in the folder, which this run's names avoid."""

    def __init__(self, args: argparse.Namespace, source: LiveSource, fps: float, window: _Window | None, progress,
                 previous: tuple[list[dict], dict[str, dict]] = ([], {}), taken: set[str] = frozenset(),
                 model: ModelRecord | None = None) -> None:
        self.args, self.source, self.window, self.progress = args, source, window, progress
        self.model = model  # recorded beside the index, as infer's files do (InferFolder.check_model)
        self.out: Path = args.output
        self.stem = _free_stem(source.stem, taken)
        self.fps = fps or 25.0  # the source's rate; a stream that announces none: 25
        self.results: list[dict] = list(previous[0])
        self.images: dict[str, dict] = dict(previous[1])
        self._next_id = max((int(key) for key in self.images), default=0) + 1
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.people = 0
        self.processed = 0  # frames handled, failed ones included
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._index_due = 0.0
        self._tracker = None
        if args.track:
            from openpose_lite.tracking import Tracker

            # capture times drive the motion model and the filter; fps only sets the unit of max_age
            self._tracker = Tracker(tracker_params(args, fps or 30.0))
        self.video = VideoOutput(self.out / f"{self.stem}_rendered.mp4", self.fps) if args.render else None
        self._slots = 0  # video frames written
        self._shown: np.ndarray | None = None

    def __call__(self, frame: LiveFrame, result: Poses | str) -> None:
        if isinstance(result, str):
            from tqdm import tqdm

            self.failures.append(f"{self.source.name}, frame {frame.number}: {result}")
            tqdm.write(f"openpose-lite infer: {self.failures[-1]} (skipped)", file=sys.stderr)
            result = Poses.empty()
            if self._tracker is not None:
                self._tracker.update(result, timestamp=frame.time)
        else:
            if self._tracker is not None:
                result = self._tracker.update(result, timestamp=frame.time)
            self._record(frame, result)
        self.processed += 1
        self.first_time = frame.time if self.first_time is None else self.first_time
        self.last_time = frame.time
        self.progress.update(1)

    def _record(self, frame: LiveFrame, poses: Poses) -> None:
        name = f"{self.stem}_{frame.number:0{FRAME_DIGITS}d}_{_utc(frame.wall_time, compact=True)}_keypoints.json"
        write_json_atomic(self.out / name, poses.to_openpose_dict())
        latency = time.monotonic() - frame.time  # capture to result: the frame's people on disk
        self.latencies.append(latency)
        image_id, self._next_id = self._next_id, self._next_id + 1
        self.results.extend(poses.to_coco(image_id, RESULTS_CATEGORY_ID))
        self.images[str(image_id)] = {"file": self.source.name, "frame": frame.number, "json": name,
                                      "capture_time": _utc(frame.wall_time, compact=False),
                                      "latency_s": round(latency, 4)}
        self.people += len(poses)
        if self.video is not None or self.window is not None:
            from openpose_lite.viz import draw_poses

            drawn = draw_poses(frame.image, poses)
            if self.video is not None:
                self._write_video(drawn, frame.time)
            if self.window is not None:
                self.window.put(drawn.copy(), self.rate())
        if time.monotonic() >= self._index_due:
            self.write_index()

    def _write_video(self, drawn: np.ndarray, at: float) -> None:
        """Real time: the last frame is held until this one's capture time, so the video plays at the processed rate."""
        slot = int(round((at - (self.first_time if self.first_time is not None else at)) * self.fps))
        while self._shown is not None and self._slots < slot:
            self.video.write(self._shown)
            self._slots += 1
        self.video.write(drawn)
        self._slots += 1
        self._shown = drawn

    def write_index(self) -> None:
        """``results_coco.json`` and ``images.json`` for every frame recorded so far (atomically)."""
        started = time.monotonic()
        if self.model is not None:
            self.model.keep_in(self.out)
        write_json_atomic(self.out / "results_coco.json", self.results)
        write_json_atomic(self.out / "images.json", self.images)
        took = time.monotonic() - started
        self._index_due = time.monotonic() + max(_INDEX_MIN_INTERVAL_S, took / _INDEX_MAX_SHARE)

    def rate(self) -> float:
        """Frames processed per second of capture time."""
        if self.first_time is None or self.last_time is None or self.last_time <= self.first_time:
            return 0.0
        return (self.processed - 1) / (self.last_time - self.first_time)

    def close(self, keep_video: bool = True) -> None:
        self.write_index()
        if self.video is not None:
            if keep_video:
                self.video.close()
            else:
                self.video.discard()


# ------------------------------------------------------------------------------ running
class _StopRequests:
    """Ctrl-C (SIGINT) and SIGTERM ask the run to stop after the frame in hand; a second one stops at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():  # only the main thread may take signals
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if self.reason is not None and self.reason.startswith("stopped by"):
            raise KeyboardInterrupt
        self.reason = f"stopped by {'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}"

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _frames(reader: LatestFrameReader, args: argparse.Namespace, stops: _StopRequests,
            window: _Window | None) -> Iterator[LiveFrame]:
    """The newest frame each time the network asks for one, until the source, a limit or the user ends the run."""
    started, count = time.monotonic(), 0
    while stops.reason is None:
        if args.max_frames is not None and count >= args.max_frames:
            stops.reason = f"--max-frames {args.max_frames} reached"
        elif args.duration is not None and time.monotonic() - started >= args.duration:
            stops.reason = f"--duration {args.duration:g} s reached"
        elif window is not None and not window.refresh():
            stops.reason = "the window was closed"
        else:
            frame = reader.take(timeout=0.05)
            if frame is not None:
                count += 1
                yield frame
            elif reader.finished:
                return


def _summary(run: _LiveRun, reader: LatestFrameReader, reason: str) -> str:
    skipped = f", {plural(reader.skipped, 'bad frame')} skipped" if reader.skipped else ""
    reconnected = f", {plural(reader.reconnections, 'reconnection')}" if reader.reconnections else ""
    lines = [f"{run.processed} frames processed, {reader.dropped} dropped "
             f"(of {reader.read} read{skipped}{reconnected}), {run.people} people, {len(run.failures)} failures; {reason}"]
    if run.latencies:
        median, p95 = np.percentile(run.latencies, [50, 95])
        lines.append(f"latency from capture to result: median {median:.3f} s, 95th percentile {p95:.3f} s; "
                     f"{run.rate():.2f} frames/s processed")
    lines.append(f"outputs in {run.out}")
    return "\n".join(lines)


def _process(args: argparse.Namespace, predictor, reader: LatestFrameReader, run: _LiveRun, stops: _StopRequests,
             window: _Window | None) -> int:
    """Run the model on the newest frames until the run ends; the index is written whatever ends it. Returns
    EXIT_OK, or EXIT_INTERRUPTED for a second Ctrl-C; raises CliError for a failed write."""
    from openpose_lite.inference.pipeline import run_newest_first, run_sequential

    frames = _frames(reader, args, stops, window)
    load = lambda frame: frame.image  # noqa: E731 - the reader decoded it
    try:
        if args.no_pipeline:
            run_sequential(predictor, frames, load, run)
        else:
            run_newest_first(predictor, frames, load, run)
    except KeyboardInterrupt:
        stops.reason = "interrupted (a second Ctrl-C)"
        reader.stop()
        run.close()
        return EXIT_INTERRUPTED
    except OSError as exc:  # a full disk, a folder that became unwritable
        reader.stop()
        try:
            run.close(keep_video=False)
        except OSError:
            pass
        raise CliError(f"stopped: {describe_os_error(exc)}; {_summary(run, reader, 'stopped')}", EXIT_FAILURE) from None
    except BaseException:
        reader.stop()
        run.close(keep_video=False)  # what was processed stays listed
        raise
    reader.stop()
    run.close()
    return EXIT_OK


def run_live(args: argparse.Namespace, source: LiveSource) -> int:
    """``infer`` on a camera or stream (see the module docstring); returns the exit code."""
    from tqdm import tqdm

    from openpose_lite.live import OPEN_TIMEOUT_S, READ_TIMEOUT_S

    weights_path(args)
    _check_options(args)
    folder = InferFolder(args.output)
    folder.check_free(args.overwrite, args.append)  # refused before the source is opened and the model loads
    window = _Window() if args.show else None
    reader = LatestFrameReader(source, reconnect=args.reconnect, open_timeout=OPEN_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
    try:
        reader.open()
    except SourceUnavailable as exc:
        raise CliError(str(exc)) from None
    reader.start()  # drains the source while the model loads: the first frame processed is a fresh one
    try:
        predictor = build_predictor(args)
        model = ModelRecord.of(weights_path(args), predictor.skeleton)
        with folder.lock("openpose-lite infer (live)"), \
                tqdm(unit="frame", desc=source.stem, disable=progress_disabled(args.no_progress), file=sys.stderr) as bar, \
                _StopRequests() as stops:
            folder.claim(args.overwrite, args.append)
            previous = folder.previous_index() if args.append else ([], {})
            if args.append:
                folder.check_model(model, previous[0])  # another model's outputs: refused, nothing written
            run = _LiveRun(args, source, reader.fps, window, bar, previous, folder.taken_names(), model)
            code = _process(args, predictor, reader, run, stops, window)
    finally:
        reader.stop()
        if window is not None:
            window.close()
    lost = reader.outcome == "lost" and stops.reason is None
    reason = stops.reason or ("the stream ended" if reader.outcome == "ended" else "the source was lost")
    print(_summary(run, reader, reason))
    for message in run.failures:
        print(f"  failed: {message}", file=sys.stderr)
    if lost:
        hint = "" if args.reconnect else " (--reconnect N retries a lost source)"
        print(f"openpose-lite infer: error: {reader.problem}; what was processed is kept{hint}", file=sys.stderr)
    if code != EXIT_OK:
        return code
    return EXIT_FAILURE if lost or run.failures else EXIT_OK
