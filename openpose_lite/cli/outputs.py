"""``infer``'s run options (:class:`~openpose_lite.runs.RunOptions`), the progress bar its reports
drive, the words of a stopped run and of a finished one; and every command's progress-bar rule."""

from __future__ import annotations

import argparse
import sys

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK, CliError, describe_os_error, interrupt_code, interrupt_word
from openpose_lite.io import plural
from openpose_lite.runs import Progress, RunOptions, RunStopped, RunSummary

__all__ = ["ProgressBar", "add_folder_args", "finish", "print_failures", "progress_disabled",
           "run_options", "stopped_error"]


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """``--overwrite`` / ``--append``: what infer does with an output folder that holds another run's outputs."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true",
                       help="replace the outputs of an earlier run in the output folder (its keypoint files, drawings and "
                       "index are removed first); without it, or --append, such a folder is refused")
    group.add_argument("--append", action="store_true",
                       help="add this run to the earlier one in the output folder, of the same model (skeleton and "
                       "weights; another is refused): the inputs its index holds are skipped (a rerun does what an "
                       "interrupted run left), new names and image ids avoid its ones, and results_coco.json and "
                       "images.json cover every image of the folder")


def progress_disabled(no_progress: bool = False) -> bool:
    """Whether to hide progress bars: when asked to, or when stderr is not a terminal (a pipe, a log file)."""
    return no_progress or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


class ProgressBar:
    """A run's :class:`~openpose_lite.runs.Progress` as a tqdm bar on stderr, its failures as lines above
    it; a :class:`~openpose_lite.runs.RunStopped` leaving the block becomes :func:`stopped_error`'s CliError."""

    def __init__(self, unit: str, desc: str, no_progress: bool) -> None:
        self.unit, self.desc, self.no_progress = unit, desc, no_progress
        self.bar = None

    def __call__(self, progress: Progress) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=progress.total, unit=self.unit, desc=self.desc,
                            disable=progress_disabled(self.no_progress), file=sys.stderr)
        if progress.failure is not None:
            tqdm.write(f"openpose-lite infer: {progress.failure}{' (skipped)' if progress.skipped else ''}",
                       file=sys.stderr)
        elif progress.done > self.bar.n:
            if progress.workers is not None:  # a run spread over a cluster
                self.bar.set_postfix_str(plural(progress.workers, "worker"), refresh=False)
            self.bar.update(progress.done - self.bar.n)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if self.bar is not None:
            self.bar.close()
        if isinstance(exc, RunStopped):
            raise stopped_error(exc) from None


def _tracker_params(args: argparse.Namespace):
    """``--track``'s settings (None without it), checked: ``--smooth`` and ``--track-min-score`` only with it."""
    from openpose_lite.tracking import TrackerParams

    if not args.track:
        if args.smooth:
            raise CliError("--smooth smooths tracked people over time; add --track")
        if args.track_min_score is not None:
            raise CliError("--track-min-score sets which people the tracker follows; add --track")
        return None
    chosen = {} if args.track_min_score is None else {"min_score": args.track_min_score}
    try:
        return TrackerParams(smooth=args.smooth, **chosen)
    except ValueError as exc:
        raise CliError(f"--track-min-score {args.track_min_score}: {exc}") from None


def run_options(args: argparse.Namespace, weights) -> RunOptions:
    """The run ``infer``'s options ask for, checked before the model loads."""
    return RunOptions(output=args.output, overwrite=args.overwrite, append=args.append, weights=weights,
                      writers={"keypoints", "rendered_image", "rendered_video"} if args.render else {"keypoints"},
                      tracking=_tracker_params(args), batch_size=args.batch_size,
                      pipelined=not args.no_pipeline, max_image_pixels=args.max_image_pixels,
                      max_frames=args.max_frames, duration=args.duration, reconnect=args.reconnect)


def print_failures(messages) -> None:
    for message in messages:
        print(f"  failed: {message}", file=sys.stderr)


def finish(summary: RunSummary, people_words: tuple[str, str] = ("person", "people")) -> int:
    """Print what a run did and its failures; the exit code: 1 with failures, else 0."""
    print(summary.describe(people_words))
    print_failures(summary.failures)
    return EXIT_FAILURE if summary.failures else EXIT_OK


def stopped_error(stop: RunStopped) -> CliError:
    """The one line and exit code of a run that stopped: 130 Ctrl-C, 143 SIGTERM, else 1."""
    cause = stop.cause
    if isinstance(cause, KeyboardInterrupt):
        return CliError(stop.message(interrupt_word(cause)), interrupt_code(cause))
    if isinstance(cause, OSError):
        return CliError(stop.message(f"stopped: {describe_os_error(cause)}"), EXIT_FAILURE)
    return CliError(stop.message((str(cause).splitlines() or [type(cause).__name__])[0][:160]), EXIT_FAILURE)
