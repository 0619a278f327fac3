"""Benchmark: top-down (HRNet) vs bottom-up (OpenPose), speed as people multiply and accuracy side by side.

**Speed vs people.** For each count N in ``people``, one generated scene (``image_hw``, exactly N
people drawn, seeded) goes through both pipelines, one image per call:

* bottom-up: :class:`~openpose_lite.predictor.BottomUpPredictor` at one scale, no flip; its
  phase timers give the network time and the decode time of the network's own maps. With random
  weights those maps hold no peaks, so the decode is also timed on *realistic* maps: the codec's
  encoding of the scene's ground truth, letterboxed exactly as the predictor letterboxes the
  image ("decode (GT maps)"), which grows with the people as a trained network's maps would.
* top-down: person boxes from the ``box_source`` ("gt": the scene's ground-truth boxes, no
  work; "bottomup": the bottom-up people's keypoint extents, padded, costing the whole
  bottom-up call), then :class:`~openpose_lite.predictor.TopDownPredictor` with all crops in
  one network batch ("batched") and with one crop per forward ("1-by-1"); its timers split
  crops, network and decode.

Every timed figure is the median over ``repeats`` calls, after ``warmup`` untimed calls for each
input shape the run has not seen yet (the bottom-up input and the one-crop batch have the same
shape at every point; the batch of N crops is new at each point). Random
weights are fine for timing (the forward pass does the same work whatever the weights), but a
random bottom-up model finds nobody, hence the default ground-truth boxes.

**Accuracy side by side.** Given a COCO-format annotation file, the codec oracle of each branch
(ground truth -> maps at model resolution -> decode: the AP a perfect network would get with
that branch's codec) and, with ``images`` and checkpoints, each model's COCO keypoint metrics
on the same images (top-down with the same box source).

The library logs and returns tables; ``openpose-lite bench`` prints them with the command line
that reproduces them (:meth:`BenchConfig.command_line`).

Shape legend: N people, K keypoints.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openpose_lite.config import CodecConfig, Config, TopDownConfig, build_bottomup_codec, build_topdown_codec
from openpose_lite.data.synthetic import SceneConfig, render_scene
from openpose_lite.evaluation import METRIC_NAMES, evaluate_keypoints, load_coco
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.io import atomic_write_path, write_text_atomic
from openpose_lite.images import read_image
from openpose_lite.inference.boxes import boxes_from_poses, gt_boxes, is_labelled_person
from openpose_lite.models.hrnet import INPUT_MULTIPLE as HRNET_INPUT_MULTIPLE
from openpose_lite.models.hrnet import STRIDE as HRNET_STRIDE
from openpose_lite.models.hrnet import build_hrnet
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf
from openpose_lite.devices import resolve_device
from openpose_lite.predictor import BottomUpPredictor, TopDownPredictor
from openpose_lite.structures import Poses

__all__ = [
    "ACCURACY_METRICS",
    "BOX_SOURCES",
    "AccuracyRow",
    "BenchConfig",
    "BenchResult",
    "SpeedRow",
    "accuracy_table",
    "boxes_from_poses",
    "markdown_report",
    "plot_speed",
    "run_bench",
    "speed_table",
    "write_outputs",
]

logger = logging.getLogger(__name__)

BOX_SOURCES: tuple[str, ...] = ("gt", "bottomup")
# The columns of the accuracy table (all ten metrics go to accuracy.csv).
ACCURACY_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR")

# Paper models (defaults when no checkpoint is given).
_PAPER_BU_WIDTH_MULT = 1.0
_PAPER_BU_STAGES = 6
_PAPER_HRNET_WIDTH = 32
_PAPER_TD_INPUT_HW = (256, 192)
# Padding of a box made from a bottom-up person's keypoints, per side, as a fraction of the
# keypoints' extent: keypoints sit inside the body (ankles above the soles, no head top), and
# the top-down predictor pads the box again (x1.25) to its crop aspect ratio.


# ------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class BenchConfig:
    """Everything a benchmark run depends on; ``openpose-lite bench`` options map one to one.

    Model options (``bu_width_mult``, ``bu_stages``, ``hrnet_width``, ``td_input_hw``) describe
    random-weight models and are ``None`` until resolved (paper models by default); a checkpoint
    brings its own model and codec, so they must stay ``None`` next to it. ``bu_input_size``
    (network input height) applies to both. ``device`` ``"auto"`` and ``threads`` 0 are
    resolved when the run starts (:attr:`BenchResult.config` holds the resolved values).
    ``flip`` turns the flip test on in the accuracy section only (timing is without flip).

    ``threads`` defaults to 1, not torch's one per core: on a CPU shared with other jobs, two
    threads of HRNet's many small convolutions spend most of their time waiting for each other
    (measured on the 2-core reference box under load: 13 s instead of 0.3 s for one crop), which
    makes timings neither fast nor repeatable. Use 0 (torch's default) on an idle machine.
    """

    people: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    image_hw: tuple[int, int] = (480, 640)
    repeats: int = 3
    warmup: int = 1
    decode_repeats: int = 20
    device: str = "auto"
    threads: int = 1
    seed: int = 0
    box_source: str = "gt"
    bu_width_mult: float | None = None
    bu_stages: int | None = None
    bu_input_size: int | None = None
    hrnet_width: int | None = None
    td_input_hw: tuple[int, int] | None = None
    bu_checkpoint: str | None = None
    td_checkpoint: str | None = None
    ann: str | None = None
    images: str | None = None
    flip: bool = False
    out_dir: str = "bench_out"

    def __post_init__(self) -> None:
        people = tuple(self.people)
        if not people or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in people):
            raise ValueError(f"people: expected one or more integers >= 1, got {self.people!r}")
        object.__setattr__(self, "people", tuple(int(n) for n in people))
        if len(self.image_hw) != 2 or min(self.image_hw) < 16:
            raise ValueError(f"image_hw (--size): expected (H, W), each at least 16, got {self.image_hw!r}")
        object.__setattr__(self, "image_hw", (int(self.image_hw[0]), int(self.image_hw[1])))
        for name, low in (("repeats", 1), ("warmup", 0), ("decode_repeats", 1), ("threads", 0), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if self.box_source not in BOX_SOURCES:
            raise ValueError(f"box_source: expected one of {BOX_SOURCES}, got {self.box_source!r}")
        if self.bu_width_mult is not None and not (math.isfinite(self.bu_width_mult) and self.bu_width_mult > 0):
            raise ValueError(f"bu_width_mult: expected a number > 0, got {self.bu_width_mult!r}")
        if self.bu_stages is not None and self.bu_stages < 1:
            raise ValueError(f"bu_stages: expected an integer >= 1, got {self.bu_stages!r}")
        if self.bu_input_size is not None and (self.bu_input_size < 8 or self.bu_input_size % 8):
            raise ValueError(f"bu_input_size: expected a positive multiple of the stride 8, got {self.bu_input_size!r}")
        if self.hrnet_width is not None and self.hrnet_width < 1:
            raise ValueError(f"hrnet_width: expected an integer >= 1, got {self.hrnet_width!r}")
        if self.td_input_hw is not None:
            if len(self.td_input_hw) != 2 or any(v < HRNET_INPUT_MULTIPLE or v % HRNET_INPUT_MULTIPLE for v in self.td_input_hw):
                raise ValueError(f"td_input_hw: expected (H, W), positive multiples of {HRNET_INPUT_MULTIPLE} (HRNet), "
                                 f"got {self.td_input_hw!r}")
            object.__setattr__(self, "td_input_hw", (int(self.td_input_hw[0]), int(self.td_input_hw[1])))
        if self.bu_checkpoint is not None:
            given = [n for n in ("bu_width_mult", "bu_stages") if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: size a random-weight model; bu_checkpoint brings its own model")
        if self.td_checkpoint is not None:
            given = [n for n in ("hrnet_width", "td_input_hw") if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: size a random-weight model; td_checkpoint brings its own model and crop size")
        if self.images is not None and self.ann is None:
            raise ValueError("images: an image folder needs its annotation file (ann)")
        if self.images is not None and self.bu_checkpoint is None and self.td_checkpoint is None:
            raise ValueError("images: model accuracy needs bu_checkpoint and/or td_checkpoint (without them, ann alone gives the oracle rows)")
        if self.images is not None and self.td_checkpoint is not None and self.box_source == "bottomup" and self.bu_checkpoint is None:
            raise ValueError("box_source 'bottomup': top-down accuracy on bottom-up boxes needs bu_checkpoint "
                             "(a random-weight bottom-up model finds nobody)")
        if self.images is None and self.ann is not None and (self.bu_checkpoint or self.td_checkpoint):
            logger.info("no image folder given: the accuracy section holds the codec oracles only")

    def command_line(self) -> str:
        """``openpose-lite bench ...`` with every option of this config spelled out (None options left out)."""
        args: list[str] = ["openpose-lite", "bench", "--people", *(str(n) for n in self.people),
                           "--size", str(self.image_hw[0]), str(self.image_hw[1]),
                           "--repeats", str(self.repeats), "--warmup", str(self.warmup),
                           "--decode-repeats", str(self.decode_repeats),
                           "--device", self.device, "--threads", str(self.threads), "--seed", str(self.seed),
                           "--box-source", self.box_source]
        if self.bu_width_mult is not None:
            args += ["--bu-width-mult", repr(float(self.bu_width_mult))]
        if self.bu_stages is not None:
            args += ["--bu-stages", str(self.bu_stages)]
        if self.bu_input_size is not None:
            args += ["--bu-input-size", str(self.bu_input_size)]
        if self.hrnet_width is not None:
            args += ["--hrnet-width", str(self.hrnet_width)]
        if self.td_input_hw is not None:
            args += ["--td-input-hw", str(self.td_input_hw[0]), str(self.td_input_hw[1])]
        for option, value in (("--bu-checkpoint", self.bu_checkpoint), ("--td-checkpoint", self.td_checkpoint),
                              ("--ann", self.ann), ("--images", self.images)):
            if value is not None:
                args += [option, str(value)]
        if self.flip:
            args.append("--flip")
        args += ["--out", str(self.out_dir)]
        return " ".join(shlex.quote(a) for a in args)


# ------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class SpeedRow:
    """One point of the speed-vs-people curve; times in ms per image (medians).

    ``annotated``: people of the scene with a visible pixel (the drawn ones, minus any hidden
    entirely); ``bu_found_gt``: people the codec decodes from the ground-truth maps;
    ``td_boxes``: boxes the top-down branch crops.
    """

    people: int
    annotated: int
    bu_network_ms: float
    bu_decode_ms: float
    bu_total_ms: float
    bu_decode_gt_ms: float
    bu_found_gt: int
    td_box_source: str
    td_boxes: int
    td_box_ms: float
    td_crop_ms: float
    td_network_batched_ms: float
    td_decode_ms: float
    td_total_batched_ms: float
    td_network_single_ms: float
    td_total_single_ms: float


@dataclass(frozen=True)
class AccuracyRow:
    """COCO keypoint metrics of one model or codec oracle (``kind`` "model" or "oracle")."""

    name: str
    branch: str
    kind: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class BenchResult:
    """What :func:`run_bench` measured, with the resolved config that reproduces it."""

    config: BenchConfig
    speed: list[SpeedRow]
    accuracy: list[AccuracyRow]
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- helpers
def _median_ms(values: Sequence[float]) -> float:
    return 1e3 * float(np.median(values))


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class _Models:
    """The two predictors of a run and how to describe them."""

    bottomup: BottomUpPredictor
    topdown: TopDownPredictor
    bu_name: str
    td_name: str
    bu_random: bool
    td_random: bool


def _build_models(cfg: BenchConfig, device: torch.device) -> tuple[_Models, BenchConfig]:
    """Predictors for the run (checkpoints, or seeded random paper-size models) and the config resolved by them."""
    if cfg.bu_checkpoint is not None:
        bottomup = BottomUpPredictor.from_checkpoint(cfg.bu_checkpoint, device=device, input_size=cfg.bu_input_size)
        model = bottomup.model
        if not isinstance(model, VGG19PafNet):
            raise ValueError(f"bu_checkpoint: {cfg.bu_checkpoint} holds a {type(model).__name__}, not a bottom-up VGG19PafNet")
        bu_name = f"{Path(cfg.bu_checkpoint).name}: VGG19PafNet {getattr(model, 'num_stages', '?')} stages, " \
                  f"width x{getattr(model, 'width_mult', float('nan')):g}"
    else:
        width_mult = _PAPER_BU_WIDTH_MULT if cfg.bu_width_mult is None else float(cfg.bu_width_mult)
        stages = _PAPER_BU_STAGES if cfg.bu_stages is None else int(cfg.bu_stages)
        cfg = dataclasses.replace(cfg, bu_width_mult=width_mult, bu_stages=stages)
        torch.manual_seed(cfg.seed)  # the random weights reproduce, whatever ran before
        model = build_vgg19_paf(num_stages=stages, width_mult=width_mult)
        codec_cfg = CodecConfig() if cfg.bu_input_size is None else CodecConfig(input_size=cfg.bu_input_size)
        codec = build_bottomup_codec(Config(codec=codec_cfg), skeleton=model.skeleton)
        bottomup = BottomUpPredictor(model, codec, input_size=codec_cfg.input_size, device=device)
        bu_name = f"VGG19PafNet {stages} stages, width x{width_mult:g}, random weights"
    cfg = dataclasses.replace(cfg, bu_input_size=bottomup.input_size)
    bu_name += f", {_params(bottomup.model) / 1e6:.1f} M parameters, input height {bottomup.input_size}"

    if cfg.td_checkpoint is not None:
        topdown = TopDownPredictor.from_weights(cfg.td_checkpoint, device=device)
        td_model = topdown.model
        h, w = topdown.codec.input_hw
        td_name = f"{Path(cfg.td_checkpoint).name}: HRNet-W{getattr(td_model, 'width', '?')} {h}x{w}"
    else:
        width = _PAPER_HRNET_WIDTH if cfg.hrnet_width is None else int(cfg.hrnet_width)
        input_hw = _PAPER_TD_INPUT_HW if cfg.td_input_hw is None else tuple(cfg.td_input_hw)
        cfg = dataclasses.replace(cfg, hrnet_width=width, td_input_hw=input_hw)
        torch.manual_seed(cfg.seed + 1)
        td_model = build_hrnet(width=width)
        td_cfg = TopDownConfig(input_hw=input_hw, heatmap_hw=(input_hw[0] // HRNET_STRIDE, input_hw[1] // HRNET_STRIDE))
        topdown = TopDownPredictor(td_model, build_topdown_codec(Config(topdown=td_cfg)), device=device)
        td_name = f"HRNet-W{width} {input_hw[0]}x{input_hw[1]}, random weights"
    td_name += f", {_params(topdown.model) / 1e6:.1f} M parameters"
    models = _Models(bottomup, topdown, bu_name, td_name, cfg.bu_checkpoint is None, cfg.td_checkpoint is None)
    return models, cfg


def _topdown_with_batch(template: TopDownPredictor, batch_size: int, flip: bool = False) -> TopDownPredictor:
    """The same model and codec with another crop batch size (and flip setting)."""
    return TopDownPredictor(template.model, template.codec, flip=flip, device=template.device, half=template.half, batch_size=max(1, batch_size),
                            padding=template.padding, oks_threshold=template.oks_threshold)


def _bottomup_call(predictor: BottomUpPredictor, image: np.ndarray) -> tuple[Poses, dict[str, float]]:
    poses = predictor.predict_batch([image])[0]
    return poses, dict(predictor.timings)


def _topdown_call(predictor: TopDownPredictor, image: np.ndarray, boxes: np.ndarray,
                  scores: np.ndarray) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    predictor.predict(image, boxes, scores)
    return time.perf_counter() - t0, dict(predictor.timings)


def _gt_decode(predictor: BottomUpPredictor, image_hw: tuple[int, int], keypoints: np.ndarray,
               repeats: int) -> tuple[float, int]:
    """Median seconds of decode_maps on the codec's encoding of ``keypoints`` (N, K, 3), and the people decoded."""
    matrix, input_hw = letterbox_affine(image_hw, predictor.input_size, predictor.codec.stride)
    targets, _ = predictor.codec.encode(transform_keypoints(matrix, keypoints), input_hw)
    maps = {"heatmaps": targets["heatmaps"], "pafs": targets["pafs"], "matrix": matrix}
    found = len(predictor.decode_maps(maps))  # warm-up: numba compiles or loads its cache here
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.decode_maps(maps)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), found


def _speed_point(cfg: BenchConfig, models: _Models, people: int, warmed: set) -> SpeedRow:
    """Time both branches on one generated scene with ``people`` people drawn.

    ``warmed`` holds the input shapes already warmed up in this run; this call adds its own.
    """
    scene = render_scene(np.random.default_rng([cfg.seed, people]), SceneConfig(image_hw=cfg.image_hw), num_people=people)
    image = scene.image
    gt_boxes, gt_scores = scene.boxes.astype(np.float64), np.ones(len(scene.boxes))

    def boxes_for(bu_poses: Poses | None) -> tuple[np.ndarray, np.ndarray]:
        return (gt_boxes, gt_scores) if cfg.box_source == "gt" else boxes_from_poses(bu_poses)

    # Warm-up once per new input shape: oneDNN primitives and allocator blocks are cached per
    # shape (and numba compiles once), so a shape seen before needs none. The bottom-up input
    # is the same at every point; the top-down batch is N crops (batched) or 1 (1-by-1).
    # Bottom-up boxes need one bottom-up call at each point anyway.
    bu_poses = None
    if "bottomup" not in warmed or cfg.box_source == "bottomup":
        for _ in range(max(cfg.warmup, int(cfg.box_source == "bottomup"))):
            bu_poses, _ = _bottomup_call(models.bottomup, image)
        warmed.add("bottomup")
    boxes, scores = boxes_for(bu_poses)
    for batch in sorted({len(boxes), 1}):
        if batch <= len(boxes) and ("topdown", batch) not in warmed:
            for _ in range(cfg.warmup):
                _topdown_call(_topdown_with_batch(models.topdown, batch), image, boxes[:batch], scores[:batch])
            warmed.add(("topdown", batch))

    samples: dict[str, list[float]] = {k: [] for k in (
        "bu_network", "bu_decode", "bu_total", "td_box", "td_crop", "td_network_batched", "td_decode",
        "td_total_batched", "td_network_single", "td_total_single")}
    num_boxes = 0
    for _ in range(cfg.repeats):
        bu_poses, bu = _bottomup_call(models.bottomup, image)
        bu_total = sum(bu.values())
        samples["bu_network"].append(bu["network"])
        samples["bu_decode"].append(bu["decode"])
        samples["bu_total"].append(bu_total)
        boxes, scores = boxes_for(bu_poses)
        num_boxes = len(boxes)
        # Ground-truth boxes cost nothing; bottom-up boxes cost the whole bottom-up call.
        box_seconds = 0.0 if cfg.box_source == "gt" else bu_total
        wall, td = _topdown_call(_topdown_with_batch(models.topdown, len(boxes)), image, boxes, scores)
        samples["td_box"].append(box_seconds)
        samples["td_crop"].append(td["crop"])
        samples["td_network_batched"].append(td["network"])
        samples["td_decode"].append(td["decode"])
        samples["td_total_batched"].append(box_seconds + wall)
        wall, td = _topdown_call(_topdown_with_batch(models.topdown, 1), image, boxes, scores)
        samples["td_network_single"].append(td["network"])
        samples["td_total_single"].append(box_seconds + wall)

    gt_decode, found = _gt_decode(models.bottomup, cfg.image_hw, scene.keypoints, cfg.decode_repeats)
    row = SpeedRow(
        people=people,
        annotated=len(scene.keypoints),
        bu_network_ms=_median_ms(samples["bu_network"]),
        bu_decode_ms=_median_ms(samples["bu_decode"]),
        bu_total_ms=_median_ms(samples["bu_total"]),
        bu_decode_gt_ms=1e3 * gt_decode,
        bu_found_gt=found,
        td_box_source=cfg.box_source,
        td_boxes=num_boxes,
        td_box_ms=_median_ms(samples["td_box"]),
        td_crop_ms=_median_ms(samples["td_crop"]),
        td_network_batched_ms=_median_ms(samples["td_network_batched"]),
        td_decode_ms=_median_ms(samples["td_decode"]),
        td_total_batched_ms=_median_ms(samples["td_total_batched"]),
        td_network_single_ms=_median_ms(samples["td_network_single"]),
        td_total_single_ms=_median_ms(samples["td_total_single"]),
    )
    logger.info("bench: %d people: bottom-up network %.0f ms, top-down batched %.0f ms, 1-by-1 %.0f ms",
                people, row.bu_network_ms, row.td_total_batched_ms, row.td_total_single_ms)
    return row


# ---------------------------------------------------------------------------------- accuracy
def _gt_boxes(coco, image_id: int, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth person boxes (x, y, w, h) of one image: its labelled people (inference.boxes)."""
    info = coco.imgs[image_id]
    people = [a for a in coco.imgToAnns.get(image_id, []) if is_labelled_person(a)]
    return gt_boxes(people, (info["height"], info["width"]), convention)


def _accuracy(cfg: BenchConfig, models: _Models, device: torch.device) -> list[AccuracyRow]:
    """Model rows (with images and checkpoints) and the two codec-oracle rows, on ``cfg.ann``."""
    from openpose_lite.oracle import bottomup_oracle_results, topdown_oracle_results

    if cfg.ann is None:
        raise ValueError("ann: the accuracy section needs a COCO-format annotation file")
    coco = load_coco(cfg.ann)
    image_ids = sorted(coco.getImgIds())
    rows: list[AccuracyRow] = []
    box_label = "GT boxes" if cfg.box_source == "gt" else "bottom-up boxes"
    if cfg.images is not None:
        images_dir = Path(cfg.images)
        if not images_dir.is_dir():
            raise ValueError(f"images: folder not found: {images_dir}")
        bottomup = None
        if cfg.bu_checkpoint is not None:
            bottomup = BottomUpPredictor(models.bottomup.model, models.bottomup.codec, input_size=models.bottomup.input_size,
                                         flip=cfg.flip, device=device)
        topdown = _topdown_with_batch(models.topdown, 32, flip=cfg.flip) if cfg.td_checkpoint is not None else None
        bu_results: list[dict] = []
        td_results: list[dict] = []
        for image_id in image_ids:
            info = coco.imgs[image_id]
            image = read_image(images_dir / info["file_name"], (info["height"], info["width"]))
            bu_poses = None
            if bottomup is not None:
                bu_poses = bottomup(image)
                bu_results.extend(bu_poses.to_coco(image_id))
            if topdown is not None:
                boxes, scores = (_gt_boxes(coco, image_id, topdown.codec.convention) if cfg.box_source == "gt"
                                 else boxes_from_poses(bu_poses))
                td_results.extend(topdown.predict(image, boxes, scores).to_coco(image_id))
        flip_label = ", flip" if cfg.flip else ""
        if bottomup is not None:
            rows.append(AccuracyRow(f"bottom-up model ({Path(cfg.bu_checkpoint).name}, input {bottomup.input_size}{flip_label})",
                                    "bottomup", "model", evaluate_keypoints(coco, bu_results)))
        if topdown is not None:
            h, w = topdown.codec.input_hw
            rows.append(AccuracyRow(f"top-down model ({Path(cfg.td_checkpoint).name}, {h}x{w}, {box_label}{flip_label})",
                                    "topdown", "model", evaluate_keypoints(coco, td_results)))

    # The oracles decode with exactly the codec each branch's predictor uses.
    bu_codec = models.bottomup.codec
    results = bottomup_oracle_results(cfg.ann, bu_codec, models.bottomup.input_size)
    rows.append(AccuracyRow(f"bottom-up codec oracle (input {models.bottomup.input_size}, refine {bu_codec.refine})",
                            "bottomup", "oracle", evaluate_keypoints(coco, results)))
    td_codec = models.topdown.codec
    results = topdown_oracle_results(cfg.ann, td_codec, padding=models.topdown.padding)
    h, w = td_codec.input_hw
    rows.append(AccuracyRow(f"top-down codec oracle ({h}x{w}, refine {td_codec.refine}, GT boxes)",
                            "topdown", "oracle", evaluate_keypoints(coco, results)))
    return rows


# --------------------------------------------------------------------------------------- run
def run_bench(config: BenchConfig) -> BenchResult:
    """Run the speed-vs-people benchmark and, when ``config.ann`` is given, the accuracy section.

    Returns the rows and the resolved config (device, threads, model sizes and input sizes
    filled in), whose :meth:`BenchConfig.command_line` reproduces the run. torch's thread count
    is restored afterwards.
    """
    for name in ("bu_checkpoint", "td_checkpoint", "ann"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: file not found: {path}")
    device = resolve_device(config.device)
    previous_threads = torch.get_num_threads()
    threads = config.threads or previous_threads
    cfg = dataclasses.replace(config, device=str(device), threads=threads)
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    try:
        models, cfg = _build_models(cfg, device)
        if cfg.box_source == "bottomup" and models.bu_random:
            logger.warning("box_source 'bottomup' with a random-weight bottom-up model: it finds nobody, "
                           "so the top-down branch gets no boxes; use box_source 'gt' for timing random models")
        started = time.perf_counter()
        warmed: set = set()
        speed = [_speed_point(cfg, models, n, warmed) for n in cfg.people]
        speed_seconds = time.perf_counter() - started
        accuracy = _accuracy(cfg, models, device) if cfg.ann is not None else []
    finally:
        torch.set_num_threads(previous_threads)
    info = {
        "bottomup": models.bu_name,
        "topdown": models.td_name,
        "device": str(device),
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "map_hw": models.bottomup.codec.map_hw(letterbox_affine(cfg.image_hw, models.bottomup.input_size,
                                                                models.bottomup.codec.stride)[1]),
        "random_weights": models.bu_random or models.td_random,
        "load_average": (load_before, os.getloadavg()[0]),
        "speed_seconds": speed_seconds,
    }
    return BenchResult(config=cfg, speed=speed, accuracy=accuracy, info=info)


# ------------------------------------------------------------------------------------ output
_SPEED_HEADERS: tuple[tuple[str, str, str], ...] = (
    # (SpeedRow field, table header, number format)
    ("people", "people", "d"),
    ("annotated", "annotated", "d"),
    ("bu_network_ms", "BU network", ".0f"),
    ("bu_decode_ms", "BU decode", ".2f"),
    ("bu_decode_gt_ms", "BU decode (GT maps)", ".2f"),
    ("bu_found_gt", "found (GT maps)", "d"),
    ("bu_total_ms", "BU total", ".0f"),
    ("td_boxes", "TD boxes", "d"),
    ("td_box_ms", "TD box source", ".0f"),
    ("td_crop_ms", "TD crops", ".1f"),
    ("td_network_batched_ms", "TD network batched", ".0f"),
    ("td_decode_ms", "TD decode", ".1f"),
    ("td_total_batched_ms", "TD total batched", ".0f"),
    ("td_network_single_ms", "TD network 1-by-1", ".0f"),
    ("td_total_single_ms", "TD total 1-by-1", ".0f"),
)


def _speed_caption(result: BenchResult) -> str:
    cfg, info = result.config, result.info
    h, w = cfg.image_hw
    if cfg.box_source == "gt":
        boxes = "ground-truth boxes of the scene (no cost"
        boxes += "; a random-weight bottom-up model finds nobody, so GT boxes stand in for a detector)" \
            if cfg.bu_checkpoint is None else ")"
    else:
        boxes = "boxes from the bottom-up people (keypoint extent padded 10% a side; cost = the bottom-up total)"
    map_h, map_w = info["map_hw"]
    return (f"Speed vs people: one generated {h}x{w} scene per point (seed {cfg.seed}), batch of one image, "
            f"device {info['device']}, {info['threads']} torch thread{'s' if info['threads'] != 1 else ''} on {info['cpu_count']} cores; ms per image, "
            f"median of {cfg.repeats} after {cfg.warmup} warm-up call(s) per new input shape. Bottom-up: {info['bottomup']} (maps {map_h}x{map_w}), "
            f"one scale, no flip; 'BU decode' decodes the network's maps, 'BU decode (GT maps)' the codec's encoding "
            f"of the scene's ground truth (median of {cfg.decode_repeats}). Top-down: {info['topdown']}, no flip, "
            f"{boxes}; 'batched' = all crops in one forward, '1-by-1' = one crop per forward. "
            f"Load average {info['load_average'][0]:.1f} before, {info['load_average'][1]:.1f} after.")


def speed_table(result: BenchResult) -> str:
    """The speed-vs-people rows as a markdown table (no caption)."""
    header = "| " + " | ".join(h for _, h, _ in _SPEED_HEADERS) + " |"
    rule = "|" + "|".join("---:" for _ in _SPEED_HEADERS) + "|"
    lines = [header, rule]
    for row in result.speed:
        lines.append("| " + " | ".join(format(getattr(row, f), fmt) for f, _, fmt in _SPEED_HEADERS) + " |")
    return "\n".join(lines)


def _metric(value: float) -> str:
    return "n/a" if value < 0 else f"{value:.3f}"  # pycocotools' -1: nothing to measure


def accuracy_table(result: BenchResult) -> str | None:
    """The accuracy rows as a markdown table, or None when the run had no annotation file."""
    if not result.accuracy:
        return None
    lines = ["| | " + " | ".join(ACCURACY_METRICS) + " |", "|---|" + "|".join("---:" for _ in ACCURACY_METRICS) + "|"]
    for row in result.accuracy:
        lines.append(f"| {row.name} | " + " | ".join(_metric(row.metrics[m]) for m in ACCURACY_METRICS) + " |")
    return "\n".join(lines)


def markdown_report(result: BenchResult) -> str:
    """Captions, tables and the reproducing command, as written to ``table.md``."""
    parts = [_speed_caption(result), "", speed_table(result)]
    table = accuracy_table(result)
    if table is not None:
        images = f"{result.config.images}" if result.config.images else "no images given: oracles only"
        parts += ["", f"Accuracy on {result.config.ann} ({images}), COCO keypoint metrics (pycocotools):", "", table]
    parts += ["", "Reproduce with:", "", "```", result.config.command_line(), "```", ""]
    return "\n".join(parts)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def plot_speed(result: BenchResult, path: str | Path) -> Path | None:
    """Runtime vs people (x: people, log2; y: ms, log) as a PNG; None, with a warning, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: %s not written (pip install 'openpose-lite[plot]')", path)
        return None
    rows = result.speed
    people = [r.people for r in rows]
    lines = [
        ("BU network", [r.bu_network_ms for r in rows], "tab:blue", "-", "o"),
        ("BU decode (GT maps)", [r.bu_decode_gt_ms for r in rows], "tab:blue", ":", "s"),
        ("TD total, batched", [r.td_total_batched_ms for r in rows], "tab:red", "-", "o"),
        ("TD total, 1-by-1", [r.td_total_single_ms for r in rows], "tab:orange", "-", "^"),
        ("TD network, batched", [r.td_network_batched_ms for r in rows], "tab:red", "--", "v"),
        ("TD crops + decode", [r.td_crop_ms + r.td_decode_ms for r in rows], "tab:red", ":", "s"),
    ]
    if result.config.box_source != "gt":
        lines.append(("TD box source (bottom-up)", [r.td_box_ms for r in rows], "tab:purple", "-.", "d"))
    fig, ax = plt.subplots(figsize=(9.0, 5.0), dpi=110)
    try:
        for label, values, colour, style, marker in lines:
            # A log axis cannot show 0 (a top-down branch without boxes): leave such points out.
            xs = [x for x, v in zip(people, values) if v > 0]
            ys = [v for v in values if v > 0]
            if ys:
                ax.plot(xs, ys, color=colour, linestyle=style, marker=marker, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(people)
        ax.set_xticklabels([str(p) for p in people])
        ax.set_xlabel("people in the image")
        ax.set_ylabel("ms per image")
        h, w = result.config.image_hw
        threads = result.info["threads"]
        ax.set_title(f"Top-down vs bottom-up, {h}x{w}, {result.info['device']}, {threads} thread{'s' if threads != 1 else ''}"
                     + (" (random weights)" if result.info.get("random_weights") else ""), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        # Outside the axes: the curves cross the middle of the plot.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        fig.tight_layout()
        return atomic_write_path(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def write_outputs(result: BenchResult, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write speed.csv, accuracy.csv (when measured), table.md and speed.png (with matplotlib), atomically.

    Returns the written paths by name ("speed_csv", "accuracy_csv", "table", "plot").
    """
    out = Path(result.config.out_dir if out_dir is None else out_dir)
    written: dict[str, Path] = {}
    names = [f.name for f in dataclasses.fields(SpeedRow)]
    written["speed_csv"] = write_text_atomic(
        out / "speed.csv",
        _csv_text(names, [[_csv_value(getattr(r, n)) for n in names] for r in result.speed]))
    if result.accuracy:
        written["accuracy_csv"] = write_text_atomic(
            out / "accuracy.csv",
            _csv_text(["name", "branch", "kind", *METRIC_NAMES],
                      [[r.name, r.branch, r.kind, *(f"{r.metrics[m]:.6f}" for m in METRIC_NAMES)] for r in result.accuracy]))
    written["table"] = write_text_atomic(out / "table.md", markdown_report(result))
    plot = plot_speed(result, out / "speed.png")
    if plot is not None:
        written["plot"] = plot
    return written


def _csv_value(value: Any) -> Any:
    return f"{value:.4f}" if isinstance(value, float) else value
