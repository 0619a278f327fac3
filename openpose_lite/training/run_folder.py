"""A training run's output folder (``train.output_dir``): ``config.yaml``, ``metrics.jsonl``, ``best.pt``,
``last.pt``, ``curves.png``, ``tensorboard/``, ``data/`` (a synthetic run's scenes).

Besides every output folder's rules (:mod:`openpose_lite.output_folder`), whenever the process is killed:

* each epoch is logged first, then ``best.pt`` is written (when the watched metric improved), then
  ``last.pt``, which records the best value only once ``best.pt`` holds it. A resumed run cuts the log
  back to its checkpoint and takes the best value from ``best.pt`` (:meth:`RunFolder.recorded_best`);
* after a non-finite loss, :meth:`RunFolder.sound_checkpoint` names the newest sound checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Iterator

import torch

from openpose_lite.output_folder import FolderHoldsRunError, OutputFolder
from openpose_lite.training.checkpoint import load_checkpoint, weights_are_finite
from openpose_lite.training.distributed import any_rank

__all__ = ["RUN_FILES", "RunFolder", "RunFolderError"]

logger = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt", "curves.png")


class RunFolderError(FolderHoldsRunError):
    """The output folder cannot take this run (it holds another one)."""


class RunFolder(OutputFolder):
    """The output folder of one run, at ``path``; its files by name (``config``: ``config.yaml``, ...)."""

    RUN_FILES = (*((name, None) for name in RUN_FILES), ("tensorboard", None))

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.config, self.metrics, self.best, self.last, self.curves = (self.path / name for name in RUN_FILES)
        self.tensorboard, self.data = self.path / "tensorboard", self.path / "data"

    def same_as(self, other: str | os.PathLike[str]) -> bool:
        return os.path.realpath(self.path) == os.path.realpath(other)

    def check_free(self, overwrite: bool, append: bool = False, locked: bool = False) -> list[Path]:
        """:meth:`OutputFolder.check_free <openpose_lite.output_folder.OutputFolder.check_free>` with a training
        run's ways on (``append`` has none: continuing a run is ``--resume``); RunFolderError for a folder
        that holds a run."""
        held = super().check_free(True, locked=locked)
        if not held or overwrite:
            return held
        if self.last.is_file():
            error = self.refusal(held, ways=[f"continue it with --resume {self.last}", "replace it with --overwrite"])
        else:
            error = self.refusal(held, "holds the start of a run that saved no checkpoint", ["start again with --overwrite"])
        raise RunFolderError(str(error), held)

    @contextlib.contextmanager
    def owned(self, description: str, overwrite: bool, in_place: bool, is_main: bool,
              device: torch.device) -> Iterator[None]:
        """Rank 0 (``is_main``) holds the folder's lock for the block and checks the folder free under it
        (unless the run continues in place); every rank raises when it could not (FolderLockedError,
        RunFolderError; ``device``: where the ranks' collectives run)."""
        with contextlib.ExitStack() as stack:
            error: ValueError | None = None
            if is_main:
                try:
                    stack.enter_context(self.lock(description))
                    if not in_place:  # another run may have finished in it since the first check
                        self.check_free(overwrite, locked=True)
                except ValueError as exc:
                    error = exc
            if any_rank(error is not None, device):
                raise error if error is not None else RunFolderError(f"{self.path}: rank 0 could not take the folder")
            yield

    def recorded_best(self, name: str) -> tuple[float | None, int | None]:
        """(value, epoch) of the watched metric ``name`` as ``best.pt`` holds it; (None, None) without one:
        what a resumed run believes, whatever its checkpoint says (a kill may fall between the two writes)."""
        if not self.best.is_file():
            return None, None
        try:
            data = load_checkpoint(self.best)
        except ValueError as exc:
            logger.warning("%s; it will be replaced at the next improvement", exc)
            return None, None
        value = data.get("best_metric")
        if data.get("best_metric_name") != name or not isinstance(value, float):
            logger.warning("%s watches %r, this run %r: it will be replaced at the next improvement",
                           self.best, data.get("best_metric_name"), name)
            return None, None
        return value, int(data.get("best_epoch", data.get("epoch", 0)))

    def sound_checkpoint(self, failed_epoch: int, failed_step: int) -> tuple[Path, int] | None:
        """(path, epoch) of the newest checkpoint whose weights are finite and whose loss was finite.

        The run stopped at step ``failed_step`` of epoch ``failed_epoch`` (0: after its steps). A checkpoint
        of epoch e holds the weights that started epoch e + 1: their loss was seen finite when epoch e + 1
        got past its first step, or when its own validation loss was finite. Later ones are not trusted.
        """
        sound = []
        for path in (self.last, self.best):
            if not path.is_file():
                continue
            try:
                data = load_checkpoint(path)
            except ValueError:
                continue
            epoch = int(data.get("epoch", -1))
            val_loss = data.get("val_loss")
            seen_finite = epoch < failed_epoch - 1 or (epoch == failed_epoch - 1 and (
                failed_step != 1 or (isinstance(val_loss, float) and math.isfinite(val_loss))))
            if 0 < epoch and seen_finite and weights_are_finite(data["model"]):
                sound.append((epoch, path))
        if not sound:
            return None
        epoch, path = max(sound, key=lambda item: (item[0], item[1] == self.last))
        return path, epoch
