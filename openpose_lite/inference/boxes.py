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

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openpose_lite.geometry import HRNET, OURS, check_convention

BoxSource = Callable[[np.ndarray, "int | None"], tuple[np.ndarray, np.ndarray]]
"""``(image_bgr, image_id or None) -> (boxes (N, 4) x, y, w, h, scores (N,))``."""

PERSON_CATEGORY = 1


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"box file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from None


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
    data = _read_json(path)
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
    entries = _check_entries(_read_json(path), path, "a list of COCO detections")
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
