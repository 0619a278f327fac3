"""Speed vs people: both pipelines timed on one generated scene (``image_hw``, N people, seeded) per count N,
by the predictors' phase timers; each figure the median of ``repeats`` calls.

* bottom-up: one scale, no flip. With random weights its maps hold no peaks, so the decode is also timed
  on the codec's encoding of the scene's ground truth ("decode (GT maps)"), which grows with the people
  as a trained network's would.
* top-down: boxes from the ``box_source``, then all crops in one batch ("batched") and one crop per
  forward ("1-by-1").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from openpose_lite.bench.config import BenchConfig
from openpose_lite.bench.models import BenchModels, variant
from openpose_lite.data.synthetic import Scene, SceneConfig, render_scene
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor
from openpose_lite.inference.boxes import boxes_from_poses
from openpose_lite.structures import Poses

__all__ = ["SpeedRow", "gt_decode", "measure_speed"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedRow:
    """One point of the speed-vs-people curve; times in ms per image (medians). ``annotated``: people of the
    scene with a visible pixel; ``bu_found_gt``: people decoded from the ground-truth maps."""

    people: int
    annotated: int
    bu_network_ms: float
    bu_decode_ms: float
    bu_total_ms: float
    bu_decode_gt_ms: float
    bu_found_gt: int
    td_box_source: str
    td_boxes: int
    td_box_ms: float
    td_crop_ms: float
    td_network_batched_ms: float
    td_decode_ms: float
    td_total_batched_ms: float
    td_network_single_ms: float
    td_total_single_ms: float


def _scene(cfg: BenchConfig, people: int) -> Scene:
    return render_scene(np.random.default_rng([cfg.seed, people]), SceneConfig(image_hw=cfg.image_hw), num_people=people)


def gt_decode(predictor: BottomUpPredictor, image_hw: tuple[int, int], keypoints: np.ndarray,
              repeats: int) -> tuple[float, int]:
    """Median seconds of ``decode_maps`` on the codec's encoding of ``keypoints`` (N, K, 3), letterboxed as
    for an ``image_hw`` image, and the people decoded. One untimed decode comes first (``repeats`` 0: NaN s)."""
    matrix, input_hw = letterbox_affine(image_hw, predictor.input_size, predictor.codec.stride)
    targets, _ = predictor.codec.encode(transform_keypoints(matrix, keypoints), input_hw)
    maps = {"heatmaps": targets["heatmaps"], "pafs": targets["pafs"], "matrix": matrix}
    found = len(predictor.decode_maps(maps))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.decode_maps(maps)
        times.append(time.perf_counter() - t0)
    return (float(np.median(times)) if times else float("nan")), found


def _bottomup_call(predictor: BottomUpPredictor, image: np.ndarray) -> tuple[Poses, dict[str, float]]:
    return predictor.predict_batch([image])[0], dict(predictor.timings)  # the call first, then its timers


def _topdown_call(predictor: TopDownPredictor, image: np.ndarray, boxes: np.ndarray,
                  scores: np.ndarray) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    predictor.predict(image, boxes, scores)
    return time.perf_counter() - t0, dict(predictor.timings)


class _Point:
    """One speed point: its scene, its boxes, and the samples of its timed calls."""

    def __init__(self, cfg: BenchConfig, models: BenchModels, people: int) -> None:
        self.cfg, self.models, self.people = cfg, models, people
        self.scene = _scene(cfg, people)
        self.samples: list[dict[str, float]] = []  # seconds per timed call, by SpeedRow field less "_ms"
        self.num_boxes = 0

    def boxes(self, bu_poses: Poses | None) -> tuple[np.ndarray, np.ndarray]:
        if self.cfg.box_source == "gt":
            return self.scene.boxes.astype(np.float64), np.ones(len(self.scene.boxes))
        return boxes_from_poses(bu_poses)

    def warm_up(self, warmed: set) -> None:
        """Untimed calls once per new input shape: oneDNN primitives and allocator blocks are cached
        per shape, so a shape seen before needs none. Bottom-up boxes need one bottom-up call anyway."""
        cfg, image = self.cfg, self.scene.image
        bu_poses = None
        pose_boxes = cfg.box_source != "gt"
        if "bu" not in warmed or pose_boxes:
            for _ in range(max(cfg.warmup, int(pose_boxes))):
                bu_poses, _ = _bottomup_call(self.models.bottomup, image)
            warmed.add("bu")
        boxes, scores = self.boxes(bu_poses)
        for batch in sorted({len(boxes), 1}):
            if batch <= len(boxes) and ("td", batch) not in warmed:
                for _ in range(cfg.warmup):
                    _topdown_call(variant(self.models.topdown, batch_size=max(1, batch)), image, boxes[:batch],
                                  scores[:batch])
                warmed.add(("td", batch))

    def time_once(self) -> None:
        """One timed call of each pipeline variant, appended to the samples."""
        image, topdown = self.scene.image, self.models.topdown
        bu_poses, bu = _bottomup_call(self.models.bottomup, image)
        bu_total = sum(bu.values())
        boxes, scores = self.boxes(bu_poses)
        self.num_boxes = len(boxes)
        # Ground-truth boxes cost nothing; bottom-up boxes cost the whole bottom-up call.
        box_seconds = 0.0 if self.cfg.box_source == "gt" else bu_total
        batched_wall, batched = _topdown_call(variant(topdown, batch_size=max(1, len(boxes))), image, boxes, scores)
        single_wall, single = _topdown_call(variant(topdown, batch_size=1), image, boxes, scores)
        self.samples.append({
            "bu_network": bu["network"], "bu_decode": bu["decode"], "bu_total": bu_total, "td_box": box_seconds,
            "td_crop": batched["crop"], "td_network_batched": batched["network"], "td_decode": batched["decode"],
            "td_total_batched": box_seconds + batched_wall, "td_network_single": single["network"],
            "td_total_single": box_seconds + single_wall,
        })

    def row(self) -> SpeedRow:
        gt_seconds, found = gt_decode(self.models.bottomup, self.cfg.image_hw, self.scene.keypoints,
                                      self.cfg.decode_repeats)
        ms = {f"{name}_ms": 1e3 * float(np.median([s[name] for s in self.samples])) for name in self.samples[0]}
        return SpeedRow(people=self.people, annotated=len(self.scene.keypoints), bu_decode_gt_ms=1e3 * gt_seconds,
                        bu_found_gt=found, td_box_source=self.cfg.box_source, td_boxes=self.num_boxes, **ms)


def measure_speed(cfg: BenchConfig, models: BenchModels) -> list[SpeedRow]:
    """The speed rows of ``cfg.people``."""
    # Every numba kernel of the codecs runs once, untimed, on the ground truth of the largest scene.
    t0 = time.perf_counter()
    gt_decode(models.bottomup, cfg.image_hw, _scene(cfg, max(cfg.people)).keypoints, repeats=0)
    logger.debug("bench: codec kernels warmed up in %.2f s", time.perf_counter() - t0)
    warmed: set = set()
    rows = []
    for people in cfg.people:
        point = _Point(cfg, models, people)
        point.warm_up(warmed)
        for _ in range(cfg.repeats):
            point.time_once()
        row = point.row()
        logger.info("bench: %d people: bottom-up network %.0f ms, top-down batched %.0f ms, 1-by-1 %.0f ms",
                    people, row.bu_network_ms, row.td_total_batched_ms, row.td_total_single_ms)
        rows.append(row)
    return rows
