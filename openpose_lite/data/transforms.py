"""Image-space transforms: the CMU training augmentation, the eval letterbox, the input normalisation.

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
from dataclasses import dataclass

import cv2
import numpy as np

from openpose_lite.geometry import (
    compose_affine,
    crop_affine,
    hflip_affine,
    letterbox_affine,
    transform_keypoints,
)
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = [
    "AugmentParams",
    "PAD_VALUE",
    "letterbox",
    "random_affine",
    "to_network_input",
    "warp_sample",
]

# Gray fill for pixels outside the source image (CMU); (128 / 256 - 0.5) = 0 after normalisation.
PAD_VALUE = 128


@dataclass(frozen=True)
class AugmentParams:
    """Training augmentation parameters (field names match ``DataConfig``'s).

    ``target_person_scale``: the main person's height becomes this fraction of ``crop_size``,
    times a factor uniform in [``scale_min``, ``scale_max``] (CMU: 0.6, [0.5, 1.1]).
    ``rotation_deg``: rotation uniform in ±this. ``center_jitter_px``: crop centre shift
    uniform in ±this per axis, in crop pixels. ``flip_prob``: probability of a mirror.
    """

    crop_size: int = 368
    scale_min: float = 0.5
    scale_max: float = 1.1
    target_person_scale: float = 0.6
    rotation_deg: float = 40.0
    center_jitter_px: float = 40.0
    flip_prob: float = 0.5

    def __post_init__(self) -> None:
        if int(self.crop_size) != self.crop_size or self.crop_size < 1:
            raise ValueError(f"AugmentParams.crop_size: expected a positive integer, got {self.crop_size!r}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"AugmentParams: expected 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        if not self.target_person_scale > 0:
            raise ValueError(f"AugmentParams.target_person_scale: expected > 0, got {self.target_person_scale}")
        if not 0 <= self.rotation_deg <= 180:
            raise ValueError(f"AugmentParams.rotation_deg: expected a number in [0, 180], got {self.rotation_deg}")
        if not self.center_jitter_px >= 0:
            raise ValueError(f"AugmentParams.center_jitter_px: expected >= 0, got {self.center_jitter_px}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"AugmentParams.flip_prob: expected a number in [0, 1], got {self.flip_prob}")


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

    channels = 1 if image.ndim == 2 else image.shape[2]
    border = pad_value if channels == 1 else (pad_value,) * min(channels, 4)
    out_image = cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=border)

    out_mask = None
    if mask is not None:
        if mask.shape != image.shape[:2]:
            raise ValueError(f"warp_sample: mask shape {mask.shape} != image size {image.shape[:2]}")
        # Bilinear then threshold at one half: the same outline the image's edges take.
        src = (np.asarray(mask) != 0).astype(np.uint8) * 255
        warped = cv2.warpAffine(src, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out_mask = warped >= 128

    out_kps = transform_keypoints(m, kps)
    out_kps[out_kps[..., 2] <= 0, :2] = 0.0  # unlabelled points carry no position
    if flipped:
        out_kps = np.ascontiguousarray(out_kps[:, skeleton.flip_permutation])
    return out_image, out_mask, out_kps


def letterbox(
    image: np.ndarray, target_height: int, stride: int, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, np.ndarray]:
    """Eval preprocessing (CMU demo): resize to ``target_height`` keeping the aspect ratio
    (bicubic), pad right/bottom with ``pad_value`` to multiples of ``stride``.

    Returns (network image (h, w, 3) uint8, matrix (2, 3) image px -> network px), the matrix
    from :func:`openpose_lite.geometry.letterbox_affine`; invert it to bring predictions back.
    """
    if image.ndim not in (2, 3) or image.shape[0] <= 0 or image.shape[1] <= 0:
        raise ValueError(f"letterbox: expected an image of shape (H, W, 3), got {image.shape}")
    matrix, (pad_h, pad_w) = letterbox_affine(image.shape[:2], target_height, stride)
    s = float(matrix[0, 0])
    # fx=fy=s (not a target size) so OpenCV uses exactly the scale the matrix encodes.
    resized = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    out = np.full((pad_h, pad_w) + image.shape[2:], pad_value, dtype=image.dtype)
    h, w = min(pad_h, resized.shape[0]), min(pad_w, resized.shape[1])
    out[:h, :w] = resized[:h, :w]
    return out, matrix


def to_network_input(image_bgr: np.ndarray) -> np.ndarray:
    """The CMU input normalisation: BGR uint8 -> float32 ``x / 256 - 0.5``, channels first.

    (H, W, 3) -> (3, H, W), or a batch (B, H, W, 3) -> (B, 3, H, W). The one place this is
    written; training and prediction both call it, so the public CMU weights see what they
    were trained on.
    """
    arr = np.asarray(image_bgr)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"to_network_input: expected a BGR image (H, W, 3) or batch (B, H, W, 3), got {arr.shape}")
    out = arr.astype(np.float32) / 256.0 - 0.5
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))
