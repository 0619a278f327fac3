"""Weight files -> ready models, through the architecture table: the front door of :mod:`openpose_lite.models`.

A file is read once (``torch.load(..., weights_only=True)``: data, never code) and unwrapped once
(:func:`~openpose_lite.models.state_dict.unwrap_weights`). **Our checkpoints** carry their config and are
built by its ``model.arch``; **foreign files** (CMU, Lightweight OpenPose, HRNet, ...) meet the weight layouts
of :data:`~openpose_lite.architectures.ARCHITECTURES` in table order: the first whose ``detect`` accepts the
key set converts the state to our names and gives the model sizes, and its ``settings`` (the reference's
input conventions) go into the config. Either way the network must then take the state exactly (the one
key and shape check). ImageNet classifiers are refused as pose models: they initialise a trunk
(:func:`load_backbone`, ``--backbone-weights``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openpose_lite.config import Config, config_from_dict, upgrade_stored_config
from openpose_lite.architectures import (ARCHITECTURES, Architecture, WeightLayout, architecture, architecture_of,
                                         resolve)
from openpose_lite.models.caffemodel import is_caffemodel_path
from openpose_lite.factory import ModelConfig, build_model, model_fields
from openpose_lite.models.state_dict import load_exact, load_state_dict_file, sample_keys, unwrap_weights
from openpose_lite.skeleton import Skeleton

__all__ = ["LoadedWeights", "detect_layout", "init_from_weights", "load_backbone", "load_model", "read_weights",
           "unwrap_weights"]

logger = logging.getLogger(__name__)


@dataclass
class LoadedWeights:
    """A weights file, loaded: the network (eval mode), its row of the table, the foreign layout it
    came in (``None`` for our checkpoints), ``config``, the :class:`~openpose_lite.config.Config` to run
    it with, parsed once (ours: the stored one; a foreign file: the defaults, its model sizes and its
    layout's reference settings), and ``source``, the file in words (for messages)."""

    model: nn.Module
    architecture: Architecture
    layout: WeightLayout | None
    config: Config
    source: str = "model"

    @property
    def skeleton(self) -> Skeleton:
        """The network's skeleton (``model.skeleton``; for a foreign file the person skeleton of its branch)."""
        return self.model.skeleton

    @property
    def ours(self) -> bool:
        """Whether the file is one of our checkpoints (it carried its config)."""
        return self.layout is None


class StateKeys(frozenset):
    """The key set of a state dict, with each tensor's shape (``shapes``): what layout detectors see, for
    the layouts that share their names (CMU's COCO and MPI models) and differ in shapes."""

    shapes: dict[str, tuple[int, ...]]

    def __new__(cls, state: Mapping[str, Any]) -> "StateKeys":
        keys = super().__new__(cls, state)
        keys.shapes = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
        return keys


def detect_layout(state: Mapping[str, Any]) -> tuple[Architecture, WeightLayout]:
    """The first (architecture, layout) of the table whose ``detect`` accepts an unwrapped state dict's keys.

    Raises:
        ValueError: an ImageNet classifier (named, with what it is for), or no layout at all (the
            message names a few keys and the layouts known).
    """
    keys = StateKeys(state)
    for row in ARCHITECTURES:
        for layout in row.layouts:
            if resolve(layout.detect)(keys):
                return row, layout
    for row in ARCHITECTURES:
        if row.backbone is not None and resolve(row.backbone.detect)(keys):
            raise ValueError(f"holds an ImageNet classification network ({row.backbone.what}), not a pose model; "
                             f"it initialises the trunk of model.arch {row.name} for training (--backbone-weights)")
    known = ", ".join(layout.name for row in ARCHITECTURES for layout in row.layouts)
    raise ValueError(f"a state dict in no known layout: {len(keys)} keys such as {sample_keys(keys)}; the layouts "
                     f"known are {known} (docs/architecture.md), and a checkpoint of ours carries its config")


def _merged(*deltas: Mapping[str, Mapping[str, Any]]) -> Config:
    """The defaults with config deltas (``{section: {key: value}}``) applied in order, checked."""
    resolved: dict[str, dict[str, Any]] = {}
    for delta in deltas:
        for section, values in delta.items():
            resolved.setdefault(section, {}).update(values)
    return config_from_dict(resolved)


def _stored_model_config(config: Mapping[str, Any], source: str) -> ModelConfig:
    """A checkpoint's ``config["model"]`` (upgraded, :func:`upgrade_stored_config`), restricted to the keys of
    its network: checkpoints may also carry options of other parts there (e.g. ``pretrained``), which do
    not change the network."""
    model_cfg = upgrade_stored_config(config).get("model", {})
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"{source}: checkpoint config['model'] must be a dict, got {type(model_cfg).__name__}")
    known = model_fields(model_cfg.get("arch", ModelConfig.arch))
    ignored = sorted(set(model_cfg) - set(known))
    if ignored:
        logger.debug("%s: config['model'] keys %s do not describe the network; ignored", source, ignored)
    try:
        return ModelConfig.from_dict({k: v for k, v in model_cfg.items() if k in known})
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def read_weights(path: str | Path, device: str | torch.device | None = None, all_stages: bool = False) -> LoadedWeights:
    """Any supported weights file -> :class:`LoadedWeights` (the model in eval mode on ``device``).

    ``all_stages``: build every stage a foreign file holds, not only those its reference runs
    (Lightweight OpenPose keeps one refinement stage; for starting a training run from the file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, unknown layout, an ImageNet classifier, or keys and shapes
            that do not fit the model (each named).
    """
    source = str(path)
    if is_caffemodel_path(path):  # CMU's Caffe file: its weights in Caffe layer names, a foreign state dict
        from openpose_lite.models.cmu_caffe_weights import read_body_caffemodel

        obj = read_body_caffemodel(path)
    else:
        obj = load_state_dict_file(path)
    state, config = unwrap_weights(obj, source)
    if config is not None:
        model_cfg = _stored_model_config(config, source)
        row, layout = architecture(model_cfg.arch), None
        rest = config_from_dict({k: v for k, v in config.items() if k != "model"}, where=f"{source} config")
        config = replace(rest, model=model_cfg)
        stored = obj.get("skeleton")
        model = build_model(model_cfg, Skeleton.from_dict(stored, source=f"{source} skeleton") if stored else None)
    else:
        try:
            row, layout = detect_layout(state)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        settings, state = resolve(layout.convert)(state, source, all_stages=all_stages)
        # The settings read from the file, and the input normalisation its reference fed it.
        model_cfg = ModelConfig(arch=row.name, settings=settings, **layout.settings.get("model", {}))
        model = build_model(model_cfg, layout.skeleton)
        config = _merged(row.published, layout.settings, {"model": model_cfg.to_dict()})
    load_exact(model, state, source if layout is None else f"{source} ({layout.name})")
    logger.info("loaded %s weights (%s) from %s", row.name, "openpose_lite checkpoint" if layout is None else layout.name,
                source)
    if device is not None:
        model = model.to(device)
    return LoadedWeights(model.eval(), row, layout, config, source)


def load_model(path: str | Path, device: str | torch.device | None = None) -> nn.Module:
    """A ready-to-run model (eval mode) from a weights file in any supported layout (see :func:`read_weights`)."""
    return read_weights(path, device).model


def init_from_weights(model: nn.Module, path: str | Path) -> str:
    """Start ``model`` (in place) from a pose model file of any layout :func:`read_weights` reads, all its
    stages: every tensor of the model's names is copied, the rest keeps its initialisation; returns what was
    done, in words. As the reference trainers' "weights only" start (Lightweight OpenPose's ``train.py
    --weights-only``), a run can grow or shrink the stage count; a tensor of another shape (another width
    or skeleton) is an error, not a silent partial start."""
    loaded = read_weights(path, all_stages=True)
    row = architecture_of(model)
    if row is None or loaded.architecture is not row:
        raise ValueError(f"{path}: holds a {loaded.architecture.name} network; the model to start is "
                         f"{row.name if row else type(model).__name__} (model.arch)")
    theirs, ours = loaded.model.state_dict(), model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(ours[k].shape)}" for k, v in theirs.items()
             if k in ours and v.shape != ours[k].shape]
    if wrong:
        raise ValueError(f"{path}: {len(wrong)} tensors do not fit the model (another width or skeleton?), "
                         f"e.g. {sample_keys(wrong)}")
    copied = {k: v for k, v in theirs.items() if k in ours}
    model.load_state_dict(copied, strict=False)
    fresh = sorted({k.rsplit(".", 2)[0] for k in ours if k not in copied})
    dropped = len([k for k in theirs if k not in ours])
    text = f"started from {path} ({len(copied)} of {len(ours)} tensors)"
    if fresh:
        text += f"; {len(ours) - len(copied)} start afresh (e.g. {sample_keys(fresh)})"
    if dropped:
        text += f"; {dropped} of the file's tensors are not in this model"
    return text


def load_backbone(model: nn.Module, path: str | Path) -> str:
    """Initialise a model's trunk from its architecture's ImageNet classifier file (the table's
    ``backbone``); returns what was loaded, in words.

    Raises:
        ValueError: the architecture has no ImageNet trunk, or the file is another one's (named).
    """
    row = architecture_of(model)
    if row is None or row.backbone is None:
        raise ValueError(f"--backbone-weights: model.arch {row.name if row else type(model).__name__} has no "
                         "ImageNet trunk to initialise")
    source = str(path)
    state, _ = unwrap_weights(load_state_dict_file(path), source)
    keys = frozenset(state)
    if not resolve(row.backbone.detect)(keys):
        other = next((r for r in ARCHITECTURES if r.backbone is not None and resolve(r.backbone.detect)(keys)), None)
        held = (f"it holds {other.backbone.what}, the trunk of model.arch {other.name}" if other is not None
                else f"its {len(keys)} keys (e.g. {sample_keys(keys)}) are no ImageNet trunk we know")
        raise ValueError(f"{source}: model.arch {row.name} starts from {row.backbone.what}; {held}")
    return resolve(row.backbone.load)(model, state, source)
