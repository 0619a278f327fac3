"""Networks and weight loading: the OpenPose VGG19 + PAF model, external weight layouts, export."""

from openpose_lite.models.export import export_onnx, export_torchscript
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf
from openpose_lite.models.weights import (
    LAYOUTS,
    build_model_from_config_dict,
    convert_cmu_state_dict,
    detect_layout,
    load_model,
    load_model_with_config,
    load_state_dict_file,
    load_vgg19_imagenet,
    load_weights_into,
)

__all__ = [
    "LAYOUTS",
    "VGG19PafNet",
    "build_model_from_config_dict",
    "build_vgg19_paf",
    "convert_cmu_state_dict",
    "detect_layout",
    "export_onnx",
    "export_torchscript",
    "load_model",
    "load_model_with_config",
    "load_state_dict_file",
    "load_vgg19_imagenet",
    "load_weights_into",
]
