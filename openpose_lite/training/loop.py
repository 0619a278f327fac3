"""The training run: :func:`fit` trains either branch from a :class:`~openpose_lite.training.resume.RunSetup`.

It logs, raises and never prints: what a command line shows comes from the
:class:`TrainListener` it passes (called on rank 0) and from the :class:`TrainResult`, which is
filled in as the run goes, so a caller that catches an exception still knows what was written.

Order of a run, each step on every rank unless said otherwise:

1. checks that write nothing: the output folder is free (or ``overwrite``, or this run's own on
   resume), the model is built (seeded with ``train.seed`` right before, so the initial weights
   depend on it alone) and its codec fits it (stride, channels), the trunk weights or the resumed
   state load into it; the annotation files are read and every image they name is checked
   (inside its folder, present, a header of the entry's size within ``data.max_image_pixels``;
   decoded, in a set not too large: :func:`~openpose_lite.training.data.checked_coco`),
   the validation set is chosen (a given file, or images held out of the training file) and the
   batch fitted to the training set, the datasets and loaders are built
   (:mod:`openpose_lite.training.data`); a synthetic run instead checks that its figures can be
   drawn. Whatever refuses the run refuses it here, so a refused run leaves no file;
2. rank 0 takes the folder's lock (:mod:`openpose_lite.run_lock`), held until the run ends, and
   checks again that the folder is free: a second run into it is refused, naming the first;
3. rank 0 writes: stale temp files removed, the old run cleared (``overwrite``), the log cut back
   to the resumed checkpoint, ``config.yaml``, ``metrics.jsonl``; then data (generated scenes,
   then read as in 1; or the training file's held-out images, ``data/val_split``);
4. epochs: train, validation loss, COCO AP (rank 0, every ``train.eval_every`` epochs and the
   last), schedule; then rank 0 logs the epoch, writes ``best.pt`` when the watched metric
   improved and ``last.pt`` (see :mod:`openpose_lite.training.run_folder` for why that order).

Raises ValueError / FileNotFoundError for bad input (a
:class:`~openpose_lite.run_lock.FolderLockedError` for a folder another run holds),
:class:`NonFiniteLossError` for a loss or weights that became NaN or infinite
(``TrainResult.sound_checkpoint`` then names the checkpoint to resume from), OSError for a
failed write, KeyboardInterrupt when interrupted.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from openpose_lite.config import config_to_dict, save_config
from openpose_lite.devices import set_threads
from openpose_lite.io import naming_os_errors
from openpose_lite.models.architectures import architecture
from openpose_lite.models.factory import build_model
from openpose_lite.training import engine
from openpose_lite.training.branches import Branch, branch_of
from openpose_lite.training.checkpoint import (
    load_training_state,
    restore_rng_state,
    save_training_state,
    weights_are_finite,
)
from openpose_lite.training.curves import draw_curves
from openpose_lite.training.data import (
    DataPaths,
    Loaders,
    RunData,
    generate_scenes,
    generates_scenes,
    given_paths,
    make_loaders,
    read_data,
    run_skeleton,
    scene_bank,
    skipped_images,
    skipped_since,
    write_val_split,
)
from openpose_lite.training.distributed import DistInfo, barrier, setup_distributed, teardown_distributed, wrap_ddp
from openpose_lite.training.engine import NonFiniteLossError
from openpose_lite.training.interface import SCRATCH, RunOptions, TrainListener, TrainResult
from openpose_lite.training.metrics import MetricsLogger, check_tensorboard, cut_back
from openpose_lite.training.optim import (
    apply_train_settings,
    build_optimizer,
    build_scheduler,
    current_lr,
    set_trainable,
    step_scheduler,
)
from openpose_lite.training.resume import RunSetup
from openpose_lite.training.run_folder import RunFolder

__all__ = ["fit"]

logger = logging.getLogger(__name__)

def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _better(value: float, best: float | None, name: str) -> bool:
    if best is None:
        return True
    return value > best if name == "AP" else value < best


@dataclass
class _Run:
    """The objects of one run and its progress; built by :func:`_start`."""

    setup: RunSetup
    options: RunOptions
    branch: Branch
    info: DistInfo
    device: torch.device
    folder: RunFolder
    result: TrainResult
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    amp: bool
    codec: Any = None
    metrics: MetricsLogger | None = None
    bank: Any = None  # a synthetic run's figures (data.skeleton's PoseBank; None: people)
    data: RunData | None = None
    paths: DataPaths | None = None
    train_ds: Any = None
    loaders: Loaders | None = None
    ddp_model: nn.Module | None = None
    frozen: bool | None = None
    start_epoch: int = 0
    global_step: int = 0
    best: float | None = None
    best_name: str = ""
    best_epoch: int | None = None

    @property
    def cfg(self):
        return self.setup.config

    @property
    def in_place(self) -> bool:
        return _in_place(self.setup, self.folder)

    @property
    def progress(self) -> bool:
        return self.options.progress and self.info.is_main


# ------------------------------------------------------------------------------ start
def _in_place(setup: RunSetup, folder: RunFolder) -> bool:
    """Whether the run continues a checkpoint in the checkpoint's own folder (else the folder must be free)."""
    return setup.resume is not None and folder.same_as(setup.resume.parent)


def _build_model(cfg, branch: Branch, device: torch.device) -> tuple[nn.Module, Any]:
    """The untrained model of the run's skeleton on ``device`` (weights from ``train.seed`` alone) and its
    codec, checked against it."""
    layout = architecture(cfg.model.arch).layout(run_skeleton(cfg))
    _seed_everything(cfg.train.seed)
    model = build_model(cfg.model, layout).to(device)
    codec = branch.build_codec(cfg, skeleton=model.skeleton)
    codec.check_model(model, f"model.arch {cfg.model.arch}")
    return model, codec


def _init_weights(run: _Run) -> None:
    """Trunk from --backbone-weights, the network from --init-weights, or the resumed checkpoint's
    state (model, optimizer, scheduler, scaler)."""
    from openpose_lite.models.weights import init_from_weights, load_backbone

    cfg, setup = run.cfg, run.setup
    run.result.trunk_init = SCRATCH
    if setup.checkpoint is not None:
        for flag, given in (("--backbone-weights", run.options.backbone_weights), ("--init-weights", run.options.init_weights)):
            if given is not None:
                logger.warning("%s is ignored when resuming: the weights come from %s", flag, setup.resume)
        state = load_training_state(setup.checkpoint, run.model, run.optimizer, run.scheduler, run.scaler,
                                    restore_rng=False, where=str(setup.resume))
        apply_train_settings(run.optimizer, run.scheduler, setup.stored_config.train, cfg.train)
        run.start_epoch, run.global_step = int(state["epoch"]), int(state.get("global_step", 0))
        run.best_name = str(state.get("best_metric_name") or "")
        run.result.trunk_init = f"resumed from {setup.resume} at epoch {run.start_epoch}"
    elif run.options.backbone_weights is not None:
        run.result.trunk_init = load_backbone(run.model, run.options.backbone_weights)
    elif run.options.init_weights is not None:
        run.result.trunk_init = init_from_weights(run.model, run.options.init_weights)
    elif cfg.train.freeze_trunk_epochs > 0 and run.branch.frozen_first(run.model):
        logger.warning("train.freeze_trunk_epochs=%d with a trunk from scratch: the random trunk stays fixed "
                       "for those epochs", cfg.train.freeze_trunk_epochs)


def _start(setup: RunSetup, options: RunOptions, branch: Branch, info: DistInfo, device: torch.device,
           result: TrainResult) -> _Run:
    """Step 1 of the module docstring: everything that can refuse the run, before anything is written."""
    cfg = setup.config
    folder = RunFolder(cfg.train.output_dir)
    result.output_dir = folder.path
    if not _in_place(setup, folder):
        folder.check_free(options.overwrite)
    if options.tensorboard:
        check_tensorboard()
    if options.threads:
        set_threads(options.threads)
    elif device.type == "cpu":
        # Every core for this process's math; under torchrun on one machine they are shared.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, info.local_world_size)))
    amp = cfg.train.amp and device.type == "cuda"
    model, codec = _build_model(cfg, branch, device)
    optimizer = build_optimizer(model, cfg.train)
    run = _Run(setup, options, branch, info, device, folder, result, model, optimizer,
               build_scheduler(optimizer, cfg.train),
               torch.amp.GradScaler("cuda", enabled=amp) if device.type == "cuda" else None, amp, codec)
    _init_weights(run)
    return run


def _open_folder(run: _Run) -> None:
    """Step 2, rank 0: make the folder this run's, then the log; every rank waits for it."""
    folder, result = run.folder, run.result
    if run.info.is_main:
        result.removed += folder.remove_stale_temp_files()
        if run.in_place:
            cut_back(folder.metrics, run.start_epoch, run.global_step)
        elif run.options.overwrite:
            result.removed += folder.clear()
        folder.path.mkdir(parents=True, exist_ok=True)
        with naming_os_errors(folder.config):
            result.note_written(save_config(run.cfg, folder.config))
        tensorboard = folder.tensorboard if run.options.tensorboard else None
        run.metrics = MetricsLogger(folder.metrics, tensorboard_dir=tensorboard)
        result.note_written(folder.metrics)
        if run.metrics.tensorboard:
            result.note_written(folder.tensorboard)
    barrier()


def _load_data(run: _Run, paths: DataPaths) -> None:
    """Step 1 (step 3 for generated scenes): read and check the data, choose the validation set, build
    the datasets and loaders; writes nothing."""
    cfg, result = run.cfg, run.result
    run.data = read_data(cfg, paths, run.codec.skeleton, run.progress)
    run.paths = run.data.paths
    run.train_ds, val_ds = run.branch.build_datasets(cfg, run.data, run.codec)
    run.loaders = make_loaders(cfg, run.train_ds, val_ds, run.info, run.device, run.paths.train_ann,
                               run.branch.sample_kind)
    result.notes += [note for note in (run.data.note, run.loaders.note) if note is not None]
    logger.info("%s", run.data.note)
    if run.paths.held_out_ann is not None:
        result.held_out_dir = run.paths.held_out_ann.parent


def _write_data(run: _Run) -> None:
    """Step 3: a synthetic run's scenes (then read), or the training file's held-out images (rank 0)."""
    cfg = run.cfg
    generated = generates_scenes(cfg)
    with naming_os_errors(run.folder.data):
        if generated:
            paths = generate_scenes(cfg, run.info, run.options.held_out_images, run.bank)
        elif run.info.is_main:
            write_val_split(run.data)
    if generated:
        _load_data(run, paths)
    for written in run.paths.generated(Path(cfg.train.output_dir)):
        run.result.note_written(written)


def _believe_best(run: _Run) -> None:
    """The watched metric, and on resume its best value as best.pt holds it (see run_folder.py)."""
    if not run.best_name:
        run.best_name = "AP" if run.paths.val_ann is not None else "train_loss"
    if run.setup.checkpoint is None:
        return
    run.best, run.best_epoch = run.folder.recorded_best(run.best_name)
    stored = run.setup.checkpoint.get("best_metric")
    if stored != run.best:
        logger.warning("%s recorded best %s %s, %s holds %s (epoch %s): continuing from what best.pt holds",
                       run.setup.resume, run.best_name, stored, run.folder.best, run.best, run.best_epoch)


def _announce(run: _Run, listener: TrainListener) -> None:
    cfg, result = run.cfg, run.result
    result.branch, result.model = run.branch.name, run.branch.describe(cfg)
    result.parameters = sum(p.numel() for p in run.model.parameters())
    result.device, result.amp, result.world_size = str(run.device), run.amp, run.info.world_size
    result.train_samples, result.sample_kind = len(run.train_ds), run.branch.sample_kind
    result.backbone_file = run.branch.backbone_file(cfg)
    result.start_epoch = result.epochs_done = run.start_epoch
    result.epochs = cfg.train.epochs
    result.best_metric, result.best_metric_name, result.best_epoch = run.best, run.best_name, run.best_epoch
    result.batch_size = run.loaders.batch_size
    logger.info("trunk %s", result.trunk_init)
    if run.metrics is not None:
        run.metrics.log({"type": "run_start", "time": time.time(), "trunk_init": result.trunk_init,
                         "device": result.device, "world_size": result.world_size, "start_epoch": run.start_epoch,
                         "parameters": result.parameters, "train_samples": result.train_samples,
                         "sample_kind": result.sample_kind, "batch_size": result.batch_size, "notes": result.notes,
                         "amp": run.amp, "config": config_to_dict(cfg)})
    if run.info.is_main:
        listener.started(result)


# ------------------------------------------------------------------------------ epochs
def _set_trunk(run: _Run, epoch_index: int, listener: TrainListener) -> None:
    """Freeze the trunk for the first ``train.freeze_trunk_epochs`` epochs, then release it."""
    trunk = run.branch.frozen_first(run.model)
    frozen = bool(trunk) and epoch_index < run.cfg.train.freeze_trunk_epochs
    if frozen == run.frozen:
        return
    set_trainable(trunk, not frozen)
    # DDP only syncs what required grad when it was built: wrap again after a release.
    run.ddp_model = wrap_ddp(run.model, run.device)
    if run.info.is_main and (run.frozen is not None or frozen):
        listener.trunk_changed(epoch_index + 1, frozen)
    run.frozen = frozen


def _validate(run: _Run, epoch: int, record: dict[str, Any]) -> float | None:
    """The validation loss (every rank, on its shard), or None without a validation set."""
    if run.loaders.val is None:
        return None
    before = skipped_images(run.loaders.val.dataset)
    val = engine.evaluate_loss(run.model, run.loaders.val, run.branch.loss_terms, run.device, amp=run.amp,
                               progress=run.progress)
    record.update({f"val/{k}": v for k, v in val.items()})
    record["val/skipped_images"] = skipped_since(run.loaders.val.dataset, before, run.device, "validation")
    if not math.isfinite(val["loss"]):
        # Not a stop: training steps are what diverge; an eval-mode loss can be NaN on its own
        # (batch-norm statistics of imported weights). A non-finite one never vouches for a checkpoint.
        logger.warning("non-finite validation loss after epoch %d: %s", epoch, val["loss"])
    return val["loss"]


def _evaluate_ap(run: _Run, epoch: int, record: dict[str, Any]) -> dict[str, float] | None:
    """COCO AP on the validation set (rank 0), every ``train.eval_every`` epochs and after the last."""
    t = run.cfg.train
    due = epoch == t.epochs or (t.eval_every > 0 and epoch % t.eval_every == 0)
    if run.paths.val_ann is None or not due or not run.info.is_main:
        return None
    start = time.perf_counter()
    ap = run.branch.evaluate_ap(run.model, run.cfg, run.paths.val_ann, run.paths.val_images, run.device,
                                t.val_max_images, run.progress)
    record.update({f"val/{k}": v for k, v in ap.items()})
    record["val/ap_seconds"] = time.perf_counter() - start
    return ap


def _watched(run: _Run, stats: dict[str, float], val_loss: float | None, ap: dict[str, float] | None) -> float | None:
    if run.best_name == "AP":
        return ap["AP"] if ap is not None else None
    return val_loss if run.best_name == "val_loss" else stats["loss"]


def _save_epoch(run: _Run, epoch: int, record: dict[str, Any], metric: float | None, val_loss: float | None,
                listener: TrainListener) -> None:
    """Rank 0: log the epoch, then best.pt (if improved), then last.pt, which records the best only now."""
    improved = metric is not None and _better(metric, run.best, run.best_name)
    if improved:
        run.best, run.best_epoch = metric, epoch
    record["best_metric"], record["best_metric_name"] = run.best, run.best_name
    # Logged first: a kill before the checkpoints leaves a record that the resumed run cuts back.
    run.metrics.log(record, step=run.global_step)
    state = dict(best_metric=run.best, best_metric_name=run.best_name, scaler=run.scaler,
                 global_step=run.global_step, best_epoch=run.best_epoch, val_loss=val_loss)
    cfg_dict, result = config_to_dict(run.cfg), run.result
    if improved:
        result.note_written(save_training_state(run.folder.best, run.model, run.optimizer, run.scheduler, epoch,
                                                cfg_dict, **state))
    result.note_written(save_training_state(run.folder.last, run.model, run.optimizer, run.scheduler, epoch,
                                            cfg_dict, **state))
    result.epochs_done = epoch
    result.best_metric, result.best_epoch = run.best, run.best_epoch
    if "val/AP" in record or run.paths.val_ann is None:  # at each evaluation
        if draw_curves(run.folder.metrics, run.folder.curves, f"{run.folder.path.name} ({run.cfg.model.arch})"):
            result.note_written(run.folder.curves)
    listener.epoch_done(result, record, improved)


def _run_epoch(run: _Run, epoch_index: int, listener: TrainListener) -> None:
    epoch, t = epoch_index + 1, run.cfg.train
    _set_trunk(run, epoch_index, listener)
    run.loaders.sampler.set_epoch(epoch_index)
    run.train_ds.set_epoch(epoch_index)
    skipped = skipped_images(run.train_ds)
    stats = engine.train_one_epoch(
        run.ddp_model, run.loaders.train, run.optimizer, run.branch.loss_terms, run.device, run.scaler, epoch,
        amp=run.amp, log_every=t.log_every, metrics_logger=run.metrics, global_step=run.global_step,
        progress=run.progress,
    )
    run.global_step += int(stats["steps"])
    record: dict[str, Any] = {"type": "epoch", "epoch": epoch, "global_step": run.global_step,
                              "trunk_frozen": bool(run.frozen), **{f"train/{k}": v for k, v in stats.items()},
                              "train/skipped_images": skipped_since(run.train_ds, skipped, run.device, "training")}
    val_loss = _validate(run, epoch, record)
    ap = _evaluate_ap(run, epoch, record)
    step_scheduler(run.scheduler, val_loss if val_loss is not None else stats["loss"])
    record["next_lr"] = current_lr(run.optimizer)
    if not weights_are_finite(run.model.state_dict()):
        raise NonFiniteLossError(f"non-finite weights after epoch {epoch} (the last steps' updates overflowed)", epoch, 0)
    if run.info.is_main:
        _save_epoch(run, epoch, record, _watched(run, stats, val_loss, ap), val_loss, listener)
    barrier()


# ------------------------------------------------------------------------------ fit
def _train(run: _Run, listener: TrainListener) -> None:
    if generates_scenes(run.cfg):
        run.bank = scene_bank(run.cfg, run.codec.skeleton, run.progress)  # figures can be drawn, a val file is sound
    else:
        _load_data(run, given_paths(run.cfg))  # every file and image checked, the split and batch chosen
    # Rank 0 holds the folder's lock from here to the end; checked free again under it.
    with run.folder.owned(f"training model.arch {run.cfg.model.arch}", run.options.overwrite, run.in_place,
                          run.info.is_main, run.device):
        _open_folder(run)
        _write_data(run)
        _train_epochs(run, listener)


def _train_epochs(run: _Run, listener: TrainListener) -> None:
    _believe_best(run)
    _announce(run, listener)
    if run.setup.checkpoint is not None and run.setup.checkpoint.get("rng") is not None:
        # Restored last, right before the epochs: nothing in between may draw from the global RNGs.
        restore_rng_state(run.setup.checkpoint["rng"])
    for epoch_index in range(run.start_epoch, run.cfg.train.epochs):
        _run_epoch(run, epoch_index, listener)


def fit(setup: RunSetup, options: RunOptions = RunOptions(), listener: TrainListener | None = None,
        result: TrainResult | None = None) -> TrainResult:
    """Train the run ``setup`` describes (fresh or resumed); returns ``result``, filled in.

    Pass a ``result`` to see what was written when this raises (see the module docstring).
    """
    result = result if result is not None else TrainResult()
    listener = listener if listener is not None else TrainListener()
    result.notes += list(setup.notes)
    branch = branch_of(setup.config)
    info, device = setup_distributed(setup.config.train.device)
    try:
        run = _start(setup, options, branch, info, device, result)
        try:
            _train(run, listener)
        except NonFiniteLossError as exc:
            if info.is_main:
                found = run.folder.sound_checkpoint(exc.epoch, exc.step)
                result.sound_checkpoint, result.sound_epoch = found if found is not None else (None, None)
            raise
        finally:
            if run.metrics is not None:
                run.metrics.close()
    finally:
        teardown_distributed()
    return result
