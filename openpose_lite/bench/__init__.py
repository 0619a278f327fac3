"""Benchmark: top-down (HRNet) vs bottom-up (OpenPose), speed as people multiply and accuracy side by side.

=============== ==========================================================================
``config``      :class:`BenchConfig`: every setting of a run, and the ``openpose-lite bench`` options
``options``     dataclass fields as command-line options (build, parse back, print)
``models``      the two predictors: checkpoints, or seeded random paper-size models
``speed``       :class:`SpeedRow`: both pipelines timed on generated scenes of N people
``accuracy``    :class:`AccuracyRow`: codec oracles and models on a COCO file, side by side
``run``         :func:`run_bench` -> :class:`BenchResult`
``report``      markdown tables, CSV files, :func:`write_outputs`
``plot``        the speed figure (matplotlib)
=============== ==========================================================================

Random weights are fine for timing (the forward pass does the same work whatever the weights),
but a random bottom-up model finds nobody, hence the default ground-truth boxes. The library
logs and returns tables; ``openpose-lite bench`` prints them with the command line that
reproduces them (:meth:`BenchConfig.command_line`).
"""

import importlib
from typing import Any

# Public name -> the submodule defining it. Imported on first use (PEP 562), so that the command
# line, which builds its options from BenchConfig, does not load the evaluation stack with it.
_WHERE = {
    "ACCURACY_METRICS": "accuracy", "AccuracyRow": "accuracy",
    "BOX_SOURCES": "config", "BenchConfig": "config",
    "plot_speed": "plot",
    "accuracy_table": "report", "markdown_report": "report", "speed_table": "report", "write_outputs": "report",
    "BenchResult": "run", "run_bench": "run",
    "SpeedRow": "speed",
}

__all__ = sorted([*_WHERE, "boxes_from_poses"])


def __getattr__(name: str) -> Any:
    if name == "boxes_from_poses":
        from openpose_lite.inference.boxes import boxes_from_poses

        return boxes_from_poses
    if name in _WHERE:
        return getattr(importlib.import_module(f"openpose_lite.bench.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'openpose_lite.bench' has no attribute {name!r}")
