"""People tracked across video frames: stable person ids, a motion model, optional smoothing.

:class:`Tracker` is an online tracker for the poses of one video, fed one frame at a time, for any
:class:`~openpose_lite.skeleton.Skeleton` (with its OKS sigmas); numpy and scipy only. Each frame:

1. **Predict.** Every track moves each keypoint by that keypoint's velocity (constant velocity,
   measured over the last matched frames: the body's velocity plus a shrunk share,
   ``relative_velocity``, of the keypoint's own deviation from it, since a limb's motion is noisy).
2. **Associate.** Similarity is the OKS over the keypoints labelled in both
   (:func:`~openpose_lite.oks.mutual_oks`, which says why), at the track's scale ``s^2`` times
   ``1 + 0.5 m`` for a track unmatched in the last m frames. The Hungarian assignment
   (``scipy.optimize.linear_sum_assignment``) maximises the number of pairs at or above
   ``min_similarity`` first, then their total OKS; pairs under it never match.
3. **Update.** A matched track takes the person's keypoints; each keypoint's velocity becomes a
   blend (``velocity_smoothing``) of its old velocity and its displacement since last seen per
   frame in between. Keypoints missing this frame move with the body (the mean velocity of those
   seen); one unseen for more than ``max_age`` frames is forgotten. An unmatched track keeps its
   prediction.
4. **Birth and death.** An unmatched person starts a *tentative* track, deleted at its first miss;
   one matched in ``confirm_frames`` consecutive frames (counting its first) is *confirmed* and gets
   the next id (0, 1, 2, ... in order of confirmation, then of the input; never reused). A confirmed
   track unmatched for more than ``max_age`` consecutive frames is deleted.

A track's scale ``s^2`` is ``max(box area of the matched person's labelled keypoints, 0.95 * previous
scale)``, at least ``min_area``: the slow decay keeps a person's full size while partly hidden, and
follows a person walking away.

:meth:`Tracker.update` returns the people it was given, in order, with ``track_ids`` set (-1 for a
tentative person, or one without labelled keypoints or scoring under ``min_score``, never tracked).
With ``smooth=True`` their keypoints go through the One Euro filter (:mod:`openpose_lite.one_euro`),
restarted whenever a keypoint is missing; association always uses the raw keypoints.

**Time.** Without timestamps frames come at ``fps``: velocities are px per frame, ages count frames.
A live source's frames are irregular (the newest is taken, others dropped), so :meth:`Tracker.update`
also takes each frame's capture ``timestamp``; time then runs in frames of ``1 / fps`` s (a
prediction moves by velocity times elapsed time, ``max_age`` is ``max_age / fps`` s, One Euro samples
at the actual interval); frames exactly ``1 / fps`` apart track as without timestamps.

Shape legend: T tracks, D people in a frame, K keypoints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from openpose_lite.mot_metrics import MOT_METRICS, evaluate_tracking
from openpose_lite.oks import keypoint_box_areas, keypoint_similarity, mutual_oks
from openpose_lite.one_euro import OneEuroFilter, one_euro_step
from openpose_lite.skeleton import Skeleton
from openpose_lite.structures import Poses

# The last four live in their own modules and are importable from here too.
__all__ = ["NO_ID", "Tracker", "TrackerParams", "greedy_nearest_neighbour", "MOT_METRICS", "OneEuroFilter",
           "evaluate_tracking", "keypoint_similarity"]

logger = logging.getLogger(__name__)

NO_ID = -1

# Per matched frame, a track's scale may shrink to this fraction of the previous one (module docstring).
_SCALE_DECAY = 0.95
# A track unmatched for m frames is compared with the scale s^2 * (1 + m * this): the error of a
# constant-velocity prediction grows with the frames predicted.
_MISS_SCALE_GROWTH = 0.5
# Cost of a forbidden pair in the assignment: above any sum of allowed costs (each is <= 1),
# so the solver first maximises the number of allowed pairs.
_FORBIDDEN = 1e6
# Timestamps exactly 1 / fps apart give clock steps of 1 within rounding: ages compare with this slack.
_CLOCK_SLACK = 1e-6


@dataclass(frozen=True)
class TrackerParams:
    """How :class:`Tracker` associates, keeps and smooths people (the module docstring says how).

    ``min_similarity``: the OKS a match needs. ``confirm_frames``: consecutive matches before an id
    (1: at once). ``max_age``: frames a confirmed track survives unmatched. ``keypoint_threshold``:
    keypoints scoring at or below it are missing. ``min_score``: people under it are not tracked
    (a bottom-up network's low-scoring fragments would start tracks and take over others'; 0: all).
    ``velocity_smoothing``: weight of the newest velocity (1: the last displacement only).
    ``relative_velocity``: share of a keypoint's own deviation from the body's velocity kept (0: rigid).
    ``min_area``: the smallest scale s^2 (px^2). One Euro filter (Casiez et al., CHI 2012), when
    ``smooth``: ``min_cutoff`` (Hz), ``beta`` (Hz per px/s of speed), ``d_cutoff`` (Hz). ``fps``: the
    frame rate the per-frame settings count in.
    """

    # Chosen on the quickstart model's own people in 10 generated videos of 8 walkers, apart from
    # the benchmark's (bench_tracking.py --people 8 --videos 10 --seed 5 --checkpoint ... --min-score S):
    # min_score is what matters (IDF1 0.33 at 0, 0.66 at 0.4, 0.72 at 0.5, 0.755 at 0.55, 0.74 at 0.6);
    # min_similarity 0.1 to 0.3 tie there (0.755) and 0.1 follows the README's video with one id per
    # walker; confirm_frames 2 to 5 and max_age 30 to 90 move IDF1 by under 0.01. A minimum keypoint
    # count changes nothing beyond min_score: the person score already falls with the keypoints missing.
    min_similarity: float = 0.1
    confirm_frames: int = 3
    # 1.5 s at 30 fps: a person walking behind another the same way stays hidden for a second
    # or more (benchmarks/bench_tracking.py, true poses: 5 id switches at 15 frames, 2 at 45)
    max_age: int = 45
    keypoint_threshold: float = 0.0
    min_score: float = 0.55
    velocity_smoothing: float = 0.5
    relative_velocity: float = 0.5
    min_area: float = 32.0 * 32.0
    smooth: bool = False
    min_cutoff: float = 1.0
    beta: float = 0.2
    d_cutoff: float = 1.0
    fps: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"TrackerParams.min_similarity must be an OKS in [0, 1], got {self.min_similarity}")
        for name, low in (("confirm_frames", 1), ("max_age", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"TrackerParams.{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 < self.velocity_smoothing <= 1.0:
            raise ValueError(f"TrackerParams.velocity_smoothing must be in (0, 1], got {self.velocity_smoothing}")
        if not 0.0 <= self.relative_velocity <= 1.0:
            raise ValueError(f"TrackerParams.relative_velocity must be in [0, 1], got {self.relative_velocity}")
        for name in ("keypoint_threshold", "min_score"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"TrackerParams.{name} must be finite, got {getattr(self, name)}")
        for name in ("min_area", "min_cutoff", "d_cutoff", "fps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TrackerParams.{name} must be a positive number, got {value}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"TrackerParams.beta must be >= 0, got {self.beta}")


class Tracker:
    """Online multi-person tracker for the poses of one video (see the module docstring).

    ``skeleton`` fixes the people's skeleton; by default it is the one of the first frame.
    Feed every frame to :meth:`update`, in order, including frames without people.
    """

    def __init__(self, params: TrackerParams | None = None, skeleton: Skeleton | None = None) -> None:
        self.params = params or TrackerParams()
        if not isinstance(self.params, TrackerParams):
            raise TypeError(f"Tracker: params must be a TrackerParams, got {type(self.params).__name__}")
        self._fixed_skeleton = skeleton
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 0, for a new video."""
        self._skeleton: Skeleton | None = self._fixed_skeleton
        self._frame = -1
        # Time in frames of 1 / fps s: the frame index without timestamps, else from them.
        self._clock = -1.0
        self._step = 1.0  # frames elapsed since the previous frame
        self._timestamp: float | None = None  # the last frame's, in seconds (None: frames without)
        self._next_id = 0
        self._alloc(0 if self._skeleton is None else self._skeleton.num_keypoints)

    # The track table, one row per track: field -> (shape after the row axis, K for the keypoints; dtype).
    _ROWS = {
        "_ids": ((), np.int64),  # -1 while tentative
        "_pos": (("K", 2), np.float64),  # keypoint estimates at the last frame
        "_vel": (("K", 2), np.float64),  # px per frame (per 1 / fps s)
        "_vel_ok": (("K",), bool),  # the velocity was measured, not borrowed from the body
        "_known": (("K",), bool),  # the keypoint has an estimate
        "_obs_pos": (("K", 2), np.float64),  # where it was last seen
        "_obs_time": (("K",), np.float64),  # when, on the clock (-1: never)
        "_area": ((), np.float64),
        "_hits": ((), np.int64),  # consecutive matched frames
        "_matched_at": ((), np.float64),  # the clock at the last match
        "_f_x": (("K", 2), np.float64),  # One Euro state: last output, speed, has a previous sample
        "_f_dx": (("K", 2), np.float64),
        "_f_on": (("K",), bool),
    }

    def _alloc(self, k: int) -> None:
        """Empty track table for K keypoints."""
        for name, (shape, dtype) in self._ROWS.items():
            setattr(self, name, np.zeros((0, *(k if n == "K" else n for n in shape)), dtype))

    @property
    def skeleton(self) -> Skeleton | None:
        """The skeleton of the people tracked, None before the first frame (unless fixed)."""
        return self._skeleton

    @property
    def num_tracks(self) -> int:
        """Live tracks: tentative, confirmed and matched, and confirmed ones coasting unmatched."""
        return int(self._ids.shape[0])

    def _check(self, poses: Poses) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(poses, Poses):
            raise TypeError(f"Tracker.update: expected Poses, got {type(poses).__name__}")
        if len(poses) == 0:  # a frame without people: any skeleton will do (e.g. Poses.empty()'s default)
            k = poses.skeleton.num_keypoints if self._skeleton is None else self._skeleton.num_keypoints
            return np.zeros((0, k, 2)), np.zeros((0, k), bool)
        if self._skeleton is None:
            self._skeleton = poses.skeleton
            self._alloc(poses.skeleton.num_keypoints)
        elif poses.skeleton is not self._skeleton and poses.skeleton != self._skeleton:
            raise ValueError(
                f"Tracker.update: frame {self._frame + 1} has {poses.skeleton.name} poses but this tracker follows "
                f"{self._skeleton.name} people; convert them with Poses.as_skeleton, or call reset() for a new video"
            )
        kps = poses.keypoints.astype(np.float64)
        on = kps[..., 2] > self.params.keypoint_threshold
        if not np.isfinite(kps[..., :2][on]).all():
            bad = sorted({int(i) for i in np.nonzero(on & ~np.isfinite(kps[..., :2]).all(-1))[0]})
            raise ValueError(f"Tracker.update: frame {self._frame + 1}: people {bad[:5]} have labelled keypoints with non-finite x, y")
        return kps[..., :2], on

    def _advance(self, timestamp: float | None) -> None:
        """Move the clock to the next frame: one frame on, or the time since the last frame's timestamp."""
        first = self._frame < 0
        if not first and (timestamp is None) != (self._timestamp is None):
            raise ValueError(f"Tracker.update: frame {self._frame + 1} {'lacks' if timestamp is None else 'has'} a "
                             "timestamp; give every frame of a video one, or none (reset() starts a new video)")
        if timestamp is not None:
            if not math.isfinite(timestamp):
                raise ValueError(f"Tracker.update: timestamp must be a finite number of seconds, got {timestamp}")
            if not first and timestamp > self._timestamp:
                self._step = (timestamp - self._timestamp) * self.params.fps
            self._timestamp = float(timestamp)  # one that does not move forward keeps the last step (as One Euro's reference)
        self._frame += 1
        self._clock = 0.0 if first else self._clock + self._step

    def update(self, poses: Poses, timestamp: float | None = None) -> Poses:
        """Track the people of the next frame; returns them, in order, with ``track_ids`` set.

        ``timestamp``: the frame's capture time in seconds, for frames that are not ``1 / fps``
        apart (a live source; see the module docstring); give it for every frame or for none.
        Raises TypeError for anything but :class:`Poses`, and ValueError for people of another
        skeleton than the stream's (fixed by the first frame with people, unless given to the
        constructor), labelled keypoints with non-finite coordinates, or timestamps on some frames only.
        """
        xy, on = self._check(poses)
        self._advance(timestamp)
        p, now = self.params, self._clock
        d = xy.shape[0]
        # a person without keypoints, or scoring under min_score, can be matched to nothing
        trackable = on.any(1) & (poses.scores >= p.min_score)

        # 1. predict
        pred = self._pos + self._vel * self._step

        # 2. associate
        rows = cols = np.zeros(0, np.int64)
        t = self._ids.shape[0]
        if t and trackable.any():
            missed = now - self._step - self._matched_at  # frames unmatched before this one
            scale = self._area * (1.0 + _MISS_SCALE_GROWTH * missed)  # predictions grow uncertain
            sim = mutual_oks(pred, self._known, xy, on, scale, self._skeleton.sigmas_array)
            allowed = (sim >= p.min_similarity) & (sim > 0.0) & trackable[None, :]
            if allowed.any():
                rows, cols = linear_sum_assignment(np.where(allowed, 1.0 - sim, _FORBIDDEN))
                keep = allowed[rows, cols]
                rows, cols = rows[keep], cols[keep]

        # 3. update matched tracks
        matched = np.isin(np.arange(t), rows)
        new_pos = pred.copy()
        if rows.size:
            self._update_matched(rows, xy[cols], on[cols], now)
            new_pos[rows] = self._pos[rows]
        self._pos = new_pos
        self._matched_at = np.where(matched, now, self._matched_at)
        self._hits = np.where(matched, self._hits, 0)
        self._f_on &= matched[:, None]  # a person missing from a frame restarts its filter

        # 4. death: tentative tracks that missed, confirmed ones unmatched too long
        row_det = np.full(t, -1, np.int64)
        row_det[rows] = cols
        alive = matched | ((self._ids >= 0) & (now - self._matched_at <= p.max_age + _CLOCK_SLACK))
        if not alive.all():
            if logger.isEnabledFor(logging.DEBUG):
                gone = self._ids[~alive & (self._ids >= 0)]
                if gone.size:
                    logger.debug("frame %d: tracks %s ended", self._frame, gone.tolist())
            self._select(alive)
            row_det = row_det[alive]

        # 5. birth: a tentative track for every trackable person left over
        born = np.setdiff1d(np.flatnonzero(trackable), cols)
        if born.size:
            self._append(xy[born], on[born], now)
            row_det = np.concatenate([row_det, born])

        # 6. confirmation, in the order of the people in this frame
        ready = np.nonzero((self._ids < 0) & (self._hits >= p.confirm_frames))[0]
        if ready.size:
            ready = ready[np.argsort(row_det[ready], kind="stable")]
            self._ids[ready] = np.arange(self._next_id, self._next_id + ready.size)
            self._next_id += int(ready.size)

        # 7. output
        seen = row_det >= 0
        track_ids = np.full(d, NO_ID, np.int64)
        track_ids[row_det[seen]] = self._ids[seen]
        keypoints = poses.keypoints
        if p.smooth and seen.any():
            keypoints = self._smooth(row_det, seen, xy, on, keypoints)
        return Poses(keypoints, poses.scores.copy(), poses.skeleton, track_ids, hands=poses.hands, faces=poses.faces)

    def _update_matched(self, rows: np.ndarray, x: np.ndarray, m: np.ndarray, now: float) -> None:
        """Fold the matched people's keypoints (M, K, 2), labelled (M, K), into the tracks ``rows`` at clock ``now``."""
        p = self.params
        obs_time = self._obs_time[rows]
        had = m & (obs_time >= 0)
        gap = np.maximum(now - obs_time, _CLOCK_SLACK)[..., None]  # > 0 for a keypoint seen before
        meas = (x - self._obs_pos[rows]) / gap  # px per frame since the keypoint was last seen
        old_vel, vel_ok = self._vel[rows], self._vel_ok[rows]
        blended = np.where(vel_ok[..., None], p.velocity_smoothing * meas + (1.0 - p.velocity_smoothing) * old_vel, meas)
        # the body's velocity: the mean over the keypoints measured now, else the track's mean
        n_had = had.sum(1)
        seen_mean = np.where(had[..., None], blended, 0.0).sum(1) / np.maximum(n_had, 1)[:, None]
        known = self._known[rows]
        track_mean = np.where(known[..., None], old_vel, 0.0).sum(1) / np.maximum(known.sum(1), 1)[:, None]
        body = np.where((n_had > 0)[:, None], seen_mean, track_mean)  # (M, 2)
        # a keypoint's own motion, relative to the body's, is noisy and swings: shrink it
        body = body[:, None, :]
        self._vel[rows] = np.where(had[..., None], body + p.relative_velocity * (blended - body), body)
        self._vel_ok[rows] = had  # a velocity borrowed from the body is replaced by the next measurement
        self._pos[rows] = np.where(m[..., None], x, self._pos[rows] + body)
        self._obs_pos[rows] = np.where(m[..., None], x, self._obs_pos[rows])
        self._obs_time[rows] = np.where(m, now, obs_time)
        self._known[rows] = (self._known[rows] | m) & (now - self._obs_time[rows] <= p.max_age + _CLOCK_SLACK)
        box = keypoint_box_areas(x, m)
        self._area[rows] = np.maximum(np.maximum(box, _SCALE_DECAY * self._area[rows]), p.min_area)
        self._hits[rows] += 1

    def _append(self, x: np.ndarray, m: np.ndarray, now: float) -> None:
        """New tentative tracks for people (B, K, 2), labelled (B, K)."""
        t = self.num_tracks
        for name in self._ROWS:  # zero rows, then the fields that start otherwise
            value = getattr(self, name)
            setattr(self, name, np.concatenate([value, np.zeros((m.shape[0], *value.shape[1:]), value.dtype)]))
        x = np.where(m[..., None], x, 0.0)
        self._ids[t:] = NO_ID
        self._pos[t:] = self._obs_pos[t:] = x
        self._known[t:] = m
        self._obs_time[t:] = np.where(m, now, -1.0)
        self._area[t:] = np.maximum(keypoint_box_areas(x, m), self.params.min_area)
        self._hits[t:] = 1
        self._matched_at[t:] = now

    def _select(self, keep: np.ndarray) -> None:
        for name in self._ROWS:
            setattr(self, name, getattr(self, name)[keep])

    def _smooth(self, row_det: np.ndarray, seen: np.ndarray, xy: np.ndarray, on: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """One Euro step for the tracks seen this frame; returns the people's keypoints with filtered x, y."""
        p = self.params
        rows = np.nonzero(seen)[0]
        dets = row_det[rows]
        x, m = xy[dets], on[dets]
        f_on = self._f_on[rows] & m
        x_hat, dx_hat = one_euro_step(x, self._f_x[rows], self._f_dx[rows], f_on[..., None],
                                       p.min_cutoff, p.beta, p.d_cutoff, self._step / p.fps)
        self._f_x[rows] = np.where(m[..., None], x_hat, 0.0)
        self._f_dx[rows] = np.where(m[..., None], dx_hat, 0.0)
        self._f_on[rows] = m
        out = keypoints.copy()
        out[dets, :, :2] = np.where(m[..., None], x_hat, keypoints[dets, :, :2]).astype(np.float32)
        return out

    def track(self, frames: Sequence[Poses]) -> list[Poses]:
        """:meth:`update` on every frame of a video, in order (after a :meth:`reset`)."""
        self.reset()
        return [self.update(poses) for poses in frames]


def greedy_nearest_neighbour(frames: Sequence[Poses], gate_px: float = 60.0) -> list[Poses]:
    """The baseline :class:`Tracker` is measured against: each person, in order, takes the id not yet taken
    in this frame whose last keypoint centroid is nearest, within ``gate_px`` pixels, else a new id (no
    motion model, no confirmation, no OKS)."""
    last: dict[int, np.ndarray] = {}
    next_id, out = 0, []
    for poses in frames:
        ids: list[int] = []
        for kps in poses.keypoints:
            centre = kps[kps[:, 2] > 0, :2].mean(0)
            free = [(float(np.linalg.norm(centre - pos)), tid) for tid, pos in last.items() if tid not in ids]
            dist, tid = min(free, default=(np.inf, -1))
            if dist > gate_px:
                tid, next_id = next_id, next_id + 1
            ids.append(tid)
            last[tid] = centre
        out.append(Poses(poses.keypoints, poses.scores, poses.skeleton, np.array(ids, np.int64)))
    return out
