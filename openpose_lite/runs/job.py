"""A run of sources through a predictor into an output folder: :class:`Job`, and :func:`run` for one call.

An unreadable image, a frame the model fails on, a truncated video is a failure, skipped; what stops
a run (Ctrl-C, SIGTERM as the caller raises it, a full disk) raises :class:`RunStopped` once the index
of what was done is written. The folder is locked from before the first write to the end, and once a
run stops nothing more is written, so the index names every image whose files are on disk.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from openpose_lite.io import plural
from openpose_lite.runs.model_record import ModelRecord
from openpose_lite.runs.options import Progress, Reporter, RunOptions, RunStopped, RunSummary
from openpose_lite.runs.outputs import InferFolder, InferRun, close_videos, open_videos
from openpose_lite.runs.sources import FileStream, Input, Item, Source, Sources, frames_to_read, video_fps
from openpose_lite.skeleton import Skeleton
from openpose_lite.structures import Poses

__all__ = ["Job", "Recorder", "claimed_folder", "open_run", "process_inputs", "run", "stopped_run", "summary_of"]


class Job:
    """One run of ``sources`` into ``options.output``, built before the model loads: ValueError for what cannot
    work (a missing input, an output that is a file, tracking a lone image, a folder refused)."""

    def __init__(self, sources: Sources | Sequence[Source], options: RunOptions) -> None:
        self.sources = sources if isinstance(sources, Sources) else Sources.of(sources)
        self.options = options
        live = self.sources.live is not None
        out = options.output
        if out.exists() and not out.is_dir():
            raise ValueError(f"--output {out}: is a file; infer writes a folder of outputs there, so name a folder"
                             + ("" if live else " (new or existing)"))
        lone = [i.path for i in self.sources.inputs if i.sequence is None]
        if options.tracking is not None and lone:
            raise ValueError(f"--track follows people from frame to frame: give a video or a folder of frames, not "
                             f"the single image {lone[0]}")
        self.folder = InferFolder(out)
        # a folder that will be refused is refused before the model loads (and a live source opens)
        self.folder.check_free(options.overwrite, options.append)
        self.reader = None
        self.stop_reason: str | None = None

    def start(self) -> None:
        """Open a live source and start reading it, so that it drains while the model loads (nothing for
        files); ValueError naming a source that cannot be opened."""
        if self.sources.live is None or self.reader is not None:
            return
        from openpose_lite import live

        reader = live.LatestFrameReader(self.sources.live, reconnect=self.options.reconnect,
                                        open_timeout=live.OPEN_TIMEOUT_S, read_timeout=live.READ_TIMEOUT_S)
        try:
            reader.open()
        except live.SourceUnavailable as exc:
            raise ValueError(str(exc)) from None
        reader.start()
        self.reader = reader

    def stop(self, reason: str) -> None:
        """Ask a live run to end after the frame in hand; ``reason`` is what its summary says."""
        self.stop_reason = reason

    def close(self) -> None:
        if self.reader is not None:
            self.reader.stop()

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, predictor, progress: Callable[[Progress], None] | None = None, display=None) -> RunSummary:
        """Run ``predictor`` (anything with a predictor's ``prepare`` / ``forward`` / ``finish`` /
        ``predict_batch`` and ``skeleton``) over the sources into the folder. ``display`` (live sources):
        ``put(image, rate)`` takes each drawn frame (writing thread); ``refresh()``, called from this
        thread between frames, returns False to end the run. Raises :class:`RunStopped`, or ValueError."""
        if self.sources.live is not None:
            from openpose_lite.runs.live_run import run_live

            self.start()
            return run_live(self, predictor, progress, display)
        with open_run(self, predictor.skeleton) as (run, inputs):
            try:
                process_inputs(self.options, inputs, predictor, run, Reporter(progress, frames_to_read(inputs)))
                run.write_index()
            except (KeyboardInterrupt, OSError) as exc:  # Ctrl-C, SIGTERM, a full disk, an unwritable folder
                raise stopped_run(run, exc) from None
        return summary_of(run)


def run(predictor, sources: Sources | Sequence[Source], options: RunOptions,
        progress: Callable[[Progress], None] | None = None) -> RunSummary:
    """Run ``predictor`` over ``sources`` into ``options.output``: :class:`Job` and :meth:`Job.run` in one call."""
    with Job(sources, options) as job:
        return job.run(predictor, progress)


# ------------------------------------------------------------------------------- files
class Recorder:
    """Records each processed image or frame in stream order, in the pipeline's writing thread: tracking, its
    files, the rendered videos, its failure reported. Once :meth:`close` returned, it writes nothing more.
    A run's kind gives :meth:`_failure` (the message, kept), :meth:`_track`, :meth:`_record`, and may hook
    :meth:`_start` and :meth:`_done` (before and after each item)."""

    def __init__(self, options: RunOptions, report: Reporter, written: Counter) -> None:
        self.options, self.report, self.written = options, report, written
        self.lock = threading.RLock()  # re-entrant: a Ctrl-C inside a call in this thread leaves it to close()
        self.closed = False
        self.tracker = None
        self.videos: list = []  # (row of WRITERS, its open file) for the video or live source being read

    def __call__(self, item, result: Poses | str) -> None:
        with self.lock:
            if self.closed:  # the run stopped (its index is being written): what comes after is not written
                return
            self._start(item)
            if isinstance(result, str):
                self.report.failure(self._failure(item, result))
                if self.options.tracking is not None:
                    self._track(item, Poses.empty())  # a tracker still counts the frame as seen without people
            else:
                self._record(item, self._track(item, result))
            self._done(item)
            self.report.advance()

    def _new_tracker(self, fps: float) -> None:
        from openpose_lite.tracking import Tracker

        # The One Euro filter's cutoffs are in Hz: the source's own rate, else 30 fps.
        self.tracker = Tracker(replace(self.options.tracking, fps=fps or 30.0))

    def _start(self, item) -> None:
        pass

    def _done(self, item) -> None:
        pass

    def close(self, keep: bool = True) -> None:
        """Finish the open videos (``keep``) or discard them; write nothing more."""
        with self.lock:
            self.closed = True
            close_videos(self.videos, keep, self.written)
            self.videos = []


class _FileRecorder(Recorder):
    """The recorder of a run over files: a tracker per sequence, a rendered video per video."""

    def __init__(self, options: RunOptions, inputs: Sequence[Input], run: InferRun, report: Reporter) -> None:
        super().__init__(options, report, run.written)
        self.inputs, self.run = inputs, run
        self.sequence: Path | None = None
        self.video_index: int | None = None

    def _failure(self, item: Item, result: str) -> str:
        path = self.inputs[item.index].path
        where = path if item.frame is None else f"{path}, frame {item.frame}"
        named = item.frame is None and str(path) in result  # the image reader's messages name the file
        message = result if named else f"{where}: {result}"
        self.run.failures.append((message, item.index))
        return message

    def _track(self, item: Item, poses: Poses) -> Poses:
        if self.options.tracking is None:
            return poses
        source = self.inputs[item.index]
        if source.sequence != self.sequence or self.tracker is None:
            self.sequence = source.sequence
            self._new_tracker(video_fps(source.sequence) if source.kind == "video" else 0.0)
        return self.tracker.update(poses)

    def _start(self, item: Item) -> None:
        if item.frame is not None and self.video_index != item.index:  # a video's first frame
            close_videos(self.videos, True, self.written)
            self.videos = open_videos(self.options.output, self.run.names[item.index],
                                      video_fps(self.inputs[item.index].path), self.options.writers)
            self.video_index = item.index

    def _record(self, item: Item, poses: Poses) -> None:
        self.run.record(item.index, item.frame, item.image, poses)
        for _, video in self.videos:
            video.add(item.image, poses)


def process_inputs(options: RunOptions, inputs: Sequence[Input], predictor, run: InferRun, report: Reporter) -> None:
    """Run ``predictor`` over ``inputs``, recording each image's and frame's people and failures in ``run``,
    reporting to ``report``."""
    from openpose_lite.inference.pipeline import run_pipelined, run_sequential

    stream = FileStream(inputs, options.max_image_pixels)
    handle = _FileRecorder(options, inputs, run, report)
    image_id = (lambda item: int(inputs[item.index].path.stem) if item.frame is None
                and inputs[item.index].path.stem.isdigit() else None)  # box files name images by COCO id
    runner = run_pipelined if options.pipelined else run_sequential
    try:
        runner(predictor, stream, stream.load, handle, options.batch_size, image_id)
    except BaseException:
        # A stop can leave the writing thread at work for a moment (a join cut short by the
        # signal): closing waits for the image in hand and refuses the next ones.
        handle.close(keep=False)
        raise
    handle.close()
    for n, message, skipped in stream.video_problems():
        run.failures.append((message, n))
        report.failure(message, skipped)


def summary_of(run: InferRun, workers: int = 1) -> RunSummary:
    return RunSummary(run.out_dir, len(run.entries), sum(len(e["results"]) for e in run.entries),
                      tuple(m for m, _ in run.failures), workers)


def stopped_run(run: InferRun, cause: BaseException, before: str = "", after: str = "", workers: int = 1) -> RunStopped:
    """A run that stopped, its index written where the disk lets it; the reason goes between ``before``
    and ``after``."""
    try:
        run.write_index()
    except OSError:
        pass  # the summary says which of the two is missing
    missing = run.unprocessed()
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    left = f"; {len(missing)} inputs not processed: {', '.join(str(p) for p in missing[:5])}{more}" if missing else ""
    return RunStopped(cause, before, f"{after} after {plural(len(run.entries), 'image')}; {run.summary()}{left}",
                      summary_of(run, workers))


@contextlib.contextmanager
def open_run(job: Job, skeleton: Skeleton) -> Iterator[tuple[InferRun, list[Input]]]:
    """(the run, its inputs) in the folder :func:`claimed_folder` takes; with ``append`` the inputs the
    index already holds are left out, so that a rerun does what is left."""
    with claimed_folder(job, skeleton, "openpose-lite infer") as (previous, model):
        done = {entry["file"] for entry in previous[1].values()}
        inputs = [i for i in job.sources.inputs if str(i.path) not in done]
        yield InferRun.for_inputs(job.options.output, job.options.writers, [(i.kind, i.path) for i in inputs],
                                  job.folder.taken_names(), previous, model), inputs


@contextlib.contextmanager
def claimed_folder(job: Job, skeleton: Skeleton, description: str
                   ) -> Iterator[tuple[tuple[list[dict], dict[str, dict]], ModelRecord | None]]:
    """(the folder's earlier index, the run's model record) under the folder's lock to the end of the block:
    the folder claimed (:meth:`~openpose_lite.output_folder.OutputFolder.claim`), its index read with ``append``."""
    options, folder = job.options, job.folder
    model = ModelRecord.of(options.weights, skeleton) if options.weights is not None else None  # before the folder
    with folder.lock(description):
        folder.claim(options.overwrite, options.append)
        previous: tuple[list[dict], dict[str, dict]] = ([], {})
        if options.append:
            previous = folder.previous_index(model)  # another model's outputs: refused, nothing written
        yield previous, model
