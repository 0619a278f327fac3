"""Plot a training run's curves from its metrics.jsonl: losses per epoch and the validation AP.

    python benchmarks/plot_training.py runs/vgg19_synthetic_cpu/metrics.jsonl -o docs/images/train_vgg19_synthetic_cpu.png

Also prints the per-epoch table (markdown) that docs/benchmarks.md shows. The AP panel shows
the epochs the run evaluated (``train.eval_every``; 1 gives a point every epoch). The figure
needs matplotlib (``pip install 'openpose-lite[plot]'``); without it the table is still
printed, then one line says the figure was not written (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from openpose_lite.training.metrics import read_jsonl

EXIT_OK, EXIT_NO_PLOT, EXIT_NO_DATA = 0, 1, 2

# (metrics key, label, colour, line style, marker) per panel: no two series alike.
LOSSES = (("train/loss", "train", "tab:blue", "-", "o"), ("val/loss", "validation", "tab:orange", "--", "s"))
APS = (("val/AP", "AP", "tab:green", "-", "o"), ("val/AP50", "AP50", "tab:purple", "--", "^"))


def epoch_records(path: Path) -> list[dict[str, Any]]:
    """The epoch records of a metrics.jsonl, one per epoch in order (a resumed run appends: the last wins)."""
    by_epoch = {r["epoch"]: r for r in read_jsonl(path) if r.get("type") == "epoch"}
    return [by_epoch[e] for e in sorted(by_epoch)]


def table(epochs: list[dict[str, Any]]) -> str:
    lines = ["| epoch | train loss | val loss | val AP | lr | s | img/s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in epochs:
        ap = f"{r['val/AP']:.3f}" if "val/AP" in r else ""
        val = f"{r['val/loss']:.1f}" if "val/loss" in r else ""
        lines.append(f"| {r['epoch']} | {r['train/loss']:.1f} | {val} | {ap} | {r['train/lr']:.0e} | "
                     f"{r['train/seconds']:.0f} | {r['train/samples_per_s']:.1f} |")
    return "\n".join(lines)


def _series(ax: Any, epochs: list[dict[str, Any]], series: tuple) -> None:
    for key, label, colour, style, marker in series:
        points = [(r["epoch"], r[key]) for r in epochs if key in r]
        if points:
            ax.plot(*zip(*points), color=colour, linestyle=style, marker=marker, label=label)


def training_figure(epochs: list[dict[str, Any]], title: str) -> Any:
    """Losses (log axis, plain-number labels) and validation AP per epoch; the caller closes the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from openpose_lite.bench.plot import plain_log_axis

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(10, 3.8))
    _series(ax_loss, epochs, LOSSES)
    ax_loss.set_yscale("log")
    plain_log_axis(ax_loss.yaxis, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0))
    ax_loss.set_ylabel("loss (sum over stages and branches)")
    _series(ax_ap, epochs, APS)
    evaluated = sum("val/AP" in r for r in epochs)
    ax_ap.set_ylabel("validation COCO keypoint AP")
    ax_ap.set_title(f"evaluated at {evaluated} of {len(epochs)} epochs", fontsize=9)
    ax_ap.set_ylim(0, 1)
    for ax in (ax_loss, ax_ap):
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(r["epoch"] for r in epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="metrics.jsonl of a run")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default: next to the metrics)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)

    epochs = epoch_records(args.metrics)
    if not epochs:
        print(f"{args.metrics}: no epoch records", file=sys.stderr)
        return EXIT_NO_DATA
    print(table(epochs))
    out = args.output or args.metrics.with_suffix(".png")
    try:
        import matplotlib
    except ImportError:
        print(f"plot_training.py: {out} not written: matplotlib is not installed (pip install 'openpose-lite[plot]')",
              file=sys.stderr)
        return EXIT_NO_PLOT
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = training_figure(epochs, args.title or str(args.metrics.parent.name))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    print(f"\nwrote {out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
