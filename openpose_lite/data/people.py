"""People for the top-down branch: one :class:`PersonInstance` per crop to make, and where its image is.

Ground-truth people come from a COCO-format file (:func:`person_instances`: the labelled,
non-crowd people with a usable box), detected people from a detector's boxes
(:func:`detection_instances`); :class:`TopDownInstances` pairs them with an image loader for
:class:`~openpose_lite.data.samples.TopDownDataset`.

Shape legend: K keypoints.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.inference.boxes import sanitize_box
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = ["PersonInstance", "TopDownInstances", "detection_instances", "person_instances"]

logger = logging.getLogger(__name__)


class PersonInstance(NamedTuple):
    """One person crop to make: ``image_index`` in the image source (e.g. a :class:`CocoKeypoints` item),
    ``keypoints`` (K, 3) x, y, v in image pixels (all zero for a detection), ``box`` (4,) sanitised x, y, w, h,
    ``area`` (COCO's segmentation area; the box area for detections), the dataset's ``image_id``, detector
    ``score`` (1 for ground truth)."""

    image_index: int
    keypoints: np.ndarray
    box: np.ndarray
    area: float
    image_id: int
    score: float = 1.0


def person_instances(coco: CocoKeypoints) -> list[PersonInstance]:
    """The labelled people of a COCO-format file (:class:`CocoKeypoints`' labelled people) with a positive
    ``area`` when the annotation has one and a box that survives :func:`sanitize_box`."""
    people: list[PersonInstance] = []
    dropped = 0
    for index, rec in enumerate(coco.records):
        for kps, bbox, ann in zip(rec.keypoints, rec.boxes, rec.labelled):
            box = sanitize_box(bbox, (rec.height, rec.width))
            area = float(ann.get("area", box[2] * box[3] if box is not None else 0.0))
            if box is None or not area > 0:
                dropped += 1
                continue
            people.append(PersonInstance(index, np.asarray(kps, dtype=np.float32).copy(), box, area, rec.image_id))
    logger.info("%s: %d people for top-down crops (%d dropped for an empty box or area)",
                coco.ann_file, len(people), dropped)
    return people


def detection_instances(coco: CocoKeypoints, detections: Iterable[Mapping[str, Any] | Sequence[Any]],
                        score_threshold: float = 0.0, category_id: int | None = 1) -> list[PersonInstance]:
    """People from a detector's boxes, in input order, for top-down inference.

    ``coco``: the images (built with ``min_people=0`` to hold images without labelled people too);
    ``detections``: COCO result dicts (``image_id``, ``bbox`` x, y, w, h, ``score``, optional
    ``category_id``) or ``(image_id, bbox, score)`` tuples; those scoring below ``score_threshold``
    are dropped, and dicts of another ``category_id`` than the one given (None: keep all).
    """
    records = coco.records
    index_of = {rec.image_id: i for i, rec in enumerate(records)}
    k = coco.skeleton.num_keypoints
    people: list[PersonInstance] = []
    for n, det in enumerate(detections):
        if isinstance(det, Mapping):
            if category_id is not None and "category_id" in det and int(det["category_id"]) != category_id:
                continue
            try:
                image_id, bbox, score = det["image_id"], det["bbox"], det.get("score", 1.0)
            except KeyError:
                raise ValueError(f"detection {n}: expected keys image_id, bbox (and score), "
                                 f"got {sorted(det)}") from None
        else:
            try:
                image_id, bbox, score = det
            except (TypeError, ValueError):
                raise ValueError(f"detection {n}: expected (image_id, bbox, score), got {det!r:.200}") from None
        if float(score) < score_threshold:
            continue
        index = index_of.get(int(image_id))
        if index is None:
            raise ValueError(f"detection {n}: image_id {image_id} is not an image of {coco.ann_file} "
                             "(build CocoKeypoints with min_people=0 to keep images without people)")
        rec = records[index]
        box = sanitize_box(bbox, (rec.height, rec.width))
        if box is None:
            continue
        people.append(PersonInstance(index, np.zeros((k, 3), np.float32), box, float(box[2] * box[3]),
                                     rec.image_id, float(score)))
    logger.info("%s: %d detected people for top-down crops", coco.ann_file, len(people))
    return people


class TopDownInstances:
    """People to crop (:class:`PersonInstance`) and ``load_image``: image index -> (H, W, 3) uint8 BGR image
    (e.g. ``CocoKeypoints.load_image``; it must pickle for DataLoader workers)."""

    def __init__(self, people: Sequence[PersonInstance], load_image: Callable[[int], np.ndarray],
                 skeleton: Skeleton = COCO_17) -> None:
        k = skeleton.num_keypoints
        for n, person in enumerate(people):
            if np.shape(person.keypoints) != (k, 3):
                raise ValueError(f"people[{n}].keypoints: expected shape ({k}, 3) for {skeleton.name}, "
                                 f"got {np.shape(person.keypoints)}")
            if np.shape(person.box) != (4,):
                raise ValueError(f"people[{n}].box: expected (x, y, w, h), got shape {np.shape(person.box)}")
        self.people = list(people)
        self._load_image = load_image
        self.skeleton = skeleton

    @classmethod
    def from_coco(cls, coco: CocoKeypoints) -> TopDownInstances:
        """The labelled people of ``coco`` (:func:`person_instances`), for training or a GT-box evaluation."""
        return cls(person_instances(coco), coco.load_image, coco.skeleton)

    @classmethod
    def from_detections(cls, coco: CocoKeypoints, detections: Iterable[Mapping[str, Any] | Sequence[Any]],
                        **options: Any) -> TopDownInstances:
        """Detected people on ``coco``'s images (:func:`detection_instances` with ``options``), for inference."""
        return cls(detection_instances(coco, detections, **options), coco.load_image, coco.skeleton)

    def __len__(self) -> int:
        return len(self.people)

    def __getitem__(self, index: int) -> PersonInstance:
        return self.people[index]

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR image of person ``index``."""
        return self._load_image(self.people[index].image_index)
