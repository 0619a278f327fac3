"""COCO-format keypoint datasets: images, people, ignore masks; and the bottom-up training wrapper.

:class:`CocoKeypoints` reads any COCO-format person-keypoint file (COCO, CrowdPose or
OCHuman converted to COCO-17, the synthetic scenes) and returns one :class:`Sample` per image.
:class:`BottomUpTrainDataset` turns samples into network inputs and codec targets with the CMU
augmentation.

Ignore mask (CMU's ``mask_miss``), 1 = the annotation cannot be trusted here, so the loss
ignores it:

* people without any labelled keypoint (``iscrowd = 0``, ``num_keypoints = 0``): their
  segmentation, or their box when they have none. They are real people whom the targets would
  otherwise call background;
* crowd regions (``iscrowd = 1``), minus the pixels of labelled people's segmentations, so a
  labelled person standing in front of a crowd keeps its supervision (as CMU does).

Shape legend: N people, K keypoints, H x W image size.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from openpose_lite.data.transforms import AugmentParams, random_affine, warp_sample
from openpose_lite.geometry import crop_affine
from openpose_lite.images import ImageReadError, read_image
from openpose_lite.preprocess import to_network_input
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = ["BottomUpTrainDataset", "CocoKeypoints", "Sample", "annotation_mask", "choose_main_person"]

logger = logging.getLogger(__name__)

# CMU picks as "main" (crop-centre) people those with >= 5 labelled keypoints and a box of
# at least 32 x 32 px; centring on tinier people would blow them up to blurry giants.
MAIN_MIN_KEYPOINTS = 5
MAIN_MIN_AREA = 32.0 * 32.0


@dataclass(eq=False)
class Sample:
    """One annotated image.

    ``image`` (H, W, 3) uint8 BGR; ``keypoints`` (N, K, 3) float32 x, y, v in image pixels
    (v: 0 unlabelled, 1 labelled but occluded, 2 visible) for the people with at least one
    labelled keypoint and ``iscrowd = 0``; ``ignore_mask`` (H, W) bool, True = ignore (see the
    module docstring); ``boxes`` (N, 4) float32 x, y, w, h of those people; ``image_id``.
    """

    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray
    boxes: np.ndarray
    image_id: int
    file_name: str = field(default="")


def annotation_mask(ann: dict[str, Any], height: int, width: int, use_bbox: bool = True) -> np.ndarray | None:
    """(H, W) bool mask of a COCO annotation: its segmentation (polygons, RLE or compressed
    RLE), else its box when ``use_bbox``, else None."""
    seg = ann.get("segmentation")
    rle = None
    if isinstance(seg, list):
        # Polygons need at least 3 points; degenerate ones exist in real files.
        polygons = [p for p in seg if isinstance(p, list) and len(p) >= 6]
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
    """A COCO-format person-keypoint file and its image folder; ``dataset[i]`` is a :class:`Sample`.

    Args:
        ann_file: COCO-format JSON (``images``, ``annotations``; keypoints in ``skeleton``'s order).
        image_dir: folder holding the ``file_name`` of every image.
        min_people: keep only images with at least this many people with a labelled keypoint
            (default 1, as training wants; 0 keeps every image of the file).
        skeleton: the annotation's keypoint layout (COCO-17 for all supported datasets).

    Raises FileNotFoundError for a missing file or folder and ValueError, naming the file,
    for a file that is not COCO-format keypoint data.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        *,
        min_people: int = 1,
        skeleton: Skeleton = COCO_17,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.skeleton = skeleton
        if min_people < 0:
            raise ValueError(f"CocoKeypoints: min_people must be >= 0, got {min_people}")
        if not self.ann_file.is_file():
            raise FileNotFoundError(f"annotation file not found: {self.ann_file}")
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (for {self.ann_file})")
        try:
            with open(self.ann_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.ann_file}: not a valid JSON annotation file ({exc})") from None
        self._records = self._parse(data)
        self._items = [r for r in self._records if len(r.keypoints) >= min_people]
        logger.info("%s: %d images (%d with >= %d labelled people)", self.ann_file, len(self._records),
                    len(self._items), min_people)

    # ------------------------------------------------------------------ parsing
    def _fail(self, what: str) -> ValueError:
        return ValueError(f"{self.ann_file}: {what}")

    def _parse(self, data: Any) -> list[_ImageRecord]:
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise self._fail("expected a COCO-format dict with 'images' and 'annotations' lists")
        k = self.skeleton.num_keypoints
        categories = {c.get("id"): c for c in data.get("categories", []) if isinstance(c, dict)}
        for cat in categories.values():
            if "keypoints" in cat and len(cat["keypoints"]) != k:
                raise self._fail(f"category {cat.get('name')!r} has {len(cat['keypoints'])} keypoints, "
                                 f"expected {k} ({self.skeleton.name})")
        keypoint_cats = {cid for cid, c in categories.items() if "keypoints" in c}

        records: dict[int, _ImageRecord] = {}
        for img in data["images"]:
            try:
                rec = _ImageRecord(int(img["id"]), str(img["file_name"]), int(img["height"]), int(img["width"]))
            except (KeyError, TypeError, ValueError):
                raise self._fail(f"image entry needs id, file_name, height and width, got {img!r:.200}") from None
            records[rec.image_id] = rec

        for ann in data["annotations"]:
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise self._fail(f"annotation without image_id: {ann!r:.200}")
            if keypoint_cats and ann.get("category_id") not in keypoint_cats:
                continue  # e.g. a full instances file: only keypoint categories are people here
            rec = records.get(ann["image_id"])
            if rec is None:
                raise self._fail(f"annotation {ann.get('id')} refers to unknown image_id {ann['image_id']}")
            if ann.get("iscrowd", 0):
                rec.crowds.append(ann)
                continue
            raw = ann.get("keypoints")
            if raw is None:
                rec.unlabelled.append(ann)
                continue
            kps = np.asarray(raw, dtype=np.float32)
            if kps.size != 3 * k:
                raise self._fail(f"annotation {ann.get('id')} has {kps.size} keypoint values, expected {3 * k}")
            kps = kps.reshape(k, 3)
            if not np.any(kps[:, 2] > 0):
                rec.unlabelled.append(ann)
                continue
            bbox = ann.get("bbox")
            if bbox is None:
                # No box: the labelled keypoints' extent stands in for it.
                pts = kps[kps[:, 2] > 0, :2]
                lo, hi = pts.min(axis=0), pts.max(axis=0)
                bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
            if len(bbox) != 4:
                raise self._fail(f"annotation {ann.get('id')} has bbox {bbox!r}, expected [x, y, w, h]")
            rec.keypoints.append(kps)
            rec.boxes.append([float(v) for v in bbox])
            rec.labelled.append(ann)
        return list(records.values())

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._items)

    @property
    def records(self) -> list:
        """The parsed per-image records (keypoints, boxes, annotations, image size), in item order.

        Reading them decodes no image and no mask, so listing people stays cheap.
        """
        return list(self._items)

    @property
    def image_ids(self) -> list[int]:
        """Image ids of the items, in item order."""
        return [r.image_id for r in self._items]

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._items[index].file_name

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR, as stored (EXIF orientation ignored: annotations use the raw pixels)."""
        rec = self._items[index]
        try:
            return read_image(self.image_dir / rec.file_name, (rec.height, rec.width))
        except ImageReadError as exc:
            raise type(exc)(f"{exc} (image id {rec.image_id} in {self.ann_file})") from None

    def ignore_mask(self, index: int) -> np.ndarray:
        """(H, W) bool, True = ignore: unlabelled people and crowds minus labelled people."""
        rec = self._items[index]
        h, w = rec.height, rec.width
        ignore = np.zeros((h, w), dtype=bool)
        for ann in rec.unlabelled:
            m = annotation_mask(ann, h, w, use_bbox=True)
            if m is not None:
                ignore |= m
        if rec.crowds:
            crowd = np.zeros((h, w), dtype=bool)
            for ann in rec.crowds:
                m = annotation_mask(ann, h, w, use_bbox=True)
                if m is not None:
                    crowd |= m
            for ann in rec.labelled:
                m = annotation_mask(ann, h, w, use_bbox=False)
                if m is not None:
                    crowd &= ~m
            ignore |= crowd
        return ignore

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        rec = self._items[index]
        k = self.skeleton.num_keypoints
        keypoints = np.stack(rec.keypoints) if rec.keypoints else np.zeros((0, k, 3), np.float32)
        boxes = np.asarray(rec.boxes, dtype=np.float32).reshape(-1, 4)
        return Sample(
            image=self.load_image(index),
            keypoints=keypoints.astype(np.float32),
            ignore_mask=self.ignore_mask(index),
            boxes=boxes,
            image_id=rec.image_id,
            file_name=rec.file_name,
        )


# ------------------------------------------------------------------------ training wrapper
class SampleSource(Protocol):
    """Anything indexable that yields :class:`Sample`-like objects (CocoKeypoints, synthetic scenes)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class Encoder(Protocol):
    """The codec contract used here (``BottomUpPafCodec.encode``)."""

    def encode(self, keypoints: np.ndarray, input_hw: tuple[int, int],
               ignore_mask: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]: ...


def choose_main_person(
    rng: np.random.Generator, keypoints: np.ndarray, boxes: np.ndarray | None
) -> tuple[np.ndarray, float] | tuple[None, None]:
    """Pick the person the crop is built around: (centre (x, y), height) in image px.

    Uniform among the people CMU would call "main" (>= 5 labelled keypoints, box >= 32x32 px);
    when none qualifies, the largest box. Without boxes, the labelled keypoints' extent is the
    box. (None, None) when there is nobody.
    """
    n = keypoints.shape[0]
    if n == 0:
        return None, None
    if boxes is None or len(boxes) != n:
        boxes = np.zeros((n, 4), dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float64).copy()
    for i in range(n):
        if boxes[i, 2] <= 0 or boxes[i, 3] <= 0:
            pts = keypoints[i, keypoints[i, :, 2] > 0, :2]
            if len(pts):
                lo, hi = pts.min(axis=0), pts.max(axis=0)
                boxes[i] = [lo[0], lo[1], max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)]
    areas = boxes[:, 2] * boxes[:, 3]
    labelled = (keypoints[:, :, 2] > 0).sum(axis=1)
    main = np.flatnonzero((labelled >= MAIN_MIN_KEYPOINTS) & (areas >= MAIN_MIN_AREA))
    # Exactly one draw whatever the data, so the augmentation draws that follow stay aligned.
    draw = float(rng.random())
    i = int(main[int(draw * len(main))]) if len(main) else int(np.argmax(areas))
    x, y, w, h = boxes[i]
    if w <= 0 or h <= 0:
        return None, None
    return np.array([x + (w - 1) * 0.5, y + (h - 1) * 0.5]), float(h)


class BottomUpTrainDataset(Dataset):
    """Samples -> (network input, codec targets, loss weights) for the bottom-up model.

    ``dataset[i]`` returns ``(image (3, C, C) float32 tensor normalised by
    :func:`~openpose_lite.data.transforms.to_network_input`, targets {"heatmaps": (K+1, h, w),
    "pafs": (2L, h, w)}, weights {"heatmaps": (1, h, w), "pafs": (1, h, w)})``, C the crop size,
    channel counts as the codec gives them.

    ``train=True`` applies the random CMU augmentation around a main person
    (:func:`choose_main_person`); ``train=False`` fits the whole image into the crop, centred,
    without randomness (for a validation loss). Randomness comes from a generator seeded by
    ``(seed, epoch, index)``, so a sample is the same in any worker, in any order; call
    :meth:`set_epoch` before each epoch (with ``persistent_workers=False``, so workers pick it
    up) to get new draws.

    Args:
        source: indexable samples with ``image``, ``keypoints`` (N, K, 3), ``ignore_mask``,
            ``boxes`` (CocoKeypoints, or synthetic scenes with the same fields).
        codec: has ``encode(keypoints, input_hw, ignore_mask) -> (targets, weights)``.
        params: augmentation; ``params.crop_size`` is the network input size in both modes.
        train: augment (True) or deterministic fit-to-crop (False).
        seed: base seed.
        skeleton: the samples' keypoint layout (for the flip's left/right swap).
    """

    def __init__(
        self,
        source: SampleSource | Sequence[Sample],
        codec: Encoder,
        params: AugmentParams,
        train: bool = True,
        seed: int = 0,
        skeleton: Skeleton = COCO_17,
    ) -> None:
        self.source = source
        self.codec = codec
        self.params = params
        self.train = bool(train)
        self.seed = int(seed)
        self.skeleton = skeleton
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (a new augmentation per epoch, reproducibly)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def _matrix(self, rng: np.random.Generator, sample: Any) -> tuple[np.ndarray, bool]:
        h, w = sample.image.shape[:2]
        crop = int(self.params.crop_size)
        if not self.train:
            side = float(max(h, w))
            return crop_affine(np.array([(w - 1) * 0.5, (h - 1) * 0.5]), np.array([side, side]), (crop, crop)), False
        center, height = choose_main_person(rng, np.asarray(sample.keypoints), getattr(sample, "boxes", None))
        return random_affine(rng, (h, w), center, height, self.params)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        sample = self.source[index]
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        matrix, flipped = self._matrix(rng, sample)
        crop = int(self.params.crop_size)
        image, mask, keypoints = warp_sample(
            sample.image, sample.ignore_mask, np.asarray(sample.keypoints, dtype=np.float32),
            matrix, (crop, crop), flipped, self.skeleton,
        )
        targets, weights = self.codec.encode(keypoints, (crop, crop), mask)
        return (
            torch.from_numpy(to_network_input(image)),
            {name: torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)) for name, t in targets.items()},
            {name: torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)) for name, t in weights.items()},
        )
