"""Networks and weight loading, by the architecture table (:mod:`openpose_lite.architectures`).

The names below are imported on first use (PEP 562), so that ``import openpose_lite.models`` pulls
in no torch until a network or a weight file is asked for.
"""

import importlib
from typing import Any

# Public name -> the submodule defining it.
_WHERE = {
    "ARCHITECTURES": "openpose_lite.architectures", "architecture": "openpose_lite.architectures",
    "convert_cmu_state_dict": "cmu_weights",
    "export_onnx": "export", "export_torchscript": "export",
    "ModelConfig": "openpose_lite.factory", "build_model": "openpose_lite.factory",
    "load_state_dict_file": "state_dict",
    "VGG19PafNet": "vgg19_paf", "build_vgg19_paf": "vgg19_paf",
    "MobileNetPafNet": "mobilenet_paf", "build_mobilenet_paf": "mobilenet_paf",
    "LoadedWeights": "weights", "detect_layout": "weights", "init_from_weights": "weights",
    "load_backbone": "weights", "load_model": "weights", "read_weights": "weights",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        where = _WHERE[name]
        return getattr(importlib.import_module(where if "." in where else f"openpose_lite.models.{where}"), name)
    raise AttributeError(f"module 'openpose_lite.models' has no attribute {name!r}")
