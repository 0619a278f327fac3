"""Inference: BGR images -> network maps -> people in image pixels.

:class:`BottomUpPredictor` runs the OpenPose model on whole images; :class:`TopDownPredictor`
runs a heatmap model (HRNet) on one crop per person box (at the end of this module).

Bottom-up:

The pipeline of the CMU demo (Cao et al., CVPR 2017, Sec. 3 and the released test code):

1. **Preprocess.** Each image is resized so its height is the network input size (368 by
   default) keeping the aspect ratio, and padded right/bottom with gray to a multiple of the
   stride (:func:`openpose_lite.data.transforms.letterbox`); BGR pixels become ``x / 256 - 0.5``
   (:func:`openpose_lite.data.transforms.to_network_input`). Images of different sizes share a
   batch by padding, right only, to the widest: padding never moves a coordinate.
2. **Network**, once per scale in ``scales`` (input height ``round(input_size * s)`` rounded to
   the stride) and, with ``flip``, once more on the mirrored batch.
3. **Average.** The maps come to the host (they are small: 1/stride of the input per side).
   Mirrored maps come back to the original frame (left/right channels swap, PAF x negates:
   :meth:`BottomUpPafCodec.flip_outputs`); every scale's maps are resampled onto the scale-1 map
   grid with the exact affine between the two grids, then heatmaps and PAFs are averaged, as the
   CMU demo does. Everything stays at map resolution: no channel is ever upsampled to the image.
   This step is numpy and OpenCV on purpose: on small arrays, torch's multi-threaded kernels
   spend more time synchronising threads than computing, badly so on a busy CPU.
4. **Decode** with the codec (peaks, PAF line integrals, grouping), in scale-1 network-input
   pixels, then the inverse letterbox affine gives image pixels.

Shape legend: B batch, K keypoints, L limbs, N people, H x W image size, h x w map size.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from openpose_lite.codecs import BottomUpPafCodec, TopDownHeatmapCodec
from openpose_lite.config import CodecConfig, TopDownConfig, build_bottomup_codec, build_topdown_codec, config_from_dict
from openpose_lite.data.topdown import crop_person, sanitize_box, to_hrnet_input
from openpose_lite.data.transforms import PAD_VALUE, letterbox, to_network_input
from openpose_lite.engine import resolve_device
from openpose_lite.evaluation import oks_nms
from openpose_lite.geometry import HRNET, box_to_center_scale, invert_affine, letterbox_affine, transform_keypoints
from openpose_lite.inference.boxes import BoxSource
from openpose_lite.models.hrnet import HRNet
from openpose_lite.models.weights import load_model_with_config
from openpose_lite.structures import Poses

__all__ = [
    "PHASES", "BottomUpPredictor", "TopDownPipeline", "TopDownPredictor", "bottomup_boxes",
    "require_config", "resolve_device", "scaled_input_height",
]

logger = logging.getLogger(__name__)

# The phases of one call, as keys of ``BottomUpPredictor.timings`` (seconds):
# preprocess = letterbox + normalisation + host->device copy (+ mirroring);
# network = the forward passes; postprocess = un-mirroring, resampling to the scale-1 grid,
# averaging and the device->host copy; decode = codec.decode + mapping to image pixels.
PHASES: tuple[str, ...] = ("preprocess", "network", "postprocess", "decode")


def require_config(path: str | Path, config: Mapping[str, Any] | None) -> None:
    """An openpose_lite checkpoint carries its config; other weight files are loaded as weights."""
    if config is None:
        raise ValueError(
            f"{path}: not an openpose_lite checkpoint (no config inside); "
            "load CMU, official HRNet or bare state-dict files as weights (from_weights; CLI: --weights)"
        )


def scaled_input_height(input_size: int, scale: float, stride: int) -> int:
    """Network input height for one scale: ``input_size * scale`` rounded (half up) to a multiple of ``stride``, >= stride."""
    return max(stride, math.floor(input_size * scale / stride + 0.5) * stride)


def _last_stage(outputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(heatmaps, pafs) of the last stage of a model's output: a list of per-stage dicts or one dict."""
    last = outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
    if not isinstance(last, Mapping) or "heatmaps" not in last or "pafs" not in last:
        raise ValueError(
            "model output: expected a list of per-stage dicts (or one dict) with 'heatmaps' and 'pafs' tensors, "
            f"got {type(last).__name__}"
        )
    return last["heatmaps"], last["pafs"]


def _as_bgr(image: Any, index: int) -> np.ndarray:
    """Check one input image; grayscale (H, W) / (H, W, 1) and BGRA (H, W, 4) become BGR (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"images[{index}]: expected a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"images[{index}]: expected dtype uint8 (BGR as cv2.imread gives), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        arr = image
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        arr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        arr = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    else:
        raise ValueError(f"images[{index}]: expected shape (H, W, 3) BGR, got {image.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"images[{index}]: empty image of shape {image.shape}")
    return arr


def _to_scale_one(maps_hwc: np.ndarray, ratio: float, out_hw: tuple[int, int]) -> np.ndarray:
    """Resample one image's maps (h_s, w_s, C) of a scale-s input onto its scale-1 map grid (out_hw + (C,)).

    With input heights H_s and H_1 and ``ratio = H_s / H_1``, both inputs are the image scaled by
    H / h_image (geometry.scale_affine) and cell j is centred on input pixel j * stride +
    (stride - 1) / 2 (geometry.py), so scale-1 cell c sits at scale-s cell ``ratio * c + (ratio - 1) / 2``
    on both axes: exactly what ``cv2.resize`` by ``fx = fy = 1 / ratio`` samples. The result is cut
    (or edge-extended by at most a cell) to ``out_hw``.
    """
    if ratio == 1.0:
        resized = maps_hwc
    else:
        # Upsampling a coarse map: bicubic keeps narrow peaks round, so sub-pixel refinement still
        # works (bilinear makes them pointed and biased towards source cells); downsampling:
        # bilinear, which cannot overshoot.
        interpolation = cv2.INTER_CUBIC if ratio < 1.0 else cv2.INTER_LINEAR
        resized = cv2.resize(maps_hwc, None, fx=1.0 / ratio, fy=1.0 / ratio, interpolation=interpolation)
        if resized.ndim == 2:  # OpenCV drops a single channel axis
            resized = resized[..., None]
    h, w = out_hw
    resized = resized[:h, :w]
    short_h, short_w = h - resized.shape[0], w - resized.shape[1]
    if short_h > 0 or short_w > 0:
        resized = np.pad(resized, ((0, short_h), (0, short_w), (0, 0)), mode="edge")
    return resized


class BottomUpPredictor:
    """Images -> :class:`Poses` (image pixels, the network's skeleton) with the OpenPose model.

    Args:
        model: returns a list of per-stage dicts (or one dict) with ``"heatmaps"`` (B, K+1, h, w)
            and ``"pafs"`` (B, 2L, h, w); the last stage is used. Moved to ``device`` here; each
            call runs it in eval mode and restores the caller's train/eval mode afterwards.
        codec: decodes the averaged maps; its skeleton must match the model's channels.
        input_size: network input height at scale 1, a multiple of ``codec.stride`` (CMU: 368).
        scales: input heights ``input_size * s``; their maps are averaged (CMU multi-scale test).
        flip: also run the mirrored images and average (flip test).
        device: ``None``/``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        half: float16 network on CUDA (the model is converted in place); ignored with a warning
            on CPU.

    After each call, :attr:`timings` holds the seconds spent in each of :data:`PHASES`.
    """

    def __init__(
        self,
        model: nn.Module,
        codec: BottomUpPafCodec,
        input_size: int = 368,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        device: str | torch.device | None = None,
        half: bool = False,
    ) -> None:
        if not isinstance(codec, BottomUpPafCodec):
            raise ValueError(f"codec: expected a BottomUpPafCodec, got {type(codec).__name__}")
        if int(input_size) != input_size or input_size < codec.stride or input_size % codec.stride:
            raise ValueError(f"input_size: expected a positive multiple of the stride ({codec.stride}), got {input_size!r}")
        scales = tuple(float(s) for s in scales)
        if not scales or not all(np.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"scales: expected one or more positive numbers, got {scales!r}")
        model_skeleton = getattr(model, "skeleton", None)
        if model_skeleton is not None and (
            model_skeleton.num_heatmaps != codec.skeleton.num_heatmaps or model_skeleton.num_pafs != codec.skeleton.num_pafs
        ):
            raise ValueError(
                f"codec skeleton {codec.skeleton.name} ({codec.channels()}) does not match the model's "
                f"{model_skeleton.name} (heatmaps {model_skeleton.num_heatmaps}, pafs {model_skeleton.num_pafs})"
            )
        self.device = resolve_device(device)
        if half and self.device.type != "cuda":
            logger.warning("half precision needs CUDA; running float32 on %s", self.device)
            half = False
        self.half = bool(half)
        self.model = model.to(self.device).eval()
        if self.half:
            self.model.half()
        self.codec = codec
        self.input_size = int(input_size)
        self.scales = scales
        self.flip = bool(flip)
        self.timings: dict[str, float] = {phase: 0.0 for phase in PHASES}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_weights(
        cls,
        path: str | Path,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        device: str | torch.device | None = None,
        half: bool = False,
        input_size: int | None = None,
        codec_overrides: Mapping[str, Any] | None = None,
    ) -> "BottomUpPredictor":
        """A predictor from a weights file in any layout (CMU COCO body model, our checkpoints, bare state dicts).

        Our checkpoints supply the codec settings and input size of their config; other files
        use the :class:`CodecConfig` defaults. ``input_size`` and ``codec_overrides`` (codec field
        -> value, e.g. ``{"peak_threshold": 0.2}``) replace those.
        """
        model, config = load_model_with_config(path)
        return cls.from_model(model, config, str(path), scales, flip, device, half, input_size, codec_overrides)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        device: str | torch.device | None = None,
        half: bool = False,
        input_size: int | None = None,
        codec_overrides: Mapping[str, Any] | None = None,
    ) -> "BottomUpPredictor":
        """A predictor from one of our checkpoints alone: model, codec and input size come from its config."""
        model, config = load_model_with_config(path)
        require_config(path, config)
        return cls.from_model(model, config, str(path), scales, flip, device, half, input_size, codec_overrides)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        config: Mapping[str, Any] | None,
        source: str = "model",
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        device: str | torch.device | None = None,
        half: bool = False,
        input_size: int | None = None,
        codec_overrides: Mapping[str, Any] | None = None,
    ) -> "BottomUpPredictor":
        """A predictor for an already loaded model and its checkpoint config (``None``: the codec defaults)."""
        codec_cfg = config_from_dict(config, where=f"{source} config").codec if config is not None else CodecConfig()
        codec = build_bottomup_codec(codec_cfg)
        skeleton = getattr(model, "skeleton", None)
        if skeleton is not None:
            codec = dataclasses.replace(codec, skeleton=skeleton)
        if codec_overrides:
            known = {f.name for f in dataclasses.fields(codec)}
            unknown = sorted(set(codec_overrides) - known)
            if unknown:
                raise ValueError(f"codec_overrides: unknown codec fields {unknown}; valid: {sorted(known)}")
            codec = dataclasses.replace(codec, **dict(codec_overrides))
        size = codec_cfg.input_size if input_size is None else input_size
        return cls(model, codec, input_size=size, scales=scales, flip=flip, device=device, half=half)

    # ------------------------------------------------------------------ public calls
    def __call__(self, image_bgr: np.ndarray) -> Poses:
        """One image (H, W, 3) uint8 BGR -> Poses (N people, image pixels, the model's skeleton)."""
        return self.predict_batch([image_bgr])[0]

    def predict_batch(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> list[Poses]:
        """Several images (each (H, W, 3) uint8 BGR, sizes may differ) -> one Poses per image.

        ``batch_size`` splits the list into network batches (default: one batch);
        :attr:`timings` then holds the sums over the batches.
        """
        images = list(images)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        step = batch_size or max(1, len(images))
        totals = {phase: 0.0 for phase in PHASES}
        poses: list[Poses] = []
        for start in range(0, len(images), step):
            maps = self.predict_maps(images[start : start + step])
            t0 = time.perf_counter()
            poses.extend(self.decode_maps(m) for m in maps)
            self.timings["decode"] = time.perf_counter() - t0
            for phase in PHASES:
                totals[phase] += self.timings[phase]
        self.timings = totals
        return poses

    def decode_maps(self, maps: Mapping[str, np.ndarray]) -> Poses:
        """One entry of :meth:`predict_maps` -> Poses in image pixels (keypoints not found stay (0, 0, 0))."""
        poses = self.codec.decode({"heatmaps": maps["heatmaps"], "pafs": maps["pafs"]})
        out = poses.transform(invert_affine(maps["matrix"]))
        out.keypoints[out.keypoints[..., 2] <= 0, :2] = 0.0
        return out

    @torch.inference_mode()
    def predict_maps(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Averaged maps of a batch, at the scale-1 map resolution, one dict per image.

        Returns per image ``{"heatmaps": (K+1, h, w), "pafs": (2L, h, w)}`` float32 (the image's own
        region of the batch, h x w = letterboxed input / stride), ``"matrix"`` (2, 3) float64 image
        px -> scale-1 network input px and ``"input_hw"`` (2,) int64, its letterboxed input size.
        Resets :attr:`timings` (decode = 0).
        """
        self.timings = {phase: 0.0 for phase in PHASES}
        bgr = [_as_bgr(image, i) for i, image in enumerate(images)]
        if not bgr:
            return []
        stride = self.codec.stride
        num_heatmaps = self.codec.skeleton.num_heatmaps
        # The scale-1 letterbox defines each image's output grid, whether or not 1.0 is a scale.
        reference = [letterbox_affine(image.shape[:2], self.input_size, stride) for image in bgr]
        out_hw = [(pad_h // stride, pad_w // stride) for _, (pad_h, pad_w) in reference]
        # Per image, the sum over runs of its maps (h, w, K+1+2L): channels last, OpenCV's layout.
        sums: list[np.ndarray | None] = [None] * len(bgr)
        runs = 0

        was_training = self.model.training
        self.model.eval()
        try:
            for scale in self.scales:
                height = scaled_input_height(self.input_size, scale, stride)
                batch = self._preprocess(bgr, height)
                t0 = time.perf_counter()
                heatmaps, pafs = _last_stage(self.model(batch))
                self._sync()
                t1 = time.perf_counter()
                self.timings["network"] += t1 - t0
                expected_hw = (height // stride, batch.shape[-1] // stride)
                if tuple(heatmaps.shape[-2:]) != expected_hw or tuple(pafs.shape[-2:]) != expected_hw:
                    raise ValueError(
                        f"model output maps are {tuple(heatmaps.shape[-2:])} for input {tuple(batch.shape[-2:])}; "
                        f"expected {expected_hw} (the codec's stride {stride})"
                    )
                heat = heatmaps.float().cpu().numpy()
                paf = pafs.float().cpu().numpy()
                if self.flip:
                    # The second half of the batch holds the mirrored images (see _preprocess).
                    back = self.codec.flip_outputs({"heatmaps": heat[len(bgr):], "pafs": paf[len(bgr):]})
                    heat = heat[: len(bgr)] + back["heatmaps"]
                    paf = paf[: len(bgr)] + back["pafs"]
                runs += 2 if self.flip else 1
                ratio = height / self.input_size
                for i in range(len(bgr)):
                    # This image's share of the padded batch, at most a cell beyond its own maps.
                    h, w = out_hw[i]
                    keep_w = min(heat.shape[-1], int(np.ceil(w * ratio)) + 1)
                    maps = np.concatenate([heat[i, :, :, :keep_w], paf[i, :, :, :keep_w]], axis=0)
                    maps = _to_scale_one(np.ascontiguousarray(maps.transpose(1, 2, 0)), ratio, (h, w))
                    sums[i] = maps if sums[i] is None else sums[i] + maps
                self.timings["postprocess"] += time.perf_counter() - t1
        finally:
            self.model.train(was_training)

        t0 = time.perf_counter()
        out = []
        for total, (matrix, (pad_h, pad_w)) in zip(sums, reference):
            averaged = total.transpose(2, 0, 1) / np.float32(runs)  # type: ignore[union-attr]
            out.append({
                "heatmaps": np.ascontiguousarray(averaged[:num_heatmaps]),
                "pafs": np.ascontiguousarray(averaged[num_heatmaps:]),
                "matrix": matrix,
                "input_hw": np.array([pad_h, pad_w], dtype=np.int64),
            })
        self.timings["postprocess"] += time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------ internals
    def _preprocess(self, images: Sequence[np.ndarray], height: int) -> torch.Tensor:
        """Letterbox every image to ``height``, pad right to the widest, normalise: (B or 2B, 3, height, W) on the device."""
        t0 = time.perf_counter()
        boxed = [letterbox(image, height, self.codec.stride)[0] for image in images]
        width = max(b.shape[1] for b in boxed)
        count = len(boxed) * (2 if self.flip else 1)
        batch = np.full((count, height, width, 3), PAD_VALUE, dtype=np.uint8)
        for i, b in enumerate(boxed):
            batch[i, :, : b.shape[1]] = b
        if self.flip:
            # The whole padded width is mirrored: it is a stride multiple, so output cell x of
            # the mirror is cell w - 1 - x of the original exactly (geometry.py).
            batch[len(boxed):] = batch[: len(boxed), :, ::-1]
        tensor = torch.from_numpy(to_network_input(batch)).to(self.device, non_blocking=True)
        if self.half:
            tensor = tensor.half()
        self._sync()
        self.timings["preprocess"] += time.perf_counter() - t0
        return tensor

    def _sync(self) -> None:
        """Wait for queued CUDA work so the phase timings are honest (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# ====================================================================== top-down
class TopDownPredictor:
    """Images + person boxes -> :class:`Poses` (COCO-17, image pixels) with a top-down heatmap model.

    Each box becomes a crop region at the model's aspect ratio with ``padding`` (HRNet: 1.25);
    the crops go through the network in batches of ``batch_size``; the codec decodes each crop's
    heatmaps (argmax + quarter offset or DARK) and the inverse crop affine maps the keypoints
    back. With ``flip``, mirrored crops run too and their heatmaps, brought back by
    :meth:`TopDownHeatmapCodec.flip_heatmaps`, are averaged in.

    The codec's ``convention`` (geometry.py) decides how boxes become crops and where heatmap
    cells sit: ``"openpose_lite"`` for our checkpoints, ``"hrnet"`` for official HRNet weights,
    which then decode as the reference's ``get_final_preds`` does (boxes to centre and scale by
    ``_xywh2cs``, crop by ``get_affine_transform``, one-cell flip shift).

    A person's score is its box score times the mean score of its confident keypoints (above
    ``keypoint_threshold``), as in the HRNet evaluation (``lib/dataset/coco.py``, ``evaluate``);
    people are then pruned by OKS non-maximum suppression at ``oks_threshold`` on the crop
    regions' areas (:func:`~openpose_lite.evaluation.oks_nms`).

    After each call, :attr:`timings` holds seconds for ``crop``, ``network`` and ``decode``.
    """

    PHASES = ("crop", "network", "decode")

    def __init__(
        self,
        model: nn.Module,
        codec: TopDownHeatmapCodec,
        flip: bool = False,
        device: str | torch.device | None = None,
        half: bool = False,
        batch_size: int = 32,
        padding: float = 1.25,
        keypoint_threshold: float = 0.2,
        oks_threshold: float = 0.9,
    ) -> None:
        if not isinstance(codec, TopDownHeatmapCodec):
            raise ValueError(f"codec: expected a TopDownHeatmapCodec, got {type(codec).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        self.device = resolve_device(device)
        if half and self.device.type != "cuda":
            logger.warning("half precision needs CUDA; running float32 on %s", self.device)
            half = False
        self.half = bool(half)
        self.model = model.to(self.device).eval()
        if self.half:
            self.model.half()
        self.codec = codec
        self.flip = bool(flip)
        self.batch_size = int(batch_size)
        self.padding = float(padding)
        self.keypoint_threshold = float(keypoint_threshold)
        self.oks_threshold = float(oks_threshold)
        self.timings: dict[str, float] = {phase: 0.0 for phase in self.PHASES}

    @classmethod
    def from_weights(
        cls,
        path: str | Path,
        flip: bool = False,
        device: str | torch.device | None = None,
        refine: str | None = None,
        **kwargs: Any,
    ) -> "TopDownPredictor":
        """A predictor from official HRNet pose weights or one of our top-down checkpoints.

        Official HRNet files were trained in the reference code's pixel and cell convention,
        so they are decoded in it (``convention="hrnet"``); our checkpoints in the one their
        config names.
        """
        model, config = load_model_with_config(path)
        return cls.from_model(model, config, str(path), flip=flip, device=device, refine=refine, **kwargs)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        config: Mapping[str, Any] | None,
        source: str = "model",
        flip: bool = False,
        device: str | torch.device | None = None,
        refine: str | None = None,
        **kwargs: Any,
    ) -> "TopDownPredictor":
        """A predictor for an already loaded HRNet and its checkpoint config (``None``: official weights)."""
        if not isinstance(model, HRNet):
            raise ValueError(f"{source}: not a top-down (HRNet) model; use BottomUpPredictor for OpenPose weights")
        if config is not None:
            cfg = config_from_dict(config, where=f"{source} config").topdown
        else:  # an official file: the reference's convention, the rest as in its COCO config
            cfg = TopDownConfig(convention=HRNET)
        codec = build_topdown_codec(cfg)
        if refine is not None:
            codec = dataclasses.replace(codec, refine=refine)
        kwargs.setdefault("padding", cfg.padding)
        return cls(model, codec, flip=flip, device=device, **kwargs)

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None) -> Poses:
        return self.predict(image_bgr, boxes, box_scores)

    @torch.inference_mode()
    def predict(self, image_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None) -> Poses:
        """People in one image, one per box.

        Args:
            image_bgr: (H, W, 3) uint8.
            boxes: (N, 4) person boxes x, y, w, h in image pixels.
            box_scores: (N,) detection scores (default 1).
        Returns:
            Poses (COCO-17, image pixels), best first, after OKS NMS.
        """
        image = _as_bgr(image_bgr, 0)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, dtype=np.float64).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"box_scores: {scores.shape[0]} scores for {boxes.shape[0]} boxes")
        self.timings = {phase: 0.0 for phase in self.PHASES}
        skeleton = self.codec.skeleton
        convention = self.codec.convention
        if convention == HRNET:
            # The reference crops every box as given (_box2cs); only boxes with no area are dropped.
            keep = [b if np.all(np.isfinite(b)) and b[2] > 0 and b[3] > 0 else None for b in boxes]
        else:
            keep = [sanitize_box(b, image.shape[:2]) for b in boxes]
        valid = [i for i, b in enumerate(keep) if b is not None]
        if not valid:
            return Poses.empty(skeleton)

        t0 = time.perf_counter()
        out_h, out_w = self.codec.input_hw
        crops, matrices, areas = [], [], []
        for i in valid:
            center, size = box_to_center_scale(keep[i], out_w / out_h, self.padding, convention)
            crop, matrix = crop_person(image, center, size, 0.0, self.codec.input_hw, convention=convention)
            crops.append(crop)
            matrices.append(matrix)
            areas.append(size[0] * size[1])  # the reference's OKS NMS area: the crop region's
        batch = torch.from_numpy(to_hrnet_input(np.stack(crops)))
        self.timings["crop"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        heatmaps = self._heatmaps(batch)
        self.timings["network"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        decoded = self.codec.decode(heatmaps)  # (P, K, 3) crop px
        keypoints = np.empty_like(decoded)
        for p, matrix in enumerate(matrices):
            keypoints[p] = transform_keypoints(invert_affine(matrix), decoded[p][None])[0]
        confident = keypoints[..., 2] > self.keypoint_threshold
        mean_conf = np.where(confident, keypoints[..., 2], 0).sum(1) / np.maximum(confident.sum(1), 1)
        person_scores = scores[valid] * mean_conf
        order = oks_nms(keypoints, person_scores, np.asarray(areas), skeleton.sigmas_array, self.oks_threshold)
        self.timings["decode"] = time.perf_counter() - t0
        return Poses(keypoints[order], person_scores[order], skeleton)

    def _heatmaps(self, batch: torch.Tensor) -> np.ndarray:
        """(P, 3, H, W) normalised crops -> (P, K, h, w) float32 heatmaps, flip-averaged when asked."""
        was_training = self.model.training
        self.model.eval()
        chunks = []
        try:
            for start in range(0, batch.shape[0], self.batch_size):
                x = batch[start : start + self.batch_size].to(self.device)
                if self.half:
                    x = x.half()
                maps = self.model(x)["heatmaps"].float()
                if self.flip:
                    mirrored = self.model(x.flip(-1))["heatmaps"].float().cpu().numpy()
                    back = self.codec.flip_heatmaps(mirrored)
                    maps = 0.5 * (maps.cpu() + torch.from_numpy(back))
                chunks.append(maps.cpu().numpy())
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        finally:
            self.model.train(was_training)
        return np.concatenate(chunks)


# ----------------------------------------------------------------------- person boxes
def bottomup_boxes(predictor: BottomUpPredictor, margin: float = 0.1) -> BoxSource:
    """Person boxes from the bottom-up model's people: the extent of their keypoints, grown by ``margin``.

    Lets the top-down branch run with no external detector; the box score is the person score.
    """

    def source(image: np.ndarray, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        poses = predictor(image)
        boxes, scores = [], []
        for kps, score in zip(poses.keypoints, poses.scores):
            found = kps[kps[:, 2] > 0, :2]
            if len(found) < 2:
                continue
            lo, hi = found.min(0), found.max(0)
            pad = margin * (hi - lo) + 2.0
            boxes.append([lo[0] - pad[0], lo[1] - pad[1], hi[0] - lo[0] + 2 * pad[0], hi[1] - lo[1] + 2 * pad[1]])
            scores.append(float(score))
        return np.array(boxes, np.float64).reshape(-1, 4), np.array(scores, np.float64)

    return source


class TopDownPipeline:
    """Whole images -> :class:`Poses` with a :class:`TopDownPredictor`, person boxes from a :data:`BoxSource`.

    ``predict_batch(images, image_ids)`` mirrors :meth:`BottomUpPredictor.predict_batch`, so the
    command line drives both branches the same way.
    """

    def __init__(self, predictor: TopDownPredictor, boxes: BoxSource) -> None:
        self.predictor = predictor
        self.boxes = boxes

    def __call__(self, image_bgr: np.ndarray, image_id: int | None = None) -> Poses:
        return self.predict_batch([image_bgr], [image_id])[0]

    def predict_batch(self, images: Sequence[np.ndarray], image_ids: Sequence[int | None] | None = None,
                      batch_size: int | None = None) -> list[Poses]:
        ids = list(image_ids) if image_ids is not None else [None] * len(images)
        if len(ids) != len(images):
            raise ValueError(f"image_ids: {len(ids)} ids for {len(images)} images")
        out = []
        for image, image_id in zip(images, ids):
            boxes, scores = self.boxes(image, image_id)
            out.append(self.predictor(image, boxes, scores))
        return out
