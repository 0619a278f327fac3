"""Part affinity fields: rendering (paper Eq. 8-9) and line-integral limb scoring (Eq. 10).

Coordinates are output cells (geometry.py). Shape legend: M limb segments, L limb types,
A / B candidate parts at a limb's two ends, H x W map size.
"""

from __future__ import annotations

import numpy as np

from openpose_lite.codecs import _kernels
from openpose_lite.codecs.heatmap import _is_numpy


def _check_segments(a_xy: np.ndarray, b_xy: np.ndarray, limbs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a_xy = np.asarray(a_xy, dtype=np.float64).reshape(-1, 2)
    b_xy = np.asarray(b_xy, dtype=np.float64).reshape(-1, 2)
    limbs = np.asarray(limbs, dtype=np.int64).reshape(-1)
    if not (a_xy.shape[0] == b_xy.shape[0] == limbs.shape[0]):
        raise ValueError(f"segment arrays disagree: {a_xy.shape[0]} starts, {b_xy.shape[0]} ends, {limbs.shape[0]} limb ids")
    if not (np.isfinite(a_xy).all() and np.isfinite(b_xy).all()):
        raise ValueError("limb end points must be finite")
    return a_xy, b_xy, limbs


def render_pafs(a_xy: np.ndarray, b_xy: np.ndarray, limbs: np.ndarray, num_limbs: int, map_hw: tuple[int, int],
                half_width: float, backend: str = "numba") -> np.ndarray:
    """Unit vector a -> b on the cells within ``half_width`` of the limb axis, averaged where limbs of one type
    overlap. The band extends ``half_width`` past both ends (as the CMU training code's bounding box does), so a
    limb shorter than a cell (a small face's nose-eye) still covers a cell centre.

    Args:
        a_xy, b_xy: (M, 2) segment ends in output cells; limbs: (M,) limb type of each; num_limbs: L.
        map_hw: (H, W).
        half_width: distance from the limb axis, in cells, inside which the field is set.
        backend: "numba" or "numpy" (the reference).
    Returns:
        (2L, H, W) float32: channel 2l is x, 2l + 1 is y of limb type l.
    """
    if _is_numpy(backend):
        return render_pafs_numpy(a_xy, b_xy, limbs, num_limbs, map_hw, half_width)
    a_xy, b_xy, limbs = _check_segments(a_xy, b_xy, limbs)
    h, w = int(map_hw[0]), int(map_hw[1])
    out = np.zeros((2 * num_limbs, h, w), dtype=np.float32)
    count = np.zeros((num_limbs, h, w), dtype=np.int32)
    ax, ay, bx, by = (np.ascontiguousarray(v) for v in (a_xy[:, 0], a_xy[:, 1], b_xy[:, 0], b_xy[:, 1]))
    _kernels.paf_kernel(ax, ay, bx, by, limbs, float(half_width), out, count)
    return out


def render_pafs_numpy(a_xy: np.ndarray, b_xy: np.ndarray, limbs: np.ndarray, num_limbs: int, map_hw: tuple[int, int],
                      half_width: float) -> np.ndarray:
    """Plain-numpy reference of :func:`render_pafs`."""
    a_xy, b_xy, limbs = _check_segments(a_xy, b_xy, limbs)
    h, w = int(map_hw[0]), int(map_hw[1])
    total = np.zeros((num_limbs, 2, h, w), dtype=np.float64)
    count = np.zeros((num_limbs, h, w), dtype=np.int64)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    for a, b, l in zip(a_xy, b_xy, limbs):
        d = b - a
        length = float(np.hypot(d[0], d[1]))
        if length < 1e-9:
            continue
        u = d / length
        px, py = gx - a[0], gy - a[1]
        along = px * u[0] + py * u[1]
        across = np.abs(px * u[1] - py * u[0])
        inside = (along >= -half_width) & (along <= length + half_width) & (across <= half_width)
        total[l, 0][inside] += u[0]
        total[l, 1][inside] += u[1]
        count[l][inside] += 1
    mean = total / np.maximum(count, 1)[:, None]
    return mean.reshape(2 * num_limbs, h, w).astype(np.float32)


def limb_scores(paf_x: np.ndarray, paf_y: np.ndarray, a_xy: np.ndarray, b_xy: np.ndarray, num_samples: int = 10,
                sample_threshold: float = 0.05, backend: str = "numba",
                min_fraction: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Line integral of one limb's field over every candidate pair.

    Args:
        paf_x, paf_y: (H, W) the limb's two field channels.
        a_xy: (A, 2) candidate start parts, b_xy: (B, 2) candidate end parts, in output cells.
        min_fraction: when given, a pair stops sampling once it cannot pass ``min_fraction``
            (the kernel's early stop; the numbers of a pair that passes are exact).
    Returns:
        mean (A, B): average projection of the field on the unit segment direction;
        fraction (A, B): share of the samples whose projection exceeds ``sample_threshold``.
    """
    if _is_numpy(backend):
        return limb_scores_numpy(paf_x, paf_y, a_xy, b_xy, num_samples, sample_threshold)
    a_xy = np.ascontiguousarray(a_xy, dtype=np.float64).reshape(-1, 2)
    b_xy = np.ascontiguousarray(b_xy, dtype=np.float64).reshape(-1, 2)
    mean = np.zeros((a_xy.shape[0], b_xy.shape[0]), dtype=np.float64)
    fraction = np.zeros_like(mean)
    if mean.size:
        field_x = np.ascontiguousarray(paf_x, dtype=np.float32)
        field_y = np.ascontiguousarray(paf_y, dtype=np.float32)
        if min(field_x.shape) < 2:  # the kernel interpolates between two cells; edge padding changes no sample
            pad = ((0, max(0, 2 - field_x.shape[0])), (0, max(0, 2 - field_x.shape[1])))
            field_x, field_y = np.pad(field_x, pad, mode="edge"), np.pad(field_y, pad, mode="edge")
        # Passing needs more than min_fraction * n samples above the threshold.
        max_failures = -1 if min_fraction is None else num_samples - (int(np.floor(min_fraction * num_samples)) + 1)
        _kernels.limb_score_kernel(field_x, field_y, a_xy, b_xy, int(num_samples), float(sample_threshold),
                                   max_failures, mean, fraction)
    return mean, fraction


def limb_scores_numpy(paf_x: np.ndarray, paf_y: np.ndarray, a_xy: np.ndarray, b_xy: np.ndarray, num_samples: int = 10,
                      sample_threshold: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy reference of :func:`limb_scores` (bilinear sampling with edge clamping)."""
    a = np.asarray(a_xy, dtype=np.float64).reshape(-1, 1, 1, 2)
    b = np.asarray(b_xy, dtype=np.float64).reshape(1, -1, 1, 2)
    h, w = paf_x.shape
    t = np.linspace(0.0, 1.0, num_samples) if num_samples > 1 else np.array([0.5])
    pts = a + t[None, None, :, None] * (b - a)  # (A, B, S, 2)
    x = np.clip(pts[..., 0], 0, w - 1)
    y = np.clip(pts[..., 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0

    def bilinear(m: np.ndarray) -> np.ndarray:
        m = m.astype(np.float64)
        return (1 - fy) * ((1 - fx) * m[y0, x0] + fx * m[y0, x1]) + fy * ((1 - fx) * m[y1, x0] + fx * m[y1, x1])

    vx, vy = bilinear(paf_x), bilinear(paf_y)
    d = (b - a)[..., 0, :]  # (A, B, 2)
    length = np.hypot(d[..., 0], d[..., 1])
    degenerate = length < 1e-6
    u = d / np.where(degenerate, 1.0, length)[..., None]
    proj = np.where(degenerate[..., None], np.hypot(vx, vy), vx * u[..., None, 0] + vy * u[..., None, 1])
    return proj.mean(axis=-1), (proj > sample_threshold).mean(axis=-1)
