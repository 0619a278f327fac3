"""The two predictors a benchmark run times and scores: from checkpoints, or seeded random published-size models
(with the bench's sizes on top), built alike by :func:`openpose_lite.inference.build_predictor`."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from openpose_lite.bench.config import BOTTOMUP_ARCHS, TOPDOWN_ARCHS, BenchConfig
from openpose_lite.config import load_config
from openpose_lite.inference import (
    BottomUpPredictor,
    PredictorOptions,
    TopDownPredictor,
    build_predictor,
    require_checkpoint,
)
from openpose_lite.architectures import architecture
from openpose_lite.factory import build_model
from openpose_lite.models.weights import LoadedWeights, read_weights

__all__ = ["BenchModels", "build_models", "variant"]

P = TypeVar("P")


@dataclass
class BenchModels:
    """The two predictors of a run and how to describe them."""

    bottomup: BottomUpPredictor
    topdown: TopDownPredictor
    bu_name: str
    td_name: str


def variant(predictor: P, **settings: Any) -> P:
    """The same predictor (model, codec, device shared) with some call settings replaced (``batch_size``, ``flip``)."""
    other = copy.copy(predictor)
    for name, value in settings.items():
        if not hasattr(predictor, name):
            raise AttributeError(f"{type(predictor).__name__} has no setting {name!r}")
        setattr(other, name, value)
    return other


def _parameters(model: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"


def _predictor(loaded: LoadedWeights, cfg: BenchConfig, device: torch.device, **options: Any) -> Any:
    """The predictor of one of the run's models: the run's runtime, no flip (the accuracy section asks for it)."""
    return build_predictor(loaded, PredictorOptions(device=device, precision=cfg.precision, backend=cfg.backend,
                                                    calibration=cfg.calibration, flip=False, **options))


def _bottomup(cfg: BenchConfig, device: torch.device) -> tuple[BottomUpPredictor, str, BenchConfig]:
    if cfg.bu_checkpoint is not None:
        loaded = read_weights(cfg.bu_checkpoint)
        require_checkpoint(cfg.bu_checkpoint, loaded)
        predictor = _predictor(loaded, cfg, device, input_size=cfg.bu_input_size)
        name = f"{Path(cfg.bu_checkpoint).name}: {loaded.architecture.describe(loaded.config.model)}"
    else:
        arch = cfg.bu_arch or BOTTOMUP_ARCHS[0]
        settings = architecture(arch).settings  # each network is sized through its own fields
        sizes = {"codec.input_size": cfg.bu_input_size}
        for field_name, flag, value in ((settings.width_field, "bu_width_mult", cfg.bu_width_mult),
                                        (settings.stages_field, "bu_stages", cfg.bu_stages)):
            if field_name is not None:
                sizes[f"model.{field_name}"] = value
            elif value is not None:
                raise ValueError(f"{cfg._name(flag)}: {arch}'s settings have nothing it sizes")
        run_cfg = load_config(None, [f"model.arch={arch}", *(f"{k}={v}" for k, v in sizes.items() if v is not None)])
        width, stages = run_cfg.model.settings.size
        cfg = dataclasses.replace(cfg, bu_arch=arch, bu_width_mult=width, bu_stages=stages)
        torch.manual_seed(cfg.seed)  # the random weights reproduce, whatever ran before
        model = build_model(run_cfg.model)
        predictor = _predictor(LoadedWeights(model, architecture(arch), None, run_cfg), cfg, device)
        name = f"{architecture(arch).describe(run_cfg.model)}, random weights"
    cfg = dataclasses.replace(cfg, bu_input_size=predictor.input_size)
    return predictor, f"{name}, {_parameters(predictor.model)}, input height {predictor.input_size}", cfg


def _topdown(cfg: BenchConfig, device: torch.device) -> tuple[TopDownPredictor, str, BenchConfig]:
    if cfg.td_checkpoint is not None:
        loaded = read_weights(cfg.td_checkpoint)
        predictor = _predictor(loaded, cfg, device)
        h, w = predictor.codec.input_hw
        name = f"{Path(cfg.td_checkpoint).name}: {loaded.architecture.describe(loaded.config.model)} {h}x{w}"
    else:
        arch = cfg.td_arch or TOPDOWN_ARCHS[0]
        overrides = [f"model.arch={arch}"]
        if cfg.hrnet_width is not None:
            overrides.append(f"model.width={cfg.hrnet_width}")
        run_cfg = load_config(None, overrides)
        h, w = run_cfg.topdown.input_hw if cfg.td_input_hw is None else cfg.td_input_hw
        torch.manual_seed(cfg.seed + 1)
        model = build_model(run_cfg.model)
        stride = int(model.stride)
        run_cfg = load_config(None, [*overrides, f"topdown.input_hw=[{h},{w}]",
                                     f"topdown.heatmap_hw=[{h // stride},{w // stride}]"])
        cfg = dataclasses.replace(cfg, td_arch=arch, td_input_hw=(h, w))
        predictor = _predictor(LoadedWeights(model, architecture(arch), None, run_cfg), cfg, device)
        name = f"{architecture(arch).describe(run_cfg.model)} {h}x{w}, random weights"
    return predictor, f"{name}, {_parameters(predictor.model)}", cfg


def build_models(cfg: BenchConfig, device: torch.device) -> tuple[BenchModels, BenchConfig]:
    """Predictors for the run (checkpoints, or seeded random paper-size models) and the config resolved by them."""
    bottomup, bu_name, cfg = _bottomup(cfg, device)
    topdown, td_name, cfg = _topdown(cfg, device)
    return BenchModels(bottomup, topdown, bu_name, td_name), cfg
