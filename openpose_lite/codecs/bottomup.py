"""BottomUpPafCodec: keypoints <-> (confidence maps, part affinity fields) of the OpenPose model.

encode follows the CMU training code; decode is NMS peaks with sub-pixel refinement at map
resolution, PAF line integrals and greedy matching (codecs/grouping.py).

Shape legend: N people, K keypoints, L limbs, H x W input size, h x w map size.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from openpose_lite.codecs.base import Codec
from openpose_lite.codecs.grouping import GroupingParams, group_people
from openpose_lite.codecs.heatmap import DEFAULT_CUTOFF, find_peaks, render_gaussians
from openpose_lite.codecs.paf import render_pafs
from openpose_lite.geometry import cell_to_input, input_to_cell, map_hw
from openpose_lite.params import Params, fields_of
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton, coco_to_openpose
from openpose_lite.structures import Poses


def validate_keypoints(keypoints: np.ndarray, num_keypoints: int, what: str = "keypoints") -> np.ndarray:
    """Check a (N, K, 3) keypoint array and return it as float32; a ValueError says what is wrong."""
    try:
        arr = np.asarray(keypoints)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{what}: not convertible to an array ({exc})") from None
    if arr.size == 0:
        return np.zeros((0, num_keypoints, 3), dtype=np.float32)
    if arr.ndim == 2 and arr.shape == (num_keypoints, 3):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (num_keypoints, 3):
        raise ValueError(f"{what}: expected shape (N, {num_keypoints}, 3), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what}: expected a float or integer array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    labelled = arr[..., 2] > 0
    if not np.isfinite(arr[..., 2]).all() or not np.isfinite(arr[labelled][:, :2]).all():
        raise ValueError(f"{what}: NaN or infinite values in labelled keypoints")
    return arr


def downsample_ignore_mask(ignore_mask: np.ndarray | None, input_hw: tuple[int, int], stride: int) -> np.ndarray:
    """(1, h, w) float32 loss weight per output cell: 1 minus the share of the cell's stride x stride block
    that ``ignore_mask`` (H, W) marks (truthy where annotations are missing: crowds, unlabelled people)."""
    h, w = map_hw(input_hw, stride)
    if ignore_mask is None:
        return np.ones((1, h, w), dtype=np.float32)
    mask = np.asarray(ignore_mask)
    if mask.shape != tuple(input_hw):
        raise ValueError(f"ignore_mask: expected shape {tuple(input_hw)} (the input size), got {mask.shape}")
    padded = np.zeros((h * stride, w * stride), dtype=np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask.astype(bool)
    ignored = padded.reshape(h, stride, w, stride).mean(axis=(1, 3))
    return (1.0 - ignored)[None].astype(np.float32)


@dataclass(frozen=True)
class BottomUpCodecParams(Params):
    """The bottom-up codec's settings (the ``codec`` config section, CMU COCO values by default).

    ``stride``: input pixels per output cell. ``sigma_px``: Gaussian sigma of the confidence maps
    in input pixels (CMU: 7 at stride 8). ``paf_half_width``: half-width of a limb's PAF band in
    output cells (CMU: 1). ``heatmap_merge``: where people's Gaussians overlap, sum and clip at 1
    (``sum``, the CMU training code) or keep the largest (``max``, the paper). ``peak_threshold``:
    minimum confidence of a part. ``refine``: sub-pixel refinement of peaks. ``blur_kernel``:
    DARK's blur before refinement (odd; 0 = none). None by default, as CMU's and Lightweight
    OpenPose's decoders: at stride 8 a 3x3 blur merges the peaks of small people's nearby parts
    (COCO sample oracle AP 0.894 without, 0.886 with it), while it gained the quickstart network
    0.002 held-out AP (docs/benchmarks.md, "Bottom-up decoding: the blur before DARK").
    """

    _section: typing.ClassVar[str] = "codec"

    stride: int = 8
    sigma_px: float = 7.0
    paf_half_width: float = 1.0
    heatmap_merge: Literal["sum", "max"] = "sum"
    peak_threshold: float = 0.1
    refine: Literal["dark", "quarter", "none"] = "dark"
    blur_kernel: int = 0

    def _check(self) -> None:
        self._require(self.stride >= 1, "stride", "an integer >= 1")
        self._require(self.sigma_px > 0, "sigma_px", "a number > 0")
        self._require(self.paf_half_width > 0, "paf_half_width", "a number > 0")
        self._require(self.blur_kernel == 0 or (self.blur_kernel > 0 and self.blur_kernel % 2 == 1),
                      "blur_kernel", "0 or an odd kernel size")


@dataclass(frozen=True)
class BottomUpPafCodec(BottomUpCodecParams, Codec):
    """The OpenPose codec: 19 confidence maps and 38 PAF channels for OPENPOSE_18 at stride 8.

    Settings in :class:`BottomUpCodecParams`; besides them:
        skeleton: the network's keypoint layout (heatmap and PAF channel order).
        grouping: matching and person filters (the ``grouping`` config section).
        backend: "numba" kernels, or their "numpy" references (tests, benchmarks).
    """

    skeleton: Skeleton = OPENPOSE_18
    grouping: GroupingParams = field(default_factory=GroupingParams)
    backend: Literal["numba", "numpy"] = "numba"

    def _check(self) -> None:
        if not self.skeleton.background:
            raise ValueError(f"{self.skeleton.name} has no background channel; the bottom-up codec needs one")

    @classmethod
    def from_params(cls, params: BottomUpCodecParams, skeleton: Skeleton = OPENPOSE_18,
                    grouping: GroupingParams | None = None) -> "BottomUpPafCodec":
        """The codec of some settings (e.g. a config's ``codec`` section, which derives from them)."""
        return cls(**fields_of(params, BottomUpCodecParams), skeleton=skeleton, grouping=grouping or GroupingParams())

    def channels(self) -> dict[str, int]:
        """Channels of each output: {"heatmaps": K + 1, "pafs": 2L}."""
        return {"heatmaps": self.skeleton.num_heatmaps, "pafs": self.skeleton.num_pafs}

    def map_hw(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        return map_hw(input_hw, self.stride)

    def encode(self, keypoints: np.ndarray, input_hw: tuple[int, int],
               ignore_mask: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Training targets for one image.

        Args:
            keypoints: (N, 17, 3) COCO-17 (or (N, K, 3) in the codec's skeleton) x, y, v in input
                pixels; v = 0 marks an unlabelled keypoint. Keypoints outside the input are
                rendered where their Gaussians and limbs reach into it.
            input_hw: (H, W) network input size.
            ignore_mask: (H, W) truthy where annotations are missing (crowds, unlabelled people).
        Returns:
            targets {"heatmaps": (K+1, h, w), "pafs": (2L, h, w)} float32 and loss weights
            {"heatmaps": (1, h, w), "pafs": (1, h, w)} float32 (0 where ignored).
        """
        if len(input_hw) != 2 or min(int(input_hw[0]), int(input_hw[1])) <= 0:
            raise ValueError(f"input_hw must be a positive (height, width), got {input_hw}")
        sk = self.skeleton
        kps = np.asarray(keypoints)
        if sk == OPENPOSE_18 and kps.ndim >= 2 and kps.shape[-2] == COCO_17.num_keypoints:
            kps = coco_to_openpose(validate_keypoints(kps, COCO_17.num_keypoints))
        else:
            kps = validate_keypoints(kps, sk.num_keypoints)
        hw = self.map_hw(input_hw)
        labelled = kps[..., 2] > 0  # (N, K)
        cells = input_to_cell(kps[..., :2], self.stride)  # (N, K, 2)

        person, part = np.nonzero(labelled)
        heatmaps = np.empty((sk.num_heatmaps,) + hw, dtype=np.float32)
        heatmaps[: sk.num_keypoints] = render_gaussians(cells[person, part], part, sk.num_keypoints, hw,
                                                        self.sigma_px / self.stride, self.heatmap_merge,
                                                        DEFAULT_CUTOFF, self.backend)
        heatmaps[sk.num_keypoints] = np.maximum(1.0 - heatmaps[: sk.num_keypoints].max(axis=0), 0.0)

        limbs = np.asarray(sk.limbs, dtype=np.int64)  # (L, 2)
        has_limb = labelled[:, limbs[:, 0]] & labelled[:, limbs[:, 1]]  # (N, L)
        person, limb = np.nonzero(has_limb)
        pafs = render_pafs(cells[person, limbs[limb, 0]], cells[person, limbs[limb, 1]], limb, sk.num_limbs, hw,
                           self.paf_half_width, self.backend)
        weight = downsample_ignore_mask(ignore_mask, (int(input_hw[0]), int(input_hw[1])), self.stride)
        return {"heatmaps": heatmaps, "pafs": pafs}, {"heatmaps": weight, "pafs": weight.copy()}

    def decode(self, outputs: dict[str, np.ndarray]) -> Poses:
        """People from one image's maps ``{"heatmaps": (K+1, h, w), "pafs": (2L, h, w)}``: Poses in input
        pixels (the codec's skeleton), best first."""
        if not isinstance(outputs, dict) or "heatmaps" not in outputs or "pafs" not in outputs:
            raise ValueError("outputs must be a dict with 'heatmaps' and 'pafs' arrays")
        heatmaps = np.asarray(outputs["heatmaps"], dtype=np.float32)
        pafs = np.asarray(outputs["pafs"], dtype=np.float32)
        ch = self.channels()
        if heatmaps.ndim != 3 or heatmaps.shape[0] != ch["heatmaps"]:
            raise ValueError(f"outputs['heatmaps']: expected ({ch['heatmaps']}, h, w), got {heatmaps.shape}")
        if pafs.ndim != 3 or pafs.shape[0] != ch["pafs"] or pafs.shape[1:] != heatmaps.shape[1:]:
            raise ValueError(f"outputs['pafs']: expected ({ch['pafs']}, {heatmaps.shape[1]}, {heatmaps.shape[2]}), "
                             f"got {pafs.shape}")
        parts = heatmaps[: self.skeleton.num_keypoints]
        types, xy, scores = find_peaks(parts, self.peak_threshold, self.refine, self.blur_kernel, self.backend)
        keypoints, person_scores = group_people(types, xy, scores, pafs, self.skeleton, self.grouping, self.backend)
        keypoints[..., :2] = cell_to_input(keypoints[..., :2], self.stride)
        return Poses(keypoints, person_scores, self.skeleton)  # which puts keypoints not found at (0, 0)

    def flip_outputs(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Maps predicted on a horizontally mirrored input, brought back to the original's frame.

        Mirroring an input whose width is a multiple of the stride maps cell x to w - 1 - x
        exactly (geometry.py), so no shift is needed; left/right channels swap and PAF x negates.
        Works on (C, h, w) or (B, C, h, w) arrays.
        """
        sk = self.skeleton
        heatmaps = np.asarray(outputs["heatmaps"])
        pafs = np.asarray(outputs["pafs"])
        heat = np.take(heatmaps, sk.heatmap_flip_permutation, axis=-3)[..., ::-1]
        paf = np.take(pafs, sk.paf_flip_permutation, axis=-3)[..., ::-1] * sk.paf_flip_sign[:, None, None]
        return {"heatmaps": np.ascontiguousarray(heat), "pafs": np.ascontiguousarray(paf.astype(pafs.dtype))}
