"""Reading images: one reader, one orientation rule, for training, evaluation, inference and benchmarks.

Orientation: the EXIF orientation tag is **ignored**; pixels come as they are stored. COCO's
annotations (keypoints, boxes, the ``width`` and ``height`` of each image entry) are in the
stored pixel frame, and the HRNet reference reads its COCO images the same way
(``lib/dataset/JointsDataset.py``, ``__getitem__``: ``cv2.IMREAD_COLOR |
cv2.IMREAD_IGNORE_ORIENTATION``). OpenCV's plain ``IMREAD_COLOR`` would rotate an image whose
EXIF says so, and every keypoint of it would then be predicted in a rotated frame. The files
are decoded from their bytes (``cv2.imdecode``), so a missing or broken file gives one clear
error instead of OpenCV's warnings.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

# Colour images as stored: 8-bit BGR (grey, 16-bit and alpha images are converted), no EXIF rotation.
READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
# The file name endings taken for images where a folder is listed (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


class ImageReadError(ValueError):
    """An image that cannot be read, or whose size contradicts what was expected; the message names the file."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """The image file does not exist (both an :class:`ImageReadError` and a ``FileNotFoundError``)."""


def read_image(path: str | os.PathLike[str], expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of an image file, EXIF orientation ignored.

    Args:
        path: the image file.
        expected_hw: (height, width) the image must have (e.g. its COCO image entry's).
    Raises:
        ImageReadError: the file is missing, is not an image OpenCV can decode, or its size is
            not ``expected_hw``.
    """
    p = Path(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageNotFoundError(f"image not found: {p}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {p}: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, READ_FLAGS) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot read image {p}: not an image file OpenCV decodes, or truncated")
    if expected_hw is not None and tuple(image.shape[:2]) != (int(expected_hw[0]), int(expected_hw[1])):
        raise ImageReadError(
            f"image {p} is {image.shape[1]}x{image.shape[0]} (width x height) but its annotation entry says "
            f"{int(expected_hw[1])}x{int(expected_hw[0])}"
        )
    return image
