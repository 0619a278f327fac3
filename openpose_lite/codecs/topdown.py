"""TopDownHeatmapCodec: one person per crop, K Gaussian heatmaps (SimpleBaseline / HRNet targets).

It shares the Gaussian rendering and sub-pixel refinement with the bottom-up codec
(codecs/heatmap.py) and the codec contract (codecs/base.py). Shape legend: B batch,
K keypoints, H x W crop size, h x w map size.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from openpose_lite.codecs.base import Codec
from openpose_lite.codecs.bottomup import validate_keypoints
from openpose_lite.codecs.heatmap import DEFAULT_CUTOFF, refine_peaks, render_gaussians
from openpose_lite.geometry import FLIP_SHIFT, OURS, cell_to_input, input_to_cell
from openpose_lite.params import Params
from openpose_lite.skeleton import COCO_17, Skeleton
from openpose_lite.structures import Poses


@dataclass(frozen=True)
class TopDownCodecParams(Params):
    """The top-down codec's settings (part of the ``topdown`` config section; HRNet COCO values).

    ``input_hw`` / ``heatmap_hw``: crop and map sizes (256x192 -> 64x48); the stride is their
    ratio and must be the same integer on both axes. ``sigma_px``: Gaussian sigma in crop pixels
    (8 = HRNet's 2 cells at stride 4). ``refine``: "quarter" (HRNet), "dark" or "none";
    ``blur_kernel``: DARK's blur (11 for 64x48 maps, the DARK paper's). ``keypoint_threshold``:
    keypoints scoring above it make the person's score (the HRNet evaluation's ``IN_VIS_THRE``).
    ``convention``: where cells sit in crop pixels (geometry.py): ``openpose_lite`` (cell j at
    ``j * stride + (stride - 1) / 2``) or ``hrnet`` (cell j at ``j * stride``, the HRNet
    reference's, which its public weights need); it also sets the flip test's shift.
    """

    _section: typing.ClassVar[str] = "topdown"

    input_hw: tuple[int, int] = (256, 192)
    heatmap_hw: tuple[int, int] = (64, 48)
    sigma_px: float = 8.0
    refine: Literal["quarter", "dark", "none"] = "quarter"
    blur_kernel: int = 11
    keypoint_threshold: float = 0.2
    convention: Literal["openpose_lite", "hrnet"] = OURS

    def _check(self) -> None:
        self._require(min(self.heatmap_hw) >= 1 and self.input_hw[0] % self.heatmap_hw[0] == 0
                      and self.input_hw[1] % self.heatmap_hw[1] == 0
                      and self.input_hw[0] // self.heatmap_hw[0] == self.input_hw[1] // self.heatmap_hw[1],
                      "input_hw", f"(H, W) the same integer multiple of heatmap_hw {self.heatmap_hw}")
        self._require(self.sigma_px > 0, "sigma_px", "a number > 0")
        self._require(self.blur_kernel == 0 or (self.blur_kernel > 0 and self.blur_kernel % 2 == 1),
                      "blur_kernel", "0 or an odd kernel size")
        self._require(0 <= self.keypoint_threshold < 1, "keypoint_threshold", "a number in [0, 1)")


@dataclass(frozen=True)
class TopDownHeatmapCodec(TopDownCodecParams, Codec):
    """Crop keypoints <-> per-keypoint heatmaps; settings in :class:`TopDownCodecParams`, besides them
    ``skeleton``, the keypoint layout (COCO_17 for the COCO-trained HRNet)."""

    skeleton: Skeleton = COCO_17

    @property
    def stride(self) -> int:
        return self.input_hw[0] // self.heatmap_hw[0]

    def channels(self) -> dict[str, int]:
        return {"heatmaps": self.skeleton.num_keypoints}

    def encode(self, keypoints: np.ndarray, input_hw: tuple[int, int] | None = None,
               ignore_mask: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Targets for one crop.

        Args:
            keypoints: (1, K, 3) or (K, 3) x, y, v in crop pixels (v = 0: unlabelled): one person.
            input_hw: the crop size; must be :attr:`input_hw` when given.
            ignore_mask: not used (a crop holds one person); accepted for the codec contract.
        Returns:
            {"heatmaps": (K, h, w) float32} and {"heatmaps": (K, 1, 1) float32} target weights: 0
            for an unlabelled keypoint and for one whose Gaussian does not reach into the map.
        """
        if input_hw is not None and tuple(input_hw) != tuple(self.input_hw):
            raise ValueError(f"input_hw: this codec's crops are {tuple(self.input_hw)}, got {tuple(input_hw)}")
        k_n = self.skeleton.num_keypoints
        kps = validate_keypoints(keypoints, k_n)
        if kps.shape[0] != 1:
            raise ValueError(f"keypoints: a top-down crop holds one person, got {kps.shape[0]}")
        kps = kps[0]
        labelled = kps[:, 2] > 0
        cells = input_to_cell(kps[:, :2], self.stride, self.convention)
        h, w = self.heatmap_hw
        sigma = self.sigma_px / self.stride
        # The Gaussian is cut where it falls below DEFAULT_CUTOFF; outside that radius nothing is drawn.
        radius = np.sqrt(-2.0 * np.log(DEFAULT_CUTOFF)) * sigma
        reaches = ((cells > -radius) & (cells < np.array([w, h]) - 1 + radius)).all(axis=1)
        keep = np.flatnonzero(labelled & reaches)
        heatmaps = render_gaussians(cells[keep], keep, k_n, self.heatmap_hw, sigma, "max", DEFAULT_CUTOFF)
        weights = np.zeros((k_n, 1, 1), dtype=np.float32)
        weights[keep] = 1.0
        return {"heatmaps": heatmaps}, {"heatmaps": weights}

    def decode_keypoints(self, heatmaps: np.ndarray) -> np.ndarray:
        """(B, K, 3) float32 keypoints of a batch of crops' heatmaps (B, K, h, w): x, y in crop pixels and the
        heatmap maximum as score (the vectorised core of :meth:`decode`)."""
        maps = np.asarray(heatmaps, dtype=np.float32)
        k_n = self.skeleton.num_keypoints
        if maps.ndim != 4 or maps.shape[1] != k_n:
            raise ValueError(f"heatmaps: expected (B, {k_n}, h, w), got {maps.shape}")
        flat = maps.reshape(maps.shape[0], k_n, -1)
        peak = flat.argmax(axis=2)  # each channel's single maximum: one person per crop
        out = np.empty((maps.shape[0], k_n, 3), dtype=np.float32)
        out[..., 2] = np.take_along_axis(flat, peak[..., None], axis=2)[..., 0]
        ys, xs = np.divmod(peak, maps.shape[3])
        for b, crop in enumerate(maps):
            xy = refine_peaks(crop, np.arange(k_n), ys[b], xs[b], method=self.refine, blur_kernel=self.blur_kernel)
            out[b, :, :2] = cell_to_input(xy, self.stride, self.convention)
        return out

    def person_scores(self, keypoints: np.ndarray) -> np.ndarray:
        """(B,) mean score of each person's keypoints above :attr:`keypoint_threshold` (0 when none).

        The keypoint part of the HRNet evaluation's rescoring (lib/dataset/coco.py, ``evaluate``).
        """
        scores = np.asarray(keypoints, dtype=np.float64)[..., 2]
        confident = scores > self.keypoint_threshold
        return (np.where(confident, scores, 0.0).sum(-1) / np.maximum(confident.sum(-1), 1)).astype(np.float32)

    def decode(self, outputs: Mapping[str, np.ndarray]) -> Poses:
        """One crop's maps ``{"heatmaps": (K, h, w)}`` -> Poses of one person in crop pixels."""
        maps = np.asarray(outputs["heatmaps"], dtype=np.float32)
        if maps.ndim != 3:
            raise ValueError(f"outputs['heatmaps']: expected ({self.skeleton.num_keypoints}, h, w), got {maps.shape}")
        keypoints = self.decode_keypoints(maps[None])
        return Poses(keypoints, self.person_scores(keypoints), self.skeleton)

    def flip_heatmaps(self, heatmaps: np.ndarray) -> np.ndarray:
        """Heatmaps predicted on a mirrored crop, brought back to the original crop's frame.

        Channels swap left/right and the maps mirror: cell x -> w - 1 - x, exact in our convention
        (geometry.py). In the HRNet one mirrored maps sit 3/4 cell left and are moved right one cell, as the
        reference does (``lib/core/function.py``, ``validate``: ``flip_back``, ``SHIFT_HEATMAP``).
        ``heatmaps``: (K, h, w) or (B, K, h, w).
        """
        maps = np.asarray(heatmaps)
        flipped = np.take(maps, self.skeleton.flip_permutation, axis=-3)[..., ::-1].copy()
        shift = FLIP_SHIFT[self.convention]
        if shift:
            flipped[..., shift:] = flipped[..., :-shift].copy()
        return flipped

    def flip_outputs(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"heatmaps": self.flip_heatmaps(outputs["heatmaps"])}
