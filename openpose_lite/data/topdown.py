"""Top-down data: one person per sample, cropped by centre and size, with HRNet's augmentation.

A person's box becomes a crop region at the model's aspect ratio, padded by 1.25
(:func:`~openpose_lite.geometry.box_to_center_scale`); training jitters that region (scale,
rotation, mirror, half body) and :func:`crop_person` warps the image once through the
resulting affine, so pixels and keypoints cannot drift apart. The codec
(:class:`~openpose_lite.codecs.topdown.TopDownHeatmapCodec`) then renders the heatmaps and
the per-keypoint target weights.

Augmentation (Sun et al., HRNet, CVPR 2019, Sec. 4.1 "data augmentation", with the
distributions of its public release; the code here is our own):

* scale: the region's size times ``clip(1 + scale_factor * N(0, 1), 1 - scale_factor,
  1 + scale_factor)``;
* rotation: with probability ``rotation_prob``, ``clip(rotation_deg * N(0, 1),
  -rotation_deg, rotation_deg)`` degrees, i.e. within the paper's [-45, 45] by default (the
  public release's code lets it reach twice ``rotation_deg``), else 0;
* mirror with probability ``flip_prob``: composed into the crop affine, keypoints swap
  left/right with ``Skeleton.flip_permutation``;
* half body: with probability ``half_body_prob``, for a person with more than
  ``half_body_min_keypoints`` labelled keypoints, the region is replaced by a box around the
  upper or the lower body (:func:`half_body_transform`), so the network sees truncated people.

Decisions, stated once:

* Pixels from outside the image are black (0), as the official HRNet training and test code
  fill them; the pretrained weights have only ever seen black borders.
* Unlabelled keypoints (v == 0) stay at (0, 0) with weight 0. Keypoints whose Gaussian does not
  reach into the heatmap get weight 0 (the codec decides, so training and the codec agree).
* Network input (:func:`to_hrnet_input`): RGB in [0, 1], normalised with the ImageNet mean and
  standard deviation, which the official HRNet weights expect.
* Every random draw of a sample comes from a generator seeded by ``(seed, epoch, index)``,
  always in the same order, so a sample is the same in any worker and in any order.

Shape legend: B batch, N people, K keypoints, H x W crop size, h x w heatmap size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from openpose_lite.codecs.topdown import TopDownHeatmapCodec
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.geometry import (
    HRNET,
    OURS,
    box_to_center_scale,
    compose_affine,
    crop_affine,
    hflip_affine,
    transform_keypoints,
)
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = [
    "HALF_BODY_PADDING",
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "PersonInstance",
    "TopDownAugmentParams",
    "TopDownDataset",
    "TopDownInstances",
    "TopDownSample",
    "body_halves",
    "crop_person",
    "detection_instances",
    "half_body_transform",
    "person_instances",
    "sanitize_box",
    "to_hrnet_input",
]

logger = logging.getLogger(__name__)

# ImageNet statistics (RGB, for pixels in [0, 1]): the official HRNet weights were trained on them.
IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# HRNet enlarges the half-body box by 1.5 (instead of the 1.25 box padding): the keypoints'
# extent is tighter than a person box, so it needs more room.
HALF_BODY_PADDING = 1.5

# Fill for crop pixels from outside the image: black, as in HRNet's training and testing.
CROP_PAD_VALUE = 0

# Keypoint-name fragments of the two body halves. Names are matched by fragment, so any
# skeleton that names its keypoints like COCO's (left_eye, right_knee, neck...) works.
_UPPER_BODY_PARTS = ("nose", "neck", "head", "eye", "ear", "shoulder", "elbow", "wrist")
_LOWER_BODY_PARTS = ("hip", "knee", "ankle")


# ------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class TopDownAugmentParams:
    """Top-down training augmentation (HRNet's COCO recipe by default; see the module docstring).

    ``scale_factor``: size multiplier in ``[1 - f, 1 + f]`` (normal, clipped). ``rotation_deg``:
    standard deviation of the rotation, clipped at +-rotation_deg. ``rotation_prob``: probability of
    rotating at all. ``flip_prob``: probability of a mirror. ``half_body_prob``: probability of
    the half-body crop for people with more than ``half_body_min_keypoints`` labelled keypoints.
    ``padding``: box enlargement for the crop region. ``half_body_padding``: enlargement of
    the half-body box.
    """

    scale_factor: float = 0.35
    rotation_deg: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    padding: float = 1.25
    half_body_padding: float = HALF_BODY_PADDING

    def __post_init__(self) -> None:
        if not 0 <= self.scale_factor < 1:
            raise ValueError(f"TopDownAugmentParams.scale_factor: expected a number in [0, 1), got {self.scale_factor!r}")
        if not 0 <= self.rotation_deg <= 90:
            raise ValueError(f"TopDownAugmentParams.rotation_deg: expected a number in [0, 90], got {self.rotation_deg!r}")
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"TopDownAugmentParams.{name}: expected a probability in [0, 1], got {value!r}")
        if int(self.half_body_min_keypoints) != self.half_body_min_keypoints or self.half_body_min_keypoints < 0:
            raise ValueError("TopDownAugmentParams.half_body_min_keypoints: expected a non-negative integer, "
                             f"got {self.half_body_min_keypoints!r}")
        for name in ("padding", "half_body_padding"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TopDownAugmentParams.{name}: expected a positive number, got {value!r}")


# ------------------------------------------------------------------------------ boxes
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


# ------------------------------------------------------------------------------ instances
class PersonInstance(NamedTuple):
    """One person crop to make.

    ``image_index``: index of the image in the image source (e.g. a :class:`CocoKeypoints`
    item). ``keypoints``: (K, 3) x, y, v in image pixels (all zero for a detection).
    ``box``: (4,) sanitised x, y, w, h. ``area``: the annotation's area (segmentation area in
    COCO; box area for detections). ``image_id``: the dataset's image id. ``score``: detector
    score (1 for ground truth).
    """

    image_index: int
    keypoints: np.ndarray
    box: np.ndarray
    area: float
    image_id: int
    score: float = 1.0


def person_instances(coco: CocoKeypoints) -> list[PersonInstance]:
    """The labelled people of a COCO-format file, one :class:`PersonInstance` each.

    Kept: not crowd, at least one labelled keypoint (what :class:`CocoKeypoints` calls a
    labelled person), a positive ``area`` when the annotation has one, and a box that survives
    :func:`sanitize_box`. Keypoints stay in ``coco.skeleton``'s order, in image pixels.
    """
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


def detection_instances(
    coco: CocoKeypoints,
    detections: Iterable[Mapping[str, Any] | Sequence[Any]],
    score_threshold: float = 0.0,
    category_id: int | None = 1,
) -> list[PersonInstance]:
    """People from a detector's boxes, for top-down inference (keypoints all zero).

    Args:
        coco: the images (build it with ``min_people=0`` so images without labelled people
            are there too).
        detections: COCO result dicts (``image_id``, ``bbox`` x, y, w, h, ``score``, optional
            ``category_id``) or ``(image_id, bbox, score)`` tuples.
        score_threshold: detections scoring below this are dropped.
        category_id: keep only dicts with this ``category_id`` (COCO's person is 1); None keeps all.
    Returns:
        one :class:`PersonInstance` per kept detection, in input order; ``area`` is the box area.
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
                raise ValueError(f"detection {n}: expected keys image_id, bbox (and score), got {sorted(det)}") from None
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
    """People to crop and where their images come from.

    Args:
        people: the :class:`PersonInstance` list (from :func:`person_instances`,
            :func:`detection_instances`, or built by hand).
        load_image: image index -> (H, W, 3) uint8 BGR image (e.g. ``CocoKeypoints.load_image``;
            must pickle for DataLoader workers).
        skeleton: the keypoints' layout.
    """

    def __init__(
        self,
        people: Sequence[PersonInstance],
        load_image: Callable[[int], np.ndarray],
        skeleton: Skeleton = COCO_17,
    ) -> None:
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
    def from_detections(
        cls,
        coco: CocoKeypoints,
        detections: Iterable[Mapping[str, Any] | Sequence[Any]],
        score_threshold: float = 0.0,
        category_id: int | None = 1,
    ) -> TopDownInstances:
        """Detected people on ``coco``'s images (:func:`detection_instances`), for inference."""
        return cls(detection_instances(coco, detections, score_threshold, category_id), coco.load_image, coco.skeleton)

    def __len__(self) -> int:
        return len(self.people)

    def __getitem__(self, index: int) -> PersonInstance:
        return self.people[index]

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR image of person ``index``."""
        return self._load_image(self.people[index].image_index)


# ------------------------------------------------------------------------------ geometry
def crop_person(
    image: np.ndarray,
    center: np.ndarray | Sequence[float],
    size_wh: np.ndarray | Sequence[float],
    rotation: float,
    out_hw: tuple[int, int],
    flip: bool = False,
    pad_value: int = CROP_PAD_VALUE,
    convention: str = OURS,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the region of ``size_wh`` (w, h) image px around ``center`` (x, y) into an ``out_hw`` crop.

    The single warp of the top-down branch: training and inference both call it, so their crops
    agree exactly. ``rotation`` (degrees) turns the content counter-clockwise about the centre
    (:func:`~openpose_lite.geometry.crop_affine`); ``flip`` mirrors the crop, composed into the
    same matrix so the image is resampled once.

    Args:
        image: (H, W, 3) (or (H, W)) image.
        center: (2,) region centre in image px.
        size_wh: (2,) region width and height in image px.
        rotation: degrees.
        out_hw: crop (H, W).
        flip: mirror the crop horizontally.
        pad_value: fill for pixels from outside the image.
        convention: ``"openpose_lite"`` or ``"hrnet"`` (geometry.py): where the centre lands, and
            the mirror. The HRNet reference mirrors the image (x -> W_image - 1 - x) before its
            crop, whose centre sits at W / 2, which puts crop pixel u at W - u (not W - 1 - u).
    Returns:
        crop (H, W, 3) with the image's dtype (bilinear), and the (2, 3) float64 affine image px
        -> crop px (mirror included); move keypoints with it, invert it to bring predictions back.
    """
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"crop_person: out_hw must be positive, got {out_hw}")
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] <= 0 or img.shape[1] <= 0:
        raise ValueError(f"crop_person: expected an image of shape (H, W, 3), got {img.shape}")
    size = np.asarray(size_wh, dtype=np.float64).reshape(-1)
    if size.shape != (2,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise ValueError(f"crop_person: size_wh must be two positive numbers (w, h), got {size_wh}")
    ctr = np.asarray(center, dtype=np.float64).reshape(-1)
    if ctr.shape != (2,) or not np.all(np.isfinite(ctr)):
        raise ValueError(f"crop_person: center must be a finite (x, y), got {center}")
    matrix = crop_affine(ctr, size, (out_h, out_w), rotation_deg=float(rotation), convention=convention)
    if flip:
        matrix = compose_affine(hflip_affine(out_w + 1 if convention == HRNET else out_w), matrix)
    channels = 1 if img.ndim == 2 else img.shape[2]
    border = pad_value if channels == 1 else (pad_value,) * min(channels, 4)
    crop = cv2.warpAffine(img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return crop, matrix


def body_halves(skeleton: Skeleton = COCO_17) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the upper-body (head, arms, shoulders) and lower-body (hips, legs) keypoints.

    Derived from the keypoint names; a keypoint that is neither (none in COCO-17) is in no half.
    """
    upper = [i for i, name in enumerate(skeleton.keypoints) if any(p in name for p in _UPPER_BODY_PARTS)]
    lower = [i for i, name in enumerate(skeleton.keypoints)
             if i not in upper and any(p in name for p in _LOWER_BODY_PARTS)]
    if not upper or not lower:
        raise ValueError(f"{skeleton.name}: cannot tell upper from lower body by keypoint names "
                         f"{list(skeleton.keypoints)}")
    return np.array(upper, dtype=np.int64), np.array(lower, dtype=np.int64)


def half_body_transform(
    keypoints: np.ndarray,
    rng: np.random.Generator,
    skeleton: Skeleton = COCO_17,
    aspect_ratio: float = 0.75,
    padding: float = HALF_BODY_PADDING,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A crop region around the upper or the lower body (HRNet's half-body augmentation).

    One half is chosen by a fair coin among the halves with more than two labelled keypoints
    (the other one when the chosen half has too few). The region is centred on the mean of the
    half's labelled keypoints, spans their extent grown to ``aspect_ratio`` (w / h), times
    ``padding``.

    Args:
        keypoints: (K, 3) x, y, v in image px.
        rng: one ``rng.random()`` draw is taken.
        skeleton: names the halves (:func:`body_halves`).
        aspect_ratio: crop width / height.
        padding: enlargement of the keypoints' box (HRNet: 1.5).
    Returns:
        (centre (2,), size (2,) = (w, h)) float64 in image px, or None when no half has two
        labelled keypoints or their extent is under a pixel.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    k = skeleton.num_keypoints
    if kps.shape != (k, 3):
        raise ValueError(f"half_body_transform: expected keypoints of shape ({k}, 3), got {kps.shape}")
    if not aspect_ratio > 0:
        raise ValueError(f"half_body_transform: aspect_ratio must be positive, got {aspect_ratio}")
    upper_ids, lower_ids = body_halves(skeleton)
    labelled = kps[:, 2] > 0
    upper = kps[upper_ids[labelled[upper_ids]], :2]
    lower = kps[lower_ids[labelled[lower_ids]], :2]
    # "More than two" points make a box with some extent in both directions most of the time.
    if rng.random() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    center = selected.mean(axis=0)
    w, h = selected.max(axis=0) - selected.min(axis=0)
    if max(w, h) < 1.0:
        return None
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float64) * padding


# ------------------------------------------------------------------------------ network input
def to_hrnet_input(image_bgr: np.ndarray) -> np.ndarray:
    """HRNet's input normalisation: BGR uint8 -> RGB / 255, ImageNet mean/std, channels first.

    (H, W, 3) -> (3, H, W) float32, or a batch (B, H, W, 3) -> (B, 3, H, W).
    """
    arr = np.asarray(image_bgr)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"to_hrnet_input: expected a BGR image (H, W, 3) or batch (B, H, W, 3), got {arr.shape}")
    rgb = arr[..., ::-1].astype(np.float32) / 255.0
    out = (rgb - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))


# ------------------------------------------------------------------------------ dataset
@dataclass(eq=False)
class TopDownSample:
    """One prepared crop, before tensor conversion (for inspection, drawing and tests).

    ``image`` (H, W, 3) uint8 BGR crop; ``keypoints`` (K, 3) x, y, v in crop px (mirrored and
    left/right swapped when ``flipped``; unlabelled at (0, 0)); ``heatmaps`` (K, h, w) and
    ``target_weights`` (K,) from the codec; ``matrix`` (2, 3) image px -> crop px; the crop
    region ``center`` (2,), ``size`` (2,) = (w, h) in image px and ``rotation`` in degrees.
    """

    image: np.ndarray
    keypoints: np.ndarray
    heatmaps: np.ndarray
    target_weights: np.ndarray
    matrix: np.ndarray
    center: np.ndarray
    size: np.ndarray
    rotation: float
    flipped: bool
    half_body: bool


class TopDownDataset(Dataset):
    """People -> (crop, heatmap targets, per-keypoint target weights) for HRNet-style training.

    ``dataset[i]`` returns ``(image (3, H, W) float32 tensor normalised by
    :func:`to_hrnet_input`, {"heatmaps": (K, h, w) float32}, {"heatmaps": (K, 1, 1) float32})``;
    the weights broadcast against the heatmaps and feed
    :func:`~openpose_lite.losses.keypoint_mse_loss` (which accepts (B, K, 1, 1)).

    ``train=True`` draws the augmentation of the module docstring; ``train=False`` crops the box
    (padded, at the aspect ratio) without randomness. Call :meth:`set_epoch` before each epoch
    (with ``persistent_workers=False``, so workers pick it up) to get new draws.

    Args:
        instances: the people and their images (:class:`TopDownInstances`).
        codec: crop size, heatmap size, sigma; its skeleton must be the instances'.
        params: augmentation (its ``padding`` is used in both modes).
        train: augment (True) or deterministic box crop (False).
        seed: base seed.
    """

    def __init__(
        self,
        instances: TopDownInstances,
        codec: TopDownHeatmapCodec,
        params: TopDownAugmentParams | None = None,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        if codec.skeleton.num_keypoints != instances.skeleton.num_keypoints:
            raise ValueError(f"TopDownDataset: codec skeleton {codec.skeleton.name} does not match the "
                             f"instances' {instances.skeleton.name}")
        self.instances = instances
        self.codec = codec
        self.params = params or TopDownAugmentParams()
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        h, w = codec.input_hw
        self.aspect_ratio = w / h

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (a new augmentation per epoch, reproducibly)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.instances)

    def _region(self, rng: np.random.Generator, person: PersonInstance) -> tuple[np.ndarray, np.ndarray, float, bool, bool]:
        """Crop region (centre, size), rotation, mirror and whether the half-body crop was used."""
        p = self.params
        center, size = box_to_center_scale(person.box, self.aspect_ratio, p.padding, self.codec.convention)
        if not self.train:
            return center, size, 0.0, False, False
        # The five draws always happen, in this order, so later ones do not depend on the data.
        u_half, z_scale, u_rotate, z_rotate, u_flip = (
            rng.random(), rng.standard_normal(), rng.random(), rng.standard_normal(), rng.random()
        )
        half_body = False
        labelled = int(np.count_nonzero(np.asarray(person.keypoints)[:, 2] > 0))
        if u_half < p.half_body_prob and labelled > p.half_body_min_keypoints:
            region = half_body_transform(person.keypoints, rng, self.codec.skeleton, self.aspect_ratio,
                                         p.half_body_padding)
            if region is not None:
                center, size = region
                half_body = True
        size = size * float(np.clip(1.0 + p.scale_factor * z_scale, 1.0 - p.scale_factor, 1.0 + p.scale_factor))
        rotation = 0.0
        if u_rotate < p.rotation_prob:
            rotation = float(np.clip(p.rotation_deg * z_rotate, -p.rotation_deg, p.rotation_deg))
        return center, size, rotation, bool(u_flip < p.flip_prob), half_body

    def sample(self, index: int) -> TopDownSample:
        """The prepared crop of person ``index`` for the current epoch (what ``dataset[index]`` tensorises)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} people")
        index %= len(self)
        person = self.instances[index]
        image = self.instances.load_image(index)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        center, size, rotation, flipped, half_body = self._region(rng, person)
        crop, matrix = crop_person(image, center, size, rotation, self.codec.input_hw, flip=flipped,
                                   convention=self.codec.convention)
        keypoints = transform_keypoints(matrix, np.asarray(person.keypoints, dtype=np.float32)[None])[0]
        keypoints[keypoints[:, 2] <= 0, :2] = 0.0  # unlabelled points carry no position
        if flipped:
            # After a mirror, the person's left wrist sits where a right wrist would.
            keypoints = np.ascontiguousarray(keypoints[self.codec.skeleton.flip_permutation])
        heatmaps, weights = self.codec.encode(keypoints)
        return TopDownSample(crop, keypoints, heatmaps, weights, matrix, center, size, rotation, flipped, half_body)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        s = self.sample(index)
        return (
            torch.from_numpy(to_hrnet_input(s.image)),
            {"heatmaps": torch.from_numpy(np.ascontiguousarray(s.heatmaps, dtype=np.float32))},
            {"heatmaps": torch.from_numpy(np.ascontiguousarray(s.target_weights, dtype=np.float32).reshape(-1, 1, 1))},
        )
