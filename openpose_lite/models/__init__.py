"""Networks and weight loading: the OpenPose VGG19 + PAF model, HRNet, external weight layouts, export."""

from openpose_lite.models.cmu_weights import convert_cmu_state_dict
from openpose_lite.models.export import export_onnx, export_torchscript
from openpose_lite.models.factory import build_model_from_config_dict
from openpose_lite.models.imagenet_weights import load_backbone, load_hrnet_imagenet, load_vgg19_imagenet
from openpose_lite.models.layouts import LAYOUTS, detect_layout
from openpose_lite.models.state_dict import load_state_dict_file
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf
from openpose_lite.models.weights import load_model, load_model_with_config, load_weights_into

__all__ = [
    "LAYOUTS",
    "VGG19PafNet",
    "build_model_from_config_dict",
    "build_vgg19_paf",
    "convert_cmu_state_dict",
    "detect_layout",
    "export_onnx",
    "export_torchscript",
    "load_backbone",
    "load_hrnet_imagenet",
    "load_model",
    "load_model_with_config",
    "load_state_dict_file",
    "load_vgg19_imagenet",
    "load_weights_into",
]
