"""The training functions of each branch, which its row of the branch table names (:mod:`openpose_lite.branches`):
the loss terms, and the COCO AP through :func:`openpose_lite.evaluation.evaluate_predictor` on the predictor
:func:`~openpose_lite.inference.build_predictor` makes of the model being trained. Also what does not
differ between the branches: the parameters frozen first, the model and its ImageNet trunk file in words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from openpose_lite.branches import Branch
from openpose_lite.config import Config
from openpose_lite.data.ground_truth import gt_box_source
from openpose_lite.evaluation import evaluate_predictor
from openpose_lite.inference import PredictorOptions, build_predictor
from openpose_lite.losses import keypoint_mse_loss, stage_losses
from openpose_lite.architectures import architecture
from openpose_lite.models.weights import LoadedWeights
from openpose_lite.training.distributed import unwrap_model

__all__ = ["Branch", "backbone_file", "bottomup_ap", "bottomup_loss_terms", "branch_of", "describe", "frozen_first",
           "topdown_ap", "topdown_loss_terms"]


def branch_of(cfg: Config) -> Branch:
    """The branch that trains ``cfg.model.arch`` (its row of the architecture table)."""
    return architecture(cfg.model.arch).branch_row


def frozen_first(model: nn.Module) -> list:
    """The parameters frozen for ``train.freeze_trunk_epochs``: the model's trunk, where it has one to protect."""
    trunk = getattr(model, "trunk_parameters", None)
    return list(trunk()) if trunk is not None else []


def describe(cfg: Config) -> str:
    """The model's shape in words (for the run's first lines)."""
    return architecture(cfg.model.arch).describe(cfg.model)


def backbone_file(cfg: Config) -> str:
    """What ``--backbone-weights`` takes for this model, in words."""
    backbone = architecture(cfg.model.arch).backbone
    return backbone.what if backbone is not None else f"nothing (model.arch {cfg.model.arch} has no ImageNet trunk)"


bottomup_loss_terms = stage_losses  # CMU's intermediate supervision: {"stage1/pafs": ..., "stageS/heatmaps": ...}


def topdown_loss_terms(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                       weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HRNet's ``JointsMSELoss`` on every stage's heatmaps: ``{"heatmaps": ...}`` for a one-stage network,
    ``{"stage1/heatmaps": ..., "stageS/heatmaps": ...}`` for a stacked one (the Stacked Hourglass's
    intermediate supervision: each stack's heatmaps are compared with the same targets)."""
    if len(outputs) == 1:
        return {"heatmaps": keypoint_mse_loss(outputs[0]["heatmaps"], targets["heatmaps"], weights["heatmaps"])}
    return {f"stage{i + 1}/heatmaps": keypoint_mse_loss(out["heatmaps"], targets["heatmaps"], weights["heatmaps"])
            for i, out in enumerate(outputs)}


def _scored(model: nn.Module, cfg: Config, options: PredictorOptions, ann: Path, images: Path, max_images: int,
            batch_size: int, progress: bool) -> dict[str, float]:
    """COCO metrics of the model being trained over a COCO file, leaving it in the mode it was in."""
    model = unwrap_model(model)
    was_training = model.training
    try:
        predictor = build_predictor(LoadedWeights(model, architecture(cfg.model.arch), None, cfg), options)
        return evaluate_predictor(predictor, ann, images, max_images, batch_size, progress,
                                  max_image_pixels=cfg.data.max_image_pixels,
                                  images_anywhere=cfg.data.images_anywhere).metrics
    finally:
        model.train(was_training)


def bottomup_ap(model: nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
                max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the bottom-up ``model`` on the first ``max_images`` (0: all) images of a COCO file."""
    return _scored(model, cfg, PredictorOptions(device=device), ann, images, max_images, cfg.train.batch_size, progress)


def topdown_ap(model: nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
               max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the top-down ``model`` with the ground-truth person boxes of a COCO file (a
    batch of crops per image)."""
    options = PredictorOptions(device=device, batch_size=cfg.train.batch_size,
                               boxes=lambda codec: gt_box_source(ann, codec.convention, codec.skeleton))
    return _scored(model, cfg, options, ann, images, max_images, 1, progress)

