"""The trainer: :class:`Trainer` trains either branch from a :class:`~openpose_lite.training.resume.RunSetup`,
fresh or resumed, alone or as one rank of a torchrun run; :meth:`Trainer.fit` reads as the algorithm.

It logs, raises and never prints: a command line prints from the :class:`TrainListener` it is given
(rank 0) and from :attr:`Trainer.result`, a :class:`TrainResult` filled in as the run goes. Raises
ValueError / FileNotFoundError for bad input, before anything is written (a
:class:`~openpose_lite.run_lock.FolderLockedError` for a folder another run holds);
:class:`NonFiniteLossError` (``result.sound_checkpoint``: the checkpoint to resume from); OSError for a
failed write; KeyboardInterrupt (``result.epochs_done``: the last epoch checkpointed).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openpose_lite.config import config_to_dict, save_config
from openpose_lite.devices import set_threads
from openpose_lite.io import naming_os_errors
from openpose_lite.factory import build_model
from openpose_lite.training import engine
from openpose_lite.training.branches import backbone_file, branch_of, describe, frozen_first
from openpose_lite.training.checkpoint import (load_training_state, restore_rng_state, save_training_state,
                                               weights_are_finite)
from openpose_lite.training.curves import draw_curves
from openpose_lite.training.data import (HELD_OUT_IMAGES, DataPaths, RunData, checked_coco, generate_scenes,
                                         generates_scenes, make_loaders, read_data, read_source, skipped_since,
                                         write_val_split)
from openpose_lite.training.distributed import barrier, setup_distributed, teardown_distributed, wrap_ddp
from openpose_lite.training.engine import NonFiniteLossError
from openpose_lite.training.metrics import MetricsLogger, check_tensorboard, cut_back
from openpose_lite.training.optim import (apply_train_settings, build_optimizer, build_scheduler, current_lr,
                                          set_trainable, step_scheduler)
from openpose_lite.training.resume import RunSetup
from openpose_lite.training.run_folder import RunFolder

__all__ = ["SCRATCH", "TrainOptions", "TrainListener", "TrainResult", "TrainState", "Trainer"]

logger = logging.getLogger(__name__)

SCRATCH = "from scratch (no --backbone-weights)"


@dataclass(frozen=True)
class TrainOptions:
    """How to run (what to train is the config); the command line's flags of the same names. ``progress``: tqdm
    bars on rank 0; ``backbone_weights`` or ``init_weights``, not both; ``threads``: CPU threads per process
    (0: on a CPU device every core, shared between the processes of a torchrun run, else torch's default)."""

    backbone_weights: Path | None = None
    init_weights: Path | None = None
    held_out_images: int = HELD_OUT_IMAGES
    progress: bool = False
    overwrite: bool = False
    threads: int = 0
    tensorboard: bool = False


@dataclass
class TrainState:
    """Where a run stands: restored from the checkpoint it resumes, advanced by each epoch, stored in every
    checkpoint. The watched metric (``best_name``) is ``AP`` with a validation set, else ``train_loss``."""

    epoch: int = 0  # epochs completed
    global_step: int = 0  # training steps completed
    best: float | None = None  # the watched metric's best value, as best.pt holds it
    best_name: str = ""
    best_epoch: int | None = None
    trunk_frozen: bool | None = None  # None until the first epoch decides


@dataclass
class TrainResult:
    """What a run did, filled in as it goes (rank 0's view); ``state``: the trainer's :class:`TrainState`."""

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
    epochs_done: int = 0  # the last epoch checkpointed
    state: TrainState = field(default_factory=TrainState)
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


class Trainer:
    """One training run of the model ``setup.config`` describes; :meth:`fit` runs it. ``result``: the
    :class:`TrainResult` to fill in (default: a new one), which a caller that catches what :meth:`fit`
    raises still holds."""

    def __init__(self, setup: RunSetup, options: TrainOptions = TrainOptions(), listener: TrainListener | None = None,
                 result: TrainResult | None = None) -> None:
        self.setup, self.options, self.cfg = setup, options, setup.config
        self.listener = listener if listener is not None else TrainListener()
        self.result = result if result is not None else TrainResult()
        self.result.notes += list(setup.notes)
        self.branch = branch_of(setup.config)
        self.folder = RunFolder(setup.config.train.output_dir)
        self.result.output_dir = self.folder.path
        # A resumed run in its checkpoint's own folder continues there; any other needs a free folder.
        self.in_place = setup.resume is not None and self.folder.same_as(setup.resume.parent)
        self.state = self.result.state
        self.metrics: MetricsLogger | None = None  # rank 0, once the run owns its folder

    def fit(self) -> TrainResult:
        """Train to ``train.epochs``; every step on every rank unless said otherwise. Returns :attr:`result`."""
        self.info, self.device = setup_distributed(self.cfg.train.device)
        self.progress = self.options.progress and self.info.is_main
        try:
            self._build()  # everything that can refuse the run, before anything is written
            # Rank 0 holds the folder's lock from here to the end, and checks it free again under it.
            with self.folder.owned(f"training model.arch {self.cfg.model.arch}", self.options.overwrite,
                                   self.in_place, self.info.is_main, self.device):
                self._open_folder()  # stale temp files, the old run cleared or its log cut back, config.yaml
                self._write_data()  # generated scenes, or the training file's held-out images
                self._start()  # the run_start record; the resumed RNG states
                for epoch in range(self.state.epoch + 1, self.cfg.train.epochs + 1):  # resumed: after last.pt's
                    self._set_trunk(epoch)  # frozen for the first train.freeze_trunk_epochs, then released
                    record = self._train_epoch(epoch)
                    self._validate(epoch, record)  # validation loss, COCO AP when due, the schedule's step
                    self._checkpoint(epoch, record)  # the log, best.pt when improved, then last.pt
        except NonFiniteLossError as exc:
            if self.info.is_main:
                found = self.folder.sound_checkpoint(exc.epoch, exc.step)
                self.result.sound_checkpoint, self.result.sound_epoch = found if found is not None else (None, None)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.close()
            teardown_distributed()
        return self.result

    # ------------------------------------------------------------------------------ before any write
    def _build(self) -> None:
        """The folder checked free; the training file read, the skeleton chosen; the model built (seeded with
        ``train.seed`` right before, so its initial weights depend on it alone); its first weights or the
        resumed state loaded; the data checked and the loaders built (a synthetic run's: once it owns the folder)."""
        options = self.options
        if not self.in_place:
            self.folder.check_free(options.overwrite)
        if options.tensorboard:
            check_tensorboard()
        if options.threads:
            set_threads(options.threads)
        elif self.device.type == "cpu":
            # Every core for this process's math; under torchrun on one machine they are shared.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, self.info.local_world_size)))
        named = self.setup.skeleton_named if self.setup.checkpoint is None else None
        self.cfg, source, note = read_source(self.cfg, named)
        self.result.notes += [note] if note else []
        cfg = self.cfg
        random.seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg.model, self.branch.layout(source.skeleton)).to(self.device)
        self.codec = self.branch.build_codec(cfg, skeleton=self.model.skeleton)
        self.codec.check_model(self.model, f"model.arch {cfg.model.arch}")
        self.amp = cfg.train.amp and self.device.type == "cuda"
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.scheduler = build_scheduler(self.optimizer, cfg.train)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp) if self.device.type == "cuda" else None
        self._init_weights()
        self.bank, self.given_val = source.bank, None
        if not generates_scenes(cfg):
            self._use(read_data(cfg, DataPaths.given(cfg), self.codec.skeleton, self.progress, source.file))
        elif cfg.data.val_ann is not None:
            self.given_val = checked_coco(cfg, Path(cfg.data.val_ann), Path(cfg.data.val_images or ""),
                                          self.codec.skeleton, self.progress)

    def _init_weights(self) -> None:
        """The trunk from ``--backbone-weights``, the network from ``--init-weights``, or the resumed checkpoint's
        states (this run's optimiser and schedule settings put into them) and :attr:`state`."""
        from openpose_lite.models.weights import init_from_weights, load_backbone

        setup, options, result = self.setup, self.options, self.result
        result.trunk_init = SCRATCH
        if setup.checkpoint is not None:
            for flag, given in (("--backbone-weights", options.backbone_weights),
                                ("--init-weights", options.init_weights)):
                if given is not None:
                    logger.warning("%s is ignored when resuming: the weights come from %s", flag, setup.resume)
            stored = setup.checkpoint
            load_training_state(stored, self.model, self.optimizer, self.scheduler, self.scaler,
                                where=str(setup.resume))
            apply_train_settings(self.optimizer, self.scheduler, setup.stored_config.train, self.cfg.train)
            self.state.epoch, self.state.global_step = int(stored["epoch"]), int(stored.get("global_step", 0))
            self.state.best_name = str(stored.get("best_metric_name") or "")
            result.trunk_init = f"resumed from {setup.resume} at epoch {self.state.epoch}"
        elif options.backbone_weights is not None:
            result.trunk_init = load_backbone(self.model, options.backbone_weights)
        elif options.init_weights is not None:
            result.trunk_init = init_from_weights(self.model, options.init_weights)
        elif self.cfg.train.freeze_trunk_epochs > 0 and frozen_first(self.model):
            logger.warning("train.freeze_trunk_epochs=%d with a trunk from scratch: the random trunk stays fixed "
                           "for those epochs", self.cfg.train.freeze_trunk_epochs)

    def _use(self, data: RunData) -> None:
        """Train and validate on ``data``: the branch's datasets and the loaders."""
        self.data = data
        self.train_ds, val_ds = self.branch.build_datasets(self.cfg, data, self.codec)
        self.loaders = make_loaders(self.cfg, self.train_ds, val_ds, self.info, self.device, data.paths.train_ann,
                                    self.branch.sample_kind)
        self.result.notes += [note for note in (data.note, self.loaders.note) if note is not None]
        logger.info("%s", data.note)
        if data.paths.held_out_ann is not None:
            self.result.held_out_dir = data.paths.held_out_ann.parent

    # ------------------------------------------------------------------------------ the folder is the run's
    def _open_folder(self) -> None:
        """Rank 0: stale temp files removed, the old run cleared (``overwrite``) or the log cut back to the
        resumed checkpoint, ``config.yaml`` written, ``metrics.jsonl`` opened; every rank waits for it."""
        folder, result = self.folder, self.result
        if self.info.is_main:
            result.removed += folder.remove_stale_temp_files()
            if self.in_place:
                cut_back(folder.metrics, self.state.epoch, self.state.global_step)
            elif self.options.overwrite:
                result.removed += folder.clear()
            folder.path.mkdir(parents=True, exist_ok=True)
            with naming_os_errors(folder.config):
                result.note_written(save_config(self.cfg, folder.config))
            tensorboard = folder.tensorboard if self.options.tensorboard else None
            self.metrics = MetricsLogger(folder.metrics, tensorboard_dir=tensorboard)
            result.note_written(folder.metrics)
            if tensorboard is not None:
                result.note_written(tensorboard)
        barrier()

    def _write_data(self) -> None:
        """A synthetic run's scenes (drawn by rank 0, read by every rank), or the training file's held-out images."""
        with naming_os_errors(self.folder.data):
            if generates_scenes(self.cfg):
                paths = generate_scenes(self.cfg, self.info, self.options.held_out_images, self.bank)
            elif self.info.is_main:
                write_val_split(self.data)
        if generates_scenes(self.cfg):
            self._use(read_data(self.cfg, paths, self.codec.skeleton, self.progress, val=self.given_val))
        for written in self.data.paths.generated(self.folder.path):
            self.result.note_written(written)

    def _start(self) -> None:
        """The watched metric and, on resume, its best value as ``best.pt`` holds it (see run_folder.py); the
        ``run_start`` record; the resumed RNG states, last."""
        state, result, cfg, checkpoint = self.state, self.result, self.cfg, self.setup.checkpoint
        state.best_name = state.best_name or ("AP" if self.data.paths.val_ann is not None else "train_loss")
        if checkpoint is not None:
            state.best, state.best_epoch = self.folder.recorded_best(state.best_name)
            if checkpoint.get("best_metric") != state.best:
                logger.warning("%s recorded best %s %s, %s holds %s (epoch %s): continuing from what best.pt holds",
                               self.setup.resume, state.best_name, checkpoint.get("best_metric"), self.folder.best,
                               state.best, state.best_epoch)
        result.branch, result.model = self.branch.title, describe(cfg)
        result.parameters = sum(p.numel() for p in self.model.parameters())
        result.device, result.amp, result.world_size = str(self.device), self.amp, self.info.world_size
        result.train_samples, result.sample_kind = len(self.train_ds), self.branch.sample_kind
        result.backbone_file, result.batch_size = backbone_file(cfg), self.loaders.batch_size
        result.start_epoch = result.epochs_done = state.epoch
        result.epochs = cfg.train.epochs
        logger.info("trunk %s", result.trunk_init)
        if self.metrics is not None:
            self.metrics.log({"type": "run_start", "time": time.time(), "trunk_init": result.trunk_init,
                              "device": result.device, "world_size": result.world_size, "start_epoch": state.epoch,
                              "parameters": result.parameters, "train_samples": result.train_samples,
                              "sample_kind": result.sample_kind, "batch_size": result.batch_size,
                              "notes": result.notes, "amp": self.amp, "config": config_to_dict(cfg)})
        if self.info.is_main:
            self.listener.started(result)
        if checkpoint is not None and checkpoint.get("rng") is not None:
            # Restored last, right before the epochs: nothing in between may draw from the global RNGs.
            restore_rng_state(checkpoint["rng"])

    # ------------------------------------------------------------------------------ one epoch
    def _set_trunk(self, epoch: int) -> None:
        """Freeze the trunk for the first ``train.freeze_trunk_epochs`` epochs, then release it."""
        trunk = frozen_first(self.model)
        frozen = bool(trunk) and epoch <= self.cfg.train.freeze_trunk_epochs
        if frozen == self.state.trunk_frozen:
            return
        set_trainable(trunk, not frozen)
        # DDP only syncs what required grad when it was built: wrap again after a release.
        self.ddp_model = wrap_ddp(self.model, self.device)
        if self.info.is_main and (self.state.trunk_frozen is not None or frozen):
            self.listener.trunk_changed(epoch, frozen)
        self.state.trunk_frozen = frozen

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training set (every rank on its share); the epoch's record."""
        self.loaders.sampler.set_epoch(epoch - 1)
        self.train_ds.set_epoch(epoch - 1)
        skipped = self.train_ds.skipped
        stats = engine.train_one_epoch(
            self.ddp_model, self.loaders.train, self.optimizer, self.branch.loss_terms, self.device, self.scaler,
            epoch, amp=self.amp, log_every=self.cfg.train.log_every, metrics_logger=self.metrics,
            global_step=self.state.global_step, progress=self.progress,
        )
        self.state.global_step += int(stats["steps"])
        return {"type": "epoch", "epoch": epoch, "global_step": self.state.global_step,
                "trunk_frozen": bool(self.state.trunk_frozen), **{f"train/{k}": v for k, v in stats.items()},
                "train/skipped_images": skipped_since(self.train_ds, skipped, self.device, "training")}

    def _validate(self, epoch: int, record: dict[str, Any]) -> None:
        """Into ``record``: the validation loss (every rank, on its shard), the COCO AP (rank 0, every
        ``train.eval_every`` epochs and after the last), the learning rate after the schedule's step."""
        t, paths = self.cfg.train, self.data.paths
        if self.loaders.val is not None:
            before = self.loaders.val.dataset.skipped
            val = engine.evaluate_loss(self.model, self.loaders.val, self.branch.loss_terms, self.device,
                                       amp=self.amp, progress=self.progress)
            record.update({f"val/{k}": v for k, v in val.items()})
            record["val/skipped_images"] = skipped_since(self.loaders.val.dataset, before, self.device, "validation")
            if not math.isfinite(val["loss"]):
                # Not a stop: training steps are what diverge; an eval-mode loss can be NaN on its own
                # (batch-norm statistics of imported weights). A non-finite one never vouches for a checkpoint.
                logger.warning("non-finite validation loss after epoch %d: %s", epoch, val["loss"])
        if paths.val_ann is not None and self.info.is_main and (
                epoch == t.epochs or (t.eval_every > 0 and epoch % t.eval_every == 0)):
            start = time.perf_counter()
            ap = self.branch.evaluate_ap(self.model, self.cfg, paths.val_ann, paths.val_images, self.device,
                                         t.val_max_images, self.progress)
            record.update({f"val/{k}": v for k, v in ap.items()})
            record["val/ap_seconds"] = time.perf_counter() - start
        step_scheduler(self.scheduler, record.get("val/loss", record["train/loss"]))
        record["next_lr"] = current_lr(self.optimizer)
        if not weights_are_finite(self.model.state_dict()):
            raise NonFiniteLossError(f"non-finite weights after epoch {epoch} (the last steps' updates overflowed)",
                                     epoch, 0)

    def _checkpoint(self, epoch: int, record: dict[str, Any]) -> None:
        """Rank 0: log the epoch, then write ``best.pt`` when the watched metric improved, then ``last.pt``
        (see run_folder.py); every rank waits for it."""
        state, result, folder = self.state, self.result, self.folder
        state.epoch = epoch
        if self.info.is_main:
            metric = {"AP": record.get("val/AP"), "val_loss": record.get("val/loss")}.get(state.best_name,
                                                                                         record["train/loss"])
            improved = metric is not None and (state.best is None or (
                metric > state.best if state.best_name == "AP" else metric < state.best))
            if improved:
                state.best, state.best_epoch = metric, epoch
            record["best_metric"], record["best_metric_name"] = state.best, state.best_name
            # Logged first: a kill before the checkpoints leaves a record that the resumed run cuts back.
            self.metrics.log(record, step=state.global_step)
            for path in [folder.best, folder.last] if improved else [folder.last]:
                result.note_written(save_training_state(
                    path, self.model, self.optimizer, self.scheduler, epoch, config_to_dict(self.cfg),
                    best_metric=state.best, best_metric_name=state.best_name, scaler=self.scaler,
                    global_step=state.global_step, best_epoch=state.best_epoch, val_loss=record.get("val/loss")))
            result.epochs_done = epoch
            if "val/AP" in record or self.data.paths.val_ann is None:  # at each evaluation
                if draw_curves(folder.metrics, folder.curves, f"{folder.path.name} ({self.cfg.model.arch})"):
                    result.note_written(folder.curves)
            self.listener.epoch_done(result, record, improved)
        barrier()
