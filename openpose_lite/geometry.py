"""THE coordinate convention of openpose_lite, written once.

* Points are (x, y); sizes are (height, width) and named ``*_hw``.
* Continuous pixel coordinates put the centre of pixel (row i, column j) at (x=j, y=i),
  the convention of COCO keypoints and of ``cv2.warpAffine``.
* An output cell j of a map with stride s is centred on input pixel ``j * s + (s - 1) / 2``
  (the centre of the s x s block of input pixels it summarises).
* Affine transforms are 2 x 3 float64 matrices ``M`` mapping a source point p to ``M @ [p, 1]``,
  in the pixel-centre convention above, so ``cv2.warpAffine(image, M, (w, h))`` moves the
  pixels exactly as :func:`apply_affine` moves the keypoints.

The HRNet reference (leoxiaobin/deep-high-resolution-net.pytorch), whose public weights were trained so,
treats integers as pixel *corners* in three places: a box's centre is ``x + w / 2``
(``lib/dataset/coco.py``, ``_xywh2cs``), the crop region's centre lands on crop pixel ``(W / 2, H / 2)``
(``lib/utils/transforms.py``, ``get_affine_transform``), and heatmap cell j stands for crop pixel
``j * stride`` (``lib/dataset/JointsDataset.py``, ``generate_target``; ``lib/core/inference.py``,
``get_final_preds``). Functions that depend on it take ``convention``: :data:`OURS` (the default) or
:data:`HRNET`; an official HRNet file decoded in ours lands about a pixel off.

Lightweight OpenPose (Daniil-Osokin/lightweight-human-pose-estimation.pytorch) trains in ours
(``datasets/coco.py``, ``_add_gaussian``) but its ``val.py`` (``convert_to_coco_format``) adds 0.5 to
every keypoint's x and y; its published AP includes that, so predictions from its files get
:data:`LIGHTWEIGHT_REPORT_SHIFT` added too.
"""

from __future__ import annotations

import math

import numpy as np

OURS = "openpose_lite"
HRNET = "hrnet"
CONVENTIONS = (OURS, HRNET)
# Cells to shift a mirrored crop's maps to the right after mirroring them back (flip test).
# Ours needs none (see the module docstring); the HRNet reference shifts by one cell
# (lib/core/function.py, validate, TEST.SHIFT_HEATMAP), which its networks were tuned with.
FLIP_SHIFT = {OURS: 0, HRNET: 1}
# Image pixels Lightweight OpenPose's val.py adds to each found keypoint's x and y (see above).
LIGHTWEIGHT_REPORT_SHIFT = 0.5


def check_convention(convention: str) -> str:
    """``convention`` if it is one of :data:`CONVENTIONS`; a ValueError naming them otherwise."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


def cell_origin(stride: int, convention: str = OURS) -> float:
    """Input pixel on which output cell 0 is centred: ``(stride - 1) / 2`` (ours) or 0 (HRNet reference)."""
    return (stride - 1) / 2.0 if check_convention(convention) == OURS else 0.0


def input_to_cell(xy: np.ndarray, stride: int, convention: str = OURS) -> np.ndarray:
    """Input-pixel coordinates -> output-cell coordinates (any shape, last axis free)."""
    return (np.asarray(xy, dtype=np.float64) - cell_origin(stride, convention)) / stride


def cell_to_input(xy: np.ndarray, stride: int, convention: str = OURS) -> np.ndarray:
    """Output-cell coordinates -> input-pixel coordinates (inverse of :func:`input_to_cell`)."""
    return np.asarray(xy, dtype=np.float64) * stride + cell_origin(stride, convention)


def map_hw(input_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """Size of the output map for an input of ``input_hw`` (ceil division, as padded convs give)."""
    return (-(-int(input_hw[0]) // stride), -(-int(input_hw[1]) // stride))


def apply_affine(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points ``xy`` of shape (..., 2); returns float64 (..., 2)."""
    m = np.asarray(matrix, dtype=np.float64)
    pts = np.asarray(xy, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine."""
    m = np.asarray(matrix, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, -(a_inv @ m[:, 2:3])], axis=1)


def compose_affine(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The affine that applies ``first`` and then ``second``."""
    a = np.vstack([np.asarray(second, dtype=np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(first, dtype=np.float64), [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def transform_keypoints(matrix: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Move keypoints (N, K, 3) by an affine, keeping the third column (visibility or score)."""
    kps = np.array(keypoints, dtype=np.float32, copy=True)
    if kps.size:
        kps[..., :2] = apply_affine(matrix, kps[..., :2]).astype(np.float32)
    return kps


def scale_affine(scale_x: float, scale_y: float | None = None) -> np.ndarray:
    """Resize by a factor: the affine equal to ``cv2.resize`` by (scale_x, scale_y).

    A resize maps the pixel *edges* 0 and W to 0 and sW, so centres move as x' = s x + (s - 1) / 2.
    """
    sy = scale_x if scale_y is None else scale_y
    return np.array([[scale_x, 0.0, 0.5 * (scale_x - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)]], dtype=np.float64)


def letterbox_affine(image_hw: tuple[int, int], target_height: int, stride: int, max_side: int | None = None,
                     max_pixels: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize so the height is ``target_height`` keeping the aspect, then pad right/bottom to a stride multiple.

    This is the CMU demo's preprocessing. ``max_side`` and ``max_pixels`` bound the resized image
    (its longest side, its area; :class:`~openpose_lite.preprocess.InputBound` says why): an image
    that would exceed either is scaled less, just enough to fit. Returns the affine image ->
    network input (a pure scale) and the padded input size (h, w).
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"letterbox_affine: image size must be positive, got {image_hw}")
    s = target_height / h
    if max_side is not None:
        s = min(s, max_side / max(h, w))
    if max_pixels is not None:
        s = min(s, math.sqrt(max_pixels / (h * w)))
    out_h = max(1, round(h * s))
    out_w = max(1, round(w * s))
    padded = (-(-out_h // stride) * stride, -(-out_w // stride) * stride)
    return scale_affine(s), padded


def box_to_center_scale(box_xywh: np.ndarray, aspect_ratio: float, padding: float = 1.25,
                        convention: str = OURS) -> tuple[np.ndarray, np.ndarray]:
    """Box (x, y, w, h) -> centre (2,) and size (2,) = (w, h) at ``aspect_ratio`` (w / h), padded.

    The box grows (never shrinks) to the aspect ratio, as in the HRNet reference, then by
    ``padding``. Its centre is ``x + (w - 1) / 2`` in ours (the box covers pixels x ... x + w - 1)
    and ``x + w / 2`` in the HRNet reference's (``_xywh2cs``).
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if check_convention(convention) == HRNET:
        center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    else:
        w, h = max(w, 1.0), max(h, 1.0)
        center = np.array([x + (w - 1) * 0.5, y + (h - 1) * 0.5], dtype=np.float64)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w * padding, h * padding], dtype=np.float64)


def crop_affine(center: np.ndarray, size_wh: np.ndarray, output_hw: tuple[int, int], rotation_deg: float = 0.0,
                convention: str = OURS) -> np.ndarray:
    """Affine mapping the image region of ``size_wh`` around ``center`` onto an ``output_hw`` crop.

    In ours the region's edges land on the crop's edges (-0.5 and W-0.5), so ``center`` lands on
    ((W - 1) / 2, (H - 1) / 2); in the HRNet reference's it lands on (W / 2, H / 2)
    (``get_affine_transform``). ``rotation_deg`` rotates the content counter-clockwise about the centre.
    """
    out_h, out_w = int(output_hw[0]), int(output_hw[1])
    sx = out_w / float(size_wh[0])
    sy = out_h / float(size_wh[1])
    theta = math.radians(rotation_deg)
    c, s = math.cos(theta), math.sin(theta)
    # Rotate about the centre (image y points down, so this rotates the picture counter-clockwise).
    rot = np.array([[c, s], [-s, c]], dtype=np.float64)
    lin = np.diag([sx, sy]) @ rot
    corner = check_convention(convention) == HRNET
    dst_center = np.array([out_w * 0.5, out_h * 0.5]) if corner else np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    offset = dst_center - lin @ np.asarray(center, dtype=np.float64)
    return np.concatenate([lin, offset[:, None]], axis=1)


def hflip_affine(width: int) -> np.ndarray:
    """Horizontal mirror of an image ``width`` pixels wide: x' = W - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)
