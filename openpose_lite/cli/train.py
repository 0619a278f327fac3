"""Training on the command line: the one parser and ``main`` of ``openpose-lite train`` and ``python train_vgg19.py``
(bottom-up models only). It parses, prints and chooses the exit code (:data:`_EPILOG`);
:class:`openpose_lite.training.Trainer` trains. Every failure is one line on stderr saying what was written so far.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from openpose_lite.cli.errors import (EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE,
                                      describe_os_error, interrupt_code, interrupt_word, sigterm_as_interrupt)

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_STOPPED", "EXIT_TERMINATED", "EXIT_USAGE", "get_args_parser", "main"]

EXIT_STOPPED = EXIT_FAILURE

_EPILOG = ("Exit codes: 0 done; 1 stopped (non-finite loss, a failed write such as a full disk); 2 bad arguments, "
           "config, checkpoint, data or output folder (in use by another run, or holding a run); 130 interrupted; "
           "143 terminated (SIGTERM).")


def get_args_parser(prog: str = "openpose-lite train", add_help: bool = True) -> argparse.ArgumentParser:
    """The training options, under the program name the user typed (``openpose-lite train``, ``train_vgg19.py``)."""
    from openpose_lite.cli.models_args import add_threads_arg
    from openpose_lite.architectures import ARCHITECTURES
    from openpose_lite.training.data import HELD_OUT_IMAGES

    archs = "; ".join(f"{a.name}: {a.title}" for a in ARCHITECTURES)
    backbones = "; ".join(f"model.arch {a.name}: {a.backbone.what}" for a in ARCHITECTURES if a.backbone is not None)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Train a pose model by model.arch ({archs}). Settings come from the dataclass defaults "
        "(openpose_lite/config.py) and the published model of the architecture, then --config YAML, then the shortcut "
        "flags, then section.key=value overrides.",
        epilog=_EPILOG,
        add_help=add_help,
    )
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="config overrides, the value parsed as YAML (train.lr=1e-3, train.step_milestones=[30,60])")
    parser.add_argument("--config", type=Path, help="YAML file with the deltas from the defaults")
    parser.add_argument("--output-dir", help="shortcut for train.output_dir=...")
    parser.add_argument("--epochs", type=int, help="shortcut for train.epochs=...")
    parser.add_argument("--device", help="shortcut for train.device=... (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                        help="continue a run from a training checkpoint (bare: <output_dir>/last.pt). The settings the "
                        "run was last started with are the base (the config.yaml beside the checkpoint, else the "
                        "checkpoint's own), so a resume's overrides last; --config and overrides apply on top (the "
                        "model, optimizer and scheduler types cannot change). Writes into --output-dir when given, "
                        "else the checkpoint's folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an output folder that already holds a run, replacing its config.yaml, "
                        "metrics.jsonl, checkpoints, curves.png and tensorboard/ (without it such a folder is refused)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files to <output_dir>/tensorboard/ (pip install "
                        "'openpose-lite[tensorboard]'); curves.png and metrics.jsonl are written in any case")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--backbone-weights", type=Path, metavar="FILE",
                       help=f"ImageNet classification weights for the trunk ({backbones}); "
                       "without it the trunk starts from scratch")
    start.add_argument("--init-weights", type=Path, metavar="FILE",
                       help="a pose model file the whole network starts from, weights only (the optimizer and schedule "
                       "start afresh; any file infer --weights reads): tensors of the same name and shape are copied, "
                       "stages the file lacks start afresh, so a run can add refinement stages (Lightweight OpenPose's "
                       "train.py --weights-only)")
    parser.add_argument("--held-out-images", type=int, default=HELD_OUT_IMAGES,
                        help="synthetic runs: size of the held-out scene set written to <output_dir>/data/held_out")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are drawn only when stderr is a terminal)")
    add_threads_arg(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log at INFO level (-vv: DEBUG)")
    return parser


def _add_train(sub: argparse._SubParsersAction) -> None:
    # Listed for --help only: openpose_lite.cli.main hands "[-v] train ..." to main() here.
    sub.add_parser("train", add_help=False, help="train a model of any architecture from a YAML config; see train --help")


def _run_train(args: argparse.Namespace) -> int:
    return main(args.train_argv)


# ------------------------------------------------------------------------------ printing
def _written(result: Any, prog: str = "openpose-lite train") -> str:
    """What the run wrote, in words (``written in DIR: config.yaml, ...``), and how to continue: the
    folder's ``last.pt`` whenever there is one."""
    base = result.output_dir
    names = [str(p.relative_to(base)) if base is not None and base in p.parents else str(p) for p in result.written]
    text = f"written in {base}: {', '.join(names)}" if names else "nothing was written"
    last = base / "last.pt" if base is not None else None
    if last is not None and last.is_file():
        command = f"{'python ' if prog.endswith('.py') else ''}{prog} --resume {last}"  # as the user would type it
        text += f"; {last} holds the run: continue with {command}"
    elif last is not None and result.written:
        text += f"; no checkpoint yet ({last} is written after each epoch): start again with --overwrite"
    return text


def _one_line(exc: Exception) -> str:
    """The message of ``exc``; for one a DataLoader worker raised (the worker's traceback in its text), the
    worker's own message."""
    text = str(exc)
    if "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]  # "openpose_lite.images.ImageReadError: <message>"
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def _stopped(prog: str, exc: Exception, result: Any) -> str:
    """The one line of a non-finite stop: which checkpoint to resume from, or that none will do."""
    base = result.output_dir
    if result.sound_checkpoint is not None:
        kept = (f"the newest checkpoint with finite weights and a finite loss is {result.sound_checkpoint} "
                f"(epoch {result.sound_epoch}): resume from it with a lower rate "
                f"(--resume {result.sound_checkpoint} train.lr=...)")
        last = base / "last.pt" if base is not None else None
        if last is not None and last != result.sound_checkpoint and last.is_file():
            kept += f"; not from {last}, whose weights gave the non-finite loss"
    else:
        kept = "no checkpoint with finite weights and a finite loss exists: start again (--overwrite) with a lower train.lr"
    return f"{prog}: training stopped: {exc}; {kept}. Check the data too. {_written(result, prog)}"


class _Printer:
    """The :class:`~openpose_lite.training.TrainListener` of the command line: the run's lines on stdout."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def started(self, result: Any) -> None:
        from openpose_lite.training.trainer import SCRATCH

        hint = f"; --backbone-weights would take {result.backbone_file}" if result.trunk_init == SCRATCH else ""
        self.say(f"trunk: {result.trunk_init}{hint}")
        self.say(f"{result.branch} model: {result.model}, {result.parameters / 1e6:.2f} M parameters; "
                 f"device {result.device}{' (AMP)' if result.amp else ''}, {result.world_size} process(es); "
                 f"{result.train_samples} {result.sample_kind}, output {result.output_dir}")
        for note in result.notes:  # what the run chose: the skeleton, the validation set, the batch, the settings
            self.say(note)
        if result.start_epoch >= result.epochs > 0:  # a finished run: nothing to train unless told to go further
            last = result.output_dir / "last.pt" if result.output_dir is not None else "last.pt"
            self.say(f"resuming after epoch {result.start_epoch} of {result.epochs}: the run is complete, nothing left to "
                     f"train; to train further raise train.epochs (e.g. --resume {last} train.epochs="
                     f"{result.epochs + max(1, result.epochs // 2)})")
        elif result.start_epoch:
            self.say(f"resuming after epoch {result.start_epoch} of {result.epochs}")

    def trunk_changed(self, epoch: int, frozen: bool) -> None:
        self.say(f"epoch {epoch}: trunk {'frozen' if frozen else 'released, everything trains'}")

    def epoch_done(self, result: Any, record: dict[str, Any], improved: bool) -> None:
        from openpose_lite.io import plural

        val, ap = record.get("val/loss"), record.get("val/AP")
        unit = "crops/s" if result.sample_kind == "person crops" else "img/s"
        self.say(f"epoch {record['epoch']}/{result.epochs}: loss {record['train/loss']:.4g}"
                 + (f", val loss {val:.4g}" if val is not None else "")
                 + (f", AP {ap:.3f} (AP50 {record['val/AP50']:.3f})" if ap is not None else "")
                 + f", lr {record['train/lr']:.3g}, {record['train/samples_per_s']:.1f} {unit}, "
                 f"{record['train/seconds']:.0f} s"
                 + (f", {plural(record['train/skipped_images'], 'unreadable image')} skipped (see the warnings)"
                    if record.get("train/skipped_images") else "")
                 + (" *" if improved else ""))

    def finished(self, result: Any) -> None:
        out = result.output_dir
        state = result.state
        best = (f", best {state.best_name} {state.best:.4g} (epoch {state.best_epoch}) in {out / 'best.pt'}"
                if state.best is not None else "")
        self.say(f"done: {out / 'last.pt'}{best}")
        if result.held_out_dir is not None:
            self.say(f"held-out scenes for evaluation: {result.held_out_dir}")


# ---------------------------------------------------------------------------------- main
def _overrides(args: argparse.Namespace) -> list[str]:
    """The shortcut flags as ``section.key=value`` overrides, before the explicit ones."""
    out = []
    if args.output_dir is not None:
        out.append(f"train.output_dir={json.dumps(str(args.output_dir))}")
    if args.epochs is not None:
        out.append(f"train.epochs={args.epochs}")
    if args.device is not None:
        out.append(f"train.device={args.device}")
    return out + list(args.overrides)


def _parse(argv: Sequence[str] | None, prog: str) -> argparse.Namespace:
    args = get_args_parser(prog).parse_intermixed_args(argv)
    if args.resume not in (None, "auto") and "=" in args.resume and not Path(args.resume).exists():
        # "--resume train.epochs=20": argparse gave the override to --resume's optional value.
        args.overrides.append(args.resume)
        args.resume = "auto"
    return args


def _check_branch(arch: str, branch: str | None, prog: str) -> None:
    """Refuse an architecture of another branch than the one ``prog`` trains, naming those it does."""
    from openpose_lite.architectures import architecture, architectures

    if branch is not None and architecture(arch).branch != branch:
        names = ", ".join(a.name for a in architectures(branch))
        raise ValueError(f"model.arch: {prog} trains the {branch} models ({names}), got {arch!r}; "
                         "use 'openpose-lite train' for the others")


def main(argv: Sequence[str] | None = None, prog: str = "openpose-lite train", branch: str | None = None) -> int:
    """Parse ``argv``, train, print; returns the exit code. ``branch`` restricts ``model.arch`` to one branch of
    the architecture table (train_vgg19.py: bottomup)."""
    from openpose_lite.cli import _quiet_opencv
    from openpose_lite.training import NonFiniteLossError, TrainOptions, Trainer, TrainResult, resolve_run
    from openpose_lite.training.distributed import DistInfo, peer_lost

    args = _parse(argv, prog)
    _quiet_opencv()  # an unreadable image is reported in the run's own line, not in OpenCV's too
    info = DistInfo.from_env()
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level if info.is_main else logging.ERROR,
                        format=f"%(asctime)s [rank {info.rank}] %(levelname)s %(name)s: %(message)s")
    say = print if info.is_main else (lambda *a, **k: None)
    who = prog if info.is_main else f"{prog} [rank {info.rank}]"
    printer, result = _Printer(say), TrainResult()
    options = TrainOptions(backbone_weights=args.backbone_weights, init_weights=args.init_weights,
                         held_out_images=args.held_out_images,
                         progress=not args.no_progress and sys.stderr.isatty(), overwrite=args.overwrite,
                         threads=args.threads, tensorboard=args.tensorboard)
    try:
        with sigterm_as_interrupt():  # SIGTERM stops training as Ctrl-C does: the checkpoints written stay
            setup = resolve_run(args.config, _overrides(args), args.resume)
            _check_branch(setup.config.model.arch, branch, prog)
            Trainer(setup, options, printer, result).fit()
    except NonFiniteLossError as exc:
        if info.is_main:
            print(_stopped(prog, exc, result), file=sys.stderr)
        return EXIT_STOPPED
    except KeyboardInterrupt as exc:
        print(f"{who}: {interrupt_word(exc)} after epoch {result.epochs_done} of {result.epochs or '?'}; "
              f"{_written(result, prog)}", file=sys.stderr)
        return interrupt_code(exc)
    except (FileNotFoundError, ValueError) as exc:
        print(f"{who}: error: {_one_line(exc)}" + (f"; {_written(result, prog)}" if result.written else ""),
              file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{who}: error: {describe_os_error(exc, '--output-dir')}; {_written(result, prog)}", file=sys.stderr)
        return EXIT_STOPPED
    except RuntimeError as exc:
        reason = peer_lost(exc)
        if reason is None:
            raise  # a programming error keeps its traceback
        print(f"{who}: stopped: another process of the run was lost ({reason}) after epoch {result.epochs_done}; "
              f"{_written(result, prog)}", file=sys.stderr)
        return EXIT_STOPPED
    printer.finished(result)
    return EXIT_OK
