"""``openpose-lite infer`` on a camera (``--camera N``) or a stream URL, newest frame first (``--show``: a
window). The stream's end, ``--max-frames``, ``--duration``, Ctrl-C and SIGTERM end it with exit 0 (a second
Ctrl-C: 130); a source lost after ``--reconnect`` tries exits 1; one that cannot be opened exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, CliError
from openpose_lite.cli.models_args import (
    build_predictor,
    hands_and_faces,
    non_negative_int,
    positive_float,
    positive_int,
    weights_path,
)
from openpose_lite.cli.outputs import ProgressBar, finish, run_options
from openpose_lite.live import LiveSource, is_stream_url
from openpose_lite.runs import Job, Sources
from openpose_lite.runs.sources import live_source_of

__all__ = ["add_live_args", "live_source", "path_or_url", "run_live"]

_LIVE_ONLY = (("max_frames", "--max-frames"), ("duration", "--duration"), ("reconnect", "--reconnect"), ("show", "--show"))


# ------------------------------------------------------------------------------ options
def path_or_url(text: str) -> Path | str:
    """``infer``'s PATH: a stream URL stays text (a Path would fold its ``//``), anything else is a Path."""
    return text if is_stream_url(text) else Path(text)


def add_live_args(p: argparse.ArgumentParser) -> None:
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
    if args.camera is not None and args.paths:
        raise CliError(f"--camera {args.camera} reads a camera: give no PATH with it (got {args.paths[0]})")
    source = live_source_of([args.camera] if args.camera is not None else args.paths)
    if source is not None:
        return source
    if not args.paths:
        raise CliError("give the images, videos or folders to read (PATH ...), a stream URL, or --camera N")
    for dest, option in _LIVE_ONLY:
        if getattr(args, dest):
            raise CliError(f"{option} is for cameras and streams (--camera N or a stream URL); files are read whole")
    return None


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
        """A drawn frame to show (from the writing thread), with the processed rate."""
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


# ------------------------------------------------------------------------------ running
@contextlib.contextmanager
def _stop_requests(job: Job) -> Iterator[None]:
    """Within the block Ctrl-C and SIGTERM ask the run to stop after the frame in hand; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may take signals
        yield
        return
    asked = []

    def handle(signum: int, frame) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        job.stop(f"stopped by {'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_live(args: argparse.Namespace, source: LiveSource) -> int:
    weights = weights_path(args)
    if args.boxes is not None:
        raise CliError("--boxes: a box file names images by id, and a live source's frames have none; "
                       "use --person-detector FILE for a top-down model")
    if args.batch_size != 1:
        raise CliError(f"--batch-size {args.batch_size}: a live source runs one frame at a time, the newest")
    window = None
    try:
        # the output and the folder are refused before the source is opened and the model loads
        with Job(Sources(live=source), run_options(args, weights)) as job:
            window = _Window() if args.show else None
            job.start()  # drains the source while the model loads: the first frame processed is a fresh one
            predictor = hands_and_faces(args, build_predictor(args))
            with ProgressBar("frame", source.stem, args.no_progress) as bar, _stop_requests(job):
                summary = job.run(predictor, progress=bar, display=window)
    finally:
        if window is not None:
            window.close()
    live, code = summary.live, finish(summary)
    if live.lost:
        hint = "" if args.reconnect else " (--reconnect N retries a lost source)"
        print(f"openpose-lite infer: error: {live.problem}; what was processed is kept{hint}", file=sys.stderr)
    if live.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if live.lost else code
