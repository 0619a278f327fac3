"""Lightweight OpenPose weight layouts: the reference's checkpoints and its ImageNet MobileNetV1.

Pure functions on already loaded mappings (read files with
:func:`~openpose_lite.models.state_dict.load_state_dict_file` or
``torch.load(path, map_location="cpu", weights_only=True)``), for
:class:`~openpose_lite.models.mobilenet_paf.MobileNetPafNet`, whose parameter names are those of
the reference (Daniil-Osokin/lightweight-human-pose-estimation.pytorch):

* :func:`convert_lightweight_checkpoint`: the reference's training checkpoints
  (``{"state_dict": ..., "optimizer": ..., "iter": ...}``) or a bare state dict. Our key
  names are the reference's, so conversion is validation plus unwrapping.
* :func:`load_mobilenet_imagenet`: the ImageNet MobileNetV1 classifier
  ``mobilenet_sgd_68.848.pth.tar`` (marvis/pytorch-mobilenet), which the reference's
  ``train.py --from-mobilenet`` copies into the trunk.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import torch

from openpose_lite.models.mobilenet_paf import TRUNK_LAYOUT, TRUNK_OUT_BASE, MobileNetPafNet
from openpose_lite.network_settings import MobileNetPafSettings
from openpose_lite.models.state_dict import check_tensor_state, key_mismatch_error, sample_keys, strip_module_prefix
from openpose_lite.models.vgg19_paf import scaled_width
from openpose_lite.skeleton import OPENPOSE_18, Skeleton

__all__ = [
    "REFERENCE_REFINEMENT_STAGES",
    "convert_lightweight",
    "convert_lightweight_checkpoint",
    "is_lightweight_layout",
    "is_mobilenet_imagenet_layout",
    "keep_refinement_stages",
    "lightweight_config_from_state_dict",
    "load_mobilenet_backbone",
    "load_mobilenet_imagenet",
]

logger = logging.getLogger(__name__)

# The reference runs a pose file with one refinement stage, whatever the file holds: its val.py
# and demo.py build ``PoseEstimationWithMobileNet()`` (models/with_mobilenet.py, default
# ``num_refinement_stages=1``) and ``load_state`` copies only the keys that network has. The
# published checkpoint_iter_370000.pth holds three refinement stages (README, training step 5:
# "for the network with 1 refinement stage, two next are discarded"; the maintainer in issue
# #203: "you can find all 3 refinement stages in the checkpoint"), and its 40% AP is the first's.
REFERENCE_REFINEMENT_STAGES = 1

# Keys every reference pose checkpoint has (one per part of the network).
_LIGHTWEIGHT_PROBE_KEYS = ("model.0.0.weight", "cpm.align.0.weight", "initial_stage.trunk.0.0.weight")
_TRUNK_WIDTH_KEY = f"model.{len(TRUNK_LAYOUT) - 1}.3.weight"  # conv5_5's pointwise conv, the widest
_BN_COUNTER = "num_batches_tracked"


def _unwrap(obj: Mapping[str, Any], what: str) -> dict[str, torch.Tensor]:
    """The tensor state dict of a ``{"state_dict": ...}`` checkpoint or of a bare state dict, unprefixed."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise ValueError(f"{what}: 'state_dict' must be a dict, got {type(state).__name__}")
    return strip_module_prefix(check_tensor_state(state, what, "state_dict"))


def _reference_state_shapes(config: Mapping[str, Any], skeleton: Skeleton) -> dict[str, torch.Size]:
    """Key -> shape of every parameter and buffer of the model of ``config`` (built on the meta device)."""
    with torch.device("meta"):
        model = MobileNetPafNet(skeleton=skeleton, **config)
    return {k: v.shape for k, v in model.state_dict().items()}


def is_lightweight_layout(keys: Collection[str]) -> bool:
    """Whether ``keys`` (already unwrapped: no ``module.``) are those of a reference Lightweight OpenPose model.

    True when the trunk (``model.0.0.weight``), the CPM (``cpm.align.0.weight``) and the initial
    stage (``initial_stage.trunk.0.0.weight``) are all present; the refinement stages
    (``refinement_stages.<t>.…``) may number zero or more. An ImageNet MobileNet file
    (``model.*`` and ``fc.*`` only) is not in this layout: see :func:`is_mobilenet_imagenet_layout`.
    """
    return all(k in keys for k in _LIGHTWEIGHT_PROBE_KEYS)


def is_mobilenet_imagenet_layout(keys: Collection[str]) -> bool:
    """Whether ``keys`` (already unwrapped) are those of the marvis/pytorch-mobilenet classifier.

    That file has the trunk ``model.<i>.*`` and the classifier ``fc.weight`` / ``fc.bias``, and no
    pose stages.
    """
    return "model.0.0.weight" in keys and "fc.weight" in keys and "cpm.align.0.weight" not in keys


def lightweight_config_from_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``{"num_refinement_stages", "num_channels", "width_mult"}`` read from tensor shapes.

    ``state`` is a state dict in the reference layout (``module.`` allowed); the result is the
    keyword arguments of :func:`build_mobilenet_paf`. The width multiplier comes from the
    widest trunk layer (conv5_5, 512 at width 1) and must reproduce every trunk width.

    Raises:
        ValueError: not the reference layout, or trunk widths no single multiplier gives.
    """
    state = strip_module_prefix(state)
    if not is_lightweight_layout(state):
        missing = [k for k in _LIGHTWEIGHT_PROBE_KEYS if k not in state]
        raise ValueError(f"not a Lightweight OpenPose state dict: missing {missing}; keys start {sample_keys(state)}")
    stage_ids = {int(k.split(".")[1]) for k in state if k.startswith("refinement_stages.") and k.split(".")[1].isdigit()}
    num_refinement_stages = 1 + max(stage_ids) if stage_ids else 0
    if stage_ids != set(range(num_refinement_stages)):
        raise ValueError(f"refinement stages are not numbered 0..{num_refinement_stages - 1}: found {sorted(stage_ids)}")
    num_channels = int(state["cpm.align.0.weight"].shape[0])
    if _TRUNK_WIDTH_KEY not in state:
        raise ValueError(f"cannot read the trunk width: missing {_TRUNK_WIDTH_KEY!r}")
    width_mult = int(state[_TRUNK_WIDTH_KEY].shape[0]) / TRUNK_OUT_BASE
    # Block 0's conv and every pointwise conv give one trunk width each.
    widths = [(f"model.{i}.{0 if i == 0 else 3}.weight", base) for i, (base, _, _) in enumerate(TRUNK_LAYOUT)]
    wrong = [
        f"{key}: {int(state[key].shape[0])} channels, width_mult {width_mult:.4g} gives {scaled_width(base, width_mult)}"
        for key, base in widths if key in state and int(state[key].shape[0]) != scaled_width(base, width_mult)
    ]
    if wrong:
        raise ValueError(f"trunk widths do not follow one width multiplier: {sample_keys(wrong)}")
    return {"num_refinement_stages": num_refinement_stages, "num_channels": num_channels, "width_mult": width_mult}


def convert_lightweight_checkpoint(obj: Mapping[str, Any], skeleton: Skeleton = OPENPOSE_18) -> dict[str, torch.Tensor]:
    """A reference Lightweight OpenPose checkpoint -> our state dict (the same key names).

    ``obj`` is what ``torch.load(path, map_location="cpu", weights_only=True)`` returns for
    the reference's training checkpoints (``{"state_dict": ..., "optimizer": ...,
    "scheduler": ..., "iter": ..., "current_epoch": ...}``, written by its ``train.py``; only
    ``"state_dict"`` is read) or a bare state dict; keys may carry ``module.``. The sizes
    are read from the tensor shapes (:func:`lightweight_config_from_state_dict`) and every
    key and shape is checked against that model with ``skeleton``'s channel counts. BatchNorm
    ``num_batches_tracked`` counters, absent from files older than PyTorch 0.4.1, are filled
    with 0 (they only matter for ``momentum=None``). Tensors are not copied.

    Raises:
        ValueError: another layout, missing or unexpected keys, or shape mismatches (named).
    """
    state = _unwrap(obj, "Lightweight OpenPose checkpoint")
    if not is_lightweight_layout(state):
        missing = [k for k in _LIGHTWEIGHT_PROBE_KEYS if k not in state]
        hint = " (an ImageNet MobileNet file: use load_mobilenet_imagenet)" if is_mobilenet_imagenet_layout(state) else ""
        raise ValueError(
            f"not a Lightweight OpenPose state dict{hint}: missing {missing}; {len(state)} keys, e.g. {sample_keys(state)}"
        )
    config = lightweight_config_from_state_dict(state)
    expected = _reference_state_shapes(config, skeleton)
    filled = [k for k in expected if k.endswith(_BN_COUNTER) and k not in state]
    for k in filled:
        state[k] = torch.zeros((), dtype=torch.long)
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise key_mismatch_error(f"Lightweight OpenPose state dict ({config})", missing, unexpected)
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(s)}" for k, s in expected.items() if state[k].shape != s]
    if wrong:
        raise ValueError(f"Lightweight OpenPose state dict ({config}, skeleton {skeleton.name}): "
                         f"{len(wrong)} shape mismatches, e.g. {sample_keys(wrong)}")
    if filled:
        logger.debug("Lightweight OpenPose weights: %d BatchNorm counters absent, set to 0", len(filled))
    return {k: state[k] for k in expected}


def convert_lightweight(state: Mapping[str, torch.Tensor], source: str,
                        all_stages: bool = False) -> tuple[MobileNetPafSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter: (its settings, our state dict) of a Lightweight OpenPose file.

    The network runs with at most :data:`REFERENCE_REFINEMENT_STAGES` refinement stages, as the
    reference runs its files (further stages, which its published checkpoint holds, are left
    out); ``all_stages`` keeps every stage the file holds (to start a training run from it).
    """
    sizes = lightweight_config_from_state_dict(state)
    held = sizes["num_refinement_stages"]
    kept = held if all_stages else min(held, REFERENCE_REFINEMENT_STAGES)
    if held > kept:
        logger.info("%s holds %d refinement stages; running the first %d, as the reference's val.py and demo.py do "
                    "(its published AP is that network's)", source, held, kept)
        state = keep_refinement_stages(state, kept)
    settings = MobileNetPafSettings(num_stages=1 + kept, stage_channels=sizes["num_channels"],
                                    width_mult=sizes["width_mult"])
    return settings, convert_lightweight_checkpoint(state)


def keep_refinement_stages(state: Mapping[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """``state`` (reference layout, ``module.`` allowed) without the refinement stages from ``count`` on."""
    def stage(key: str) -> int | None:
        parts = key.split(".")
        return int(parts[1]) if parts[0] == "refinement_stages" and parts[1].isdigit() else None

    return {k: v for k, v in strip_module_prefix(state).items() if (t := stage(k)) is None or t < count}


def load_mobilenet_imagenet(model: MobileNetPafNet, state_dict_or_obj: Mapping[str, Any]) -> list[str]:
    """Copy the ImageNet MobileNetV1 weights into ``model.model``, the trunk (in place); returns the keys set.

    ``state_dict_or_obj``: the loaded ``mobilenet_sgd_68.848.pth.tar`` of marvis/pytorch-mobilenet,
    ``{"state_dict": {"module.model.0.0.weight", ...}}``, or its bare state dict, with or
    without ``module.``. As the reference's ``modules/load_state.py`` (``load_from_mobilenet``:
    every target key containing ``model`` is looked up as ``module.model...``), block ``i`` of
    the file fills block ``i`` of our trunk for i = 0 ... 11, positions and names unchanged:
    conv weights and BatchNorm weight, bias, running_mean and running_var. That includes
    block 6, whose stride is 1 here and 2 in the classifier, and the dilated block 7 (the
    shapes agree, so the reference copies them). The classifier's blocks 12 and 13
    (1024 wide) and ``fc`` are ignored; the CPM and the stages are left alone.
    ``num_batches_tracked`` is copied when present (files older than PyTorch 0.4.1 lack it,
    and the reference then keeps the model's own).

    Input convention: the classifier was trained on ImageNet in its own normalisation (marvis's
    script follows PyTorch's ImageNet example, RGB with the ImageNet mean and std, as far as
    the public copies show); the reference's ``train.py`` loads the weights as they are and
    trains on BGR ``pixel / 256 - 0.5`` from the first step, leaving fine-tuning to absorb the
    difference. This function does the same and converts nothing.

    Raises:
        ValueError: ``model.width_mult != 1``, a pose checkpoint instead of the classifier,
            missing trunk keys or shape mismatches (named).
    """
    if model.width_mult != 1.0:
        raise ValueError(f"ImageNet MobileNet weights need width_mult=1.0, the model has width_mult={model.width_mult}")
    state = _unwrap(state_dict_or_obj, "ImageNet MobileNet checkpoint")
    if is_lightweight_layout(state):
        raise ValueError("this is a Lightweight OpenPose pose checkpoint (it has cpm.* keys), not the ImageNet "
                         "MobileNet classifier; use convert_lightweight_checkpoint")
    targets = {f"model.{k}": v for k, v in model.model.state_dict().items()}
    required = [k for k in targets if not k.endswith(_BN_COUNTER)]
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(
            f"ImageNet MobileNet checkpoint: {len(missing)} of {len(required)} trunk keys missing "
            f"(e.g. {sample_keys(missing)}; looked up with and without 'module.'); file keys start {sample_keys(state)}"
        )
    present = [k for k in targets if k in state]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(targets[k].shape)}"
             for k in present if state[k].shape != targets[k].shape]
    if wrong:
        raise ValueError(f"ImageNet MobileNet checkpoint: {len(wrong)} shape mismatches, e.g. {sample_keys(wrong)}")
    with torch.no_grad():
        for k in present:
            targets[k].copy_(state[k])
    logger.info("loaded ImageNet MobileNetV1 blocks 0..%d into the trunk (%d tensors)", len(TRUNK_LAYOUT) - 1, len(present))
    return present


def load_mobilenet_backbone(model: MobileNetPafNet, state: Mapping[str, torch.Tensor], source: str) -> str:
    """The architecture table's ImageNet loader: :func:`load_mobilenet_imagenet`; what was loaded, in words."""
    load_mobilenet_imagenet(model, state)
    return f"ImageNet MobileNetV1 from {source}"
