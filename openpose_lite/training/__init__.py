"""Training of both branches (bottom-up OpenPose, top-down HRNet) through one loop.

=================== ===========================================================================
``resume.py``        :func:`resolve_run`: config + overrides (+ the checked ``--resume`` checkpoint) -> :class:`RunSetup`
``loop.py``          :func:`fit`: the run (logs, raises, never prints)
``interface.py``     what a caller gives and gets: :class:`RunOptions`, :class:`TrainResult`, :class:`TrainListener`
``checkpoint.py``    our checkpoints: atomic save, the training state (``--resume``), RNG states
``run_folder.py``    the output folder's rules: refuse an occupied one, stale temp files, best.pt vs last.pt
``branches.py``      :data:`BRANCHES`: per branch (the architecture table says which), the codec, datasets, loss, COCO AP, frozen group
``engine.py``        :func:`train_one_epoch`, :func:`evaluate_loss`, :class:`NonFiniteLossError`
``data.py``          dataset paths, generated scenes, the loaders
``optim.py``         optimiser, schedule, their settings on resume, freezing
``metrics.py``       ``metrics.jsonl`` and TensorBoard; :func:`read_jsonl`, :func:`cut_back`
``distributed.py``   DDP: process group, barrier, all-reduce, wrapping, the evaluation sampler
=================== ===========================================================================

Checkpoints (what ``--resume`` needs) are written and read by :mod:`openpose_lite.training.checkpoint`;
the command line (argparse, printing, exit codes) is :mod:`openpose_lite.cli.train`.
"""

from openpose_lite.training.engine import NonFiniteLossError, evaluate_loss, train_one_epoch
from openpose_lite.training.interface import RunOptions, TrainListener, TrainResult
from openpose_lite.training.loop import fit
from openpose_lite.training.metrics import MetricsLogger, read_jsonl
from openpose_lite.training.resume import RunSetup, resolve_run

__all__ = ["MetricsLogger", "NonFiniteLossError", "RunOptions", "RunSetup", "TrainListener", "TrainResult",
           "evaluate_loss", "fit", "read_jsonl", "resolve_run", "train_one_epoch"]
