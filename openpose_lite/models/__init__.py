"""Networks and weight loading, by the architecture table (:mod:`openpose_lite.models.architectures`).

The names below are imported on first use (PEP 562): ``models.factory`` (the ``model`` config
section) and the table are read by every config, and must not pull torch in with them.
"""

import importlib
from typing import Any

# Public name -> the submodule defining it.
_WHERE = {
    "ARCHITECTURES": "architectures", "architecture": "architectures",
    "convert_cmu_state_dict": "cmu_weights",
    "export_onnx": "export", "export_torchscript": "export",
    "ModelConfig": "factory", "build_model": "factory", "build_model_from_config_dict": "factory",
    "load_state_dict_file": "state_dict",
    "VGG19PafNet": "vgg19_paf", "build_vgg19_paf": "vgg19_paf",
    "MobileNetPafNet": "mobilenet_paf", "build_mobilenet_paf": "mobilenet_paf",
    "LoadedWeights": "weights", "detect_layout": "weights", "init_from_weights": "weights",
    "load_backbone": "weights", "load_model": "weights", "read_weights": "weights",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"openpose_lite.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'openpose_lite.models' has no attribute {name!r}")
