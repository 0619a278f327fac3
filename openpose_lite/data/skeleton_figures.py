"""Figures of any skeleton, for generated scenes: poses from a COCO file's own instances, drawn as limbs and blobs.

:class:`PoseBank` holds the annotated instances of a file's skeleton, each centred on its labelled keypoints' box,
the box's longer side 1. A figure is one of them articulated (each tree limb turned about its parent, normal 12
degrees up to 30, and stretched up to 15 %), mirrored with probability 1/2, turned (normal, 10 degrees), squeezed
up to 10 % across and jittered by 1 %. It is drawn as outlined limbs in the skeleton's limb colours (added limbs
thinner) and light blobs at the keypoints it labels. Its area (the OKS scale) follows the file's convention: the
median ratio of its instances' ``area`` to their box's (AP-10K, Animal-Pose: the box; MacaquePose: a segmentation,
about half) times the figure's box; its thin drawn pixels would score it four times as strictly.

Shape legend: M instances, K keypoints, L limbs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from openpose_lite.coco.skeleton import chosen_categories, chosen_instances, skeleton_of_coco
from openpose_lite.coco.validation import read_coco_keypoints
from openpose_lite.cmu_skeletons import BODY_25
from openpose_lite.data.figures import _ONE, _SHIFT, People, _draw_chain, _fp, coco_category, on_grid, rotation_matrix
from openpose_lite.limbs import breadth_first, limb_degrees, spanning_limbs
from openpose_lite.skeleton import Skeleton

__all__ = ["NAMED_PEOPLE", "PoseBank", "PoseFigure", "draw_pose_figure", "scene_figures"]

# Person layouts a skeleton setting may name instead of a file: generated people drawn and annotated in them.
NAMED_PEOPLE: dict[str, Skeleton] = {BODY_25.name: BODY_25}


@dataclass(frozen=True)
class PoseFigure:
    """A posed figure of a skeleton: ``points`` (K, 2) float64 (unit size, centred, until
    :meth:`place`; then image pixels on the 1/16 px grid), ``labelled`` (K,) bool, ``height``
    (its size in px once placed), ``shade`` (brightness of its colours)."""

    points: np.ndarray
    labelled: np.ndarray
    height: float = 1.0
    shade: float = 1.0

    def extent(self, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """(lo (2,), hi (2,)) of the labelled keypoints, grown by ``margin`` (in figure sizes)."""
        pts = self.points[self.labelled]
        return pts.min(axis=0) - margin, pts.max(axis=0) + margin

    def place(self, height: float, offset: np.ndarray) -> PoseFigure:
        """The figure scaled to ``height`` px and moved by ``offset`` (2,), on cv2's drawing grid."""
        return PoseFigure(on_grid(self.points, height, offset), self.labelled, float(height), self.shade)


def _normalised(pts: np.ndarray, on: np.ndarray) -> np.ndarray:
    """(K, 2) ``pts`` centred on the box of the labelled ones (``on`` (K,) bool), its longer side scaled to 1;
    unlabelled keypoints at the centre (an occluder's anchor)."""
    lo, hi = pts[on].min(axis=0), pts[on].max(axis=0)
    pts = (pts - 0.5 * (lo + hi)) / max(float((hi - lo).max()), 1e-6)
    pts[~on] = 0.0
    return pts


def _tree(skeleton: Skeleton) -> tuple[np.ndarray, list[int]]:
    """(parent (K,) of each keypoint in the limb tree, -1 for roots; keypoints in breadth-first order)."""
    gone = set(spanning_limbs(skeleton.num_keypoints, skeleton.limbs))
    tree = tuple(limb for i, limb in enumerate(skeleton.limbs) if i not in gone)
    degree = limb_degrees(skeleton.num_keypoints, tree)
    order, steps = breadth_first(skeleton.num_keypoints, tree, np.argsort(-degree, kind="stable"))
    parent = np.full(skeleton.num_keypoints, -1, dtype=np.int64)
    for _, node, other, new in steps:
        if new:
            parent[other] = node
    return parent, order


class PoseBank:
    """The normalised annotated instances of one skeleton (``poses`` (M, K, 2), ``labelled`` (M, K) bool, at
    least one), and the figures made from them. ``category``: the COCO category generated files carry
    (:func:`~openpose_lite.data.figures.coco_category`); ``area_per_box``: a figure's annotated area as a
    fraction in (0, 1] of its box's (module docstring), None: the pixels that show it."""

    def __init__(self, skeleton: Skeleton, poses: np.ndarray, labelled: np.ndarray, category: dict[str, Any],
                 area_per_box: float | None = None) -> None:
        self.skeleton = skeleton
        self.poses, self.labelled = poses, labelled
        self.category = category
        self.area_per_box = area_per_box
        self._parent, self._order = _tree(skeleton)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **settings: Any) -> PoseBank:
        """The bank of a COCO-format file's skeleton (``settings`` as :func:`skeleton_of_coco` takes them).

        Instances kept: not crowd, at least half of the keypoints (and two) labelled; when none
        has as many, those with two. Raises ValueError naming the file when none is left.
        """
        data, layout = read_coco_keypoints(path)
        skeleton, chosen = skeleton_of_coco(data, layout, str(path), **settings)
        k = skeleton.num_keypoints
        anns, kps = chosen_instances(data, chosen, k)
        count = (kps[..., 2] > 0).sum(axis=1)
        keep = count >= max(2, math.ceil(k / 2))
        if not keep.any():
            keep = count >= 2
        if not keep.any():
            raise ValueError(f"{path}: no annotated instance of {skeleton.name} with two labelled keypoints to "
                             "draw figures from")
        kps = kps[keep]
        ratios = [a["area"] / (a["bbox"][2] * a["bbox"][3]) for a, kept in zip(anns, keep)  # checked on reading
                  if kept and (a.get("area") or 0) > 0 and a.get("bbox") and a["bbox"][2] * a["bbox"][3] > 0]
        # A box drawn tight around the keypoints may be smaller than the area that counts (ratio > 1).
        area_per_box = min(1.0, float(np.median(ratios))) if ratios else None
        labelled = kps[..., 2] > 0
        poses = np.stack([_normalised(pts, on) for pts, on in zip(kps[..., :2], labelled)])
        sources = chosen_categories(data, chosen)
        name = str(sources[0].get("name")) if len(sources) == 1 else skeleton.name
        category = coco_category(skeleton, name, sources[0].get("id", 1), sources[0].get("supercategory", name))
        return cls(skeleton, poses, labelled, category, area_per_box)

    def sample_pose(self, rng: np.random.Generator) -> PoseFigure:
        """One articulated, mirrored or not, turned figure of unit size (module docstring)."""
        m = int(rng.integers(len(self.poses)))
        pts, on = self.poses[m].copy(), self.labelled[m].copy()
        turns = np.clip(rng.normal(0.0, math.radians(12.0), len(pts)), -math.radians(30), math.radians(30))
        stretch = rng.uniform(0.85, 1.15, len(pts))
        pts = self._articulated(pts, on, turns, stretch)
        if rng.random() < 0.5:
            perm = self.skeleton.flip_permutation
            pts, on = pts[perm] * np.array([-1.0, 1.0]), on[perm]
        squeeze = np.array([rng.uniform(0.9, 1.0), 1.0])
        pts = (pts * squeeze) @ rotation_matrix(float(np.clip(rng.normal(0.0, math.radians(10)), -0.5, 0.5))).T
        pts += rng.normal(0.0, 0.01, pts.shape)
        return PoseFigure(_normalised(pts, on), on, 1.0, float(rng.uniform(0.7, 1.0)))

    def _articulated(self, pts: np.ndarray, on: np.ndarray, turns: np.ndarray, stretch: np.ndarray) -> np.ndarray:
        """(K, 2) ``pts`` with each tree limb (parent, k) whose two ends are labelled turned about where the
        parent has got to by ``turns[k]`` and stretched by ``stretch[k]``, carrying the keypoints beyond it along.

        A keypoint's motion is its parent's followed by its own limb's, one affine map ``x @ lin + shift``
        composed once per keypoint: linear in K, where moving each subtree in turn costs K^2 on a long chain.
        """
        lin = np.empty((len(pts), 2, 2))
        shift = np.empty((len(pts), 2))
        for k in self._order:  # breadth first: a keypoint's parent comes before it
            p = self._parent[k]
            if p < 0:
                lin[k], shift[k] = np.eye(2), 0.0
                continue
            lin[k], shift[k] = lin[p], shift[p]
            if on[k] and on[p]:
                centre = pts[p] @ lin[p] + shift[p]  # where the parent has got to
                turn = rotation_matrix(float(turns[k])).T
                limb = (pts[k] @ lin[p] + shift[p] - centre) @ turn  # the limb, turned
                lin[k] = lin[p] @ turn
                shift[k] = (shift[p] - centre) @ turn + centre + (stretch[k] - 1.0) * limb
        return np.einsum("ki,kij->kj", pts, lin) + shift


def scene_figures(setting: str | os.PathLike[str], **settings: Any) -> PoseBank | People:
    """What generated scenes draw for a skeleton setting (``data.skeleton``, ``synth --skeleton``): people
    in a person layout it names (:data:`NAMED_PEOPLE`: ``body25``, with feet), else the figures of a
    COCO-format file (:meth:`PoseBank.from_file` with ``settings``)."""
    if str(setting) in NAMED_PEOPLE:
        return People(NAMED_PEOPLE[str(setting)])
    return PoseBank.from_file(setting, **settings)


def draw_pose_figure(image: np.ndarray, owner: np.ndarray, label: int, fig: PoseFigure, skeleton: Skeleton,
                     rng: np.random.Generator) -> None:
    """Draw a placed figure on ``image`` (H, W, 3) and mark its pixels with ``label`` in ``owner`` (H, W).

    ``rng`` shuffles the order the limbs are drawn in (which one is in front).
    """
    limbs = [i for i, (a, b) in enumerate(skeleton.limbs) if fig.labelled[a] and fig.labelled[b]]
    # Sizes follow the figure, and the limbs' own lengths where they are short (many keypoints).
    lengths = [float(np.linalg.norm(fig.points[a] - fig.points[b])) for a, b in (skeleton.limbs[i] for i in limbs)]
    unit = min(fig.height, 4.0 * float(np.median(lengths))) if lengths else fig.height
    thick = max(2, round(0.06 * unit))
    outline = max(1, round(0.01 * unit))
    radius = max(2, round(0.04 * unit))
    colours = [tuple(int(c * fig.shade) for c in colour) for colour in skeleton.limb_colours]
    rng.shuffle(limbs)
    added = set(skeleton.added_limbs)
    ends = [skeleton.limbs[i] for i in limbs]
    _draw_chain(image, owner, label, [(fig.points[a], fig.points[b], colours[i]) for i, (a, b) in zip(limbs, ends)],
                [max(2, thick // 2) if i in added else thick for i in limbs], outline)
    blob = {}
    for i in reversed(range(len(skeleton.limbs))):  # a keypoint takes its first limb's colour
        for k in skeleton.limbs[i]:
            blob[k] = tuple(int(0.45 * c + 140) for c in colours[i])
    for k in np.flatnonzero(fig.labelled):
        centre = tuple(_fp(fig.points[k]))
        cv2.circle(image, centre, (radius + outline) * _ONE, (30, 30, 30), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(image, centre, radius * _ONE, blob.get(int(k), (220, 220, 220)), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(owner, centre, (radius + outline) * _ONE, label, -1, cv2.LINE_8, _SHIFT)
