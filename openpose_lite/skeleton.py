"""Skeleton definitions: the single source of keypoints, limbs, flip pairs, OKS sigmas and colours.

Every channel count in the project derives from a :class:`Skeleton`. Defined here are the person layouts of the
public weights: ``COCO_17`` (COCO's annotations) and ``OPENPOSE_18`` (CMU's COCO body model: COCO's keypoints plus
a neck in CMU order, so that CMU's weights load unchanged). Any other skeleton comes from a COCO category
(:mod:`openpose_lite.coco.skeleton`) or a checkpoint (:meth:`Skeleton.to_dict` / :meth:`Skeleton.from_dict`).
:meth:`Skeleton.annotation_layout` (top-down models, results, evaluation) and :meth:`Skeleton.bottomup_layout`
(PAF models) are the two views of one skeleton; for the person, COCO_17 and OPENPOSE_18.

Shape legend: N people, K keypoints, L limbs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

from openpose_lite.io import env_limit
from openpose_lite.limbs import Colour, derived_colours, limb_components, spanning_limbs
from openpose_lite.params import brief

__all__ = ["COCO_17", "LIMBS_PER_KEYPOINT", "MAX_KEYPOINTS", "MAX_KEYPOINTS_ENV", "OPENPOSE_18", "SIGMA_RANGE",
           "Skeleton", "check_sigmas", "check_skeleton_size", "coco_to_openpose", "openpose_to_coco"]

# The most keypoints a skeleton may have (raised for a run by the environment variable), and limbs per
# keypoint of that bound. Real ones have 17 (COCO) to 133 keypoints and 65 limbs (COCO-WholeBody);
# completing limbs weighs K^2 pairs per instance, and each limb is 2 PAF channels.
MAX_KEYPOINTS, MAX_KEYPOINTS_ENV, LIMBS_PER_KEYPOINT = 1000, "OPENPOSE_LITE_MAX_KEYPOINTS", 8
# OKS sigmas accepted: published ones run from 0.007 (COCO-WholeBody's face, open-mmlab/mmpose coco_wholebody.py)
# to 0.107 (COCO's hips), DeepLabCut's default is 0.1. At 1 a keypoint off by 0.64 of the object's size passes
# even OKS 0.95, so AP tells nothing (1e300 overflowed pycocotools to AP 1.000); at 0.001 OKS 0.5 needs 1/400.
SIGMA_RANGE = (0.001, 1.0)


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def check_skeleton_size(keypoints: int, limbs: int, what: str, error: type[ValueError] = ValueError) -> None:
    """Refuse more than ``$OPENPOSE_LITE_MAX_KEYPOINTS`` (default :data:`MAX_KEYPOINTS`) keypoints, or
    :data:`LIMBS_PER_KEYPOINT` times as many limbs: ``error`` ``<what> has N keypoints, more than ...``."""
    limit = env_limit(MAX_KEYPOINTS_ENV, MAX_KEYPOINTS)
    for count, kind, most in ((keypoints, "keypoints", limit), (limbs, "limbs", LIMBS_PER_KEYPOINT * limit)):
        if count > most:
            raise error(f"{what} has {count} {kind}, more than the {most} a skeleton may have (COCO-WholeBody has "
                        "133 keypoints and 65 limbs; the time and memory a skeleton takes grow with them): to read it "
                        f"anyway, raise the limit with the environment variable {MAX_KEYPOINTS_ENV}=N"
                        + (f" ({LIMBS_PER_KEYPOINT} limbs per keypoint)" if kind == "limbs" else ""))


def check_sigmas(values: Any, count: int, what: str, written: Any = None, form: str = "") -> tuple[float, ...]:
    """``values`` as ``count`` OKS sigmas, each a number in :data:`SIGMA_RANGE`; else ValueError
    ``<what> is <written (default values), cut short>, expected ...``, ``form`` saying how they may be given."""
    lo, hi = SIGMA_RANGE
    numbers = isinstance(values, (list, tuple, np.ndarray)) and len(values) == count
    if numbers and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                       and lo <= v <= hi for v in values):
        return tuple(float(v) for v in values)
    raise ValueError(f"{what} is {brief(values if written is None else written)}, expected {count} OKS sigmas, one "
                     f"per keypoint{f' ({form})' if form else ''}, each in [{lo:g}, {hi:g}] (published ones run from "
                     "0.007 to 0.107)")


@dataclass(frozen=True)
class Skeleton:
    """Keypoint names, limbs (directed keypoint pairs), left/right pairs, OKS sigmas and drawing colours.

    ``limbs[i] = (a, b)``: its PAF is the unit vector from keypoint a to b, in channels (2i, 2i + 1) = (x, y).
    ``flip_pairs``: (left, right) keypoints that swap in a mirror image. ``background``: a trailing background
    heatmap channel. ``redundant_limbs`` close a cycle (OpenPose's shoulder-ear limbs): a decoder uses them to
    join parts of one person, never to start one. ``added_limbs``: those the source's limb list lacked
    (:mod:`openpose_lite.coco.skeleton`). ``colours`` (BGR per limb; empty: :attr:`limb_colours` derives them)
    and ``hidden_limbs`` (left out of drawings) say how it is drawn and take no part in equality.
    """

    name: str
    keypoints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    background: bool = False
    redundant_limbs: tuple[int, ...] = ()
    colours: tuple[Colour, ...] = field(default=(), compare=False)
    added_limbs: tuple[int, ...] = ()
    hidden_limbs: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        k, n = len(self.keypoints), self.name
        check_skeleton_size(k, len(self.limbs), f"skeleton {brief(n)}")  # first: what follows is linear in K and L
        if k < 1 or len(set(self.keypoints)) != k or not all(isinstance(s, str) and s for s in self.keypoints):
            raise ValueError(f"{n}: keypoint names must be distinct non-empty strings, got {brief(self.keypoints)}")
        check_sigmas(self.sigmas, k, f"{n}: the OKS sigma list")
        for a, b in self.limbs:
            if not (0 <= a < k and 0 <= b < k) or a == b:
                raise ValueError(f"{n}: limb {brief((a, b))} is not a pair of distinct keypoints")
        if len({frozenset(limb) for limb in self.limbs}) != len(self.limbs):
            raise ValueError(f"{n}: a pair of keypoints is joined by two limbs in {brief(list(self.limbs))}")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if a in seen or b in seen or a == b or not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"{n}: keypoint repeated or out of range in flip pairs {brief((a, b))}")
            seen.update((a, b))
        for what in ("redundant_limbs", "added_limbs", "hidden_limbs"):
            if any(not 0 <= i < len(self.limbs) for i in getattr(self, what)):
                raise ValueError(f"{n}: {what.replace('_', ' ')} index out of range: {brief(getattr(self, what))}")
        if self.colours and (len(self.colours) != len(self.limbs)
                             or not all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in self.colours)):
            raise ValueError(f"{n}: expected one BGR colour (3 values in 0..255) per limb, {len(self.limbs)} in all")
        # The mirrored skeleton must be a skeleton too, or PAF flipping has no meaning.
        _ = self.limb_flip_permutation

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
        return _frozen(perm)

    @cached_property
    def limb_flip_permutation(self) -> np.ndarray:
        """(L,) int: limb l of a mirrored image is limb ``limb_flip_permutation[l]`` of the original.

        The mirror of limb (a, b) is (perm[a], perm[b]); it must be a limb, possibly stored in
        the opposite direction (see :attr:`limb_flip_reversed`), or the skeleton is rejected.
        """
        perm = self.flip_permutation
        lookup = {frozenset(limb): i for i, limb in enumerate(self.limbs)}
        index = []
        for i, (a, b) in enumerate(self.limbs):
            mirrored = (int(perm[a]), int(perm[b]))
            if frozenset(mirrored) not in lookup:
                raise ValueError(f"{self.name}: the mirror {mirrored} of limb {i} ({a}, {b}) is not a limb")
            index.append(lookup[frozenset(mirrored)])
        return _frozen(np.array(index, dtype=np.int64))

    @cached_property
    def limb_flip_reversed(self) -> np.ndarray:
        """(L,) bool: the mirrored limb is stored in the opposite direction (its PAF changes sign; e.g.
        hip-to-hip mirrors onto itself, reversed)."""
        perm, mirror = self.flip_permutation, self.limb_flip_permutation
        return _frozen(np.array([perm[a] != self.limbs[m][0] for (a, _), m in zip(self.limbs, mirror)], dtype=bool))

    @cached_property
    def heatmap_flip_permutation(self) -> np.ndarray:
        """(K [+1],) int: channel permutation of the heatmap stack under a horizontal flip."""
        extra = [self.num_keypoints] if self.background else []
        return _frozen(np.concatenate([self.flip_permutation, extra]).astype(np.int64))

    @cached_property
    def paf_flip_permutation(self) -> np.ndarray:
        """(2L,) int: channel permutation of the PAF stack under a horizontal flip."""
        limbs = self.limb_flip_permutation
        return _frozen(np.stack([2 * limbs, 2 * limbs + 1], axis=1).reshape(-1))

    @cached_property
    def paf_flip_sign(self) -> np.ndarray:
        """(2L,) float32: the sign applied to each PAF channel after the permutation under a flip.

        A mirror negates x; a limb whose mirror is stored reversed also negates both components.
        """
        direction = np.where(self.limb_flip_reversed, -1.0, 1.0)
        return _frozen(np.stack([-direction, direction], axis=1).reshape(-1).astype(np.float32))

    @cached_property
    def sigmas_array(self) -> np.ndarray:
        """(K,) float64 OKS sigmas."""
        return _frozen(np.array(self.sigmas, dtype=np.float64))

    @cached_property
    def tree_limbs(self) -> tuple[int, ...]:
        """The indices of the limbs that are not redundant, in limb order."""
        redundant = set(self.redundant_limbs)
        return tuple(i for i in range(self.num_limbs) if i not in redundant)

    @cached_property
    def limb_colours(self) -> tuple[Colour, ...]:
        """(L,) BGR drawing colour of each limb: :attr:`colours` when given, else derived from the
        flip pairs (left limbs warm, right limbs cool, the others green; deterministic)."""
        if self.colours:
            return tuple((int(c[0]), int(c[1]), int(c[2])) for c in self.colours)
        return derived_colours(self.limbs, self.flip_pairs, self.limb_flip_permutation)

    # ---------------------------------------------------------------- the two layouts
    @property
    def is_person(self) -> bool:
        """Whether this is one of the COCO person layouts (COCO_17, OPENPOSE_18) of the public weights."""
        return self in (COCO_17, OPENPOSE_18)

    @property
    def instance_words(self) -> tuple[str, str]:
        """What outputs call one and several of what this skeleton describes: ("person", "people"),
        or ("instance", "instances") for another skeleton."""
        return ("person", "people") if self.is_person else ("instance", "instances")

    def annotation_layout(self) -> "Skeleton":
        """The keypoints as annotation files order them: what top-down models predict, results hold
        and evaluation scores. OPENPOSE_18 -> COCO_17; otherwise this skeleton without a background
        channel or redundant limbs."""
        if self == OPENPOSE_18:
            return COCO_17
        if not self.background and not self.redundant_limbs:
            return self
        return replace(self, background=False, redundant_limbs=())

    def bottomup_layout(self) -> "Skeleton":
        """The layout of a part-affinity-field model: COCO_17 -> OPENPOSE_18 (the CMU layout of the
        public weights); otherwise this skeleton plus a background channel, its limbs beyond a spanning
        tree redundant (:func:`spanning_limbs`). A ValueError where the limbs leave keypoints
        unconnected (:mod:`openpose_lite.coco.skeleton` completes such limb lists)."""
        if self == COCO_17:
            return OPENPOSE_18
        if self.background:
            return self
        components = limb_components(self.num_keypoints, self.limbs)
        if components.max(initial=0) > 0:
            apart = [self.keypoints[i] for i in np.flatnonzero(components != components[0])]
            raise ValueError(f"{self.name}: the limbs leave keypoints {apart[:8]} unconnected to "
                             f"{self.keypoints[0]!r}; bottom-up grouping needs limbs that connect every keypoint "
                             "(list limbs that do, or read the skeleton with its annotations so that missing "
                             "limbs are chosen from them)")
        return replace(self, background=True, redundant_limbs=spanning_limbs(self.num_keypoints, self.limbs))

    # ---------------------------------------------------------------- plain data
    def to_dict(self) -> dict[str, Any]:
        """The skeleton as plain data (str, int, float, bool, lists: JSON, YAML and
        ``torch.load(weights_only=True)`` read it back); 0-based keypoint indices."""
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "limbs": [[int(a), int(b)] for a, b in self.limbs],
            "flip_pairs": [[int(a), int(b)] for a, b in self.flip_pairs],
            "sigmas": [float(s) for s in self.sigmas],
            "background": bool(self.background),
            "redundant_limbs": [int(i) for i in self.redundant_limbs],
            "colours": [list(c) for c in self.limb_colours],
            "added_limbs": [int(i) for i in self.added_limbs],
            "hidden_limbs": [int(i) for i in self.hidden_limbs],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "skeleton") -> "Skeleton":
        """The skeleton of :meth:`to_dict`'s plain data (COCO_17 / OPENPOSE_18 themselves for theirs); a
        ValueError names ``source`` and the field for unknown or missing keys and values of the wrong kind."""
        keys = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a skeleton dict with keys {keys}, got {type(data).__name__}")
        unknown = sorted(set(data) - set(keys))
        missing = [key for key in ("name", "keypoints", "limbs", "flip_pairs", "sigmas") if key not in data]
        if unknown or missing:
            raise ValueError(f"{source}: skeleton dict has unknown keys {unknown} and lacks {missing}; "
                             f"expected keys {keys}")
        names, background = data["keypoints"], data.get("background", False)
        try:
            values = {
                "name": str(data["name"]),
                "keypoints": tuple(_expect(names, isinstance(names, (list, tuple))
                                           and all(isinstance(v, str) for v in names), "a list of keypoint names")),
                "limbs": tuple(_pair(p) for p in data["limbs"]),
                "flip_pairs": tuple(_pair(p) for p in data["flip_pairs"]),
                "sigmas": tuple(float(s) for s in data["sigmas"]),
                "background": _expect(background, isinstance(background, bool), "true or false"),
                "colours": tuple(tuple(_index(v) for v in c) for c in data.get("colours", ())),
            }
            for key in ("redundant_limbs", "added_limbs", "hidden_limbs"):
                values[key] = tuple(_index(i) for i in data.get(key, ()))
            skeleton = cls(**values)
        except (TypeError, ValueError, OverflowError) as exc:  # float() of an integer of 400 digits overflows
            raise ValueError(f"{source}: not a valid skeleton dict ({exc})") from None
        return next((person for person in (COCO_17, OPENPOSE_18) if person == skeleton), skeleton)


def _expect(value: Any, ok: bool, expected: str) -> Any:
    if not ok:
        raise ValueError(f"expected {expected}, got {value!r:.40}")
    return value


def _index(value: Any) -> int:
    return int(_expect(value, isinstance(value, (int, np.integer)) and not isinstance(value, bool), "an integer"))


def _pair(value: Any) -> tuple[int, int]:
    _expect(value, isinstance(value, (list, tuple)) and len(value) == 2, "a pair of keypoint indices")
    return _index(value[0]), _index(value[1])


# The person layouts' 19 limb colours: saturated hues evenly spaced round OpenCV's wheel, red first
# (what viz.limb_colours(19) computes; a test holds the two together).
_PERSON_COLOURS: tuple[Colour, ...] = (
    (0, 0, 255), (0, 76, 255), (0, 153, 255), (0, 238, 255), (0, 255, 196), (0, 255, 110), (0, 255, 34),
    (51, 255, 0), (128, 255, 0), (213, 255, 0), (255, 221, 0), (255, 136, 0), (255, 59, 0), (255, 0, 26),
    (255, 0, 102), (255, 0, 187), (246, 0, 255), (161, 0, 255), (85, 0, 255),
)

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
    colours=_PERSON_COLOURS,
)

# OPENPOSE_18 index -> COCO_17 index (-1 for the neck, which COCO does not have).
_OPENPOSE_FROM_COCO = np.array([0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
_IN_COCO = _OPENPOSE_FROM_COCO >= 0

# The CMU COCO body model: nose, neck, right arm, left arm, right leg, left leg, eyes, ears (right first).
# Heatmap channels follow this order, then background; limb i owns PAF channels (2i, 2i+1) in the CMU
# training order, so the public weights load unchanged.
OPENPOSE_18 = Skeleton(
    name="openpose18",
    keypoints=tuple("neck" if i < 0 else COCO_17.keypoints[i] for i in _OPENPOSE_FROM_COCO),
    limbs=(
        (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4),
        (2, 16), (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16),
        (15, 17),
    ),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
    # COCO's sigmas in this order; the neck, which COCO does not label, takes the shoulders'.
    sigmas=tuple(COCO_17.sigmas[COCO_17.index("left_shoulder") if i < 0 else i] for i in _OPENPOSE_FROM_COCO),
    background=True,
    # (right_shoulder, right_ear) and (left_shoulder, left_ear): CMU's decoder uses them only to complete
    # people, and its renderer leaves them out.
    redundant_limbs=(9, 13),
    colours=_PERSON_COLOURS,
    hidden_limbs=(9, 13),
)


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
    out[:, _IN_COCO] = kps[:, _OPENPOSE_FROM_COCO[_IN_COCO]]
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
    out[:, _OPENPOSE_FROM_COCO[_IN_COCO]] = kps[:, _IN_COCO]
    return out
