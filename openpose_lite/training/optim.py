"""Optimiser and learning-rate schedule as a :class:`~openpose_lite.config.TrainConfig` says, and freezing.

* :func:`build_optimizer`: SGD (momentum, Nesterov) or Adam; :func:`build_scheduler`: step or
  plateau, stepped once per epoch by :func:`step_scheduler`.
* :func:`apply_train_settings`: on ``--resume``, the loaded optimizer and scheduler states carry
  the old hyper-parameters; this puts the config's (learning rate, weight decay, momentum,
  milestones, ...) back into them, so an override on resume takes effect.
* :func:`set_trainable`: freeze-then-release of a parameter group (the VGG19 trunk).
"""

from __future__ import annotations

import collections
import math
from typing import Any, Iterable

import torch
from torch import nn

from openpose_lite.config import TrainConfig

__all__ = ["Scheduler", "apply_train_settings", "build_optimizer", "build_scheduler", "current_lr",
           "set_trainable", "step_scheduler"]

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


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


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> Scheduler:
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


def apply_train_settings(optimizer: torch.optim.Optimizer, scheduler: Any, stored: TrainConfig, train: TrainConfig) -> None:
    """Make a resumed optimizer and scheduler follow ``train`` where it differs from the checkpoint's ``stored``.

    The learning rate is the schedule's *base*: a new ``train.lr`` scales every group's current
    rate by ``train.lr / stored.lr``, so the decays already applied stay applied. Weight decay,
    momentum and Nesterov are set in every group; milestones and gamma (step) or patience and
    factor (plateau) in the scheduler. The optimizer and scheduler *types* cannot change (the
    caller refuses that: their states would not fit).
    """
    ratio = train.lr / stored.lr
    for group in optimizer.param_groups:
        if train.lr != stored.lr:
            group["lr"] = group["lr"] * ratio
            if "initial_lr" in group:
                group["initial_lr"] = train.lr
        group["weight_decay"] = train.weight_decay
        if isinstance(optimizer, torch.optim.SGD):
            group["momentum"] = train.momentum
            group["nesterov"] = train.nesterov and train.momentum > 0
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        scheduler.milestones = collections.Counter(train.step_milestones)
        scheduler.gamma = train.gamma
        if train.lr != stored.lr:
            scheduler.base_lrs = [train.lr for _ in scheduler.base_lrs]
        # The scheduler hands its last rates back to the optimizer's groups on some paths: keep them in step.
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    elif isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.patience = train.plateau_patience
        scheduler.factor = train.gamma


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
