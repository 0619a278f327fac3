"""Poses: the one result type of both branches.

Shape legend: N people, K keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from openpose_lite.geometry import transform_keypoints
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton, coco_to_openpose, openpose_to_coco


@dataclass(frozen=True)
class Poses:
    """People found in one image.

    ``keypoints`` (N, K, 3) float32 holds x, y and a score per keypoint; a keypoint that was
    not found has score 0 (its x, y are then meaningless). ``scores`` (N,) float32 ranks people.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    skeleton: Skeleton = field(default=OPENPOSE_18)

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
        object.__setattr__(self, "keypoints", kps)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls, skeleton: Skeleton = OPENPOSE_18) -> "Poses":
        return cls(np.zeros((0, skeleton.num_keypoints, 3), np.float32), np.zeros(0, np.float32), skeleton)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def transform(self, matrix: np.ndarray) -> "Poses":
        """Move every keypoint by a 2x3 affine (e.g. network input -> image pixels)."""
        return Poses(transform_keypoints(matrix, self.keypoints), self.scores.copy(), self.skeleton)

    def sorted(self) -> "Poses":
        """People in descending score order."""
        order = np.argsort(-self.scores, kind="stable")
        return Poses(self.keypoints[order], self.scores[order], self.skeleton)

    def select(self, index: np.ndarray) -> "Poses":
        return Poses(self.keypoints[index], self.scores[index], self.skeleton)

    def as_skeleton(self, skeleton: Skeleton) -> "Poses":
        """The same people in another skeleton's keypoint order (COCO-17 <-> OpenPose-18)."""
        if skeleton == self.skeleton:
            return self
        if self.skeleton == OPENPOSE_18 and skeleton == COCO_17:
            return Poses(openpose_to_coco(self.keypoints), self.scores, COCO_17)
        if self.skeleton == COCO_17 and skeleton == OPENPOSE_18:
            return Poses(coco_to_openpose(self.keypoints), self.scores, OPENPOSE_18)
        raise ValueError(f"no conversion from {self.skeleton.name} to {skeleton.name}")

    @staticmethod
    def concatenate(items: "list[Poses]", skeleton: Skeleton = OPENPOSE_18) -> "Poses":
        items = [p.as_skeleton(skeleton) for p in items]
        if not items:
            return Poses.empty(skeleton)
        return Poses(np.concatenate([p.keypoints for p in items]), np.concatenate([p.scores for p in items]), skeleton)

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict]:
        """COCO keypoint results: one dict per person, COCO-17 order, missing keypoints (0, 0, 0)."""
        kps = self.as_skeleton(COCO_17).keypoints.astype(np.float64)
        out = []
        for person, score in zip(kps, self.scores):
            found = person[:, 2] > 0
            flat = np.where(found[:, None], person, 0.0)
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_id),
                    "keypoints": [round(float(v), 3) for v in flat.reshape(-1)],
                    "score": float(score),
                }
            )
        return out

    def to_openpose_json(self) -> dict:
        """OpenPose JSON (version 1.3): ``people[].pose_keypoints_2d`` in OpenPose-18 order, missing (0, 0, 0)."""
        kps = self.as_skeleton(OPENPOSE_18).keypoints.astype(np.float64)
        people = []
        for person in kps:
            found = person[:, 2] > 0
            flat = np.where(found[:, None], person, 0.0)
            people.append(
                {
                    "person_id": [-1],
                    "pose_keypoints_2d": [round(float(v), 3) for v in flat.reshape(-1)],
                    "face_keypoints_2d": [],
                    "hand_left_keypoints_2d": [],
                    "hand_right_keypoints_2d": [],
                    "pose_keypoints_3d": [],
                    "face_keypoints_3d": [],
                    "hand_left_keypoints_3d": [],
                    "hand_right_keypoints_3d": [],
                }
            )
        return {"version": 1.3, "people": people}
