"""Networks and weight loading: OpenPose VGG19 + PAF, Lightweight OpenPose, HRNet, external weight layouts, export.

The names below are imported on first use (PEP 562): ``models.factory`` (the ``model`` config
section) is read by every config, and must not pull torch in with it.
"""

import importlib
from typing import Any

# Public name -> the submodule defining it.
_WHERE = {
    "convert_cmu_state_dict": "cmu_weights",
    "export_onnx": "export", "export_torchscript": "export",
    "build_model_from_config_dict": "factory",
    "load_backbone": "imagenet_weights", "load_hrnet_imagenet": "imagenet_weights",
    "load_vgg19_imagenet": "imagenet_weights",
    "LAYOUTS": "layouts", "detect_layout": "layouts",
    "load_state_dict_file": "state_dict",
    "VGG19PafNet": "vgg19_paf", "build_vgg19_paf": "vgg19_paf",
    "MobileNetPafNet": "mobilenet_paf", "build_mobilenet_paf": "mobilenet_paf",
    "init_from_weights": "weights", "load_model": "weights", "load_model_with_config": "weights",
    "load_weights_into": "weights",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"openpose_lite.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'openpose_lite.models' has no attribute {name!r}")
