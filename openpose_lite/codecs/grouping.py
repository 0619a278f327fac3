"""Greedy bipartite limb matching and person assembly (Cao et al., Sec. 2.4).

Parts of each type are candidates; for each limb type the PAF line integral scores every
candidate pair, pairs are taken greedily in descending score with each part used once,
and the chosen connections are joined into people along the limb tree.

Shape legend: P parts (all types), K keypoints, L limbs, N people, H x W map size.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass

import numpy as np

from openpose_lite.codecs import _kernels
from openpose_lite.codecs.paf import limb_scores
from openpose_lite.limbs import breadth_first, limb_degrees
from openpose_lite.params import Params
from openpose_lite.skeleton import Skeleton


@dataclass(frozen=True)
class GroupingParams(Params):
    """Decoder parameters, the ``grouping`` config section (CMU demo values where they exist).

    num_samples, sample_threshold, min_sample_fraction: the line integral takes ``num_samples``
    points and needs more than ``min_sample_fraction`` of them above ``sample_threshold``.
    distance_prior: penalise limbs longer than half the map height, as the CMU demo does.
    min_parts, min_mean_score: people with fewer parts, or a lower mean part score, are dropped.
    merge_rootless: fragments lacking the root keypoint (the neck) cannot be joined by limbs (every tree
    path runs through it); two with no part type in common merge when their gap is at most this times
    the larger one's extent (0 disables). Unassigned parts count as one-part fragments.
    """

    num_samples: int = 10
    sample_threshold: float = 0.05
    min_sample_fraction: float = 0.8
    distance_prior: bool = True
    min_parts: int = 1
    min_mean_score: float = 0.2
    merge_rootless: float = 1.5

    _section: typing.ClassVar[str] = "grouping"

    def _check(self) -> None:
        self._require(self.num_samples >= 1, "num_samples", "an integer >= 1")
        self._require(0 <= self.min_sample_fraction <= 1, "min_sample_fraction", "a number in [0, 1]")
        self._require(self.min_parts >= 1, "min_parts", "an integer >= 1")
        self._require(self.merge_rootless >= 0, "merge_rootless", "a number >= 0 (0: no merging)")


@functools.lru_cache(maxsize=None)
def limb_order(skeleton: Skeleton) -> tuple[int, ...]:
    """Limb indices in breadth-first order from the best-connected keypoint, redundant limbs last.

    Processing limbs outward from the root means a limb's first part is usually already
    in a person when the limb is matched, so people grow instead of fragmenting. The walk
    (:func:`~openpose_lite.limbs.breadth_first`) is linear in the skeleton's size.
    """
    tree = skeleton.tree_limbs
    _, steps = breadth_first(skeleton.num_keypoints, tuple(skeleton.limbs[i] for i in tree), [_root(skeleton)])
    order = [tree[j] for j, _, _, _ in steps]
    walked = set(order)
    order += [i for i in tree if i not in walked]  # limbs of components not reached from the root
    return tuple(order) + tuple(skeleton.redundant_limbs)


@functools.lru_cache(maxsize=None)
def _root(skeleton: Skeleton) -> int:
    """The keypoint with the most non-redundant limbs (the neck of OpenPose-18)."""
    tree = tuple(skeleton.limbs[i] for i in skeleton.tree_limbs)
    return int(np.argmax(limb_degrees(skeleton.num_keypoints, tree)))


def _merge_rootless(people: list[np.ndarray], limb_sum: list[float], limb_count: list[int], owner: np.ndarray,
                    part_types: np.ndarray, part_xy: np.ndarray, root: int, factor: float, k_n: int,
                    part_scores: np.ndarray, max_fragments: int = 256) -> None:
    """Join root-less fragments (see GroupingParams.merge_rootless), closest pair first, in place.

    ``k_n`` is the skeleton's keypoint count: with no limb matched, ``people`` is empty and
    the part types found need not include the last keypoint.
    """
    for part in np.flatnonzero(owner < 0):  # lone parts become one-part fragments
        parts = np.full(k_n, -1, dtype=np.int64)
        parts[part_types[part]] = part
        owner[part] = len(people)
        people.append(parts)
        limb_sum.append(0.0)
        limb_count.append(0)
    frags = [i for i, p in enumerate(people) if p[root] < 0 and (p >= 0).any()]
    if len(frags) > max_fragments:
        # Noisy maps (an untrained network) can give thousands of lone parts; bound the work to
        # the fragments with the most parts, then the most confident ones.
        size = np.array([(people[f] >= 0).sum() for f in frags])
        conf = np.array([part_scores[people[f][people[f] >= 0]].sum() for f in frags])
        frags = [frags[i] for i in np.lexsort((-conf, -size))[:max_fragments]]
    if len(frags) < 2:
        return
    members = [people[f][people[f] >= 0] for f in frags]
    types = np.stack([people[f] >= 0 for f in frags]).astype(np.int64)  # (F, K)
    shared = types @ types.T  # part types two fragments have in common
    extent = np.array([np.ptp(part_xy[m], axis=0).max() if len(m) > 1 else 0.0 for m in members])
    # gap[x, y]: the shortest distance between a part of fragment x and one of fragment y.
    gap = _fragment_gaps(members, part_xy)
    alive = np.ones(len(frags), dtype=bool)
    np.fill_diagonal(gap, np.inf)
    while True:
        limit = factor * np.maximum(np.maximum(extent[:, None], extent[None, :]), 1.0)
        ok = (shared == 0) & (gap <= limit) & alive[:, None] & alive[None, :]
        if not ok.any():
            return
        x, y = np.unravel_index(np.argmin(np.where(ok, gap, np.inf)), gap.shape)
        _join(people, limb_sum, limb_count, owner, frags[x], frags[y])
        # Fragment x now holds both (their types are disjoint, so shared counts add); y is gone.
        shared[x] += shared[y]
        shared[:, x] = shared[x]
        members[x] = np.concatenate([members[x], members[y]])
        extent[x] = np.ptp(part_xy[members[x]], axis=0).max()
        gap[x] = gap[:, x] = np.minimum(gap[x], gap[y])
        gap[x, x] = np.inf
        alive[y] = False


def _join(people: list[np.ndarray], limb_sum: list[float], limb_count: list[int], owner: np.ndarray, a: int, b: int,
          s: float | None = None) -> None:
    """Move person b's parts and limb scores into person a (their part types are disjoint), plus the
    connection of score ``s`` that joins them, if any; b is left empty."""
    take = people[b] >= 0
    people[a][take] = people[b][take]
    owner[people[b][take]] = a
    limb_sum[a] += limb_sum[b] if s is None else limb_sum[b] + s
    limb_count[a] += limb_count[b] if s is None else limb_count[b] + 1
    people[b][:] = -1
    limb_sum[b], limb_count[b] = 0.0, 0


def _fragment_gaps(members: list[np.ndarray], part_xy: np.ndarray) -> np.ndarray:
    """(F, F) shortest part-to-part distance between fragments, from one (P, P) distance matrix."""
    all_parts = np.concatenate(members)
    dist = np.linalg.norm(part_xy[all_parts][:, None] - part_xy[all_parts][None], axis=-1)
    # Reduce rows, then columns, by fragment: parts are grouped by fragment in all_parts.
    starts = np.concatenate([[0], np.cumsum([len(m) for m in members])[:-1]])
    by_row = np.minimum.reduceat(dist, starts, axis=0)
    return np.minimum.reduceat(by_row, starts, axis=1)


def match_limb(pafs: np.ndarray, limb: int, a_xy: np.ndarray, b_xy: np.ndarray, map_height: int, params: GroupingParams,
               backend: str = "numba") -> list[tuple[int, int, float]]:
    """Greedy bipartite matching for one limb type of the ``pafs`` (2L, H, W), between candidate parts
    ``a_xy`` (A, 2) and ``b_xy`` (B, 2) in cells: connections (index into a, index into b, score), best first."""
    if len(a_xy) == 0 or len(b_xy) == 0:
        return []
    mean, fraction = limb_scores(
        pafs[2 * limb], pafs[2 * limb + 1], a_xy, b_xy, params.num_samples, params.sample_threshold, backend,
        min_fraction=params.min_sample_fraction,
    )
    score = mean
    if params.distance_prior:
        length = np.linalg.norm(a_xy[:, None, :] - b_xy[None, :, :], axis=-1)
        score = mean + np.minimum(0.5 * map_height / np.maximum(length, 1e-6) - 1.0, 0.0)
    valid = (fraction > params.min_sample_fraction) & (score > 0)
    return greedy_match(score, valid, backend)


def greedy_match(score: np.ndarray, valid: np.ndarray, backend: str = "numba") -> list[tuple[int, int, float]]:
    """Valid pairs of ``score``, ``valid`` (A, B) taken in descending score, each candidate used at most once:
    (index into A, index into B, score) in descending score."""
    if backend == "numpy":
        return greedy_match_reference(score, valid)
    limit = min(score.shape)
    out_a, out_b = np.empty(limit, np.int64), np.empty(limit, np.int64)
    out_score = np.empty(limit, np.float64)
    n = _kernels.greedy_match_kernel(np.ascontiguousarray(score, np.float64), np.ascontiguousarray(valid), out_a, out_b, out_score)
    return list(zip(out_a[:n].tolist(), out_b[:n].tolist(), out_score[:n].tolist()))


def greedy_match_reference(score: np.ndarray, valid: np.ndarray) -> list[tuple[int, int, float]]:
    """Plain-Python reference of :func:`greedy_match`."""
    ia, ib = np.nonzero(valid)
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
    return out


def group_people(part_types: np.ndarray, part_xy: np.ndarray, part_scores: np.ndarray, pafs: np.ndarray,
                 skeleton: Skeleton, params: GroupingParams = GroupingParams(),
                 backend: str = "numba") -> tuple[np.ndarray, np.ndarray]:
    """Assemble people from detected parts, (P,) ``part_types``, (P, 2) ``part_xy`` in output cells and (P,)
    ``part_scores``, and the ``pafs`` (2L, H, W); ``backend``: "numba" or "numpy" for the line integrals.

    Returns:
        keypoints (N, K, 3) float32 (x, y in cells, part score; 0 where missing) and person
        scores (N,) float32, best first. The score is the mean of the person's part and limb
        scores, weighted by the share of the skeleton found, so that complete, confident
        people rank above fragments (COCO AP rewards that ranking).
    """
    k_n = skeleton.num_keypoints
    people, limb_sum, limb_count, owner = _assemble(part_types, part_xy, pafs, skeleton, params, backend)
    if params.merge_rootless > 0:
        _merge_rootless(people, limb_sum, limb_count, owner, part_types, part_xy, _root(skeleton),
                        params.merge_rootless, k_n, part_scores)
    return _scored_people(people, limb_sum, limb_count, part_xy, part_scores, k_n, params)


def _assemble(part_types: np.ndarray, part_xy: np.ndarray, pafs: np.ndarray, skeleton: Skeleton,
              params: GroupingParams, backend: str) -> tuple[list[np.ndarray], list[float], list[int], np.ndarray]:
    """Steps 3-4 of the decode: each limb's matches, in tree order, grow, join or start people.

    A redundant limb's connection between two parts of no one yet waits: it is tried again, until
    no more join, once every limb has been matched, for one of its parts may have joined someone
    through a later redundant limb (the limbs that keep a partly labelled instance whole are
    redundant, and may chain through one another in any order).

    Returns the people (each (K,) global part index or -1), their limb score sums and counts,
    and each part's owner (person index or -1).
    """
    k_n = skeleton.num_keypoints
    by_type = [np.flatnonzero(part_types == k) for k in range(k_n)]
    owner = np.full(len(part_types), -1, dtype=np.int64)
    people: list[np.ndarray] = []
    limb_sum: list[float] = []
    limb_count: list[int] = []
    redundant = set(skeleton.redundant_limbs)
    map_height = pafs.shape[1]

    def connect(ga: int, gb: int, a_type: int, b_type: int, s: float, may_start: bool) -> bool:
        """Apply one connection; False when it joins two parts of no one and may not start a person."""
        pa, pb = int(owner[ga]), int(owner[gb])
        if pa >= 0 and pb >= 0:
            if pa == pb:
                limb_sum[pa] += s
                limb_count[pa] += 1
                return True
            # Two partial skeletons joined by this limb: merge if they share no part type.
            if not np.any((people[pa] >= 0) & (people[pb] >= 0)):
                _join(people, limb_sum, limb_count, owner, pa, pb, s)
        elif pa >= 0 or pb >= 0:
            person, part, part_type = (pa, gb, b_type) if pa >= 0 else (pb, ga, a_type)
            if people[person][part_type] >= 0:
                return True  # that slot already holds another part
            people[person][part_type] = part
            owner[part] = person
            limb_sum[person] += s
            limb_count[person] += 1
        elif may_start:
            person_parts = np.full(k_n, -1, dtype=np.int64)
            person_parts[a_type], person_parts[b_type] = ga, gb
            owner[ga] = owner[gb] = len(people)
            people.append(person_parts)
            limb_sum.append(s)
            limb_count.append(1)
        else:
            return False
        return True

    waiting: list[tuple[int, int, int, int, float]] = []
    for limb in limb_order(skeleton):
        a_type, b_type = skeleton.limbs[limb]
        ids_a, ids_b = by_type[a_type], by_type[b_type]
        for i, j, s in match_limb(pafs, limb, part_xy[ids_a], part_xy[ids_b], map_height, params, backend):
            connection = (int(ids_a[i]), int(ids_b[j]), a_type, b_type, s)
            if not connect(*connection, may_start=limb not in redundant):
                waiting.append(connection)
    while waiting:
        still = [c for c in waiting if not connect(*c, may_start=False)]
        if len(still) == len(waiting):
            break
        waiting = still
    return people, limb_sum, limb_count, owner


def _scored_people(people: list[np.ndarray], limb_sum: list[float], limb_count: list[int], part_xy: np.ndarray,
                   part_scores: np.ndarray, k_n: int, params: GroupingParams) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: keypoints (N, K, 3) and scores (N,) of the people that pass the filters, best first."""
    if not people:
        return np.zeros((0, k_n, 3), dtype=np.float32), np.zeros(0, dtype=np.float32)
    parts = np.stack(people)  # (M, K)
    found = parts >= 0
    n = found.sum(axis=1)
    safe = np.where(found, parts, 0)
    part_mean = np.where(found, part_scores[safe], 0.0).sum(axis=1) / np.maximum(n, 1)
    limb_mean = np.minimum(np.asarray(limb_sum) / np.maximum(np.asarray(limb_count), 1), 1.0)
    keep = (n > 0) & (n >= params.min_parts) & (part_mean >= params.min_mean_score)
    keypoints = np.zeros((int(keep.sum()), k_n, 3), dtype=np.float32)
    keypoints[..., :2] = np.where(found[keep, :, None], part_xy[safe[keep]], 0.0)
    keypoints[..., 2] = np.where(found[keep], part_scores[safe[keep]], 0.0)
    scores = (0.5 * (part_mean + limb_mean) * np.sqrt(n / k_n))[keep].astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    return keypoints[order], scores[order]
