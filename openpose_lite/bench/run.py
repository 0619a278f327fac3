"""run_bench: resolve the device and threads, build the models, time them, score them."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from openpose_lite.bench.accuracy import AccuracyRow, measure_accuracy
from openpose_lite.bench.config import BenchConfig
from openpose_lite.bench.models import BenchModels, build_models
from openpose_lite.bench.speed import SpeedRow, measure_speed
from openpose_lite.devices import resolve_device, set_threads
from openpose_lite.geometry import letterbox_affine
from openpose_lite.inference.network import check_runtime

__all__ = ["BenchResult", "run_bench"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchResult:
    """What :func:`run_bench` measured, with the resolved config that reproduces it."""

    config: BenchConfig
    speed: list[SpeedRow]
    accuracy: list[AccuracyRow]
    info: dict[str, Any] = field(default_factory=dict)


def _check_paths(config: BenchConfig) -> None:
    """Missing files are refused before the minutes of timing."""
    for name in ("bu_checkpoint", "td_checkpoint", "ann"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: file not found: {path}")
    if config.images is not None and not Path(config.images).is_dir():
        raise ValueError(f"images: folder not found: {config.images}")
    if config.images is None and config.ann is not None and (config.bu_checkpoint or config.td_checkpoint):
        logger.info("no image folder given: the accuracy section holds the codec oracles only")


def _info(cfg: BenchConfig, models: BenchModels, load_before: float, speed_seconds: float) -> dict[str, Any]:
    bottomup = models.bottomup
    return {
        "bottomup": models.bu_name,
        "topdown": models.td_name,
        "device": cfg.device,
        "threads": cfg.threads,
        "cpu_count": os.cpu_count(),
        "map_hw": bottomup.codec.map_hw(letterbox_affine(cfg.image_hw, bottomup.input_size, bottomup.codec.stride)[1]),
        "random_weights": cfg.bu_checkpoint is None or cfg.td_checkpoint is None,
        "load_average": (load_before, os.getloadavg()[0]),
        "speed_seconds": speed_seconds,
    }


def run_bench(config: BenchConfig) -> BenchResult:
    """The speed-vs-people rows and, when ``config.ann`` is given, the accuracy rows, with the resolved
    config whose :meth:`BenchConfig.command_line` reproduces the run. torch's thread count is restored."""
    _check_paths(config)
    device = resolve_device(config.device)
    previous_threads = torch.get_num_threads()
    precision = check_runtime(config.backend, config.precision, device, config.calibration)
    cfg = dataclasses.replace(config, device=str(device), threads=set_threads(config.threads), precision=precision)
    load_before = os.getloadavg()[0]
    try:
        models, cfg = build_models(cfg, device)
        if cfg.box_source != "gt" and cfg.bu_checkpoint is None:
            logger.warning("box_source 'bottomup' with a random-weight bottom-up model: it finds nobody, "
                           "so the top-down branch gets no boxes; use box_source 'gt' for timing random models")
        started = time.perf_counter()
        speed = measure_speed(cfg, models)
        speed_seconds = time.perf_counter() - started
        accuracy = measure_accuracy(cfg, models) if cfg.ann is not None else []
    finally:
        torch.set_num_threads(previous_threads)
    return BenchResult(config=cfg, speed=speed, accuracy=accuracy, info=_info(cfg, models, load_before, speed_seconds))
