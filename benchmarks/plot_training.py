"""Plot a training run's curves from its metrics.jsonl: losses per epoch and the validation AP.

    python benchmarks/plot_training.py runs/vgg19_synthetic_cpu/metrics.jsonl -o docs/images/train_vgg19_synthetic_cpu.png

Also prints the per-epoch table (markdown) that docs/benchmarks.md shows. Needs matplotlib
(``pip install openpose-lite[plot]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openpose_lite.engine import read_jsonl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="metrics.jsonl of a run")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default: next to the metrics)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)

    epochs = [r for r in read_jsonl(args.metrics) if r.get("type") == "epoch"]
    if not epochs:
        print(f"{args.metrics}: no epoch records", file=sys.stderr)
        return 2
    # A resumed run appends: keep the last record of each epoch.
    by_epoch = {r["epoch"]: r for r in epochs}
    epochs = [by_epoch[e] for e in sorted(by_epoch)]

    print("| epoch | train loss | val loss | val AP | lr | s | img/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in epochs:
        ap = f"{r['val/AP']:.3f}" if "val/AP" in r else ""
        val = f"{r['val/loss']:.1f}" if "val/loss" in r else ""
        print(f"| {r['epoch']} | {r['train/loss']:.1f} | {val} | {ap} | {r['train/lr']:.0e} | "
              f"{r['train/seconds']:.0f} | {r['train/samples_per_s']:.1f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["epoch"] for r in epochs]
    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(x, [r["train/loss"] for r in epochs], "o-", label="train")
    if all("val/loss" in r for r in epochs):
        ax_loss.plot(x, [r["val/loss"] for r in epochs], "s-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (sum over stages and branches)")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    evaluated = [r for r in epochs if "val/AP" in r]
    ax_ap.plot([r["epoch"] for r in evaluated], [r["val/AP"] for r in evaluated], "o-", label="AP")
    ax_ap.plot([r["epoch"] for r in evaluated], [r["val/AP50"] for r in evaluated], "s--", label="AP50")
    ax_ap.set_xlabel("epoch")
    ax_ap.set_ylabel("validation COCO keypoint AP")
    ax_ap.set_ylim(0, 1)
    ax_ap.set_xlim(0, max(x) + 1)
    ax_ap.legend()
    ax_ap.grid(alpha=0.3)
    fig.suptitle(args.title or str(args.metrics.parent.name))
    fig.tight_layout()
    out = args.output or args.metrics.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
