"""Weight files in any supported layout -> a ready model: the front door of :mod:`openpose_lite.models`.

Layouts are recognised by :func:`~openpose_lite.models.layouts.detect_layout` (a table,
:data:`~openpose_lite.models.layouts.LAYOUTS`) and converted by their own modules:

* ``openpose_lite``: our own state dict (``trunk.conv1_1.weight`` ...), bare or inside a
  checkpoint dict ``{"model": state_dict, "config": {...}}``;
* ``cmu_named`` / ``cmu_numbered``: the CMU COCO body model (:mod:`~openpose_lite.models.cmu_weights`);
* ``hrnet``: official pose-HRNet files (:func:`~openpose_lite.models.hrnet.convert_hrnet_official`);
* ``lightweight``: Lightweight OpenPose, the reference's training checkpoints
  (``{"state_dict": ..., "optimizer": ..., "iter": ...}``) or bare state dicts, and our
  ``mobilenet_paf`` checkpoints (:mod:`~openpose_lite.models.mobilenet_weights`);
* ``torchvision_vgg19`` / ``hrnet_imagenet`` / ``mobilenet_imagenet``: ImageNet trunks for
  training only (:mod:`~openpose_lite.models.imagenet_weights`, ``--backbone-weights``).

Everything is read with ``torch.load(..., map_location="cpu", weights_only=True)``
(:func:`~openpose_lite.models.state_dict.load_state_dict_file`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openpose_lite.models.cmu_weights import CMU_LAYOUTS, cmu_stage_count, convert_cmu_state_dict
from openpose_lite.models.factory import ModelConfig, build_model_from_config_dict
from openpose_lite.models.hrnet import build_hrnet, convert_hrnet_official, hrnet_config_from_state_dict
from openpose_lite.models.imagenet_weights import load_backbone, load_hrnet_imagenet, load_vgg19_imagenet
from openpose_lite.models.layouts import LAYOUTS, detect_layout
from openpose_lite.models.mobilenet_paf import build_mobilenet_paf
from openpose_lite.models.mobilenet_weights import (
    REFERENCE_REFINEMENT_STAGES,
    convert_lightweight_checkpoint,
    keep_refinement_stages,
    lightweight_config_from_state_dict,
)
from openpose_lite.models.state_dict import (
    load_exact,
    load_state_dict_file,
    sample_keys,
    split_checkpoint,
    strip_module_prefix,
)
from openpose_lite.models.vgg19_paf import ARCH as VGG19_PAF_ARCH
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf

__all__ = [
    # defined here
    "load_model",
    "load_model_with_config",
    "init_from_weights",
    "load_weights_into",
    # the public names of the layout modules, importable from here as they always were
    "LAYOUTS",
    "build_model_from_config_dict",
    "convert_cmu_state_dict",
    "detect_layout",
    "load_backbone",
    "load_hrnet_imagenet",
    "load_state_dict_file",
    "load_vgg19_imagenet",
    "split_checkpoint",
    "strip_module_prefix",
]

logger = logging.getLogger(__name__)


def load_weights_into(model: VGG19PafNet, path: str | Path) -> str:
    """Load any supported layout into an existing model (in place); returns the layout name.

    Our own files and CMU files must match the model exactly (a CMU file may hold more
    stages than the model); torchvision VGG19 files fill the trunk only.
    """
    state, _ = split_checkpoint(load_state_dict_file(path), str(path))
    state = strip_module_prefix(state)
    layout = detect_layout(state)
    if layout == "torchvision_vgg19":
        load_vgg19_imagenet(model, path)
    elif layout in CMU_LAYOUTS:
        load_exact(model, convert_cmu_state_dict(state, num_stages=model.num_stages), f"{path} ({layout})")
    elif layout == "openpose_lite":
        load_exact(model, state, str(path))
    else:
        raise ValueError(f"{path}: layout {layout!r} cannot be loaded into {type(model).__name__}")
    return layout


def _lightweight_model(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None, source: str,
                       all_stages: bool) -> nn.Module:
    """A Lightweight OpenPose layout file's network: ours from its config, the reference's as the reference runs it."""
    if config is not None and isinstance(config.get("model"), Mapping):
        model = build_model_from_config_dict(_network_config(config["model"], source))
    else:
        sizes = lightweight_config_from_state_dict(state)
        held = sizes["num_refinement_stages"]
        sizes["num_refinement_stages"] = held if all_stages else min(held, REFERENCE_REFINEMENT_STAGES)
        if held > sizes["num_refinement_stages"]:
            logger.info("%s holds %d refinement stages; running the first %d, as the reference's val.py and "
                        "demo.py do (its published AP is that network's)", source, held, sizes["num_refinement_stages"])
            state = keep_refinement_stages(state, sizes["num_refinement_stages"])
        model = build_mobilenet_paf(**sizes)
    load_exact(model, convert_lightweight_checkpoint(state), f"{source} (lightweight)")
    return model


def init_from_weights(model: nn.Module, path: str | Path) -> str:
    """Start ``model`` (in place) from a pose model file: every tensor of the same name and shape is
    copied, the rest keeps its initialisation; returns what was done, in words.

    The file may be of any layout :func:`load_model_with_config` reads (our checkpoints, CMU,
    Lightweight OpenPose with all its stages, official HRNet). This is the reference trainers'
    "weights only" start (Lightweight OpenPose: ``train.py --weights-only``, whose
    ``load_state`` copies the keys the network has): stages the file lacks start afresh and
    stages the model lacks are left out, so a run can grow or shrink the stage count. A
    tensor whose shape differs (another width or skeleton) is an error, not a silent partial start.
    """
    source, _ = load_model_with_config(path, all_stages=True)
    if type(source) is not type(model):
        raise ValueError(f"{path}: holds a {type(source).__name__}; the model to start is a {type(model).__name__}")
    theirs, ours = source.state_dict(), model.state_dict()
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


_STAGE_KEY = re.compile(r"^stages\.(\d+)\.")


def _infer_vgg19_paf_config(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Model config of a bare state dict in our layout, read from its tensor shapes."""
    try:
        num_stages = 1 + max(int(m.group(1)) for k in state if (m := _STAGE_KEY.match(k)))
        stage_channels = int(state["stages.0.pafs.conv1.weight"].shape[0])
        # The widest layer gives the most precise width multiplier.
        width_mult = int(state["trunk.conv4_2.weight"].shape[0]) / 512
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{source}: cannot infer the model size from a bare state dict ({exc}); save a checkpoint with its config") from exc
    return {"arch": VGG19_PAF_ARCH, "num_stages": num_stages, "stage_channels": stage_channels, "width_mult": width_mult}


def _network_config(model_cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A checkpoint's ``config["model"]``, restricted to :class:`~openpose_lite.models.factory.ModelConfig`'s
    fields: checkpoints may also carry options of other parts there (e.g. ``pretrained``), which do
    not change the network, so they are ignored here (a config file is checked strictly instead)."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    ignored = sorted(set(model_cfg) - known)
    if ignored:
        logger.debug("%s: config['model'] keys %s do not describe the network; ignored", source, ignored)
    return {k: v for k, v in model_cfg.items() if k in known}


def load_model(path: str | Path, device: str | torch.device | None = None) -> nn.Module:
    """A ready-to-run model (eval mode) from a weights file in any supported layout.

    See :func:`load_model_with_config`, which also returns the checkpoint's config.
    """
    return load_model_with_config(path, device)[0]


def load_model_with_config(
    path: str | Path, device: str | torch.device | None = None, all_stages: bool = False
) -> tuple[nn.Module, dict[str, Any] | None]:
    """(model in eval mode, the checkpoint's config dict or None) from a weights file in any layout.

    The file is read once; predictors use the config's codec section when there is one.
    ``all_stages``: build every refinement stage a Lightweight OpenPose file holds, not only
    the one the reference runs (for starting a training run from the file: :func:`init_from_weights`).

    * CMU files (``cmu_named`` / ``cmu_numbered``): the full-width CMU model with the file's
      stage count (6 for the published weights).
    * Official HRNet pose files (``hrnet``): HRNet of the file's width and keypoint count;
      our HRNet checkpoints share that layout and carry their config.
    * Lightweight OpenPose files (``lightweight``): the network of the file's widths with at most
      one refinement stage, as the reference runs its files (further stages, which its published
      checkpoint holds, are left out: :data:`~openpose_lite.models.mobilenet_weights.REFERENCE_REFINEMENT_STAGES`);
      our ``mobilenet_paf`` checkpoints share that layout and carry their config (all their stages run).
    * Our checkpoints: built from ``config["model"]``
      (:func:`~openpose_lite.models.factory.build_model_from_config_dict`);
      a bare state dict in our layout: sizes inferred from its tensor shapes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, unknown layout, a trunk-only ImageNet file, or keys and
            shapes that do not fit the model.
    """
    source = str(path)
    obj = load_state_dict_file(path)
    if "model" not in obj and isinstance(obj.get("state_dict"), Mapping):
        # Another project's training checkpoint (Lightweight OpenPose, many others): the weights
        # sit under "state_dict" beside optimizer state we do not read.
        obj = dict(obj["state_dict"])
    state, config = split_checkpoint(obj, source)
    state = strip_module_prefix(state)
    layout = detect_layout(state)
    if layout in CMU_LAYOUTS:
        num_stages = cmu_stage_count(state)
        model: nn.Module = build_vgg19_paf(num_stages=num_stages)
        load_exact(model, convert_cmu_state_dict(state, num_stages), f"{source} ({layout})")
    elif layout == "openpose_lite":
        if config is not None:
            model_cfg = config.get("model", {})
            if not isinstance(model_cfg, Mapping):
                raise ValueError(f"{source}: checkpoint config['model'] must be a dict, got {type(model_cfg).__name__}")
        else:
            model_cfg = _infer_vgg19_paf_config(state, source)
        model = build_model_from_config_dict(_network_config(model_cfg, source))
        load_exact(model, state, source)
    elif layout == "hrnet":
        state = convert_hrnet_official(state)
        if config is not None and isinstance(config.get("model"), Mapping):
            model = build_model_from_config_dict(_network_config(config["model"], source))
        else:
            model = build_hrnet(**hrnet_config_from_state_dict(state))
        load_exact(model, state, source)
    elif layout == "lightweight":
        model = _lightweight_model(state, config, source, all_stages)
    elif layout in ("torchvision_vgg19", "hrnet_imagenet", "mobilenet_imagenet"):
        raise ValueError(f"{source}: holds an ImageNet classification network ({layout}), not a pose model; "
                         "it initialises a trunk for training (--backbone-weights)")
    else:
        raise ValueError(f"{source}: no model loader for layout {layout!r}")
    logger.info("loaded %s weights from %s", layout, source)
    if device is not None:
        model = model.to(device)
    return model.eval(), config
