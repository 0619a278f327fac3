"""HRNet for top-down pose estimation (W32 / W48).

Architecture (Sun et al., "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019, Sec. 3 and the pose configuration of its public release):

* stem: two 3x3 stride-2 convs (64 channels, BN, ReLU) -> stride 4;
* ``layer1``: 4 Bottleneck blocks, 64 -> 256 channels;
* ``stage2`` / ``stage3`` / ``stage4``: 1 / 4 / 3 multi-resolution modules with 2 / 3 / 4
  parallel branches of widths ``[C, 2C, 4C, 8C]`` (C = 32 or 48), 4 BasicBlocks per branch
  per module, each module ending in an exchange unit that sums every branch into every
  other ("repeated multi-scale fusion", Sec. 3.2): lower -> higher resolution by a 1x1 conv +
  BN + nearest upsampling, higher -> lower by a chain of 3x3 stride-2 convs + BN (ReLU
  between links, not after the last);
* ``transition1/2/3`` (:func:`_transition`) before each stage;
* the last module of ``stage4`` fuses into the highest-resolution branch only, and
  ``final_layer`` (1x1 conv with bias) regresses K heatmaps from it at stride 4.

Names follow the official "deep-high-resolution-net.pytorch" release (``transition1.1.0.0``,
``stage2.0.fuse_layers.0.1.0`` ...), so its COCO checkpoints load as they are; the slots it leaves ``None``
(identity transitions, the fusion matrix's diagonal) are parameter-free ``nn.Identity`` here.

Shape legend: B batch, K keypoints, H x W input size (multiples of 32, so the four branches'
sizes halve exactly and fusion adds maps of equal size).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import nn

from openpose_lite.models.residual import (BasicBlock, Bottleneck, check_image_batch, check_positive_ints, conv,
                                           init_normal, res_layer)
from openpose_lite.network_settings import HRNetSettings
from openpose_lite.models.state_dict import exact_state, strip_module_prefix
from openpose_lite.skeleton import COCO_17, Skeleton

ARCH = "hrnet"
STRIDE = 4
# Four branches halve the resolution three times below the stride-4 stem output.
INPUT_MULTIPLE = STRIDE * 2 ** 3

_STEM_WIDTH = 64
_LAYER1_PLANES = 64
_LAYER1_BLOCKS = 4
_BLOCKS_PER_BRANCH = 4
# (number of modules, number of branches) for stage2, stage3, stage4 (official pose config).
_STAGES: tuple[tuple[int, int], ...] = ((1, 2), (4, 3), (3, 4))
# Official init: N(0, 0.001) conv weights (the heatmap regressor starts near zero).
_CONV_INIT_STD = 1e-3

# Keys that every official pose HRNet checkpoint (and ours) has; used for detection/inference.
_WIDTH_KEY = "stage2.0.branches.0.0.conv1.weight"
_FINAL_KEY = "final_layer.weight"
_STEM_KEY = "conv1.weight"


def _stride2_chain(in_channels: int, out_channels: int, steps: int, relu_last: bool) -> nn.Sequential:
    """Higher -> lower resolution: ``steps`` links of 3x3 stride-2 conv + BN + ReLU. The links keep
    ``in_channels`` but the last, which maps to ``out_channels`` and ends in a ReLU only with
    ``relu_last`` (in the exchange unit the sum of all inputs is rectified once, after fusion)."""
    links: list[nn.Module] = []
    for step in range(steps):
        last = step == steps - 1
        width = out_channels if last else in_channels
        layers: list[nn.Module] = [conv(in_channels, width, 3, stride=2), nn.BatchNorm2d(width)]
        if relu_last or not last:
            layers.append(nn.ReLU(inplace=True))
        links.append(nn.Sequential(*layers))
    return nn.Sequential(*links)


class HighResolutionModule(nn.Module):
    """One multi-resolution module: parallel residual branches, then the exchange unit.

    Input and output: a list of n maps, branch b of shape (B, widths[b], h / 2^b, w / 2^b).
    With ``multi_scale_output=False`` only the fused highest-resolution map is returned
    (a list of one).
    """

    def __init__(self, widths: list[int], num_blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"HighResolutionModule: widths must list at least 2 branches, got {widths}")
        self.branches = nn.ModuleList(
            res_layer(BasicBlock, width, width, num_blocks) for width in widths
        )
        num_outputs = len(widths) if multi_scale_output else 1
        # fuse_layers[i][j] maps branch j to the resolution and width of output i.
        self.fuse_layers = nn.ModuleList()
        for i in range(num_outputs):
            row = nn.ModuleList()
            for j, width in enumerate(widths):
                if j > i:  # lower -> higher resolution: 1x1 conv, BN, nearest upsampling
                    row.append(nn.Sequential(conv(width, widths[i], 1), nn.BatchNorm2d(widths[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    row.append(_stride2_chain(width, widths[i], i - j, relu_last=False))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        feats = [branch(x) for branch, x in zip(self.branches, inputs, strict=True)]
        fused: list[torch.Tensor] = []
        for row in self.fuse_layers:
            # Summed in branch order (0, 1, ...), the order of the release, for equal rounding.
            total = row[0](feats[0])
            for j in range(1, len(feats)):
                total = total + row[j](feats[j])
            fused.append(self.relu(total))
        return fused


def _transition(in_widths: list[int], out_widths: list[int]) -> nn.ModuleList:
    """Between stages: adapt existing branches, open new ones from the lowest-resolution branch.

    Entry i is identity when branch i keeps its width, a 3x3 conv + BN + ReLU when it changes
    (only after ``layer1``: 256 -> C), and for a new branch a stride-2 chain (one link per halving)
    from the last existing branch.
    """
    layers = nn.ModuleList()
    for i, width in enumerate(out_widths):
        if i >= len(in_widths):
            layers.append(_stride2_chain(in_widths[-1], width, i + 1 - len(in_widths), relu_last=True))
        elif width == in_widths[i]:
            layers.append(nn.Identity())
        else:
            layers.append(nn.Sequential(conv(in_widths[i], width, 3), nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
    return layers


class HRNet(nn.Module):
    """HRNet-W``width`` pose network: images (B, 3, H, W) -> ``[{"heatmaps": (B, K, H/4, W/4)}]``.

    ``width`` C of the highest-resolution branch (W32, W48; branch b has ``C * 2**b``), ``num_keypoints`` K,
    ``num_blocks`` BasicBlocks per branch per module (4 in the paper). The output is raw (no activation);
    the official weights expect RGB in [0, 1] normalised with the ImageNet mean/std.
    """

    arch = ARCH

    def __init__(self, width: int = 32, num_keypoints: int = COCO_17.num_keypoints,
                 num_blocks: int = _BLOCKS_PER_BRANCH) -> None:
        super().__init__()
        check_positive_ints("HRNet", width=width, num_keypoints=num_keypoints, num_blocks=num_blocks)
        self.width = width
        self.num_keypoints = num_keypoints
        self.num_blocks = num_blocks
        self.stride = STRIDE

        self.conv1 = conv(3, _STEM_WIDTH, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(_STEM_WIDTH)
        self.conv2 = conv(_STEM_WIDTH, _STEM_WIDTH, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(_STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = res_layer(Bottleneck, _STEM_WIDTH, _LAYER1_PLANES, _LAYER1_BLOCKS)

        widths = [_LAYER1_PLANES * Bottleneck.expansion]
        for index, (num_modules, num_branches) in enumerate(_STAGES):
            stage_widths = [width * 2 ** b for b in range(num_branches)]
            last_stage = index == len(_STAGES) - 1
            modules = [
                HighResolutionModule(
                    stage_widths, num_blocks,
                    # The final module feeds the head from the high-resolution branch only.
                    multi_scale_output=not (last_stage and m == num_modules - 1),
                )
                for m in range(num_modules)
            ]
            self.add_module(f"transition{index + 1}", _transition(widths, stage_widths))
            self.add_module(f"stage{index + 2}", nn.Sequential(*modules))
            widths = stage_widths

        self.final_layer = nn.Conv2d(width, num_keypoints, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: convs N(0, 0.001) with zero bias, BN weight 1 and bias 0."""
        init_normal(self, _CONV_INIT_STD, (nn.Conv2d,))

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images (B, 3, H, W), H and W multiples of 32 -> ``[{"heatmaps": (B, K, H/4, W/4)}]``.

        One stage, in the list-of-stage-dicts form every model of the project returns.
        """
        check_image_batch("HRNet", images, INPUT_MULTIPLE, f"four branches down to stride {STRIDE * 8}")
        x = self.relu(self.bn1(self.conv1(images)))
        x = self.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for index in range(len(_STAGES)):
            transition = getattr(self, f"transition{index + 1}")
            # A new branch grows from the lowest-resolution branch of the previous stage.
            branches = [layer(branches[min(i, len(branches) - 1)]) for i, layer in enumerate(transition)]
            for module in getattr(self, f"stage{index + 2}"):
                branches = module(branches)
        return [{"heatmaps": self.final_layer(branches[0])}]


def build_hrnet(width: int = 32, num_keypoints: int = COCO_17.num_keypoints, num_blocks: int = 4) -> HRNet:
    """:class:`HRNet`; ``num_blocks`` below the paper's 4 gives small CPU models."""
    return HRNet(width=width, num_keypoints=num_keypoints, num_blocks=num_blocks)


def build(cfg: Any, skeleton: Skeleton) -> HRNet:
    """The architecture table's builder: the HRNet of its :class:`HRNetSettings`, one heatmap per keypoint."""
    return build_hrnet(width=cfg.settings.width, num_keypoints=skeleton.num_keypoints, num_blocks=cfg.settings.blocks)


# --------------------------------------------------------------------------- official weights
def is_hrnet_official(keys: Collection[str]) -> bool:
    """True if a key set (already unwrapped: no ``module.``) has the official pose-HRNet layout.

    Key-based: the stem, the stage-2 branch that fixes the width, a fourth branch opened by
    ``transition3``, stage-4 fusion and the single ``final_layer`` head (bottom-up HigherHRNet
    files have ``final_layers`` instead and are rejected).
    """
    if not all(k in keys for k in (_STEM_KEY, _WIDTH_KEY, _FINAL_KEY)):
        return False
    has_transition3 = any(k.startswith("transition3.") for k in keys)
    has_stage4_fusion = any(k.startswith("stage4.") and ".fuse_layers." in k for k in keys)
    return has_transition3 and has_stage4_fusion


def hrnet_config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, int]:
    """``{"width": C, "num_keypoints": K, "num_blocks": n}`` read from an HRNet state dict (``module.`` allowed).

    C is the output width of the first stage-2 block (``stage2.0.branches.0.0.conv1.weight``,
    shape (C, C, 3, 3)); K the output count of ``final_layer.weight`` (shape (K, C, 1, 1));
    n the number of blocks in the first stage-2 branch (4 in the official models).
    """
    state = strip_module_prefix(state_dict)
    for key in (_WIDTH_KEY, _FINAL_KEY):
        if not isinstance(state.get(key), torch.Tensor):
            raise ValueError(f"HRNet state dict: missing key {key!r}; not a pose-HRNet state dict")
    width_shape, final_shape = tuple(state[_WIDTH_KEY].shape), tuple(state[_FINAL_KEY].shape)
    if len(width_shape) != 4 or len(final_shape) != 4 or final_shape[2:] != (1, 1):
        raise ValueError(f"HRNet state dict: {_WIDTH_KEY!r} must be a conv weight and {_FINAL_KEY!r} a 1x1 conv "
                         f"(FINAL_CONV_KERNEL 1), got shapes {width_shape} and {final_shape}")
    blocks = {int(k.split(".")[4]) for k in state if k.startswith("stage2.0.branches.0.") and k.count(".") > 4}
    return {"width": int(width_shape[0]), "num_keypoints": int(final_shape[0]), "num_blocks": max(blocks) + 1}


def convert_hrnet_official(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Official pose-HRNet state dict -> ours (names are identical): ``module.`` stripped, and every key
    and shape checked against the model the file describes
    (:func:`~openpose_lite.models.state_dict.exact_state`, which fills BN counters old files lack).

    Raises:
        ValueError: not a pose-HRNet state dict, or keys/shapes differ from HRNet-W``C``
            with K keypoints; the message names the offending keys.
    """
    state = strip_module_prefix(state_dict)
    if not is_hrnet_official(frozenset(state)):
        raise ValueError(
            "HRNet state dict: not in the official pose-HRNet layout (expected keys "
            f"{_STEM_KEY!r}, {_WIDTH_KEY!r}, {_FINAL_KEY!r}, transition3.* and stage4.*.fuse_layers.*)"
        )
    config = hrnet_config_from_state_dict(state)
    with torch.device("meta"):  # shapes only
        reference = HRNet(**config).state_dict()
    return exact_state(reference, state, f"HRNet-W{config['width']} state dict")


def convert_hrnet(state: Mapping[str, torch.Tensor], source: str,
                  all_stages: bool = False) -> tuple[HRNetSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter: (width and blocks read from the shapes, the state as it is: the names
    are ours). Keys and shapes, the heatmap count the skeleton's included, are checked when the state is loaded."""
    sizes = hrnet_config_from_state_dict(state)
    return HRNetSettings(width=sizes["width"], blocks=sizes["num_blocks"]), dict(state)
