"""COCO-format keypoint files: images, people and ignore masks, read for training.

:class:`CocoKeypoints` reads any COCO-format keypoint file (people, animals, other skeletons), checked by
:mod:`openpose_lite.coco.validation`, and returns one :class:`Sample` per image ("people": the instances of its
skeleton's categories). The ignore mask (CMU's ``mask_miss``, True = ignore in the loss) covers people without a
labelled keypoint (their segmentation, else their box: real people the targets would call background) and crowd
regions minus labelled people's segmentations (as CMU does).

Shape legend: N people, K keypoints, H x W image size.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from openpose_lite.coco.skeleton import skeleton_of_coco
from openpose_lite.coco.validation import MIN_POLYGON_VALUES, AnnotationError, CocoLayout, read_coco_keypoints
from openpose_lite.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageReadError,
    check_image_files,
    image_in_folder,
    read_image,
)
from openpose_lite.io import file_problem
from openpose_lite.skeleton import Skeleton

__all__ = ["CocoKeypoints", "Sample", "annotation_mask"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Sample:
    """One annotated image: ``image`` (H, W, 3) uint8 BGR; ``keypoints`` (N, K, 3) float32 x, y, v (0 unlabelled,
    1 occluded, 2 visible) in pixels of the non-crowd people with a labelled keypoint; ``ignore_mask`` (H, W) bool,
    True = ignore; ``boxes`` (N, 4) float32 x, y, w, h of those people."""

    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray
    boxes: np.ndarray
    image_id: int
    file_name: str = ""


def annotation_mask(ann: dict[str, Any], height: int, width: int, use_bbox: bool = True) -> np.ndarray | None:
    """(H, W) bool mask of a COCO annotation: its segmentation (polygons, RLE or compressed
    RLE), else its box when ``use_bbox``, else None."""
    seg = ann.get("segmentation")
    rle = None
    if isinstance(seg, list):
        # Polygons need at least 3 points; degenerate ones exist in real files (counted on reading).
        polygons = [p for p in seg if isinstance(p, list) and len(p) >= MIN_POLYGON_VALUES]
        if polygons:
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(seg, dict) and "counts" in seg:
        rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else seg
    if rle is not None:
        with warnings.catch_warnings():
            # pycocotools' decode trips a numpy 2 DeprecationWarning (copy keyword) on every call.
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_utils.decode(rle).astype(bool)
    if not use_bbox or "bbox" not in ann:
        return None
    x, y, w, h = (float(v) for v in ann["bbox"])
    out = np.zeros((height, width), dtype=bool)
    x0, y0 = max(int(math.floor(x)), 0), max(int(math.floor(y)), 0)
    x1, y1 = min(int(math.ceil(x + w)), width), min(int(math.ceil(y + h)), height)
    out[y0:y1, x0:x1] = True
    return out


def _union(anns: list[dict[str, Any]], height: int, width: int, use_bbox: bool) -> np.ndarray:
    """(H, W) bool: the union of the annotations' masks (:func:`annotation_mask`)."""
    out = np.zeros((height, width), dtype=bool)
    for ann in anns:
        mask = annotation_mask(ann, height, width, use_bbox)
        if mask is not None:
            out |= mask
    return out


@dataclass
class _ImageRecord:
    image_id: int
    file_name: str
    height: int
    width: int
    keypoints: list[np.ndarray] = field(default_factory=list)  # (K, 3) per labelled person
    boxes: list[list[float]] = field(default_factory=list)
    labelled: list[dict[str, Any]] = field(default_factory=list)
    unlabelled: list[dict[str, Any]] = field(default_factory=list)
    crowds: list[dict[str, Any]] = field(default_factory=list)


class CocoKeypoints:
    """A COCO-format keypoint file (any skeleton) and the folder of its images; ``dataset[i]`` is a :class:`Sample`.

    ``min_people``: keep images with at least this many people with a labelled keypoint (0: all). ``skeleton``:
    read the categories with its keypoint names, in its annotation layout (default: the file's own,
    :func:`~openpose_lite.coco.skeleton.skeleton_of_coco`). ``images_anywhere``: let ``file_name`` leave
    ``image_dir`` (:func:`~openpose_lite.images.image_in_folder`). ``read``: ``read_coco_keypoints(ann_file,
    skeleton)``'s result, when the caller has it. Raises FileNotFoundError, or
    :class:`~openpose_lite.coco.validation.AnnotationError` for an invalid file or a ``file_name`` outside.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        *,
        min_people: int = 1,
        skeleton: Skeleton | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        images_anywhere: bool = False,
        read: tuple[dict, CocoLayout] | None = None,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.max_image_pixels = max_image_pixels
        self.images_anywhere = images_anywhere
        if min_people < 0:
            raise ValueError(f"CocoKeypoints: min_people must be >= 0, got {min_people}")
        if file_problem(self.ann_file) == "not found":  # other kinds (a FIFO, a folder) are named on reading
            raise FileNotFoundError(f"annotation file not found: {self.ann_file}")
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (for {self.ann_file})")
        data, layout = read_coco_keypoints(self.ann_file, skeleton) if read is None else read
        if skeleton is None:
            skeleton, layout = skeleton_of_coco(data, layout, str(self.ann_file))
        elif layout.left_out():
            logger.warning("%s: %s", self.ann_file, layout.left_out())
        self.skeleton: Skeleton = skeleton.annotation_layout()
        self._records = self._parse(data, layout)
        for rec in self._records:  # a file name that leaves the folder is refused before any image is read
            try:
                image_in_folder(self.image_dir, rec.file_name, images_anywhere)
            except ValueError as exc:
                raise AnnotationError(f"{self.ann_file}: image id {rec.image_id}: {exc}") from None
        self._items = [r for r in self._records if len(r.keypoints) >= min_people]
        logger.info("%s: %d images (%d with >= %d labelled people)", self.ann_file, len(self._records),
                    len(self._items), min_people)

    def _parse(self, data: dict, layout: CocoLayout) -> list[_ImageRecord]:
        k = self.skeleton.num_keypoints
        records = {img["id"]: _ImageRecord(img["id"], img["file_name"], int(img["height"]), int(img["width"]))
                   for img in data["images"]}
        for ann in data["annotations"]:
            if not layout.is_person(ann):
                continue  # e.g. a full instances file: only keypoint categories are people here
            rec = records[ann["image_id"]]
            if ann.get("iscrowd", 0):
                rec.crowds.append(ann)
                continue
            raw = ann.get("keypoints")
            kps = None if raw is None else np.asarray(raw, dtype=np.float32).reshape(k, 3)
            if kps is None or not np.any(kps[:, 2] > 0):
                rec.unlabelled.append(ann)
                continue
            bbox = ann.get("bbox")
            if bbox is None:
                # No box: the labelled keypoints' extent stands in for it.
                pts = kps[kps[:, 2] > 0, :2]
                lo, hi = pts.min(axis=0), pts.max(axis=0)
                bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
            rec.keypoints.append(kps)
            rec.boxes.append([float(v) for v in bbox])
            rec.labelled.append(ann)
        return list(records.values())

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._items)

    @property
    def records(self) -> list:
        """The parsed per-image records (keypoints, boxes, annotations, image size), in item order:
        no image or mask decoded."""
        return list(self._items)

    @property
    def image_ids(self) -> list[int]:
        return [r.image_id for r in self._items]

    def image_path(self, index: int) -> Path:
        return image_in_folder(self.image_dir, self._items[index].file_name, self.images_anywhere)

    def check_images(self, decode: bool = False, workers: int = 0, progress: bool = False) -> None:
        """Refuse, before anything is trained, images that cannot be read: every item's file must
        exist in the folder with a readable header of its entry's size, within ``max_image_pixels``;
        ``decode``: and decode (``workers``, ``progress``: :func:`~openpose_lite.images.check_image_files`').
        The ImageReadError names the annotation file, how many images fail and the first problem."""
        check_image_files(self.image_dir, [(r.file_name, r.height, r.width) for r in self._items],
                          f"that {self.ann_file} names", self.max_image_pixels, self.images_anywhere,
                          decode=decode, workers=workers, progress=progress)

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR, as stored (EXIF orientation ignored: annotations use the raw pixels)."""
        rec = self._items[index]
        try:
            return read_image(self.image_path(index), (rec.height, rec.width), self.max_image_pixels)
        except ImageReadError as exc:
            raise type(exc)(f"{exc} (image id {rec.image_id} in {self.ann_file})") from None

    def ignore_mask(self, index: int) -> np.ndarray:
        """(H, W) bool, True = ignore: unlabelled people and crowds minus labelled people."""
        rec = self._items[index]
        ignore = _union(rec.unlabelled, rec.height, rec.width, use_bbox=True)
        if rec.crowds:
            crowd = _union(rec.crowds, rec.height, rec.width, use_bbox=True)
            ignore |= crowd & ~_union(rec.labelled, rec.height, rec.width, use_bbox=False)
        return ignore

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        rec = self._items[index]
        k = self.skeleton.num_keypoints
        return Sample(
            image=self.load_image(index),
            keypoints=np.stack(rec.keypoints) if rec.keypoints else np.zeros((0, k, 3), np.float32),
            ignore_mask=self.ignore_mask(index),
            boxes=np.asarray(rec.boxes, dtype=np.float32).reshape(-1, 4),
            image_id=rec.image_id,
            file_name=rec.file_name,
        )
