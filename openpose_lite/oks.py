"""Object keypoint similarity (OKS) between people, and greedy OKS non-maximum suppression.

OKS is COCO's keypoint similarity (cocodataset.org, keypoint evaluation):
``exp(-d^2 / (2 s^2 k^2))`` per keypoint, with ``k = 2 sigma`` and ``s^2`` the object's area,
averaged over keypoints. pycocotools computes the evaluation's own OKS
(:mod:`openpose_lite.evaluation`). Which keypoints are averaged differs by use, on purpose:

* :func:`oks_matrix` (top-down NMS): those labelled in the reference person, as
  ``COCOeval.computeOks`` averages over the ground truth's labelled keypoints whatever the
  detection has there;
* :func:`oks_nms`: every keypoint, as the HRNet reference's ``oks_iou`` does;
* :func:`keypoint_similarity` / :func:`mutual_oks` (the tracker, the MOT metrics): those labelled
  in *both* people. A track's prediction lacks the keypoints it has not seen yet and a detection
  the occluded ones; neither is evidence that the two are different people, so a keypoint
  missing on either side is left out instead of counting as far away.

Shape legend: N, M, T, D people, K keypoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keypoint_box_areas", "keypoint_similarity", "mutual_oks", "oks_matrix", "oks_nms"]

# Where mutual_oks puts unlabelled keypoints (px): far enough that exp(-d^2 / (2 s^2 k^2)) is 0.
_FAR = 1e6


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """(N, N) OKS of person j measured against person i as the reference, from ``keypoints`` (N, K, 3) x, y,
    score, ``areas`` (N,) (the scale is the row person's) and ``sigmas`` (K,); keypoints of the row person
    scoring at or below ``threshold`` are left out."""
    kps = np.asarray(keypoints, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((kps[:, None, :, :2] - kps[None, :, :, :2]) ** 2).sum(-1)  # (N, N, K)
    e = d2 / (var[None, None, :] * (np.asarray(areas, dtype=np.float64)[:, None, None] + np.spacing(1)) * 2.0)
    use = kps[:, None, :, 2] > threshold  # the reference person's confident keypoints
    count = np.maximum(use.sum(-1), 1)
    return np.where(use, np.exp(-e), 0.0).sum(-1) / count


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float = 0.9) -> np.ndarray:
    """Greedy non-maximum suppression by OKS: keep the best person, drop those too similar to it, repeat.

    The HRNet reference's rule (``lib/nms/nms.py``, ``oks_nms`` and ``oks_iou``, as its COCO
    evaluation calls them): the OKS of two people uses every keypoint and the mean of their two
    areas, ``exp(-d^2 / (2 (2 sigma)^2 (a_i + a_j) / 2))`` averaged over keypoints, and a person is
    dropped when that OKS with a kept one exceeds ``threshold``.

    ``keypoints`` (N, K, 3) x, y, score; ``areas`` (N,) (top-down: the crop region's w * h); ``scores``
    (N,); ``sigmas`` (K,). Returns the indices of the kept people, best first.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    if len(order) == 0:
        return order.astype(np.int64)
    kps = np.asarray(keypoints, dtype=np.float64)
    area = np.asarray(areas, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((kps[:, None, :, :2] - kps[None, :, :, :2]) ** 2).sum(-1)  # (N, N, K)
    scale = 0.5 * (area[:, None] + area[None, :]) + np.spacing(1)  # (N, N)
    oks = np.exp(-d2 / var / scale[..., None] / 2.0).mean(-1)
    keep: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= oks[i] > threshold
    return np.asarray(keep, dtype=np.int64)


def mutual_oks(ref_xy: np.ndarray, ref_on: np.ndarray, cand_xy: np.ndarray, cand_on: np.ndarray,
               areas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(T, D) OKS over the keypoints labelled in both, from (T, K, 2) / (T, K) references and (D, K, 2) / (D, K) candidates.

    ``areas`` (T,) are the references' scales s^2, ``sigmas`` (K,) the OKS constants; a pair that
    shares no labelled keypoint scores 0. float32 and no masks in the (T, D, K) arrays, for speed
    (the tracker calls it every frame): unlabelled keypoints are moved 2e6 px away from any other
    keypoint, so that their exp() is exactly 0.
    """
    kappa2 = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    r = np.where(ref_on[..., None], ref_xy, _FAR).astype(np.float32)
    c = np.where(cand_on[..., None], cand_xy, -_FAR).astype(np.float32)
    inv = (-1.0 / ((2.0 * (np.asarray(areas, np.float64) + np.spacing(1)))[:, None] * kappa2)).astype(np.float32)  # (T, K)
    e = r[:, None, :, 0] - c[None, :, :, 0]
    dy = r[:, None, :, 1] - c[None, :, :, 1]
    e *= e
    dy *= dy
    e += dy
    e *= inv[:, None, :]
    np.exp(e, out=e)
    t, d, k = e.shape
    total = e.reshape(t * d, k) @ np.ones(k, np.float32)  # a matrix-vector product sums fastest
    count = ref_on.astype(np.float32) @ cand_on.T.astype(np.float32)
    return total.reshape(t, d).astype(np.float64) / np.maximum(count, 1.0)


def keypoint_similarity(reference: np.ndarray, candidates: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                        threshold: float = 0.0) -> np.ndarray:
    """COCO's OKS (module docstring) of every reference person with every candidate, over the keypoints scoring
    above ``threshold`` in both people; 0 for a pair that shares none.

    Args:
        reference: (T, K, 3) x, y, score; candidates: (D, K, 3).
        areas: (T,) the reference people's areas (s^2, px^2).
        sigmas: (K,) OKS constants (``Skeleton.sigmas_array``).
    Returns:
        (T, D) float64 OKS in [0, 1].
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidates, dtype=np.float64)
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    k = sig.shape[0]
    if ref.ndim != 3 or ref.shape[1:] != (k, 3) or cand.ndim != 3 or cand.shape[1:] != (k, 3):
        raise ValueError(f"keypoint_similarity: expected (T, {k}, 3) and (D, {k}, 3) keypoints for {k} sigmas, got {ref.shape} and {cand.shape}")
    area = np.asarray(areas, dtype=np.float64).reshape(-1)
    if area.shape[0] != ref.shape[0]:
        raise ValueError(f"keypoint_similarity: {area.shape[0]} areas for {ref.shape[0]} reference people")
    return mutual_oks(ref[..., :2], ref[..., 2] > threshold, cand[..., :2], cand[..., 2] > threshold, area, sig)


def keypoint_box_areas(xy: np.ndarray, on: np.ndarray) -> np.ndarray:
    """(N,) area of the box of each person's (N, K, 2) keypoints labelled in (N, K); 0 for fewer than two.

    The OKS scale of people who have no segmentation area (tracked people, true people of a video).
    """
    lo = np.where(on[..., None], xy, np.inf).min(1)
    hi = np.where(on[..., None], xy, -np.inf).max(1)
    with np.errstate(invalid="ignore"):  # inf - inf for people without keypoints, masked below
        wh = hi - lo
    return np.where(on.sum(1) >= 2, wh[:, 0] * wh[:, 1], 0.0)
