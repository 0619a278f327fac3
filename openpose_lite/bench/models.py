"""The two predictors a benchmark run times and scores: from checkpoints, or seeded random paper-size models.

Random models are built by :func:`openpose_lite.models.factory.build_model` from the papers'
:data:`~openpose_lite.models.factory.PAPER` sizes with the bench's overrides on top, and their
codecs by the config's one codec builders (:func:`~openpose_lite.config.build_bottomup_codec`,
``build_topdown_codec``) with the model's stride, so they decode as the predictors of a
checkpoint with those settings would.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from openpose_lite.bench.config import BOTTOMUP_ARCHS, BenchConfig
from openpose_lite.config import CodecConfig, Config, TopDownConfig, build_bottomup_codec, build_topdown_codec
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor
from openpose_lite.models.factory import PAPER, build_model
from openpose_lite.models.mobilenet_paf import MobileNetPafNet
from openpose_lite.models.vgg19_paf import VGG19PafNet

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


def _bottomup(cfg: BenchConfig, device: torch.device) -> tuple[BottomUpPredictor, str, BenchConfig]:
    if cfg.bu_checkpoint is not None:
        predictor = BottomUpPredictor.from_checkpoint(cfg.bu_checkpoint, device=device, input_size=cfg.bu_input_size,
                                                      precision=cfg.precision)
        model = predictor.model
        if not isinstance(model, (VGG19PafNet, MobileNetPafNet)):
            raise ValueError(f"bu_checkpoint: {cfg.bu_checkpoint} holds a {type(model).__name__}, not a bottom-up "
                             "network (VGG19PafNet, MobileNetPafNet)")
        name = f"{Path(cfg.bu_checkpoint).name}: {type(model).__name__} {model.num_stages} stages, width x{model.width_mult:g}"
    else:
        paper = BOTTOMUP_ARCHS[cfg.bu_arch]
        model_cfg = dataclasses.replace(
            paper, num_stages=paper.num_stages if cfg.bu_stages is None else cfg.bu_stages,
            width_mult=paper.width_mult if cfg.bu_width_mult is None else cfg.bu_width_mult)
        cfg = dataclasses.replace(cfg, bu_width_mult=model_cfg.width_mult, bu_stages=model_cfg.num_stages)
        torch.manual_seed(cfg.seed)  # the random weights reproduce, whatever ran before
        model = build_model(model_cfg)
        codec_cfg = CodecConfig() if cfg.bu_input_size is None else CodecConfig(input_size=cfg.bu_input_size)
        codec = build_bottomup_codec(Config(model=model_cfg, codec=codec_cfg), skeleton=model.skeleton)
        predictor = BottomUpPredictor(model, codec, input_size=codec_cfg.input_size, device=device,
                                      precision=cfg.precision)
        name = f"{type(model).__name__} {model_cfg.num_stages} stages, width x{model_cfg.width_mult:g}, random weights"
    cfg = dataclasses.replace(cfg, bu_input_size=predictor.input_size)
    return predictor, f"{name}, {_parameters(predictor.model)}, input height {predictor.input_size}", cfg


def _topdown(cfg: BenchConfig, device: torch.device) -> tuple[TopDownPredictor, str, BenchConfig]:
    if cfg.td_checkpoint is not None:
        predictor = TopDownPredictor.from_weights(cfg.td_checkpoint, device=device, precision=cfg.precision)
        h, w = predictor.codec.input_hw
        name = f"{Path(cfg.td_checkpoint).name}: HRNet-W{getattr(predictor.model, 'width', '?')} {h}x{w}"
    else:
        model_cfg = dataclasses.replace(PAPER, arch="hrnet",
                                        hrnet_width=PAPER.hrnet_width if cfg.hrnet_width is None else cfg.hrnet_width)
        defaults = TopDownConfig()
        h, w = defaults.input_hw if cfg.td_input_hw is None else cfg.td_input_hw
        cfg = dataclasses.replace(cfg, hrnet_width=model_cfg.hrnet_width, td_input_hw=(h, w))
        torch.manual_seed(cfg.seed + 1)
        model = build_model(model_cfg)
        td_cfg = dataclasses.replace(defaults, input_hw=(h, w), heatmap_hw=(h // model.stride, w // model.stride))
        predictor = TopDownPredictor(model, build_topdown_codec(Config(model=model_cfg, topdown=td_cfg)),
                                     device=device, padding=td_cfg.padding, precision=cfg.precision)
        name = f"HRNet-W{model_cfg.hrnet_width} {h}x{w}, random weights"
    return predictor, f"{name}, {_parameters(predictor.model)}", cfg


def build_models(cfg: BenchConfig, device: torch.device) -> tuple[BenchModels, BenchConfig]:
    """Predictors for the run (checkpoints, or seeded random paper-size models) and the config resolved by them."""
    bottomup, bu_name, cfg = _bottomup(cfg, device)
    topdown, td_name, cfg = _topdown(cfg, device)
    return BenchModels(bottomup, topdown, bu_name, td_name, cfg.bu_checkpoint is None, cfg.td_checkpoint is None), cfg
