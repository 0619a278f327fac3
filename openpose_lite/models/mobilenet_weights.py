"""Lightweight OpenPose weight layouts: the reference's checkpoints and its ImageNet MobileNetV1.

For :class:`~openpose_lite.models.mobilenet_paf.MobileNetPafNet`, whose parameter names are those of
the reference (Daniil-Osokin/lightweight-human-pose-estimation.pytorch), so converting a checkpoint
is validation plus unwrapping:

* :func:`convert_lightweight_checkpoint`: the reference's training checkpoints
  (``{"state_dict": ..., "optimizer": ..., "iter": ...}``) or a bare state dict;
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
from openpose_lite.models.state_dict import exact_state, load_part, sample_keys, strip_module_prefix, unwrap_weights
from openpose_lite.models.vgg19_paf import scaled_width
from openpose_lite.skeleton import OPENPOSE_18, Skeleton

__all__ = ["REFERENCE_REFINEMENT_STAGES", "convert_lightweight", "convert_lightweight_checkpoint",
           "is_lightweight_layout", "is_mobilenet_imagenet_layout", "lightweight_config_from_state_dict",
           "load_mobilenet_backbone", "load_mobilenet_imagenet"]

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


def is_lightweight_layout(keys: Collection[str]) -> bool:
    """Whether unwrapped ``keys`` are a reference Lightweight OpenPose model's: the trunk, the CPM and the
    initial stage (:data:`_LIGHTWEIGHT_PROBE_KEYS`), with zero or more ``refinement_stages.<t>``."""
    return all(k in keys for k in _LIGHTWEIGHT_PROBE_KEYS)


def is_mobilenet_imagenet_layout(keys: Collection[str]) -> bool:
    """Whether unwrapped ``keys`` are the marvis/pytorch-mobilenet classifier's: the trunk ``model.<i>.*``
    and ``fc``, no pose stages."""
    return "model.0.0.weight" in keys and "fc.weight" in keys and "cpm.align.0.weight" not in keys


def lightweight_config_from_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The :func:`~openpose_lite.models.mobilenet_paf.build_mobilenet_paf` arguments
    ``{"num_refinement_stages", "num_channels", "width_mult"}`` of a reference-layout state dict
    (``module.`` allowed), read from tensor shapes. The width multiplier comes from the widest trunk
    layer (conv5_5, 512 at width 1) and must reproduce every trunk width.

    Raises:
        ValueError: not the reference layout, or trunk widths no single multiplier gives.
    """
    state = strip_module_prefix(state)
    if not is_lightweight_layout(state):
        missing = [k for k in _LIGHTWEIGHT_PROBE_KEYS if k not in state]
        hint = " (an ImageNet MobileNet file: use load_mobilenet_imagenet)" if is_mobilenet_imagenet_layout(state) else ""
        raise ValueError(f"not a Lightweight OpenPose state dict{hint}: missing {missing}; "
                         f"{len(state)} keys, e.g. {sample_keys(state)}")
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
    """A reference Lightweight OpenPose checkpoint (``train.py``'s, only ``"state_dict"`` read, or a state dict;
    ``module.`` allowed) -> our state dict, the same names, checked key by key and shape by shape against the
    model its shapes describe with ``skeleton``'s channels (:func:`~openpose_lite.models.state_dict.exact_state`,
    which fills missing BatchNorm counters). ValueError naming what differs."""
    state, _ = unwrap_weights(obj, "Lightweight OpenPose checkpoint")
    config = lightweight_config_from_state_dict(state)
    with torch.device("meta"):  # shapes only
        expected = MobileNetPafNet(skeleton=skeleton, **config).state_dict()
    return exact_state(expected, state, f"Lightweight OpenPose state dict ({config}, skeleton {skeleton.name})")


def convert_lightweight(state: Mapping[str, torch.Tensor], source: str,
                        all_stages: bool = False) -> tuple[MobileNetPafSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter: (its settings, our state dict) of a Lightweight OpenPose file.

    The network runs with at most :data:`REFERENCE_REFINEMENT_STAGES` refinement stages, as the
    reference runs its files; ``all_stages`` keeps every stage the file holds (to start a training run
    from it). Keys and shapes are checked when the state is loaded.
    """
    sizes = lightweight_config_from_state_dict(state)
    held = sizes["num_refinement_stages"]
    kept = held if all_stages else min(held, REFERENCE_REFINEMENT_STAGES)
    if held > kept:
        logger.info("%s holds %d refinement stages; running the first %d, as the reference's val.py and demo.py do "
                    "(its published AP is that network's)", source, held, kept)
        dropped = tuple(f"refinement_stages.{t}." for t in range(kept, held))
        state = {k: v for k, v in state.items() if not k.startswith(dropped)}
    settings = MobileNetPafSettings(num_stages=1 + kept, stage_channels=sizes["num_channels"],
                                    width_mult=sizes["width_mult"])
    return settings, dict(state)


def load_mobilenet_imagenet(model: MobileNetPafNet, state_dict_or_obj: Mapping[str, Any]) -> list[str]:
    """Copy the ImageNet MobileNetV1 weights into ``model.model``, the trunk (in place); returns the keys set.

    ``state_dict_or_obj``: the loaded ``mobilenet_sgd_68.848.pth.tar`` (``{"state_dict": ...}``) or its state
    dict, ``module.`` allowed. As the reference's ``load_from_mobilenet`` (``modules/load_state.py``): block
    ``i`` fills our block ``i`` for i = 0 ... 11 by name (blocks 6 and 7 too: the shapes agree); blocks 12, 13
    and ``fc`` are ignored. Nothing is folded: the reference trains on BGR ``pixel / 256 - 0.5`` from the
    classifier's RGB ImageNet weights as they are. ValueError for ``width_mult != 1``, a pose checkpoint,
    missing trunk keys or other shapes.
    """
    if model.width_mult != 1.0:
        raise ValueError(f"ImageNet MobileNet weights need width_mult=1.0, the model has width_mult={model.width_mult}")
    state, _ = unwrap_weights(state_dict_or_obj, "ImageNet MobileNet checkpoint")
    if is_lightweight_layout(state):
        raise ValueError("this is a Lightweight OpenPose pose checkpoint (it has cpm.* keys), not the ImageNet "
                         "MobileNet classifier; use convert_lightweight_checkpoint")
    trunk = [k for k in model.state_dict() if k.startswith("model.")]
    copied = load_part(model, state, trunk, "ImageNet MobileNet checkpoint", "the MobileNet trunk")
    logger.info("loaded ImageNet MobileNetV1 blocks 0..%d into the trunk (%d tensors)", len(TRUNK_LAYOUT) - 1, len(copied))
    return copied


def load_mobilenet_backbone(model: MobileNetPafNet, state: Mapping[str, torch.Tensor], source: str) -> str:
    """The architecture table's ImageNet loader: :func:`load_mobilenet_imagenet`; what was loaded, in words."""
    load_mobilenet_imagenet(model, state)
    return f"ImageNet MobileNetV1 from {source}"
