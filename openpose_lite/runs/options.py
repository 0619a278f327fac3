"""What a run is asked to do (:class:`RunOptions`), what it reports as it goes (:class:`Progress`),
and what it did (:class:`RunSummary`; :class:`RunStopped` for a run that stopped before its end)."""

from __future__ import annotations

import logging
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS, check_max_pixels
from openpose_lite.io import plural
from openpose_lite.params import Params
from openpose_lite.tracking import TrackerParams

__all__ = ["LiveStats", "Progress", "Reporter", "RunOptions", "RunStopped", "RunSummary"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions(Params):
    """How a run treats its sources and its output folder (checked on creation: ValueError).

    ``output``: the folder; one holding another run's outputs is refused unless ``overwrite`` (its files
    removed first) or ``append`` (the inputs its index holds are skipped; the new outputs join the others).
    ``weights``: the weights file, recorded beside the index so that ``append`` adds only that model's
    outputs. ``writers``: rows of :data:`~openpose_lite.runs.outputs.WRITERS` (``keypoints`` always).
    ``tracking``: follow people through each video and folder of frames, its ``fps`` replaced by each
    video's rate. Live sources only: ``max_frames``, ``duration`` (s), ``reconnect`` (tries).
    """

    _section: typing.ClassVar[str] = "RunOptions"

    output: Path = Path("openpose_output")
    overwrite: bool = False
    append: bool = False
    weights: Path | None = None
    writers: tuple[str, ...] = ("keypoints",)
    tracking: TrackerParams | None = None
    batch_size: int = 1
    pipelined: bool = True
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_frames: int | None = None
    duration: float | None = None
    reconnect: int = 0

    def __post_init__(self) -> None:
        # paths as text, and the writers as any collection of names (a set), are taken as they are meant
        for name in ("output", "weights"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        if isinstance(self.writers, (set, frozenset)):
            object.__setattr__(self, "writers", tuple(sorted(self.writers)))
        super().__post_init__()

    def _check(self) -> None:
        from openpose_lite.runs.outputs import WRITERS

        names = [w.name for w in WRITERS]
        self._require("keypoints" in self.writers and set(self.writers) <= set(names), "writers",
                      f"'keypoints' (what images.json indexes) and any of {names[1:]}")
        self._require(not (self.overwrite and self.append), "append", "false with overwrite (choose one)")
        self._require(self.weights is not None or not self.append, "weights",
                      "the weights file with append (the folder's outputs must be this model's)")
        self._require(self.batch_size >= 1, "batch_size", "an integer >= 1")
        check_max_pixels(self.max_image_pixels, f"{self._section}.max_image_pixels")
        self._require(self.max_frames is None or self.max_frames >= 1, "max_frames", "an integer >= 1")
        self._require(self.duration is None or (math.isfinite(self.duration) and self.duration > 0), "duration",
                      "a positive number of seconds")
        self._require(self.reconnect >= 0, "reconnect", "an integer >= 0")


@dataclass(frozen=True)
class Progress:
    """A run's report as it goes: before the first item (``done`` 0), after each image or frame, and with
    each failure (``skipped``: it has no outputs). ``total``: None for a live source. ``workers``: a run
    spread over a cluster, its workers alive."""

    done: int
    total: int | None
    failure: str | None = None
    skipped: bool = True
    workers: int | None = None


class Reporter:
    """Hands a run's :class:`Progress` to ``callback`` (None: to no one) and logs failures."""

    def __init__(self, callback: Callable[[Progress], None] | None, total: int | None) -> None:
        self.callback, self.total, self.done = callback, total, 0
        self.workers: int | None = None
        self._send(Progress(0, total))

    def _send(self, progress: Progress) -> None:
        if self.callback is not None:
            self.callback(progress)

    def advance(self) -> None:
        self.done += 1
        self._send(Progress(self.done, self.total, workers=self.workers))

    def failure(self, message: str, skipped: bool = True) -> None:
        logger.debug("%s%s", message, " (skipped)" if skipped else "")
        self._send(Progress(self.done, self.total, message, skipped, self.workers))


@dataclass(frozen=True)
class LiveStats:
    """What a live run saw: frames handled (failed ones included), read, dropped (the network was busy),
    skipped (bad frames), reconnections; capture-to-result latencies (s), the processed rate (frames/s);
    why it ended; whether the source was lost (``problem``: why) or a second Ctrl-C stopped it."""

    processed: int
    read: int
    dropped: int
    skipped: int
    reconnections: int
    latencies: tuple[float, ...]
    rate: float
    reason: str
    lost: bool = False
    problem: str | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class RunSummary:
    """What a run did: images and frames with outputs, people found, failures (one message each), in
    ``output``, by ``processes`` (a cluster's workers). ``live``: a live source's figures."""

    output: Path
    images: int
    people: int
    failures: tuple[str, ...]
    processes: int = 1
    live: LiveStats | None = None

    def describe(self, people_words: tuple[str, str] = ("person", "people")) -> str:
        """The run in words: ``3 images, 2 people, 1 failure; outputs in out``; a live run's figures on
        three lines (frames, latency, folder)."""
        live = self.live
        if live is None:
            workers = f" ({self.processes} workers)" if self.processes > 1 else ""
            return (f"{plural(self.images, 'image')}, {plural(self.people, *people_words)}, "
                    f"{plural(len(self.failures), 'failure')}{workers}; outputs in {self.output}")
        skipped = f", {plural(live.skipped, 'bad frame')} skipped" if live.skipped else ""
        reconnected = f", {plural(live.reconnections, 'reconnection')}" if live.reconnections else ""
        lines = [f"{live.processed} frames processed, {live.dropped} dropped (of {live.read} read{skipped}"
                 f"{reconnected}), {self.people} people, {len(self.failures)} failures; {live.reason}"]
        if live.latencies:
            import numpy as np

            median, p95 = np.percentile(live.latencies, [50, 95])
            lines.append(f"latency from capture to result: median {median:.3f} s, 95th percentile {p95:.3f} s; "
                         f"{live.rate:.2f} frames/s processed")
        lines.append(f"outputs in {self.output}")
        return "\n".join(lines)


class RunStopped(Exception):
    """A run that stopped before its end, its index written where the disk let it. ``cause``: the
    KeyboardInterrupt (Ctrl-C, SIGTERM), the OSError (a full disk) or a Ray cluster's error."""

    def __init__(self, cause: BaseException, before: str, after: str, summary: RunSummary | None = None) -> None:
        super().__init__(f"{before}{cause}{after}")
        self.cause, self.before, self.after, self.summary = cause, before, after, summary

    def message(self, reason: str) -> str:
        """``interrupted after 3 images; wrote 3 keypoint files ... to out``, ``reason`` the cause in words."""
        return f"{self.before}{reason}{self.after}"
