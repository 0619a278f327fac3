"""Which ground-truth instances are evaluated, and their boxes: one rule for every command.

Every command that scores against ground truth (``eval``, the in-training AP, ``bench``, the oracles) counts
the annotations COCO keypoint evaluation does (pycocotools ``COCOeval.evaluate`` ignores ``iscrowd`` and
``num_keypoints == 0``; HRNet's ``lib/dataset/coco.py``, ``_load_coco_keypoint_annotation_kernal``: not crowd,
``max(keypoints) > 0``), of the categories scored (the person; else those with the skeleton's keypoint names).

Shape legend: N boxes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openpose_lite.coco.skeleton import skeleton_of_coco
from openpose_lite.coco.validation import CocoLayout, coco_layout
from openpose_lite.geometry import HRNET, OURS, check_convention
from openpose_lite.inference.boxes import PERSON_CATEGORY, BoxSource
from openpose_lite.io import read_json
from openpose_lite.skeleton import Skeleton

__all__ = ["PERSON_CATEGORY", "gt_box", "gt_box_source", "is_labelled_instance", "labelled_instances",
           "labelled_people"]


def is_labelled_instance(ann: Mapping[str, Any], categories: Collection[int] = (PERSON_CATEGORY,)) -> bool:
    """An instance COCO keypoint evaluation scores: of one of ``categories``, not a crowd, at least one
    labelled keypoint (v > 0). An annotation without a category id counts as the first of them."""
    if ann.get("category_id", next(iter(categories), None)) not in categories or ann.get("iscrowd", 0):
        return False
    kps = ann.get("keypoints")
    if not isinstance(kps, (list, tuple)) or len(kps) % 3:
        return False
    return any(v > 0 for v in kps[2::3])


def labelled_instances(dataset: Mapping[str, Any], categories: Collection[int] = (PERSON_CATEGORY,)
                       ) -> dict[int, list[dict]]:
    """image id -> its labelled instances of ``categories`` (:func:`is_labelled_instance`), in file order."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in dataset.get("annotations", []):
        if isinstance(ann, Mapping) and is_labelled_instance(ann, categories):
            by_image[int(ann["image_id"])].append(dict(ann))
    return dict(by_image)


def labelled_people(dataset: Mapping[str, Any]) -> dict[int, list[dict]]:
    """image id -> its labelled people (COCO's person category), in file order."""
    return labelled_instances(dataset)


def gt_box(ann: Mapping[str, Any], image_hw: tuple[int, int], convention: str = OURS) -> np.ndarray | None:
    """The ground-truth box (x, y, w, h) of one labelled instance as a model of ``convention`` is evaluated.

    Ours: the annotation box as it is (the predictor clips it). HRNet convention: the reference's
    sanitised box, None where it drops the box (``lib/dataset/coco.py``,
    ``_load_coco_keypoint_annotation_kernal``: ``x1 = max(0, x)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``,
    the same for y, kept when ``area > 0`` and ``x2 >= x1``, ``y2 >= y1``; the box becomes
    ``(x1, y1, x2 - x1, y2 - y1)``).
    """
    bbox = np.asarray(ann["bbox"], dtype=np.float64)
    if check_convention(convention) != HRNET:
        return bbox
    x, y, w, h = (float(v) for v in bbox)
    height, width = image_hw
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if not (float(ann.get("area", w * h)) > 0 and x2 >= x1 and y2 >= y1):
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def scored_layout(data: Mapping[str, Any], source: str, skeleton: Skeleton | None = None
                  ) -> tuple[Skeleton, CocoLayout]:
    """(the skeleton scored, the categories of a COCO dict its results are scored on): those with its
    keypoint names; default: the file's own skeleton (not completed: scoring needs no limbs).

    Raises ValueError naming ``source`` when no category has the skeleton's keypoint names
    (:meth:`~openpose_lite.coco.validation.CocoLayout.select`).
    """
    layout = coco_layout(data, source)
    if skeleton is None:
        return skeleton_of_coco(data, layout, source, complete=False)
    annotation = skeleton.annotation_layout()
    return skeleton, layout.select(annotation.keypoints, source, annotation.name)


def gt_box_source(path: str | Path, convention: str = OURS, skeleton: Skeleton | None = None) -> BoxSource:
    """Boxes by image id: the labelled instances of a COCO annotation file (ground-truth-box evaluation),
    of the categories ``skeleton`` is scored on (:func:`scored_layout`); each box scores 1."""
    path = Path(path)
    data = read_json(path, "box file")  # a regular file of bounded size: a FIFO or /dev/zero is refused
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: expected a COCO file with 'annotations'")
    sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in data.get("images", [])
             if isinstance(im, dict) and {"id", "height", "width"} <= set(im)}
    instances = labelled_instances(data, scored_layout(data, str(path), skeleton)[1].keypoint_categories)
    check_convention(convention)

    def source(image: np.ndarray, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        if image_id is None:
            raise ValueError(f"boxes from {path} need the image's COCO id")
        hw = sizes.get(int(image_id), tuple(image.shape[:2]))
        boxes = [gt_box(ann, hw, convention) for ann in instances.get(int(image_id), [])]
        boxes = [b for b in boxes if b is not None]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.ones(len(boxes))

    return source
