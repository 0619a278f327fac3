"""One pass over a loader: :func:`train_one_epoch` (forward, loss, backward, step) and :func:`evaluate_loss`.

Batches are ``(images (B, 3, H, W), targets, weights)``, ``targets`` and ``weights`` tensors or dicts of
them; the loss terms of a :data:`LossFn` (:mod:`openpose_lite.training.branches`) are summed. Under DDP
every step's losses are summed over the ranks (one small all-reduce), so the logged means cover every
rank's samples and a NaN on any rank stops all of them at the same step, before the optimiser step.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn
from tqdm import tqdm

from openpose_lite.losses import total_loss
from openpose_lite.training.distributed import all_reduce_max, all_reduce_sum
from openpose_lite.training.optim import current_lr

__all__ = ["LossFn", "NonFiniteLossError", "evaluate_loss", "train_one_epoch"]

LossFn = Callable[[Any, Any, Any], dict[str, Tensor]]
"""``loss_fn(outputs, targets, weights) -> {term name: scalar tensor}``; the total is their sum."""


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN or infinite, found before anything was stepped or saved with it;
    ``epoch``: 1-based; ``step``: within it (0: found after the epoch's steps, in the weights)."""

    def __init__(self, message: str, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = int(epoch), int(step)


def _to_device(obj: Any, device: torch.device) -> Any:
    """A tensor, or a dict of them, on ``device`` (non-blocking from pinned memory)."""
    if isinstance(obj, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in obj.items()}
    return obj.to(device, non_blocking=True)


def _losses(model: nn.Module, batch: tuple, loss_fn: LossFn, device: torch.device, amp: bool
            ) -> tuple[Tensor, dict[str, Tensor], int]:
    """(total loss, its terms, local batch size) of one batch; float16 autocast on CUDA when ``amp``."""
    images, targets, weights = (_to_device(part, device) for part in batch)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        outputs = model(images)
    # The loss is computed outside autocast: masked_sse sums in float32 anyway.
    terms = loss_fn(outputs, targets, weights)
    return total_loss(terms), terms, int(images.shape[0])


def _global_means(loss: Tensor, terms: Mapping[str, Tensor], local_batch: int) -> tuple[dict[str, float], int]:
    """``{"loss": mean, term: mean}`` over every rank's samples of this step, and that sample count."""
    packed = torch.stack([loss.detach().float()] + [t.detach().float() for t in terms.values()]) * local_batch
    packed = all_reduce_sum(torch.cat([packed, packed.new_tensor([float(local_batch)])])).cpu()
    batch = int(packed[-1].item())
    return dict(zip(["loss", *terms], (packed[:-1] / batch).tolist())), batch


def _step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, loss: Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                    device: torch.device, scaler: torch.amp.GradScaler | None, epoch: int, *, amp: bool = False,
                    log_every: int = 50, metrics_logger: Any = None, global_step: int = 0,
                    progress: bool = False) -> dict[str, float]:
    """One pass of training over ``loader`` (``model`` possibly DDP-wrapped); ``epoch``: 1-based;
    ``metrics_logger`` (rank 0, or None): a ``train_step`` record every ``log_every`` steps, at
    ``global_step`` (steps before this epoch) plus the step. Returns ``{"loss", "<term>", "lr", "steps",
    "samples", "seconds", "samples_per_s", "step_seconds"}``, the means over every rank's samples."""
    model.train()
    start = window_start = time.perf_counter()
    steps = samples = window_samples = 0
    sums: dict[str, float] = {}
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    with tqdm(total=total, desc=f"epoch {epoch}", disable=not progress, dynamic_ncols=True, leave=False) as bar:
        for batch in loader:
            loss, terms, local_batch = _losses(model, batch, loss_fn, device, amp)
            record, size = _global_means(loss, terms, local_batch)
            if not math.isfinite(record["loss"]):
                bad = {name: value for name, value in record.items() if name != "loss"}
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, step {steps + 1}: the training loss is {record['loss']} "
                    f"(terms: {bad}); stopped before the optimiser step", epoch, steps + 1)
            _step(optimizer, scaler, loss)
            steps, samples, window_samples = steps + 1, samples + size, window_samples + size
            for name, value in record.items():
                sums[name] = sums.get(name, 0.0) + value * size
            bar.update(1)
            if progress:
                bar.set_postfix(loss=f"{record['loss']:.3g}", lr=f"{current_lr(optimizer):.2g}")
            if metrics_logger is not None and steps % log_every == 0:
                now = time.perf_counter()  # the throughput since the last train_step record
                rate, window_start, window_samples = window_samples / max(now - window_start, 1e-9), now, 0
                metrics_logger.log({"type": "train_step", "epoch": epoch, "step": steps,
                                    "global_step": global_step + steps, **record, "lr": current_lr(optimizer),
                                    "samples_per_s": rate}, step=global_step + steps)
    if steps == 0:
        raise ValueError(f"epoch {epoch}: the training loader produced no batch (empty dataset or batch larger than it with drop_last)")
    seconds = time.perf_counter() - start
    return {**{name: value / samples for name, value in sums.items()}, "lr": current_lr(optimizer),
            "steps": float(steps), "samples": float(samples), "seconds": seconds,
            "samples_per_s": samples / max(seconds, 1e-9), "step_seconds": seconds / steps}


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: Iterable, loss_fn: LossFn, device: torch.device, *, amp: bool = False,
                  progress: bool = False) -> dict[str, float]:
    """Mean loss and terms over the whole set, ``{"loss": ..., "<term>": ...}``, in eval mode, without gradients:
    the *unwrapped* model and a loader over this rank's shard (:class:`~.distributed.ShardSampler`)."""
    was_training = model.training
    model.eval()
    sums: Tensor | None = None
    names: list[str] = []
    count = 0
    try:
        for batch in tqdm(loader, desc="val loss", disable=not progress, leave=False):
            loss, terms, b = _losses(model, batch, loss_fn, device, amp)
            values = torch.stack([loss.float()] + [t.float() for t in terms.values()]) * b
            names = ["loss", *terms]
            sums = values if sums is None else sums + values
            count += b
    finally:
        model.train(was_training)
    # Ranks with an empty shard still join the reduction, with zeros of the right length.
    width = int(all_reduce_max(torch.tensor([float(len(names))], device=device)).item())
    packed = torch.zeros(width + 1, device=device)
    if sums is not None:
        packed[:width] = sums.to(device)
    packed[width] = float(count)
    packed = all_reduce_sum(packed).cpu()
    total = float(packed[width])
    if total == 0:
        raise ValueError("evaluate_loss: the validation loader produced no sample")
    if not names:  # this rank had no data: names are the same on every rank, rebuild generic ones
        names = ["loss"] + [f"term{i}" for i in range(1, width)]
    return {name: float(v) / total for name, v in zip(names, packed[:width].tolist())}
