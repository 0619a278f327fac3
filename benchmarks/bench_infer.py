"""Bottom-up inference speed: time per image split into preprocess / network / postprocess / decode.

The predictor's own phase timers (``BottomUpPredictor.timings``) split each call, so the numbers
are those of the code users run. The network is the paper-size OpenPose model (VGG19 trunk, 6
stages, 128 channels) with random weights: its speed does not depend on the weights.

A random network finds no people, so its decode time is close to zero. The ``decode, GT maps``
row therefore also times the decoder on realistic maps: the codec's encoding of a generated scene
with ``--people`` people, letterboxed exactly as the predictor letterboxes the image.

Phases (ms per image): preprocess = letterbox + normalisation + copy to the device; network = the
forward passes; postprocess = un-mirroring, resampling scales to the scale-1 map grid, averaging,
copy back; decode = peaks, PAF line integrals, grouping and the mapping back to image pixels.

Every configuration (a table row: :class:`Variant`) is warmed up once, then the configurations
are timed interleaved, one call of each per round, so a change of machine load hits all rows alike.
A new setting to compare (e.g. a precision) is one more :class:`Variant` field, one more entry in
:data:`COLUMNS` and one more option.

Run (``--width-mult 0.25 --stages 2`` gives a small model for a quick check):

    python benchmarks/bench_infer.py [--size 480 640] [--multi-scales 1.0 0.75 0.5 0.25] [--batch-sizes 1 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from openpose_lite.bench.speed import gt_decode
from openpose_lite.config import CodecConfig, build_bottomup_codec
from openpose_lite.data.synthetic import SceneConfig, generate_scene
from openpose_lite.geometry import letterbox_affine
from openpose_lite.models.factory import PAPER, build_model
from openpose_lite.predictor import PHASES, BottomUpPredictor


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="image size")
    parser.add_argument("--input-size", type=int, default=CodecConfig().input_size, help="network input height at scale 1")
    parser.add_argument("--multi-scales", type=float, nargs="+", default=(1.0, 0.75, 0.5, 0.25),
                        help="the multi-scale list (OpenPose's 4 scales, 0.25 apart)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=(1, 8))
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per configuration (after one warm-up call)")
    parser.add_argument("--flip", action="store_true", help="flip test on (doubles the network work)")
    parser.add_argument("--width-mult", type=float, default=PAPER.width_mult,
                        help="trunk width multiplier (default: the paper's model)")
    parser.add_argument("--stages", type=int, default=PAPER.num_stages, help="number of stages (default: the paper's model)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: one per core)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--people", type=int, default=5, help="people in the scene of the GT-maps decode timing")
    parser.add_argument("--seed", type=int, default=0)
    return parser


@dataclass(frozen=True)
class Variant:
    """One timed configuration of the predictor: one row of the table."""

    scales: tuple[float, ...]
    batch: int

    @property
    def scales_label(self) -> str:
        return " ".join(f"{s:g}" for s in self.scales)


def variants(args: argparse.Namespace) -> list[Variant]:
    """The rows, in table order: scale 1, then the multi-scale list, each at every batch size."""
    return [Variant(scales, batch) for scales in ((1.0,), tuple(args.multi_scales)) for batch in args.batch_sizes]


def build_predictor(model: torch.nn.Module, args: argparse.Namespace, variant: Variant) -> BottomUpPredictor:
    """The predictor of one row (all rows share the model)."""
    return BottomUpPredictor(model, build_bottomup_codec(), input_size=args.input_size, scales=variant.scales,
                             flip=args.flip, device=args.device, half=args.half)


# (header, cell of a row from its variant and its per-image seconds): the table, column by column.
Row = dict[str, float]
COLUMNS: tuple[tuple[str, Callable[[Variant, Row], str]], ...] = (
    ("scales", lambda v, r: v.scales_label),
    ("batch", lambda v, r: str(v.batch)),
    ("preprocess", lambda v, r: f"{1e3 * r['preprocess']:.1f}"),
    ("network", lambda v, r: f"{1e3 * r['network']:.0f}"),
    ("postprocess", lambda v, r: f"{1e3 * r['postprocess']:.1f}"),
    ("decode", lambda v, r: f"{1e3 * r['decode']:.1f}"),
    ("total", lambda v, r: f"{1e3 * r['total']:.0f}"),
    ("images/s", lambda v, r: f"{r['images_per_s']:.2f}"),
    ("not network", lambda v, r: f"{100 * (r['preprocess'] + r['postprocess'] + r['decode']) / r['network']:.1f}%"),
)


def _scenes(count: int, image_hw: tuple[int, int], seed: int) -> list[np.ndarray]:
    cfg = SceneConfig(image_hw=image_hw)
    return [generate_scene(np.random.default_rng([seed, i]), cfg)[0] for i in range(count)]


def time_variants(predictors: dict[Variant, BottomUpPredictor], images: list[np.ndarray], repeats: int) -> dict[Variant, Row]:
    """Per-image seconds of each phase, the total and images per second of every variant.

    Each variant is warmed up with one call on its own batch (allocator, oneDNN primitives,
    numba), then the variants are timed interleaved: ``repeats`` rounds of one call each.
    """
    for variant, predictor in predictors.items():
        predictor.predict_batch(images[: variant.batch])
    sums = {v: {**{phase: 0.0 for phase in PHASES}, "wall": 0.0} for v in predictors}
    for round_ in range(repeats):
        for variant, predictor in predictors.items():
            print(f"round {round_ + 1}/{repeats}: scales {variant.scales_label}, batch {variant.batch} ...",
                  file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            predictor.predict_batch(images[: variant.batch])
            sums[variant]["wall"] += time.perf_counter() - t0
            for phase in PHASES:
                sums[variant][phase] += predictor.timings[phase]
    out = {}
    for variant, total in sums.items():
        count = repeats * variant.batch
        out[variant] = {**{phase: total[phase] / count for phase in PHASES},
                        "total": total["wall"] / count, "images_per_s": count / total["wall"]}
    return out


def print_table(rows: dict[Variant, Row]) -> None:
    print("| " + " | ".join(header for header, _ in COLUMNS) + " |")
    print("|---|" + "|".join("---:" for _ in COLUMNS[1:]) + "|")
    for variant, row in rows.items():
        print("| " + " | ".join(cell(variant, row) for _, cell in COLUMNS) + " |")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    image_hw = (int(args.size[0]), int(args.size[1]))
    model = build_model(dataclasses.replace(PAPER, num_stages=args.stages, width_mult=args.width_mult)).eval()
    params = sum(p.numel() for p in model.parameters())
    images = _scenes(max(args.batch_sizes), image_hw, args.seed)
    predictors = {variant: build_predictor(model, args, variant) for variant in variants(args)}
    rows = time_variants(predictors, images, args.repeats)

    # Realistic maps: the codec's encoding of a scene's ground truth (decode_maps ignores scales and flip).
    single_variant = Variant((1.0,), min(args.batch_sizes))
    reference, single = predictors[single_variant], rows[single_variant]
    _, keypoints, _ = generate_scene(np.random.default_rng([args.seed, 10_000]), SceneConfig(image_hw=image_hw),
                                     num_people=args.people)
    gt_seconds, gt_found = gt_decode(reference, image_hw, keypoints, repeats=20)

    cpu = platform.processor() or platform.machine()
    paper = args.width_mult == PAPER.width_mult and args.stages == PAPER.num_stages
    model_name = "paper-size model" if paper else f"width_mult {args.width_mult:g}, {args.stages} stages"
    map_h, map_w = reference.codec.map_hw(letterbox_affine(image_hw, args.input_size, reference.codec.stride)[1])
    print(f"Bottom-up inference, {image_hw[0]}x{image_hw[1]} images, input height {args.input_size} "
          f"(map {map_h}x{map_w} at scale 1), {model_name} ({params / 1e6:.1f} M parameters, random weights), "
          f"flip {'on' if args.flip else 'off'}, device {reference.device}, {threads} torch threads on {os.cpu_count()} "
          f"cores ({cpu}); mean of {args.repeats} calls after a warm-up, configurations interleaved, ms per image; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print_table(rows)
    print()
    other = single["preprocess"] + single["postprocess"] + gt_seconds
    print(f"Decode of ground-truth maps of a {image_hw[0]}x{image_hw[1]} scene with {args.people} people "
          f"({gt_found} decoded): {1e3 * gt_seconds:.1f} ms. Scale 1.0, batch {min(args.batch_sizes)}: preprocess + "
          f"postprocess + that decode = {1e3 * other:.1f} ms = {100 * other / single['network']:.1f}% of the network time.")
    print()
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
