"""TopDownHeatmapCodec: one person per crop, K Gaussian heatmaps (SimpleBaseline / HRNet targets).

It shares the Gaussian rendering and sub-pixel refinement with the bottom-up codec
(codecs/heatmap.py). Shape legend: B batch, K keypoints, H x W crop size, h x w map size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openpose_lite.codecs.heatmap import DEFAULT_CUTOFF, REFINE_METHODS, argmax_points, refine_peaks, render_gaussians
from openpose_lite.geometry import FLIP_SHIFT, OURS, cell_to_input, check_convention, input_to_cell
from openpose_lite.skeleton import COCO_17, Skeleton


@dataclass(frozen=True)
class TopDownHeatmapCodec:
    """Crop keypoints <-> per-keypoint heatmaps.

    Args:
        skeleton: keypoint layout (COCO_17 for the COCO-trained HRNet).
        input_hw: crop size (256, 192).
        heatmap_hw: map size (64, 48); the stride is input / heatmap and must be an integer.
        sigma: Gaussian sigma in heatmap cells (2 for 64x48).
        refine: "quarter" (default), "dark" or "none".
        blur_kernel: DARK's blur kernel (11 for 64x48 maps, as in the DARK paper).
        convention: where heatmap cells sit in crop pixels (geometry.py): ``"openpose_lite"``
            (cell j at crop px ``j * stride + (stride - 1) / 2``) or ``"hrnet"`` (cell j at
            ``j * stride``, the HRNet reference's, which its public weights need). It also sets
            the flip test's shift (:meth:`flip_heatmaps`).
    """

    skeleton: Skeleton = COCO_17
    input_hw: tuple[int, int] = (256, 192)
    heatmap_hw: tuple[int, int] = (64, 48)
    sigma: float = 2.0
    refine: str = "quarter"
    blur_kernel: int = 11
    convention: str = OURS

    def __post_init__(self) -> None:
        check_convention(self.convention)
        sy, ry = divmod(self.input_hw[0], self.heatmap_hw[0])
        sx, rx = divmod(self.input_hw[1], self.heatmap_hw[1])
        if ry or rx or sx != sy or sx < 1:
            raise ValueError(f"input_hw {self.input_hw} must be the same integer multiple of heatmap_hw {self.heatmap_hw}")
        if self.refine not in REFINE_METHODS:
            raise ValueError(f"refine must be one of {REFINE_METHODS}, got {self.refine!r}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")

    @property
    def stride(self) -> int:
        return self.input_hw[0] // self.heatmap_hw[0]

    def channels(self) -> dict[str, int]:
        return {"heatmaps": self.skeleton.num_keypoints}

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets for one crop.

        Args:
            keypoints: (K, 3) x, y, v in crop input pixels (v = 0: unlabelled).
        Returns:
            heatmaps (K, h, w) float32 and target weights (K,) float32: 0 for an unlabelled
            keypoint and for one whose Gaussian does not reach into the map.
        """
        k_n = self.skeleton.num_keypoints
        kps = np.asarray(keypoints, dtype=np.float32)
        if kps.shape != (k_n, 3):
            raise ValueError(f"keypoints: expected shape ({k_n}, 3), got {kps.shape}")
        labelled = kps[:, 2] > 0
        if not np.isfinite(kps[labelled]).all():
            raise ValueError("keypoints: NaN or infinite values in labelled keypoints")
        cells = input_to_cell(kps[:, :2], self.stride, self.convention)
        h, w = self.heatmap_hw
        # The Gaussian is cut where it falls below DEFAULT_CUTOFF; outside that radius nothing is drawn.
        radius = np.sqrt(-2.0 * np.log(DEFAULT_CUTOFF)) * self.sigma
        reaches = (
            (cells[:, 0] > -radius) & (cells[:, 0] < w - 1 + radius)
            & (cells[:, 1] > -radius) & (cells[:, 1] < h - 1 + radius)
        )
        keep = np.flatnonzero(labelled & reaches)
        heatmaps = render_gaussians(cells[keep], keep, k_n, self.heatmap_hw, self.sigma, "max", DEFAULT_CUTOFF)
        weights = np.zeros(k_n, dtype=np.float32)
        weights[keep] = 1.0
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray) -> np.ndarray:
        """Keypoints from one crop's heatmaps, or a batch of them.

        Args:
            heatmaps: (K, h, w) or (B, K, h, w).
        Returns:
            (K, 3) or (B, K, 3) float32: x, y in crop input pixels and the heatmap maximum as score.
        """
        maps = np.asarray(heatmaps, dtype=np.float32)
        if maps.ndim == 4:
            return np.stack([self.decode(m) for m in maps]) if len(maps) else np.zeros((0, self.skeleton.num_keypoints, 3), np.float32)
        if maps.ndim != 3 or maps.shape[0] != self.skeleton.num_keypoints:
            raise ValueError(f"heatmaps: expected ({self.skeleton.num_keypoints}, h, w) or a batch of them, got {maps.shape}")
        ys, xs, scores = argmax_points(maps)
        channels = np.arange(maps.shape[0])
        xy = refine_peaks(maps, channels, ys, xs, method=self.refine, blur_kernel=self.blur_kernel)
        out = np.empty((maps.shape[0], 3), dtype=np.float32)
        out[:, :2] = cell_to_input(xy, self.stride, self.convention)
        out[:, 2] = scores
        return out

    @property
    def flip_shift(self) -> int:
        """Cells a mirrored crop's maps move right after mirroring back: 0 (ours) or 1 (HRNet reference)."""
        return FLIP_SHIFT[self.convention]

    def flip_heatmaps(self, heatmaps: np.ndarray) -> np.ndarray:
        """Heatmaps predicted on a mirrored crop, brought back to the original crop's frame.

        Channels swap left/right and the maps mirror. Under this project's cell-centre
        convention (geometry.py) a mirror maps cell x to w - 1 - x exactly, so nothing moves.
        Networks trained in the HRNet reference's convention (cell x at crop pixel x * stride)
        give mirrored maps that sit 3/4 of a cell to the left; the reference moves them right by
        one whole cell (``lib/core/function.py``, ``validate``: ``flip_back`` then
        ``SHIFT_HEATMAP``), and so do we for that convention, so results match its numbers.

        Args:
            heatmaps: (K, h, w) or (B, K, h, w).
        """
        maps = np.asarray(heatmaps)
        flipped = np.take(maps, self.skeleton.flip_permutation, axis=-3)[..., ::-1].copy()
        shift = self.flip_shift
        if shift:
            flipped[..., shift:] = flipped[..., :-shift].copy()
        return flipped
