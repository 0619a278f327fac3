"""ImageNet classification networks as trunk initialisations (``--backbone-weights``).

* torchvision's ImageNet ``vgg19`` (``features.<i>.weight`` ...): conv1_1 ... conv4_2 fill the
  trunk of :class:`~openpose_lite.models.vgg19_paf.VGG19PafNet`, with torchvision's input
  normalisation (RGB, ImageNet mean and std) folded into conv1_1 for the CMU input the network
  is fed (BGR, ``pixel / 256 - 0.5``);
* the official ImageNet HRNet classification checkpoints (``hrnet_w32-36af842e.pth``): the
  layers the HRNet reference initialises from them fill :class:`~openpose_lite.models.hrnet.HRNet`.

(The ImageNet MobileNetV1 of Lightweight OpenPose is in :mod:`openpose_lite.models.mobilenet_weights`.)
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

import torch

from openpose_lite.models.cmu_weights import PARAMS, VGG19_TRUNK_CONVS, vgg_key_set
from openpose_lite.models.hrnet import HRNet
from openpose_lite.models.state_dict import key_mismatch_error, load_part
from openpose_lite.models.vgg19_paf import VGG19PafNet
from openpose_lite.preprocess import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

__all__ = ["HRNET_PRETRAINED_LAYERS", "fold_imagenet_input_into_conv", "is_hrnet_imagenet", "load_hrnet_imagenet",
           "load_vgg19_imagenet"]

logger = logging.getLogger(__name__)

# The CMU input our VGG19PafNet is fed (and the CMU weights need): BGR, pixel / 256 - 0.5.
_CMU_SCALE, _CMU_SHIFT = 1.0 / 256.0, -0.5


def fold_imagenet_input_into_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1_1 (weight (C_out, 3, kh, kw) in RGB order, bias (C_out,)) of a network trained on torchvision's
    input, rewritten (float32) for the CMU input.

    With CMU input ``y = p / 256 - 0.5`` (BGR) and torchvision's ``t_c = (p_c / 255 - m_c) / s_c`` (RGB),
    ``t_c = a_c * y_{2-c} + b_c`` with ``a_c = 256 / (255 s_c)``, ``b_c = (128 / 255 - m_c) / s_c``: the input
    channels reversed and scaled by ``a``, ``sum(W * b)`` added to the bias. Equal but where the zero padding
    is read (0 in ``y`` is ``b`` in ``t``): outputs within the receptive field of the border differ.
    """
    # torchvision's Normalize holds its mean and std as float32 tensors too.
    mean = torch.from_numpy(IMAGENET_MEAN_RGB).to(torch.float64)
    std = torch.from_numpy(IMAGENET_STD_RGB).to(torch.float64)
    # p = (y - shift) / scale: t_c = (p / 255 - m_c) / s_c = a_c y + b_c.
    a = 1.0 / (_CMU_SCALE * 255.0 * std)
    b = (-_CMU_SHIFT / (_CMU_SCALE * 255.0) - mean) / std
    w = weight.to(torch.float64)
    folded_bias = bias.to(torch.float64) + (w * b[None, :, None, None]).sum(dim=(1, 2, 3))
    folded_weight = (w * a[None, :, None, None]).flip(1)  # RGB input channels -> BGR
    return folded_weight.to(torch.float32), folded_bias.to(torch.float32)


def load_vgg19_imagenet(model: VGG19PafNet, state: Mapping[str, torch.Tensor], source: str) -> str:
    """Copy torchvision's ImageNet ``vgg19`` (``features.<i>.weight`` ...) conv1_1 ... conv4_2 into
    ``model.trunk`` (in place); returns what was loaded, in words (the table's ImageNet loader of vgg19_paf).

    The network is fed the CMU input, so torchvision's normalisation and channel order are folded into
    conv1_1 (:func:`fold_imagenet_input_into_conv`): the trunk computes ``vgg19.features[:23]`` of the same
    photo, away from the padded border. ValueError for width_mult != 1, vgg19_bn, a missing key or a shape.
    """
    if model.width_mult != 1.0:
        raise ValueError(f"ImageNet VGG19 weights need width_mult=1.0, the model has width_mult={model.width_mult}")
    if any("running_mean" in k for k in state):
        raise ValueError(f"{source}: batch-norm VGG (vgg19_bn) weights are not supported; expected plain torchvision vgg19")
    missing = vgg_key_set() - set(state)
    if missing:
        raise key_mismatch_error(f"{source}: torchvision vgg19", missing, ())
    ours = {f"{conv}.{p}": state[f"features.{index}.{p}"] for conv, _, index in VGG19_TRUNK_CONVS for p in PARAMS}
    load_part(model, ours, list(ours), f"{source} (torchvision vgg19)", "the VGG19 trunk")
    # conv1_1 reads the image: fold the ImageNet normalisation in.
    weight, bias = fold_imagenet_input_into_conv(ours["trunk.conv1_1.weight"], ours["trunk.conv1_1.bias"])
    model.load_state_dict({"trunk.conv1_1.weight": weight, "trunk.conv1_1.bias": bias}, strict=False)
    logger.info("loaded ImageNet VGG19 conv1_1..conv4_2 from %s (input normalisation folded into conv1_1)", source)
    return f"ImageNet VGG19 from {source}"


# The layers the HRNet reference initialises from its ImageNet checkpoint
# (experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml, MODEL.EXTRA.PRETRAINED_LAYERS; loaded by
# lib/models/pose_hrnet.py, PoseHighResolutionNet.init_weights): everything but the pose head.
HRNET_PRETRAINED_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                           "transition2", "stage3", "transition3", "stage4")


def is_hrnet_imagenet(keys: Collection[str]) -> bool:
    """The official ImageNet HRNet classifier: HRNet's stem and trunk names plus its classification head
    (``incre_modules``, ``downsamp_modules``, ``final_layer.0``, ``classifier``)."""
    return "conv1.weight" in keys and "classifier.weight" in keys and any(k.startswith("incre_modules.") for k in keys)


def load_hrnet_imagenet(model: HRNet, state: Mapping[str, torch.Tensor], source: str) -> str:
    """Initialise an HRNet's trunk from the official ImageNet HRNet classifier (in place); returns what was
    loaded, in words (the table's ImageNet loader of hrnet).

    As the reference's ``init_weights``: the tensors under :data:`HRNET_PRETRAINED_LAYERS` are copied by name;
    the classification head and the extra fusion layers of the classifier's last module are left out.
    Both feed ImageNet-normalised RGB, so nothing is folded. ValueError for a trunk tensor missing (BatchNorm
    counters aside) or of another shape (another width).
    """
    wanted = [k for k in model.state_dict() if k.split(".")[0] in HRNET_PRETRAINED_LAYERS]
    copied = load_part(model, state, wanted, f"{source} (ImageNet HRNet)", f"HRNet-W{model.width}",
                       hint="is the file's width the model's (model.width)?")
    logger.info("loaded %d ImageNet HRNet trunk tensors from %s", len(copied), source)
    return f"ImageNet HRNet-W{model.width} from {source}"
