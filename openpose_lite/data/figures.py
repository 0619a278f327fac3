"""Stick figures: body proportions, still poses, colours, drawing, and the exact annotation of what is drawn.

A figure faces the camera (its left on the image's right, as in COCO) and is drawn with OpenCV: outlined
anti-aliased limbs, a filled torso, a head with eyes, nose and ears, limb types in distinct colours (shirt,
skin, trousers, darker shins) so that a small network trained on a CPU finds them. Poses are built in person
heights, pelvis at the origin, y down; :meth:`Figure.place` snaps keypoints to cv2's 1/16 px drawing grid, so
what is drawn is what is annotated. Other person layouts (:class:`People`) of :data:`PERSON_KEYPOINTS` take the
neck and mid-hip as midpoints (as CMU's models do), and a layout with feet (BODY_25) gets white shoes: the heel
below the ankle, the toes along a foot pointing at the camera and turned out, the big toe inside.

Shape legend: K keypoints (COCO-17, or the layout's), H x W image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = ["KEYPOINT_INDEX", "PERSON_KEYPOINTS", "SKELETON", "Figure", "People", "annotate_figure", "coco_category",
           "draw_figure", "on_grid", "place_head", "rotation_matrix", "sample_body", "sample_colours",
           "sample_still_pose"]

SKELETON = COCO_17
KEYPOINT_INDEX = {name: i for i, name in enumerate(SKELETON.keypoints)}
_KP = KEYPOINT_INDEX
# The keypoints a generated person has: COCO's 17, the neck, the mid-hip and three per foot (BODY_25's names).
_FOOT_POINTS = tuple(f"{side}_{part}" for side in ("left", "right") for part in ("big_toe", "small_toe", "heel"))
PERSON_KEYPOINTS = SKELETON.keypoints + ("neck", "mid_hip") + _FOOT_POINTS

# The fractional bits of cv2's fixed-point drawing coordinates: keypoints sit on this 1/16 px grid.
_SHIFT = 4
_ONE = 1 << _SHIFT

# Body segment lengths and half widths in person heights (everyone varies them by +-8 %).
_BODY = {
    "torso": 0.30, "neck_to_head": 0.105, "shoulder_half": 0.115, "hip_half": 0.08,
    "upper_arm": 0.17, "forearm": 0.15, "thigh": 0.245, "shin": 0.235,
    "head_half_w": 0.05, "head_half_h": 0.064,
}

# Skin tones (BGR), light to dark.
_SKIN_TONES = ((175, 200, 240), (140, 180, 225), (95, 140, 195), (70, 105, 150), (50, 75, 110))
_SHOE = (215, 215, 220)  # white shoes: far from the dark shins, so a small network tells feet from legs
# A foot in person heights: the heel below the ankle, the toes' distance from the heel (a foot pointing at
# the camera looks short), half the toes' width.
_HEEL_DROP, _FOOT_RANGE, _TOES_HALF = 0.045, (0.04, 0.07), 0.02


def coco_category(skeleton: Skeleton, name: str, category_id: Any = 1, supercategory: Any = None) -> dict:
    """A COCO keypoint category of ``skeleton``: names and 1-based limbs, and for a skeleton other than
    the person's also ``flip_pairs`` and ``sigmas``, so that a file states it whole (``supercategory``
    None: ``name``)."""
    category = {"supercategory": name if supercategory is None else supercategory, "id": category_id, "name": name,
                "keypoints": list(skeleton.keypoints), "skeleton": [[a + 1, b + 1] for a, b in skeleton.limbs]}
    if not skeleton.is_person:  # the person's layout comes from its names; others state theirs whole
        category["flip_pairs"] = [[a + 1, b + 1] for a, b in skeleton.flip_pairs]
        category["sigmas"] = list(skeleton.sigmas)
    return category


@dataclass(frozen=True)
class People:
    """Generated people annotated in ``skeleton``, a layout of :data:`PERSON_KEYPOINTS` (COCO's 17 by
    default; CMU's BODY_25 with feet): what scenes draw beside the figures of a
    :class:`~openpose_lite.data.skeleton_figures.PoseBank`. Their areas are the pixels they show."""

    skeleton: Skeleton = SKELETON
    area_per_box: ClassVar[None] = None

    def __post_init__(self) -> None:
        names = self.skeleton.keypoints
        unknown = [n for n in names if n not in PERSON_KEYPOINTS]
        if unknown:
            raise ValueError(f"{self.skeleton.name}: generated people have no keypoint {unknown[0]!r}; they have "
                             f"{', '.join(PERSON_KEYPOINTS)}")
        if 0 < sum(n in names for n in _FOOT_POINTS) < len(_FOOT_POINTS):
            raise ValueError(f"{self.skeleton.name}: a generated foot has all of {', '.join(_FOOT_POINTS)}; "
                             "list them all or none")

    @property
    def category(self) -> dict:
        """The COCO category of their annotations (id 1, ``person``)."""
        return coco_category(self.skeleton, "person")


@dataclass(frozen=True)
class Figure:
    """A posed person in image pixels, ready to draw."""

    points: np.ndarray  # (K, 2) float64 keypoints, on the 1/16 px grid
    head_center: np.ndarray  # (2,)
    head_axes: tuple[float, float]  # half width, half height (px)
    head_angle: float  # degrees
    height: float  # px
    colours: dict[str, tuple[int, int, int]]
    skeleton: Skeleton = SKELETON  # the layout of ``points``

    @classmethod
    def place(cls, points: np.ndarray, head_center: np.ndarray, head_axes: tuple[float, float], head_angle: float,
              height: float, offset: np.ndarray, colours: dict[str, tuple[int, int, int]],
              skeleton: Skeleton = SKELETON) -> Figure:
        """A pose in person heights (pelvis at the origin) scaled to ``height`` px and moved by ``offset`` (2,)."""
        return cls(on_grid(points, height, offset), head_center * height + offset,
                   (head_axes[0] * height, head_axes[1] * height), head_angle, height, colours, skeleton)

    @property
    def labelled(self) -> np.ndarray:
        """(K,) bool: a person figure has every keypoint (figures of other skeletons may lack some)."""
        return np.ones(len(self.points), dtype=bool)


# ----------------------------------------------------------------------------- poses
def on_grid(points: np.ndarray, height: float, offset: np.ndarray) -> np.ndarray:
    """``points`` scaled by ``height`` and moved by ``offset`` (2,), snapped to the 1/16 px grid cv2 draws on."""
    return np.round((points * height + offset) * _ONE) / _ONE


def rotation_matrix(angle: float) -> np.ndarray:
    """(2, 2) rotation by ``angle`` radians (counter-clockwise on screen, whose y points down, for angle < 0)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def sample_body(rng: np.random.Generator) -> dict[str, float]:
    """One person's proportions (the keys of ``_BODY``, in person heights): ten draws, always in that order."""
    return {name: base * rng.uniform(0.92, 1.08) for name, base in _BODY.items()}


def place_head(pts: np.ndarray, neck: np.ndarray, b: dict[str, float], tilt: float, yaw: float) -> np.ndarray:
    """The head centre (2,) above ``neck`` for a head tilted by ``tilt`` radians, body ``b`` (:func:`sample_body`);
    writes nose, eyes and ears into ``pts`` (K, 2), inside the head ellipse. A turned head (``yaw``, in half
    widths) moves the face sideways."""
    head = rotation_matrix(tilt)
    head_center = neck + (head @ np.array([0.0, -1.0])) * b["neck_to_head"]
    half_w, half_h = b["head_half_w"], b["head_half_h"]

    def face(u: float, v: float) -> np.ndarray:  # (u, v) in head half-axes, v down
        return head_center + head @ np.array([u * half_w, v * half_h])

    pts[_KP["nose"]] = face(0.6 * yaw, 0.2)
    pts[_KP["left_eye"]] = face(0.42 + 0.5 * yaw, -0.15)
    pts[_KP["right_eye"]] = face(-0.42 + 0.5 * yaw, -0.15)
    pts[_KP["left_ear"]] = face(0.8 + 0.15 * yaw, 0.0)
    pts[_KP["right_ear"]] = face(-0.8 + 0.15 * yaw, 0.0)
    return head_center


def _direction(frame: np.ndarray, angle_deg: float, side: int) -> np.ndarray:
    """Unit vector at ``angle_deg`` from straight down in ``frame``, positive away from the body on ``side``."""
    a = math.radians(angle_deg)
    return frame @ np.array([side * math.sin(a), math.cos(a)])


def _foreshortened(rng: np.random.Generator, length: float) -> float:
    """A segment pointing towards the camera looks shorter."""
    return length * (rng.uniform(0.6, 1.0) if rng.random() < 0.3 else 1.0)


def _pose_arms(rng: np.random.Generator, pts: np.ndarray, body: np.ndarray, b: dict[str, float]) -> None:
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
        elbow = shoulder + _foreshortened(rng, b["upper_arm"]) * _direction(body, angle, side)
        pts[_KP[f"{prefix}_elbow"]] = elbow
        pts[_KP[f"{prefix}_wrist"]] = elbow + _foreshortened(rng, b["forearm"]) * _direction(body, angle + bend, side)


def _pose_legs(rng: np.random.Generator, pts: np.ndarray, lean: float, b: dict[str, float]) -> None:
    raised_leg = rng.choice([-1, 1]) if rng.random() < 0.15 else 0
    legs = rotation_matrix(0.3 * lean)  # legs carry the body, so they follow the lean only a little
    for side, prefix in ((1, "left"), (-1, "right")):
        if side == raised_leg:  # knee lifted, shin hanging back down
            angle = rng.uniform(40, 85)
            shin_angle = angle - rng.uniform(60, 110)
            thigh_len = b["thigh"] * rng.uniform(0.7, 1.0)
        elif rng.random() < 0.4:  # walking: legs apart, knee bent
            angle = rng.uniform(-12, 30)
            shin_angle = max(angle - rng.uniform(0, 45), -15.0)
            thigh_len = b["thigh"] * rng.uniform(0.8, 1.0)
        else:  # standing
            angle = rng.uniform(-3, 15)
            shin_angle = angle + rng.uniform(-8, 8)
            thigh_len = b["thigh"]
        knee = pts[_KP[f"{prefix}_hip"]] + thigh_len * _direction(legs, angle, side)
        pts[_KP[f"{prefix}_knee"]] = knee
        pts[_KP[f"{prefix}_ankle"]] = knee + _foreshortened(rng, b["shin"]) * _direction(legs, shin_angle, side)


def _in_layout(rng: np.random.Generator, pts: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """COCO-17 ``pts`` (17, 2) as the keypoints (K, 2) of ``skeleton`` (a :class:`People` layout): neck and
    mid-hip the midpoints, the feet placed from the ankles (the module docstring; draws only for a layout
    with feet, so COCO's scenes stay as they were)."""
    named = dict(zip(SKELETON.keypoints, pts))
    named["neck"] = 0.5 * (named["left_shoulder"] + named["right_shoulder"])
    named["mid_hip"] = 0.5 * (named["left_hip"] + named["right_hip"])
    if any(n in skeleton.keypoints for n in _FOOT_POINTS):
        for side, prefix in ((1, "left"), (-1, "right")):
            ankle = named[f"{prefix}_ankle"]
            down = ankle - named[f"{prefix}_knee"]
            down /= max(float(np.linalg.norm(down)), 1e-9)
            heel = ankle + _HEEL_DROP * down
            axis = down + rng.uniform(0.3, 1.2) * side * np.array([down[1], -down[0]])  # the toes turn out
            axis /= float(np.linalg.norm(axis))
            outer = side * np.array([axis[1], -axis[0]])  # across the foot, away from the body
            length = rng.uniform(*_FOOT_RANGE)
            named[f"{prefix}_heel"] = heel
            named[f"{prefix}_big_toe"] = heel + length * axis - _TOES_HALF * outer
            named[f"{prefix}_small_toe"] = heel + 0.8 * length * axis + _TOES_HALF * outer
    return np.stack([named[n] for n in skeleton.keypoints])


def sample_still_pose(rng: np.random.Generator,
                      skeleton: Skeleton = SKELETON) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """A front-facing pose in person heights, pelvis at the origin, y down: keypoints (K, 2) in ``skeleton``'s
    layout (a :class:`People` layout), head centre (2,), head half axes and head angle (degrees)."""
    b = sample_body(rng)
    turn = rng.uniform(0.55, 1.0)  # a body turned away from the camera shows narrower shoulders and hips
    lean = math.radians(float(np.clip(rng.normal(0.0, 7.0), -20.0, 20.0)))
    body = rotation_matrix(lean)  # maps the upright body frame to the leaning one
    up = body @ np.array([0.0, -1.0])
    across = body @ np.array([1.0, 0.0])  # towards the person's left: image right when facing the camera

    pts = np.zeros((SKELETON.num_keypoints, 2))
    neck = up * b["torso"]
    pts[_KP["left_shoulder"]] = neck + across * b["shoulder_half"] * turn
    pts[_KP["right_shoulder"]] = neck - across * b["shoulder_half"] * turn
    pts[_KP["left_hip"]] = across * b["hip_half"] * turn
    pts[_KP["right_hip"]] = -across * b["hip_half"] * turn
    _pose_arms(rng, pts, body, b)
    _pose_legs(rng, pts, lean, b)

    tilt = lean + math.radians(float(np.clip(rng.normal(0.0, 8.0), -25.0, 25.0)))
    head_center = place_head(pts, neck, b, tilt, yaw=rng.uniform(-0.35, 0.35))
    if skeleton != SKELETON:
        pts = _in_layout(rng, pts, skeleton)
    return pts, head_center, (b["head_half_w"], b["head_half_h"]), math.degrees(tilt)


# ----------------------------------------------------------------------------- colours
def _saturated_colour(rng: np.random.Generator, hue: float, value_scale: float = 1.0) -> tuple[int, int, int]:
    hsv = np.array([[[hue % 180, rng.uniform(150, 255), rng.uniform(140, 255) * value_scale]]], dtype=np.float32)
    bgr = cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr)


def sample_colours(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    """A person's BGR colours: ``skin``, ``shirt``, ``thigh`` and ``shin`` (trousers far from the shirt's hue)."""
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
    """Pixel coordinates as cv2's fixed-point integers (``_SHIFT`` fractional bits)."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _dark(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(c * 0.35) for c in colour)


def _draw_chain(image: np.ndarray, owner: np.ndarray, label: int, segments: list, thickness: int | list[int],
                outline: int) -> None:
    """Thick segments [(a, b, colour)] (``thickness`` one for all, or one each): all outlines first, so a
    chain reads as one limb and crossing limbs read as limbs."""
    widths = thickness if isinstance(thickness, list) else [thickness] * len(segments)
    for (a, b, colour), width in zip(segments, widths):
        pa, pb = tuple(_fp(a)), tuple(_fp(b))
        cv2.line(image, pa, pb, _dark(colour), width + 2 * outline, cv2.LINE_AA, _SHIFT)
        cv2.line(owner, pa, pb, label, width + 2 * outline, cv2.LINE_8, _SHIFT)
    for (a, b, colour), width in zip(segments, widths):
        cv2.line(image, tuple(_fp(a)), tuple(_fp(b)), colour, width, cv2.LINE_AA, _SHIFT)


def _draw_head(image: np.ndarray, owner: np.ndarray, label: int, fig: Figure, outline: int) -> None:
    p, c = fig.points, fig.colours
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
    at = fig.skeleton.index
    for name in ("left_ear", "right_ear"):
        cv2.ellipse(image, tuple(_fp(p[at(name)])), ear_axes, angle, 0, 360, feature, -1, cv2.LINE_AA, _SHIFT)
    for name in ("left_eye", "right_eye"):
        cv2.circle(image, tuple(_fp(p[at(name)])), int(_ONE * max(1.0, 0.14 * head_w)), (30, 30, 30), -1,
                   cv2.LINE_AA, _SHIFT)
    cv2.circle(image, tuple(_fp(p[at("nose")])), int(_ONE * max(1.0, 0.12 * head_w)), feature, -1, cv2.LINE_AA, _SHIFT)


def draw_figure(image: np.ndarray, owner: np.ndarray, label: int, fig: Figure, rng: np.random.Generator) -> None:
    """Draw one person on ``image`` (H, W, 3) and mark its pixels with ``label`` in ``owner`` (H, W); ``rng``
    decides which leg and which arm are in front (two shuffles)."""
    p, c, h = fig.points, fig.colours, fig.height
    arm_px = max(2, round(0.04 * h))
    leg_px = max(2, round(0.055 * h))
    outline = max(1, round(0.006 * h))

    def kp(name: str) -> np.ndarray:
        return p[fig.skeleton.index(name)]

    feet = "left_heel" in fig.skeleton.keypoints  # a People layout has all six foot points or none
    sides = ["left", "right"]
    rng.shuffle(sides)  # which leg / arm is drawn in front
    for side in sides:
        if feet:  # behind the shin, which covers the ankle
            heel, big, small = kp(f"{side}_heel"), kp(f"{side}_big_toe"), kp(f"{side}_small_toe")
            _draw_chain(image, owner, label, [(kp(f"{side}_ankle"), heel, _SHOE), (heel, big, _SHOE),
                                              (heel, small, _SHOE), (big, small, _SHOE)], max(2, round(0.03 * h)),
                        outline)
        _draw_chain(image, owner, label, [(kp(f"{side}_hip"), kp(f"{side}_knee"), c["thigh"]),
                                          (kp(f"{side}_knee"), kp(f"{side}_ankle"), c["shin"])], leg_px, outline)

    torso = _fp(np.stack([kp("left_shoulder"), kp("right_shoulder"), kp("right_hip"), kp("left_hip")]))
    cv2.fillPoly(image, [torso], c["shirt"], cv2.LINE_AA, _SHIFT)
    cv2.polylines(image, [torso], True, _dark(c["shirt"]), 2 * outline, cv2.LINE_AA, _SHIFT)
    cv2.fillPoly(owner, [torso], label, cv2.LINE_8, _SHIFT)
    cv2.polylines(owner, [torso], True, label, 2 * outline + 1, cv2.LINE_8, _SHIFT)

    neck = 0.5 * (kp("left_shoulder") + kp("right_shoulder"))
    _draw_chain(image, owner, label, [(neck, fig.head_center, c["skin"])], arm_px, outline)

    rng.shuffle(sides)
    for side in sides:
        _draw_chain(image, owner, label, [(kp(f"{side}_shoulder"), kp(f"{side}_elbow"), c["shirt"]),
                                          (kp(f"{side}_elbow"), kp(f"{side}_wrist"), c["skin"])], arm_px, outline)
    _draw_head(image, owner, label, fig, outline)


# ------------------------------------------------------------------------- annotation
def annotate_figure(fig: Any, owner: np.ndarray, label: int, xs: np.ndarray, ys: np.ndarray,
                    hidden: bool = False) -> tuple[np.ndarray, list[float], float]:
    """COCO keypoints (K, 3) float32, box [x, y, w, h] and area of a drawn figure, exact by construction
    (the rules of :mod:`openpose_lite.data.synthetic`; a keypoint the figure lacks is unlabelled, and a
    ``hidden`` person has no visible keypoint).

    ``fig``: a :class:`Figure`, or any figure with ``points`` (K, 2) and ``labelled`` (K,) bool.
    ``xs`` / ``ys``: the columns and rows of the pixels that show it (``owner == label``; at least one).
    """
    h, w = owner.shape
    pts = fig.points
    inside = fig.labelled & (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    cols = np.clip(np.rint(pts[:, 0]), 0, w - 1).astype(int)
    rows = np.clip(np.rint(pts[:, 1]), 0, h - 1).astype(int)
    visible = inside & (owner[rows, cols] == label) & (not hidden)
    kps = np.zeros((len(pts), 3), dtype=np.float32)
    kps[inside, :2] = pts[inside]
    kps[:, 2] = np.where(visible, 2, np.where(inside, 1, 0))
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    if inside.any():
        x0, y0 = min(x0, float(pts[inside, 0].min())), min(y0, float(pts[inside, 1].min()))
        x1, y1 = max(x1, float(pts[inside, 0].max())), max(y1, float(pts[inside, 1].max()))
    return kps, [x0, y0, x1 - x0, y1 - y0], float(len(xs))
