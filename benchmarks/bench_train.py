"""Training throughput: the data pipeline per worker, and the step time of a training config on CPU.

1. Data pipeline: ``BottomUpTrainDataset`` samples per second in one process (what one
   DataLoader worker delivers): image decode, the full CMU augmentation (random affine, flip,
   the ignore mask warped with the image) and the codec's targets. On the COCO sample
   (``../shared/data/coco_sample``) at the paper's 368 px crop, and on generated scenes at the
   config's crop.
2. Training step: forward + loss + backward + optimizer step of the config's model on real
   batches from (1), median over ``--steps`` steps after ``--warmup`` steps, with torch using
   every core. The forward pass alone is timed too.

Run:

    python benchmarks/bench_train.py [--config configs/vgg19_synthetic_cpu.yaml] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from openpose_lite.config import build_bottomup_codec, load_config
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.data.samples import BottomUpTrainDataset
from openpose_lite.data.synthetic import write_dataset
from openpose_lite.transforms import AugmentParams
from openpose_lite.io import plural
from openpose_lite.factory import build_model
from openpose_lite.params import fields_of
from openpose_lite.training.branches import bottomup_loss_terms
from openpose_lite.training.engine import train_one_epoch
from openpose_lite.training.optim import build_optimizer

REPO = Path(__file__).resolve().parents[1]
COCO_SAMPLE = REPO.parent / "shared" / "data" / "coco_sample"


def pipeline_rate(dataset: BottomUpTrainDataset, passes: int) -> tuple[float, float]:
    """(samples per second, ms per sample) of ``dataset[i]`` in this process, after one warm-up pass."""
    for i in range(min(len(dataset), 4)):  # warm-up: numba compilation, file cache
        dataset[i]
    count, start = 0, time.perf_counter()
    for epoch in range(passes):
        dataset.set_epoch(epoch + 1)
        for i in range(len(dataset)):
            dataset[i]
            count += 1
    seconds = time.perf_counter() - start
    return count / seconds, 1000.0 * seconds / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "vgg19_synthetic_cpu.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--passes", type=int, default=3, help="passes over each dataset for the pipeline rate")
    parser.add_argument("--synthetic-images", type=int, default=64)
    args = parser.parse_args(argv)

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = load_config(args.config)
    codec = build_bottomup_codec(cfg)
    cmu = AugmentParams()  # the paper's augmentation at the 368 px crop
    small = AugmentParams(**fields_of(cfg.data, AugmentParams))

    print(f"$ python {' '.join(shlex.quote(a) for a in ['benchmarks/bench_train.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at start")
    print()
    print("Data pipeline, one process (= one DataLoader worker): decode + augmentation + targets")
    print()
    print("| data | crop | images | samples/s per worker | ms per sample |")
    print("|---|---:|---:|---:|---:|")
    if (COCO_SAMPLE / "person_keypoints.json").is_file():
        coco = CocoKeypoints(COCO_SAMPLE / "person_keypoints.json", COCO_SAMPLE / "images")
        rate, ms = pipeline_rate(BottomUpTrainDataset(coco, codec, cmu, train=True), args.passes)
        print(f"| COCO sample (real photos) | {cmu.crop_size} | {len(coco)} | {rate:.1f} | {ms:.2f} |")
    else:
        print(f"| COCO sample: not found at {COCO_SAMPLE} | | | | |")
    with tempfile.TemporaryDirectory() as tmp:
        ann = write_dataset(Path(tmp) / "scenes", args.synthetic_images, seed=12345)
        scenes = CocoKeypoints(ann, Path(tmp) / "scenes" / "images")
        for params in (cmu, small) if small.crop_size != cmu.crop_size else (cmu,):
            rate, ms = pipeline_rate(BottomUpTrainDataset(scenes, codec, params, train=True), args.passes)
            print(f"| generated scenes (368x368) | {params.crop_size} | {len(scenes)} | {rate:.1f} | {ms:.2f} |")

        # ------------------------------------------------------------------ training step
        data = BottomUpTrainDataset(scenes, codec, small, train=True)
        loader = torch.utils.data.DataLoader(data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)
        batches = []
        while len(batches) < args.steps + args.warmup:
            batches.extend(loader)
        batches = batches[: args.steps + args.warmup]

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model)
    optimizer = build_optimizer(model, cfg.train)
    device = torch.device("cpu")
    step_times, forward_times = [], []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        train_one_epoch(model, [batch], optimizer, bottomup_loss_terms, device, None, epoch=1)
        t1 = time.perf_counter()
        with torch.no_grad():
            model(batch[0])
        t2 = time.perf_counter()
        if i >= args.warmup:
            step_times.append(t1 - t0)
            forward_times.append(t2 - t1)
    step = float(np.median(step_times))
    forward = float(np.median(forward_times))
    params = sum(p.numel() for p in model.parameters())
    print()
    sizes = cfg.model.settings
    print(f"Training step, {args.config.name}: {plural(sizes.num_stages, 'stage')} of {sizes.stage_channels} channels, "
          f"width_mult {sizes.width_mult} ({params / 1e6:.2f} M parameters), {cfg.data.crop_size} px crops, "
          f"batch {cfg.train.batch_size}, {cfg.train.optimizer}; median of {args.steps} steps after {args.warmup}")
    print()
    print("| step (forward + loss + backward + update) | forward only | images/s (training) |")
    print("|---:|---:|---:|")
    print(f"| {1000 * step:.0f} ms | {1000 * forward:.0f} ms | {cfg.train.batch_size / step:.1f} |")
    print()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
