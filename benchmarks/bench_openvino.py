"""CPU inference through OpenVINO against torch: network-alone and end-to-end ms, folder images/s, per precision.

The networks are the published ones of the architecture table with random weights (their speed
does not depend on the weights): VGG19 (the CMU COCO body model's size and layout), Lightweight
OpenPose (the published network), HRNet-W32 and SimpleBaseline-ResNet50 on 256x192 person crops,
the Hourglass on 256x256 ones. One generated 480x640 scene (``--people`` people) is run at scale 1
without flip; the network-alone time is one call of the runner on the predictor's own input
(bottom-up: the letterboxed 368x496 image; top-down: a batch of the people's crops), the
end-to-end time one predictor
call (preprocessing, network, decoding). Every configuration (architecture x backend x
precision) is built and warmed up first, then timed in interleaved rounds, one call of each per
round, so a change of machine load hits all alike; ratios are against torch fp32 of the same
architecture.

Precisions: fp32; bf16 where the CPU computes it natively (torch autocast, OpenVINO's
inference precision hint), skipped with the reason elsewhere; int8 (OpenVINO only) quantised
by NNCF on ``--calibration-images`` generated scenes. "first start" is the construction
with an empty cache (conversion, quantisation), "cached start" a second construction.

``--folder N``: the bottom-up models over N generated JPEG files through
:func:`~openpose_lite.inference.pipeline.run_pipelined` (what ``openpose-lite infer`` runs,
OpenPose JSON written per image): batch 1 on every configuration, and on OpenVINO also batches
of ``--folder-batch`` with the LATENCY hint and with the THROUGHPUT hint (the batch split
between parallel requests), to show whether THROUGHPUT helps.

``--accuracy CHECKPOINT`` (a trained bottom-up checkpoint) replaces the speed tables by int8's
accuracy: the checkpoint on the held-out set ``--ann``/``--images`` under torch fp32, OpenVINO
fp32 and OpenVINO int8 with each ``--overflow-fixes`` setting (calibrated on ``--calibration``),
each row's COCO AP and its maps' largest and mean difference from torch fp32 on the predictor's
inputs of the first ``--map-images`` images. The int8 convolutions' oneDNN kernels are listed, so
a run under ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN limited to AVX2 on a VNNI CPU) shows it took effect.

Run on an idle machine:

    python benchmarks/bench_openvino.py [--archs vgg19_paf mobilenet_paf hrnet simple_baseline] [--precisions fp32 bf16 int8]
        [--repeats 5] [--folder 16] [--folder-batch 4] [--threads 0]
    [ONEDNN_MAX_CPU_ISA=AVX2] python benchmarks/bench_openvino.py --accuracy runs/vgg19_synthetic_cpu/best.pt \
        --ann runs/vgg19_synthetic_cpu/data/held_out/annotations.json \
        --images runs/vgg19_synthetic_cpu/data/held_out/images \
        --calibration runs/vgg19_synthetic_cpu/data/train/images --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from openpose_lite.config import Config, load_config
from openpose_lite.data.synthetic import SceneConfig, generate_scene, write_dataset
from openpose_lite.devices import THREADS_HELP, cpu_description, set_threads
from openpose_lite.images import read_image
from openpose_lite.inference import BottomUpPredictor, PredictorOptions, TopDownPredictor, build_predictor
from openpose_lite.inference.calibration import DEFAULT_OVERFLOW_FIX, OVERFLOW_FIXES
from openpose_lite.inference.network import make_runner
from openpose_lite.inference.pipeline import run_pipelined
from openpose_lite.io import write_json_atomic
from openpose_lite.architectures import ARCHITECTURES, architecture
from openpose_lite.factory import build_model, model_fields
from openpose_lite.models.weights import LoadedWeights
from openpose_lite.structures import Poses

DEFAULT_ARCHS = ("vgg19_paf", "mobilenet_paf", "hrnet", "simple_baseline")
# --small: tiny versions of every architecture, to check that the script runs (their times mean nothing);
# each network takes those of its own settings.
SMALL = {"num_stages": 1, "stage_channels": 16, "width_mult": 0.25, "width": 8, "blocks": 1, "depth": 18}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", choices=[a.name for a in ARCHITECTURES], default=list(DEFAULT_ARCHS))
    parser.add_argument("--backends", nargs="+", choices=["torch", "openvino"], default=["torch", "openvino"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16", "int8"], default=["fp32", "bf16", "int8"],
                        help="those a backend or this CPU cannot run natively are listed as skipped")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="image size")
    parser.add_argument("--input-size", type=int, default=368, help="bottom-up network input height (CMU: 368)")
    parser.add_argument("--small", action="store_true", help="tiny networks, to check the script runs")
    parser.add_argument("--people", type=int, default=4, help="people in the scene (HRNet: the number of crops)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (after one warm-up call each)")
    parser.add_argument("--calibration-images", type=int, default=32, help="generated scenes int8 is calibrated on")
    parser.add_argument("--folder", type=int, default=0, metavar="N", help="also time a folder of N images (0: no)")
    parser.add_argument("--folder-batch", type=int, default=4, help="batch of the folder's batched runs")
    parser.add_argument("--folder-rounds", type=int, default=1, help="interleaved rounds of the folder runs")
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    parser.add_argument("--cache", type=Path, default=None,
                        help="OpenVINO model cache (default: a fresh temporary one, so first starts convert)")
    parser.add_argument("--seed", type=int, default=0)
    accuracy = parser.add_argument_group("int8 accuracy (--accuracy)")
    accuracy.add_argument("--accuracy", type=Path, metavar="CHECKPOINT",
                          help="a trained bottom-up checkpoint: int8's accuracy per overflow fix, no speed tables")
    accuracy.add_argument("--ann", type=Path, help="the held-out COCO keypoint file")
    accuracy.add_argument("--images", type=Path, help="its images")
    accuracy.add_argument("--calibration", type=Path, help="the images int8 is calibrated on")
    accuracy.add_argument("--overflow-fixes", nargs="+", choices=OVERFLOW_FIXES, default=list(OVERFLOW_FIXES))
    accuracy.add_argument("--map-images", type=int, default=20,
                          help="the first N held-out images the maps are compared on")
    return parser


@dataclass(frozen=True)
class Setup:
    """One timed configuration: a row of the table."""

    arch: str
    backend: str
    precision: str


@dataclass
class Built:
    predictor: Any
    first_start: float
    cached_start: float | None


def run_config(arch: str, small: bool, input_size: int) -> Config:
    """The published network of ``arch`` (its crop size for top-down ones), tiny with ``small``."""
    small_sizes = [f"model.{k}={v}" for k, v in SMALL.items() if small and k in model_fields(arch)]
    return load_config(None, [f"model.arch={arch}", f"codec.input_size={input_size}", *small_sizes])


def make_predictor(model: torch.nn.Module, cfg: Config, backend: str, precision: str, calibration: Path | None) -> Any:
    options = PredictorOptions(backend=backend, precision=precision, device="cpu", flip=False,
                               calibration=calibration if precision == "int8" else None)
    return build_predictor(LoadedWeights(model, architecture(cfg.model.arch), None, cfg), options)


def network_input(predictor: Any, image: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
    """What the predictor hands its runner for this image: the letterboxed image, or the people's crops."""
    if isinstance(predictor, TopDownPredictor):
        return predictor.crop(image, boxes).inputs
    return predictor.prepare([image]).scales[0][0]


def end_to_end(predictor: Any, image: np.ndarray, boxes: np.ndarray) -> Poses:
    if isinstance(predictor, TopDownPredictor):
        return predictor.predict(image, boxes)
    return predictor(image)


def build_all(args: argparse.Namespace, calibration: Path) -> tuple[dict[Setup, Built], dict[str, tuple], list[str]]:
    """Every configuration's predictor, its construction times, and a note per skipped one."""
    built, models, notes = {}, {}, []
    for arch in args.archs:
        torch.manual_seed(args.seed)
        cfg = run_config(arch, args.small, args.input_size)
        models[arch] = (build_model(cfg.model).eval(), cfg)
        for backend in args.backends:
            for precision in args.precisions:
                setup = Setup(arch, backend, precision)
                print(f"building {arch} {backend} {precision} ...", file=sys.stderr, flush=True)
                try:
                    t0 = time.perf_counter()
                    predictor = make_predictor(*models[arch], backend, precision, calibration)
                    first = time.perf_counter() - t0
                except ValueError as exc:
                    notes.append(f"{arch} {backend} {precision}: skipped, {exc}")
                    continue
                cached = None
                if backend == "openvino":
                    t0 = time.perf_counter()
                    predictor = make_predictor(*models[arch], backend, precision, calibration)
                    cached = time.perf_counter() - t0
                built[setup] = Built(predictor, first, cached)
    return built, models, notes


def time_rows(built: dict[Setup, Built], image: np.ndarray, boxes: np.ndarray, repeats: int) -> dict[Setup, dict[str, float]]:
    """Mean seconds of the network alone and end to end, per configuration, interleaved over ``repeats`` rounds."""
    inputs = {setup: network_input(b.predictor, image, boxes) for setup, b in built.items()}
    for setup, b in built.items():  # warm-up: shape-specific kernels, numba, allocator
        b.predictor.runner(b.predictor.runner.to_device(inputs[setup]))
        end_to_end(b.predictor, image, boxes)
    sums = {setup: {"network": 0.0, "end_to_end": 0.0} for setup in built}
    for round_ in range(repeats):
        print(f"round {round_ + 1}/{repeats} ...", file=sys.stderr, flush=True)
        for setup, b in built.items():
            runner = b.predictor.runner
            t0 = time.perf_counter()
            runner(runner.to_device(inputs[setup]))
            runner.sync()
            sums[setup]["network"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            end_to_end(b.predictor, image, boxes)
            sums[setup]["end_to_end"] += time.perf_counter() - t0
    return {setup: {k: v / repeats for k, v in s.items()} for setup, s in sums.items()}


def _ratio(value: float, base: float | None) -> str:
    return f"{base / value:.2f}x" if base else "-"


def print_table(built: dict[Setup, Built], rows: dict[Setup, dict[str, float]]) -> None:
    print("| model | backend | precision | network ms | speed vs torch fp32 | end-to-end ms | speed vs torch fp32 "
          "| first start s | cached start s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for setup, row in rows.items():
        base = rows.get(Setup(setup.arch, "torch", "fp32"))
        b = built[setup]
        cached = f"{b.cached_start:.2f}" if b.cached_start is not None else "-"
        print(f"| {setup.arch} | {setup.backend} | {setup.precision} | {1e3 * row['network']:.1f} | "
              f"{_ratio(row['network'], base and base['network'])} | {1e3 * row['end_to_end']:.1f} | "
              f"{_ratio(row['end_to_end'], base and base['end_to_end'])} | {b.first_start:.2f} | {cached} |")


# ------------------------------------------------------------------------------------ the folder
def folder_runs(built: dict[Setup, Built], models: dict[str, tuple], batch: int,
                calibration: Path) -> dict[tuple[Setup, int, str], Any]:
    """(setup, batch, hint) -> predictor: batch 1 everywhere; on OpenVINO, ``batch`` with each hint."""
    runs: dict[tuple[Setup, int, str], Any] = {}
    for setup, b in built.items():
        if architecture(setup.arch).branch_row.needs_boxes:
            continue  # a folder of plain images has no person boxes: it is the run of the models that need none
        runs[(setup, 1, "latency")] = b.predictor
        if setup.backend == "openvino" and batch > 1:
            runs[(setup, batch, "latency")] = b.predictor
            throughput = make_predictor(*models[setup.arch], "openvino", setup.precision, calibration)
            throughput.runner = make_runner(
                models[setup.arch][0], throughput.output_names, backend="openvino", precision=setup.precision,
                calibration=throughput.runner.calibration, performance="throughput")
            runs[(setup, batch, "throughput")] = throughput
    return runs


def time_folder(runs: dict[tuple[Setup, int, str], Any], files: list[Path], out_dir: Path,
                rounds: int) -> dict[tuple[Setup, int, str], float]:
    """Images per second of each run over ``files`` (run_pipelined, JSON written per image), interleaved."""

    def write(path: Path, result: Poses | str) -> None:
        if isinstance(result, Poses):
            write_json_atomic(out_dir / f"{path.stem}_keypoints.json", result.to_openpose_dict())

    seconds = dict.fromkeys(runs, 0.0)
    for (_, batch, _), predictor in runs.items():  # warm-up at the batch's shapes
        run_pipelined(predictor, files[:batch], read_image, write, batch)
    for round_ in range(rounds):
        for key, predictor in runs.items():
            setup, batch, hint = key
            print(f"folder round {round_ + 1}/{rounds}: {setup.arch} {setup.backend} {setup.precision} batch {batch} "
                  f"{hint} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            run_pipelined(predictor, files, read_image, write, batch)
            seconds[key] += time.perf_counter() - t0
    return {key: rounds * len(files) / s for key, s in seconds.items()}


def folder_section(args: argparse.Namespace, built: dict[Setup, Built], models: dict[str, tuple],
                   calibration: Path, tmp: Path) -> None:
    runs = folder_runs(built, models, args.folder_batch, calibration)
    if not runs:
        return
    folder, out_dir = tmp / "folder", tmp / "out"
    folder.mkdir()
    out_dir.mkdir()
    for i in range(args.folder):
        image, _, _ = generate_scene(np.random.default_rng([args.seed, 1, i]), SceneConfig(image_hw=tuple(args.size)),
                                     num_people=args.people)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), image)
    rates = time_folder(runs, sorted(folder.glob("*.jpg")), out_dir, args.folder_rounds)
    print(f"Folder of {args.folder} generated {args.size[0]}x{args.size[1]} JPEG files through run_pipelined "
          f"(OpenPose JSON per image), {args.folder_rounds} interleaved round(s):")
    print()
    print("| model | backend | precision | batch | hint | images/s | vs torch fp32 batch 1 |")
    print("|---|---|---|---:|---|---:|---:|")
    for (setup, batch, hint), rate in rates.items():
        base = rates.get((Setup(setup.arch, "torch", "fp32"), 1, "latency"))
        print(f"| {setup.arch} | {setup.backend} | {setup.precision} | {batch} | {hint} | {rate:.2f} | "
              f"{f'{rate / base:.2f}x' if base else '-'} |")
    print()


# ------------------------------------------------------------------------------------ int8 accuracy
def conv_kernels(predictor: Any) -> list[str]:
    """The oneDNN kernels of an OpenVINO predictor's convolutions, e.g. ``brgconv_avx512_I8``, ``jit_avx2_I8``."""
    infos = [op.get_rt_info() for op in predictor.runner.compiled.get_runtime_model().get_ops()]
    return sorted({i["primitiveType"].astype(str) for i in infos if i["layerType"].astype(str) == "Convolution"})


def accuracy_rows(args: argparse.Namespace) -> dict[tuple[str, str, str], Any]:
    """(backend, precision, overflow fix) -> predictor of the checkpoint: torch fp32, OpenVINO fp32, int8 per fix.

    The default fix's int8 predictor calibrates on the folder as ``eval --calibration`` does; the
    others take its calibration set with only the overflow fix changed."""
    checkpoint = args.accuracy
    rows = {("torch", "fp32", "-"): BottomUpPredictor.from_checkpoint(checkpoint, device="cpu"),
            ("openvino", "fp32", "-"): BottomUpPredictor.from_checkpoint(checkpoint, backend="openvino")}
    print("quantising with the default overflow fix ...", file=sys.stderr, flush=True)
    default = BottomUpPredictor.from_checkpoint(checkpoint, backend="openvino", precision="int8",
                                                calibration=args.calibration)
    for fix in args.overflow_fixes:
        if fix == DEFAULT_OVERFLOW_FIX:
            rows[("openvino", "int8", fix)] = default
            continue
        print(f"quantising with overflow fix {fix} ...", file=sys.stderr, flush=True)
        calibration = dataclasses.replace(default.runner.calibration, overflow_fix=fix)
        rows[("openvino", "int8", fix)] = BottomUpPredictor.from_checkpoint(
            checkpoint, backend="openvino", precision="int8", calibration=calibration)
    return rows


def accuracy_section(args: argparse.Namespace, threads: int) -> None:
    """Held-out AP and the maps' difference from torch fp32, per row of :func:`accuracy_rows`."""
    from openpose_lite.evaluation import evaluate_predictor, load_coco

    missing = [f"--{name}" for name in ("ann", "images", "calibration") if getattr(args, name) is None]
    if missing:
        raise SystemExit(f"--accuracy needs {' '.join(missing)}")
    rows = accuracy_rows(args)
    reference = rows[("torch", "fp32", "-")]
    coco = load_coco(args.ann)
    ids = sorted(coco.getImgIds())[: args.map_images]
    # The network inputs the predictor runs at scale 1: the letterboxed, normalised images.
    inputs = [reference.prepare([read_image(args.images / coco.imgs[i]["file_name"])]).scales[0][0] for i in ids]
    expected = [reference.runner(reference.runner.to_device(x)) for x in inputs]
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"int8 accuracy of {args.accuracy} on {args.ann}: {threads} threads on {cpu_description()}"
          f"{f', oneDNN capped by ONEDNN_MAX_CPU_ISA={isa}' if isa else ''}; openvino {_version('openvino')}, "
          f"nncf {_version('nncf')}; int8 calibrated on {args.calibration}; maps compared on the first {len(ids)} "
          f"images' network inputs")
    print()
    print("| backend | precision | overflow fix | AP | vs torch fp32 | AP50 | AP75 | AR | largest map difference "
          "| mean map difference |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    base_ap = None
    kernels = {}
    for (backend, precision, fix), predictor in rows.items():
        print(f"evaluating {backend} {precision} {fix} ...", file=sys.stderr, flush=True)
        metrics = evaluate_predictor(predictor, load_coco(args.ann), args.images).metrics
        base_ap = metrics["AP"] if base_ap is None else base_ap
        diffs = [np.abs(predictor.runner(predictor.runner.to_device(x))[k] - e[k])
                 for x, e in zip(inputs, expected) for k in e]
        largest, mean = max(float(d.max()) for d in diffs), float(np.mean([d.mean() for d in diffs]))
        label = f"{fix} (default)" if fix == DEFAULT_OVERFLOW_FIX else fix
        print(f"| {backend} | {precision} | {label} | {metrics['AP']:.3f} | {metrics['AP'] - base_ap:+.3f} | "
              f"{metrics['AP50']:.3f} | {metrics['AP75']:.3f} | {metrics['AR']:.3f} | {largest:.4f} | {mean:.5f} |")
        if precision == "int8":
            kernels.setdefault(", ".join(conv_kernels(predictor)), []).append(fix)
    print()
    for names, fixes in kernels.items():
        print(f"- int8 convolution kernels ({', '.join(fixes)}): {names}")
    print()


# ------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    threads = set_threads(args.threads)  # the one meaning of --threads (the OpenVINO runner follows torch's count)
    previous_cache = os.environ.get("OPENPOSE_LITE_CACHE")
    with tempfile.TemporaryDirectory(prefix="bench_openvino_") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["OPENPOSE_LITE_CACHE"] = str(args.cache or tmp / "cache")
        try:
            if args.accuracy is not None:
                accuracy_section(args, threads)
            else:
                run(args, tmp, threads)
        finally:
            if previous_cache is None:
                os.environ.pop("OPENPOSE_LITE_CACHE", None)
            else:
                os.environ["OPENPOSE_LITE_CACHE"] = previous_cache
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


def run(args: argparse.Namespace, tmp: Path, threads: int) -> None:
    """Build, time and print everything, working in ``tmp``."""
    write_dataset(tmp / "calibration", args.calibration_images, seed=args.seed + 7,
                  cfg=SceneConfig(image_hw=tuple(args.size)))
    calibration = tmp / "calibration" / "images"
    image, _, boxes = generate_scene(np.random.default_rng(args.seed), SceneConfig(image_hw=tuple(args.size)),
                                     num_people=args.people)
    built, models, notes = build_all(args, calibration)
    rows = time_rows(built, image, boxes, args.repeats)
    print(f"CPU inference{' (--small: tiny networks)' if args.small else ''}, one {args.size[0]}x{args.size[1]} "
          f"image with {len(boxes)} people, bottom-up input height {args.input_size}, scale 1, no flip; "
          f"{threads} threads on {os.cpu_count()} cores of {cpu_description()}; torch {torch.__version__}, "
          f"openvino {_version('openvino')}, nncf {_version('nncf')}; mean of {args.repeats} interleaved rounds "
          f"after a warm-up; int8 calibrated on {args.calibration_images} generated scenes")
    print()
    for note in notes:
        print(f"- {note}")
    print()
    print_table(built, rows)
    print()
    if args.folder:
        folder_section(args, built, models, calibration, tmp)


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # not installed (or broken): the table says which rows were skipped
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
