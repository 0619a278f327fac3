"""Bottom-up inference: BGR images -> OpenPose maps -> people in image pixels.

The pipeline of the CMU demo (Cao et al., CVPR 2017, Sec. 3 and the released test code):

1. **Preprocess.** Each image is letterboxed to the input height (:func:`~openpose_lite.preprocess.letterbox`;
   scaled less to fit the :class:`~openpose_lite.preprocess.InputBound`, refused when degenerate) and
   normalised; a batch pads right (and bottom) to its largest image, which never moves a coordinate.
2. **Network**, once per scale in ``scales`` (input height ``input_size * s`` rounded to the
   stride) and, with ``flip``, once more on the mirrored batch.
3. **Average** on the host at map resolution, as the CMU demo does: mirrored maps come back
   (:meth:`BottomUpPafCodec.flip_outputs`), every scale's maps are resampled onto the scale-1 grid by the
   exact affine between the grids. numpy and OpenCV on purpose: on small arrays torch's threads spend more
   time synchronising than computing, badly so on a busy CPU.
4. **Decode** in scale-1 network-input pixels; the inverse letterbox affine gives image pixels.

Shape legend: B batch, K keypoints, L limbs, N people, H x W image size, h x w map size.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from openpose_lite.codecs import BottomUpPafCodec
from openpose_lite.config import Config
from openpose_lite.geometry import invert_affine, letterbox_affine
from openpose_lite.inference.base import Predictor, PredictorOptions
from openpose_lite.inference.calibration import Calibration, bottomup_calibration
from openpose_lite.preprocess import (
    DEFAULT_INPUT_BOUND,
    PAD_VALUE,
    InputBound,
    as_bgr,
    letterbox,
    normalise_input,
)
from openpose_lite.structures import Poses

__all__ = ["PHASES", "BottomUpPredictor", "PreparedBatch", "scaled_input_height"]


# The phases of one call, as keys of ``BottomUpPredictor.timings`` (seconds):
# preprocess = letterbox + normalisation + host->device copy (+ mirroring);
# network = the forward passes; postprocess = un-mirroring, resampling to the scale-1 grid,
# averaging and the device->host copy; decode = codec.decode + mapping to image pixels.
PHASES: tuple[str, ...] = ("preprocess", "network", "postprocess", "decode")


def scaled_input_height(input_size: int, scale: float, stride: int) -> int:
    """Network input height for one scale: ``input_size * scale`` rounded (half up) to a multiple of ``stride``, >= stride."""
    return max(stride, math.floor(input_size * scale / stride + 0.5) * stride)


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


@dataclass
class PreparedBatch:
    """A batch after :meth:`BottomUpPredictor.prepare`: per scale the device batch (B or 2B, 3, H, W)
    and each image's (2, 3) letterbox matrix; per image its scale-1 letterbox (matrix, padded input
    size), which defines its output grid."""

    reference: list[tuple[np.ndarray, tuple[int, int]]]
    scales: list[tuple[torch.Tensor, list[np.ndarray]]]


class BottomUpPredictor(Predictor):
    """Images -> :class:`Poses` (image pixels, the network's skeleton) with the OpenPose model.

    Args:
        model: returns a list of per-stage dicts with ``"heatmaps"`` (B, K+1, h, w) and
            ``"pafs"`` (B, 2L, h, w); the last stage is used.
        codec: decodes the averaged maps; its stride and channels must be the model's.
        input_size: network input height at scale 1, a multiple of ``codec.stride`` (CMU: 368).
        input_bound: :class:`~openpose_lite.preprocess.InputBound` (default: its defaults).
        scales: input heights ``input_size * s``; their maps are averaged (CMU multi-scale test).
        flip: also run the mirrored images and average (flip test).
        device, precision, backend, calibration: the runtime, as
            :func:`~openpose_lite.inference.network.make_runner` takes them (fp32: exact CMU outputs).
        report_shift: image pixels added to every keypoint's x and y: the reporting convention of the
            weights' code (0 for ours and CMU's; 0.5 for Lightweight OpenPose's, whose val.py adds it).
        input_norm: :func:`~openpose_lite.preprocess.normalise_input`'s name (CMU's for bottom-up models).

    After each call, :attr:`timings` holds the seconds spent in each of :data:`PHASES`.
    """

    PHASES = PHASES

    def __init__(
        self,
        model: nn.Module,
        codec: BottomUpPafCodec,
        input_size: int = 368,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        input_bound: InputBound | None = None,
        report_shift: float = 0.0,
        input_norm: str = "cmu",
        backend: str = "torch",
        calibration: Any = None,
    ) -> None:
        self._take_codec(codec, BottomUpPafCodec)
        if int(input_size) != input_size or input_size < codec.stride or input_size % codec.stride:
            raise ValueError(f"input_size: expected a positive multiple of the stride ({codec.stride}), got {input_size!r}")
        scales = tuple(float(s) for s in scales)
        if not scales or not all(np.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"scales: expected one or more positive numbers, got {scales!r}")
        if input_bound is not None and not isinstance(input_bound, InputBound):
            raise ValueError(f"input_bound: expected an InputBound, got {type(input_bound).__name__}")
        if not (isinstance(report_shift, numbers.Real) and math.isfinite(report_shift)):
            raise ValueError(f"report_shift: expected a finite number of pixels, got {report_shift!r}")
        self.input_size = int(input_size)
        self.scales = scales
        self.flip = bool(flip)
        self.input_bound = DEFAULT_INPUT_BOUND if input_bound is None else input_bound
        self.report_shift = float(report_shift)
        self.input_norm = input_norm
        self._start(model, device, precision, backend, calibration)

    @classmethod
    def from_config(cls, model: nn.Module, codec: BottomUpPafCodec, cfg: Config,
                    options: PredictorOptions) -> "BottomUpPredictor":
        """The predictor :func:`~openpose_lite.inference.base.build_predictor` makes: ``cfg`` gives the
        input height (``codec.input_size``), ``report_shift`` and the input normalisation; ``options`` the rest."""
        return cls(model, codec, input_size=cfg.codec.input_size if options.input_size is None else options.input_size,
                   scales=options.scales, flip=bool(options.flip), device=options.device, precision=options.precision,
                   input_bound=options.input_bound, report_shift=cfg.codec.report_shift,
                   input_norm=cfg.model.resolved_input_norm, backend=options.backend, calibration=options.calibration)

    def calibration_set(self, source: Any) -> Calibration | None:
        return bottomup_calibration(source, self.input_size, self.codec.stride, self.input_bound, input_norm=self.input_norm)

    @property
    def example_input_hw(self) -> tuple[int, int]:
        return self.input_size, self.input_size

    def describe(self) -> str:
        return (f"input {self.input_size}, scales {' '.join(f'{s:g}' for s in self.scales)}, "
                f"flip {'on' if self.flip else 'off'}, {self._runtime_words()}")

    # ------------------------------------------------------------------ public calls
    def __call__(self, image_bgr: np.ndarray) -> Poses:
        """One image (H, W, 3) uint8 BGR -> Poses (N people, image pixels, the model's skeleton)."""
        return self.predict_batch([image_bgr])[0]

    def predict_batch(self, images: Sequence[np.ndarray], image_ids: Sequence[int | None] | None = None) -> list[Poses]:
        """Several images (each (H, W, 3) uint8 BGR, sizes may differ) -> one Poses per image, in one network batch.
        The steps :meth:`prepare`, :meth:`forward`, :meth:`finish` are also callable one by one, which is how
        :mod:`openpose_lite.inference.pipeline` overlaps them; ``image_ids`` (for boxes) is unused here."""
        self.timings = dict.fromkeys(PHASES, 0.0)
        prepared = self.prepare(images)
        return self.finish(prepared, self.forward(prepared))

    def input_problem(self, image_hw: tuple[int, int]) -> str | None:
        """Why an image of ``image_hw`` (H, W) cannot be run (:meth:`InputBound.problem` at every input height), or None."""
        stride = self.codec.stride
        heights = {self.input_size, *(scaled_input_height(self.input_size, s, stride) for s in self.scales)}
        return self.input_bound.problem(image_hw, sorted(heights))

    def decode_maps(self, maps: Mapping[str, np.ndarray]) -> Poses:
        """One entry of :meth:`predict_maps` -> Poses in image pixels (keypoints not found stay (0, 0, 0))."""
        poses = self.codec.decode({"heatmaps": maps["heatmaps"], "pafs": maps["pafs"]})
        to_image = invert_affine(maps["matrix"])
        to_image[:, 2] += self.report_shift
        return poses.transform(to_image)

    def predict_maps(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Averaged maps of a batch at the scale-1 map resolution, per image ``{"heatmaps": (K+1, h, w),
        "pafs": (2L, h, w)}`` float32 (the image's own region of the batch, h x w = letterboxed input / stride),
        ``"matrix"`` (2, 3) float64 image px -> scale-1 network input px and ``"input_hw"`` (2,) int64, its
        letterboxed input size. An image :meth:`input_problem` refuses is a ValueError naming its index."""
        self.timings = dict.fromkeys(PHASES, 0.0)
        prepared = self.prepare(images)
        return self.average(prepared, self.forward(prepared))

    # ------------------------------------------------------------------ the three steps
    def prepare(self, images: Sequence[np.ndarray], image_ids: Sequence[int | None] | None = None) -> PreparedBatch:
        """Step 1 (host): check the images, letterbox them at every scale and normalise them onto the device."""
        bgr = [as_bgr(image, i) for i, image in enumerate(images)]
        for i, image in enumerate(bgr):
            problem = self.input_problem(image.shape[:2])
            if problem is not None:
                raise ValueError(f"images[{i}]: {problem}")
        stride = self.codec.stride
        bound = (self.input_bound.max_side, self.input_bound.max_pixels)
        # The scale-1 letterbox defines each image's output grid, whether or not 1.0 is a scale.
        reference = [letterbox_affine(image.shape[:2], self.input_size, stride, *bound) for image in bgr]
        scales = [self._preprocess(bgr, scaled_input_height(self.input_size, s, stride)) for s in self.scales] if bgr else []
        return PreparedBatch(reference, scales)

    def forward(self, prepared: PreparedBatch) -> list[dict[str, np.ndarray]]:
        """Step 2 (the device): the network's maps of every scale's batch, float32 on the host."""
        stride = self.codec.stride
        outputs = []
        for batch, _ in prepared.scales:
            t0 = time.perf_counter()
            maps = self.runner(batch)
            self.runner.sync()
            self.timings["network"] += time.perf_counter() - t0
            expected_hw = (batch.shape[-2] // stride, batch.shape[-1] // stride)
            for name, value in maps.items():
                if tuple(value.shape[-2:]) != expected_hw:
                    raise ValueError(f"model output {name} maps are {tuple(value.shape[-2:])} for input "
                                     f"{tuple(batch.shape[-2:])}; expected {expected_hw} (the codec's stride {stride})")
            outputs.append(maps)
        return outputs

    def finish(self, prepared: PreparedBatch, outputs: list[dict[str, np.ndarray]]) -> list[Poses]:
        """Step 3 (host): average the scales' maps and decode people in image pixels."""
        averaged = self.average(prepared, outputs)
        t0 = time.perf_counter()
        poses = [self.decode_maps(m) for m in averaged]
        self.timings["decode"] += time.perf_counter() - t0
        return poses

    def average(self, prepared: PreparedBatch, outputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """The per-image maps of :meth:`predict_maps` from the network outputs of :meth:`forward`."""
        t0 = time.perf_counter()
        stride, count = self.codec.stride, len(prepared.reference)
        # Per image, the sum over runs of its maps on its scale-1 grid (h, w, K+1+2L): channels last, OpenCV's layout.
        sums: list[np.ndarray | None] = [None] * count
        for (_, matrices), maps in zip(prepared.scales, outputs):
            heat, paf = maps["heatmaps"], maps["pafs"]
            if self.flip:
                # The second half of the batch holds the mirrored images (see _preprocess).
                back = self.codec.flip_outputs({"heatmaps": heat[count:], "pafs": paf[count:]})
                heat, paf = heat[:count] + back["heatmaps"], paf[:count] + back["pafs"]
            for i, (matrix, (pad_h, pad_w)) in enumerate(prepared.reference):
                # Both letterboxes are pure scales of the image, so the grids differ by their ratio
                # (height / input_size, unless the input bound scaled one of them less).
                ratio = float(matrices[i][0, 0] / matrix[0, 0])
                h, w = pad_h // stride, pad_w // stride
                # This image's share of the padded batch, at most a cell beyond its own maps.
                keep_h = min(heat.shape[-2], int(np.ceil(h * ratio)) + 1)
                keep_w = min(heat.shape[-1], int(np.ceil(w * ratio)) + 1)
                stacked = np.concatenate([heat[i, :, :keep_h, :keep_w], paf[i, :, :keep_h, :keep_w]], axis=0)
                resampled = _to_scale_one(np.ascontiguousarray(stacked.transpose(1, 2, 0)), ratio, (h, w))
                sums[i] = resampled if sums[i] is None else sums[i] + resampled
        runs = len(self.scales) * (2 if self.flip else 1)
        num_heatmaps = self.codec.skeleton.num_heatmaps
        out = []
        for total, (matrix, (pad_h, pad_w)) in zip(sums, prepared.reference):
            averaged = total.transpose(2, 0, 1) / np.float32(runs)  # type: ignore[union-attr]
            out.append({
                "heatmaps": np.ascontiguousarray(averaged[:num_heatmaps]),
                "pafs": np.ascontiguousarray(averaged[num_heatmaps:]),
                "matrix": matrix,
                "input_hw": np.array([pad_h, pad_w], dtype=np.int64),
            })
        self.timings["postprocess"] += time.perf_counter() - t0
        return out

    def _preprocess(self, images: Sequence[np.ndarray], height: int) -> tuple[torch.Tensor, list[np.ndarray]]:
        """Letterbox every image to ``height`` (within the input bound), pad right (and bottom) to the
        largest, normalise: (B or 2B, 3, H <= height, W) on the device, and each image's (2, 3) matrix."""
        t0 = time.perf_counter()
        letterboxed = [letterbox(image, height, self.codec.stride, bound=self.input_bound) for image in images]
        boxed = [b for b, _ in letterboxed]
        rows, width = max(b.shape[0] for b in boxed), max(b.shape[1] for b in boxed)
        count = len(boxed) * (2 if self.flip else 1)
        batch = np.full((count, rows, width, 3), PAD_VALUE, dtype=np.uint8)
        for i, b in enumerate(boxed):
            batch[i, : b.shape[0], : b.shape[1]] = b
        if self.flip:
            # The whole padded width is mirrored: it is a stride multiple, so output cell x of
            # the mirror is cell w - 1 - x of the original exactly (geometry.py).
            batch[len(boxed):] = batch[: len(boxed), :, ::-1]
        tensor = self.runner.to_device(torch.from_numpy(normalise_input(batch, self.input_norm)))
        self.runner.sync()
        self.timings["preprocess"] += time.perf_counter() - t0
        return tensor, [m for _, m in letterboxed]
