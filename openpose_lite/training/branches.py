"""What differs between the two kinds of model the training loop runs: the :data:`BRANCHES` table.

A :class:`Branch` gives the codec, the datasets, the loss, the COCO AP evaluation (through
:func:`openpose_lite.evaluation.evaluate_predictor`, the project's one "predict over a COCO
file and score it" loop) and the parameter group frozen first.

* bottom-up (``vgg19_paf``): whole images with CMU augmentation, :class:`BottomUpPafCodec`
  targets, masked per-stage loss (CMU's intermediate supervision), freeze-then-release of the
  VGG19 trunk;
* top-down (``hrnet``): person crops with HRNet augmentation, :class:`TopDownHeatmapCodec`
  targets, the keypoint MSE with target weights, AP with the ground-truth person boxes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from openpose_lite.codecs.base import Codec
from openpose_lite.config import Config, build_bottomup_codec, build_topdown_codec
from openpose_lite.evaluation import evaluate_predictor
from openpose_lite.inference import BottomUpPredictor, TopDownPipeline, TopDownPredictor
from openpose_lite.inference.boxes import gt_box_source
from openpose_lite.losses import keypoint_mse_loss, stage_losses
from openpose_lite.training.data import DataPaths, bottomup_datasets, topdown_datasets
from openpose_lite.training.distributed import unwrap_model
from openpose_lite.training.engine import LossFn

__all__ = ["BRANCHES", "Branch", "branch_of", "bottomup_loss_terms", "topdown_loss_terms"]


@dataclass(frozen=True)
class Branch:
    """What one kind of model needs from the shared training loop."""

    name: str
    build_codec: Callable[[Config], Codec]
    build_datasets: Callable[[Config, DataPaths, Codec], tuple]
    loss_terms: LossFn
    evaluate_ap: Callable[..., dict[str, float]]
    frozen_first: Callable[[nn.Module], list]  # parameters frozen for train.freeze_trunk_epochs
    sample_kind: str  # what one training sample is, in words
    backbone_file: str  # what --backbone-weights takes for this branch, in words

    def describe(self, cfg: Config) -> str:
        """The model's shape in words (for the run's first lines)."""
        m = cfg.model
        if m.arch == "hrnet":
            return f"HRNet-W{m.hrnet_width}, {m.hrnet_blocks} block(s) per branch"
        return f"{m.arch}, {m.num_stages} stages of {m.stage_channels} channels, width_mult {m.width_mult}"


def bottomup_loss_terms(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                        weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CMU intermediate supervision: ``{"stage1/pafs": ..., "stageS/heatmaps": ...}`` (see losses.py)."""
    return stage_losses(outputs, targets, weights)


def topdown_loss_terms(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                       weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HRNet's ``JointsMSELoss`` on the last (only) stage: ``{"heatmaps": ...}``."""
    return {"heatmaps": keypoint_mse_loss(outputs[-1]["heatmaps"], targets["heatmaps"], weights["heatmaps"])}


def _scored(model: nn.Module, predictor: Any, cfg: Config, ann: Path, images: Path, max_images: int, batch_size: int,
            progress: bool) -> dict[str, float]:
    """COCO metrics of ``predictor`` over a COCO file, leaving ``model`` in the mode it was in."""
    was_training = model.training
    try:
        return evaluate_predictor(predictor, ann, images, max_images, batch_size, progress,
                                  max_image_pixels=cfg.data.max_image_pixels,
                                  images_anywhere=cfg.data.images_anywhere).metrics
    finally:
        model.train(was_training)


def _bottomup_ap(model: nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
                 max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the bottom-up ``model`` on the first ``max_images`` (0: all) images of a COCO file."""
    model = unwrap_model(model)
    predictor = BottomUpPredictor(model, build_bottomup_codec(cfg), input_size=cfg.codec.input_size, device=device)
    return _scored(model, predictor, cfg, ann, images, max_images, max(1, cfg.train.batch_size), progress)


def _topdown_ap(model: nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
                max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the top-down ``model`` with the ground-truth person boxes of a COCO file."""
    model = unwrap_model(model)
    codec = build_topdown_codec(cfg)
    predictor = TopDownPredictor(model, codec, flip=cfg.topdown.flip_test, device=device,
                                 batch_size=max(1, cfg.train.batch_size), padding=cfg.topdown.padding)
    return _scored(model, TopDownPipeline(predictor, gt_box_source(ann, codec.convention)), cfg, ann, images,
                   max_images, 1, progress)


_BOTTOM_UP = Branch("bottom-up", build_bottomup_codec, bottomup_datasets, bottomup_loss_terms, _bottomup_ap,
                    lambda model: list(model.trunk_parameters()), "training images",
                    "torchvision's ImageNet vgg19 file (vgg19-dcbb9e9d.pth)")
_TOP_DOWN = Branch("top-down", build_topdown_codec, topdown_datasets, topdown_loss_terms, _topdown_ap,
                   lambda model: [], "person crops", "the official ImageNet HRNet file (e.g. hrnet_w32-36af842e.pth)")

# Lightweight OpenPose trains exactly as the VGG19 model does (same codec, targets, loss and AP),
# starting from the ImageNet MobileNetV1 its reference uses.
_BOTTOM_UP_MOBILENET = dataclasses.replace(
    _BOTTOM_UP, backbone_file="the ImageNet MobileNetV1 file (mobilenet_sgd_68.848.pth.tar)")

BRANCHES: dict[str, Branch] = {"vgg19_paf": _BOTTOM_UP, "mobilenet_paf": _BOTTOM_UP_MOBILENET, "hrnet": _TOP_DOWN}


def branch_of(cfg: Config) -> Branch:
    """The branch that trains ``cfg.model.arch``; ValueError for an architecture training does not cover."""
    if cfg.model.arch not in BRANCHES:
        raise ValueError(f"model.arch: training covers {', '.join(map(repr, BRANCHES))}, got {cfg.model.arch!r}")
    return BRANCHES[cfg.model.arch]
