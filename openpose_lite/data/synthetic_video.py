"""Generated videos of people walking, with a true identity for every person in every frame.

The stick figures of :mod:`openpose_lite.data.figures` walk across one static background (a fixed camera),
each at its own speed, depth and gait (legs and arms swinging, torso leaning, head turned where it goes), both
ways, so they cross, enter and leave. Nearer people are larger, lower and drawn over farther ones. Each frame is
annotated as a still scene is, and besides: a person showing less than ``VideoConfig.hidden_below`` of its drawn
pixels is *hidden* (every keypoint v=1, as a detector would not see it); ``track_id`` is its index in the video.
:func:`ground_truth_poses` gives what a perfect detector sees, :func:`simulate_detections` spoils it for a tracker.
Everything is deterministic for a seed.

Shape legend: F frames, N people in a frame, K keypoints (COCO-17), H x W frame size.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from openpose_lite.data.figures import KEYPOINT_INDEX as _KP
from openpose_lite.data.figures import (SKELETON, Figure, annotate_figure, draw_figure, place_head, rotation_matrix,
                                        sample_body, sample_colours)
from openpose_lite.data.synthetic import coco_person_annotation, coco_person_category, render_background, write_coco
from openpose_lite.io import atomic_write_path
from openpose_lite.params import Params
from openpose_lite.structures import Poses

__all__ = ["VideoConfig", "VideoFrame", "generate_video", "ground_truth_poses", "simulate_detections", "write_video"]

logger = logging.getLogger(__name__)

_SIDES = ((1, "left"), (-1, "right"))  # +1: towards image right, a front-facing person's left


@dataclass(frozen=True)
class VideoConfig(Params):
    """How a synthetic video is generated (a :class:`~openpose_lite.params.Params`: typed, checked on creation).

    ``person_height_range``: fractions of the frame height (near people are the tall ones);
    ``speed_range``: person heights per second; ``hidden_below``: see the module docstring.
    """

    _section: typing.ClassVar[str] = "VideoConfig"

    image_hw: tuple[int, int] = (360, 640)
    num_frames: int = 90
    num_people: int = 8
    fps: float = 30.0
    seed: int = 0
    person_height_range: tuple[float, float] = (0.35, 0.6)
    speed_range: tuple[float, float] = (0.5, 1.6)
    hidden_below: float = 0.5
    clutter_range: tuple[int, int] = (4, 12)

    def _check(self) -> None:
        self._require(min(self.image_hw) >= 32, "image_hw", "at least (32, 32)")
        self._require(self.num_frames >= 1, "num_frames", "an integer >= 1 (a video has frames)")
        for name in ("num_people", "seed"):
            self._require(getattr(self, name) >= 0, name, "a non-negative integer")
        limit = np.iinfo(np.uint16).max  # people are labelled in a uint16 owner map
        self._require(self.num_people < limit, "num_people", f"an integer below {limit}")
        self._require(math.isfinite(self.fps) and self.fps > 0, "fps", "a positive number")
        lo, hi = self.person_height_range
        self._require(0 < lo <= hi <= 1.5, "person_height_range", "fractions 0 < min <= max <= 1.5")
        self._require(0 <= self.speed_range[0] <= self.speed_range[1], "speed_range", "(min, max) with 0 <= min <= max")
        self._require(0 <= self.hidden_below <= 1, "hidden_below", "a number in [0, 1]")
        self._require(0 <= self.clutter_range[0] <= self.clutter_range[1], "clutter_range",
                      "(min, max) with 0 <= min <= max")


@dataclass(frozen=True)
class VideoFrame:
    """Frame ``index`` and its people: ``image``, ``keypoints``, ``boxes`` and ``areas`` as in a
    :class:`~openpose_lite.data.synthetic.Scene`, ``track_ids`` (N,) int64 true identities, ``hidden`` (N,)
    bool people mostly behind others (all keypoints v <= 1)."""

    index: int
    image: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    track_ids: np.ndarray
    hidden: np.ndarray


@dataclass(frozen=True)
class _Walker:
    """One person's body and walk; positions in px, angles in radians."""

    body: dict[str, float]  # segment lengths in person heights
    turn: float  # shoulder and hip width factor (a body turned from the camera is narrower)
    height: float
    depth: float  # 0 far .. 1 near: draw order
    ground_y: float  # image row of the feet
    x0: float  # pelvis x at frame 0
    direction: int  # +1 walks towards image right, -1 left
    speed: float  # px per frame
    phase0: float
    phase_rate: float  # gait cycle radians per frame
    leg_swing: float
    knee_bend: float
    arm_swing: float
    elbow_bend: float
    lean: float
    colours: dict[str, tuple[int, int, int]]
    draw_seed: int


def _sample_walker(rng: np.random.Generator, cfg: VideoConfig, index: int) -> _Walker:
    h, w = cfg.image_hw
    body = sample_body(rng)  # proportions vary a little, as in the still scenes
    depth = float(rng.uniform(0.0, 1.0))
    lo, hi = cfg.person_height_range
    height = (lo + (hi - lo) * depth) * h
    ground_y = (0.62 + 0.35 * depth) * h  # perspective: nearer people stand lower in the frame
    direction = 1 if rng.random() < 0.5 else -1
    # start where the walk crosses the middle of the frame: people walking towards each other meet
    start = rng.uniform(-0.15, 0.6) * w
    x0 = start if direction > 0 else w - start
    speed = rng.uniform(*cfg.speed_range) * height / cfg.fps
    cycle = rng.uniform(0.75, 0.95) * height  # px walked per gait cycle (two steps)
    return _Walker(
        body=body,
        turn=float(rng.uniform(0.55, 0.9)),
        height=float(height),
        depth=depth,
        ground_y=float(ground_y),
        x0=float(x0),
        direction=direction,
        speed=float(speed),
        phase0=float(rng.uniform(0, 2 * math.pi)),
        phase_rate=float(2 * math.pi * speed / cycle),
        leg_swing=math.radians(rng.uniform(18, 30)),
        knee_bend=math.radians(rng.uniform(25, 50)),
        arm_swing=math.radians(rng.uniform(12, 35)),
        elbow_bend=math.radians(rng.uniform(10, 40)),
        lean=math.radians(rng.uniform(0, 6)),
        colours=sample_colours(rng),
        draw_seed=int(rng.integers(2**31)) ^ index,
    )


def _walking_pose(wk: _Walker, frame: int) -> Figure:
    """The walker's figure at ``frame``, in image pixels."""
    b, d, hgt = wk.body, wk.direction, wk.height
    phase = wk.phase0 + wk.phase_rate * frame
    s, c = math.sin(phase), math.cos(phase)

    lean = rotation_matrix(d * wk.lean)  # the torso leans into the walk
    up, across = lean @ np.array([0.0, -1.0]), lean @ np.array([1.0, 0.0])
    pts = np.zeros((SKELETON.num_keypoints, 2))
    neck = up * b["torso"]
    for side, name in _SIDES:
        pts[_KP[f"{name}_shoulder"]] = neck + across * side * b["shoulder_half"] * wk.turn
        pts[_KP[f"{name}_hip"]] = np.array([side * b["hip_half"] * wk.turn, 0.0])

    def ray(angle: float, splay: float = 0.0) -> np.ndarray:  # from straight down, positive forwards
        return np.array([d * math.sin(angle) + splay, math.cos(angle)])

    for side, name in _SIDES:
        swing = side * s  # the two legs are half a cycle apart
        thigh = wk.leg_swing * swing
        shin = thigh - wk.knee_bend * max(0.0, side * c)  # the knee bends while the leg swings forward
        knee = pts[_KP[f"{name}_hip"]] + b["thigh"] * ray(thigh)
        pts[_KP[f"{name}_knee"]] = knee
        pts[_KP[f"{name}_ankle"]] = knee + b["shin"] * ray(shin)
        arm = -wk.arm_swing * swing  # arms swing against the legs
        elbow = pts[_KP[f"{name}_shoulder"]] + b["upper_arm"] * ray(arm, side * 0.08)
        pts[_KP[f"{name}_elbow"]] = elbow
        pts[_KP[f"{name}_wrist"]] = elbow + b["forearm"] * ray(arm + wk.elbow_bend, side * 0.05)

    tilt = d * wk.lean * 0.5
    head_center = place_head(pts, neck, b, tilt, yaw=0.3 * d)  # the face turns towards where the person goes

    bob = 0.012 * abs(c)  # the pelvis rises as a leg passes under it
    leg = b["thigh"] + b["shin"]
    origin = np.array([wk.x0 + d * wk.speed * frame, wk.ground_y - (0.97 * leg + bob) * hgt])
    return Figure.place(pts, head_center, (b["head_half_w"], b["head_half_h"]), math.degrees(tilt), hgt, origin,
                        wk.colours)


def _window(fig: Figure, image_hw: tuple[int, int]) -> tuple[slice, slice] | None:
    """Rows and columns of the frame that the figure can cover, None when it is off screen."""
    h, w = image_hw
    r = max(fig.head_axes) + 0.06 * fig.height + 2  # head, half the thickest limb, outline
    lo = np.floor(np.minimum(fig.points.min(0), fig.head_center) - r).astype(int)
    hi = np.ceil(np.maximum(fig.points.max(0), fig.head_center) + r).astype(int)
    if hi[0] < 0 or hi[1] < 0 or lo[0] > w - 1 or lo[1] > h - 1:
        return None
    return slice(max(lo[1], 0), min(hi[1] + 1, h)), slice(max(lo[0], 0), min(hi[0] + 1, w))


def _render_frame(index: int, background: np.ndarray, walkers: Sequence[_Walker], order: np.ndarray,
                  cfg: VideoConfig) -> VideoFrame:
    image = background.copy()
    owner = np.zeros(cfg.image_hw, dtype=np.uint16)  # 0: nobody, i + 1: person i
    drawn: list[tuple[int, Figure, tuple[slice, slice], int]] = []
    for i in order:  # far to near, so nearer people cover farther ones
        fig = _walking_pose(walkers[i], index)
        window = _window(fig, cfg.image_hw)
        if window is None:
            continue
        # a fresh generator per frame: the same limbs are drawn in front in every frame
        draw_figure(image, owner, int(i) + 1, fig, np.random.default_rng(walkers[i].draw_seed))
        drawn.append((int(i), fig, window, int(np.count_nonzero(owner[window] == i + 1))))  # every pixel it covers

    keypoints, boxes, areas, ids, hidden = [], [], [], [], []
    for i, fig, window, full in sorted(drawn, key=lambda person: person[0]):  # people listed by id
        ys, xs = np.nonzero(owner[window] == i + 1)
        if len(xs) == 0:
            continue
        ys, xs = ys + window[0].start, xs + window[1].start
        is_hidden = len(xs) < cfg.hidden_below * full
        kps, box, area = annotate_figure(fig, owner, i + 1, xs, ys, hidden=is_hidden)
        keypoints.append(kps)
        boxes.append(box)
        areas.append(area)
        ids.append(i)
        hidden.append(is_hidden)
    return VideoFrame(index, image, np.array(keypoints, dtype=np.float32).reshape(-1, SKELETON.num_keypoints, 3),
                      np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(areas, dtype=np.float32),
                      np.array(ids, dtype=np.int64), np.array(hidden, dtype=bool))


def generate_video(cfg: VideoConfig | None = None) -> list[VideoFrame]:
    """All ``cfg.num_frames`` frames of the video ``cfg`` describes, with their annotations."""
    cfg = cfg or VideoConfig()
    rng = np.random.default_rng([int(cfg.seed), 0x7669])  # not the still scenes' stream for the same seed
    background = render_background(rng, cfg.image_hw, cfg.clutter_range)
    walkers = [_sample_walker(rng, cfg, i) for i in range(cfg.num_people)]
    order = np.argsort([wk.depth for wk in walkers], kind="stable")
    return [_render_frame(f, background, walkers, order, cfg) for f in range(cfg.num_frames)]


def ground_truth_poses(frames: Sequence[VideoFrame], min_visible: int = 1) -> list[Poses]:
    """Per frame, the people a perfect detector sees, as COCO-17 Poses with their true ``track_ids``: only
    visible keypoints (v=2) labelled (score 1), only people with at least ``min_visible`` of them (not hidden)."""
    if int(min_visible) != min_visible or min_visible < 1:
        raise ValueError(f"ground_truth_poses: min_visible must be an integer >= 1, got {min_visible!r}")
    out = []
    for frame in frames:
        visible = frame.keypoints[..., 2] == 2
        keep = visible.sum(1) >= min_visible
        kps = frame.keypoints[keep].copy()
        kps[..., 2] = visible[keep].astype(np.float32)
        out.append(Poses(kps, np.ones(len(kps), np.float32), SKELETON, frame.track_ids[keep]))
    return out


def simulate_detections(truth: Sequence[Poses], seed: int = 0, keypoint_noise_px: float = 3.0,
                        drop_person_prob: float = 0.05, drop_keypoint_prob: float = 0.1,
                        min_keypoints: int = 3) -> list[Poses]:
    """A detector's view of ``truth`` (e.g. :func:`ground_truth_poses`): per frame, Poses without ids, people in
    random order. Keypoints get Gaussian noise of ``keypoint_noise_px`` per coordinate, scores in [0.3, 1) (the
    person's: their mean), and are lost with ``drop_keypoint_prob``; people are lost with ``drop_person_prob``
    or below ``min_keypoints``. Deterministic for ``seed``.
    """
    for name, value in (("drop_person_prob", drop_person_prob), ("drop_keypoint_prob", drop_keypoint_prob)):
        if not 0 <= value <= 1:
            raise ValueError(f"simulate_detections: {name} must be in [0, 1], got {value}")
    if not keypoint_noise_px >= 0:
        raise ValueError(f"simulate_detections: keypoint_noise_px must be >= 0, got {keypoint_noise_px}")
    rng = np.random.default_rng([int(seed), 0x646574])
    out = []
    for poses in truth:
        kps = poses.keypoints.astype(np.float64)
        n, k = kps.shape[:2]
        on = (kps[..., 2] > 0) & (rng.random((n, k)) >= drop_keypoint_prob)
        xy = kps[..., :2] + rng.normal(0.0, keypoint_noise_px, (n, k, 2))
        score = rng.uniform(0.3, 1.0, (n, k))
        keep = (on.sum(1) >= max(int(min_keypoints), 1)) & (rng.random(n) >= drop_person_prob)
        order = rng.permutation(np.nonzero(keep)[0])
        det = np.concatenate([np.where(on[..., None], xy, 0.0), np.where(on, score, 0.0)[..., None]], axis=-1)[order]
        person = np.array([s[m].mean() for s, m in zip(score[order], on[order])], dtype=np.float32).reshape(-1)
        out.append(Poses(det.astype(np.float32), person, poses.skeleton))
    return out


# ---------------------------------------------------------------------------- files
def write_video(out_dir: str | Path, cfg: VideoConfig | None = None) -> tuple[Path, Path]:
    """Write ``out_dir/video.mp4`` (mp4v) and ``out_dir/annotations.json`` atomically; returns their paths.

    The COCO file has an image per frame (``id`` = frame index + 1, ``frame_index``, the video's ``file_name``),
    and an annotation per person and frame with its ``track_id`` (PoseTrack's field) and ``hidden``.
    """
    cfg = cfg or VideoConfig()
    out_dir = Path(out_dir)
    frames = generate_video(cfg)
    h, w = cfg.image_hw

    def encode(tmp: str) -> None:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(cfg.fps), (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"write_video: OpenCV cannot write mp4v video to {tmp} (no FFmpeg backend?)")
        try:
            for frame in frames:
                writer.write(frame.image)
        finally:
            writer.release()

    video_path = atomic_write_path(out_dir / "video.mp4", encode)

    images, annotations = [], []
    for frame in frames:
        image_id = frame.index + 1
        images.append({"id": image_id, "file_name": video_path.name, "frame_index": frame.index, "height": h,
                       "width": w})
        people = zip(frame.keypoints, frame.boxes, frame.areas, frame.track_ids, frame.hidden)
        for kps, box, area, track_id, is_hidden in people:
            annotations.append(coco_person_annotation(len(annotations) + 1, image_id, kps, box, area,
                                                      track_id=track_id, hidden=is_hidden))
    info = {"description": "openpose_lite synthetic video", "video_config": dataclasses.asdict(cfg)}
    video = {"id": 1, "file_name": video_path.name, "fps": float(cfg.fps), "num_frames": len(frames)}
    ann_path = write_coco(out_dir / "annotations.json", info, images, annotations, coco_person_category(),
                          videos=[video])
    logger.info("wrote a %d-frame synthetic video with %d person-frames to %s", len(frames), len(annotations), out_dir)
    return video_path, ann_path
