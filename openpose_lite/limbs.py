"""Limb graphs, pure functions of keypoint indices: components, spanning tree and redundant limbs, completion
of a limb list (mirror images, a tree, limbs that keep partly labelled instances whole), derived colours.

Shape legend: K keypoints, L limbs, N instances.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
from scipy.cluster.hierarchy import DisjointSet
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["breadth_first", "chunks", "derived_colours", "instance_completion", "limb_components", "limb_degrees",
           "mirror_completion", "spanning_limbs", "tree_completion"]

Colour = tuple[int, int, int]
Limbs = tuple[tuple[int, int], ...]


def limb_components(num_keypoints: int, limbs: Limbs) -> np.ndarray:
    """(K,) int: the connected component of each keypoint in the limb graph (0, 1, ... in keypoint order)."""
    ends = np.asarray(limbs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(num_keypoints, num_keypoints))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def breadth_first(num_keypoints: int, limbs: Limbs, starts: Iterable[int]
                  ) -> tuple[list[int], list[tuple[int, int, int, bool]]]:
    """Walk a limb graph breadth first from each of ``starts`` not reached yet, at each keypoint its limbs not
    walked yet in list order; linear in K + L. Returns (the keypoints in the order reached; the limbs walked:
    (limb index, from keypoint, to keypoint, whether it reached that one first)).
    """
    touching: list[list[int]] = [[] for _ in range(num_keypoints)]
    for i, (a, b) in enumerate(limbs):  # each keypoint's limbs, in list order
        touching[a].append(i)
        touching[b].append(i)
    reached = np.zeros(num_keypoints, dtype=bool)
    walked = np.zeros(len(limbs), dtype=bool)
    order: list[int] = []
    steps: list[tuple[int, int, int, bool]] = []
    for start in starts:
        start = int(start)
        if reached[start]:
            continue
        reached[start] = True
        order.append(start)
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for i in touching[node]:
                if walked[i]:
                    continue
                walked[i] = True
                a, b = limbs[i]
                other = b if node == a else a
                new = not reached[other]
                steps.append((i, node, other, new))
                if new:
                    reached[other] = True
                    order.append(other)
                    queue.append(other)
    return order, steps


def limb_degrees(num_keypoints: int, limbs: Limbs) -> np.ndarray:
    """(K,) int: how many of ``limbs`` each keypoint has."""
    return np.bincount(np.asarray(limbs, dtype=np.int64).reshape(-1), minlength=num_keypoints)[:num_keypoints]


def spanning_limbs(num_keypoints: int, limbs: Limbs) -> tuple[int, ...]:
    """The redundant limbs of a limb graph: walked breadth first from the keypoints with the most limbs (the
    first on a tie: OpenPose's neck), a limb that reaches a keypoint already reached closes a cycle. The others
    form the spanning tree along which bottom-up grouping grows people (as CMU's shoulder-ear limbs are)."""
    degree = limb_degrees(num_keypoints, limbs)
    _, steps = breadth_first(num_keypoints, limbs, np.argsort(-degree, kind="stable"))
    return tuple(sorted(i for i, _, _, new in steps if not new))


def _hsv_to_bgr(hue_deg: float, saturation: float, value: float) -> Colour:
    """One HSV colour (hue in degrees, saturation and value in [0, 1]) as 8-bit BGR."""
    c = value * saturation
    h = (hue_deg % 360.0) / 60.0
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    m = value - c
    return tuple(int(round(255 * (v + m))) for v in (b, g, r))  # type: ignore[return-value]


def mirror_completion(limbs: Limbs, flip_permutation: np.ndarray) -> list[tuple[int, int]]:
    """The mirror images (perm[a], perm[b]) of ``limbs`` that are not limbs yet, in limb order: a PAF model
    sees mirrored images, where each needs a channel of its own."""
    have = {frozenset(limb) for limb in limbs}
    return [pair for limb in limbs for pair in _new_with_mirror(limb, flip_permutation, have)]


def _new_with_mirror(pair: tuple[int, int], flip_permutation: np.ndarray, have: set[frozenset[int]]
                     ) -> list[tuple[int, int]]:
    """``pair`` and its mirror image, those not in ``have`` (the limbs as keypoint sets; updated)."""
    a, b = pair
    new = []
    for limb in (pair, (int(flip_permutation[a]), int(flip_permutation[b]))):
        if frozenset(limb) not in have and limb[0] != limb[1]:
            have.add(frozenset(limb))
            new.append(limb)
    return new


def _pairs_shortest_first(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, order): the keypoint pairs a < b of a (K, K) distance matrix and their order,
    shortest first, ties in index order, pairs never measured (``inf``) last."""
    rows, cols = np.triu_indices(distances.shape[0], 1)
    return rows, cols, np.lexsort((cols, rows, distances[rows, cols]))


def tree_completion(limbs: Limbs, distances: np.ndarray, flip_permutation: np.ndarray) -> list[tuple[int, int]]:
    """Limbs that join the pieces of a limb graph into one: Kruskal's minimum spanning tree over the pieces.

    Keypoint pairs shortest first by ``distances`` (K, K; ties in index order): a pair joining two pieces
    becomes a limb, and so does its mirror image (the completed skeleton stays symmetric). Pieces no finite
    distance joins (``inf``: never labelled together) hang last by the pairs nearest in keypoint order (lists
    run along the body). Returns the added limbs (a, b), a < b, or their mirrors, in the order chosen.
    """
    pieces = DisjointSet(range(distances.shape[0]))
    for a, b in limbs:
        pieces.merge(a, b)
    have = {frozenset(limb) for limb in limbs}
    rows, cols, by_distance = _pairs_shortest_first(distances)
    measured = np.isfinite(distances[rows, cols])
    by_order = np.lexsort((rows, cols - rows))
    added: list[tuple[int, int]] = []
    for n in np.concatenate([by_distance[measured[by_distance]], by_order[~measured[by_order]]]):
        a, b = int(rows[n]), int(cols[n])
        if pieces.connected(a, b):
            continue
        for pair in _new_with_mirror((a, b), flip_permutation, have):
            added.append(pair)
            pieces.merge(*pair)
    return added


# Elements (instances x keypoints x keypoints) one step of the pair counts holds at a time: a
# few tens of MB whatever the file, where all instances at once took gigabytes for a large one.
PAIR_CHUNK = 1 << 22


def instance_completion(limbs: Limbs, distances: np.ndarray, flip_permutation: np.ndarray, labelled: np.ndarray,
                        max_added: int | None = None) -> tuple[list[tuple[int, int]], int]:
    """Limbs that keep every instance's labelled keypoints connected through limbs labelled at both ends.

    Bottom-up grouping returns a partly labelled instance in pieces where a tree runs through keypoints it
    lacks. Greedily, until none is in pieces: the pair that joins two pieces in the most instances (``labelled``
    (N, K) bool) becomes a limb (then the shortest by ``distances``, then index order), and its mirror image;
    one limb so serves every instance lacking the same keypoints. Pair counts are kept and lowered as pieces
    join: about N K^2 work plus K^2 per limb, memory K^2 plus :data:`PAIR_CHUNK`. ``max_added``: stop at that
    many limbs (a mirror may add one more). Returns (the added limbs; the instances still in pieces).
    """
    labelled = np.asarray(labelled, dtype=bool).reshape(-1, distances.shape[0])
    on = labelled[labelled.sum(axis=1) >= 2]  # (S, K): an instance of one labelled keypoint is never in pieces
    k = distances.shape[0]
    piece = _instance_pieces(k, limbs, on)
    apart = _pairs_apart(on, piece)
    pieces = _piece_counts(on, piece)
    have = {frozenset(limb) for limb in limbs}
    rows, cols, order = _pairs_shortest_first(distances)
    tie_order = (rows * k + cols)[order]  # flat (a, b) of the pairs, a < b, in tie order: argmax takes the first best

    def join(a: int, b: int) -> None:
        hit = np.flatnonzero(on[:, a] & on[:, b] & (piece[:, a] != piece[:, b]))
        if len(hit) == 0:
            return
        sub, sub_on = piece[hit], on[hit]
        in_a = sub_on & (sub == sub[:, a:a + 1])  # (R, K) the two pieces this limb joins, per instance
        in_b = sub_on & (sub == sub[:, b:b + 1])
        pairs = int(in_a.sum(axis=1) @ in_b.sum(axis=1))  # the pairs this join lowers, all instances together
        if 64 * pairs < len(hit) * k * k:  # few: lowered one by one (each pair of an instance once, N K^2 in all)
            joined = (csr_matrix(in_a.T, dtype=np.float32) @ csr_matrix(in_b, dtype=np.float32)).tocoo()
            apart[joined.row, joined.col] -= joined.data
            apart[joined.col, joined.row] -= joined.data
        else:  # many: a dense product costs less than scattering them
            joined = in_a.T.astype(np.float32) @ in_b.astype(np.float32)
            apart[...] -= joined + joined.T
        piece[hit] = np.where(in_b, sub[:, a:a + 1], sub)
        pieces[hit] -= 1

    added: list[tuple[int, int]] = []
    while True:
        split = int((pieces > 1).sum())
        if split == 0 or (max_added is not None and len(added) >= max_added):
            return added, split
        # A split instance has a pair of its labelled keypoints apart, so the best count is > 0,
        # and no limb already there is apart anywhere: each round adds a limb.
        best = int(np.argmax(np.take(apart, tie_order)))
        a, b = divmod(int(tie_order[best]), k)
        for pair in _new_with_mirror((a, b), flip_permutation, have):
            added.append(pair)
            join(*pair)


def chunks(count: int, per_item: int) -> Iterator[slice]:
    """Slices of ``range(count)`` holding about :data:`PAIR_CHUNK` elements of ``per_item`` each."""
    step = max(1, PAIR_CHUNK // max(per_item, 1))
    return (slice(i, min(i + step, count)) for i in range(0, count, step))


def _instance_pieces(k: int, limbs: Limbs, on: np.ndarray) -> np.ndarray:
    """(S, K) int64: a label per keypoint of each instance, equal where the limbs labelled at both ends
    in that instance join two keypoints (connected components, a chunk of instances at a time)."""
    piece = np.empty(on.shape, dtype=np.int64)
    ends = np.asarray(limbs, dtype=np.int64).reshape(-1, 2)
    for part in chunks(len(on), k + len(ends)):
        sub = on[part]
        n = len(sub)
        inst, limb = np.nonzero(sub[:, ends[:, 0]] & sub[:, ends[:, 1]])
        graph = coo_matrix((np.ones(len(inst), dtype=np.int8), (inst * k + ends[limb, 0], inst * k + ends[limb, 1])),
                           shape=(n * k, n * k))
        piece[part] = connected_components(graph, directed=False)[1].reshape(n, k)
    return piece


def _pairs_apart(on: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """(K, K) float32: in how many instances each keypoint pair is labelled at both ends and in two pieces.

    float32 counts exactly up to 2^24 instances, and halves the memory that each round scans."""
    k = on.shape[1]
    apart = np.zeros((k, k), dtype=np.float32)
    for part in chunks(len(on), k * k):
        both = on[part, :, None] & on[part, None, :]
        apart += (both & (piece[part, :, None] != piece[part, None, :])).sum(axis=0, dtype=np.float32)
    return apart


def _piece_counts(on: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """(S,) int64: how many pieces each instance's labelled keypoints fall into."""
    ranked = np.sort(np.where(on, piece, -1), axis=1)
    fresh = (ranked[:, 1:] != ranked[:, :-1]) & (ranked[:, 1:] >= 0)
    return fresh.sum(axis=1) + (ranked[:, 0] >= 0)


def derived_colours(limbs: Limbs, flip_pairs: Limbs, limb_mirror: np.ndarray) -> tuple[Colour, ...]:
    """Limb colours from the skeleton alone: left limbs warm, right limbs cool (a limb and its mirror at the same
    place of their ranges), the others green, alternating in brightness; without flip pairs the whole wheel.
    ``limb_mirror`` (L,): each limb's mirror image; the left side of a flip pair is its first keypoint."""
    left = {a for a, _ in flip_pairs}
    right = {b for _, b in flip_pairs}
    sides = []
    for a, b in limbs:
        on_left, on_right = bool({a, b} & left), bool({a, b} & right)
        sides.append("L" if on_left and not on_right else "R" if on_right and not on_left else "C")
    rank: dict[int, int] = {}
    counts = {"L": 0, "R": 0, "C": 0}
    for i, side in enumerate(sides):
        if side == "R" and sides[limb_mirror[i]] == "L":
            continue  # takes its mirror's rank below
        rank[i] = counts[side]
        counts[side] += 1
    for i in range(len(sides)):
        rank.setdefault(i, rank.get(int(limb_mirror[i]), 0))
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
