"""Which known layout a state dict is in: a table, :data:`LAYOUTS` (add a row for a new layout).

* ``openpose_lite``: our own VGG19 + PAF state dict (``trunk.conv1_1.weight`` ...);
* ``cmu_numbered`` / ``cmu_named``: the CMU COCO body model of the PyTorch ports
  (:mod:`openpose_lite.models.cmu_weights`);
* ``torchvision_vgg19``: torchvision's ImageNet ``vgg19`` (``features.0.weight`` ...);
* ``hrnet``: the official pose-HRNet checkpoints, whose parameter names our HRNet keeps;
* ``hrnet_imagenet``: the official ImageNet HRNet classification checkpoints
  (``hrnet_w32-36af842e.pth``): the same trunk names plus a classification head
  (``incre_modules``, ``downsamp_modules``, ``final_layer.0``, ``classifier``);
* ``lightweight``: Lightweight OpenPose (the reference's ``checkpoint_iter_370000.pth`` and our
  ``mobilenet_paf`` checkpoints, which keep its names; :mod:`~openpose_lite.models.mobilenet_weights`);
* ``mobilenet_imagenet``: the ImageNet MobileNetV1 classifier (``mobilenet_sgd_68.848.pth.tar``).

Any layout may sit behind a ``module.`` prefix (``nn.DataParallel``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from openpose_lite.models.cmu_weights import cmu_layout, cmu_reference_keys, our_key_set, vgg_key_set
from openpose_lite.models.hrnet import build_hrnet, is_hrnet_official
from openpose_lite.models.mobilenet_paf import build_mobilenet_paf
from openpose_lite.models.mobilenet_weights import is_lightweight_layout, is_mobilenet_imagenet_layout
from openpose_lite.models.state_dict import key_mismatch_error, strip_module_prefix

__all__ = ["LAYOUTS", "WeightLayout", "detect_layout"]


@dataclass(frozen=True)
class WeightLayout:
    """A known state-dict layout.

    ``detect(keys)`` says whether a key set (``module.`` already stripped) is in this layout;
    ``reference_keys()`` lists the keys of the full-size model in it, used to name missing and
    unexpected keys when no layout matches.
    """

    name: str
    detect: Callable[[frozenset[str]], bool]
    reference_keys: Callable[[], frozenset[str]]


def _hrnet_key_set() -> frozenset[str]:
    with torch.device("meta"):  # shapes only: no memory, no init time
        return frozenset(build_hrnet().state_dict())


def _lightweight_key_set() -> frozenset[str]:
    with torch.device("meta"):
        return frozenset(build_mobilenet_paf().state_dict())


LAYOUTS: list[WeightLayout] = [
    WeightLayout("openpose_lite", lambda k: "trunk.conv1_1.weight" in k, our_key_set),
    WeightLayout("cmu_numbered", lambda k: cmu_layout(k) == "cmu_numbered", lambda: cmu_reference_keys("cmu_numbered")),
    WeightLayout("cmu_named", lambda k: cmu_layout(k) == "cmu_named", lambda: cmu_reference_keys("cmu_named")),
    WeightLayout("torchvision_vgg19", lambda k: "features.0.weight" in k, vgg_key_set),
    WeightLayout("hrnet", lambda k: is_hrnet_official(dict.fromkeys(k)), _hrnet_key_set),
    WeightLayout("hrnet_imagenet", lambda k: "conv1.weight" in k and "classifier.weight" in k
                 and any(key.startswith("incre_modules.") for key in k), _hrnet_key_set),
    WeightLayout("lightweight", is_lightweight_layout, _lightweight_key_set),
    WeightLayout("mobilenet_imagenet", is_mobilenet_imagenet_layout,
                 lambda: frozenset(k for k in _lightweight_key_set() if k.startswith("model."))),
]


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """Name of the layout of ``state_dict`` (a ``module.`` prefix is allowed): one of :data:`LAYOUTS`.

    Raises:
        ValueError: no layout matches; the message names the missing and unexpected keys
            relative to the closest layout.
    """
    keys = frozenset(strip_module_prefix(state_dict))
    for layout in LAYOUTS:
        if layout.detect(keys):
            return layout.name
    closest = max(LAYOUTS, key=lambda layout: len(keys & layout.reference_keys()))
    reference = closest.reference_keys()
    raise key_mismatch_error(
        f"state dict in no known layout {[layout.name for layout in LAYOUTS]}; closest is {closest.name!r}",
        reference - keys, keys - reference,
    )
