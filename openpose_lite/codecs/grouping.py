"""Greedy bipartite limb matching and person assembly (Cao et al., Sec. 2.4).

Parts of each type are candidates; for each limb type the PAF line integral scores every
candidate pair, pairs are taken greedily in descending score with each part used once,
and the chosen connections are joined into people along the limb tree.

Shape legend: P parts (all types), K keypoints, L limbs, N people, H x W map size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from openpose_lite.codecs.paf import limb_scores
from openpose_lite.skeleton import Skeleton


@dataclass(frozen=True)
class GroupingParams:
    """Decoder parameters (CMU demo values where they exist).

    num_samples, sample_threshold, min_sample_fraction: the line integral takes ``num_samples``
    points and needs more than ``min_sample_fraction`` of them above ``sample_threshold``.
    distance_prior: penalise limbs longer than half the map height, as the CMU demo does.
    min_parts, min_mean_score: people with fewer parts, or a lower mean part score, are dropped.
    merge_rootless: partial skeletons that lack the root keypoint (the neck) cannot be joined by
    limbs, since every tree path between them runs through it. Two such fragments with no part
    type in common are merged when the gap between them is at most ``merge_rootless`` times the
    larger one's extent (0 disables). Unassigned parts count as one-part fragments.
    """

    num_samples: int = 10
    sample_threshold: float = 0.05
    min_sample_fraction: float = 0.8
    distance_prior: bool = True
    min_parts: int = 1
    min_mean_score: float = 0.2
    merge_rootless: float = 1.5


def limb_order(skeleton: Skeleton) -> list[int]:
    """Limb indices in breadth-first order from the best-connected keypoint, redundant limbs last.

    Processing limbs outward from the root means a limb's first part is usually already
    in a person when the limb is matched, so people grow instead of fragmenting.
    """
    tree = [i for i in range(skeleton.num_limbs) if i not in skeleton.redundant_limbs]
    degree = np.zeros(skeleton.num_keypoints, dtype=np.int64)
    for i in tree:
        for k in skeleton.limbs[i]:
            degree[k] += 1
    root = int(np.argmax(degree))
    seen = {root}
    queue = deque([root])
    order: list[int] = []
    while queue:
        node = queue.popleft()
        for i in tree:
            if i in order:
                continue
            a, b = skeleton.limbs[i]
            if node in (a, b):
                order.append(i)
                other = b if node == a else a
                if other not in seen:
                    seen.add(other)
                    queue.append(other)
    order += [i for i in tree if i not in order]  # limbs of components not reached from the root
    return order + list(skeleton.redundant_limbs)


def _root(skeleton: Skeleton) -> int:
    """The keypoint with the most non-redundant limbs (the neck of OpenPose-18)."""
    degree = np.zeros(skeleton.num_keypoints, dtype=np.int64)
    for i, (a, b) in enumerate(skeleton.limbs):
        if i not in skeleton.redundant_limbs:
            degree[a] += 1
            degree[b] += 1
    return int(np.argmax(degree))


def _merge_rootless(
    people: list[np.ndarray],
    limb_sum: list[float],
    limb_count: list[int],
    owner: np.ndarray,
    part_types: np.ndarray,
    part_xy: np.ndarray,
    root: int,
    factor: float,
) -> None:
    """Join root-less fragments (see GroupingParams.merge_rootless), closest pair first, in place."""
    k_n = people[0].shape[0] if people else int(part_types.max(initial=-1)) + 1
    for part in np.flatnonzero(owner < 0):  # lone parts become one-part fragments
        parts = np.full(k_n, -1, dtype=np.int64)
        parts[part_types[part]] = part
        owner[part] = len(people)
        people.append(parts)
        limb_sum.append(0.0)
        limb_count.append(0)
    while True:
        frags = [i for i, p in enumerate(people) if p[root] < 0 and (p >= 0).any()]
        best, best_pair = np.inf, None
        for x in range(len(frags)):
            px = people[frags[x]]
            xy_x = part_xy[px[px >= 0]]
            ext_x = np.ptp(xy_x, axis=0).max() if len(xy_x) > 1 else 0.0
            for y in range(x + 1, len(frags)):
                py = people[frags[y]]
                if np.any((px >= 0) & (py >= 0)):
                    continue
                xy_y = part_xy[py[py >= 0]]
                ext_y = np.ptp(xy_y, axis=0).max() if len(xy_y) > 1 else 0.0
                gap = np.linalg.norm(xy_x[:, None] - xy_y[None], axis=-1).min()
                if gap <= factor * max(ext_x, ext_y, 1.0) and gap < best:
                    best, best_pair = gap, (frags[x], frags[y])
        if best_pair is None:
            return
        a, b = best_pair
        take = people[b] >= 0
        people[a][take] = people[b][take]
        owner[people[b][take]] = a
        limb_sum[a] += limb_sum[b]
        limb_count[a] += limb_count[b]
        people[b][:] = -1


def match_limb(
    pafs: np.ndarray,
    limb: int,
    a_xy: np.ndarray,
    b_xy: np.ndarray,
    map_height: int,
    params: GroupingParams,
) -> list[tuple[int, int, float]]:
    """Greedy bipartite matching for one limb type.

    Args:
        pafs: (2L, H, W) fields.
        a_xy: (A, 2), b_xy: (B, 2) candidate parts in cells.
    Returns:
        Connections (index into a, index into b, score) in descending score.
    """
    if len(a_xy) == 0 or len(b_xy) == 0:
        return []
    mean, fraction = limb_scores(
        pafs[2 * limb], pafs[2 * limb + 1], a_xy, b_xy, params.num_samples, params.sample_threshold
    )
    score = mean
    if params.distance_prior:
        length = np.linalg.norm(a_xy[:, None, :] - b_xy[None, :, :], axis=-1)
        score = mean + np.minimum(0.5 * map_height / np.maximum(length, 1e-6) - 1.0, 0.0)
    valid = (fraction > params.min_sample_fraction) & (score > 0)
    ia, ib = np.nonzero(valid)
    if ia.size == 0:
        return []
    order = np.argsort(-score[ia, ib], kind="stable")
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for o in order:
        i, j = int(ia[o]), int(ib[o])
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j, float(score[i, j])))
        if len(used_a) == len(a_xy) or len(used_b) == len(b_xy):
            break
    return out


def group_people(
    part_types: np.ndarray,
    part_xy: np.ndarray,
    part_scores: np.ndarray,
    pafs: np.ndarray,
    skeleton: Skeleton,
    params: GroupingParams = GroupingParams(),
) -> tuple[np.ndarray, np.ndarray]:
    """Assemble people from detected parts and the PAFs.

    Args:
        part_types: (P,) keypoint type of each part.
        part_xy: (P, 2) part positions in output cells.
        part_scores: (P,) part confidences.
        pafs: (2L, H, W).
    Returns:
        keypoints (N, K, 3) float32 (x, y in cells, part score; 0 where missing) and person
        scores (N,) float32, best first. The score is the mean of the person's part and limb
        scores, weighted by the share of the skeleton found, so that complete, confident
        people rank above fragments (COCO AP rewards that ranking).
    """
    k_n = skeleton.num_keypoints
    by_type = [np.flatnonzero(part_types == k) for k in range(k_n)]
    owner = np.full(len(part_types), -1, dtype=np.int64)
    people: list[np.ndarray] = []  # each (K,) global part index or -1
    limb_sum: list[float] = []
    limb_count: list[int] = []
    redundant = set(skeleton.redundant_limbs)
    map_height = pafs.shape[1]

    for limb in limb_order(skeleton):
        a_type, b_type = skeleton.limbs[limb]
        ids_a, ids_b = by_type[a_type], by_type[b_type]
        for i, j, s in match_limb(pafs, limb, part_xy[ids_a], part_xy[ids_b], map_height, params):
            ga, gb = int(ids_a[i]), int(ids_b[j])
            pa, pb = int(owner[ga]), int(owner[gb])
            if pa >= 0 and pb >= 0:
                if pa == pb:
                    limb_sum[pa] += s
                    limb_count[pa] += 1
                    continue
                # Two partial skeletons joined by this limb: merge if they share no part type.
                if np.any((people[pa] >= 0) & (people[pb] >= 0)):
                    continue
                take = people[pb] >= 0
                people[pa][take] = people[pb][take]
                owner[people[pb][take]] = pa
                limb_sum[pa] += limb_sum[pb] + s
                limb_count[pa] += limb_count[pb] + 1
                people[pb][:] = -1
                limb_sum[pb], limb_count[pb] = 0.0, 0
            elif pa >= 0 or pb >= 0:
                person, part, part_type = (pa, gb, b_type) if pa >= 0 else (pb, ga, a_type)
                if people[person][part_type] >= 0:
                    continue  # that slot already holds another part
                people[person][part_type] = part
                owner[part] = person
                limb_sum[person] += s
                limb_count[person] += 1
            elif limb not in redundant:
                person_parts = np.full(k_n, -1, dtype=np.int64)
                person_parts[a_type], person_parts[b_type] = ga, gb
                owner[ga] = owner[gb] = len(people)
                people.append(person_parts)
                limb_sum.append(s)
                limb_count.append(1)

    if params.merge_rootless > 0:
        _merge_rootless(people, limb_sum, limb_count, owner, part_types, part_xy, _root(skeleton), params.merge_rootless)

    keypoints, scores = [], []
    for parts, lsum, lcount in zip(people, limb_sum, limb_count):
        found = parts >= 0
        n = int(found.sum())
        if n == 0 or n < params.min_parts:
            continue
        part_mean = float(part_scores[parts[found]].mean())
        if part_mean < params.min_mean_score:
            continue
        kps = np.zeros((k_n, 3), dtype=np.float32)
        kps[found, :2] = part_xy[parts[found]]
        kps[found, 2] = part_scores[parts[found]]
        limb_mean = lsum / max(lcount, 1)
        confidence = 0.5 * (part_mean + min(limb_mean, 1.0))
        keypoints.append(kps)
        scores.append(confidence * np.sqrt(n / k_n))
    if not keypoints:
        return np.zeros((0, k_n, 3), dtype=np.float32), np.zeros(0, dtype=np.float32)
    kps_arr = np.stack(keypoints)
    score_arr = np.asarray(scores, dtype=np.float32)
    order = np.argsort(-score_arr, kind="stable")
    return kps_arr[order], score_arr[order]
