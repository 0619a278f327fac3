"""What a caller gives a training run and gets back: :class:`RunOptions`, :class:`TrainResult` (filled in
as the run goes, so a caller that catches an exception still knows what was written) and
:class:`TrainListener` (called on rank 0; the command line prints from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpose_lite.training.data import HELD_OUT_IMAGES

__all__ = ["SCRATCH", "RunOptions", "TrainListener", "TrainResult"]

SCRATCH = "from scratch (no --backbone-weights)"


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to train: that is the config). ``progress``: tqdm bars on rank 0 (the
    caller decides, e.g. only when stderr is a terminal); ``overwrite``: replace a run the output
    folder already holds; ``held_out_images``: size of a synthetic run's held-out scene set.
    ``backbone_weights``: an ImageNet trunk file; ``init_weights``: a pose model file the whole
    network starts from (:func:`~openpose_lite.models.weights.init_from_weights`); one or the other.
    ``threads``: CPU threads per process (:func:`openpose_lite.devices.set_threads`; 0: on a CPU
    device every core, shared between the processes of a torchrun run, else torch's default).
    ``tensorboard``: also write TensorBoard event files (``tensorboard/``, when the package is installed)."""

    backbone_weights: Path | None = None
    init_weights: Path | None = None
    held_out_images: int = HELD_OUT_IMAGES
    progress: bool = False
    overwrite: bool = False
    threads: int = 0
    tensorboard: bool = False


@dataclass
class TrainResult:
    """What a run did, filled in as it goes (rank 0's view)."""

    output_dir: Path | None = None
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    branch: str = ""
    model: str = ""  # the model's shape in words
    parameters: int = 0
    device: str = ""
    amp: bool = False
    world_size: int = 1
    train_samples: int = 0
    sample_kind: str = "training images"
    batch_size: int = 0  # per process: train.batch_size, or the training set when it holds fewer
    notes: list[str] = field(default_factory=list)  # what the run chose for the user: skeleton, validation, batch
    trunk_init: str = ""
    backbone_file: str = ""  # what --backbone-weights would take for this branch
    start_epoch: int = 0
    epochs: int = 0
    epochs_done: int = 0
    best_metric: float | None = None
    best_metric_name: str = ""
    best_epoch: int | None = None
    held_out_dir: Path | None = None
    sound_checkpoint: Path | None = None  # after a non-finite stop: the checkpoint to resume from
    sound_epoch: int | None = None

    def note_written(self, path: Path) -> None:
        if path not in self.written:
            self.written.append(path)


class TrainListener:
    """Called on rank 0 as the run goes (the command line prints from it); does nothing by default."""

    def started(self, result: TrainResult) -> None:
        """The model, data and device are ready; the first epoch is next."""

    def trunk_changed(self, epoch: int, frozen: bool) -> None:
        """The trunk is frozen from, or released at, ``epoch``."""

    def epoch_done(self, result: TrainResult, record: dict[str, Any], improved: bool) -> None:
        """Epoch ``record["epoch"]`` is logged and checkpointed; ``improved``: best.pt was written."""
