"""Benchmark: top-down (HRNet) vs bottom-up (OpenPose), speed as people multiply and accuracy side by side.

=============== ==========================================================================
``config``      :class:`BenchConfig`: every setting of a run, and the ``openpose-lite bench`` options
``options``     dataclass fields as command-line options (build, parse back, print)
``models``      the two predictors: checkpoints, or seeded random paper-size models
``speed``       :class:`SpeedRow`: both pipelines timed on generated scenes of N people
``accuracy``    :class:`AccuracyRow`: codec oracles and models on a COCO file, side by side
``run``         :func:`run_bench` -> :class:`BenchResult`
``report``      markdown tables, CSV files, :func:`write_outputs`
``plot``        the speed figure (matplotlib, optional)
=============== ==========================================================================

Random weights are fine for timing (the forward pass does the same work whatever the weights),
but a random bottom-up model finds nobody, hence the default ground-truth boxes. The library
logs and returns tables; ``openpose-lite bench`` prints them with the command line that
reproduces them (:meth:`BenchConfig.command_line`).
"""

from openpose_lite.bench.accuracy import ACCURACY_METRICS, AccuracyRow
from openpose_lite.bench.config import BOX_SOURCES, BenchConfig
from openpose_lite.bench.plot import plot_speed
from openpose_lite.bench.report import accuracy_table, markdown_report, speed_table, write_outputs
from openpose_lite.bench.run import BenchResult, run_bench
from openpose_lite.bench.speed import SpeedRow
from openpose_lite.inference.boxes import boxes_from_poses

__all__ = [
    "ACCURACY_METRICS",
    "BOX_SOURCES",
    "AccuracyRow",
    "BenchConfig",
    "BenchResult",
    "SpeedRow",
    "accuracy_table",
    "boxes_from_poses",
    "markdown_report",
    "plot_speed",
    "run_bench",
    "speed_table",
    "write_outputs",
]
