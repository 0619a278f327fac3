"""``openpose-lite infer SOURCES --ray [ADDRESS]``: the run spread over a Ray cluster
(:mod:`openpose_lite.runs.ray_run`), with the options of a local run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK, CliError
from openpose_lite.cli.models_args import positive_int, predictor_setup, weights_path
from openpose_lite.cli.outputs import ProgressBar, check_tracking_options, run_options, stopped_error

__all__ = ["add_ray_args", "run_infer_on_ray"]


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and ``--ray-workers N``."""
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'openpose-lite[ray]'): without ADDRESS a local Ray on this machine's "
                   "cores, else the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), whose nodes see the "
                   "inputs, weights and output folder at the same paths; workers lost are replaced, and with "
                   "--append a rerun skips the inputs the folder's index holds (docs/scale_out.md)")
    p.add_argument("--ray-workers", type=positive_int, default=None, metavar="N",
                   help="with --ray: N workers, each building the model once (default: one per GPU of the cluster, "
                   "else one per CPU)")


def run_infer_on_ray(args: argparse.Namespace) -> int:
    """``infer --ray``: refused in one line without the ``ray`` extra, or with a camera or stream."""
    from openpose_lite.cli.live import live_source
    from openpose_lite.runs import PredictorRecipe, RayOptions, RunStopped, Sources, run_on_ray
    from openpose_lite.runs.ray_run import import_ray

    if args.ray is None:
        raise CliError("--ray-workers sets the workers of a Ray run; add --ray")
    if args.ray and not args.paths and Path(args.ray).exists():  # `infer --ray photos/`: argparse took it as ADDRESS
        raise CliError(f"--ray {args.ray}: taken as the cluster's address, and it is a path: give the PATHs before "
                       "--ray (or --ray=ADDRESS)")
    try:
        import_ray()
    except ImportError as exc:
        raise CliError(str(exc)) from None
    if not args.verbose:  # the progress bar and the summary say how the run goes; Ray's notes stay in its logs
        for name in ("ray", "ray.data"):  # errors too: the run's own line names what stopped it
            logging.getLogger(name).setLevel(logging.CRITICAL)
    if live_source(args) is not None:
        raise CliError("--ray runs files, folders and videos; a camera or stream is read by one process "
                       "(leave out --ray)")
    sources = Sources.of(args.paths)  # bad paths and options fail before the model is loaded
    check_tracking_options(args)
    options = run_options(args, weights_path(args))
    path, loaded, predictor_options = predictor_setup(args)
    recipe = PredictorRecipe(path, predictor_options, args.hand, args.face, args.threads)
    try:
        with ProgressBar("img", "infer", args.no_progress) as bar:
            summary = run_on_ray(recipe, sources, options, RayOptions(address=args.ray or None,
                                                                      workers=args.ray_workers), progress=bar)
    except RunStopped as stop:
        raise stopped_error(stop) from None
    print(summary.describe(loaded.skeleton.instance_words))
    for message in summary.failures:
        print(f"  failed: {message}", file=sys.stderr)
    return EXIT_FAILURE if summary.failures else EXIT_OK
