"""Training augmentation: the CMU (bottom-up) and HRNet (top-down) parameter sets and samplers.

Training draws **one** affine per sample (scale relative to the main person, rotation,
centre jitter, square crop, optional mirror) and pushes the image, the ignore mask and the
keypoints through that same matrix, so they cannot drift apart. All matrices follow the
convention of :mod:`openpose_lite.geometry` (pixel centres at integers, 2x3 maps source ->
crop), which is also ``cv2.warpAffine``'s.

Decisions, stated once:

* Border: crop pixels that fall outside the source image are filled with gray 128 (CMU), which
  the network input normalisation maps to ~0; in the ignore mask they are **not ignored**. No
  person can be there, so "no part, no limb" is the correct target, and it teaches the network
  that padding is background (CMU pads its ``mask_miss`` with "valid" as well).
* Keypoints that land outside the crop keep their visibility flag. A limb from a visible wrist
  to an elbow just outside the crop still has a PAF segment inside it, and a Gaussian centred
  just outside still has a tail inside; the codec clips to the map.
* Unlabelled keypoints (v == 0) are left at (0, 0) after the warp, the COCO convention.
* A mirrored sample swaps left and right keypoints (``Skeleton.flip_permutation``): after a
  mirror, the person's left wrist sits where a right wrist would.

Shape legend: N people, K keypoints, H x W image size.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass

import numpy as np

from openpose_lite.geometry import (
    compose_affine,
    crop_affine,
    hflip_affine,
    transform_keypoints,
)
from openpose_lite.params import Params
from openpose_lite.preprocess import PAD_VALUE, warp_image
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = [
    "AugmentParams",
    "HALF_BODY_PADDING",
    "TopDownAugmentParams",
    "random_affine",
    "warp_sample",
]

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
    """Top-down training augmentation (HRNet's COCO recipe; part of the ``topdown`` config section).

    ``scale_factor``: size multiplier in ``[1 - f, 1 + f]`` (normal, clipped). ``rotation_deg``:
    standard deviation of the rotation, clipped at +-rotation_deg. ``rotation_prob``: probability of
    rotating at all. ``flip_prob``: probability of a mirror. ``half_body_prob``: probability of
    the half-body crop for people with more than ``half_body_min_keypoints`` labelled keypoints.
    ``padding``: box enlargement for the crop region (training and inference). ``half_body_padding``:
    enlargement of the half-body box.
    """

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


def random_affine(
    rng: np.random.Generator,
    image_hw: tuple[int, int],
    main_center: np.ndarray | tuple[float, float] | None,
    main_height: float | None,
    params: AugmentParams,
) -> tuple[np.ndarray, bool]:
    """Draw the CMU augmentation for one sample as a single 2x3 affine image -> crop.

    The main person (centre ``main_center`` (x, y), height ``main_height`` in image pixels,
    e.g. its box) is scaled by ``target_person_scale * crop_size / main_height * U[scale_min,
    scale_max]``, rotated by ``U[-rotation_deg, rotation_deg]`` about its centre, placed at the
    crop centre shifted by ``U[-center_jitter_px, center_jitter_px]`` per axis, and the result
    mirrored with probability ``flip_prob``. Without a main person (``None``), the whole image
    is scaled to fit the crop and centred instead.

    The four draws always happen in the same order, so a seeded ``rng`` gives the same sample.

    Returns:
        (matrix (2, 3) float64 image px -> crop px, flipped). The mirror is already inside
        ``matrix``; ``flipped`` tells :func:`warp_sample` to swap left/right keypoints.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"random_affine: image_hw must be positive, got {image_hw}")
    crop = int(params.crop_size)
    multiplier = float(rng.uniform(params.scale_min, params.scale_max))
    angle = float(rng.uniform(-params.rotation_deg, params.rotation_deg))
    jitter = rng.uniform(-1.0, 1.0, size=2) * params.center_jitter_px
    flipped = bool(rng.random() < params.flip_prob)

    if main_center is None:
        center = np.array([(w - 1) * 0.5, (h - 1) * 0.5])
    else:
        center = np.asarray(main_center, dtype=np.float64).reshape(2)
        if not np.all(np.isfinite(center)):
            raise ValueError(f"random_affine: main_center must be finite, got {main_center}")
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


def warp_sample(
    image: np.ndarray,
    mask: np.ndarray | None,
    keypoints: np.ndarray,
    matrix: np.ndarray,
    out_hw: tuple[int, int],
    flipped: bool,
    skeleton: Skeleton = COCO_17,
    pad_value: int = PAD_VALUE,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Push an image, its ignore mask and its keypoints through one affine.

    Args:
        image: (H, W, 3) uint8 BGR (any channel count works).
        mask: (H, W) ignore mask, nonzero = ignore, or None.
        keypoints: (N, K, 3) x, y, v in image pixels, K = ``skeleton.num_keypoints``.
        matrix: (2, 3) image -> output affine (from :func:`random_affine`).
        out_hw: output (height, width).
        flipped: the matrix contains a mirror; left/right keypoints are swapped.
        skeleton: the keypoints' skeleton (its flip permutation is used).
        pad_value: fill for image pixels from outside the source.

    Returns:
        image (h, w, 3) uint8 (bilinear), mask (h, w) bool or None (bilinear then >= 0.5, so
        its outline follows the image; outside the source = not ignored), keypoints (N, K, 3)
        float32 in output pixels (see the module docstring for points outside the crop).
    """
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"warp_sample: expected a 2x3 matrix, got shape {m.shape}")
    if image.ndim not in (2, 3):
        raise ValueError(f"warp_sample: expected an image of shape (H, W, 3), got {image.shape}")
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

    out_kps = transform_keypoints(m, kps)
    out_kps[out_kps[..., 2] <= 0, :2] = 0.0  # unlabelled points carry no position
    if flipped:
        out_kps = np.ascontiguousarray(out_kps[:, skeleton.flip_permutation])
    return out_image, out_mask, out_kps


