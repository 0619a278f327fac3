"""What a benchmark run writes, atomically: markdown tables with their captions, CSV files, the plot."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpose_lite.bench.accuracy import ACCURACY_METRICS
from openpose_lite.bench.plot import plot_speed
from openpose_lite.bench.run import BenchResult
from openpose_lite.bench.speed import SpeedRow
from openpose_lite.evaluation import METRIC_NAMES
from openpose_lite.inference.boxes import KEYPOINT_BOX_PADDING
from openpose_lite.io import plural, write_text_atomic

__all__ = ["accuracy_table", "markdown_report", "speed_table", "write_outputs"]

_SPEED_HEADERS: tuple[tuple[str, str, str], ...] = (
    # (SpeedRow field, table header, number format)
    ("people", "people", "d"),
    ("annotated", "annotated", "d"),
    ("bu_network_ms", "BU network", ".0f"),
    ("bu_decode_ms", "BU decode", ".2f"),
    ("bu_decode_gt_ms", "BU decode (GT maps)", ".2f"),
    ("bu_found_gt", "found (GT maps)", "d"),
    ("bu_total_ms", "BU total", ".0f"),
    ("td_boxes", "TD boxes", "d"),
    ("td_box_ms", "TD box source", ".0f"),
    ("td_crop_ms", "TD crops", ".1f"),
    ("td_network_batched_ms", "TD network batched", ".0f"),
    ("td_decode_ms", "TD decode", ".1f"),
    ("td_total_batched_ms", "TD total batched", ".0f"),
    ("td_network_single_ms", "TD network 1-by-1", ".0f"),
    ("td_total_single_ms", "TD total 1-by-1", ".0f"),
)


def _speed_caption(result: BenchResult) -> str:
    cfg, info = result.config, result.info
    h, w = cfg.image_hw
    if cfg.box_source == "gt":
        boxes = "ground-truth boxes of the scene (no cost"
        boxes += "; a random-weight bottom-up model finds nobody, so GT boxes stand in for a detector)" \
            if cfg.bu_checkpoint is None else ")"
    else:
        boxes = (f"boxes from the bottom-up people (keypoint extent padded {KEYPOINT_BOX_PADDING:.0%} a side; "
                 "cost = the bottom-up total)")
    map_h, map_w = info["map_hw"]
    return (f"Speed vs people: one generated {h}x{w} scene per point (seed {cfg.seed}), batch of one image, "
            f"device {info['device']} at {cfg.precision} ({cfg.backend}), {plural(info['threads'], 'torch thread')} on {info['cpu_count']} cores; "
            f"ms per image, median of {cfg.repeats} after {cfg.warmup} warm-up call(s) per new input shape "
            f"(numba kernels compiled before any timing). Bottom-up: {info['bottomup']} (maps {map_h}x{map_w}), "
            f"one scale, no flip; 'BU decode' decodes the network's maps, 'BU decode (GT maps)' the codec's encoding "
            f"of the scene's ground truth (median of {cfg.decode_repeats}). Top-down: {info['topdown']}, no flip, "
            f"{boxes}; 'batched' = all crops in one forward, '1-by-1' = one crop per forward. "
            f"Load average {info['load_average'][0]:.1f} before, {info['load_average'][1]:.1f} after.")


def speed_table(result: BenchResult) -> str:
    """The speed-vs-people rows as a markdown table (no caption)."""
    header = "| " + " | ".join(h for _, h, _ in _SPEED_HEADERS) + " |"
    rule = "|" + "|".join("---:" for _ in _SPEED_HEADERS) + "|"
    rows = ["| " + " | ".join(format(getattr(row, f), fmt) for f, _, fmt in _SPEED_HEADERS) + " |"
            for row in result.speed]
    return "\n".join([header, rule, *rows])


def _metric(value: float) -> str:
    return "n/a" if value < 0 else f"{value:.3f}"  # pycocotools' -1: nothing to measure


def accuracy_table(result: BenchResult) -> str | None:
    """The accuracy rows as a markdown table, or None when the run had no annotation file."""
    if not result.accuracy:
        return None
    lines = ["| | " + " | ".join(ACCURACY_METRICS) + " |", "|---|" + "|".join("---:" for _ in ACCURACY_METRICS) + "|"]
    lines += [f"| {row.name} | " + " | ".join(_metric(row.metrics[m]) for m in ACCURACY_METRICS) + " |"
              for row in result.accuracy]
    return "\n".join(lines)


def markdown_report(result: BenchResult) -> str:
    """Captions, tables and the reproducing command, as written to ``table.md``."""
    parts = [_speed_caption(result), "", speed_table(result)]
    table = accuracy_table(result)
    if table is not None:
        images = f"{result.config.images}" if result.config.images else "no images given: oracles only"
        parts += ["", f"Accuracy on {result.config.ann} ({images}), COCO keypoint metrics (pycocotools):", "", table]
    parts += ["", "Reproduce with:", "", "```", result.config.command_line(), "```", ""]
    return "\n".join(parts)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(result: BenchResult, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write speed.csv, accuracy.csv (when measured), table.md and speed.png (with matplotlib); the paths by
    name ("speed_csv", "accuracy_csv", "table", "plot")."""
    out = Path(result.config.out_dir if out_dir is None else out_dir)
    written: dict[str, Path] = {}
    names = [f.name for f in dataclasses.fields(SpeedRow)]
    rows = [[f"{v:.4f}" if isinstance(v, float) else v for v in dataclasses.astuple(r)] for r in result.speed]
    written["speed_csv"] = write_text_atomic(out / "speed.csv", _csv_text(names, rows))
    if result.accuracy:
        written["accuracy_csv"] = write_text_atomic(
            out / "accuracy.csv",
            _csv_text(["name", "branch", "kind", *METRIC_NAMES],
                      [[r.name, r.branch, r.kind, *(f"{r.metrics[m]:.6f}" for m in METRIC_NAMES)] for r in result.accuracy]))
    written["table"] = write_text_atomic(out / "table.md", markdown_report(result))
    plot = plot_speed(result, out / "speed.png")
    if plot is not None:
        written["plot"] = plot
    return written
