"""Limb graphs: which keypoints the limbs connect, the spanning tree and the redundant limbs,
completing a limb list to its mirror image, to a tree and to limbs that keep partly labelled
instances whole, and the limb colours derived from it.

Pure functions of keypoint indices (no names, no files), shared by :mod:`openpose_lite.skeleton`
and :mod:`openpose_lite.coco_skeleton`.

Shape legend: K keypoints, L limbs, N instances.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy.cluster.hierarchy import DisjointSet

__all__ = ["derived_colours", "instance_completion", "limb_components", "mirror_completion", "spanning_limbs",
           "tree_completion"]

Colour = tuple[int, int, int]
Limbs = tuple[tuple[int, int], ...]


def limb_components(num_keypoints: int, limbs: Limbs) -> np.ndarray:
    """(K,) int: the connected component of each keypoint in the limb graph (0, 1, ... in keypoint order)."""
    pieces = _pieces(num_keypoints, limbs)
    roots = [pieces[i] for i in range(num_keypoints)]
    labels = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return np.array([labels[r] for r in roots], dtype=np.int64)


def _pieces(num_keypoints: int, limbs: Limbs) -> DisjointSet:
    """The keypoints 0..K-1 as disjoint sets, joined along ``limbs``."""
    pieces = DisjointSet(range(num_keypoints))
    for a, b in limbs:
        pieces.merge(a, b)
    return pieces


def spanning_limbs(num_keypoints: int, limbs: Limbs) -> tuple[int, tuple[int, ...]]:
    """(root, redundant limbs) of a limb graph: the general rule for limbs that close cycles.

    The root is the keypoint with the most limbs (the first on a tie: OpenPose's neck). Limbs are
    walked breadth first from it, in list order at each keypoint (then from the best-connected
    keypoint not reached, for a graph in pieces); a limb that reaches a keypoint already reached
    closes a cycle and is redundant. The others form a spanning tree along which bottom-up
    grouping grows people; the redundant ones only join parts of people already started, as
    CMU's shoulder-ear limbs do.
    """
    degree = np.zeros(num_keypoints, dtype=np.int64)
    for a, b in limbs:
        degree[a] += 1
        degree[b] += 1
    root = int(np.argmax(degree)) if num_keypoints else 0
    seen: set[int] = set()
    walked: set[int] = set()
    redundant: list[int] = []
    for start in [root] + [int(k) for k in np.argsort(-degree, kind="stable")]:
        if start in seen:
            continue
        seen.add(start)
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for i, (a, b) in enumerate(limbs):
                if i in walked or node not in (a, b):
                    continue
                walked.add(i)
                other = b if node == a else a
                if other in seen:
                    redundant.append(i)
                else:
                    seen.add(other)
                    queue.append(other)
    return root, tuple(sorted(redundant))


def _hsv_to_bgr(hue_deg: float, saturation: float, value: float) -> Colour:
    """One HSV colour (hue in degrees, saturation and value in [0, 1]) as 8-bit BGR."""
    c = value * saturation
    h = (hue_deg % 360.0) / 60.0
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    m = value - c
    return tuple(int(round(255 * (v + m))) for v in (b, g, r))  # type: ignore[return-value]


def mirror_completion(limbs: Limbs, flip_permutation: np.ndarray) -> list[tuple[int, int]]:
    """The mirror images of ``limbs`` that are not limbs yet, in limb order.

    A PAF model sees mirrored images in training (and in the flip test), where limb (a, b)
    becomes (perm[a], perm[b]); that pair must have a channel of its own.
    """
    have = {frozenset(limb) for limb in limbs}
    added: list[tuple[int, int]] = []
    for a, b in limbs:
        mirrored = (int(flip_permutation[a]), int(flip_permutation[b]))
        if frozenset(mirrored) not in have:
            have.add(frozenset(mirrored))
            added.append(mirrored)
    return added


def _pairs_shortest_first(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, order): the keypoint pairs a < b of a (K, K) distance matrix and their order,
    shortest first, ties in index order, pairs never measured (``inf``) last."""
    rows, cols = np.triu_indices(distances.shape[0], 1)
    return rows, cols, np.lexsort((cols, rows, distances[rows, cols]))


def tree_completion(limbs: Limbs, distances: np.ndarray, flip_permutation: np.ndarray) -> list[tuple[int, int]]:
    """Limbs that join the pieces of a limb graph into one: a minimum spanning tree over the pieces.

    Kruskal's rule on keypoint pairs, shortest first (ties in index order), starting from the
    pieces that ``limbs`` make: a pair joining two pieces becomes a limb, and so does its mirror
    image (``flip_permutation``), so the completed skeleton stays symmetric (the mirror limb may
    close a cycle; :func:`spanning_limbs` then marks it redundant). Pieces that no finite distance
    joins (keypoints never labelled together with the others) are joined last, by the pairs
    nearest in keypoint order (lists run along the body: eyes beside the nose): no annotation
    says where such a keypoint is, and none of its instances can be split by where it hangs.

    Args:
        limbs: the limbs given, (a, b) keypoint indices.
        distances: (K, K) cost of joining two keypoints (e.g. their mean normalised distance in the
            annotations); ``inf`` where a pair cannot be measured (never labelled together).
    Returns:
        the added limbs (a, b) with a < b, or their mirrors, in the order they were chosen; those
        joined by keypoint order have an infinite distance. The completed graph is connected.
    """
    k = distances.shape[0]
    pieces = _pieces(k, limbs)
    have = {frozenset(limb) for limb in limbs}
    rows, cols, by_distance = _pairs_shortest_first(distances)
    measured = np.isfinite(distances[rows, cols])
    by_order = np.lexsort((rows, cols - rows))
    added: list[tuple[int, int]] = []
    for n in np.concatenate([by_distance[measured[by_distance]], by_order[~measured[by_order]]]):
        a, b = int(rows[n]), int(cols[n])
        if pieces.connected(a, b):
            continue
        for pair in ((a, b), (int(flip_permutation[a]), int(flip_permutation[b]))):
            if frozenset(pair) not in have and pair[0] != pair[1]:
                have.add(frozenset(pair))
                added.append(pair)
                pieces.merge(*pair)
    return added


def instance_completion(limbs: Limbs, distances: np.ndarray, flip_permutation: np.ndarray, labelled: np.ndarray,
                        max_added: int | None = None) -> tuple[list[tuple[int, int]], int]:
    """Limbs that keep every instance's labelled keypoints connected through limbs labelled at both ends.

    A partly labelled instance is grouped only along limbs whose two ends it has: where its
    labelled keypoints fall into several pieces of the limb graph (a tree running through
    keypoints it lacks), bottom-up grouping returns it in pieces. Greedily, until no instance is
    in pieces: the keypoint pair that joins two pieces in the most instances becomes a limb (the
    shortest on a tie, then the first in index order), and so does its mirror image. Counting
    instances rather than taking every instance's shortest join lets one limb serve all the
    instances that lack the same keypoints, so fewer limbs (PAF channels) are added, the most
    useful first. The added limbs close cycles, so the bottom-up layout makes them (or tree limbs
    they bypass) redundant limbs (:func:`spanning_limbs`).

    Args:
        limbs: the limbs so far, (a, b) keypoint indices.
        distances: (K, K) cost of joining two keypoints (finite for every pair labelled together).
        labelled: (N, K) bool, which keypoints each instance has.
        max_added: stop choosing once this many limbs are added (a mirror image may add one more);
            None: no bound. Keypoints missing at random leave so many patterns that keeping every
            instance whole takes a nearly complete graph.
    Returns:
        (the added limbs (a, b) with a < b, or their mirrors, in the order they were chosen; the
        number of instances still in pieces).
    """
    labelled = np.asarray(labelled, dtype=bool)
    k = distances.shape[0]
    piece = np.tile(np.arange(k), (labelled.shape[0], 1))  # (N, K) piece label of each keypoint, per instance

    def join(a: int, b: int) -> None:
        rows = np.flatnonzero(labelled[:, a] & labelled[:, b] & (piece[:, a] != piece[:, b]))
        sub = piece[rows]
        piece[rows] = np.where(sub == sub[:, b:b + 1], sub[:, a:a + 1], sub)

    for a, b in limbs:
        join(a, b)
    have = {frozenset(limb) for limb in limbs}
    rows, cols, order = _pairs_shortest_first(distances)
    rank = np.empty(len(rows), dtype=np.int64)  # a tie in instance count keeps this order
    rank[order] = np.arange(len(rows))
    added: list[tuple[int, int]] = []
    while True:
        first = piece[np.arange(len(piece)), np.argmax(labelled, axis=1)]  # piece of each first labelled keypoint
        split = np.flatnonzero((labelled & (piece != first[:, None])).any(axis=1))
        if len(split) == 0 or (max_added is not None and len(added) >= max_added):
            return added, len(split)
        on, at = labelled[split], piece[split]
        apart = on[:, rows] & on[:, cols] & (at[:, rows] != at[:, cols])  # (S, pairs)
        # A split instance has a pair of its labelled keypoints apart, so the best count is > 0,
        # and no limb already there is apart anywhere: each round adds a limb.
        best = int(np.lexsort((rank, -apart.sum(axis=0)))[0])
        for pair in ((int(rows[best]), int(cols[best])),
                     (int(flip_permutation[rows[best]]), int(flip_permutation[cols[best]]))):
            if frozenset(pair) not in have and pair[0] != pair[1]:
                have.add(frozenset(pair))
                added.append(pair)
                join(*pair)


def derived_colours(limbs: Limbs, flip_pairs: Limbs, limb_mirror: np.ndarray) -> tuple[Colour, ...]:
    """Limb colours from the skeleton alone: left limbs warm, right limbs cool, the others green.

    A left limb and its mirror sit at the same place of their ranges, so corresponding limbs are
    easy to pair up; consecutive limbs of a range alternate in brightness. The left side of a
    flip pair is its first keypoint; ``limb_mirror`` (L,) is the index of each limb's mirror image. Without flip pairs the hues go round the whole wheel.
    """
    left = {a for a, _ in flip_pairs}
    right = {b for _, b in flip_pairs}
    sides = []
    for a, b in limbs:
        on_left, on_right = bool({a, b} & left), bool({a, b} & right)
        sides.append("L" if on_left and not on_right else "R" if on_right and not on_left else "C")
    mirror = limb_mirror  # (L,) limb index of each limb's mirror image
    rank: dict[int, int] = {}
    counts = {"L": 0, "R": 0, "C": 0}
    for i, side in enumerate(sides):
        if side == "R" and sides[mirror[i]] == "L":
            continue  # takes its mirror's rank below
        rank[i] = counts[side]
        counts[side] += 1
    for i, side in enumerate(sides):
        rank.setdefault(i, rank.get(int(mirror[i]), 0))
    counts["R"] = max(counts["R"], counts["L"])
    ranges = {"L": (0.0, 50.0), "R": (180.0, 70.0), "C": (85.0, 60.0)}
    if not left:
        ranges["C"] = (0.0, 360.0 * (1 - 1 / max(counts["C"], 1)))
    colours = []
    for i, side in enumerate(sides):
        start, span = ranges[side]
        t = rank[i] / max(counts[side] - 1, 1)
        colours.append(_hsv_to_bgr(start + span * t, 1.0, 1.0 if rank[i] % 2 == 0 else 0.7))
    return tuple(colours)


