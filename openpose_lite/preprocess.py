"""Network inputs: the letterbox and person-crop warps, and the input normalisations.

Inference and training both build their inputs here, so a model sees at test time exactly the
pixels it was trained on:

* Bottom-up: :func:`letterbox` (resize to the input height, pad right/bottom with gray
  :data:`PAD_VALUE`; within an :class:`InputBound`, which also names the degenerate images no
  input is made of).
* Top-down: :func:`crop_person` (one affine per person region, black :data:`CROP_PAD_VALUE`
  outside the image).
* Normalisations by name (``model.input_norm``, :func:`normalise_input`): ``cmu``
  (:func:`to_network_input`, BGR ``x / 256 - 0.5``, the CMU and Lightweight OpenPose models),
  ``imagenet_rgb`` and ``imagenet_bgr`` (:func:`to_imagenet_input`: HRNet's and mmpose's RGB,
  and the SimpleBaseline reference's BGR).

:func:`warp_image` is the one ``cv2.warpAffine`` call both training augmentations and the
crops go through. Shape legend: B batch, H x W image size.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from openpose_lite.geometry import HRNET, OURS, compose_affine, crop_affine, hflip_affine, letterbox_affine
from openpose_lite.params import Params

__all__ = ["CROP_PAD_VALUE", "DEFAULT_INPUT_BOUND", "INPUT_NORMALISERS", "IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB",
           "InputBound", "PAD_VALUE", "as_bgr", "crop_person", "letterbox", "person_crop_affine", "normalise_input",
           "to_imagenet_input", "to_network_input", "warp_image"]

# ----------------------------------------------------------------------------- bottom-up
# Gray fill for pixels outside the source image (CMU); (128 / 256 - 0.5) = 0 after normalisation.
PAD_VALUE = 128


@dataclass(frozen=True)
class InputBound(Params):
    """How large, and how far from square, a bottom-up network input may be.

    Letterboxing fixes the height, so unbounded a 1 x 2000 image would be a 368 x 736000 input. An input
    beyond ``max_side`` or ``max_pixels`` is scaled less, just enough to fit (:func:`letterbox`). The defaults
    hold CMU's 368 px at the 2x multi-scale test (736 x 981 for a 640 x 480 photo: 0.72 MP) and 8:1
    panoramas: ``max_side`` 2944 = 8 x 368, ``max_pixels`` 2**21. Degenerate images are refused
    (:meth:`problem`): aspect beyond ``max_aspect``:1, or a side under ``min_side`` px once scaled.
    """

    _section: typing.ClassVar[str] = "input_bound"

    max_side: int = 2944
    max_pixels: int = 2**21
    min_side: int = 4
    max_aspect: float = 32.0

    def _check(self) -> None:
        self._require(self.max_side >= 8, "max_side", "an integer >= 8 (pixels)")
        self._require(self.max_pixels >= 64, "max_pixels", "an integer >= 64")
        self._require(self.min_side >= 1, "min_side", "an integer >= 1 (pixels)")
        self._require(self.max_aspect >= 1, "max_aspect", "a number >= 1")

    def problem(self, image_hw: tuple[int, int], heights: Sequence[int]) -> str | None:
        """Why an image of ``image_hw`` cannot be letterboxed to each of ``heights``, or None when it can."""
        h, w = int(image_hw[0]), int(image_hw[1])
        if h < 1 or w < 1:
            return f"empty image ({w}x{h} px, width x height)"
        aspect = max(h, w) / min(h, w)
        if aspect > self.max_aspect:
            return (f"{w}x{h} px (width x height): an aspect ratio of {aspect:.0f}:1 is beyond the "
                    f"{self.max_aspect:g}:1 the network input allows; crop it into less elongated parts")
        for height in heights:
            matrix, _ = letterbox_affine((h, w), height, 1, self.max_side, self.max_pixels)
            out_h, out_w = round(h * matrix[0, 0]), round(w * matrix[0, 0])
            if min(out_h, out_w) < self.min_side:
                return (f"{w}x{h} px (width x height) becomes {out_w}x{out_h} px at input height {height} "
                        f"(longest side <= {self.max_side}, <= {self.max_pixels} px): a side under "
                        f"{self.min_side} px; crop or pad it to a less elongated shape")
        return None


DEFAULT_INPUT_BOUND = InputBound()


def letterbox(image: np.ndarray, target_height: int, stride: int, pad_value: int = PAD_VALUE,
              bound: InputBound | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eval preprocessing (CMU demo): resize to ``target_height`` keeping the aspect ratio
    (bicubic), pad right/bottom with ``pad_value`` to multiples of ``stride``.

    With ``bound``, an image that would exceed it is scaled less, to fit (its input is then
    lower than ``target_height``). Returns (network image (h, w, 3) uint8, matrix (2, 3) image px
    -> network px), the matrix from :func:`openpose_lite.geometry.letterbox_affine`; invert it
    to bring predictions back.
    """
    if image.ndim not in (2, 3) or image.shape[0] <= 0 or image.shape[1] <= 0:
        raise ValueError(f"letterbox: expected an image of shape (H, W, 3), got {image.shape}")
    limits = (bound.max_side, bound.max_pixels) if bound is not None else (None, None)
    matrix, (pad_h, pad_w) = letterbox_affine(image.shape[:2], target_height, stride, *limits)
    s = float(matrix[0, 0])
    if round(image.shape[0] * s) < 1 or round(image.shape[1] * s) < 1:
        # OpenCV would fail an assertion; InputBound.problem says this before anything runs.
        raise ValueError(f"letterbox: a {image.shape[1]}x{image.shape[0]} image scaled by {s:.3g} has no pixels left")
    # fx=fy=s (not a target size) so OpenCV uses exactly the scale the matrix encodes.
    resized = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    out = np.full((pad_h, pad_w) + image.shape[2:], pad_value, dtype=image.dtype)
    h, w = min(pad_h, resized.shape[0]), min(pad_w, resized.shape[1])
    out[:h, :w] = resized[:h, :w]
    return out, matrix


def to_network_input(image_bgr: np.ndarray) -> np.ndarray:
    """The CMU input normalisation: BGR uint8 -> float32 ``x / 256 - 0.5``, channels first.

    (H, W, 3) -> (3, H, W), or a batch (B, H, W, 3) -> (B, 3, H, W).
    """
    arr = np.asarray(image_bgr)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"to_network_input: expected a BGR image (H, W, 3) or batch (B, H, W, 3), got {arr.shape}")
    out = arr.astype(np.float32) / 256.0 - 0.5
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))


# ----------------------------------------------------------------------------- top-down
# ImageNet statistics (RGB, for pixels in [0, 1]): the official HRNet weights were trained on them.
IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Fill for crop pixels from outside the image: black, as in HRNet's training and testing.
CROP_PAD_VALUE = 0


def warp_image(image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int], pad_value: int,
               interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``cv2.warpAffine`` of ``image`` (H, W[, C]) by a 2x3 ``matrix`` into ``out_hw``, ``pad_value`` outside.

    The matrix is in geometry.py's pixel-centre convention, which is OpenCV's, so keypoints
    moved by :func:`~openpose_lite.geometry.apply_affine` stay on the warped pixels.
    """
    channels = 1 if image.ndim == 2 else image.shape[2]
    border = pad_value if channels == 1 else (pad_value,) * min(channels, 4)
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (int(out_hw[1]), int(out_hw[0])),
                          flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def person_crop_affine(center: np.ndarray | Sequence[float], size_wh: np.ndarray | Sequence[float], rotation: float,
                       out_hw: tuple[int, int], flip: bool = False, convention: str = OURS) -> np.ndarray:
    """The (2, 3) float64 affine image px -> crop px of :func:`crop_person` (arguments as there).

    Training warps the image, its keypoints (and nothing else) through this matrix in one go
    (:func:`~openpose_lite.transforms.warp_sample`), so its crops are :func:`crop_person`'s.
    """
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"crop_person: out_hw must be positive, got {out_hw}")
    size = np.asarray(size_wh, dtype=np.float64).reshape(-1)
    if size.shape != (2,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise ValueError(f"crop_person: size_wh must be two positive numbers (w, h), got {size_wh}")
    ctr = np.asarray(center, dtype=np.float64).reshape(-1)
    if ctr.shape != (2,) or not np.all(np.isfinite(ctr)):
        raise ValueError(f"crop_person: center must be a finite (x, y), got {center}")
    matrix = crop_affine(ctr, size, (out_h, out_w), rotation_deg=float(rotation), convention=convention)
    if flip:
        matrix = compose_affine(hflip_affine(out_w + 1 if convention == HRNET else out_w), matrix)
    return matrix


def crop_person(image: np.ndarray, center: np.ndarray | Sequence[float], size_wh: np.ndarray | Sequence[float],
                rotation: float, out_hw: tuple[int, int], flip: bool = False, pad_value: int = CROP_PAD_VALUE,
                convention: str = OURS) -> tuple[np.ndarray, np.ndarray]:
    """Warp the region of ``size_wh`` (w, h) image px around ``center`` (x, y) into an ``out_hw`` crop.

    The top-down branch's one warp, for training and inference alike (:func:`person_crop_affine`).
    ``rotation`` (degrees) turns the content counter-clockwise about the centre; ``flip`` mirrors the crop
    in the same matrix (one resampling); ``pad_value`` fills outside the image. ``convention`` (geometry.py):
    where the centre lands, and the mirror (HRNet's puts crop pixel u at W - u, not W - 1 - u).

    Returns the crop (H, W[, 3]) in the image's dtype (bilinear) and the (2, 3) float64 affine image px ->
    crop px, mirror included.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] <= 0 or img.shape[1] <= 0:
        raise ValueError(f"crop_person: expected an image of shape (H, W, 3), got {img.shape}")
    matrix = person_crop_affine(center, size_wh, rotation, out_hw, flip, convention)
    return warp_image(img, matrix, (int(out_hw[0]), int(out_hw[1])), pad_value), matrix


def to_imagenet_input(image_bgr: np.ndarray, rgb: bool = True) -> np.ndarray:
    """torchvision's ImageNet normalisation: pixel / 255, minus the ImageNet mean, over its std, channels first.

    ``rgb=True`` (HRNet, mmpose, our top-down networks): the BGR image becomes RGB first, as the
    statistics are RGB's. ``rgb=False``: the BGR pixels are normalised as they are, channel 0 with
    the red statistics, as the SimpleBaseline reference fed its ResNet files
    (deep-high-resolution-net.pytorch: ``DATASET.COLOR_RGB: false``, ``transforms.Normalize`` on the
    ``cv2.imread`` image). (H, W, 3) -> (3, H, W) float32, or a batch (B, H, W, 3) -> (B, 3, H, W).
    """
    arr = np.asarray(image_bgr)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"to_imagenet_input: expected a BGR image (H, W, 3) or batch (B, H, W, 3), got {arr.shape}")
    pixels = (arr[..., ::-1] if rgb else arr).astype(np.float32) / 255.0
    out = (pixels - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))


# The input normalisations by name (``model.input_norm``; architectures.py lists the names).
INPUT_NORMALISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "cmu": to_network_input,
    "imagenet_rgb": to_imagenet_input,
    "imagenet_bgr": functools.partial(to_imagenet_input, rgb=False),
}


def input_normaliser(input_norm: str) -> Callable[[np.ndarray], np.ndarray]:
    """The normalisation named ``input_norm``; a ValueError naming the known ones for another name."""
    try:
        return INPUT_NORMALISERS[input_norm]
    except KeyError:
        raise ValueError(f"input_norm: expected one of {', '.join(INPUT_NORMALISERS)}, got {input_norm!r}") from None


def normalise_input(images_bgr: np.ndarray, input_norm: str) -> np.ndarray:
    """BGR uint8 image (H, W, 3) or batch (B, H, W, 3) -> network input, channels first, by ``input_norm``."""
    return input_normaliser(input_norm)(images_bgr)


# ----------------------------------------------------------------------------- images given to a predictor
def as_bgr(image: Any, index: int) -> np.ndarray:
    """Check one input image; grayscale (H, W) / (H, W, 1) and BGRA (H, W, 4) become BGR (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"images[{index}]: expected a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"images[{index}]: expected dtype uint8 (BGR as cv2.imread gives), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        arr = image
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        arr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        arr = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    else:
        raise ValueError(f"images[{index}]: expected shape (H, W, 3) BGR, got {image.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"images[{index}]: empty image of shape {image.shape}")
    return arr
