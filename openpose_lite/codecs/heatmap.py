"""Confidence-map code shared by both branches: Gaussian rendering, peak NMS, sub-pixel refinement.

Everything here works in output-cell coordinates (geometry.py): the codecs convert from and
to input pixels. Shape legend: C channels, P points, H x W map size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from openpose_lite.codecs import _kernels

# CMU's training code skips Gaussian values below exp(-4.6052) = 1%.
DEFAULT_CUTOFF = 0.01
REFINE_METHODS = ("dark", "quarter", "none")
BACKENDS = ("numba", "numpy")


def _is_numpy(backend: str) -> bool:
    """Whether ``backend`` names the plain-numpy reference ("numpy") rather than the numba kernel ("numba")."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend == "numpy"


def _check_centres(xy: np.ndarray, channels: np.ndarray, sigma: float, merge: str) -> tuple[np.ndarray, np.ndarray]:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    channels = np.asarray(channels, dtype=np.int64).reshape(-1)
    if channels.shape[0] != xy.shape[0]:
        raise ValueError(f"{xy.shape[0]} centres but {channels.shape[0]} channel indices")
    if not np.isfinite(xy).all():
        raise ValueError("Gaussian centres must be finite")
    if merge not in ("sum", "max"):
        raise ValueError(f"merge must be 'sum' or 'max', got {merge!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return xy, channels


def render_gaussians(xy: np.ndarray, channels: np.ndarray, num_channels: int, map_hw: tuple[int, int], sigma: float,
                     merge: str = "sum", cutoff: float = DEFAULT_CUTOFF, backend: str = "numba") -> np.ndarray:
    """Render exp(-d^2 / 2 sigma^2) around each centre into its channel.

    Args:
        xy: (P, 2) centres in output cells; channels: (P,) channel of each; num_channels: C; map_hw: (H, W).
        sigma: Gaussian sigma in output cells.
        merge: "sum" adds people and clips at 1 (CMU training code); "max" keeps the largest (the paper).
        cutoff: values below it are set to 0.
        backend: "numba" (the kernel) or "numpy" (the plain reference, for tests and benchmarks).
    Returns:
        (C, H, W) float32.
    """
    if _is_numpy(backend):
        return render_gaussians_numpy(xy, channels, num_channels, map_hw, sigma, merge, cutoff)
    xy, channels = _check_centres(xy, channels, sigma, merge)
    out = np.zeros((num_channels, int(map_hw[0]), int(map_hw[1])), dtype=np.float32)
    _kernels.gaussian_kernel(np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), channels, float(sigma),
                             -math.log(cutoff), merge == "max", out)
    return out


def render_gaussians_numpy(xy: np.ndarray, channels: np.ndarray, num_channels: int, map_hw: tuple[int, int],
                           sigma: float, merge: str = "sum", cutoff: float = DEFAULT_CUTOFF) -> np.ndarray:
    """Plain-numpy reference of :func:`render_gaussians` (same arguments, same result)."""
    xy, channels = _check_centres(xy, channels, sigma, merge)
    h, w = int(map_hw[0]), int(map_hw[1])
    out = np.zeros((num_channels, h, w), dtype=np.float32)
    gx = np.arange(w, dtype=np.float64)
    gy = np.arange(h, dtype=np.float64)
    for (cx, cy), c in zip(xy, channels):
        e = ((gx[None, :] - cx) ** 2 + (gy[:, None] - cy) ** 2) / (2.0 * sigma * sigma)
        g = np.where(e <= -math.log(cutoff), np.exp(-e), 0.0).astype(np.float32)
        out[c] = np.maximum(out[c], g) if merge == "max" else out[c] + g
    return np.minimum(out, 1.0) if merge == "sum" else out


def find_local_maxima(heatmaps: np.ndarray, threshold: float,
                      backend: str = "numba") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3x3 non-maximum suppression of ``heatmaps`` (C, H, W): channel, y, x (P,) int64 of the maxima above
    ``threshold``, channel-major then raster order. ``backend``: "numba" or "numpy" (the reference)."""
    if _is_numpy(backend):
        return find_local_maxima_numpy(heatmaps, threshold)
    maps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"heatmaps must be (C, H, W), got shape {maps.shape}")
    capacity = 256
    while True:
        ch, ys, xs = (np.empty(capacity, dtype=np.int64) for _ in range(3))
        n = _kernels.local_maxima_kernel(maps, float(threshold), ch, ys, xs)
        if n <= capacity:
            return ch[:n], ys[:n], xs[:n]
        capacity = n


def find_local_maxima_numpy(heatmaps: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-numpy reference of :func:`find_local_maxima`."""
    maps = np.asarray(heatmaps, dtype=np.float32)
    c, h, w = maps.shape
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    keep = maps > threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx == 0 and dy == 0:
                continue
            nb = padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            earlier = dy < 0 or (dy == 0 and dx < 0)
            keep &= (nb < maps) if earlier else (nb <= maps)
    ch, ys, xs = np.nonzero(keep)
    return ch.astype(np.int64), ys.astype(np.int64), xs.astype(np.int64)


def dark_blur(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's modulation: Gaussian-blur each channel, then rescale so its maximum is unchanged.

    Blurring smooths the multi-modal noise of predicted maps so that a local quadratic fit of
    the log is meaningful. ``kernel`` is the odd kernel size (its sigma follows OpenCV's rule).
    """
    if kernel <= 1:
        return np.asarray(heatmaps, dtype=np.float32)
    if kernel % 2 == 0:
        raise ValueError(f"blur kernel size must be odd, got {kernel}")
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    maps = np.asarray(heatmaps, dtype=np.float32)
    radius = (kernel - 1) // 2
    blurred = ndimage.gaussian_filter(maps, sigma=(0, sigma, sigma), mode="constant", truncate=radius / sigma)
    old_max = maps.reshape(maps.shape[0], -1).max(axis=1)
    new_max = blurred.reshape(maps.shape[0], -1).max(axis=1)
    scale = np.where(new_max > 0, old_max / np.maximum(new_max, 1e-12), 1.0)
    return (blurred * scale[:, None, None]).astype(np.float32)


def _neighbourhood(maps: np.ndarray, channels: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(P, 3, 3) float64: the 3x3 patch around each point, with edge replication."""
    _, h, w = maps.shape
    offs = np.arange(-1, 2)
    yy = np.clip(ys[:, None] + offs[None, :], 0, h - 1)
    xx = np.clip(xs[:, None] + offs[None, :], 0, w - 1)
    return maps[channels[:, None, None], yy[:, :, None], xx[:, None, :]].astype(np.float64)


def refine_peaks(heatmaps: np.ndarray, channels: np.ndarray, ys: np.ndarray, xs: np.ndarray, method: str = "dark",
                 blur_kernel: int = 0) -> np.ndarray:
    """Sub-pixel location of integer peaks; shared by the bottom-up and top-down decoders.

    * "quarter": move 0.25 cell towards the larger neighbour on each axis (the Hourglass/HRNet
      rule). As in the HRNet reference (``lib/core/inference.py``, ``get_final_preds``), only
      peaks at least two cells from every border move (``1 < x < w - 1`` and ``1 < y < h - 1``).
    * "dark": Taylor expansion of the log map to second order at the peak, x* = x - H^-1 g
      (Zhang et al., "Distribution-Aware Coordinate Representation", Eq. 7), after an optional
      :func:`dark_blur`. It is exact for an unclipped Gaussian.
    * "none": the cell itself.

    Args:
        heatmaps: (C, H, W).
        channels, ys, xs: (P,) integer peak positions.
    Returns:
        (P, 2) float64 refined (x, y) in output cells.
    """
    if method not in REFINE_METHODS:
        raise ValueError(f"refine method must be one of {REFINE_METHODS}, got {method!r}")
    channels = np.asarray(channels, dtype=np.int64)
    ys = np.asarray(ys, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.int64)
    xy = np.stack([xs, ys], axis=1).astype(np.float64)
    if method == "none" or xy.shape[0] == 0:
        return xy
    maps = np.asarray(heatmaps, dtype=np.float32)
    _, h, w = maps.shape
    if method == "quarter":
        patch = _neighbourhood(maps, channels, ys, xs)
        inside = (xs > 1) & (xs < w - 1) & (ys > 1) & (ys < h - 1)
        xy[:, 0] += np.where(inside, 0.25 * np.sign(patch[:, 1, 2] - patch[:, 1, 0]), 0.0)
        xy[:, 1] += np.where(inside, 0.25 * np.sign(patch[:, 2, 1] - patch[:, 0, 1]), 0.0)
        return xy
    if blur_kernel > 1:
        maps = dark_blur(maps, blur_kernel)
    ix, iy = (xs > 0) & (xs < w - 1), (ys > 0) & (ys < h - 1)  # axes with both neighbours
    logp = np.log(np.maximum(_neighbourhood(maps, channels, ys, xs), 1e-10))
    gx = 0.5 * (logp[:, 1, 2] - logp[:, 1, 0])
    gy = 0.5 * (logp[:, 2, 1] - logp[:, 0, 1])
    hxx = logp[:, 1, 2] - 2 * logp[:, 1, 1] + logp[:, 1, 0]
    hyy = logp[:, 2, 1] - 2 * logp[:, 1, 1] + logp[:, 0, 1]
    hxy = 0.25 * (logp[:, 2, 2] - logp[:, 2, 0] - logp[:, 0, 2] + logp[:, 0, 0])
    det = hxx * hyy - hxy * hxy
    # A maximum has a negative-definite Hessian; elsewhere (plateaus, clipped tops) the step is unsafe.
    ok2 = ix & iy & (hxx < 0) & (det > 1e-12)
    safe_det = np.where(ok2, det, 1.0)
    step_x = np.where(ok2, -(hyy * gx - hxy * gy) / safe_det, 0.0)
    step_y = np.where(ok2, -(-hxy * gx + hxx * gy) / safe_det, 0.0)
    # On a border (one axis only), fall back to the 1-D Newton step on the axis that has both neighbours.
    ok_x = ~ok2 & ix & (hxx < -1e-12)
    ok_y = ~ok2 & iy & (hyy < -1e-12)
    step_x = np.where(ok_x, -gx / np.where(ok_x, hxx, 1.0), step_x)
    step_y = np.where(ok_y, -gy / np.where(ok_y, hyy, 1.0), step_y)
    # The true maximum lies within half a cell of the discrete one; larger steps are fit failures.
    xy[:, 0] += np.clip(step_x, -0.5, 0.5)
    xy[:, 1] += np.clip(step_y, -0.5, 0.5)
    return xy


def find_peaks(heatmaps: np.ndarray, threshold: float, refine: str = "dark", blur_kernel: int = 0,
               backend: str = "numba") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of every channel of ``heatmaps`` (C, H, W), NMS then sub-pixel refinement: channel (P,) int64,
    xy (P, 2) float64 in output cells, score (P,) float32 (the map value at the integer peak)."""
    maps = np.asarray(heatmaps, dtype=np.float32)
    ch, ys, xs = find_local_maxima(maps, threshold, backend)
    xy = refine_peaks(maps, ch, ys, xs, method=refine, blur_kernel=blur_kernel)
    return ch, xy, maps[ch, ys, xs]
