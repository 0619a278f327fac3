"""The command line of a run (``infer``, on files and live sources): the options that map to
:class:`~openpose_lite.runs.RunOptions`, the progress bar a run's reports drive, the words of a
stopped run; and the image-size options and the progress-bar rule of every command."""

from __future__ import annotations

import argparse
import sys

from openpose_lite.cli.errors import EXIT_FAILURE, CliError, describe_os_error, interrupt_code, interrupt_word
from openpose_lite.io import plural
from openpose_lite.runs import Progress, RunOptions, RunStopped

__all__ = ["ProgressBar", "add_folder_args", "add_image_limit_args", "check_tracking_options", "progress_disabled",
           "run_options", "stopped_error", "tracker_params"]


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


def progress_disabled(no_progress: bool = False) -> bool:
    """Whether to hide progress bars: when asked to, or when stderr is not a terminal (a pipe, a log file)."""
    return no_progress or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


class ProgressBar:
    """A run's :class:`~openpose_lite.runs.Progress` as a tqdm bar on stderr (made with the first report,
    which knows the total), its failures as lines above it."""

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

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


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


def tracker_params(args: argparse.Namespace):
    """The tracker settings of ``infer --track``: ``--smooth``, ``--track-min-score`` (else the tracker's
    default). Raises ValueError for a value the tracker refuses."""
    from openpose_lite.tracking import TrackerParams

    chosen = {} if args.track_min_score is None else {"min_score": args.track_min_score}
    return TrackerParams(smooth=args.smooth, **chosen)


def run_options(args: argparse.Namespace, weights) -> RunOptions:
    """The run ``infer``'s options ask for (checked: :func:`check_tracking_options`); ``weights``: the weights file."""
    return RunOptions(output=args.output, overwrite=args.overwrite, append=args.append, weights=weights,
                      writers={"keypoints", "rendered_image", "rendered_video"} if args.render else {"keypoints"},
                      tracking=tracker_params(args) if args.track else None, batch_size=args.batch_size,
                      pipelined=not args.no_pipeline, max_image_pixels=args.max_image_pixels,
                      max_frames=args.max_frames, duration=args.duration, reconnect=args.reconnect)


def stopped_error(stop: RunStopped) -> CliError:
    """The one line (and exit code) of a run that stopped: 130 for Ctrl-C, 143 for SIGTERM, else 1 (a full
    disk; a Ray cluster's error, its first line)."""
    cause = stop.cause
    if isinstance(cause, KeyboardInterrupt):
        return CliError(stop.message(interrupt_word(cause)), interrupt_code(cause))
    if isinstance(cause, OSError):
        return CliError(stop.message(f"stopped: {describe_os_error(cause)}"), EXIT_FAILURE)
    return CliError(stop.message((str(cause).splitlines() or [type(cause).__name__])[0][:160]), EXIT_FAILURE)
