"""Training augmentation: the CMU (bottom-up) and HRNet (top-down) parameter sets, their two samplers, one warp.

Training draws **one** affine per sample (2x3, source -> crop, pixel centres at integers as in
:mod:`openpose_lite.geometry` and ``cv2.warpAffine``) and pushes the image, the ignore mask and the
keypoints through it (:func:`warp_sample`), so they cannot drift apart.

* bottom-up (Cao et al., CMU's training code): :func:`choose_main_person` picks whom the crop is built
  around, :func:`random_affine` draws scale relative to that person, rotation, centre jitter and mirror;
* top-down (Sun et al., HRNet, CVPR 2019, Sec. 4.1, with the distributions of its public release; the
  code here is our own): :func:`random_region` jitters a person's crop region
  (:func:`~openpose_lite.geometry.box_to_center_scale`): size times ``clip(1 + scale_factor * N(0, 1),
  1 - scale_factor, 1 + scale_factor)``; with probability ``rotation_prob`` a rotation of
  ``clip(rotation_deg * N(0, 1), -rotation_deg, rotation_deg)`` degrees (the paper's [-45, 45] by default;
  the public release's code lets it reach twice ``rotation_deg``); a mirror with probability
  ``flip_prob``; with probability ``half_body_prob``, for a person with more than
  ``half_body_min_keypoints`` labelled keypoints, a box around the upper or the lower body
  (:func:`half_body_transform`), so the network sees truncated people.

Every sampler takes its draws in the same order whatever the data, so a generator seeded per sample
gives the same sample in any worker and in any order.

Decisions, stated once:

* Border (bottom-up): gray 128 (CMU), which the input normalisation maps to ~0, and **not ignored** in
  the mask: no person can be there, so "no part, no limb" is the correct target (CMU pads its
  ``mask_miss`` with "valid" as well). Border (top-down): black (0), as HRNet's training and test code.
* Keypoints that land outside the crop keep their visibility flag: a limb to an elbow just outside
  still has a PAF segment inside, a Gaussian centred just outside a tail inside; the codec clips.
* Unlabelled keypoints (v == 0) are left at (0, 0) after the warp, the COCO convention.
* A mirrored sample swaps left and right keypoints (``Skeleton.flip_permutation``).

Shape legend: N people, K keypoints, H x W image size.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from openpose_lite.geometry import compose_affine, crop_affine, hflip_affine, transform_keypoints
from openpose_lite.params import Params
from openpose_lite.preprocess import PAD_VALUE, warp_image
from openpose_lite.skeleton import COCO_17, Skeleton
from openpose_lite.structures import zero_missing_keypoints

__all__ = ["AugmentParams", "HALF_BODY_PADDING", "Region", "TopDownAugmentParams", "body_halves",
           "choose_main_person", "half_body_transform", "random_affine", "random_region", "warp_sample"]

# CMU picks as "main" (crop-centre) people those with >= 5 labelled keypoints and a box of
# at least 32 x 32 px; centring on tinier people would blow them up to blurry giants.
MAIN_MIN_KEYPOINTS = 5
MAIN_MIN_AREA = 32.0 * 32.0

# Keypoint-name fragments of the two body halves, matched case-insensitively, so any skeleton
# that names its keypoints like COCO's (left_eye, right_knee, neck...) or like the animal sets
# (AP-10K's left_back_paw, root_of_tail; Animal-Pose's L_F_Knee, Withers) works. A quadruped's
# front is its "upper" half, its back and tail the "lower" one, as mmpose's metainfo types them;
# the front/back words decide first (a front knee is upper), then the body parts.
_FRONT_BACK = (("upper", ("front",), {"f"}), ("lower", ("back", "hind"), {"b"}))
_BODY_PARTS = (("lower", ("hip", "knee", "ankle", "tail")),
               ("upper", ("nose", "neck", "head", "eye", "ear", "shoulder", "elbow", "wrist", "throat", "withers")))


@dataclass(frozen=True)
class AugmentParams(Params):
    """Bottom-up training augmentation (the CMU recipe; part of the ``data`` config section).

    ``crop_size``: square training crop. ``target_person_scale``: the main person's height
    becomes this fraction of ``crop_size``, times a factor uniform in [``scale_min``,
    ``scale_max``] (CMU: 0.6, [0.5, 1.1]). ``rotation_deg``: rotation uniform in +-this.
    ``center_jitter_px``: crop centre shift uniform in +-this per axis, in crop pixels.
    ``flip_prob``: probability of a mirror.
    """

    _section: typing.ClassVar[str] = "data"

    crop_size: int = 368
    scale_min: float = 0.5
    scale_max: float = 1.1
    target_person_scale: float = 0.6
    rotation_deg: float = 40.0
    center_jitter_px: float = 40.0
    flip_prob: float = 0.5

    def _check(self) -> None:
        self._require(self.crop_size >= 1, "crop_size", "an integer >= 1")
        self._require(0 < self.scale_min, "scale_min", "a number > 0")
        self._require(self.scale_min <= self.scale_max, "scale_max", f"a number >= data.scale_min ({self.scale_min})")
        self._require(self.target_person_scale > 0, "target_person_scale", "a number > 0")
        self._require(0 <= self.rotation_deg <= 180, "rotation_deg", "a number in [0, 180]")
        self._require(self.center_jitter_px >= 0, "center_jitter_px", "a number >= 0")
        self._require(0 <= self.flip_prob <= 1, "flip_prob", "a number in [0, 1]")


# HRNet enlarges the half-body box by 1.5 (instead of the 1.25 box padding): the keypoints'
# extent is tighter than a person box, so it needs more room.
HALF_BODY_PADDING = 1.5


@dataclass(frozen=True)
class TopDownAugmentParams(Params):
    """Top-down training augmentation (HRNet's COCO recipe, as the module docstring draws it; part of the
    ``topdown`` config section). ``padding``: box enlargement for the crop region (training and inference);
    ``half_body_padding``: that of the half-body box."""

    _section: typing.ClassVar[str] = "topdown"

    scale_factor: float = 0.35
    rotation_deg: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    padding: float = 1.25
    half_body_padding: float = HALF_BODY_PADDING

    def _check(self) -> None:
        self._require(0 <= self.scale_factor < 1, "scale_factor", "a number in [0, 1)")
        self._require(0 <= self.rotation_deg <= 90, "rotation_deg", "a number in [0, 90]")
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            self._require(0 <= getattr(self, name) <= 1, name, "a probability in [0, 1]")
        self._require(self.half_body_min_keypoints >= 0, "half_body_min_keypoints", "an integer >= 0")
        self._require(math.isfinite(self.padding) and self.padding >= 1, "padding", "a number >= 1")
        self._require(math.isfinite(self.half_body_padding) and self.half_body_padding > 0,
                      "half_body_padding", "a number > 0")


# ------------------------------------------------------------------------------ bottom-up sampler
def choose_main_person(rng: np.random.Generator, keypoints: np.ndarray,
                       boxes: np.ndarray | None) -> tuple[np.ndarray, float] | tuple[None, None]:
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


def random_affine(rng: np.random.Generator, image_hw: tuple[int, int], main_center: np.ndarray | None,
                  main_height: float | None, params: AugmentParams) -> tuple[np.ndarray, bool]:
    """Draw the CMU augmentation for one sample: (matrix (2, 3) float64 image px -> crop px, flipped).

    The main person (centre ``main_center`` (x, y), height ``main_height`` in image px) is scaled by
    ``target_person_scale * crop_size / main_height * U[scale_min, scale_max]``, rotated by
    ``U[-rotation_deg, rotation_deg]`` about its centre, placed at the crop centre shifted by
    ``U[-center_jitter_px, center_jitter_px]`` per axis, and the result mirrored with probability
    ``flip_prob`` (inside ``matrix``; ``flipped`` tells :func:`warp_sample` to swap left and right).
    Without a main person (``None``), the whole image is scaled to fit the crop and centred instead.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    crop = int(params.crop_size)
    multiplier = float(rng.uniform(params.scale_min, params.scale_max))
    angle = float(rng.uniform(-params.rotation_deg, params.rotation_deg))
    jitter = rng.uniform(-1.0, 1.0, size=2) * params.center_jitter_px
    flipped = bool(rng.random() < params.flip_prob)

    if main_center is None:
        center = np.array([(w - 1) * 0.5, (h - 1) * 0.5])
    else:
        center = np.asarray(main_center, dtype=np.float64).reshape(2)
    if main_height is None or not math.isfinite(main_height) or main_height <= 0:
        scale = crop / max(h, w) * multiplier
    else:
        # CMU: scale_abs = target_dist / (person height / crop size), times the random multiplier.
        scale = params.target_person_scale * crop / float(main_height) * multiplier
    side = crop / scale  # the source square, in image px, that fills the crop
    matrix = crop_affine(center, np.array([side, side]), (crop, crop), rotation_deg=angle)
    # CMU perturbs the crop centre after scaling, so the jitter is in crop pixels.
    matrix[:, 2] += jitter
    if flipped:
        matrix = compose_affine(hflip_affine(crop), matrix)
    return matrix, flipped


# ------------------------------------------------------------------------------ top-down sampler
class Region(NamedTuple):
    """A person's crop region: ``center`` (2,) and ``size`` (2,) = (w, h) in image px, the
    ``rotation`` in degrees, whether the crop is ``flipped`` and whether it is a ``half_body`` one."""

    center: np.ndarray
    size: np.ndarray
    rotation: float = 0.0
    flipped: bool = False
    half_body: bool = False


def _half(name: str) -> str | None:
    """"upper", "lower" or None for a keypoint name (see _FRONT_BACK and _BODY_PARTS)."""
    text = name.lower()
    words = set(re.split(r"[^a-z0-9]+", text))
    for half, fragments, letters in _FRONT_BACK:
        if words & letters or any(f in text for f in fragments):
            return half
    return next((half for half, parts in _BODY_PARTS if any(p in text for p in parts)), None)


def body_halves(skeleton: Skeleton = COCO_17) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the upper-body (head, arms, shoulders; a quadruped's front) and lower-body (hips, legs;
    its back and tail) keypoints, from the keypoint names (names that tell no halves: two empty ones)."""
    halves = [_half(name) for name in skeleton.keypoints]
    upper = [i for i, h in enumerate(halves) if h == "upper"]
    lower = [i for i, h in enumerate(halves) if h == "lower"]
    return np.array(upper, dtype=np.int64), np.array(lower, dtype=np.int64)


def half_body_transform(keypoints: np.ndarray, rng: np.random.Generator, skeleton: Skeleton = COCO_17,
                        aspect_ratio: float = 0.75, padding: float = HALF_BODY_PADDING
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """A crop region around the upper or the lower body (HRNet's half-body augmentation) of ``keypoints``
    (K, 3) x, y, v in image px: (centre (2,), size (2,) = (w, h)) float64 in image px, or None when no
    half has two labelled keypoints or their extent is under a pixel.

    One half is chosen by a fair coin (one ``rng.random()`` draw) among the halves with more than two
    labelled keypoints. The region is centred on the mean of the half's labelled keypoints and spans
    their extent grown to ``aspect_ratio`` (w / h), times ``padding``.
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


def random_region(rng: np.random.Generator, region: Region, keypoints: np.ndarray, params: TopDownAugmentParams,
                  aspect_ratio: float, skeleton: Skeleton = COCO_17) -> Region:
    """Draw HRNet's augmentation (the module docstring's recipe) of one person's unaugmented crop ``region``;
    ``keypoints`` (K, 3) x, y, v in image px, for the half-body crop."""
    p = params
    center, size = region.center, region.size
    # The five draws always happen, in this order, so later ones do not depend on the data.
    u_half, z_scale, u_rotate, z_rotate, u_flip = (
        rng.random(), rng.standard_normal(), rng.random(), rng.standard_normal(), rng.random()
    )
    half_body = False
    labelled = int(np.count_nonzero(np.asarray(keypoints)[:, 2] > 0))
    if u_half < p.half_body_prob and labelled > p.half_body_min_keypoints:
        half = half_body_transform(keypoints, rng, skeleton, aspect_ratio, p.half_body_padding)
        if half is not None:
            center, size = half
            half_body = True
    size = size * float(np.clip(1.0 + p.scale_factor * z_scale, 1.0 - p.scale_factor, 1.0 + p.scale_factor))
    rotation = 0.0
    if u_rotate < p.rotation_prob:
        rotation = float(np.clip(p.rotation_deg * z_rotate, -p.rotation_deg, p.rotation_deg))
    return Region(center, size, rotation, bool(u_flip < p.flip_prob), half_body)


# ------------------------------------------------------------------------------ the one warp
def warp_sample(image: np.ndarray, mask: np.ndarray | None, keypoints: np.ndarray, matrix: np.ndarray,
                out_hw: tuple[int, int], flipped: bool, skeleton: Skeleton = COCO_17,
                pad_value: int = PAD_VALUE) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Push an image (H, W, 3) uint8, its ignore mask (H, W), nonzero = ignore, or None, and its keypoints
    (N, K, 3) x, y, v in image px through one (2, 3) affine ``matrix`` image -> output (size ``out_hw``);
    ``flipped``: the matrix holds a mirror, so left and right keypoints are swapped.

    Returns image (h, w, 3) uint8 (bilinear, ``pad_value`` outside the source), mask (h, w) bool or None
    (bilinear then >= 0.5, so its outline follows the image; outside the source = not ignored),
    keypoints (N, K, 3) float32 in output px.
    """
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    m = np.asarray(matrix, dtype=np.float64)
    kps = np.asarray(keypoints, dtype=np.float32)
    k = skeleton.num_keypoints
    if kps.ndim != 3 or kps.shape[1:] != (k, 3):
        raise ValueError(f"warp_sample: expected keypoints of shape (N, {k}, 3) for {skeleton.name}, got {kps.shape}")

    out_image = warp_image(image, m, (out_h, out_w), pad_value)

    out_mask = None
    if mask is not None:
        if mask.shape != image.shape[:2]:
            raise ValueError(f"warp_sample: mask shape {mask.shape} != image size {image.shape[:2]}")
        # Bilinear then threshold at one half: the same outline the image's edges take.
        src = (np.asarray(mask) != 0).astype(np.uint8) * 255
        out_mask = warp_image(src, m, (out_h, out_w), 0) >= 128

    out_kps = zero_missing_keypoints(transform_keypoints(m, kps))  # unlabelled points carry no position
    if flipped:
        out_kps = np.ascontiguousarray(out_kps[:, skeleton.flip_permutation])
    return out_image, out_mask, out_kps


