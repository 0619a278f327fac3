"""What differs between the two branches the training loop runs: the :data:`BRANCHES` table.

Which branch a model is in is its row of the architecture table
(:mod:`openpose_lite.models.architectures`). A :class:`Branch` gives the codec, the datasets, the
loss, the COCO AP evaluation (through :func:`openpose_lite.evaluation.evaluate_predictor`, the
project's one "predict over a COCO file and score it" loop) and the parameter group frozen first.

* bottom-up: whole images with CMU augmentation, :class:`BottomUpPafCodec` targets, masked
  per-stage loss (CMU's intermediate supervision), freeze-then-release of the trunk;
* top-down: person crops with HRNet augmentation, :class:`TopDownHeatmapCodec` targets, the
  keypoint MSE with target weights on every stage's heatmaps (one stage, or the Stacked
  Hourglass's intermediate supervision), AP with the ground-truth person boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from openpose_lite.codecs.base import Codec
from openpose_lite.config import Config, build_bottomup_codec, build_topdown_codec
from openpose_lite.data.ground_truth import gt_box_source
from openpose_lite.evaluation import evaluate_predictor
from openpose_lite.inference import BottomUpPredictor, TopDownPipeline, TopDownPredictor
from openpose_lite.losses import keypoint_mse_loss, stage_losses
from openpose_lite.models.architectures import architecture
from openpose_lite.training.data import DataPaths, bottomup_datasets, topdown_datasets
from openpose_lite.training.distributed import unwrap_model
from openpose_lite.training.engine import LossFn

__all__ = ["BRANCHES", "Branch", "branch_of", "bottomup_loss_terms", "topdown_loss_terms"]


@dataclass(frozen=True)
class Branch:
    """What one kind of model needs from the shared training loop."""

    name: str
    build_codec: Callable[..., Codec]  # (config, skeleton=...) -> the codec
    build_datasets: Callable[[Config, DataPaths, Codec], tuple]
    loss_terms: LossFn
    evaluate_ap: Callable[..., dict[str, float]]
    sample_kind: str  # what one training sample is, in words

    @staticmethod
    def frozen_first(model: nn.Module) -> list:
        """The parameters frozen for ``train.freeze_trunk_epochs``: the model's trunk, where it has one to protect."""
        trunk = getattr(model, "trunk_parameters", None)
        return list(trunk()) if trunk is not None else []

    @staticmethod
    def describe(cfg: Config) -> str:
        """The model's shape in words (for the run's first lines)."""
        return architecture(cfg.model.arch).describe(cfg.model)

    @staticmethod
    def backbone_file(cfg: Config) -> str:
        """What ``--backbone-weights`` takes for this model, in words."""
        backbone = architecture(cfg.model.arch).backbone
        return backbone.what if backbone is not None else f"nothing (model.arch {cfg.model.arch} has no ImageNet trunk)"


def bottomup_loss_terms(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                        weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CMU intermediate supervision: ``{"stage1/pafs": ..., "stageS/heatmaps": ...}`` (see losses.py)."""
    return stage_losses(outputs, targets, weights)


def topdown_loss_terms(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                       weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HRNet's ``JointsMSELoss`` on every stage's heatmaps: ``{"heatmaps": ...}`` for a one-stage network,
    ``{"stage1/heatmaps": ..., "stageS/heatmaps": ...}`` for a stacked one (the Stacked Hourglass's
    intermediate supervision: each stack's heatmaps are compared with the same targets)."""
    if len(outputs) == 1:
        return {"heatmaps": keypoint_mse_loss(outputs[0]["heatmaps"], targets["heatmaps"], weights["heatmaps"])}
    return {f"stage{i + 1}/heatmaps": keypoint_mse_loss(out["heatmaps"], targets["heatmaps"], weights["heatmaps"])
            for i, out in enumerate(outputs)}


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
    predictor = BottomUpPredictor(model, build_bottomup_codec(cfg, skeleton=model.skeleton), input_size=cfg.codec.input_size,
                                  device=device, input_norm=cfg.model.resolved_input_norm)
    return _scored(model, predictor, cfg, ann, images, max_images, max(1, cfg.train.batch_size), progress)


def _topdown_ap(model: nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
                max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the top-down ``model`` with the ground-truth person boxes of a COCO file."""
    model = unwrap_model(model)
    codec = build_topdown_codec(cfg, skeleton=model.skeleton)
    predictor = TopDownPredictor(model, codec, flip=cfg.topdown.flip_test, device=device,
                                 input_norm=cfg.model.resolved_input_norm,
                                 batch_size=max(1, cfg.train.batch_size), padding=cfg.topdown.padding)
    return _scored(model, TopDownPipeline(predictor, gt_box_source(ann, codec.convention, codec.skeleton)), cfg, ann, images,
                   max_images, 1, progress)


# Keyed by the architecture table's branch names.
BRANCHES: dict[str, Branch] = {
    "bottomup": Branch("bottom-up", build_bottomup_codec, bottomup_datasets, bottomup_loss_terms, _bottomup_ap,
                       "training images"),
    "topdown": Branch("top-down", build_topdown_codec, topdown_datasets, topdown_loss_terms, _topdown_ap,
                      "person crops"),
}


def branch_of(cfg: Config) -> Branch:
    """The branch that trains ``cfg.model.arch`` (its row of the architecture table)."""
    return BRANCHES[architecture(cfg.model.arch).branch]
