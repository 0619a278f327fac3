"""Skeleton definitions: the single source of keypoints, limbs, flip pairs and OKS sigmas.

Every channel count in the project derives from a :class:`Skeleton`; no other module
hard-codes 17, 18, 19 or 38.

Two skeletons are defined:

* ``COCO_17``: the layout of COCO annotations, used by datasets and evaluation.
* ``OPENPOSE_18``: the CMU COCO body model (17 COCO keypoints plus a neck, in CMU order),
  used by the bottom-up network so that the public CMU weights load unchanged.

Shape legend: N people, K keypoints, L limbs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """Keypoint names, limbs (directed keypoint pairs), left/right pairs and OKS sigmas.

    ``limbs[i] = (a, b)`` is directed: its part affinity field is the unit vector from
    keypoint ``a`` to keypoint ``b``, stored in PAF channels ``(2i, 2i + 1) = (x, y)``.
    ``background`` says whether the heatmap stack carries a trailing background channel.
    ``redundant_limbs`` are limbs that close a cycle of the limb graph (OpenPose's shoulder-ear
    limbs): a decoder uses them to join parts of one person, never to start a person.
    """

    name: str
    keypoints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    background: bool = False
    redundant_limbs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        if len(self.sigmas) != k:
            raise ValueError(f"{self.name}: {len(self.sigmas)} OKS sigmas for {k} keypoints")
        for a, b in self.limbs:
            if not (0 <= a < k and 0 <= b < k) or a == b:
                raise ValueError(f"{self.name}: limb ({a}, {b}) is not a pair of distinct keypoints")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if a in seen or b in seen or a == b:
                raise ValueError(f"{self.name}: keypoint repeated in flip pairs ({a}, {b})")
            seen.update((a, b))
        if any(not 0 <= i < len(self.limbs) for i in self.redundant_limbs):
            raise ValueError(f"{self.name}: redundant limb index out of range: {self.redundant_limbs}")
        # The mirrored skeleton must be a skeleton too, or PAF flipping has no meaning.
        _ = self._limb_mirror

    # ------------------------------------------------------------------ counts
    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def num_limbs(self) -> int:
        return len(self.limbs)

    @property
    def num_heatmaps(self) -> int:
        """Heatmap channels: one per keypoint, plus the background channel if any."""
        return self.num_keypoints + int(self.background)

    @property
    def num_pafs(self) -> int:
        """PAF channels: an (x, y) pair per limb."""
        return 2 * self.num_limbs

    def index(self, name: str) -> int:
        """Index of keypoint ``name``; a ValueError names the valid keypoints otherwise."""
        try:
            return self.keypoints.index(name)
        except ValueError:
            raise ValueError(f"{self.name} has no keypoint {name!r}; it has {list(self.keypoints)}") from None

    # --------------------------------------------------------------- flipping
    @cached_property
    def flip_permutation(self) -> np.ndarray:
        """(K,) int: keypoint k of a mirrored image is keypoint ``flip_permutation[k]`` of the original."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        perm.setflags(write=False)
        return perm

    @cached_property
    def _limb_mirror(self) -> tuple[np.ndarray, np.ndarray]:
        perm = self.flip_permutation
        lookup = {limb: i for i, limb in enumerate(self.limbs)}
        index = np.empty(self.num_limbs, dtype=np.int64)
        reversed_ = np.zeros(self.num_limbs, dtype=bool)
        for i, (a, b) in enumerate(self.limbs):
            mirrored = (int(perm[a]), int(perm[b]))
            if mirrored in lookup:
                index[i] = lookup[mirrored]
            elif mirrored[::-1] in lookup:  # e.g. hip-to-hip mirrors onto itself, reversed
                index[i] = lookup[mirrored[::-1]]
                reversed_[i] = True
            else:
                raise ValueError(f"{self.name}: the mirror {mirrored} of limb {i} ({a}, {b}) is not a limb")
        index.setflags(write=False)
        reversed_.setflags(write=False)
        return index, reversed_

    @property
    def limb_flip_permutation(self) -> np.ndarray:
        """(L,) int: limb l of a mirrored image is limb ``limb_flip_permutation[l]`` of the original.

        The mirror of limb (a, b) is (perm[a], perm[b]); it must be a limb, possibly stored in
        the opposite direction (see :attr:`limb_flip_reversed`), or the skeleton is rejected.
        """
        return self._limb_mirror[0]

    @property
    def limb_flip_reversed(self) -> np.ndarray:
        """(L,) bool: the mirrored limb is stored in the opposite direction (its PAF changes sign)."""
        return self._limb_mirror[1]

    @cached_property
    def heatmap_flip_permutation(self) -> np.ndarray:
        """(K [+1],) int: channel permutation of the heatmap stack under a horizontal flip."""
        perm = np.concatenate([self.flip_permutation, [self.num_keypoints]] if self.background else [self.flip_permutation])
        perm = perm.astype(np.int64)
        perm.setflags(write=False)
        return perm

    @cached_property
    def paf_flip_permutation(self) -> np.ndarray:
        """(2L,) int: channel permutation of the PAF stack under a horizontal flip."""
        limbs = self.limb_flip_permutation
        perm = np.stack([2 * limbs, 2 * limbs + 1], axis=1).reshape(-1)
        perm.setflags(write=False)
        return perm

    @cached_property
    def paf_flip_sign(self) -> np.ndarray:
        """(2L,) float32: the sign applied to each PAF channel after the permutation under a flip.

        A mirror negates x; a limb whose mirror is stored reversed also negates both components.
        """
        direction = np.where(self.limb_flip_reversed, -1.0, 1.0)
        sign = (np.stack([-direction, direction], axis=1).reshape(-1)).astype(np.float32)
        sign.setflags(write=False)
        return sign

    @cached_property
    def sigmas_array(self) -> np.ndarray:
        """(K,) float64 OKS sigmas."""
        arr = np.asarray(self.sigmas, dtype=np.float64)
        arr.setflags(write=False)
        return arr


# COCO keypoint order (the dataset's own), with its 19 drawing limbs (0-based).
COCO_17 = Skeleton(
    name="coco17",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    limbs=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
        (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
        (3, 5), (4, 6),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # OKS per-keypoint constants from the COCO keypoint evaluation.
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
)

# The CMU COCO body model. Heatmap channels follow this order, then background; limb i owns
# PAF channels (2i, 2i+1) in the CMU training order, so the public weights load unchanged.
OPENPOSE_18 = Skeleton(
    name="openpose18",
    keypoints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
        "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye",
        "left_eye", "right_ear", "left_ear",
    ),
    limbs=(
        (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4),
        (2, 16), (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16),
        (15, 17),
    ),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
    # COCO's sigmas moved to this order; the neck, which COCO does not label, takes the shoulders'.
    sigmas=(
        0.026, 0.079, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087,
        0.089, 0.107, 0.087, 0.089, 0.025, 0.025, 0.035, 0.035,
    ),
    background=True,
    # (right_shoulder, right_ear) and (left_shoulder, left_ear): CMU's decoder uses them only to complete people.
    redundant_limbs=(9, 13),
)

# OPENPOSE_18 index -> COCO_17 index (-1 for the neck, which COCO does not have).
_OPENPOSE_FROM_COCO = np.array([0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])


def _check_keypoints(keypoints: np.ndarray, k: int, what: str) -> np.ndarray:
    arr = np.asarray(keypoints)
    if arr.ndim != 3 or arr.shape[1:] != (k, 3):
        raise ValueError(f"{what}: expected keypoints of shape (N, {k}, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what}: expected numeric keypoints, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def coco_to_openpose(keypoints: np.ndarray) -> np.ndarray:
    """COCO-17 keypoints (N, 17, 3) -> OpenPose-18 keypoints (N, 18, 3).

    The neck is the mean of the two shoulders and is labelled only when both shoulders
    are; its third value is the smaller of the shoulders' (visibility or score).
    """
    kps = _check_keypoints(keypoints, COCO_17.num_keypoints, "coco_to_openpose")
    out = np.zeros((kps.shape[0], OPENPOSE_18.num_keypoints, 3), dtype=np.float32)
    has = _OPENPOSE_FROM_COCO >= 0
    out[:, has] = kps[:, _OPENPOSE_FROM_COCO[has]]
    ls, rs = kps[:, COCO_17.index("left_shoulder")], kps[:, COCO_17.index("right_shoulder")]
    both = (ls[:, 2] > 0) & (rs[:, 2] > 0)
    neck = OPENPOSE_18.index("neck")
    out[both, neck, :2] = 0.5 * (ls[both, :2] + rs[both, :2])
    out[both, neck, 2] = np.minimum(ls[both, 2], rs[both, 2])
    return out


def openpose_to_coco(keypoints: np.ndarray) -> np.ndarray:
    """OpenPose-18 keypoints (N, 18, 3) -> COCO-17 keypoints (N, 17, 3); the neck is dropped."""
    kps = _check_keypoints(keypoints, OPENPOSE_18.num_keypoints, "openpose_to_coco")
    out = np.zeros((kps.shape[0], COCO_17.num_keypoints, 3), dtype=np.float32)
    has = _OPENPOSE_FROM_COCO >= 0
    out[:, _OPENPOSE_FROM_COCO[has]] = kps[:, has]
    return out
