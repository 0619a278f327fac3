"""Speed vs people: both pipelines timed on one generated scene per people count.

For each count N, one generated scene (``image_hw``, exactly N people drawn, seeded) goes
through both pipelines, one image per call:

* bottom-up: :class:`~openpose_lite.inference.BottomUpPredictor` at one scale, no flip; its
  phase timers give the network time and the decode time of the network's own maps. With random
  weights those maps hold no peaks, so the decode is also timed on *realistic* maps: the codec's
  encoding of the scene's ground truth, letterboxed exactly as the predictor letterboxes the
  image ("decode (GT maps)"), which grows with the people as a trained network's maps would.
* top-down: person boxes from the ``box_source`` ("gt": the scene's ground-truth boxes, no
  work; "bottomup": :func:`~openpose_lite.inference.boxes.boxes_from_poses` of the bottom-up
  people, costing the whole bottom-up call), then :class:`~openpose_lite.inference.TopDownPredictor`
  with all crops in one network batch ("batched") and with one crop per forward ("1-by-1"); its
  timers split crops, network and decode.

Before anything is timed the numba kernels of the codecs run once (:func:`warm_up_kernels`),
whatever ``warmup`` says, so no timing holds their compilation (or the load of their cache).
Every timed figure is then the median over ``repeats`` calls, after ``warmup`` untimed calls for
each input shape the run has not seen yet (the bottom-up input and the one-crop batch have the
same shape at every point; the batch of N crops is new at each point).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openpose_lite.bench.config import BenchConfig
from openpose_lite.bench.models import BenchModels, variant
from openpose_lite.data.synthetic import Scene, SceneConfig, render_scene
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor
from openpose_lite.inference.boxes import boxes_from_poses
from openpose_lite.structures import Poses

__all__ = ["SpeedRow", "gt_decode", "measure_speed", "warm_up_kernels"]

logger = logging.getLogger(__name__)

# The per-call samples one speed point collects (seconds), each the median of its row field.
_SAMPLES = ("bu_network", "bu_decode", "bu_total", "td_box", "td_crop", "td_network_batched", "td_decode",
            "td_total_batched", "td_network_single", "td_total_single")


@dataclass(frozen=True)
class SpeedRow:
    """One point of the speed-vs-people curve; times in ms per image (medians).

    ``annotated``: people of the scene with a visible pixel (the drawn ones, minus any hidden
    entirely); ``bu_found_gt``: people the codec decodes from the ground-truth maps;
    ``td_boxes``: boxes the top-down branch crops.
    """

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
    """Median seconds of ``decode_maps`` on the codec's encoding of ``keypoints`` (N, K, 3), and the people decoded.

    The maps are letterboxed as the predictor letterboxes an ``image_hw`` image. One untimed
    decode comes first; ``repeats`` 0 runs only that one (NaN seconds).
    """
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


def warm_up_kernels(cfg: BenchConfig, models: BenchModels) -> None:
    """Run every numba kernel of the codecs once, untimed: encode and decode the ground truth of the
    largest scene of the run (peaks, limb scores and matching all get work)."""
    t0 = time.perf_counter()
    gt_decode(models.bottomup, cfg.image_hw, _scene(cfg, max(cfg.people)).keypoints, repeats=0)
    logger.debug("bench: codec kernels warmed up in %.2f s", time.perf_counter() - t0)


def _bottomup_call(predictor: BottomUpPredictor, image: np.ndarray) -> tuple[Poses, dict[str, float]]:
    poses = predictor.predict_batch([image])[0]
    return poses, dict(predictor.timings)


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
        self.samples: dict[str, list[float]] = {k: [] for k in _SAMPLES}
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
        image, s = self.scene.image, self.samples
        bu_poses, bu = _bottomup_call(self.models.bottomup, image)
        bu_total = sum(bu.values())
        s["bu_network"].append(bu["network"])
        s["bu_decode"].append(bu["decode"])
        s["bu_total"].append(bu_total)
        boxes, scores = self.boxes(bu_poses)
        self.num_boxes = len(boxes)
        # Ground-truth boxes cost nothing; bottom-up boxes cost the whole bottom-up call.
        box_seconds = 0.0 if self.cfg.box_source == "gt" else bu_total
        wall, td = _topdown_call(variant(self.models.topdown, batch_size=max(1, len(boxes))), image, boxes, scores)
        s["td_box"].append(box_seconds)
        s["td_crop"].append(td["crop"])
        s["td_network_batched"].append(td["network"])
        s["td_decode"].append(td["decode"])
        s["td_total_batched"].append(box_seconds + wall)
        wall, td = _topdown_call(variant(self.models.topdown, batch_size=1), image, boxes, scores)
        s["td_network_single"].append(td["network"])
        s["td_total_single"].append(box_seconds + wall)

    def row(self) -> SpeedRow:
        gt_seconds, found = gt_decode(self.models.bottomup, self.cfg.image_hw, self.scene.keypoints,
                                      self.cfg.decode_repeats)
        ms = {f"{name}_ms": _median_ms(values) for name, values in self.samples.items()}
        return SpeedRow(people=self.people, annotated=len(self.scene.keypoints), bu_decode_gt_ms=1e3 * gt_seconds,
                        bu_found_gt=found, td_box_source=self.cfg.box_source, td_boxes=self.num_boxes, **ms)


def _median_ms(values: Sequence[float]) -> float:
    return 1e3 * float(np.median(values))


def measure_speed(cfg: BenchConfig, models: BenchModels) -> list[SpeedRow]:
    """The speed rows of ``cfg.people``, after :func:`warm_up_kernels`."""
    warm_up_kernels(cfg, models)
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
