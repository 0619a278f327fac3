"""A run on a live source, a camera or a stream URL, newest frame first (docs/cli.md#cameras-and-streams).

The network takes the newest frame each time it is free; ``results_coco.json`` and ``images.json`` are
rewritten (atomically) as frames come, so what was processed is valid on disk at any moment. The
stream's end, ``max_frames``, ``duration`` and :meth:`~openpose_lite.runs.job.Job.stop` end the run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from openpose_lite.live import LatestFrameReader, LiveFrame
from openpose_lite.runs.job import Job, Recorder, claimed_folder
from openpose_lite.runs.model_record import RESULTS_CATEGORY_ID, ModelRecord
from openpose_lite.runs.options import LiveStats, Progress, Reporter, RunStopped, RunSummary
from openpose_lite.runs.outputs import FRAME_DIGITS, open_videos, output_names, write_files, write_index
from openpose_lite.structures import Poses

__all__ = ["run_live"]

_INDEX_MIN_INTERVAL_S = 1.0  # results_coco.json / images.json: rewritten at most this often ...
_INDEX_MAX_SHARE = 0.1  # ... and taking at most this share of the time, however long the run


def _utc(wall_time: float, compact: bool) -> str:
    """A capture time as UTC with milliseconds: ``20250102T030405.678Z`` (names) or ISO 8601 (fields)."""
    ms = int(round((wall_time % 1) * 1000)) % 1000
    fmt = "%Y%m%dT%H%M%S" if compact else "%Y-%m-%dT%H:%M:%S"
    return time.strftime(fmt, time.gmtime(int(wall_time))) + f".{ms:03d}Z"


class _LiveRun(Recorder):
    """The recorder of a live run, which also rewrites the run's index and feeds the display; ``previous``:
        the index of the run appended to; ``taken``: the folder's names, which this run's avoid."""

    def __init__(self, job: Job, fps: float, display, report: Reporter, previous: tuple[list[dict], dict[str, dict]],
                 taken: set[str], model: ModelRecord | None) -> None:
        options = job.options
        super().__init__(options, report, Counter())
        self.source, self.display, self.model = job.sources.live, display, model
        self.out, self.writers = options.output, options.writers
        self.stem = output_names([("video", Path(self.source.stem))], taken)[0]
        self.results: list[dict] = list(previous[0])
        self.images: dict[str, dict] = dict(previous[1])
        self._next_id = max((int(key) for key in self.images), default=0) + 1
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.people = self.processed = 0  # frames handled, failed ones included
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._index_due = 0.0
        if options.tracking is not None:  # capture times drive the tracker; fps only sets the unit of max_age
            self._new_tracker(fps)
        self.videos = open_videos(self.out, self.stem, fps or 25.0, self.writers)  # a stream without a rate: 25

    def _failure(self, frame: LiveFrame, result: str) -> str:
        self.failures.append(f"{self.source.name}, frame {frame.number}: {result}")
        return self.failures[-1]

    def _track(self, frame: LiveFrame, poses: Poses) -> Poses:
        return poses if self.tracker is None else self.tracker.update(poses, timestamp=frame.time)

    def _done(self, frame: LiveFrame) -> None:
        self.processed += 1
        self.first_time = frame.time if self.first_time is None else self.first_time
        self.last_time = frame.time

    def _record(self, frame: LiveFrame, poses: Poses) -> None:
        name = f"{self.stem}_{frame.number:0{FRAME_DIGITS}d}_{_utc(frame.wall_time, compact=True)}"
        write_files(self.out, name, frame.image, poses, self.writers, ("image",), self.written)
        latency = time.monotonic() - frame.time  # capture to result: the frame's people on disk
        self.latencies.append(latency)
        image_id, self._next_id = self._next_id, self._next_id + 1
        self.results.extend(poses.to_coco(image_id, RESULTS_CATEGORY_ID))
        self.images[str(image_id)] = {"file": self.source.name, "frame": frame.number, "json": f"{name}_keypoints.json",
                                      "capture_time": _utc(frame.wall_time, compact=False),
                                      "latency_s": round(latency, 4)}
        self.people += len(poses)
        # Real time: each frame held until the next one's capture time, so the video plays at the processed rate.
        at = frame.time - (self.first_time if self.first_time is not None else frame.time)
        for _, video in self.videos:
            video.add(frame.image, poses, at)
        if self.display is not None:
            from openpose_lite.viz import draw_poses

            self.display.put(draw_poses(frame.image, poses), self.rate())
        if time.monotonic() >= self._index_due:
            self.write_index()

    def write_index(self) -> None:
        """``results_coco.json`` and ``images.json`` for every frame recorded so far."""
        started = time.monotonic()
        write_index(self.out, self.results, self.images, self.model)
        took = time.monotonic() - started
        self._index_due = time.monotonic() + max(_INDEX_MIN_INTERVAL_S, took / _INDEX_MAX_SHARE)

    def rate(self) -> float:
        """Frames processed per second of capture time."""
        if self.first_time is None or self.last_time is None or self.last_time <= self.first_time:
            return 0.0
        return (self.processed - 1) / (self.last_time - self.first_time)

    def close(self, keep: bool = True) -> None:
        """Write the index, then as :meth:`Recorder.close`."""
        with self.lock:
            self.closed = True
            self.write_index()
            super().close(keep)

    def summary(self, reader: LatestFrameReader, reason: str, lost: bool = False,
                interrupted: bool = False) -> RunSummary:
        stats = LiveStats(self.processed, reader.read, reader.dropped, reader.skipped, reader.reconnections,
                          tuple(self.latencies), self.rate(), reason, lost, reader.problem, interrupted)
        return RunSummary(self.out, len(self.latencies), self.people, tuple(self.failures), live=stats)


def _frames(job: Job, reader: LatestFrameReader, display) -> Iterator[LiveFrame]:
    """The newest frame each time the network asks for one, until the source, a limit or a stop ends the run."""
    options = job.options
    started, count = time.monotonic(), 0
    while job.stop_reason is None:
        if options.max_frames is not None and count >= options.max_frames:
            job.stop_reason = f"--max-frames {options.max_frames} reached"
        elif options.duration is not None and time.monotonic() - started >= options.duration:
            job.stop_reason = f"--duration {options.duration:g} s reached"
        elif display is not None and not display.refresh():
            job.stop_reason = "the window was closed"
        else:
            frame = reader.take(timeout=0.05)
            if frame is not None:
                count += 1
                yield frame
            elif reader.finished:
                return


def run_live(job: Job, predictor, progress: Callable[[Progress], None] | None, display) -> RunSummary:
    """Run ``predictor`` on the newest frames of the job's started live source; the index is written
    whatever ends the run."""
    from openpose_lite.inference.pipeline import run_newest_first, run_sequential

    options, reader = job.options, job.reader
    interrupted = False
    with claimed_folder(job, predictor.skeleton, "openpose-lite infer (live)") as (previous, model):
        run = _LiveRun(job, reader.fps, display, Reporter(progress, None), previous, job.folder.taken_names(), model)
        frames = _frames(job, reader, display)
        runner = run_newest_first if options.pipelined else run_sequential
        try:
            runner(predictor, frames, lambda frame: frame.image, run)  # the reader decoded it
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keeping what was processed
            job.stop_reason, interrupted = "interrupted (a second Ctrl-C)", True
        except OSError as exc:  # a full disk, a folder that became unwritable
            reader.stop()
            try:
                run.close(keep=False)
            except OSError:
                pass
            summary = run.summary(reader, "stopped")
            raise RunStopped(exc, "", f"; {summary.describe()}", summary) from None
        except BaseException:
            reader.stop()
            run.close(keep=False)  # what was processed stays listed
            raise
        reader.stop()
        run.close()
    lost = reader.outcome == "lost" and job.stop_reason is None
    reason = job.stop_reason or ("the stream ended" if reader.outcome == "ended" else "the source was lost")
    return run.summary(reader, reason, lost, interrupted)
