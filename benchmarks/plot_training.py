"""Plot a training run's curves from its metrics.jsonl, and print its per-epoch table.

    python benchmarks/plot_training.py runs/vgg19_synthetic_cpu/metrics.jsonl -o docs/images/train_vgg19_synthetic_cpu.png

The figure is the one every training run writes into its folder as ``curves.png``
(:mod:`openpose_lite.training.curves`: losses per stage and branch, learning rate, validation AP
at the epochs evaluated), drawn here for any log, e.g. for the docs. Also prints the per-epoch
table (markdown) that docs/benchmarks.md shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from openpose_lite.training.curves import epoch_records, write_curves
from openpose_lite.training.metrics import read_jsonl

EXIT_OK, EXIT_NO_DATA = 0, 2


def table(epochs: list[dict[str, Any]]) -> str:
    lines = ["| epoch | train loss | val loss | val AP | lr | s | img/s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in epochs:
        ap = f"{r['val/AP']:.3f}" if "val/AP" in r else ""
        val = f"{r['val/loss']:.1f}" if "val/loss" in r else ""
        lines.append(f"| {r['epoch']} | {r['train/loss']:.1f} | {val} | {ap} | {r['train/lr']:.0e} | "
                     f"{r['train/seconds']:.0f} | {r['train/samples_per_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="metrics.jsonl of a run")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default: next to the metrics)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)

    epochs = epoch_records(read_jsonl(args.metrics))
    if not epochs:
        print(f"{args.metrics}: no epoch records", file=sys.stderr)
        return EXIT_NO_DATA
    print(table(epochs))
    out = args.output or args.metrics.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_curves(args.metrics, out, args.title or args.metrics.parent.name)
    print(f"\nwrote {out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
