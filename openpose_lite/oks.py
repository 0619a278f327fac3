"""Object keypoint similarity (OKS) between people, and greedy OKS non-maximum suppression.

OKS is COCO's keypoint similarity (cocodataset.org, keypoint evaluation):
``exp(-d^2 / (2 s^2 k^2))`` per keypoint, with ``k = 2 sigma`` and ``s^2`` the object's area,
averaged over keypoints. pycocotools computes the evaluation's own OKS
(:mod:`openpose_lite.evaluation`). Which keypoints are averaged differs by use, on purpose:

* :func:`oks_iou` / :func:`oks_nms` (top-down NMS): every keypoint, as the HRNet reference's ``oks_iou`` does;
* :func:`keypoint_similarity` / :func:`mutual_oks` (the tracker, the MOT metrics): those labelled
  in *both* people. A track's prediction lacks the keypoints it has not seen yet and a detection
  the occluded ones; neither is evidence that the two are different people, so a keypoint
  missing on either side is left out instead of counting as far away.

Shape legend: N, M, T, D people, K keypoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keypoint_box_areas", "keypoint_similarity", "mutual_oks", "oks_iou", "oks_nms"]

# Where mutual_oks puts unlabelled keypoints (px): far enough that exp(-d^2 / (2 s^2 k^2)) is 0.
_FAR = 1e6


def oks_iou(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(N, N) OKS of every pair of people as the HRNet reference's ``oks_iou`` (``lib/nms/nms.py``) measures it:
    every keypoint, the mean of the pair's areas, ``exp(-d^2 / (2 (2 sigma)^2 (a_i + a_j) / 2))`` averaged over
    keypoints; ``keypoints`` (N, K, 3) x, y, score, ``areas`` (N,), ``sigmas`` (K,)."""
    kps = np.asarray(keypoints, dtype=np.float64)
    area = np.asarray(areas, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((kps[:, None, :, :2] - kps[None, :, :, :2]) ** 2).sum(-1)  # (N, N, K)
    scale = 0.5 * (area[:, None] + area[None, :]) + np.spacing(1)  # (N, N)
    return np.exp(-d2 / var / scale[..., None] / 2.0).mean(-1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float = 0.9) -> np.ndarray:
    """Greedy non-maximum suppression by :func:`oks_iou` (the HRNet reference's ``oks_nms``): keep the best person,
    drop those whose OKS with it exceeds ``threshold``, repeat. ``scores`` (N,); ``areas`` top-down the crop
    regions' w * h. Returns the indices of the kept people, best first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if len(order) == 0:
        return order.astype(np.int64)
    oks = oks_iou(keypoints, areas, sigmas)
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
    """(T, D) COCO OKS of every ``reference`` (T, K, 3) x, y, score with every ``candidates`` (D, K, 3), over the
    keypoints scoring above ``threshold`` in both (0 for a pair sharing none); ``areas`` (T,) the references'
    s^2 (px^2), ``sigmas`` (K,)."""
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
