"""Accuracy side by side: each branch's codec oracle (:mod:`openpose_lite.oracle`, decoding with exactly the
codec its predictor uses) and, with checkpoints, each model on the same images (top-down on the run's boxes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openpose_lite.bench.config import BenchConfig
from openpose_lite.bench.models import BenchModels, variant
from openpose_lite.data.ground_truth import gt_box_source
from openpose_lite.evaluation import evaluate_keypoints, evaluate_predictor, load_coco
from openpose_lite.inference import TopDownPipeline
from openpose_lite.inference.boxes import pose_box_source
from openpose_lite.oracle import bottomup_oracle_results, topdown_oracle_results

__all__ = ["ACCURACY_METRICS", "AccuracyRow", "measure_accuracy"]

# The columns of the accuracy table (all ten metrics go to accuracy.csv).
ACCURACY_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR")


@dataclass(frozen=True)
class AccuracyRow:
    """COCO keypoint metrics of one model or codec oracle (``kind`` "model" or "oracle")."""

    name: str
    branch: str
    kind: str
    metrics: dict[str, float]


def _model_rows(cfg: BenchConfig, models: BenchModels, coco) -> list[AccuracyRow]:
    """One row per checkpoint, on ``cfg.images`` (top-down on the ``cfg.box_source`` boxes)."""
    flip = ", flip" if cfg.flip else ""
    bottomup = variant(models.bottomup, flip=cfg.flip)
    rows = []
    if cfg.bu_checkpoint is not None:
        metrics = evaluate_predictor(bottomup, coco, cfg.images).metrics
        name = f"bottom-up model ({Path(cfg.bu_checkpoint).name}, input {bottomup.input_size}{flip})"
        rows.append(AccuracyRow(name, "bottomup", "model", metrics))
    if cfg.td_checkpoint is not None:
        topdown = variant(models.topdown, flip=cfg.flip)
        if cfg.box_source == "gt":
            boxes, box_label = gt_box_source(cfg.ann, topdown.codec.convention, topdown.codec.skeleton), "GT boxes"
        else:
            boxes, box_label = pose_box_source(bottomup), "bottom-up boxes"
        metrics = evaluate_predictor(TopDownPipeline(topdown, boxes), coco, cfg.images).metrics
        h, w = topdown.codec.input_hw
        name = f"top-down model ({Path(cfg.td_checkpoint).name}, {h}x{w}, {box_label}{flip})"
        rows.append(AccuracyRow(name, "topdown", "model", metrics))
    return rows


def _oracle_rows(cfg: BenchConfig, models: BenchModels, coco) -> list[AccuracyRow]:
    bu_codec, input_size = models.bottomup.codec, models.bottomup.input_size
    results = bottomup_oracle_results(cfg.ann, bu_codec, input_size)
    rows = [AccuracyRow(f"bottom-up codec oracle (input {input_size}, refine {bu_codec.refine})",
                        "bottomup", "oracle", evaluate_keypoints(coco, results))]
    td_codec = models.topdown.codec
    results = topdown_oracle_results(cfg.ann, td_codec, padding=models.topdown.padding)
    h, w = td_codec.input_hw
    rows.append(AccuracyRow(f"top-down codec oracle ({h}x{w}, refine {td_codec.refine}, GT boxes)",
                            "topdown", "oracle", evaluate_keypoints(coco, results)))
    return rows


def measure_accuracy(cfg: BenchConfig, models: BenchModels) -> list[AccuracyRow]:
    """Model rows (with images and checkpoints), then the two codec-oracle rows, on ``cfg.ann`` (given)."""
    coco = load_coco(cfg.ann)
    rows = _model_rows(cfg, models, coco) if cfg.images is not None else []
    return rows + _oracle_rows(cfg, models, coco)
