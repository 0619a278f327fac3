"""Top-down inference: images + person boxes -> HRNet crops -> people in image pixels.

:class:`TopDownPredictor` runs a heatmap model on one crop per box; :class:`TopDownPipeline`
pairs it with a :data:`~openpose_lite.inference.boxes.BoxSource` (ground-truth boxes,
detections, or a bottom-up model's people) so that whole images go in, as with the bottom-up
predictor. Shape legend: N boxes, K keypoints, H x W crop size, h x w heatmap size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from openpose_lite.codecs import TopDownHeatmapCodec
from openpose_lite.config import Config
from openpose_lite.geometry import HRNET, box_to_center_scale, invert_affine, transform_keypoints
from openpose_lite.inference.base import Predictor, PredictorOptions
from openpose_lite.inference.boxes import BoxSource, sanitize_box
from openpose_lite.inference.calibration import Calibration, topdown_calibration
from openpose_lite.oks import oks_nms
from openpose_lite.preprocess import as_bgr, crop_person, normalise_input
from openpose_lite.skeleton import Skeleton
from openpose_lite.structures import Poses

__all__ = ["PersonCrops", "TopDownPipeline", "TopDownPredictor"]


@dataclass
class PersonCrops:
    """An image's person crops after :meth:`TopDownPredictor.crop`: the normalised crops (N, 3, H, W),
    each crop's (2, 3) affine image px -> crop px, its box score and its region's area."""

    inputs: torch.Tensor
    matrices: list[np.ndarray]
    box_scores: np.ndarray
    areas: np.ndarray


class TopDownPredictor(Predictor):
    """Images + person boxes -> :class:`Poses` (COCO-17, image pixels) with a top-down heatmap model.

    Each box becomes a crop region at the model's aspect ratio with ``padding`` (HRNet: 1.25); the codec
    decodes each crop's heatmaps (argmax + quarter offset or DARK), the inverse crop affine maps the keypoints
    back. With ``flip``, mirrored crops' heatmaps (:meth:`TopDownHeatmapCodec.flip_heatmaps`) are averaged in.

    The codec's ``convention`` (geometry.py) decides how boxes become crops and where cells sit: ``"hrnet"``
    for official HRNet weights decodes as the reference's ``get_final_preds`` (``_xywh2cs``,
    ``get_affine_transform``, one-cell flip shift). A person's score is its box score times the codec's
    ``person_scores`` (HRNet's ``lib/dataset/coco.py``, ``evaluate``); people are then pruned by
    :func:`~openpose_lite.oks.oks_nms` at ``oks_threshold`` on the crop regions' areas. After each call,
    :attr:`timings` holds the seconds of each of :attr:`PHASES`.
    """

    PHASES = ("crop", "network", "decode")

    def __init__(
        self,
        model: nn.Module,
        codec: TopDownHeatmapCodec,
        flip: bool = False,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        batch_size: int = 32,
        padding: float = 1.25,
        oks_threshold: float = 0.9,
        input_norm: str = "imagenet_rgb",
        backend: str = "torch",
        calibration: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        self._take_codec(codec, TopDownHeatmapCodec)
        self.input_norm = input_norm
        self.flip = bool(flip)
        self.batch_size = int(batch_size)
        self.padding = float(padding)
        self.oks_threshold = float(oks_threshold)
        self._start(model, device, precision, backend, calibration)

    @classmethod
    def from_config(cls, model: nn.Module, codec: TopDownHeatmapCodec, cfg: Config,
                    options: PredictorOptions) -> "TopDownPredictor | TopDownPipeline":
        """The predictor :func:`~openpose_lite.inference.base.build_predictor` makes: ``cfg`` gives the crop
        padding, the flip test and the input normalisation, ``options`` the rest; with ``options.boxes``, a
        :class:`TopDownPipeline` on those boxes."""
        predictor = cls(model, codec, flip=cfg.topdown.flip_test if options.flip is None else options.flip,
                        device=options.device, precision=options.precision, batch_size=options.batch_size or 32,
                        padding=cfg.topdown.padding, input_norm=cfg.model.resolved_input_norm, backend=options.backend,
                        calibration=options.calibration)
        return predictor if options.boxes is None else TopDownPipeline(predictor, options.boxes(predictor.codec))

    def calibration_set(self, source: Any) -> Calibration | None:
        return topdown_calibration(source, self.codec.input_hw, self.padding, self.codec.convention,
                                   input_norm=self.input_norm)

    @property
    def example_input_hw(self) -> tuple[int, int]:
        return int(self.codec.input_hw[0]), int(self.codec.input_hw[1])

    def describe(self) -> str:
        h, w = self.codec.input_hw
        return f"top-down {h}x{w}, refine {self.codec.refine}, flip {'on' if self.flip else 'off'}, {self._runtime_words()}"

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None) -> Poses:
        return self.predict(image_bgr, boxes, box_scores)

    def predict(self, image_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None) -> Poses:
        """People in one image (H, W, 3) uint8, one per box (``boxes`` (N, 4) x, y, w, h in image pixels,
        ``box_scores`` (N,), default 1): Poses in image pixels, best first, after OKS NMS."""
        self.timings = dict.fromkeys(self.PHASES, 0.0)
        crops = self.crop(image_bgr, boxes, box_scores)
        return self.decode(crops, self.heatmaps(crops.inputs))

    # ------------------------------------------------------------------ the three steps
    def crop(self, image_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None) -> PersonCrops:
        """Step 1 (host): one normalised crop per usable box, with what decoding needs to map it back."""
        t0 = time.perf_counter()
        image = as_bgr(image_bgr, 0)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, dtype=np.float64).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"box_scores: {scores.shape[0]} scores for {boxes.shape[0]} boxes")
        convention = self.codec.convention
        if convention == HRNET:
            # The reference crops every box as given (_box2cs); only boxes with no area are dropped.
            keep = [b if np.all(np.isfinite(b)) and b[2] > 0 and b[3] > 0 else None for b in boxes]
        else:
            keep = [sanitize_box(b, image.shape[:2]) for b in boxes]
        valid = [i for i, b in enumerate(keep) if b is not None]
        out_h, out_w = self.codec.input_hw
        crops, matrices, areas = [], [], []
        for i in valid:
            center, size = box_to_center_scale(keep[i], out_w / out_h, self.padding, convention)
            crop, matrix = crop_person(image, center, size, 0.0, self.codec.input_hw, convention=convention)
            crops.append(crop)
            matrices.append(matrix)
            areas.append(size[0] * size[1])  # the reference's OKS NMS area: the crop region's
        inputs = (torch.from_numpy(normalise_input(np.stack(crops), self.input_norm)) if crops
                  else torch.zeros((0, 3, out_h, out_w), dtype=torch.float32))
        self.timings["crop"] += time.perf_counter() - t0
        return PersonCrops(inputs, matrices, scores[valid], np.asarray(areas, dtype=np.float64))

    def heatmaps(self, inputs: torch.Tensor) -> np.ndarray:
        """Step 2 (the device): (N, 3, H, W) normalised crops -> (N, K, h, w) float32 heatmaps, flip-averaged when
        asked, in network batches of ``batch_size``."""
        if not len(inputs):
            return np.zeros((0, self.codec.skeleton.num_keypoints, *self.codec.heatmap_hw), np.float32)
        t0 = time.perf_counter()
        chunks = []
        for start in range(0, inputs.shape[0], self.batch_size):
            x = self.runner.to_device(inputs[start : start + self.batch_size])
            maps = self.runner(x)["heatmaps"]
            if self.flip:
                mirrored = self.runner(x.flip(-1))["heatmaps"]
                maps = 0.5 * (maps + self.codec.flip_heatmaps(mirrored))
            chunks.append(maps)
        self.runner.sync()
        self.timings["network"] += time.perf_counter() - t0
        return np.concatenate(chunks)

    def decode(self, crops: PersonCrops, heatmaps: np.ndarray) -> Poses:
        """Step 3 (host): keypoints in image pixels, the reference's person scores, OKS NMS."""
        if not len(crops.matrices):
            return Poses.empty(self.codec.skeleton)
        t0 = time.perf_counter()
        decoded = self.codec.decode_keypoints(heatmaps)  # (N, K, 3) crop px
        keypoints = np.stack([transform_keypoints(invert_affine(m), d[None])[0] for m, d in zip(crops.matrices, decoded)])
        person_scores = crops.box_scores * self.codec.person_scores(keypoints)
        order = oks_nms(keypoints, person_scores, crops.areas, self.codec.skeleton.sigmas_array, self.oks_threshold)
        self.timings["decode"] += time.perf_counter() - t0
        return Poses(keypoints[order], person_scores[order], self.codec.skeleton)


class TopDownPipeline:
    """Whole images -> :class:`Poses` with a :class:`TopDownPredictor`, person boxes from a :data:`BoxSource`;
    called as :class:`~openpose_lite.inference.bottomup.BottomUpPredictor`, so both branches are driven the same way."""

    def __init__(self, predictor: TopDownPredictor, boxes: BoxSource) -> None:
        self.predictor = predictor
        self.boxes = boxes

    @property
    def skeleton(self) -> Skeleton:
        """The predictor's skeleton: what it finds in the boxes."""
        return self.predictor.skeleton

    def describe(self) -> str:
        return self.predictor.describe()

    def __call__(self, image_bgr: np.ndarray, image_id: int | None = None) -> Poses:
        return self.predict_batch([image_bgr], [image_id])[0]

    def predict_batch(self, images: Sequence[np.ndarray], image_ids: Sequence[int | None] | None = None) -> list[Poses]:
        """One Poses per image; the steps are also callable one by one (:meth:`prepare`, :meth:`forward`,
        :meth:`finish`), which is how :mod:`openpose_lite.inference.pipeline` overlaps them."""
        prepared = self.prepare(images, image_ids)
        return self.finish(prepared, self.forward(prepared))

    def prepare(self, images: Sequence[np.ndarray], image_ids: Sequence[int | None] | None = None) -> list[PersonCrops]:
        """Step 1 (host): each image's boxes (from the box source) and crops."""
        ids = list(image_ids) if image_ids is not None else [None] * len(images)
        if len(ids) != len(images):
            raise ValueError(f"image_ids: {len(ids)} ids for {len(images)} images")
        prepared = []
        for image, image_id in zip(images, ids):
            boxes, scores = self.boxes(image, image_id)
            prepared.append(self.predictor.crop(image, boxes, scores))
        return prepared

    def forward(self, prepared: list[PersonCrops]) -> list[np.ndarray]:
        """Step 2 (the device): the heatmaps of every crop of the batch, in one run of the network."""
        sizes = [len(c.matrices) for c in prepared]
        if not sum(sizes):
            return [self.predictor.heatmaps(c.inputs) for c in prepared]
        maps = self.predictor.heatmaps(torch.cat([c.inputs for c in prepared]))
        return np.split(maps, np.cumsum(sizes)[:-1])

    def finish(self, prepared: list[PersonCrops], heatmaps: list[np.ndarray]) -> list[Poses]:
        """Step 3 (host): each image's people."""
        return [self.predictor.decode(c, m) for c, m in zip(prepared, heatmaps)]
