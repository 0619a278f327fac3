"""Training of both branches (bottom-up OpenPose, top-down HRNet) by one trainer.

=================== ===========================================================================
``resume.py``        :func:`resolve_run`: config + overrides (+ the checked ``--resume`` checkpoint) -> :class:`RunSetup`
``trainer.py``       :class:`Trainer`: the run (logs, raises, never prints), its :class:`TrainState`; what a
                     caller gives and gets: :class:`TrainOptions`, :class:`TrainResult`, :class:`TrainListener`
``checkpoint.py``    our checkpoints: atomic save, the training state (``--resume``), RNG states
``run_folder.py``    the output folder's rules: refuse an occupied one, stale temp files, best.pt vs last.pt
``branches.py``      the loss terms and COCO AP the branch table names; the group frozen first
``engine.py``        :func:`train_one_epoch`, :func:`evaluate_loss`, :class:`NonFiniteLossError`
``data.py``          the training file read once, the skeleton, generated scenes, the validation set, the loaders
``optim.py``         optimiser, schedule, their settings on resume, freezing
``metrics.py``       ``metrics.jsonl`` and TensorBoard; :func:`read_jsonl`, :func:`cut_back`
``curves.py``        ``curves.png`` from ``metrics.jsonl``
``distributed.py``   DDP: process group, barrier, all-reduce, wrapping, the evaluation sampler
=================== ===========================================================================

The command line (argparse, printing, exit codes) is :mod:`openpose_lite.cli.train`.
"""

from openpose_lite.training.engine import NonFiniteLossError, evaluate_loss, train_one_epoch
from openpose_lite.training.metrics import MetricsLogger, read_jsonl
from openpose_lite.training.resume import RunSetup, resolve_run
from openpose_lite.training.trainer import Trainer, TrainListener, TrainOptions, TrainResult, TrainState

__all__ = ["MetricsLogger", "NonFiniteLossError", "RunSetup", "TrainListener", "TrainOptions", "TrainResult",
           "TrainState", "Trainer", "evaluate_loss", "read_jsonl", "resolve_run", "train_one_epoch"]
