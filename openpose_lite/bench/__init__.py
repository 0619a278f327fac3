"""Benchmark: top-down (HRNet) vs bottom-up (OpenPose), speed as people multiply and accuracy side by side.

Random weights are fine for timing (the forward pass does the same work whatever the weights),
but a random bottom-up model finds nobody, hence the default ground-truth boxes.
"""

import importlib
from typing import Any

# Public name -> its submodule, imported on first use (PEP 562): the command line builds its
# options from BenchConfig without loading the evaluation stack.
_WHERE = {
    "ACCURACY_METRICS": "accuracy", "AccuracyRow": "accuracy",
    "BOX_SOURCES": "config", "BenchConfig": "config",
    "plot_speed": "plot",
    "accuracy_table": "report", "markdown_report": "report", "speed_table": "report", "write_outputs": "report",
    "BenchResult": "run", "run_bench": "run",
    "SpeedRow": "speed", "boxes_from_poses": "speed",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"openpose_lite.bench.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'openpose_lite.bench' has no attribute {name!r}")
