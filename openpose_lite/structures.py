"""Poses: the one result type of both branches.

Shape legend: N people, K keypoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from openpose_lite.cmu_skeletons import FACE_70, HAND_21
from openpose_lite.geometry import transform_keypoints
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton, coco_to_openpose, openpose_to_coco

__all__ = ["Poses", "zero_missing_keypoints"]

# Each person's hand and face keypoints: (left, right) HAND_21 hands, and a FACE_70 face.
_PART_SHAPES = {"hands": (2, HAND_21.num_keypoints, 3), "faces": (FACE_70.num_keypoints, 3)}


def zero_missing_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """A float32 copy of keypoints (..., K, 3) whose x, y are 0 wherever the third column is <= 0.

    The one statement of "a keypoint that was not found (or is not labelled) carries no
    position": :class:`Poses` applies it to every result, the training samples to their targets,
    so OpenPose JSON and COCO results write such a keypoint as (0, 0, 0), as CMU OpenPose does.
    """
    kps = np.array(keypoints, dtype=np.float32, copy=True)
    kps[kps[..., 2] <= 0, :2] = 0.0
    return kps


@dataclass(frozen=True)
class Poses:
    """People found in one image.

    ``keypoints`` (N, K, 3) float32 x, y, confidence; ``scores`` (N,) float32. Enforced here for every
    producer and writer: confidences are clipped to [0, 1] (maps overshoot), and a keypoint not found
    (confidence 0) sits at (0, 0) (:func:`zero_missing_keypoints`). ``track_ids`` (N,) int64: ids across a
    video's frames (:mod:`openpose_lite.tracking`), -1 for none yet (CMU's ``person_id``); ``None``: not
    tracked. ``hands`` (N, 2, 21, 3), left first, and ``faces`` (N, 70, 3), optional
    (:mod:`openpose_lite.inference.hands_faces`), follow the same rules.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    skeleton: Skeleton = field(default=OPENPOSE_18)
    track_ids: np.ndarray | None = None
    hands: np.ndarray | None = None
    faces: np.ndarray | None = None

    def __post_init__(self) -> None:
        kps = np.asarray(self.keypoints, dtype=np.float32)
        if kps.size == 0:
            kps = kps.reshape(0, self.skeleton.num_keypoints, 3)
        if kps.ndim != 3 or kps.shape[1:] != (self.skeleton.num_keypoints, 3):
            raise ValueError(
                f"Poses: keypoints must be (N, {self.skeleton.num_keypoints}, 3) for {self.skeleton.name}, got {kps.shape}"
            )
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if scores.shape[0] != kps.shape[0]:
            raise ValueError(f"Poses: {scores.shape[0]} scores for {kps.shape[0]} people")
        kps = zero_missing_keypoints(kps)  # a copy: the caller's array is never changed
        kps[..., 2] = np.clip(kps[..., 2], 0.0, 1.0)
        object.__setattr__(self, "keypoints", kps)
        object.__setattr__(self, "scores", np.clip(scores, 0.0, 1.0))
        if self.track_ids is not None:
            raw = np.asarray(self.track_ids)
            if raw.size and not np.issubdtype(raw.dtype, np.integer):
                # float ids would round silently (1.5 -> 1); only whole numbers are accepted
                if not np.issubdtype(raw.dtype, np.number) or not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
                    raise ValueError(f"Poses: track_ids must be integers, got {raw.dtype} values {raw.reshape(-1)[:5].tolist()}")
            ids = raw.astype(np.int64).reshape(-1)
            if raw.ndim > 1 or ids.shape[0] != kps.shape[0]:
                raise ValueError(f"Poses: track_ids must be ({kps.shape[0]},) for {kps.shape[0]} people, got shape {raw.shape}")
            if np.any(ids < -1):
                raise ValueError(f"Poses: track_ids must be >= 0, or -1 for a person without an id; got {ids[ids < -1][:5].tolist()}")
            object.__setattr__(self, "track_ids", ids)
        for name, shape in _PART_SHAPES.items():
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float32)
            if arr.size == 0:
                arr = arr.reshape(0, *shape)
            if arr.shape != (kps.shape[0], *shape):
                raise ValueError(f"Poses: {name} must be ({kps.shape[0]}, {', '.join(map(str, shape))}), got {arr.shape}")
            arr = zero_missing_keypoints(arr)
            arr[..., 2] = np.clip(arr[..., 2], 0.0, 1.0)
            object.__setattr__(self, name, arr)

    def _parts(self, index: np.ndarray | slice | None = None) -> dict[str, np.ndarray | None]:
        """``hands`` and ``faces`` (of ``index``), for a Poses made from this one."""
        return {n: (None if getattr(self, n) is None else getattr(self, n)[index if index is not None else slice(None)])
                for n in _PART_SHAPES}

    def _ids(self, index: np.ndarray | slice | None = None) -> np.ndarray | None:
        """The track ids (of ``index``), copied, or None when the people are not tracked."""
        if self.track_ids is None:
            return None
        return self.track_ids.copy() if index is None else self.track_ids[index]

    @classmethod
    def empty(cls, skeleton: Skeleton = OPENPOSE_18) -> "Poses":
        return cls(np.zeros((0, skeleton.num_keypoints, 3), np.float32), np.zeros(0, np.float32), skeleton)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def transform(self, matrix: np.ndarray) -> "Poses":
        """Move every found keypoint by a 2x3 affine (e.g. network input -> image pixels); missing ones stay (0, 0)."""
        parts = {n: None if v is None else transform_keypoints(matrix, v) for n, v in self._parts().items()}
        return Poses(transform_keypoints(matrix, self.keypoints), self.scores.copy(), self.skeleton, self._ids(), **parts)

    def sorted(self) -> "Poses":
        """People in descending score order."""
        order = np.argsort(-self.scores, kind="stable")
        return Poses(self.keypoints[order], self.scores[order], self.skeleton, self._ids(order), **self._parts(order))

    def select(self, index: np.ndarray) -> "Poses":
        return Poses(self.keypoints[index], self.scores[index], self.skeleton, self._ids(index), **self._parts(index))

    def as_skeleton(self, skeleton: Skeleton) -> "Poses":
        """The same people in another skeleton's keypoint order: COCO-17 <-> OpenPose-18, or another
        layout of the same keypoints (e.g. a skeleton's bottom-up and annotation layouts)."""
        if skeleton == self.skeleton:
            return self
        if self.skeleton == OPENPOSE_18 and skeleton == COCO_17:
            return Poses(openpose_to_coco(self.keypoints), self.scores, COCO_17, self._ids(), **self._parts())
        if self.skeleton == COCO_17 and skeleton == OPENPOSE_18:
            return Poses(coco_to_openpose(self.keypoints), self.scores, OPENPOSE_18, self._ids(), **self._parts())
        if skeleton.keypoints == self.skeleton.keypoints:
            return Poses(self.keypoints, self.scores, skeleton, self._ids(), **self._parts())
        raise ValueError(f"no conversion from {self.skeleton.name} to {skeleton.name}")

    @staticmethod
    def concatenate(items: "list[Poses]", skeleton: Skeleton = OPENPOSE_18) -> "Poses":
        """All people of ``items`` in ``skeleton``'s order; track ids are kept when any item has
        them (people of untracked items get -1)."""
        items = [p.as_skeleton(skeleton) for p in items]
        if not items:
            return Poses.empty(skeleton)
        ids = None
        if any(p.track_ids is not None for p in items):
            ids = np.concatenate([p.track_ids if p.track_ids is not None else np.full(len(p), -1, np.int64) for p in items])
        parts = {}
        for name, shape in _PART_SHAPES.items():
            if any(getattr(p, name) is not None for p in items):  # people of items without them: none found
                parts[name] = np.concatenate([getattr(p, name) if getattr(p, name) is not None
                                              else np.zeros((len(p), *shape), np.float32) for p in items])
        return Poses(np.concatenate([p.keypoints for p in items]), np.concatenate([p.scores for p in items]), skeleton, ids,
                     **parts)

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict]:
        """COCO keypoint results: one dict per person in the annotations' keypoint order (COCO-17 for
        people: :meth:`Skeleton.annotation_layout`), missing keypoints (0, 0, 0).

        ``category_id``: the category the results are scored against (COCO's person is 1).
        Tracked people (``track_ids`` set) also carry ``"track_id"`` (PoseTrack's field; -1 for a
        person without an id); pycocotools ignores it.
        """
        kps = self.as_skeleton(self.skeleton.annotation_layout()).keypoints
        out = []
        for i, score in enumerate(self.scores):
            out.append({"image_id": int(image_id), "category_id": int(category_id), "keypoints": _flat(kps, i),
                        "score": float(score)})
            if self.track_ids is not None:
                out[-1]["track_id"] = int(self.track_ids[i])
        return out

    @property
    def openpose_skeleton(self) -> Skeleton:
        """The keypoint order of :meth:`to_openpose_dict`: OpenPose-18 for people (CMU's COCO body model),
        the skeleton's own otherwise."""
        return OPENPOSE_18 if self.skeleton.is_person else self.skeleton

    def to_openpose_json(self, indent: int | None = None) -> str:
        """The text of an OpenPose JSON file (version 1.3): :meth:`to_openpose_dict` serialised."""
        return json.dumps(self.to_openpose_dict(), indent=indent)

    def to_openpose_dict(self) -> dict:
        """An OpenPose JSON file (version 1.3) as a dict: ``people[].pose_keypoints_2d``, K (x, y, c) triples, missing (0, 0, 0),
        in OpenPose-18 order for people (CMU's COCO body model) and in the skeleton's own order otherwise.

        ``person_id`` is ``[track id]`` for tracked people and ``[-1]`` otherwise, as in CMU OpenPose.
        """
        kps = self.as_skeleton(self.openpose_skeleton).keypoints
        people = [{
            "person_id": [int(self.track_ids[i]) if self.track_ids is not None else -1],
            "pose_keypoints_2d": _flat(kps, i),
            "face_keypoints_2d": _flat(self.faces, i),
            "hand_left_keypoints_2d": _flat(self.hands, i, 0),
            "hand_right_keypoints_2d": _flat(self.hands, i, 1),
            "pose_keypoints_3d": [],
            "face_keypoints_3d": [],
            "hand_left_keypoints_3d": [],
            "hand_right_keypoints_3d": [],
        } for i in range(len(kps))]
        return {"version": 1.3, "people": people}


def _flat(parts: np.ndarray | None, *index: int) -> list[float]:
    """One person's keypoints (of ``parts[index]``) as flat (x, y, c) triples rounded to 3 decimals; [] for None."""
    if parts is None:
        return []
    return [round(float(v), 3) for v in parts[index].astype(np.float64).reshape(-1)]
