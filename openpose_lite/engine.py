"""What every training entry point shares: devices, DDP, epochs, checkpoints, logs.

The bottom-up script (``train_vgg19.py``) is wiring around these pieces, and the top-down
branch reuses them with another loss:

* :func:`resolve_device`, :func:`setup_distributed` / :func:`teardown_distributed`,
  :func:`wrap_ddp`, :func:`unwrap_model`: where the model runs, alone or under torchrun.
* :func:`build_optimizer`, :func:`build_scheduler`, :func:`step_scheduler`: SGD (Nesterov)
  or Adam, step or plateau schedules, as a :class:`~openpose_lite.config.TrainConfig` says.
* :func:`set_trainable`: freeze-then-release of a parameter group (the VGG19 trunk).
* :func:`train_one_epoch`, :func:`evaluate_loss`: one pass over a loader. The loss is
  pluggable: ``loss_fn(outputs, targets, weights) -> {name: scalar}``, summed by
  :func:`openpose_lite.losses.total_loss`. :func:`bottomup_loss_terms` is the CMU one.
* :func:`save_training_state`, :func:`load_training_state`: everything ``--resume`` needs
  (model, optimizer, scheduler, AMP scaler, epoch, best metric, RNG states, resolved config).
* :class:`MetricsLogger`: one JSON object per line, and TensorBoard scalars when installed.
* :class:`NonFiniteLossError`: raised, on every rank at the same step, when the loss is NaN
  or infinite; nothing is saved after it, so the last checkpoint on disk is the last good one.

Batches are ``(images, targets, weights)`` where ``targets`` and ``weights`` are tensors or
dicts of tensors (the bottom-up ``{"heatmaps", "pafs"}``); anything nested is moved to the
device as a whole.

Shape legend: B batch, S stages, C channels, H x W input size, h x w map size.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler
from tqdm import tqdm

from openpose_lite.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from openpose_lite.config import TrainConfig
from openpose_lite.devices import resolve_device
from openpose_lite.losses import stage_losses, total_loss

__all__ = [
    "DistInfo",
    "LossFn",
    "MetricsLogger",
    "NonFiniteLossError",
    "ShardSampler",
    "autocast_context",
    "barrier",
    "bottomup_loss_terms",
    "build_optimizer",
    "build_scheduler",
    "current_lr",
    "evaluate_loss",
    "load_training_state",
    "move_to_device",
    "read_jsonl",
    "resolve_device",
    "save_training_state",
    "set_trainable",
    "setup_distributed",
    "step_scheduler",
    "teardown_distributed",
    "train_one_epoch",
    "unwrap_model",
    "wrap_ddp",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[Any, Any, Any], dict[str, Tensor]]
"""``loss_fn(outputs, targets, weights) -> {term name: scalar tensor}``; the total is their sum."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training must stop (the last good checkpoint stays)."""


# --------------------------------------------------------------------------------- DDP
@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, shows progress and writes files."""
        return self.rank == 0


def setup_distributed(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if this process was started by torchrun.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; without
    them (or with ``WORLD_SIZE=1``) this is a single process and nothing is initialised. The
    backend follows the device: ``nccl`` for CUDA, ``gloo`` for CPU.

    Returns (DistInfo, the device this process trains on).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    info = DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, local_world_size=local_world)
    device = resolve_device(device_name, local_rank)
    if world_size <= 1:
        return DistInfo(), device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                **({"device_id": device} if device.type == "cuda" else {}))
    logger.info("joined process group: rank %d of %d (%s, %s)", rank, world_size, backend, device)
    return info, device


def teardown_distributed() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op outside DDP)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` inside a process group, the model itself otherwise.

    DDP registers only the parameters that require grad *when it is built*: after a frozen
    group is released (:func:`set_trainable`) the model must be wrapped again, or the
    released parameters would train apart on each rank. Pass the unwrapped model.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return model
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise ValueError("wrap_ddp: pass the plain model (unwrap_model(model)), not a DistributedDataParallel")
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a (Distributed)DataParallel wrapper, or the model itself."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


class ShardSampler(Sampler[int]):
    """Rank ``rank`` of ``world_size`` gets indices ``rank, rank + world_size, ...``, in order.

    For evaluation: unlike ``DistributedSampler`` it pads nothing, so every sample is seen
    exactly once across the ranks and summed metrics are exact.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"ShardSampler: rank {rank} is not in [0, {world_size})")
        self.length, self.rank, self.world_size = int(length), int(rank), int(world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def _all_reduce_sum(values: Tensor) -> Tensor:
    """Sum a small tensor over the ranks (identity outside DDP)."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


# ------------------------------------------------------------------- optimiser & schedule
def build_optimizer(params: Iterable[nn.Parameter], train: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov when ``train.nesterov`` and momentum > 0) or Adam, as configured.

    Pass *all* parameters, frozen ones included: a parameter whose ``requires_grad`` is False
    gets no gradient, and both optimisers skip parameters without one (weight decay and
    momentum included), so frozen weights stay bit-identical until released.
    """
    params = list(params)
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                               nesterov=train.nesterov and train.momentum > 0, weight_decay=train.weight_decay)
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    raise ValueError(f"train.optimizer: expected 'sgd' or 'adam', got {train.optimizer!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Per-epoch schedule: ``step`` (lr x gamma at each of ``step_milestones``) or ``plateau``
    (lr x gamma after ``plateau_patience`` epochs without a lower validation loss)."""
    if train.scheduler == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(train.step_milestones), gamma=train.gamma)
    if train.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=train.gamma,
                                                          patience=train.plateau_patience)
    raise ValueError(f"train.scheduler: expected 'step' or 'plateau', got {train.scheduler!r}")


def step_scheduler(scheduler: Any, monitored_loss: float | None) -> None:
    """Advance a per-epoch scheduler; a plateau scheduler watches ``monitored_loss``."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if monitored_loss is None or not math.isfinite(monitored_loss):
            raise ValueError(f"plateau scheduler: needs a finite loss to watch, got {monitored_loss!r}")
        scheduler.step(monitored_loss)
    else:
        scheduler.step()


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


def set_trainable(params: Iterable[nn.Parameter], trainable: bool) -> int:
    """Freeze (``trainable=False``) or release a parameter group; returns how many tensors changed.

    Frozen = ``requires_grad`` False: no gradient is computed for them, so the optimiser skips
    them (see :func:`build_optimizer`). Gradients left from before are dropped, so a stale
    gradient cannot move a frozen weight.
    """
    changed = 0
    for p in params:
        if p.requires_grad != trainable:
            changed += 1
        p.requires_grad_(trainable)
        if not trainable:
            p.grad = None
    return changed


# ----------------------------------------------------------------------------- loops
def bottomup_loss_terms(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                        weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CMU intermediate supervision: ``{"stage1/pafs": ..., "stageS/heatmaps": ...}`` (see losses.py)."""
    return stage_losses(outputs, targets, weights)


def move_to_device(obj: Any, device: torch.device) -> Any:
    """Tensors, and dicts/lists/tuples of them, on ``device`` (non-blocking from pinned memory)."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to_device(v, device) for v in obj)
    return obj


def autocast_context(device: torch.device, amp: bool) -> torch.autocast:
    """float16 autocast on CUDA when ``amp``; a disabled context elsewhere (CPU trains in float32)."""
    enabled = bool(amp) and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled)


def _batch_size(images: Any) -> int:
    return int(images.shape[0]) if isinstance(images, Tensor) else len(images)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    device: torch.device,
    scaler: torch.amp.GradScaler | None,
    epoch: int,
    *,
    amp: bool = False,
    log_every: int = 50,
    metrics_logger: "MetricsLogger | None" = None,
    global_step: int = 0,
    progress: bool = False,
    max_steps: int | None = None,
) -> dict[str, float]:
    """One pass of training over ``loader``; returns the epoch's mean losses and timing.

    Args:
        model: the network, possibly DDP-wrapped; put in train mode here.
        loader: yields ``(images (B, 3, H, W), targets, weights)``.
        optimizer: steps once per batch.
        loss_fn: ``(outputs, targets, weights) -> {term: scalar}``; the total is their sum.
        device: where the batch goes.
        scaler: a ``torch.amp.GradScaler`` for mixed precision (CUDA), or None.
        epoch: 1-based epoch number, for logs and messages.
        amp: float16 autocast on CUDA (ignored on CPU).
        log_every: write a ``train_step`` record every this many steps.
        metrics_logger: where records go (rank 0 passes one, other ranks None).
        global_step: steps done before this epoch (for the log's x axis).
        progress: show a tqdm bar (rank 0 on a terminal).
        max_steps: stop after this many steps (tests, benchmarks).

    Returns:
        ``{"loss": mean total, "<term>": mean of each term, "lr", "steps", "samples",
        "seconds", "samples_per_s", "step_seconds"}``; means are over every rank's samples.

    Raises:
        NonFiniteLossError: the loss (summed over the ranks, so every rank raises together)
            is NaN or infinite. Nothing has been stepped with it.
    """
    model.train()
    sums: dict[str, float] = {}
    samples = 0
    steps = 0
    total_steps = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    if max_steps is not None and total_steps is not None:
        total_steps = min(total_steps, max_steps)
    bar = tqdm(total=total_steps, desc=f"epoch {epoch}", disable=not progress, dynamic_ncols=True, leave=False)
    start = time.perf_counter()
    window_start, window_samples = start, 0
    try:
        for images, targets, weights in loader:
            if max_steps is not None and steps >= max_steps:
                break
            images = move_to_device(images, device)
            targets = move_to_device(targets, device)
            weights = move_to_device(weights, device)
            local_batch = _batch_size(images)
            with autocast_context(device, amp):
                outputs = model(images)
            # The loss is computed outside autocast: masked_sse sums in float32 anyway.
            terms = loss_fn(outputs, targets, weights)
            loss = total_loss(terms)
            # One small all-reduce per step: the logged means cover every rank, and a NaN on
            # any rank is seen by all of them at the same step (no rank hangs in backward).
            packed = torch.stack([loss.detach().float()] + [t.detach().float() for t in terms.values()]) * local_batch
            packed = _all_reduce_sum(torch.cat([packed, packed.new_tensor([float(local_batch)])])).cpu()
            batch = int(packed[-1].item())
            values = packed[:-1] / batch
            if not torch.isfinite(values[0]):
                bad = {name: float(v) for name, v in zip(terms, values[1:].tolist())}
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, step {steps + 1}: the training loss is {float(values[0])} "
                    f"(terms: {bad}); stopped before the optimiser step"
                )

            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()

            steps += 1
            samples += batch
            window_samples += batch
            record = {"loss": float(values[0])}
            record.update({name: float(v) for name, v in zip(terms, values[1:].tolist())})
            for name, value in record.items():
                sums[name] = sums.get(name, 0.0) + value * batch
            bar.update(1)
            if progress:
                bar.set_postfix(loss=f"{record['loss']:.3g}", lr=f"{current_lr(optimizer):.2g}")
            if metrics_logger is not None and steps % log_every == 0:
                now = time.perf_counter()
                metrics_logger.log({
                    "type": "train_step", "epoch": epoch, "step": steps, "global_step": global_step + steps,
                    **record, "lr": current_lr(optimizer),
                    "samples_per_s": window_samples / max(now - window_start, 1e-9),
                }, step=global_step + steps)
                window_start, window_samples = now, 0
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    if steps == 0:
        raise ValueError(f"epoch {epoch}: the training loader produced no batch (empty dataset or batch larger than it with drop_last)")
    result = {name: total / samples for name, total in sums.items()}
    result.update({
        "lr": current_lr(optimizer), "steps": float(steps), "samples": float(samples), "seconds": seconds,
        "samples_per_s": samples / max(seconds, 1e-9), "step_seconds": seconds / steps,
    })
    return result


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    loader: Iterable,
    loss_fn: LossFn,
    device: torch.device,
    *,
    amp: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """Mean loss and terms over ``loader`` without gradients: ``{"loss": ..., "<term>": ...}``.

    Pass the *unwrapped* model (:func:`unwrap_model`) and a loader over this rank's shard
    (:class:`ShardSampler`); sums are combined over the ranks, so the means are those of the
    whole set. The model is put in eval mode and back in train mode afterwards.
    """
    was_training = model.training
    model.eval()
    sums: Tensor | None = None
    names: list[str] = []
    count = 0
    try:
        for images, targets, weights in tqdm(loader, desc="val loss", disable=not progress, leave=False):
            images = move_to_device(images, device)
            with autocast_context(device, amp):
                outputs = model(images)
            terms = loss_fn(outputs, move_to_device(targets, device), move_to_device(weights, device))
            loss = total_loss(terms)
            b = _batch_size(images)
            values = torch.stack([loss.float()] + [t.float() for t in terms.values()]) * b
            names = ["loss", *terms]
            sums = values if sums is None else sums + values
            count += b
    finally:
        model.train(was_training)
    # Ranks with an empty shard still join the reduction, with zeros of the right length.
    n_terms = torch.tensor([float(len(names))], device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n_terms, op=dist.ReduceOp.MAX)
    width = int(n_terms.item())
    packed = torch.zeros(width + 1, device=device)
    if sums is not None:
        packed[:width] = sums.to(device)
    packed[width] = float(count)
    packed = _all_reduce_sum(packed).cpu()
    total = float(packed[width])
    if total == 0:
        raise ValueError("evaluate_loss: the validation loader produced no sample")
    if not names:  # this rank had no data: names are the same on every rank, rebuild generic ones
        names = ["loss"] + [f"term{i}" for i in range(1, width)]
    return {name: float(v) / total for name, v in zip(names, packed[:width].tolist())}


# ------------------------------------------------------------------------ checkpoints
def save_training_state(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    config: Mapping[str, Any],
    *,
    best_metric: float | None = None,
    best_metric_name: str = "",
    scaler: torch.amp.GradScaler | None = None,
    global_step: int = 0,
    **extra: Any,
) -> Path:
    """Write an atomic checkpoint holding everything ``--resume`` needs.

    ``epoch`` is the number of completed epochs; ``config`` the resolved config as a plain dict
    (:func:`openpose_lite.config.config_to_dict`). The model is stored unwrapped (no
    ``module.`` prefix), so the file loads into a plain model and into the predictor.
    """
    return save_checkpoint(
        path,
        model_state=unwrap_model(model).state_dict(),
        config=config,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict() if scheduler is not None else None,
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        epoch=int(epoch),
        global_step=int(global_step),
        best_metric=None if best_metric is None else float(best_metric),
        best_metric_name=str(best_metric_name),
        rng=capture_rng_state(),
        **extra,
    )


def load_training_state(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a :func:`save_training_state` checkpoint into the given objects (in place).

    The optimizer's state moves to the device of the model's parameters. Returns the whole
    checkpoint dict (``epoch``, ``global_step``, ``best_metric``, ``config``, ...).

    Raises FileNotFoundError for a missing file and ValueError naming the file for a
    checkpoint that is not a training checkpoint or does not fit the model.
    """
    data = load_checkpoint(path)
    missing = [k for k in ("epoch", "optimizer", "rng") if k not in data]
    if missing and optimizer is not None:
        raise ValueError(f"{path}: not a training checkpoint (no {missing}); it can initialise a model but not resume a run")
    target = unwrap_model(model)
    try:
        target.load_state_dict(data["model"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the model state does not fit this model ({exc})") from None
    if optimizer is not None:
        optimizer.load_state_dict(data["optimizer"])
    if scheduler is not None and data.get("scheduler") is not None:
        scheduler.load_state_dict(data["scheduler"])
    if scaler is not None and scaler.is_enabled() and data.get("scaler") is not None:
        scaler.load_state_dict(data["scaler"])
    if restore_rng and data.get("rng") is not None:
        restore_rng_state(data["rng"])
    logger.info("resumed from %s (epoch %s)", path, data.get("epoch"))
    return data


# ----------------------------------------------------------------------------- logging
class MetricsLogger:
    """Append-only JSONL metrics log (one object per line, flushed), plus TensorBoard scalars.

    Opened in append mode, so a resumed run continues the same file. TensorBoard is used
    when ``tensorboard_dir`` is given and the ``tensorboard`` package is installed; every
    numeric field of a record becomes a scalar ``<type>/<field>``. Create it on rank 0 only.
    """

    def __init__(self, path: str | os.PathLike[str], tensorboard_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info("tensorboard is not installed; metrics go to %s only", self.path)
            else:
                self._tb = SummaryWriter(log_dir=str(tensorboard_dir))

    @property
    def tensorboard(self) -> bool:
        return self._tb is not None

    def log(self, record: Mapping[str, Any], step: int | None = None) -> None:
        """Write ``record`` (JSON-serialisable) as one line; numbers also go to TensorBoard at ``step``."""
        self._fh.write(json.dumps(dict(record), allow_nan=True) + "\n")
        self._fh.flush()
        if self._tb is not None and step is not None:
            prefix = str(record.get("type", "metrics"))
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("type", "step", "global_step"):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a :class:`MetricsLogger` file (a torn last line from a killed run is skipped)."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipping a malformed line (a run killed mid-write?)", path)
    return records
