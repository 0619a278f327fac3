"""Bottom-up codec speed: encode and decode time per sample, numba kernels vs numpy references.

Scenes are generated (openpose_lite.data.synthetic) with exactly 1, 5 and 20 people at the
network input size; each time is the median over repeats after a warm-up (which also pays
numba's compilation). Run:

    python benchmarks/bench_codec.py [--size 368 368] [--repeats 50]
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time

import numpy as np

from openpose_lite.codecs import BottomUpPafCodec
from openpose_lite.data.synthetic import SceneConfig, generate_scene


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(368, 368), metavar=("H", "W"))
    parser.add_argument("--people", type=int, nargs="+", default=(1, 5, 20))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    input_hw = tuple(args.size)
    codecs = {"numba": BottomUpPafCodec(), "numpy": BottomUpPafCodec(backend="numpy")}
    rows = []
    for n in args.people:
        _, keypoints, _ = generate_scene(np.random.default_rng([args.seed, n]), SceneConfig(image_hw=input_hw), num_people=n)
        targets, _ = codecs["numba"].encode(keypoints, input_hw)
        row = {"people": n, "found": len(codecs["numba"].decode(targets))}
        for name, codec in codecs.items():
            row[f"encode_{name}"] = median_ms(lambda: codec.encode(keypoints, input_hw), args.repeats)
            row[f"decode_{name}"] = median_ms(lambda: codec.decode(targets), args.repeats)
        rows.append(row)

    print(f"Bottom-up codec at {input_hw[0]}x{input_hw[1]} input ({platform.processor() or platform.machine()}, "
          f"median of {args.repeats} after warm-up), ms per sample")
    print()
    print("| people | decoded | encode numba | encode numpy | decode numba | decode numpy |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['people']} | {r['found']} | {r['encode_numba']:.3f} | {r['encode_numpy']:.3f} | "
              f"{r['decode_numba']:.3f} | {r['decode_numpy']:.3f} |")
    print()
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
