"""Bottom-up inference speed: time per image split into preprocess / network / postprocess / decode,
per architecture and precision; and folder throughput, step by step against pipelined.

The predictor's own phase timers (``BottomUpPredictor.timings``) split each call, so the numbers
are those of the code users run. The networks are the papers' (VGG19 trunk with 6 stages of 128
channels; Lightweight OpenPose: MobileNetV1 trunk, initial + 1 refinement stage) with random
weights, whose speed does not depend on the weights; ``--weights`` times a weight file instead
(any layout ``BottomUpPredictor.from_weights`` reads, e.g. CMU's body_pose_model.pth).

A random network finds no people, so its decode time is close to zero. The ``decode, GT maps``
line therefore also times the decoder on realistic maps: the codec's encoding of a generated scene
with ``--people`` people, letterboxed exactly as the predictor letterboxes the image.

Phases (ms per image): preprocess = letterbox + normalisation + copy to the device; network = the
forward passes; postprocess = un-mirroring, resampling scales to the scale-1 map grid, averaging,
copy back; decode = peaks, PAF line integrals, grouping and the mapping back to image pixels.

Every configuration (a table row: :class:`Variant`, an architecture x precision x scales x batch)
is warmed up once, then the configurations are timed interleaved, one call of each per round, so a
change of machine load hits all rows alike. A precision this device does not run natively is
listed as skipped with the reason (``openpose_lite.devices.resolve_precision``), not timed
emulated.

``--folder N`` adds the folder section: N generated images written as JPEG files, run through
:func:`~openpose_lite.inference.pipeline.run_sequential` (read, run, write one batch after
another) and :func:`~openpose_lite.inference.pipeline.run_pipelined` (what ``openpose-lite
infer`` runs), each writing OpenPose JSON per image, interleaved; images/s is set against
1 / (network seconds per image of the same run), the bound a pipeline can reach.

Run (``--width-mult 0.25 --stages 2`` gives a small model for a quick check):

    python benchmarks/bench_infer.py [--archs vgg19 mobilenet] [--precisions fp32 bf16] [--size 480 640]
        [--multi-scales 1.0 0.75 0.5 0.25] [--batch-sizes 1 8] [--folder 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from openpose_lite.bench.config import BOTTOMUP_ARCHS
from openpose_lite.bench.speed import gt_decode
from openpose_lite.config import CodecConfig, build_bottomup_codec
from openpose_lite.data.synthetic import SceneConfig, generate_scene
from openpose_lite.devices import THREADS_HELP, cpu_description, resolve_device, resolve_precision, set_threads
from openpose_lite.geometry import letterbox_affine
from openpose_lite.images import ImageReadError, read_image
from openpose_lite.inference import PHASES, BottomUpPredictor
from openpose_lite.inference.pipeline import run_pipelined, run_sequential
from openpose_lite.io import write_json_atomic
from openpose_lite.factory import ModelConfig, build_model
from openpose_lite.structures import Poses

# The FLOP count is quoted at the Lightweight OpenPose paper's input size (and the issue's).
FLOP_INPUT_HW = (368, 496)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", choices=BOTTOMUP_ARCHS, default=[BOTTOMUP_ARCHS[0]],
                        help=f"random-weight bottom-up architectures at their published sizes (default: {BOTTOMUP_ARCHS[0]})")
    parser.add_argument("--weights", type=Path, default=None,
                        help="time this weight file instead of random models (any layout from_weights reads)")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16", "auto"],
                        help="network precisions to compare; those this device does not run natively are skipped")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="image size")
    parser.add_argument("--input-size", type=int, default=CodecConfig().input_size, help="network input height at scale 1")
    parser.add_argument("--multi-scales", type=float, nargs="+", default=(1.0, 0.75, 0.5, 0.25),
                        help="the multi-scale list (OpenPose's 4 scales, 0.25 apart)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=(1, 8))
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per configuration (after one warm-up call)")
    parser.add_argument("--flip", action="store_true", help="flip test on in the multi-scale rows (doubles their network work)")
    parser.add_argument("--width-mult", type=float, default=None, help="trunk width multiplier (default: the paper's)")
    parser.add_argument("--stages", type=int, default=None, help="number of stages (default: the paper's)")
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--people", type=int, default=5, help="people in the scene of the GT-maps decode timing")
    parser.add_argument("--folder", type=int, default=0, metavar="N",
                        help="also time a folder of N generated images, step by step and pipelined (0: no)")
    parser.add_argument("--folder-batch", type=int, default=1, help="batch size of the folder runs")
    parser.add_argument("--folder-rounds", type=int, default=2, help="interleaved rounds of the two folder runs")
    parser.add_argument("--seed", type=int, default=0)
    return parser


@dataclass(frozen=True)
class Variant:
    """One timed configuration of the predictor: one row of the table."""

    arch: str
    precision: str
    scales: tuple[float, ...]
    batch: int
    flip: bool = False

    @property
    def scales_label(self) -> str:
        return " ".join(f"{s:g}" for s in self.scales) + (" + flip" if self.flip else "")


# (header, cell of a row from its variant and its per-image seconds): the table, column by column.
Row = dict[str, float]
COLUMNS: tuple[tuple[str, Callable[[Variant, Row], str]], ...] = (
    ("model", lambda v, r: v.arch),
    ("precision", lambda v, r: v.precision),
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


def build_networks(args: argparse.Namespace) -> dict[str, torch.nn.Module]:
    """name -> network (eval mode): the weight file's, or each architecture's paper-size random one."""
    if args.weights is not None:
        return {args.weights.name: BottomUpPredictor.from_weights(args.weights, device="cpu").model}
    networks = {}
    for arch in args.archs:
        paper = ModelConfig(arch=arch).settings
        cfg = ModelConfig(arch=arch, settings=dataclasses.replace(paper, num_stages=args.stages or paper.num_stages,
                                                                  width_mult=args.width_mult or paper.width_mult))
        torch.manual_seed(args.seed)
        networks[arch] = build_model(cfg).eval()
    return networks


def gflop(model: torch.nn.Module, input_hw: tuple[int, int] = FLOP_INPUT_HW) -> float:
    """GFLOP of one forward on a (1, 3, H, W) input (a multiply-add counts 2, as torch's counter does)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, *input_hw))
    return counter.get_total_flops() / 1e9


def precisions(args: argparse.Namespace, device: torch.device) -> tuple[list[str], list[str]]:
    """(the precisions to time, resolved; a note per skipped one)."""
    run, notes = [], []
    for name in args.precisions:
        try:
            resolved = resolve_precision(name, device)
        except ValueError as exc:
            notes.append(f"{name}: skipped, {exc}")
            continue
        if resolved not in run:
            run.append(resolved)
    return run, notes


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
            print(f"round {round_ + 1}/{repeats}: {variant.arch} {variant.precision}, scales {variant.scales_label}, "
                  f"batch {variant.batch} ...", file=sys.stderr, flush=True)
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
    print("|---|" + "|".join("---:" if header not in ("precision", "scales") else "---" for header, _ in COLUMNS[1:]) + "|")
    for variant, row in rows.items():
        print("| " + " | ".join(cell(variant, row) for _, cell in COLUMNS) + " |")


# ------------------------------------------------------------------------------------ the folder
def time_folder(predictor: BottomUpPredictor, folder: Path, out_dir: Path, batch: int,
                rounds: int) -> dict[str, dict[str, float]]:
    """Images/s and network seconds per image of each way of running a folder, interleaved over ``rounds``."""
    files = sorted(folder.glob("*.jpg"))

    def load(path: Path) -> np.ndarray | str:
        try:
            return read_image(path)
        except ImageReadError as exc:
            return str(exc)

    def write(path: Path, result: Poses | str) -> None:
        if isinstance(result, Poses):
            write_json_atomic(out_dir / f"{path.stem}_keypoints.json", result.to_openpose_dict())

    runs = {"step by step": run_sequential, "pipelined": run_pipelined}
    run_sequential(predictor, files[:batch], load, write, batch)  # warm-up
    totals = {name: {"wall": 0.0, "network": 0.0} for name in runs}
    for round_ in range(rounds):
        for name, runner in runs.items():
            print(f"folder round {round_ + 1}/{rounds}: {name} ...", file=sys.stderr, flush=True)
            predictor.timings = {phase: 0.0 for phase in PHASES}
            t0 = time.perf_counter()
            runner(predictor, files, load, write, batch)
            totals[name]["wall"] += time.perf_counter() - t0
            totals[name]["network"] += predictor.timings["network"]
    count = rounds * len(files)
    return {name: {"images_per_s": count / t["wall"], "network_per_image": t["network"] / count}
            for name, t in totals.items()}


def folder_section(predictor: BottomUpPredictor, images: int, image_hw: tuple[int, int], batch: int,
                   rounds: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        folder, out_dir = Path(tmp) / "images", Path(tmp) / "out"
        folder.mkdir()
        out_dir.mkdir()
        for i, image in enumerate(_scenes(images, image_hw, seed + 1)):
            cv2.imwrite(str(folder / f"{i:06d}.jpg"), image)
        results = time_folder(predictor, folder, out_dir, batch, rounds)
    print(f"Folder of {images} generated {image_hw[0]}x{image_hw[1]} JPEG files, batch {batch}, scale 1, "
          f"OpenPose JSON written per image, {rounds} interleaved rounds:")
    print()
    print("| run | images/s | network s per image | images/s x network time |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['images_per_s']:.3f} | {r['network_per_image']:.3f} | "
              f"{r['images_per_s'] * r['network_per_image']:.3f} |")
    print()
    print("The last column is the throughput as a fraction of 1 / (network time per image), the most a "
          "pipeline can reach: the reading, preparing, decoding and writing that it does not hide lower it.")


# ------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    threads = set_threads(args.threads)  # the one meaning of --threads (the OpenVINO runner follows torch's count)
    device = resolve_device(args.device)
    image_hw = (int(args.size[0]), int(args.size[1]))
    networks = build_networks(args)
    run_precisions, notes = precisions(args, device)
    images = _scenes(max(args.batch_sizes), image_hw, args.seed)
    codec = build_bottomup_codec()
    predictors: dict[Variant, BottomUpPredictor] = {}
    for arch, network in networks.items():
        for precision in run_precisions:
            for scales, flip in (((1.0,), False), (tuple(args.multi_scales), args.flip)):
                for batch in args.batch_sizes:
                    predictors[Variant(arch, precision, scales, batch, flip)] = BottomUpPredictor(
                        network, codec, input_size=args.input_size, scales=scales, flip=flip, device=device,
                        precision=precision)
    rows = time_variants(predictors, images, args.repeats) if predictors else {}

    print(f"Bottom-up inference, {image_hw[0]}x{image_hw[1]} images, input height {args.input_size}, device {device}, "
          f"{threads} torch threads on {os.cpu_count()} cores ({cpu_description()}); mean of {args.repeats} calls after "
          f"a warm-up, configurations interleaved, ms per image; load average {os.getloadavg()[0]:.1f} at the end")
    print()
    for name, network in networks.items():
        params = sum(p.numel() for p in network.parameters())
        print(f"- {name}: {type(network).__name__}, {network.num_stages} stages, {params / 1e6:.2f} M parameters, "
              f"{gflop(network):.1f} GFLOP at {FLOP_INPUT_HW[0]}x{FLOP_INPUT_HW[1]}"
              f"{'' if args.weights else ', random weights'}")
    for note in notes:
        print(f"- precision {note}")
    print()
    if rows:
        print_table(rows)
        print()
        single = {v: r for v, r in rows.items() if v.scales == (1.0,) and v.batch == min(args.batch_sizes)}
        names = list(networks)
        for precision in run_precisions:
            totals = {v.arch: r["total"] for v, r in single.items() if v.precision == precision}
            if len(names) > 1:
                base = totals[names[0]]
                print(f"{precision}, scale 1, batch {min(args.batch_sizes)}: total per image "
                      + ", ".join(f"{n} {1e3 * totals[n]:.0f} ms ({base / totals[n]:.1f}x {names[0]}'s speed)"
                                  for n in names))
        if len(run_precisions) > 1:
            for name in names:
                base = next(r["total"] for v, r in single.items() if v.arch == name and v.precision == run_precisions[0])
                print(f"{name}, scale 1: " + ", ".join(
                    f"{v.precision} {base / r['total']:.2f}x {run_precisions[0]}'s speed"
                    for v, r in single.items() if v.arch == name))

        # Realistic maps: the codec's encoding of a scene's ground truth (decode_maps ignores scales and flip).
        reference_variant = next(iter(single))
        reference, ref_row = predictors[reference_variant], single[reference_variant]
        _, keypoints, _ = generate_scene(np.random.default_rng([args.seed, 10_000]), SceneConfig(image_hw=image_hw),
                                         num_people=args.people)
        gt_seconds, gt_found = gt_decode(reference, image_hw, keypoints, repeats=20)
        map_h, map_w = reference.codec.map_hw(letterbox_affine(image_hw, args.input_size, reference.codec.stride)[1])
        other = ref_row["preprocess"] + ref_row["postprocess"] + gt_seconds
        print()
        print(f"Decode of ground-truth maps ({map_h}x{map_w}) of a {image_hw[0]}x{image_hw[1]} scene with {args.people} "
              f"people ({gt_found} decoded): {1e3 * gt_seconds:.1f} ms. {reference_variant.arch}, scale 1, batch "
              f"{reference_variant.batch}: preprocess + postprocess + that decode = {1e3 * other:.1f} ms = "
              f"{100 * other / ref_row['network']:.1f}% of the network time.")
        print()
        if args.folder:
            for name in names:
                predictor = BottomUpPredictor(networks[name], codec, input_size=args.input_size, device=device,
                                              precision=run_precisions[0])
                print(f"{name}, {run_precisions[0]}:")
                folder_section(predictor, args.folder, image_hw, args.folder_batch, args.folder_rounds, args.seed)
                print()
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
