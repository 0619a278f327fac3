"""Live-source latency: ``openpose-lite infer`` on an MJPEG stream served on loopback, newest frame first.

A stream of ``--seconds`` s at ``--fps`` (generated people walking, ``--size`` frames, served by
:class:`openpose_lite.data.mjpeg_stream.MjpegServer` as an IP camera serves MJPEG over HTTP) is
read by the command users run, in its own process, started with the stream:

    python -m openpose_lite infer http://127.0.0.1:PORT/stream.mjpg --weights FILE --track -o DIR

The model is ``--weights FILE`` (e.g. CMU's body_pose_model.pth, a Lightweight OpenPose
checkpoint) or, by default, the paper-size network of ``--arch`` with random weights, saved as a
checkpoint with its config (its speed does not depend on the weights; it finds no people, so
decoding costs next to nothing). Printed: the exit code and how long after the stream's start
and end the command exited (its start-up, torch's import and the model's load, included),
frames processed and dropped, the processed rate, the latency from a frame's capture to its
people on disk (median, 95th percentile, from images.json), and the CPU.

    python benchmarks/bench_live.py [--arch vgg19_paf|mobilenet_paf | --weights FILE] [--seconds 8] [--fps 25]
        [--size 480 640] [--backend torch|openvino] [--precision fp32] [--calibration DIR] [--no-track] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from openpose_lite.bench.config import BOTTOMUP_ARCHS  # noqa: E402
from openpose_lite.config import Config, config_to_dict  # noqa: E402
from openpose_lite.data.mjpeg_stream import MjpegServer  # noqa: E402
from openpose_lite.data.synthetic_video import VideoConfig, generate_video  # noqa: E402
from openpose_lite.factory import ModelConfig, build_model  # noqa: E402
from openpose_lite.training.checkpoint import save_checkpoint  # noqa: E402

_SIMD = re.compile(r"^(avx\S*|amx\S*|fma|f16c|sse4_\d|avx_vnni)$")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=BOTTOMUP_ARCHS, default="vgg19_paf",
                   help="random-weight network at its published size (default: %(default)s)")
    p.add_argument("--weights", type=Path, help="a weights file instead (any layout infer --weights reads)")
    p.add_argument("--seconds", type=float, default=8.0, help="stream length (default: %(default)s)")
    p.add_argument("--fps", type=float, default=25.0, help="stream rate (default: %(default)s)")
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="frame size (default: 480 640)")
    p.add_argument("--people", type=int, default=4, help="people walking in the stream (default: %(default)s)")
    p.add_argument("--backend", default="torch", choices=("torch", "openvino"),
                   help="infer's runtime (openvino: converted once and cached, so run it twice to time a warm start)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "int8", "auto"))
    p.add_argument("--calibration", type=Path, help="backend openvino, precision int8: images to calibrate on")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-track", action="store_true", help="without --track")
    p.add_argument("--keep", type=Path, help="write infer's outputs here (default: a temporary folder)")
    return p


def cpu_description() -> str:
    """``lscpu``'s model name, CPU count and SIMD flags (/proc/cpuinfo where there is no lscpu)."""
    fields: dict[str, str] = {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = [f for f in fields.get("flags", "").split() if _SIMD.match(f)]
    cpus = fields.get("cpu(s)", str(os.cpu_count()))
    return f"{fields.get('model name', 'unknown CPU')}, {cpus} CPUs; SIMD flags: {' '.join(flags) or 'none listed'}"


def _model_option(args: argparse.Namespace, folder: Path) -> list[str]:
    if args.weights is not None:
        return ["--weights", str(args.weights)]
    cfg = Config(model=ModelConfig(arch=args.arch))
    path = save_checkpoint(folder / f"{args.arch}_random.pt", model_state=build_model(cfg.model).state_dict(),
                           config=config_to_dict(cfg))
    return ["--checkpoint", str(path)]


def _report(out: Path, code: int, started: float, ended_at: float, server: MjpegServer, stdout: str) -> None:
    images = json.loads((out / "images.json").read_text()) if (out / "images.json").is_file() else {}
    latencies = np.array([e["latency_s"] for e in images.values()])
    dropped = re.search(r"(\d+) dropped \(of (\d+) read", stdout)
    print(f"exit code {code}; exited {ended_at - started:.1f} s after the stream's start, "
          f"{ended_at - started - server.duration:+.1f} s after its end")
    print(f"stream: {server.frames} frames at {server.fps:g} fps; read {dropped.group(2) if dropped else '?'}, "
          f"processed {len(images)}, dropped {dropped.group(1) if dropped else '?'}")
    if len(latencies):
        times = sorted(e["capture_time"] for e in images.values())
        median, p95 = np.percentile(latencies, [50, 95])
        print(f"latency capture -> people on disk: median {median:.3f} s, 95th percentile {p95:.3f} s "
              f"(over {len(latencies)} frames; first frame {latencies[0]:.3f} s)")
        rate = re.search(r"([\d.]+) frames/s processed", stdout)
        print(f"processed rate: {rate.group(1) if rate else '?'} frames/s ({times[0]} to {times[-1]})")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    frames = generate_video(VideoConfig(image_hw=tuple(args.size), num_frames=max(1, round(args.seconds * args.fps)),
                                        num_people=args.people, fps=args.fps, seed=0))
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp:
        out = args.keep or Path(tmp) / "out"
        model = _model_option(args, Path(tmp))
        server = MjpegServer(len(frames), args.fps, render=lambda i: frames[i].image)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        command = [sys.executable, "-m", "openpose_lite", "infer", "URL", *model, "-o", str(out), "--no-progress",
                   "--backend", args.backend, "--precision", args.precision, "--device", args.device,
                   *([] if args.calibration is None else ["--calibration", str(args.calibration)]),
                   *([] if args.no_track else ["--track"])]
        with server:
            command[4] = server.url
            started = server.started
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            ended_at = time.monotonic()
        print(f"model: {args.weights or args.arch + ' (random weights, published size)'}, {args.backend} {args.precision}, "
              f"frames {args.size[0]}x{args.size[1]}, {'with' if not args.no_track else 'without'} --track")
        _report(out, result.returncode, started, ended_at, server, result.stdout)
        print("infer said:\n  " + "\n  ".join((result.stdout + result.stderr).strip().splitlines()))
    print(f"CPU: {cpu_description()}")
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
