"""Person boxes for the top-down branch: which ground-truth people are evaluated, and their boxes.

One rule decides which annotations count as people with ground-truth boxes, and every command
(``eval``, the in-training AP, ``bench``, the oracles) uses it: the rule of COCO keypoint
evaluation, which ignores crowd regions and people without a labelled keypoint
(pycocotools ``COCOeval.evaluate``: ``ignore`` when ``iscrowd`` or ``num_keypoints == 0``), and
of the HRNet reference's ground-truth-box evaluation (``lib/dataset/coco.py``,
``_load_coco_keypoint_annotation_kernal``: ``iscrowd=False`` and ``max(keypoints) > 0``).

Shape legend: N boxes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openpose_lite.geometry import HRNET, OURS, check_convention
from openpose_lite.io import read_json
from openpose_lite.structures import Poses

BoxSource = Callable[[np.ndarray, "int | None"], tuple[np.ndarray, np.ndarray]]
"""``(image_bgr, image_id or None) -> (boxes (N, 4) x, y, w, h, scores (N,))``."""

PERSON_CATEGORY = 1
# Boxes from a bottom-up model's people: the keypoints' extent grown by this fraction on each
# side, for people with at least this many found keypoints (fewer give no extent to speak of).
KEYPOINT_BOX_PADDING = 0.1
MIN_BOX_KEYPOINTS = 2


def is_labelled_person(ann: Mapping[str, Any]) -> bool:
    """A person COCO keypoint evaluation scores: not a crowd, at least one labelled keypoint (v > 0)."""
    if ann.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY or ann.get("iscrowd", 0):
        return False
    kps = ann.get("keypoints")
    if not isinstance(kps, (list, tuple)) or len(kps) % 3:
        return False
    return any(v > 0 for v in kps[2::3])


def labelled_people(dataset: Mapping[str, Any]) -> dict[int, list[dict]]:
    """image id -> its labelled people (:func:`is_labelled_person`), in file order, from a COCO dict."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in dataset.get("annotations", []):
        if isinstance(ann, Mapping) and is_labelled_person(ann):
            by_image[int(ann["image_id"])].append(dict(ann))
    return dict(by_image)


def sanitize_box(bbox_xywh: Sequence[float] | np.ndarray, image_hw: tuple[int, int]) -> np.ndarray | None:
    """Clip a person box to the image; None for a box that is degenerate or outside the image.

    Boxes follow the convention of :func:`~openpose_lite.geometry.box_to_center_scale`: (x, y)
    is the centre of the box's top-left pixel and the box covers ``w x h`` pixels, i.e. its
    edges are ``x - 0.5`` and ``x + w - 0.5``. The edges are clipped to the image's
    (``-0.5`` and ``W - 0.5``), so a box inside the image comes back unchanged.

    Args:
        bbox_xywh: (4,) x, y, w, h in image pixels.
        image_hw: (H, W) of the image.
    Returns:
        (4,) float64 x, y, w, h, or None when the box is not finite, has w <= 0 or h <= 0, or
        does not overlap the image (zero area after clipping), as HRNet drops such boxes.
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


def hrnet_clean_box(bbox: Iterable[float], area: float, image_hw: tuple[int, int]) -> np.ndarray | None:
    """The HRNet reference's ground-truth box sanitising, or None where it drops the box.

    ``lib/dataset/coco.py``, ``_load_coco_keypoint_annotation_kernal``: ``x1 = max(0, x)``,
    ``x2 = min(W - 1, x1 + max(0, w - 1))`` (the same for y), kept when ``area > 0`` and
    ``x2 >= x1``, ``y2 >= y1``; the box becomes ``(x1, y1, x2 - x1, y2 - y1)``.
    """
    x, y, w, h = (float(v) for v in bbox)
    height, width = image_hw
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if not (area > 0 and x2 >= x1 and y2 >= y1):
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def gt_box(ann: Mapping[str, Any], image_hw: tuple[int, int], convention: str = OURS) -> np.ndarray | None:
    """The ground-truth box (x, y, w, h) of one labelled person as a model of ``convention`` is evaluated.

    Ours: the annotation box as it is (the predictor clips it). HRNet convention: the
    reference's sanitised box (:func:`hrnet_clean_box`; None where the reference drops it).
    """
    bbox = np.asarray(ann["bbox"], dtype=np.float64)
    if check_convention(convention) == HRNET:
        return hrnet_clean_box(bbox, float(ann.get("area", bbox[2] * bbox[3])), image_hw)
    return bbox


def gt_boxes(people: Iterable[Mapping[str, Any]], image_hw: tuple[int, int], convention: str = OURS
             ) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4), scores (N,) = 1) of an image's labelled people (:func:`gt_box`, dropped ones left out)."""
    boxes = [b for b in (gt_box(ann, image_hw, convention) for ann in people) if b is not None]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.ones(len(boxes))


def _check_entries(entries: Any, path: Path, what: str) -> list[dict]:
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected {what}")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "image_id" not in e or not isinstance(e.get("bbox"), (list, tuple)) \
                or len(e["bbox"]) != 4:
            raise ValueError(f"{path}: entry {i} lacks 'image_id' or a 4-number 'bbox'")
    return entries


def gt_box_source(path: str | Path, convention: str = OURS) -> BoxSource:
    """Boxes by image id: the labelled people of a COCO annotation file (ground-truth-box evaluation)."""
    path = Path(path)
    data = read_json(path, "box file")  # a regular file of bounded size: a FIFO or /dev/zero is refused
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a COCO file with 'annotations'")
    _check_entries(data.get("annotations"), path, "a COCO file with 'annotations'")
    sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in data.get("images", [])
             if isinstance(im, dict) and {"id", "height", "width"} <= set(im)}
    people = labelled_people(data)
    check_convention(convention)

    def source(image: np.ndarray, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        if image_id is None:
            raise ValueError(f"boxes from {path} need the image's COCO id")
        hw = sizes.get(int(image_id), tuple(image.shape[:2]))
        return gt_boxes(people.get(int(image_id), []), hw, convention)

    return source


def detection_box_source(path: str | Path, min_score: float = 0.0) -> BoxSource:
    """Boxes by image id from a COCO detections list ``[{"image_id", "bbox", "score", "category_id"}]``.

    Person detections (category 1, or none given) scoring at least ``min_score``, as they are.
    """
    path = Path(path)
    entries = _check_entries(read_json(path, "box file"), path, "a list of COCO detections")
    by_image: dict[int, list[tuple[list[float], float]]] = defaultdict(list)
    for e in entries:
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
    """Person boxes from found keypoints: their extent, grown by ``padding`` x extent on each side.

    Args:
        poses: N people, keypoints (N, K, 3) with score 0 where a keypoint was not found.
        padding: fraction of the keypoints' width (height) added left and right (top and bottom).
        min_keypoints: people with fewer found keypoints give no box (no extent to speak of).
    Returns:
        (boxes (M, 4) x, y, w, h float64, scores (M,) the people's scores), M <= N.
    """
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
