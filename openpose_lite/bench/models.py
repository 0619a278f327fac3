"""The two predictors a benchmark run times and scores: from checkpoints, or seeded random published-size models.

Random models are the published networks of the architectures chosen (``bu_arch``, ``td_arch``:
:func:`openpose_lite.models.factory.published_config`, rows of the architecture table) with the
bench's overrides on top, built by :func:`openpose_lite.models.factory.build_model`; their configs
come from :func:`openpose_lite.config.load_config` (the architecture's published settings), and
their predictors from the predictors' own ``from_model``, so they decode as the predictors of a
checkpoint with those settings would.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from openpose_lite.bench.config import BOTTOMUP_ARCHS, TOPDOWN_ARCHS, BenchConfig
from openpose_lite.config import config_from_dict, config_to_dict, load_config
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor, require_checkpoint
from openpose_lite.models.architectures import architecture
from openpose_lite.models.factory import build_model
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
    bu_random: bool
    td_random: bool


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


def _runtime(cfg: BenchConfig) -> dict[str, Any]:
    """The runtime options both predictors of a run share."""
    return {"precision": cfg.precision, "backend": cfg.backend, "calibration": cfg.calibration}


def _describe(loaded: LoadedWeights) -> str:
    """A loaded file's network in words, from the config it runs with."""
    return loaded.architecture.describe(config_from_dict(loaded.config, where="weights config").model)


def _bottomup(cfg: BenchConfig, device: torch.device) -> tuple[BottomUpPredictor, str, BenchConfig]:
    if cfg.bu_checkpoint is not None:
        loaded = read_weights(cfg.bu_checkpoint)
        require_checkpoint(cfg.bu_checkpoint, loaded)
        predictor = BottomUpPredictor.from_model(loaded.model, loaded.config, cfg.bu_checkpoint, device=device,
                                                 input_size=cfg.bu_input_size, **_runtime(cfg))
        name = f"{Path(cfg.bu_checkpoint).name}: {_describe(loaded)}"
    else:
        arch = cfg.bu_arch or BOTTOMUP_ARCHS[0]
        sizes = {"model.num_stages": cfg.bu_stages, "model.width_mult": cfg.bu_width_mult,
                 "codec.input_size": cfg.bu_input_size}
        run_cfg = load_config(None, [f"model.arch={arch}", *(f"{k}={v}" for k, v in sizes.items() if v is not None)])
        cfg = dataclasses.replace(cfg, bu_arch=arch, bu_width_mult=run_cfg.model.width_mult,
                                  bu_stages=run_cfg.model.num_stages)
        torch.manual_seed(cfg.seed)  # the random weights reproduce, whatever ran before
        model = build_model(run_cfg.model)
        predictor = BottomUpPredictor.from_model(model, config_to_dict(run_cfg), "random weights", device=device,
                                                 **_runtime(cfg))
        name = f"{architecture(arch).describe(run_cfg.model)}, random weights"
    cfg = dataclasses.replace(cfg, bu_input_size=predictor.input_size)
    return predictor, f"{name}, {_parameters(predictor.model)}, input height {predictor.input_size}", cfg


def _topdown(cfg: BenchConfig, device: torch.device) -> tuple[TopDownPredictor, str, BenchConfig]:
    if cfg.td_checkpoint is not None:
        loaded = read_weights(cfg.td_checkpoint)
        predictor = TopDownPredictor.from_model(loaded.model, loaded.config, cfg.td_checkpoint, device=device,
                                                **_runtime(cfg))
        h, w = predictor.codec.input_hw
        name = f"{Path(cfg.td_checkpoint).name}: {_describe(loaded)} {h}x{w}"
    else:
        arch = cfg.td_arch or TOPDOWN_ARCHS[0]
        overrides = [f"model.arch={arch}"]
        if cfg.hrnet_width is not None:
            overrides.append(f"model.hrnet_width={cfg.hrnet_width}")
        run_cfg = load_config(None, overrides)
        h, w = run_cfg.topdown.input_hw if cfg.td_input_hw is None else cfg.td_input_hw
        torch.manual_seed(cfg.seed + 1)
        model = build_model(run_cfg.model)
        stride = int(model.stride)
        run_cfg = load_config(None, [*overrides, f"topdown.input_hw=[{h},{w}]",
                                     f"topdown.heatmap_hw=[{h // stride},{w // stride}]"])
        cfg = dataclasses.replace(cfg, td_arch=arch, td_input_hw=(h, w))
        predictor = TopDownPredictor.from_model(model, config_to_dict(run_cfg), "random weights", device=device,
                                                **_runtime(cfg))
        name = f"{architecture(arch).describe(run_cfg.model)} {h}x{w}, random weights"
    return predictor, f"{name}, {_parameters(predictor.model)}", cfg


def build_models(cfg: BenchConfig, device: torch.device) -> tuple[BenchModels, BenchConfig]:
    """Predictors for the run (checkpoints, or seeded random paper-size models) and the config resolved by them."""
    bottomup, bu_name, cfg = _bottomup(cfg, device)
    topdown, td_name, cfg = _topdown(cfg, device)
    return BenchModels(bottomup, topdown, bu_name, td_name, cfg.bu_checkpoint is None, cfg.td_checkpoint is None), cfg
