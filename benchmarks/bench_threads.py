"""Threads on a busy CPU: the default thread count against ``--threads 1``, with and without another job.

Three of the README's workloads, each run as the command users type, in its own process:

* ``train``: one epoch of the quickstart (``configs/vgg19_synthetic_cpu.yaml``) on ``--train-images``
  generated scenes; the time is the epoch's own (``train/seconds`` of ``metrics.jsonl``);
* ``eval``: ``openpose-lite eval`` of the checkpoint on ``--eval-images`` held-out scenes;
* ``video``: ``openpose-lite infer VIDEO --track --render`` on a generated walk of ``--frames`` frames;

the last two timed from start to exit. Each runs in three ways, interleaved in one loop so that
the machine's drift falls on all of them alike:

* ``default``: no thread option (torch's one thread per core; the package makes waiting OpenMP
  threads sleep, ``OMP_WAIT_POLICY=PASSIVE``);
* ``threads1``: ``--threads 1``;
* ``spin``: the default thread count with libgomp's own 300000-round spin before a waiting thread
  sleeps (``GOMP_SPINCOUNT=300000``), which is what the package ran with before it set the policy;

on an idle machine and beside ``--busy N`` processes that each keep one core busy (a Python
loop), as another job would. Printed: the median seconds of each, and its ratio to ``threads1``
under the same load; and the CPU.

    python benchmarks/bench_threads.py [--checkpoint runs/vgg19_synthetic_cpu/best.pt] [--repeats 3]
        [--busy 1] [--workloads train eval video] [--train-images 96] [--eval-images 32] [--frames 45]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from openpose_lite.devices import cpu_description  # noqa: E402

CLI = [sys.executable, "-m", "openpose_lite"]
VARIANTS = {  # name -> (extra arguments, extra environment)
    "default": ([], {}),
    "threads1": (["--threads", "1"], {}),
    "spin": ([], {"GOMP_SPINCOUNT": "300000"}),
}
LOADS = ("idle", "busy")


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    return {**env, **extra}


def _run(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one command; a failure stops the benchmark with its output."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-3000:]}")
    return seconds


def _train_epoch(work: Path, args: argparse.Namespace, extra: list[str], env: dict[str, str]) -> float:
    out = Path(tempfile.mkdtemp(dir=work, prefix="train-"))
    _run([*CLI, "train", "--config", "configs/vgg19_synthetic_cpu.yaml", "--output-dir", str(out), "--overwrite",
          "--no-progress", *extra, f"data.synthetic_train_images={args.train_images}", "data.synthetic_val_images=8",
          "train.epochs=1", "train.eval_every=0", "train.val_max_images=8"], env)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return float(next(r for r in records if r.get("type") == "epoch")["train/seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs/vgg19_synthetic_cpu/best.pt",
                        help="the model of eval and video (default: the quickstart's)")
    parser.add_argument("--held-out", type=Path, default=REPO / "runs/vgg19_synthetic_cpu/data/held_out",
                        help="a folder with annotations.json and images/ (default: the quickstart's held-out scenes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the workload under load")
    parser.add_argument("--workloads", nargs="+", choices=("train", "eval", "video"), default=["train", "eval", "video"])
    parser.add_argument("--train-images", type=int, default=96)
    parser.add_argument("--eval-images", type=int, default=32)
    parser.add_argument("--frames", type=int, default=45)
    parser.add_argument("--keep", type=Path, help="keep the work files in this folder")
    args = parser.parse_args(argv)
    if ("eval" in args.workloads or "video" in args.workloads) and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file (run the quickstart first, or name one)")
    if "eval" in args.workloads and not (args.held_out / "annotations.json").is_file():
        parser.error(f"--held-out {args.held_out}: no annotations.json there")

    work = Path(tempfile.mkdtemp(prefix="bench-threads-", dir=args.keep))
    video = work / "walk" / "video.mp4"
    if "video" in args.workloads:
        _run([*CLI, "synth", str(work / "walk"), "--video", "--frames", str(args.frames)], _environment({}))

    def workload(name: str, extra: list[str], env: dict[str, str]) -> float:
        if name == "train":
            return _train_epoch(work, args, extra, env)
        if name == "eval":
            return _run([*CLI, "eval", "--checkpoint", str(args.checkpoint), "--ann", str(args.held_out / "annotations.json"),
                         "--images", str(args.held_out / "images"), "--max-images", str(args.eval_images), *extra], env)
        return _run([*CLI, "infer", str(video), "--checkpoint", str(args.checkpoint), "--track", "--render",
                     "-o", str(work / "tracked"), "--overwrite", "--no-progress", *extra], env)

    print(f"CPU: {cpu_description()}; {os.cpu_count()} cores; busy processes under load: {args.busy}", flush=True)
    times: dict[tuple[str, str, str], list[float]] = {}
    busy: list[subprocess.Popen] = []
    try:
        for repeat in range(args.repeats):
            for load in LOADS:
                if load == "busy":
                    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
                    time.sleep(1.0)
                for name in args.workloads:
                    # The variants' order turns with the repeat, so none always runs first after a change of load.
                    order = list(VARIANTS)[repeat % len(VARIANTS):] + list(VARIANTS)[:repeat % len(VARIANTS)]
                    for variant in order:
                        extra, env = VARIANTS[variant]
                        seconds = workload(name, extra, _environment(env))
                        times.setdefault((load, name, variant), []).append(seconds)
                        print(f"  repeat {repeat + 1} {load:4s} {name:5s} {variant:8s} {seconds:7.1f} s", flush=True)
                for process in busy:
                    process.kill()
                    process.wait()
                busy = []
    finally:
        for process in busy:
            process.kill()

    print(f"\nmedian seconds (ratio to --threads 1 under the same load), {args.repeats} repeats")
    print(f"{'load':5s} {'workload':9s} " + " ".join(f"{v:>16s}" for v in VARIANTS))
    for load in LOADS:
        for name in args.workloads:
            base = float(np.median(times[(load, name, "threads1")]))
            cells = []
            for variant in VARIANTS:
                median = float(np.median(times[(load, name, variant)]))
                cells.append(f"{median:7.1f} ({median / base:4.2f}x)")
            print(f"{load:5s} {name:9s} " + " ".join(f"{c:>16s}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
