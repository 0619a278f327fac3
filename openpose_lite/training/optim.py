"""Optimiser and learning-rate schedule as a :class:`~openpose_lite.config.TrainConfig` says, and freezing.

On ``--resume`` the loaded optimizer and scheduler states carry the old hyper-parameters;
:func:`apply_train_settings` puts the config's back into them, so an override on resume takes effect.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Iterable

import torch
from torch import nn

from openpose_lite.config import TrainConfig

__all__ = ["Scheduler", "apply_train_settings", "build_optimizer", "build_scheduler", "current_lr",
           "parameter_groups", "set_trainable", "step_scheduler"]

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def parameter_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """The model's parameters grouped by learning-rate and weight-decay multiplier (see :class:`TrainConfig`;
    refinement stages: the model's ``refinement_parameters()``): ``{"params", "lr_mult", "decay_mult"}``, the
    multipliers kept so a resumed run applies a new base rate to every group alike; in order of first
    appearance in ``named_parameters``, so optimizer states saved by one run load into the next."""
    refinement = {id(p) for p in getattr(model, "refinement_parameters", lambda: ())()}
    norm, depthwise = set(), set()
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
            norm.update(id(p) for p in module.parameters(recurse=False))
        elif isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
            depthwise.add(id(module.weight))
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        kinds = {"norm"} if id(p) in norm else {"depthwise"} if id(p) in depthwise else set()
        if name.rsplit(".", 1)[-1] == "bias":
            kinds.add("bias")
        lr_mult = train.bias_lr_mult if "bias" in kinds else 1.0
        if id(p) in refinement and "norm" not in kinds:  # the stages' convs (the reference leaves BatchNorm at 1)
            lr_mult *= train.refinement_lr_mult
        decay_mult = 0.0 if kinds & set(train.no_decay) else 1.0
        groups.setdefault((lr_mult, decay_mult), []).append(p)
    return [{"params": params, "lr_mult": lr, "decay_mult": decay} for (lr, decay), params in groups.items()]


def build_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov when ``train.nesterov`` and momentum > 0) or Adam over the groups of :func:`parameter_groups`;
    frozen parameters too: both skip a parameter without a gradient, so they stay bit-identical until released."""
    groups = [{**g, "lr": train.lr * g["lr_mult"], "weight_decay": train.weight_decay * g["decay_mult"]}
              for g in parameter_groups(model, train)]
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum,
                               nesterov=train.nesterov and train.momentum > 0)
    return torch.optim.Adam(groups, lr=train.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> Scheduler:
    """Per-epoch schedule: ``step`` (lr x gamma at each of ``step_milestones``) or ``plateau``
    (lr x gamma after ``plateau_patience`` epochs without a lower validation loss)."""
    if train.scheduler == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(train.step_milestones), gamma=train.gamma)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=train.gamma,
                                                      patience=train.plateau_patience)


def step_scheduler(scheduler: Any, monitored_loss: float | None) -> None:
    """Advance a per-epoch scheduler; a plateau scheduler watches ``monitored_loss``."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if monitored_loss is None or not math.isfinite(monitored_loss):
            raise ValueError(f"plateau scheduler: needs a finite loss to watch, got {monitored_loss!r}")
        scheduler.step(monitored_loss)
    else:
        scheduler.step()


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The base learning rate: the first parameter group's rate over its multiplier."""
    group = optimizer.param_groups[0]
    return float(group["lr"]) / float(group.get("lr_mult", 1.0))


def apply_train_settings(optimizer: torch.optim.Optimizer, scheduler: Any, stored: TrainConfig, train: TrainConfig) -> None:
    """Make a resumed optimizer and scheduler follow ``train`` where it differs from the checkpoint's ``stored``
    (not in their types: :func:`~openpose_lite.training.resume.check_resumable`). A new ``train.lr`` scales every
    group's current rate by ``train.lr / stored.lr``, so the decays already applied stay applied."""
    ratio = train.lr / stored.lr
    for group in optimizer.param_groups:
        if train.lr != stored.lr:
            group["lr"] = group["lr"] * ratio
            if "initial_lr" in group:
                group["initial_lr"] = train.lr * group.get("lr_mult", 1.0)
        group["weight_decay"] = train.weight_decay * group.get("decay_mult", 1.0)
        if isinstance(optimizer, torch.optim.SGD):
            group["momentum"] = train.momentum
            group["nesterov"] = train.nesterov and train.momentum > 0
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        scheduler.milestones = collections.Counter(train.step_milestones)
        scheduler.gamma = train.gamma
        if train.lr != stored.lr:
            scheduler.base_lrs = [train.lr * group.get("lr_mult", 1.0) for group in optimizer.param_groups]
        # The scheduler hands its last rates back to the optimizer's groups on some paths: keep them in step.
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    elif isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.patience = train.plateau_patience
        scheduler.factor = train.gamma


def set_trainable(params: Iterable[nn.Parameter], trainable: bool) -> int:
    """Freeze (``requires_grad`` False, the gradients left from before dropped) or release a parameter group;
    returns how many tensors changed."""
    changed = 0
    for p in params:
        if p.requires_grad != trainable:
            changed += 1
        p.requires_grad_(trainable)
        if not trainable:
            p.grad = None
    return changed
