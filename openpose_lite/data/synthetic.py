"""Generated multi-person scenes with exact COCO keypoint annotations (COCO-17 people by default).

A scene is a textured, cluttered background with the stick figures of :mod:`openpose_lite.data.figures`
drawn on it (smaller, farther ones first) and occluding rectangles. While drawing, a per-pixel map records
which person owns each pixel, so the annotations are exact: a keypoint whose pixel shows its own person is
visible (v=2), one hidden by another person or a rectangle occluded (v=1), one outside the image unlabelled
(v=0, x=y=0). ``area`` is the person's visible drawn pixels (COCO's segmentation area, the OKS scale; figures of
another skeleton: :mod:`openpose_lite.data.skeleton_figures`) and ``bbox`` their box
(``pycocotools.mask.toBbox`` convention) grown to hold the labelled keypoints; people with no visible pixel
get no annotation.

Everything depends only on the ``numpy.random.Generator`` passed in: a seed gives the same images and
byte-identical files, and a written set records the fingerprint of its settings (:func:`scene_set_fingerprint`).

Shape legend: N people, K keypoints, H x W image size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openpose_lite.data.figures import (SKELETON, Figure, People, annotate_figure, draw_figure, sample_colours,
                                        sample_still_pose)
from openpose_lite.data.skeleton_figures import PoseBank, PoseFigure, draw_pose_figure
from openpose_lite.io import write_json_atomic
from openpose_lite.params import Params

__all__ = ["SKELETON", "Scene", "SceneConfig", "coco_person_annotation", "coco_person_category", "generate_scene",
           "render_background", "render_scene", "scene_set_fingerprint", "write_coco", "write_dataset"]

logger = logging.getLogger(__name__)

# A figure is about half as wide as it is tall; used to shrink people when many must fit.
_FIGURE_ASPECT = 0.5
# Fraction of the image that the people of a scene may cover before they are made smaller.
_FILL = 0.6


@dataclass(frozen=True)
class SceneConfig(Params):
    """How synthetic scenes are drawn (a :class:`~openpose_lite.params.Params`: typed, checked on creation).

    ``person_height_range``: fractions of the image height (log-uniform), the top lowered so that many people
    fit. ``max_overlap_iou``: the box IoU a new person tries to stay under (the best of a few placements is
    kept). ``border_cut_prob``: chance of a person placed partly outside; ``occlusion_prob``: of an occluder.
    """

    _section: typing.ClassVar[str] = "SceneConfig"

    image_hw: tuple[int, int] = (368, 368)
    people_range: tuple[int, int] = (1, 4)
    person_height_range: tuple[float, float] = (0.15, 0.9)
    max_overlap_iou: float = 0.3
    border_cut_prob: float = 0.15
    occlusion_prob: float = 0.2
    clutter_range: tuple[int, int] = (4, 12)

    def _check(self) -> None:
        self._require(min(self.image_hw) >= 16, "image_hw", "at least (16, 16)")
        self._require(0 <= self.people_range[0] <= self.people_range[1], "people_range",
                      "(min, max) with 0 <= min <= max")
        lo_h, hi_h = self.person_height_range
        self._require(0 < lo_h <= hi_h <= 2, "person_height_range", "fractions 0 < min <= max <= 2")
        self._require(0 <= self.clutter_range[0] <= self.clutter_range[1], "clutter_range",
                      "(min, max) with 0 <= min <= max")
        for name in ("max_overlap_iou", "border_cut_prob", "occlusion_prob"):
            self._require(0 <= getattr(self, name) <= 1, name, "a number in [0, 1]")


@dataclass(frozen=True)
class Scene:
    """One generated image and its people: ``image`` (H, W, 3) uint8 BGR; ``keypoints`` (N, K, 3) float32 COCO
    x, y, v; ``boxes`` (N, 4) float32 x, y, w, h; ``areas`` (N,) float32 (see ``render_scene``);
    ``instance_map`` (H, W) int16: the person each pixel shows, -1 for none."""

    image: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    instance_map: np.ndarray


# --------------------------------------------------------------------------- background
def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation colour, so clutter never looks like the saturated clothes of people."""
    return np.clip(rng.uniform(40, 215) + rng.uniform(-25, 25, 3), 0, 255)


def render_background(rng: np.random.Generator, image_hw: tuple[int, int],
                      clutter_range: tuple[int, int] = (4, 12)) -> np.ndarray:
    """A textured background (H, W, 3) uint8 BGR: gradient, blotches, clutter shapes and noise (drawn first by
    :func:`render_scene`, so a generator in the same state reproduces a scene's background)."""
    h, w = int(image_hw[0]), int(image_hw[1])
    start, end = _muted_colour(rng), _muted_colour(rng)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = start.astype(np.float32) + (end - start).astype(np.float32) * ramp[..., None]
    # Low-frequency blotches, mostly in brightness so the background stays muted.
    blotches = rng.normal(0.0, 1.0, (h // 24 + 2, w // 24 + 2, 4)).astype(np.float32)
    blotches = blotches[..., :1] + 0.35 * blotches[..., 1:]
    image += cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(4, 18)
    image = np.clip(image, 0, 255).astype(np.uint8)

    size = min(h, w)
    for _ in range(int(rng.integers(clutter_range[0], clutter_range[1] + 1))):
        colour = tuple(int(v) for v in _muted_colour(rng))
        kind = rng.integers(3)
        if kind == 0:  # filled rectangle
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1 = x0 + int(rng.uniform(0.05, 0.4) * w)
            y1 = y0 + int(rng.uniform(0.05, 0.4) * h)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
        elif kind == 1:  # line, some as thick as a limb
            p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(image, p0, p1, colour, int(rng.integers(1, max(2, size // 40) + 1)), cv2.LINE_AA)
        else:  # ellipse, filled or outlined
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.uniform(0.02, 0.15) * size) + 1, int(rng.uniform(0.02, 0.15) * size) + 1)
            filled = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
            cv2.ellipse(image, center, axes, float(rng.uniform(0, 180)), 0, 360, colour, filled, cv2.LINE_AA)

    noise = rng.normal(0.0, rng.uniform(1.5, 5.0), (h, w, 1)).astype(np.float32)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------ placement
def _box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x0, y0, x1, y1 box with (M, 4) boxes."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area_box = (box[2] - box[0]) * (box[3] - box[1])
    area_others = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area_box + area_others - inter)


def _place(rng: np.random.Generator, extent: np.ndarray, image_hw: tuple[int, int], cut: bool,
           placed: list[np.ndarray], max_iou: float) -> np.ndarray:
    """Offset (2,) moving a figure with local extent (x0, y0, x1, y1) into the image, overlapping ``placed``
    least; a ``cut`` figure may hang over the border by half its size, others stay inside when they fit."""
    h, w = image_hw
    size = extent[2:] - extent[:2]
    others = np.array(placed).reshape(-1, 4)
    best, best_iou = None, math.inf
    for _ in range(20):
        top_left = np.empty(2)
        for axis, limit in ((0, w), (1, h)):
            lo, hi = (-0.5 * size[axis], limit - 0.5 * size[axis]) if cut else (0.0, limit - size[axis])
            top_left[axis] = rng.uniform(min(lo, hi), max(lo, hi))
        box = np.concatenate([top_left, top_left + size])
        iou = float(_box_iou(box, others).max(initial=0.0))
        if iou < best_iou:
            best, best_iou = top_left - extent[:2], iou
        if iou <= max_iou:
            break
    return best


def _height_range(cfg: SceneConfig, num_people: int) -> tuple[float, float]:
    """Person height range (px), its top lowered so that ``num_people`` fit in the image."""
    h, w = cfg.image_hw
    lo, hi = cfg.person_height_range[0] * h, cfg.person_height_range[1] * h
    fit = math.sqrt(_FILL * h * w / (max(num_people, 1) * _FIGURE_ASPECT))
    return lo, max(lo, min(hi, fit))


# --------------------------------------------------------------------------- scenes
def _sample_figures(rng: np.random.Generator, cfg: SceneConfig, count: int, may_cut: bool,
                    source: PoseBank | People) -> list[Figure | PoseFigure]:
    """``count`` posed, placed people (or figures of a bank), in sampling order."""
    lo, hi = _height_range(cfg, count)
    figures: list[Figure | PoseFigure] = []
    placed: list[np.ndarray] = []
    for _ in range(count):
        height = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        if isinstance(source, People):
            pts, head_center, head_axes, head_angle = sample_still_pose(rng, source.skeleton)
            margin = 0.04  # half a leg's thickness plus the outline, in person heights
            head_r = max(head_axes)
            lo_xy = np.minimum(pts.min(axis=0), head_center - head_r) - margin
            hi_xy = np.maximum(pts.max(axis=0), head_center + head_r) + margin
        else:
            pose = source.sample_pose(rng)
            lo_xy, hi_xy = pose.extent(margin=0.05)  # a blob's radius plus its rim, in figure sizes
        extent = np.concatenate([lo_xy, hi_xy]) * height
        cut = may_cut and rng.random() < cfg.border_cut_prob
        offset = _place(rng, extent, cfg.image_hw, cut, placed, cfg.max_overlap_iou)
        placed.append(extent + np.tile(offset, 2))
        if isinstance(source, People):
            figures.append(Figure.place(pts, head_center, head_axes, head_angle, height, offset, sample_colours(rng),
                                        source.skeleton))
        else:
            figures.append(pose.place(height, offset))
    return figures


def _occlude(rng: np.random.Generator, image: np.ndarray, owner: np.ndarray, figures: list[Figure | PoseFigure],
             prob: float) -> None:
    """With probability ``prob`` per person, a muted rectangle over one of its keypoints (owned by nobody)."""
    for fig in figures:
        if rng.random() < prob:
            anchor = fig.points[rng.integers(len(fig.points))]
            half = rng.uniform(0.08, 0.18, 2) * fig.height
            x0, y0 = np.round(anchor - half).astype(int)
            x1, y1 = np.round(anchor + half).astype(int)
            colour = tuple(int(v) for v in _muted_colour(rng))
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), tuple(int(v * 0.6) for v in colour), 1)
            owner[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = 0


def render_scene(rng: np.random.Generator, cfg: SceneConfig | None = None, num_people: int | None = None,
                 bank: PoseBank | People | None = None) -> Scene:
    """Draw one scene: background, then people (smaller, farther ones first), then occluders.

    ``num_people``: exactly that many people, none placed across the image border on purpose (only
    a figure larger than the image is cut); None: a count drawn from ``cfg.people_range``. People
    hidden entirely are not annotated. ``bank``: figures of its skeleton instead of COCO-17 people,
    with areas ``bank.area_per_box`` of each box when it has one; or people in a :class:`People` layout.
    """
    cfg = cfg or SceneConfig()
    if num_people is not None and (int(num_people) != num_people or num_people < 0):
        raise ValueError(f"num_people must be a non-negative integer, got {num_people!r}")
    image = render_background(rng, cfg.image_hw, cfg.clutter_range)
    fewest, most = cfg.people_range
    count = int(num_people) if num_people is not None else int(rng.integers(fewest, most + 1))
    if count >= np.iinfo(np.uint16).max:
        raise ValueError(f"num_people must be below {np.iinfo(np.uint16).max}, got {count}")

    source = bank or People()
    figures = _sample_figures(rng, cfg, count, num_people is None, source)
    figures.sort(key=lambda f: f.height)  # stable: equal heights keep their sampling order
    owner = np.zeros(cfg.image_hw, dtype=np.uint16)  # 0: nobody, i + 1: person i
    for i, fig in enumerate(figures):
        if isinstance(source, PoseBank):
            draw_pose_figure(image, owner, i + 1, fig, source.skeleton, rng)
        else:
            draw_figure(image, owner, i + 1, fig, rng)
    _occlude(rng, image, owner, figures, cfg.occlusion_prob)
    return _annotate(image, owner, figures, source.skeleton.num_keypoints, source.area_per_box)


def _annotate(image: np.ndarray, owner: np.ndarray, figures: list[Figure | PoseFigure], k: int,
              area_per_box: float | None = None) -> Scene:
    """The scene's annotations; ``area_per_box``: areas as that fraction of each box (None: the pixels shown)."""
    h, w = owner.shape
    keypoints, boxes, areas, kept = [], [], [], []
    for i, fig in enumerate(figures):
        ys, xs = np.nonzero(owner == i + 1)
        if len(xs) == 0:  # hidden or outside the image: nothing to annotate
            continue
        kps, box, area = annotate_figure(fig, owner, i + 1, xs, ys)
        if area_per_box is not None:
            area = area_per_box * box[2] * box[3]
        keypoints.append(kps)
        boxes.append(box)
        areas.append(area)
        kept.append(i)

    instance_map = np.full((h, w), -1, dtype=np.int16)
    for new, old in enumerate(kept):
        instance_map[owner == old + 1] = new
    return Scene(image, np.array(keypoints, dtype=np.float32).reshape(-1, k, 3),
                 np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(areas, dtype=np.float32), instance_map)


def generate_scene(rng: np.random.Generator, cfg: SceneConfig | None = None,
                   num_people: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image, keypoints and boxes of :func:`render_scene`."""
    scene = render_scene(rng, cfg, num_people)
    return scene.image, scene.keypoints, scene.boxes


# ---------------------------------------------------------------------------- files
def coco_person_category() -> dict:
    """The COCO-17 person category: keypoint names and the 1-based drawing skeleton."""
    return People().category


def coco_person_annotation(ann_id: int, image_id: int, keypoints: np.ndarray, box: Any, area: float,
                           track_id: int | None = None, hidden: bool | None = None,
                           category_id: int = 1) -> dict[str, Any]:
    """One COCO annotation of a generated person (or figure of ``category_id``), keypoints (K, 3) flattened
    with integer v; ``track_id`` (PoseTrack's identity field) and ``hidden`` are written when given (videos)."""
    kps = np.asarray(keypoints)
    ann: dict[str, Any] = {"id": int(ann_id), "image_id": int(image_id), "category_id": int(category_id)}
    if track_id is not None:
        ann["track_id"] = int(track_id)
    ann.update(keypoints=[c for x, y, v in kps.tolist() for c in (x, y, int(v))],
               num_keypoints=int((kps[:, 2] > 0).sum()), bbox=[float(v) for v in box], area=float(area), iscrowd=0)
    if hidden is not None:
        ann["hidden"] = bool(hidden)
    return ann


def write_coco(path: Path, info: dict[str, Any], images: list[dict], annotations: list[dict], category: dict,
               **sections: Any) -> Path:
    """Write a generated COCO keypoint file atomically: ``info``, then ``sections`` (e.g. ``videos``), then
    ``images``, ``annotations`` and the one ``category``."""
    return write_json_atomic(path, {"info": info, "licenses": [], **sections, "images": images,
                                    "annotations": annotations, "categories": [category]})


def scene_set_fingerprint(num_images: int, seed: int, cfg: SceneConfig | None = None, num_people: int | None = None,
                          image_format: str = "jpg", jpeg_quality: int = 95,
                          bank: PoseBank | People | None = None) -> str:
    """The sha256 (hex) of every argument of :func:`write_dataset` that decides the set it writes (of
    ``bank``: its poses, labels, area convention and category, not the file they were read from)."""
    digest = hashlib.sha256()
    settings = {"num_images": int(num_images), "seed": int(seed), "scene": dataclasses.asdict(cfg or SceneConfig()),
                "num_people": num_people, "image_format": image_format, "jpeg_quality": int(jpeg_quality)}
    if bank is not None:
        settings["figures"] = {"category": bank.category, "area_per_box": bank.area_per_box}
        if isinstance(bank, PoseBank):
            digest.update(np.ascontiguousarray(bank.poses, dtype=np.float64).tobytes())
            digest.update(np.ascontiguousarray(bank.labelled, dtype=bool).tobytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def write_dataset(out_dir: str | Path, num_images: int, seed: int, cfg: SceneConfig | None = None,
                  num_people: int | None = None, image_format: str = "jpg", jpeg_quality: int = 95,
                  bank: PoseBank | People | None = None) -> Path:
    """Write ``num_images`` scenes as ``out_dir/images/NNNNNN.jpg`` (or .png), then atomically
    ``out_dir/annotations.json`` (in ``bank``'s category; ``info.fingerprint``: :func:`scene_set_fingerprint`);
    returns its path. Image ``i`` (id ``i + 1``) comes from ``default_rng([seed, i])``: a larger set extends a
    smaller one."""
    cfg = cfg or SceneConfig()
    if int(num_images) != num_images or num_images < 0:
        raise ValueError(f"num_images must be a non-negative integer, got {num_images!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    h, w = cfg.image_hw
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    category = (bank or People()).category  # a person bank's is COCO's person category
    images, annotations = [], []
    for i in range(int(num_images)):
        scene = render_scene(np.random.default_rng([int(seed), i]), cfg, num_people, bank)
        image_id = i + 1
        file_name = f"{image_id:06d}.{image_format}"
        ok, data = cv2.imencode(f".{image_format}", scene.image, params)
        if not ok:
            raise ValueError(f"could not encode {images_dir / file_name} as {image_format}")
        (images_dir / file_name).write_bytes(data.tobytes())
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for kps, box, area in zip(scene.keypoints, scene.boxes, scene.areas):
            annotations.append(coco_person_annotation(len(annotations) + 1, image_id, kps, box, area,
                                                      category_id=category["id"]))

    info = {
        "description": "openpose_lite synthetic scenes" + ("" if bank is None else f" of {bank.skeleton.name} figures"),
        "seed": int(seed),
        "num_people": num_people,
        "scene_config": dataclasses.asdict(cfg),
        "fingerprint": scene_set_fingerprint(num_images, seed, cfg, num_people, image_format, jpeg_quality, bank),
    }
    ann_path = write_coco(out_dir / "annotations.json", info, images, annotations, category)
    logger.info("wrote %d synthetic images with %d people to %s", len(images), len(annotations), out_dir)
    return ann_path
