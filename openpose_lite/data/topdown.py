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
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from openpose_lite.codecs.topdown import TopDownHeatmapCodec
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.data.transforms import HALF_BODY_PADDING, TopDownAugmentParams
from openpose_lite.geometry import (
    box_to_center_scale,
    transform_keypoints,
)
from openpose_lite.inference.boxes import sanitize_box
from openpose_lite.preprocess import crop_person, to_hrnet_input
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = [
    "HALF_BODY_PADDING",
    "PersonInstance",
    "TopDownAugmentParams",
    "TopDownDataset",
    "TopDownInstances",
    "TopDownSample",
    "body_halves",
    "detection_instances",
    "half_body_transform",
    "person_instances",
]

logger = logging.getLogger(__name__)

# Keypoint-name fragments of the two body halves. Names are matched by fragment, so any
# skeleton that names its keypoints like COCO's (left_eye, right_knee, neck...) works.
_UPPER_BODY_PARTS = ("nose", "neck", "head", "eye", "ear", "shoulder", "elbow", "wrist")
_LOWER_BODY_PARTS = ("hip", "knee", "ankle")


# ------------------------------------------------------------------------------ boxes
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
        targets, target_weights = self.codec.encode(keypoints)
        heatmaps, weights = targets["heatmaps"], target_weights["heatmaps"].reshape(-1)
        return TopDownSample(crop, keypoints, heatmaps, weights, matrix, center, size, rotation, flipped, half_body)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        s = self.sample(index)
        return (
            torch.from_numpy(to_hrnet_input(s.image)),
            {"heatmaps": torch.from_numpy(np.ascontiguousarray(s.heatmaps, dtype=np.float32))},
            {"heatmaps": torch.from_numpy(np.ascontiguousarray(s.target_weights, dtype=np.float32).reshape(-1, 1, 1))},
        )
