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

Run (``--width-mult 0.25 --stages 2`` gives a small model for a quick check):

    python benchmarks/bench_infer.py [--size 480 640] [--multi-scales 1.0 0.75 0.5 0.25] [--batch-sizes 1 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time

import numpy as np
import torch

from openpose_lite.config import CodecConfig, build_bottomup_codec
from openpose_lite.data.synthetic import SceneConfig, generate_scene
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.predictor import PHASES, BottomUpPredictor


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="image size")
    parser.add_argument("--input-size", type=int, default=368, help="network input height at scale 1")
    parser.add_argument("--multi-scales", type=float, nargs="+", default=(1.0, 0.75, 0.5, 0.25),
                        help="the multi-scale list (OpenPose's 4 scales, 0.25 apart)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=(1, 8))
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per configuration (after one warm-up call)")
    parser.add_argument("--flip", action="store_true", help="flip test on (doubles the network work)")
    parser.add_argument("--width-mult", type=float, default=1.0, help="trunk width multiplier (1.0: the paper's model)")
    parser.add_argument("--stages", type=int, default=6, help="number of stages (6: the paper's model)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: one per core)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--people", type=int, default=5, help="people in the scene of the GT-maps decode timing")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _scenes(count: int, image_hw: tuple[int, int], seed: int) -> list[np.ndarray]:
    cfg = SceneConfig(image_hw=image_hw)
    return [generate_scene(np.random.default_rng([seed, i]), cfg)[0] for i in range(count)]


def time_configuration(predictor: BottomUpPredictor, images: list[np.ndarray], repeats: int) -> dict[str, float]:
    """Per-image seconds of each phase and images per second over ``repeats`` calls of predict_batch."""
    totals = {phase: 0.0 for phase in PHASES}
    start = time.perf_counter()
    for _ in range(repeats):
        predictor.predict_batch(images)
        for phase in PHASES:
            totals[phase] += predictor.timings[phase]
    wall = time.perf_counter() - start
    count = repeats * len(images)
    out = {phase: totals[phase] / count for phase in PHASES}
    out["total"] = wall / count
    out["images_per_s"] = count / wall
    return out


def gt_decode_seconds(predictor: BottomUpPredictor, image_hw: tuple[int, int], people: int, seed: int,
                      repeats: int = 20) -> tuple[float, int, tuple[int, int]]:
    """Median seconds of decode_maps on the codec's ground-truth maps of a generated scene (and people found, map size)."""
    _, keypoints, _ = generate_scene(np.random.default_rng([seed, 10_000]), SceneConfig(image_hw=image_hw), num_people=people)
    matrix, input_hw = letterbox_affine(image_hw, predictor.input_size, predictor.codec.stride)
    targets, _ = predictor.codec.encode(transform_keypoints(matrix, keypoints), input_hw)
    maps = {**targets, "matrix": matrix}
    found = len(predictor.decode_maps(maps))  # warm-up (numba compiles or loads its cache here)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.decode_maps(maps)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), found, targets["heatmaps"].shape[1:]


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    image_hw = (int(args.size[0]), int(args.size[1]))
    model = build_vgg19_paf(num_stages=args.stages, width_mult=args.width_mult).eval()
    params = sum(p.numel() for p in model.parameters())
    codec = build_bottomup_codec(CodecConfig())
    images = _scenes(max(args.batch_sizes), image_hw, args.seed)
    configurations = [("1", (1.0,)), (" ".join(f"{s:g}" for s in args.multi_scales), tuple(args.multi_scales))]

    rows = []
    for label, scales in configurations:
        predictor = BottomUpPredictor(model, codec, input_size=args.input_size, scales=scales, flip=args.flip,
                                      device=args.device, half=args.half)
        predictor.predict_batch(images[:1])  # warm-up: allocator, oneDNN primitives, numba
        for batch in args.batch_sizes:
            print(f"timing scales {label}, batch {batch} ...", file=sys.stderr, flush=True)
            rows.append({"scales": label, "batch": batch, **time_configuration(predictor, images[:batch], args.repeats)})

    reference = BottomUpPredictor(model, codec, input_size=args.input_size, device=args.device, half=args.half)
    gt_decode, gt_found, map_hw = gt_decode_seconds(reference, image_hw, args.people, args.seed)
    single = next(r for r in rows if r["scales"] == "1" and r["batch"] == min(args.batch_sizes))

    device = predictor.device
    cpu = platform.processor() or platform.machine()
    model_name = "paper-size model" if args.width_mult == 1.0 and args.stages == 6 else f"width_mult {args.width_mult:g}, {args.stages} stages"
    print(f"Bottom-up inference, {image_hw[0]}x{image_hw[1]} images, input height {args.input_size} "
          f"(map {map_hw[0]}x{map_hw[1]} at scale 1), {model_name} ({params / 1e6:.1f} M parameters, random weights), "
          f"flip {'on' if args.flip else 'off'}, device {device}, {threads} torch threads on {os.cpu_count()} cores ({cpu}); "
          f"mean of {args.repeats} calls after a warm-up, ms per image; load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| scales | batch | preprocess | network | postprocess | decode | total | images/s | not network |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        other = r["preprocess"] + r["postprocess"] + r["decode"]
        print(f"| {r['scales']} | {r['batch']} | {1e3 * r['preprocess']:.1f} | {1e3 * r['network']:.0f} | "
              f"{1e3 * r['postprocess']:.1f} | {1e3 * r['decode']:.1f} | {1e3 * r['total']:.0f} | "
              f"{r['images_per_s']:.2f} | {100 * other / r['network']:.1f}% |")
    print()
    other = single["preprocess"] + single["postprocess"] + gt_decode
    print(f"Decode of ground-truth maps of a {image_hw[0]}x{image_hw[1]} scene with {args.people} people "
          f"({gt_found} decoded): {1e3 * gt_decode:.1f} ms. Scale 1.0, batch {single['batch']}: preprocess + postprocess "
          f"+ that decode = {1e3 * other:.1f} ms = {100 * other / single['network']:.1f}% of the network time.")
    print()
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
