"""The ``train`` config section: :class:`TrainConfig`, optimisation, checkpoints and devices.

Declared here, beside :mod:`openpose_lite.config` (which assembles the sections), by the same
rules: frozen, typed, self-checking (:class:`~openpose_lite.params.Params`).
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import Literal

from openpose_lite.params import Params

__all__ = ["FLOAT32_MAX", "MAX_BATCH_SIZE", "MAX_LR", "TrainConfig"]

MAX_BATCH_SIZE = 4096
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
FLOAT32_MAX = 3.4028234663852886e38
# The largest learning rate (base rate x per-parameter multipliers). Recipes stay far below it: CMU's
# SGD 4e-5 (x8 for refinement biases), Adam 1e-4 to 1e-3, SGD at the linear-scaling rule's 0.1 per
# 256 images about 1.6 at the largest batch allowed. Above it a rate is a typo (1e3 for 1e-3) that
# diverges at the first step, and a huge one does not even step: Adam's first step size is lr / (1 -
# beta1) = 10 lr, which float32 cannot hold for lr = 1e38 (an error deep inside torch, not a message).
MAX_LR = 10.0


@dataclass(frozen=True)
class TrainConfig(Params):
    """Optimisation (defaults: the CMU COCO recipe: SGD, momentum 0.9, weight decay 5e-4, base lr 4e-5 for
    a loss summed over all map elements and divided by ``2 * batch`` (:mod:`openpose_lite.losses`), batch 10,
    the lr divided by 3 about every 24 COCO epochs). ``freeze_trunk_epochs`` keeps the pretrained trunk fixed
    while the random stages settle; ``eval_every``: in epochs (0: only at the end); ``val_max_images``: the
    images of the COCO AP during training (0: all).

    Per-parameter rates, Caffe-style (configs/vgg19_coco.yaml and configs/mobilenet_coco.yaml set their
    recipes'): ``refinement_lr_mult`` multiplies the rate of the conv weights and biases of every stage after
    the first (CMU's prototxt and Lightweight OpenPose's train.py: 4), ``bias_lr_mult`` that of every bias
    (both: 2, so a refinement bias gets 8); ``no_decay``: the kinds without weight decay, ``bias``, ``norm``
    (BatchNorm weights and biases), ``depthwise`` (depthwise conv weights); CMU: bias; Lightweight OpenPose: all.
    """

    _section: typing.ClassVar[str] = "train"

    epochs: int = 100
    batch_size: int = 10
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 4e-5
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    scheduler: Literal["plateau", "step"] = "step"
    step_milestones: tuple[int, ...] = (25, 50, 75)
    gamma: float = 0.333
    plateau_patience: int = 5
    refinement_lr_mult: float = 1.0
    bias_lr_mult: float = 1.0
    no_decay: tuple[Literal["bias", "norm", "depthwise"], ...] = ()
    freeze_trunk_epochs: int = 5
    amp: bool = True
    eval_every: int = 5
    val_max_images: int = 500
    seed: int = 0
    output_dir: str = "runs/vgg19"
    device: str = "auto"
    log_every: int = 50

    def _check(self) -> None:
        self._require(self.epochs >= 1, "epochs", "an integer >= 1")
        self._require(1 <= self.batch_size <= MAX_BATCH_SIZE, "batch_size", f"an integer in [1, {MAX_BATCH_SIZE}]")
        self._require(math.isfinite(self.lr) and 0 < self.lr <= MAX_LR, "lr",
                      f"a number > 0 and <= {MAX_LR:g} (recipes train at 1e-5 to 1; a larger rate diverges at once)")
        self._require(0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        # The optimizers apply decay in float32: a larger value cannot be represented there.
        self._require(0 <= self.weight_decay <= FLOAT32_MAX, "weight_decay",
                      f"a number >= 0 and <= {FLOAT32_MAX:.4g} (float32's largest)")
        self._require(all(m >= 1 for m in self.step_milestones)
                      and list(self.step_milestones) == sorted(set(self.step_milestones)),
                      "step_milestones", "strictly increasing epochs >= 1")
        self._require(0 < self.gamma <= 1, "gamma", "a number in (0, 1]")
        self._require(self.plateau_patience >= 0, "plateau_patience", "an integer >= 0")
        for name in ("refinement_lr_mult", "bias_lr_mult"):
            value = getattr(self, name)
            self._require(math.isfinite(value) and value > 0, name, "a finite number > 0")
        top = self.lr * self.refinement_lr_mult * self.bias_lr_mult
        if top > MAX_LR:
            raise ValueError(f"train.lr x refinement_lr_mult x bias_lr_mult = {top:.4g}: the largest per-parameter rate "
                             f"must be <= {MAX_LR:g}, as train.lr")
        self._require(len(set(self.no_decay)) == len(self.no_decay), "no_decay",
                      "distinct kinds among bias, norm, depthwise")
        self._require(self.freeze_trunk_epochs >= 0, "freeze_trunk_epochs", "an integer >= 0")
        self._require(self.eval_every >= 0, "eval_every", "an integer >= 0 (0: evaluate only at the end)")
        self._require(self.val_max_images >= 0, "val_max_images", "an integer >= 0 (0: all images)")
        self._require(self.seed >= 0, "seed", "an integer >= 0")
        self._require(bool(self.output_dir), "output_dir", "a non-empty path")
        self._require(bool(_DEVICE_RE.match(self.device)), "device", "one of 'auto', 'cpu', 'cuda', 'cuda:N'")
        self._require(self.log_every >= 1, "log_every", "an integer >= 1")
