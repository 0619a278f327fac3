"""Object keypoint similarity (OKS) between people, and greedy OKS non-maximum suppression.

OKS is COCO's keypoint similarity (cocodataset.org, keypoint evaluation):
``exp(-d^2 / (2 s^2 k^2))`` per keypoint, with ``k = 2 sigma`` and ``s^2`` the object's area,
averaged over keypoints. Used by the top-down predictor's NMS and by the tracker; pycocotools
computes the evaluation's own OKS (:mod:`openpose_lite.evaluation`). Shape legend: N, M people,
K keypoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["oks_matrix", "oks_nms"]


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Object keypoint similarity between every pair of predicted people.

    Args:
        keypoints: (N, K, 3) x, y, score.
        areas: (N,) object areas (the OKS scale is each row person's area).
        sigmas: (K,) OKS constants.
        threshold: keypoints of the row person scoring at or below it are left out.
    Returns:
        (N, N) OKS of person j measured against person i as the reference.
    """
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

    Args:
        keypoints: (N, K, 3) x, y, score; areas: (N,) (top-down: the crop region's w * h);
        scores: (N,); sigmas: (K,) OKS constants.
    Returns:
        Indices of the kept people, best first.
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
