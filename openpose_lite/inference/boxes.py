"""Person boxes (N, 4) for the top-down branch at inference: a detections file, a bottom-up model's people,
and the clipping every box gets. Ground-truth boxes, for evaluation: :mod:`openpose_lite.data.ground_truth`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from openpose_lite.io import read_json
from openpose_lite.structures import Poses

BoxSource = Callable[[np.ndarray, "int | None"], tuple[np.ndarray, np.ndarray]]
"""``(image_bgr, image_id or None) -> (boxes (N, 4) x, y, w, h, scores (N,))``."""

PERSON_CATEGORY = 1  # COCO's person: the category detections files are read for
# Boxes from a bottom-up model's people: the keypoints' extent grown by this fraction on each
# side, for people with at least this many found keypoints (fewer give no extent to speak of).
KEYPOINT_BOX_PADDING = 0.1
MIN_BOX_KEYPOINTS = 2


def sanitize_box(bbox_xywh: Sequence[float] | np.ndarray, image_hw: tuple[int, int]) -> np.ndarray | None:
    """Clip a person box (4,) x, y, w, h in image pixels to an image of ``image_hw`` (H, W): (4,) float64, or
    None when it is not finite, has w <= 0 or h <= 0, or does not overlap the image, as HRNet drops such boxes.

    (x, y) is the centre of the box's top-left pixel, its edges ``x - 0.5`` and ``x + w - 0.5``
    (:func:`~openpose_lite.geometry.box_to_center_scale`), clipped to the image's (``-0.5``, ``W - 0.5``).
    """
    box = np.asarray(bbox_xywh, dtype=np.float64).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f"sanitize_box: bbox_xywh must have 4 values (x, y, w, h), got shape {np.shape(bbox_xywh)}")
    height, width = (int(v) for v in image_hw)
    if height <= 0 or width <= 0:
        raise ValueError(f"sanitize_box: image_hw must be positive, got {image_hw}")
    if not np.all(np.isfinite(box)):
        return None
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return None
    left, top = max(x - 0.5, -0.5), max(y - 0.5, -0.5)
    right, bottom = min(x + w - 0.5, width - 0.5), min(y + h - 0.5, height - 0.5)
    if right <= left or bottom <= top:
        return None
    return np.array([left + 0.5, top + 0.5, right - left, bottom - top], dtype=np.float64)


def detection_box_source(path: str | Path, min_score: float = 0.0) -> BoxSource:
    """Boxes by image id from a COCO detections list ``[{"image_id", "bbox", "score", "category_id"}]``.

    Person detections (category 1, or none given) scoring at least ``min_score``, as they are.
    """
    path = Path(path)
    entries = read_json(path, "box file")
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of COCO detections")
    by_image: dict[int, list[tuple[list[float], float]]] = defaultdict(list)
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "image_id" not in e or not isinstance(e.get("bbox"), (list, tuple)) \
                or len(e["bbox"]) != 4:
            raise ValueError(f"{path}: entry {i} lacks 'image_id' or a 4-number 'bbox'")
        score = float(e.get("score", 1.0))
        if e.get("category_id", PERSON_CATEGORY) == PERSON_CATEGORY and score >= min_score:
            by_image[int(e["image_id"])].append(([float(v) for v in e["bbox"]], score))

    def source(image: np.ndarray, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        if image_id is None:
            raise ValueError(f"boxes from {path} need the image's COCO id")
        found = by_image.get(int(image_id), [])
        return (np.array([b for b, _ in found], np.float64).reshape(-1, 4), np.array([s for _, s in found], np.float64))

    return source


def boxes_from_poses(poses: Poses, padding: float = KEYPOINT_BOX_PADDING,
                     min_keypoints: int = MIN_BOX_KEYPOINTS) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes from found keypoints (score > 0): their extent, grown by ``padding`` x its width (height)
    left and right (top and bottom); people with fewer than ``min_keypoints`` found give none.
    Returns (boxes (M, 4) x, y, w, h float64, the people's scores (M,)), M <= N."""
    boxes, scores = [], []
    for kps, score in zip(poses.keypoints, poses.scores):
        found = kps[kps[:, 2] > 0, :2]
        if len(found) < min_keypoints:
            continue
        lo, hi = found.min(axis=0), found.max(axis=0)
        size = np.maximum(hi - lo, 1.0)
        lo, size = lo - padding * size, size * (1.0 + 2.0 * padding)
        boxes.append([lo[0], lo[1], size[0], size[1]])
        scores.append(float(score))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)


def pose_box_source(predict: Callable[[np.ndarray], Poses]) -> BoxSource:
    """Boxes from a bottom-up model's people (:func:`boxes_from_poses`): the top-down branch
    without an external detector; a box's score is its person's score."""

    def source(image: np.ndarray, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        return boxes_from_poses(predict(image))

    return source
