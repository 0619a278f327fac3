"""Generated multi-person scenes with exact COCO-17 keypoint annotations.

Each scene is a textured, cluttered background with articulated stick figures drawn on it:
thick anti-aliased limbs with a dark outline, a filled torso and a head ellipse carrying eyes,
nose and ears. Every figure faces the camera, so a person's left side is on the image's right,
as for a front-facing person in COCO. Limb types have distinct colours (shirt-coloured torso and
upper arms, skin forearms and head, trousers thighs, darker shins) so that a small network
trained for minutes on a CPU can learn to find them.

The annotations follow COCO's conventions and are exact by construction: while drawing, a
per-pixel map records which person owns each pixel, so

* a keypoint inside the image whose pixel shows its own person is visible (v=2);
* one hidden by another person or an occluding rectangle is labelled but occluded (v=1);
* one outside the image is not labelled: v=0 and x=y=0.

A person's ``area`` is the number of its visible drawn pixels (COCO's area is the area of the
visible segmentation mask, and it sets the OKS scale), and its ``bbox`` is the box of those
pixels (``pycocotools.mask.toBbox`` convention) grown to hold its labelled keypoints. Drawn
people with no visible pixel get no annotation.

Everything depends only on the ``numpy.random.Generator`` passed in, so a seed gives the same
images and byte-identical annotation files.

Shape legend: N people, K keypoints, H x W image size.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from openpose_lite.io import write_json_atomic
from openpose_lite.skeleton import COCO_17, Skeleton

logger = logging.getLogger(__name__)

SKELETON = COCO_17
_KP = {name: i for i, name in enumerate(SKELETON.keypoints)}

# cv2 drawing takes fixed-point coordinates with this many fractional bits; keypoints are
# quantised to the same 1/16 px grid, so what is drawn is exactly what is annotated.
_SHIFT = 4
_ONE = 1 << _SHIFT

# A figure is about half as wide as it is tall; used to shrink people when many must fit.
_FIGURE_ASPECT = 0.5
# Fraction of the image that the people of a scene may cover before they are made smaller.
_FILL = 0.6

# Skin tones (BGR), light to dark.
_SKIN_TONES = ((175, 200, 240), (140, 180, 225), (95, 140, 195), (70, 105, 150), (50, 75, 110))


@dataclass(frozen=True)
class SceneConfig:
    """How synthetic scenes are drawn.

    ``person_height_range`` is a fraction of the image height (log-uniform in between); with
    many people in a scene the upper end is lowered so that they fit. ``max_overlap_iou``
    is the box IoU a new person tries to stay under (the best of a few placements is kept, so
    crowded scenes still overlap). ``border_cut_prob`` is the chance that a person is placed
    partly outside the image and ``occlusion_prob`` the chance that a rectangle hides part of
    a person.
    """

    image_hw: tuple[int, int] = (368, 368)
    people_range: tuple[int, int] = (1, 4)
    person_height_range: tuple[float, float] = (0.15, 0.9)
    max_overlap_iou: float = 0.3
    border_cut_prob: float = 0.15
    occlusion_prob: float = 0.2
    clutter_range: tuple[int, int] = (4, 12)

    def __post_init__(self) -> None:
        h, w = self.image_hw
        if h < 16 or w < 16:
            raise ValueError(f"SceneConfig.image_hw must be at least (16, 16), got {self.image_hw}")
        lo, hi = self.people_range
        if not 0 <= lo <= hi:
            raise ValueError(f"SceneConfig.people_range must be (min, max) with 0 <= min <= max, got {self.people_range}")
        lo_h, hi_h = self.person_height_range
        if not 0 < lo_h <= hi_h <= 2:
            raise ValueError(f"SceneConfig.person_height_range must be fractions 0 < min <= max <= 2, got {self.person_height_range}")
        lo_c, hi_c = self.clutter_range
        if not 0 <= lo_c <= hi_c:
            raise ValueError(f"SceneConfig.clutter_range must be (min, max) with 0 <= min <= max, got {self.clutter_range}")
        for name in ("max_overlap_iou", "border_cut_prob", "occlusion_prob"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"SceneConfig.{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class Scene:
    """One generated image and its people.

    ``image`` (H, W, 3) uint8 BGR; ``keypoints`` (N, K, 3) float32 COCO x, y, v; ``boxes``
    (N, 4) float32 x, y, w, h; ``areas`` (N,) float32 visible drawn pixels per person;
    ``instance_map`` (H, W) int16: the index of the person each pixel shows, -1 for none.
    """

    image: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    instance_map: np.ndarray


@dataclass(frozen=True)
class _Figure:
    """A posed person in image pixels, ready to draw."""

    points: np.ndarray  # (K, 2) float64 keypoints, on the 1/16 px grid
    head_center: np.ndarray  # (2,)
    head_axes: tuple[float, float]  # half width, half height (px)
    head_angle: float  # degrees
    height: float  # px
    colours: dict[str, tuple[int, int, int]]


# ----------------------------------------------------------------------------- poses
def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _sample_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """A front-facing pose in units of the person's height, pelvis at the origin, y down.

    Returns keypoints (K, 2), head centre (2,), head half axes and head angle (degrees).
    """

    def size(base: float) -> float:  # body proportions vary a little between people
        return base * rng.uniform(0.92, 1.08)

    def foreshortened(length: float) -> float:  # a segment pointing towards the camera looks shorter
        return length * (rng.uniform(0.6, 1.0) if rng.random() < 0.3 else 1.0)

    torso, neck_to_head = size(0.30), size(0.105)
    shoulder_half, hip_half = size(0.115), size(0.08)
    upper_arm, forearm, thigh, shin = size(0.17), size(0.15), size(0.245), size(0.235)
    head_half_w, head_half_h = size(0.05), size(0.064)
    turn = rng.uniform(0.55, 1.0)  # a body turned away from the camera shows narrower shoulders and hips

    lean = math.radians(float(np.clip(rng.normal(0.0, 7.0), -20.0, 20.0)))
    body = _rotation(lean)  # maps the upright body frame to the leaning one
    up = body @ np.array([0.0, -1.0])
    across = body @ np.array([1.0, 0.0])  # towards the person's left: image right when facing the camera

    pts = np.zeros((SKELETON.num_keypoints, 2))
    neck = up * torso
    pts[_KP["left_shoulder"]] = neck + across * shoulder_half * turn
    pts[_KP["right_shoulder"]] = neck - across * shoulder_half * turn
    pts[_KP["left_hip"]] = across * hip_half * turn
    pts[_KP["right_hip"]] = -across * hip_half * turn

    def direction(frame: np.ndarray, angle_deg: float, side: int) -> np.ndarray:
        # angle from straight down in that frame, positive away from the body on that side
        a = math.radians(angle_deg)
        return frame @ np.array([side * math.sin(a), math.cos(a)])

    for side, prefix in ((1, "left"), (-1, "right")):
        mode = rng.choice(3, p=[0.45, 0.25, 0.30])
        if mode == 0:  # hanging, slightly bent
            angle, bend = rng.uniform(5, 30), rng.uniform(0, 35)
        elif mode == 1:  # swinging or bent in front of the body
            angle, bend = rng.uniform(-20, 45), rng.uniform(40, 130)
        else:  # raised
            angle, bend = rng.uniform(60, 170), rng.uniform(0, 80)
        bend *= rng.choice([-1.0, 1.0])
        shoulder = pts[_KP[f"{prefix}_shoulder"]]
        elbow = shoulder + foreshortened(upper_arm) * direction(body, angle, side)
        pts[_KP[f"{prefix}_elbow"]] = elbow
        pts[_KP[f"{prefix}_wrist"]] = elbow + foreshortened(forearm) * direction(body, angle + bend, side)

    raised_leg = rng.choice([-1, 1]) if rng.random() < 0.15 else 0
    legs = _rotation(0.3 * lean)  # legs carry the body, so they follow the lean only a little
    for side, prefix in ((1, "left"), (-1, "right")):
        if side == raised_leg:  # knee lifted, shin hanging back down
            angle = rng.uniform(40, 85)
            shin_angle = angle - rng.uniform(60, 110)
            thigh_len = thigh * rng.uniform(0.7, 1.0)
        elif rng.random() < 0.4:  # walking: legs apart, knee bent
            angle = rng.uniform(-12, 30)
            shin_angle = max(angle - rng.uniform(0, 45), -15.0)
            thigh_len = thigh * rng.uniform(0.8, 1.0)
        else:  # standing
            angle = rng.uniform(-3, 15)
            shin_angle = angle + rng.uniform(-8, 8)
            thigh_len = thigh
        knee = pts[_KP[f"{prefix}_hip"]] + thigh_len * direction(legs, angle, side)
        pts[_KP[f"{prefix}_knee"]] = knee
        pts[_KP[f"{prefix}_ankle"]] = knee + foreshortened(shin) * direction(legs, shin_angle, side)

    tilt = lean + math.radians(float(np.clip(rng.normal(0.0, 8.0), -25.0, 25.0)))
    head = _rotation(tilt)
    head_center = neck + (head @ np.array([0.0, -1.0])) * neck_to_head
    yaw = rng.uniform(-0.35, 0.35)  # a slightly turned head moves the face sideways

    def face(u: float, v: float) -> np.ndarray:  # (u, v) in head half-axes, v down; inside the ellipse
        return head_center + head @ np.array([u * head_half_w, v * head_half_h])

    pts[_KP["nose"]] = face(0.6 * yaw, 0.2)
    pts[_KP["left_eye"]] = face(0.42 + 0.5 * yaw, -0.15)
    pts[_KP["right_eye"]] = face(-0.42 + 0.5 * yaw, -0.15)
    pts[_KP["left_ear"]] = face(0.8 + 0.15 * yaw, 0.0)
    pts[_KP["right_ear"]] = face(-0.8 + 0.15 * yaw, 0.0)
    return pts, head_center, (head_half_w, head_half_h), math.degrees(tilt)


def _saturated_colour(rng: np.random.Generator, hue: float, value_scale: float = 1.0) -> tuple[int, int, int]:
    hsv = np.array([[[hue % 180, rng.uniform(150, 255), rng.uniform(140, 255) * value_scale]]], dtype=np.float32)
    bgr = cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr)


def _sample_colours(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    skin = np.array(_SKIN_TONES[rng.integers(len(_SKIN_TONES))]) + rng.integers(-10, 11, 3)
    hue = rng.uniform(0, 180)
    trousers_hue = hue + rng.uniform(40, 140)  # far from the shirt's hue, so thighs and torso differ
    return {
        "skin": tuple(int(c) for c in skin.clip(0, 255)),
        "shirt": _saturated_colour(rng, hue),
        "thigh": _saturated_colour(rng, trousers_hue),
        "shin": _saturated_colour(rng, trousers_hue, value_scale=0.55),
    }


# --------------------------------------------------------------------------- drawing
def _fp(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _dark(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(c * 0.35) for c in colour)


def _draw_chain(image: np.ndarray, owner: np.ndarray, label: int, segments: list, thickness: int, outline: int) -> None:
    """Thick segments [(a, b, colour)]: all outlines first so a chain reads as one limb."""
    for a, b, colour in segments:
        pa, pb = tuple(_fp(a)), tuple(_fp(b))
        cv2.line(image, pa, pb, _dark(colour), thickness + 2 * outline, cv2.LINE_AA, _SHIFT)
        cv2.line(owner, pa, pb, label, thickness + 2 * outline, cv2.LINE_8, _SHIFT)
    for a, b, colour in segments:
        cv2.line(image, tuple(_fp(a)), tuple(_fp(b)), colour, thickness, cv2.LINE_AA, _SHIFT)


def _draw_figure(image: np.ndarray, owner: np.ndarray, label: int, fig: _Figure, rng: np.random.Generator) -> None:
    """Draw one person on ``image`` and mark its pixels with ``label`` in ``owner``."""
    p, c, h = fig.points, fig.colours, fig.height
    arm_px = max(2, round(0.04 * h))
    leg_px = max(2, round(0.055 * h))
    outline = max(1, round(0.006 * h))

    def kp(name: str) -> np.ndarray:
        return p[_KP[name]]

    sides = ["left", "right"]
    rng.shuffle(sides)  # which leg / arm is drawn in front
    for side in sides:
        _draw_chain(image, owner, label, [
            (kp(f"{side}_hip"), kp(f"{side}_knee"), c["thigh"]),
            (kp(f"{side}_knee"), kp(f"{side}_ankle"), c["shin"]),
        ], leg_px, outline)

    torso = _fp(np.stack([kp("left_shoulder"), kp("right_shoulder"), kp("right_hip"), kp("left_hip")]))
    cv2.fillPoly(image, [torso], c["shirt"], cv2.LINE_AA, _SHIFT)
    cv2.polylines(image, [torso], True, _dark(c["shirt"]), 2 * outline, cv2.LINE_AA, _SHIFT)
    cv2.fillPoly(owner, [torso], label, cv2.LINE_8, _SHIFT)
    cv2.polylines(owner, [torso], True, label, 2 * outline + 1, cv2.LINE_8, _SHIFT)

    neck = 0.5 * (kp("left_shoulder") + kp("right_shoulder"))
    _draw_chain(image, owner, label, [(neck, fig.head_center, c["skin"])], arm_px, outline)

    rng.shuffle(sides)
    for side in sides:
        _draw_chain(image, owner, label, [
            (kp(f"{side}_shoulder"), kp(f"{side}_elbow"), c["shirt"]),
            (kp(f"{side}_elbow"), kp(f"{side}_wrist"), c["skin"]),
        ], arm_px, outline)

    center = tuple(_fp(fig.head_center))
    axes = tuple(_fp(fig.head_axes))
    outer = tuple(_fp(np.asarray(fig.head_axes) + outline))
    angle = fig.head_angle
    cv2.ellipse(image, center, outer, angle, 0, 360, _dark(c["skin"]), -1, cv2.LINE_AA, _SHIFT)
    cv2.ellipse(image, center, axes, angle, 0, 360, c["skin"], -1, cv2.LINE_AA, _SHIFT)
    cv2.ellipse(owner, center, outer, angle, 0, 360, label, -1, cv2.LINE_8, _SHIFT)
    # Face features sit inside the head ellipse, so they do not change who owns a pixel.
    head_w = fig.head_axes[0]
    feature = _dark(c["skin"])
    ear_axes = tuple(_fp((max(1.0, 0.2 * head_w), max(1.0, 0.3 * head_w))))
    for name in ("left_ear", "right_ear"):
        cv2.ellipse(image, tuple(_fp(kp(name))), ear_axes, angle, 0, 360, feature, -1, cv2.LINE_AA, _SHIFT)
    for name in ("left_eye", "right_eye"):
        cv2.circle(image, tuple(_fp(kp(name))), int(_ONE * max(1.0, 0.14 * head_w)), (30, 30, 30), -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(image, tuple(_fp(kp("nose"))), int(_ONE * max(1.0, 0.12 * head_w)), feature, -1, cv2.LINE_AA, _SHIFT)


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation colour, so clutter never looks like the saturated clothes of people."""
    return np.clip(rng.uniform(40, 215) + rng.uniform(-25, 25, 3), 0, 255)


def render_background(rng: np.random.Generator, image_hw: tuple[int, int], clutter_range: tuple[int, int] = (4, 12)) -> np.ndarray:
    """A textured background (H, W, 3) uint8 BGR: gradient, blotches, clutter shapes and noise.

    :func:`render_scene` draws its background first with this function, so a generator in the
    same state reproduces the background of a scene.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    start, end = _muted_colour(rng), _muted_colour(rng)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = start.astype(np.float32) + (end - start).astype(np.float32) * ramp[..., None]
    # Low-frequency blotches, mostly in brightness so the background stays muted.
    blotches = rng.normal(0.0, 1.0, (h // 24 + 2, w // 24 + 2, 4)).astype(np.float32)
    blotches = blotches[..., :1] + 0.35 * blotches[..., 1:]
    image += cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(4, 18)
    image = np.clip(image, 0, 255).astype(np.uint8)

    size = min(h, w)
    for _ in range(int(rng.integers(clutter_range[0], clutter_range[1] + 1))):
        colour = tuple(int(v) for v in _muted_colour(rng))
        kind = rng.integers(3)
        if kind == 0:  # filled rectangle
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1 = x0 + int(rng.uniform(0.05, 0.4) * w)
            y1 = y0 + int(rng.uniform(0.05, 0.4) * h)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
        elif kind == 1:  # line, some as thick as a limb
            p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(image, p0, p1, colour, int(rng.integers(1, max(2, size // 40) + 1)), cv2.LINE_AA)
        else:  # ellipse, filled or outlined
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.uniform(0.02, 0.15) * size) + 1, int(rng.uniform(0.02, 0.15) * size) + 1)
            filled = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
            cv2.ellipse(image, center, axes, float(rng.uniform(0, 180)), 0, 360, colour, filled, cv2.LINE_AA)

    noise = rng.normal(0.0, rng.uniform(1.5, 5.0), (h, w, 1)).astype(np.float32)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------ placement
def _box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x0, y0, x1, y1 box with (M, 4) boxes."""
    if len(others) == 0:
        return np.zeros(0)
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area_box = (box[2] - box[0]) * (box[3] - box[1])
    area_others = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area_box + area_others - inter)


def _place(
    rng: np.random.Generator, extent: np.ndarray, image_hw: tuple[int, int], cut: bool, placed: list[np.ndarray], max_iou: float
) -> np.ndarray:
    """Offset (2,) moving a figure with local extent (x0, y0, x1, y1) into the image.

    A cut figure may hang over the border by up to half its size; others stay inside when
    they fit. The placement overlapping already placed people least is kept.
    """
    h, w = image_hw
    size = extent[2:] - extent[:2]
    others = np.array(placed).reshape(-1, 4)
    best, best_iou = None, math.inf
    for _ in range(20):
        top_left = np.empty(2)
        for axis, limit in ((0, w), (1, h)):
            lo, hi = (-0.5 * size[axis], limit - 0.5 * size[axis]) if cut else (0.0, limit - size[axis])
            top_left[axis] = rng.uniform(min(lo, hi), max(lo, hi))
        box = np.concatenate([top_left, top_left + size])
        iou = float(_box_iou(box, others).max(initial=0.0))
        if iou < best_iou:
            best, best_iou = top_left - extent[:2], iou
        if iou <= max_iou:
            break
    return best


def _height_range(cfg: SceneConfig, num_people: int) -> tuple[float, float]:
    """Person height range (px), its top lowered so that ``num_people`` fit in the image."""
    h, w = cfg.image_hw
    lo, hi = cfg.person_height_range[0] * h, cfg.person_height_range[1] * h
    fit = math.sqrt(_FILL * h * w / (max(num_people, 1) * _FIGURE_ASPECT))
    return lo, max(lo, min(hi, fit))


# --------------------------------------------------------------------------- scenes
def render_scene(rng: np.random.Generator, cfg: SceneConfig | None = None, num_people: int | None = None) -> Scene:
    """Draw one scene: background, then people (smaller, farther ones first), then occluders.

    ``num_people`` draws exactly that many people, never placed across the image border on
    purpose (only a figure taller or wider than the image is cut); otherwise the count is
    drawn from ``cfg.people_range``. People hidden entirely
    are not annotated, so ``len(scene.keypoints)`` can be smaller than the number drawn.
    """
    cfg = cfg or SceneConfig()
    if num_people is not None and (int(num_people) != num_people or num_people < 0):
        raise ValueError(f"num_people must be a non-negative integer, got {num_people!r}")
    h, w = cfg.image_hw
    image = render_background(rng, cfg.image_hw, cfg.clutter_range)
    count = int(num_people) if num_people is not None else int(rng.integers(cfg.people_range[0], cfg.people_range[1] + 1))
    if count >= np.iinfo(np.uint16).max:
        raise ValueError(f"num_people must be below {np.iinfo(np.uint16).max}, got {count}")

    lo, hi = _height_range(cfg, count)
    figures: list[_Figure] = []
    placed: list[np.ndarray] = []
    for _ in range(count):
        height = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        pts, head_center, head_axes, head_angle = _sample_pose(rng)
        margin = 0.04  # half a leg's thickness plus the outline, in person heights
        head_r = max(head_axes)
        lo_xy = np.minimum(pts.min(axis=0), head_center - head_r) - margin
        hi_xy = np.maximum(pts.max(axis=0), head_center + head_r) + margin
        extent = np.concatenate([lo_xy, hi_xy]) * height
        cut = num_people is None and rng.random() < cfg.border_cut_prob
        offset = _place(rng, extent, cfg.image_hw, cut, placed, cfg.max_overlap_iou)
        placed.append(extent + np.tile(offset, 2))
        figures.append(
            _Figure(
                points=np.round((pts * height + offset) * _ONE) / _ONE,
                head_center=head_center * height + offset,
                head_axes=(head_axes[0] * height, head_axes[1] * height),
                head_angle=head_angle,
                height=height,
                colours=_sample_colours(rng),
            )
        )

    figures.sort(key=lambda f: f.height)  # stable: equal heights keep their sampling order
    owner = np.zeros((h, w), dtype=np.uint16)  # 0: nobody, i + 1: person i
    for i, fig in enumerate(figures):
        _draw_figure(image, owner, i + 1, fig, rng)

    for fig in figures:
        if rng.random() < cfg.occlusion_prob:
            anchor = fig.points[rng.integers(SKELETON.num_keypoints)]
            half = rng.uniform(0.08, 0.18, 2) * fig.height
            x0, y0 = np.round(anchor - half).astype(int)
            x1, y1 = np.round(anchor + half).astype(int)
            colour = tuple(int(v) for v in _muted_colour(rng))
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), tuple(int(v * 0.6) for v in colour), 1)
            owner[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = 0
    return _annotate(image, owner, figures)


def _annotate(image: np.ndarray, owner: np.ndarray, figures: list[_Figure]) -> Scene:
    h, w = owner.shape
    keypoints, boxes, areas, kept = [], [], [], []
    for i, fig in enumerate(figures):
        ys, xs = np.nonzero(owner == i + 1)
        if len(xs) == 0:  # hidden or outside the image: nothing to annotate
            continue
        pts = fig.points
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
        cols = np.clip(np.rint(pts[:, 0]), 0, w - 1).astype(int)
        rows = np.clip(np.rint(pts[:, 1]), 0, h - 1).astype(int)
        visible = inside & (owner[rows, cols] == i + 1)
        kps = np.zeros((SKELETON.num_keypoints, 3), dtype=np.float32)
        kps[inside, :2] = pts[inside]
        kps[:, 2] = np.where(visible, 2, np.where(inside, 1, 0))
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        if inside.any():
            x0, y0 = min(x0, float(pts[inside, 0].min())), min(y0, float(pts[inside, 1].min()))
            x1, y1 = max(x1, float(pts[inside, 0].max())), max(y1, float(pts[inside, 1].max()))
        keypoints.append(kps)
        boxes.append([x0, y0, x1 - x0, y1 - y0])
        areas.append(float(len(xs)))
        kept.append(i)

    instance_map = np.full((h, w), -1, dtype=np.int16)
    for new, old in enumerate(kept):
        instance_map[owner == old + 1] = new
    k = SKELETON.num_keypoints
    return Scene(
        image=image,
        keypoints=np.array(keypoints, dtype=np.float32).reshape(-1, k, 3),
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        areas=np.array(areas, dtype=np.float32),
        instance_map=instance_map,
    )


def generate_scene(
    rng: np.random.Generator, cfg: SceneConfig | None = None, num_people: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene as (image (H, W, 3) uint8 BGR, keypoints (N, K, 3) float32 COCO x, y, v, boxes (N, 4) xywh).

    See :func:`render_scene`, which also returns the areas and the instance map.
    """
    scene = render_scene(rng, cfg, num_people)
    return scene.image, scene.keypoints, scene.boxes


# ---------------------------------------------------------------------------- files
def coco_person_category(skeleton: Skeleton = SKELETON) -> dict:
    """The COCO person category with keypoint names and the 1-based drawing skeleton."""
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(skeleton.keypoints),
        "skeleton": [[a + 1, b + 1] for a, b in skeleton.limbs],
    }


def _encode_image(image: np.ndarray, path: Path, image_format: str, jpeg_quality: int) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode(f".{image_format}", image, params)
    if not ok:
        raise ValueError(f"could not encode {path} as {image_format}")
    path.write_bytes(data.tobytes())


def write_dataset(
    out_dir: str | Path,
    num_images: int,
    seed: int,
    cfg: SceneConfig | None = None,
    num_people: int | None = None,
    image_format: str = "jpg",
    jpeg_quality: int = 95,
) -> Path:
    """Write ``num_images`` scenes as ``out_dir/images/NNNNNN.jpg`` (or .png) plus ``out_dir/annotations.json``.

    Image ``i`` (id ``i + 1``) is drawn from ``numpy.random.default_rng([seed, i])``, so it does
    not depend on ``num_images`` and a larger set extends a smaller one. The annotation file is
    COCO keypoint format (see the module docstring for visibility, area and bbox) and is
    written atomically, after every image. Returns the path of the annotation file.
    """
    cfg = cfg or SceneConfig()
    if int(num_images) != num_images or num_images < 0:
        raise ValueError(f"num_images must be a non-negative integer, got {num_images!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    h, w = cfg.image_hw
    images, annotations = [], []
    for i in range(int(num_images)):
        scene = render_scene(np.random.default_rng([int(seed), i]), cfg, num_people)
        image_id = i + 1
        file_name = f"{image_id:06d}.{image_format}"
        _encode_image(scene.image, images_dir / file_name, image_format, jpeg_quality)
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for kps, box, area in zip(scene.keypoints, scene.boxes, scene.areas):
            flat = []
            for x, y, v in kps.tolist():
                flat += [x, y, int(v)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": flat,
                    "num_keypoints": int((kps[:, 2] > 0).sum()),
                    "bbox": [float(v) for v in box],
                    "area": float(area),
                    "iscrowd": 0,
                }
            )

    dataset = {
        "info": {
            "description": "openpose_lite synthetic scenes",
            "seed": int(seed),
            "num_people": num_people,
            "scene_config": dataclasses.asdict(cfg),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [coco_person_category()],
    }
    ann_path = write_json_atomic(out_dir / "annotations.json", dataset)
    logger.info("wrote %d synthetic images with %d people to %s", len(images), len(annotations), out_dir)
    return ann_path
