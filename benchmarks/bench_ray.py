"""Runs spread over Ray against the local ``infer``: images per second on the same generated images,
and the memory of the driver over each Ray run.

``--images N`` generated scenes (``--size H W``) are written as JPEG files, and a network of the
architecture table (``--arch``, default Lightweight OpenPose's ``mobilenet_paf``) with random
weights is saved as a checkpoint, so the numbers are those of the run, not of the weights (a random
network finds few people: decoding costs little). Rows, one after another on the same files:

* ``local, T threads``: :func:`openpose_lite.runs.run` in this process (what ``openpose-lite infer``
  runs), the network on T threads (``--local-threads``);
* ``ray, W workers``: :func:`openpose_lite.runs.run_on_ray` on a local Ray of this machine's cores
  (started once, before the rows; its start is not counted), W workers of one CPU and one network
  thread each (``--workers``). Each row's time includes its workers' start (each builds the model).

images/s: images over the row's wall time; ``after first``: the images reported after the first
report (and those reported with it) over the time from it to the last: the workers' start and
first task left out. Driver RSS
(``/proc/self/status``, sampled every 0.05 s during each Ray row): at its start, its peak and its
end; the driver keeps each image's index entry (its people's keypoints), not its pixels, so the
peak does not grow with the number of images beyond that: give several ``--images`` counts to see it.

Run:

    python benchmarks/bench_ray.py [--images 200] [--size 368 496] [--arch mobilenet_paf]
        [--input-size 368] [--workers 1 2] [--local-threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

from openpose_lite.config import CodecConfig, Config, ModelConfig, config_to_dict
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.devices import cpu_description, set_threads
from openpose_lite.factory import build_model
from openpose_lite.inference import BottomUpPredictor
from openpose_lite.runs import PredictorRecipe, Progress, RayOptions, RunOptions, run, run_on_ray
from openpose_lite.training.checkpoint import save_checkpoint


def _rss_mib() -> float:
    """This process's resident memory (MiB), from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class _RssSampler(threading.Thread):
    """The driver's RSS every ``period`` seconds while it runs: (start, peak, end) MiB."""

    def __init__(self, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.period, self.samples, self.stop = period, [_rss_mib()], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.samples.append(_rss_mib())

    def finish(self) -> tuple[float, float, float]:
        self.stop.set()
        self.join()
        self.samples.append(_rss_mib())
        return self.samples[0], max(self.samples), self.samples[-1]


class _Clock:
    """When each image was reported. A Ray run reports a task's images together when the task comes
    back, so the first report's moment covers all the images reported with it."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, progress: Progress) -> None:
        if progress.failure is None and progress.done > len(self.times):
            self.times.append(time.perf_counter())

    def after_first(self) -> float:
        """Images reported after the first report's moment over the time from it to the last (0.0: one moment)."""
        if not self.times or self.times[-1] - self.times[0] < 0.01:
            return 0.0
        first = sum(t - self.times[0] < 0.01 for t in self.times)  # reported with the first (one task)
        return (len(self.times) - first) / (self.times[-1] - self.times[0])


def _checkpoint(path: Path, arch: str, input_size: int) -> Path:
    cfg = Config(model=ModelConfig(arch=arch), codec=CodecConfig(input_size=input_size))
    save_checkpoint(path, model_state=build_model(cfg.model).state_dict(), config=config_to_dict(cfg))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[200], help="image counts (one table per count)")
    parser.add_argument("--size", type=int, nargs=2, default=[368, 496], metavar=("H", "W"))
    parser.add_argument("--arch", default="mobilenet_paf")
    parser.add_argument("--input-size", type=int, default=368)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--local-threads", type=int, nargs="*", default=[1, 2], help="none: no local rows")
    args = parser.parse_args()

    import logging

    import ray
    import ray.data  # noqa: F401 - its logger, quieted below

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the table is the report
    print(f"$ python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"CPU: {cpu_description()}; {os.cpu_count()} cores; ray {ray.__version__}; "
          f"{args.arch}, random weights, network input {args.input_size} px, images {args.size[0]}x{args.size[1]}")
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        root = Path(tmp)
        weights = _checkpoint(root / "model.pt", args.arch, args.input_size)
        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="error")
        print(f"local Ray started in {time.perf_counter() - started:.1f} s (not counted)")
        for count in args.images:
            images = write_dataset(root / f"scenes{count}", count, seed=0,
                                   cfg=SceneConfig(image_hw=tuple(args.size))).parent / "images"
            print(f"\n{count} images")
            print("| run | images/s | after first | wall s | driver RSS MiB: start / peak / end |")
            print("|---|---:|---:|---:|---|")
            for threads in args.local_threads:
                set_threads(threads)
                clock, t0 = _Clock(), time.perf_counter()
                summary = run(BottomUpPredictor.from_weights(weights), [images],
                              RunOptions(output=root / f"local{count}_{threads}", weights=weights), progress=clock)
                wall = time.perf_counter() - t0
                print(f"| local infer, {threads} thread{'s' * (threads > 1)} | {summary.images / wall:.2f} | "
                      f"{clock.after_first():.2f} | {wall:.1f} | |", flush=True)
            for workers in args.workers:
                clock, sampler, t0 = _Clock(), _RssSampler(), time.perf_counter()
                sampler.start()
                summary = run_on_ray(PredictorRecipe(weights), [images],
                                     RunOptions(output=root / f"ray{count}_{workers}", weights=weights),
                                     RayOptions(workers=workers), progress=clock)
                wall = time.perf_counter() - t0
                start, peak, end = sampler.finish()
                print(f"| ray, {workers} worker{'s' * (workers > 1)} | {summary.images / wall:.2f} | "
                      f"{clock.after_first():.2f} | {wall:.1f} | {start:.0f} / {peak:.0f} / {end:.0f} |", flush=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
