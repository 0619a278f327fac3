"""Drawing people on images with OpenCV (the CLI imports this lazily, only for ``--render``).

Shape legend: N people, K keypoints, L limbs.
"""

from __future__ import annotations

import cv2
import numpy as np

from openpose_lite.skeleton import Skeleton
from openpose_lite.structures import Poses

__all__ = ["draw_poses", "limb_colours", "track_colour"]

# cv2 drawing takes fixed-point coordinates with this many fractional bits (sub-pixel positions).
_SHIFT = 4


def limb_colours(num_limbs: int) -> list[tuple[int, int, int]]:
    """One saturated BGR colour per limb, hues evenly spaced around the wheel (red first)."""
    if num_limbs < 1:
        return []
    # OpenCV's 8-bit hue runs over [0, 180).
    hues = np.linspace(0, 180, num_limbs, endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 255), np.full_like(hues, 255)], axis=1)[None]
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    return [tuple(int(c) for c in colour) for colour in bgr]


# The golden-ratio step spreads consecutive ids far apart on the hue wheel.
_GOLDEN = 0.618033988749895


def track_colour(track_id: int) -> tuple[int, int, int]:
    """The BGR colour of a tracked person: the same for an id in every frame, distinct for nearby ids."""
    hue = int(180 * ((track_id * _GOLDEN) % 1.0))
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr)


def draw_poses(image_bgr: np.ndarray, poses: Poses, skeleton: Skeleton | None = None, threshold: float = 0.0,
               thickness: int | None = None) -> np.ndarray:
    """A copy of ``image_bgr`` (H, W, 3) uint8 with every person's limbs and keypoints drawn.

    Args:
        poses: people in image pixels (N, K, 3).
        skeleton: the layout to draw (default ``poses.skeleton``; people are converted to it).
        threshold: keypoints with a score at or below it are not drawn, nor their limbs.
        thickness: limb width in pixels (default: about 1/150 of the image diagonal, >= 2).

    Limbs (but ``skeleton.hidden_limbs``, which OpenPose's renderer leaves out) take ``skeleton.limb_colours``,
    keypoints the colour of their first limb. Tracked people take their id's colour (:func:`track_colour`) with
    the id beside the head; those without an id yet (-1) grey.
    """
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_poses: expected a BGR uint8 image (H, W, 3), got {image.shape} {image.dtype}")
    skeleton = skeleton or poses.skeleton
    people = poses.as_skeleton(skeleton).keypoints
    canvas = image.copy()
    if thickness is None:
        thickness = max(2, int(round(float(np.hypot(*image.shape[:2])) / 150)))
    radius = max(2, thickness)
    colours = skeleton.limb_colours
    limbs = [i for i in range(skeleton.num_limbs) if i not in skeleton.hidden_limbs]
    keypoint_colour = [(255, 255, 255)] * skeleton.num_keypoints
    for i in reversed(limbs):  # so that the first limb using a keypoint sets its colour
        a, b = skeleton.limbs[i]
        keypoint_colour[a] = keypoint_colour[b] = colours[i]
    scale = 1 << _SHIFT

    ids = poses.track_ids
    for n, person in enumerate(people):
        found = (person[:, 2] > threshold) & np.isfinite(person[:, :2]).all(axis=1)
        points = np.round(person[:, :2] * scale).astype(np.int64)
        own = None if ids is None else ((160, 160, 160) if ids[n] < 0 else track_colour(int(ids[n])))
        _draw_skeleton(canvas, points, found, [skeleton.limbs[i] for i in limbs], [own or colours[i] for i in limbs],
                       [own or c for c in keypoint_colour], thickness, radius * scale)
        if own is not None and ids[n] >= 0 and found.any():
            top = person[found][np.argmin(person[found, 1])]  # label above the highest keypoint
            org = (int(top[0]) - 4 * thickness, max(12, int(top[1]) - 3 * thickness))
            cv2.putText(canvas, str(int(ids[n])), org, cv2.FONT_HERSHEY_SIMPLEX, max(0.4, thickness / 5), own,
                        max(1, thickness // 2), cv2.LINE_AA)
    _draw_parts(canvas, poses, max(1, thickness // 2), scale)
    return canvas


# OpenPose's default render thresholds of hand and face keypoints (flags hand_render_threshold 0.2,
# face_render_threshold 0.4).
_PART_THRESHOLDS = {"hands": 0.2, "faces": 0.4}


def _draw_parts(canvas: np.ndarray, poses: Poses, thickness: int, scale: int) -> None:
    """Each person's hands and face (``poses.hands`` / ``poses.faces``), thin, in their skeletons' colours."""
    from openpose_lite.cmu_skeletons import FACE_70, HAND_21

    for name, skeleton in (("hands", HAND_21), ("faces", FACE_70)):
        parts = getattr(poses, name, None)
        if parts is None:
            continue
        for points in parts.reshape(-1, skeleton.num_keypoints, 3):
            found = points[:, 2] > _PART_THRESHOLDS[name]
            pixels = np.round(points[:, :2] * scale).astype(np.int64)
            _draw_skeleton(canvas, pixels, found, skeleton.limbs, skeleton.limb_colours,
                           [(255, 255, 255)] * skeleton.num_keypoints, thickness, thickness * scale)


def _draw_skeleton(canvas: np.ndarray, pixels: np.ndarray, found: np.ndarray, limbs: list, limb_colours: list,
                   point_colours: list, thickness: int, radius: int) -> None:
    """Lines for the ``limbs`` whose ends are ``found``, then a filled circle on each found point
    (``pixels`` (K, 2) and ``radius`` in :data:`_SHIFT` fixed point)."""
    for (a, b), colour in zip(limbs, limb_colours):
        if found[a] and found[b]:
            cv2.line(canvas, tuple(int(v) for v in pixels[a]), tuple(int(v) for v in pixels[b]), colour, thickness,
                     cv2.LINE_AA, _SHIFT)
    for k in np.flatnonzero(found):
        cv2.circle(canvas, tuple(int(v) for v in pixels[k]), radius, point_colours[k], -1, cv2.LINE_AA, _SHIFT)
