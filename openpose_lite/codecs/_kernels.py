"""The numba kernels of the codecs: flat arrays in, preallocated arrays out.

Each kernel has a plain-numpy twin (in heatmap.py / paf.py) that states the same
computation without loops; the tests check one against the other. Coordinates here are
output-cell coordinates (see geometry.py): cell (row y, column x) is the point (x, y).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# cache=True keeps the compiled kernels on disk so a fresh process does not pay the JIT again.
_jit = numba.njit(cache=True, nogil=True, fastmath=False)


@_jit
def _cell_span(lo: float, hi: float, n: int) -> tuple[int, int]:
    """The cells 0..n-1 within [lo, hi]: (first, last), last < first when none.

    Clipped as floats before the conversion to int: a coordinate beyond the int64 range (1e30)
    converts to INT64_MIN, and a loop from 0 to it counts 2^63 steps in numba's range.
    """
    first = math.ceil(min(max(lo, -1.0), n))
    last = math.floor(min(max(hi, -1.0), n))
    return int(max(first, 0.0)), int(min(last, n - 1.0))


@_jit
def gaussian_kernel(
    xs: np.ndarray,  # (M,) float64 centre x in cells
    ys: np.ndarray,  # (M,) float64 centre y in cells
    channels: np.ndarray,  # (M,) int64 output channel of each centre
    sigma: float,  # cells
    max_exponent: float,  # values below exp(-max_exponent) are cut to 0
    merge_max: bool,  # True: max over centres (the paper); False: sum clipped at 1 (CMU code)
    out: np.ndarray,  # (C, H, W) float32, zero on entry
) -> None:
    h, w = out.shape[1], out.shape[2]
    radius = math.sqrt(2.0 * max_exponent) * sigma
    inv = 1.0 / (2.0 * sigma * sigma)
    for m in range(xs.shape[0]):
        cx, cy, c = xs[m], ys[m], channels[m]
        x0, x1 = _cell_span(cx - radius, cx + radius, w)
        y0, y1 = _cell_span(cy - radius, cy + radius, h)
        for y in range(y0, y1 + 1):
            dy2 = (y - cy) * (y - cy)
            for x in range(x0, x1 + 1):
                e = ((x - cx) * (x - cx) + dy2) * inv
                if e > max_exponent:
                    continue
                v = math.exp(-e)
                if merge_max:
                    if v > out[c, y, x]:
                        out[c, y, x] = v
                else:
                    out[c, y, x] += v
    if not merge_max:
        for c in range(out.shape[0]):
            for y in range(h):
                for x in range(w):
                    if out[c, y, x] > 1.0:
                        out[c, y, x] = 1.0


@_jit
def paf_kernel(
    ax: np.ndarray,  # (M,) float64 limb start x in cells
    ay: np.ndarray,
    bx: np.ndarray,  # (M,) float64 limb end x in cells
    by: np.ndarray,
    limbs: np.ndarray,  # (M,) int64 limb type of each segment
    half_width: float,  # cells
    out: np.ndarray,  # (2L, H, W) float32, zero on entry; mean unit vector on return
    count: np.ndarray,  # (L, H, W) int32, zero on entry; segments covering each cell on return
) -> None:
    h, w = out.shape[1], out.shape[2]
    for m in range(ax.shape[0]):
        dx, dy = bx[m] - ax[m], by[m] - ay[m]
        length = math.sqrt(dx * dx + dy * dy)
        if length < 1e-9:
            continue  # a limb of zero length has no direction
        ux, uy = dx / length, dy / length
        l = limbs[m]
        # The covered rectangle reaches half_width past each end and half_width across the axis
        # (see paf.render_pafs), so its corners lie within sqrt(2) * half_width of the ends.
        reach = math.sqrt(2.0) * half_width
        x0, x1 = _cell_span(min(ax[m], bx[m]) - reach, max(ax[m], bx[m]) + reach, w)
        y0, y1 = _cell_span(min(ay[m], by[m]) - reach, max(ay[m], by[m]) + reach, h)
        for y in range(y0, y1 + 1):
            py = y - ay[m]
            for x in range(x0, x1 + 1):
                px = x - ax[m]
                along = px * ux + py * uy
                across = abs(px * uy - py * ux)
                if along >= -half_width and along <= length + half_width and across <= half_width:
                    out[2 * l, y, x] += ux
                    out[2 * l + 1, y, x] += uy
                    count[l, y, x] += 1
    # Where limbs of one type overlap, the field is their average (CMU training code).
    for l in range(count.shape[0]):
        for y in range(h):
            for x in range(w):
                n = count[l, y, x]
                if n > 1:
                    out[2 * l, y, x] /= n
                    out[2 * l + 1, y, x] /= n


@_jit
def local_maxima_kernel(
    heatmaps: np.ndarray,  # (C, H, W) float32
    threshold: float,
    out_channel: np.ndarray,  # (capacity,) int64
    out_y: np.ndarray,  # (capacity,) int64
    out_x: np.ndarray,  # (capacity,) int64
) -> int:
    """Cells above ``threshold`` that are maxima of their 3x3 neighbourhood; returns how many.

    Plateaus keep one cell: a neighbour that is equal and comes earlier in raster order wins.
    If more than ``capacity`` maxima exist, the count is still returned and the caller retries.
    """
    c_n, h, w = heatmaps.shape
    n = 0
    capacity = out_x.shape[0]
    for c in range(c_n):
        for y in range(h):
            for x in range(w):
                v = heatmaps[c, y, x]
                if not v > threshold:
                    continue
                is_max = True
                for dy in range(-1, 2):
                    yy = y + dy
                    if yy < 0 or yy >= h:
                        continue
                    for dx in range(-1, 2):
                        xx = x + dx
                        if xx < 0 or xx >= w or (dx == 0 and dy == 0):
                            continue
                        u = heatmaps[c, yy, xx]
                        if u > v or (u == v and (dy < 0 or (dy == 0 and dx < 0))):
                            is_max = False
                            break
                    if not is_max:
                        break
                if is_max:
                    if n < capacity:
                        out_channel[n] = c
                        out_y[n] = y
                        out_x[n] = x
                    n += 1
    return n


@_jit
def limb_score_kernel(
    paf_x: np.ndarray,  # (H, W) float32 x component of one limb's field, H, W >= 2
    paf_y: np.ndarray,  # (H, W) float32 y component
    a_xy: np.ndarray,  # (A, 2) float64 candidate start points in cells
    b_xy: np.ndarray,  # (B, 2) float64 candidate end points in cells
    num_samples: int,
    sample_threshold: float,
    max_failures: int,  # stop a pair once more samples than this fail (< 0: never stop)
    out_mean: np.ndarray,  # (A, B) float64 mean of the field projected on the segment
    out_fraction: np.ndarray,  # (A, B) float64 fraction of samples above sample_threshold
) -> None:
    """Line integral of the PAF along every candidate segment (paper Eq. 10, sampled uniformly).

    Samples are bilinear at ``num_samples`` evenly spaced points from a to b inclusive,
    clamped to the map (the wrapper pads maps narrower than 2 cells). A pair stopped early
    (its fraction can no longer pass) reports the mean and fraction of the samples so far,
    divided by ``num_samples``: both are then lower than the full values would be.
    """
    h, w = paf_x.shape
    step = 1.0 / (num_samples - 1) if num_samples > 1 else 0.0
    t0 = 0.0 if num_samples > 1 else 0.5
    for i in range(a_xy.shape[0]):
        ax, ay = a_xy[i, 0], a_xy[i, 1]
        for j in range(b_xy.shape[0]):
            dx = b_xy[j, 0] - ax
            dy = b_xy[j, 1] - ay
            length = math.sqrt(dx * dx + dy * dy)
            # Both parts in one spot: the field's direction cannot be checked, so trust
            # whatever field magnitude is there (tiny people in low-resolution maps).
            degenerate = length < 1e-6
            ux = 0.0 if degenerate else dx / length
            uy = 0.0 if degenerate else dy / length
            total = 0.0
            above = 0
            for s in range(num_samples):
                t = t0 + s * step
                x = min(max(ax + t * dx, 0.0), w - 1.0)
                y = min(max(ay + t * dy, 0.0), h - 1.0)
                x0 = min(int(x), w - 2)
                y0 = min(int(y), h - 2)
                fx = x - x0
                fy = y - y0
                w00 = (1.0 - fx) * (1.0 - fy)
                w01 = fx * (1.0 - fy)
                w10 = (1.0 - fx) * fy
                w11 = fx * fy
                vx = w00 * paf_x[y0, x0] + w01 * paf_x[y0, x0 + 1] + w10 * paf_x[y0 + 1, x0] + w11 * paf_x[y0 + 1, x0 + 1]
                vy = w00 * paf_y[y0, x0] + w01 * paf_y[y0, x0 + 1] + w10 * paf_y[y0 + 1, x0] + w11 * paf_y[y0 + 1, x0 + 1]
                proj = math.sqrt(vx * vx + vy * vy) if degenerate else vx * ux + vy * uy
                total += proj
                if proj > sample_threshold:
                    above += 1
                elif max_failures >= 0 and s + 1 - above > max_failures:
                    break
            out_mean[i, j] = total / num_samples
            out_fraction[i, j] = above / num_samples


@_jit
def greedy_match_kernel(
    score: np.ndarray,  # (A, B) float64 connection scores
    valid: np.ndarray,  # (A, B) bool: pairs that pass the line-integral criteria
    out_a: np.ndarray,  # (min(A, B),) int64
    out_b: np.ndarray,  # (min(A, B),) int64
    out_score: np.ndarray,  # (min(A, B),) float64
) -> int:
    """Greedy bipartite matching: valid pairs in descending score, each side used at most once.

    Ties keep row-major order (a stable sort), like the plain-Python reference.
    """
    n_a, n_b = score.shape
    flat = np.empty(n_a * n_b, dtype=np.int64)
    keys = np.empty(n_a * n_b, dtype=np.float64)
    m = 0
    for i in range(n_a):
        for j in range(n_b):
            if valid[i, j]:
                flat[m] = i * n_b + j
                keys[m] = -score[i, j]
                m += 1
    order = np.argsort(keys[:m], kind="mergesort")
    used_a = np.zeros(n_a, dtype=np.bool_)
    used_b = np.zeros(n_b, dtype=np.bool_)
    n = 0
    limit = min(n_a, n_b)
    for o in order:
        i, j = flat[o] // n_b, flat[o] % n_b
        if used_a[i] or used_b[j]:
            continue
        used_a[i] = True
        used_b[j] = True
        out_a[n], out_b[n], out_score[n] = i, j, score[i, j]
        n += 1
        if n == limit:
            break
    return n
