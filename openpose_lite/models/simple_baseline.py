"""SimpleBaseline for top-down pose estimation (ResNet-18/34/50/101/152 + three deconvolutions).

Architecture (Xiao et al., "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018; release:
leoxiaobin/deep-high-resolution-net.pytorch ``lib/models/pose_resnet.py``, ``PoseResNet``): a ResNet trunk
with torchvision's names and strides to stride 32; ``deconv_layers``: three ConvTranspose2d 4x4/2 (256
channels, padding 1, no bias) + BN + ReLU to stride 4; ``final_layer``: a 1x1 conv to K heatmaps.

Weight layouts (the names are the release's, so converting is renaming): official
``pose_resnet_{50,101,152}_{256x192,384x288}.pth`` (ours exactly); mmpose files, ``backbone.*`` (mmpose
``ResNet``, torchvision's names) and the head under ``keypoint_head.`` (0.x ``TopdownHeatmapSimpleHead``) or
``head.`` (1.x ``HeatmapHead``); torchvision ImageNet resnets for ``--backbone-weights``.

Input conventions (the architecture table's rows state them):

* official files: **BGR** (``DATASET.COLOR_RGB: false`` in ``experiments/coco/resnet/*.yaml``;
  ``JointsDataset.__getitem__`` reads with ``cv2.imread``), /255 then ImageNet mean/std in the channels'
  own order (B gets 0.485 / 0.229); crop, cells and flip test as the HRNet reference (:data:`GEOMETRY`);
* mmpose res50 (0.x ``res50_coco_256x192.py``, 1.x ``td-hm_res50_8xb64-210e_coco-256x192.py``): **RGB**
  (``channel_order='rgb'``; ``PoseDataPreprocessor(bgr_to_rgb=True)``), the same mean/std and geometry;
* a model started from an ImageNet resnet and trained here: torchvision's input (RGB / 255, ImageNet mean/std).

Shape legend: B batch, K keypoints, H x W input size (multiples of 32).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import nn

from openpose_lite.models.residual import (BasicBlock, Bottleneck, check_image_batch, check_positive_ints,
                                           init_normal, res_layer)
from openpose_lite.network_settings import RESNET_DEPTHS, SimpleBaselineSettings
from openpose_lite.models.state_dict import (key_mismatch_error, load_part, mmpose_head_prefix, numbered_children,
                                             rename_mmpose)
from openpose_lite.skeleton import COCO_17, Skeleton

logger = logging.getLogger(__name__)

ARCH = "simple_baseline"
# Blocks per layer1..4 (the release's resnet_spec, torchvision's).
RESNET_SPEC: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3)),
}
_DEPTH_OF = {spec: depth for depth, spec in RESNET_SPEC.items()}
TRUNK_STRIDE = 32
INPUT_MULTIPLE = TRUNK_STRIDE
NUM_DECONV_LAYERS = 3
STRIDE = TRUNK_STRIDE // 2 ** NUM_DECONV_LAYERS
_STEM_WIDTH = 64
_LAYER_PLANES = (64, 128, 256, 512)
_DECONV_KERNEL = 4
# Release init (PoseResNet.init_weights): N(0, 0.001) convs and deconvs, BN weight 1 / bias 0.
_INIT_STD = 1e-3

_TRUNK_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
_MMPOSE_HEAD_KEYS = ("deconv_layers.0.weight", "final_layer.weight")


class SimpleBaseline(nn.Module):
    """ResNet-``depth`` SimpleBaseline: images (B, 3, H, W) -> ``[{"heatmaps": (B, K, H/4, W/4)}]``.

    ``depth`` one of 18, 34, 50, 101, 152; ``num_keypoints`` K; ``deconv_channels`` (256 in the paper);
    ``num_deconv_layers``, each doubling the resolution (3: stride 4). The output is raw (no activation).
    """

    arch = ARCH

    def __init__(self, depth: int = 50, num_keypoints: int = COCO_17.num_keypoints, deconv_channels: int = 256,
                 num_deconv_layers: int = NUM_DECONV_LAYERS) -> None:
        super().__init__()
        if not isinstance(depth, int) or isinstance(depth, bool) or depth not in RESNET_SPEC:
            raise ValueError(f"SimpleBaseline: depth must be one of {RESNET_DEPTHS}, got {depth!r}")
        check_positive_ints("SimpleBaseline", num_keypoints=num_keypoints, deconv_channels=deconv_channels,
                            num_deconv_layers=num_deconv_layers)
        if num_deconv_layers > 5:
            raise ValueError("SimpleBaseline: num_deconv_layers must be at most 5 (stride 32 -> 1), got "
                             f"{num_deconv_layers}")
        self.depth = depth
        self.num_keypoints = num_keypoints
        self.deconv_channels = deconv_channels
        self.num_deconv_layers = num_deconv_layers
        self.stride = TRUNK_STRIDE // 2 ** num_deconv_layers

        kind, counts = RESNET_SPEC[depth]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(3, _STEM_WIDTH, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(_STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        width = _STEM_WIDTH
        for index, (planes, num_blocks) in enumerate(zip(_LAYER_PLANES, counts, strict=True)):
            layer = res_layer(block, width, planes, num_blocks, stride=1 if index == 0 else 2)
            self.add_module(f"layer{index + 1}", layer)
            width = planes * block.expansion
        self.trunk_channels = width

        deconvs: list[nn.Module] = []
        for _ in range(num_deconv_layers):
            # Kernel 4, padding 1, output_padding 0 doubles h and w exactly (_get_deconv_cfg).
            deconvs += [nn.ConvTranspose2d(width, deconv_channels, _DECONV_KERNEL, stride=2, padding=1,
                                           output_padding=0, bias=False),
                        nn.BatchNorm2d(deconv_channels), nn.ReLU(inplace=True)]
            width = deconv_channels
        self.deconv_layers = nn.Sequential(*deconvs)
        self.final_layer = nn.Conv2d(width, num_keypoints, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The release's initialisation: (de)convs N(0, 0.001) with zero bias, BN weight 1 and bias 0.

        (``PoseResNet.init_weights``: the deconvolutions and ``final_layer`` as when it loads an
        ImageNet trunk, the trunk convs as without one; ``final_layer``'s bias is zeroed in both.)
        """
        init_normal(self, _INIT_STD, (nn.Conv2d, nn.ConvTranspose2d))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The trunk alone: (B, 3, H, W) -> layer4's (B, 512 or 2048, H/32, W/32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return x

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images (B, 3, H, W), H and W multiples of 32 -> ``[{"heatmaps": (B, K, H/4, W/4)}]`` (one stage)."""
        check_image_batch("SimpleBaseline", images, INPUT_MULTIPLE,
                          "the trunk's stride, which the deconvolutions undo exactly")
        return [{"heatmaps": self.final_layer(self.deconv_layers(self.features(images)))}]


def build_simple_baseline(depth: int = 50, num_keypoints: int = COCO_17.num_keypoints, deconv_channels: int = 256,
                          num_deconv_layers: int = NUM_DECONV_LAYERS) -> SimpleBaseline:
    """:class:`SimpleBaseline` with the release's initialisation (:meth:`SimpleBaseline.reset_parameters`)."""
    return SimpleBaseline(depth, num_keypoints, deconv_channels, num_deconv_layers)


def build(cfg: Any, skeleton: Skeleton) -> SimpleBaseline:
    """The architecture table's builder: the ResNet depth of its :class:`SimpleBaselineSettings`, one heatmap
    per keypoint of ``skeleton``."""
    return build_simple_baseline(depth=cfg.settings.depth, num_keypoints=skeleton.num_keypoints)


# --------------------------------------------------------------------------- weight layouts
def _block_counts(keys: Collection[str], prefix: str = "") -> tuple[int, ...]:
    """Blocks in ``{prefix}layer1..4`` (0 where a layer is absent)."""
    return tuple(numbered_children(keys, f"{prefix}layer{index}.") for index in range(1, 5))


def resnet_depth_from_keys(keys: Collection[str], prefix: str = "") -> int | None:
    """The ResNet depth whose block type and counts ``{prefix}layer1..4`` have, or None."""
    kind = "bottleneck" if f"{prefix}layer1.0.conv3.weight" in keys else "basic"
    return _DEPTH_OF.get((kind, _block_counts(keys, prefix)))  # type: ignore[arg-type]


def _depth(keys: Collection[str], what: str) -> int:
    depth = resnet_depth_from_keys(keys)
    if depth is None:
        kind = "Bottleneck" if "layer1.0.conv3.weight" in keys else "BasicBlock"
        raise ValueError(f"{what}: {kind} counts {_block_counts(keys)} in layer1..4 match no ResNet "
                         f"({', '.join(f'{d}: {s[1]}' for d, s in RESNET_SPEC.items())})")
    return depth


def is_pose_resnet_official(keys: Collection[str]) -> bool:
    """The official pose_resnet layout (and ours), for an unwrapped key set.

    Anchors: the ResNet stem, ``deconv_layers.0`` (a transposed conv), ``final_layer`` and
    ``layer1..4`` with the block counts of a ResNet depth. HRNet files (no ``deconv_layers``,
    no ``layer4``) and torchvision classifiers (no ``deconv_layers``) are not this layout.
    """
    anchors = ("conv1.weight", "bn1.running_var", "deconv_layers.0.weight", "final_layer.weight")
    return all(a in keys for a in anchors) and resnet_depth_from_keys(keys) is not None


def is_pose_resnet_mmpose(keys: Collection[str]) -> bool:
    """An mmpose SimpleBaseline (``backbone.`` ResNet + deconv head, 0.x or 1.x), for an unwrapped key set."""
    return ("backbone.conv1.weight" in keys and mmpose_head_prefix(keys, *_MMPOSE_HEAD_KEYS) is not None
            and resnet_depth_from_keys(keys, "backbone.") is not None)


def is_torchvision_resnet(keys: Collection[str]) -> bool:
    """A torchvision ImageNet resnet (``conv1``, ``layer1..4``, ``fc``), for an unwrapped key set."""
    return ("conv1.weight" in keys and "fc.weight" in keys and "deconv_layers.0.weight" not in keys
            and resnet_depth_from_keys(keys) is not None)


def convert_pose_resnet_official(state: Mapping[str, torch.Tensor], source: str = "pose_resnet state dict",
                                 all_stages: bool = False) -> tuple[SimpleBaselineSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter of official pose_resnet files: (the depth, the state as it is).

    The depth is the ResNet whose block type (``layer1.0.conv3``: Bottleneck) and counts
    ``layer1..4`` the keys have; keys and shapes are then checked by loading (K heatmaps, 3
    deconvolutions of 256 channels as every released file has).
    """
    return SimpleBaselineSettings(depth=_depth(state, source)), dict(state)


def convert_pose_resnet_mmpose(state: Mapping[str, torch.Tensor], source: str = "mmpose SimpleBaseline state dict",
                               all_stages: bool = False) -> tuple[SimpleBaselineSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter of mmpose files (0.x ``keypoint_head.``, 1.x ``head.``): renamed
    (``backbone.X`` -> ``X``, ``{head}.deconv_layers`` / ``final_layer`` unprefixed), then as the official."""
    return convert_pose_resnet_official(rename_mmpose(state, source, _MMPOSE_HEAD_KEYS), source)


def load_imagenet_resnet(model: SimpleBaseline, state: Mapping[str, torch.Tensor], source: str) -> str:
    """The architecture table's ImageNet loader: ``model``'s trunk (``conv1``, ``bn1``, ``layer1..4``) from a
    torchvision ImageNet resnet; what was loaded, in words.

    ``fc`` is ignored; the deconvolutions and ``final_layer`` keep their initialisation (as the
    release's ``init_weights`` does with ``MODEL.PRETRAINED``). Nothing is folded: the model then
    expects torchvision's input (RGB / 255, ImageNet mean and std). ValueError, naming them, for
    a depth other than ``model.depth``, missing or unexpected trunk keys, or other shapes.
    """
    depth = _depth(state, f"{source} (ImageNet ResNet)")
    if depth != model.depth:
        raise ValueError(f"{source}: a ResNet-{depth} does not fit the trunk of this ResNet-{model.depth} SimpleBaseline "
                         "(model.depth)")
    own = [k for k in model.state_dict() if k.startswith(_TRUNK_PREFIXES)]
    extra = {k for k in state if k.startswith(_TRUNK_PREFIXES)} - set(own)
    if extra:
        raise key_mismatch_error(f"{source} (ResNet-{depth} trunk)", (), extra)
    # Old torchvision files (resnet50-19c8e357.pth) predate BN counters: load_part keeps the model's.
    copied = load_part(model, state, own, source, f"the ResNet-{depth} trunk")
    logger.info("loaded the ImageNet ResNet-%d trunk from %s (%d tensors; fc ignored)", depth, source, len(copied))
    return f"ImageNet ResNet-{depth} from {source}"
