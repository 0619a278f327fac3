"""Stacked Hourglass for top-down pose estimation, as mmpose builds it (``HourglassNet``).

Architecture (Newell et al., "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016, as
open-mmlab/mmpose ``mmpose/models/backbones/hourglass.py`` ``HourglassNet`` and ``HourglassModule``, the
same in 0.x and 1.x), every residual unit mmpose's ``BasicBlock``:

* ``stem``: 7x7/2 conv + BN + ReLU (128), one stride-2 BasicBlock to ``stage_channels[0]`` -> stride 4;
* per stack a recursive ``HourglassModule`` of ``downsample_times`` levels; level l (c =
  ``stage_channels[l]``, n = ``stage_channels[l+1]``, b = ``stage_blocks[l]`` blocks each): ``up1`` (at c),
  ``low1`` (c -> n, the first block with stride 2), ``low2`` (the next level, or ``stage_blocks[-1]`` blocks
  at n at the bottom), ``low3`` (n -> c in the last block), nearest 2x upsampling of ``low3`` plus ``up1``;
* per stack ``out_convs`` (3x3 conv + BN + ReLU) and a 1x1 head (``final_layers``, mmpose's
  ``multi_final_layers``): every stack supervised. Between stacks: ``conv1x1s`` (stack input) +
  ``remap_convs`` (its features), 1x1 conv + BN each, summed, ReLU, one BasicBlock of ``inters``.

Names are mmpose's inside the backbone (mmcv ``ConvModule``: ``conv`` + ``bn``): the checkpoint
``hourglass52_coco_256x256-4ec713ba_20200709.pth`` (``backbone.*`` + ``keypoint_head.multi_final_layers.*``;
1.x ``CPMHead``: ``head.``) converts by renaming. Its COCO configs (0.x ``hourglass52_coco_256x256.py``, 1.x
``td-hm_hourglass52_8xb32-210e_coco-256x256.py``) use **one** stack (mmpose's "Hourglass-52"),
``downsample_times`` 5, widths (256, 256, 384, 384, 384, 512), blocks (2, 2, 2, 2, 2, 4), 256 x 256
inputs; input RGB with ImageNet mean/std, crop and cells in the HRNet reference's geometry.

Shape legend: B batch, S stacks, K keypoints, H x W input size (multiples of ``4 * 2**downsample_times``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from openpose_lite.models.residual import (BasicBlock, check_image_batch, check_positive_ints, conv, init_normal,
                                           res_layer)
from openpose_lite.network_settings import HourglassSettings
from openpose_lite.models.state_dict import mmpose_head_prefix, numbered_children, rename_mmpose
from openpose_lite.skeleton import COCO_17, Skeleton

ARCH = "hourglass"
STRIDE = 4
# mmpose HourglassNet defaults (the COCO configs keep them).
DOWNSAMPLE_TIMES = 5
STAGE_CHANNELS = (256, 256, 384, 384, 384, 512)
STAGE_BLOCKS = (2, 2, 2, 2, 2, 4)
FEAT_CHANNELS = 256
STEM_CHANNELS = 128
# mmpose init_cfg (HourglassNet and CPMHead): N(0, 0.001) convs, BN weight 1 / bias 0.
_INIT_STD = 1e-3
# The head's first key (mmpose 1.x CPMHead, 0.x TopdownHeatmapMultiStageHead).
_MMPOSE_HEAD_KEY = "multi_final_layers.0.weight"


class ConvBN(nn.Module):
    """mmcv ``ConvModule``'s layout: conv (no bias) + BN (``bn``), ReLU optional; keeps h and w."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = conv(in_channels, out_channels, kernel, stride)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class HourglassModule(nn.Module):
    """One hourglass of ``depth`` levels: (B, channels[0], h, w) -> the same shape (h, w divisible by 2**depth)."""

    def __init__(self, depth: int, channels: Sequence[int], blocks: Sequence[int]) -> None:
        super().__init__()
        cur, nxt = channels[0], channels[1]
        self.up1 = res_layer(BasicBlock, cur, cur, blocks[0])
        self.low1 = res_layer(BasicBlock, cur, nxt, blocks[0], stride=2)
        self.low2: nn.Module = (HourglassModule(depth - 1, channels[1:], blocks[1:]) if depth > 1
                                else res_layer(BasicBlock, nxt, nxt, blocks[1]))
        self.low3 = res_layer(BasicBlock, nxt, cur, blocks[0], downsample_first=False)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


class Hourglass(nn.Module):
    """Stacked hourglass: images (B, 3, H, W) -> ``[{"heatmaps": (B, K, H/4, W/4)}]`` * S, one dict per stack.

    ``num_stacks`` S (each supervised, the last is the prediction), ``num_keypoints`` K, ``downsample_times``
    (halvings per hourglass), ``stage_channels`` and ``stage_blocks`` (width and BasicBlocks per level;
    entries past ``downsample_times + 1`` unused, as in mmpose), ``feat_channels`` (of ``out_convs``, read by
    the heads), ``stem_channels`` (the 7x7 stem conv's). The output is raw (no activation).
    """

    arch = ARCH

    def __init__(self, num_stacks: int = 2, num_keypoints: int = COCO_17.num_keypoints,
                 downsample_times: int = DOWNSAMPLE_TIMES, stage_channels: Sequence[int] = STAGE_CHANNELS,
                 stage_blocks: Sequence[int] = STAGE_BLOCKS, feat_channels: int = FEAT_CHANNELS,
                 stem_channels: int = STEM_CHANNELS) -> None:
        super().__init__()
        check_positive_ints("Hourglass", num_stacks=num_stacks, num_keypoints=num_keypoints,
                            downsample_times=downsample_times, feat_channels=feat_channels, stem_channels=stem_channels,
                            **{f"stage_channels[{i}]": c for i, c in enumerate(stage_channels)},
                            **{f"stage_blocks[{i}]": b for i, b in enumerate(stage_blocks)})
        if len(stage_channels) != len(stage_blocks) or len(stage_channels) <= downsample_times:
            raise ValueError(f"Hourglass: stage_channels and stage_blocks need the same length, more than "
                             f"downsample_times={downsample_times}; got {len(stage_channels)} and {len(stage_blocks)}")
        levels = downsample_times + 1
        self.num_stacks = num_stacks
        self.num_keypoints = num_keypoints
        self.downsample_times = downsample_times
        self.stage_channels = tuple(stage_channels[:levels])
        self.stage_blocks = tuple(stage_blocks[:levels])
        self.feat_channels = feat_channels
        self.stem_channels = stem_channels
        self.stride = STRIDE
        self.input_multiple = STRIDE * 2 ** downsample_times

        width = self.stage_channels[0]
        self.stem = nn.Sequential(ConvBN(3, stem_channels, 7, stride=2),
                                  res_layer(BasicBlock, stem_channels, width, 1, stride=2))
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, self.stage_channels, self.stage_blocks) for _ in range(num_stacks))
        # mmpose's ResLayer builds its first block whatever num_blocks is: a one-stack file has an
        # (unused) inters.0, so ours has it too and such files load strictly.
        self.inters = res_layer(BasicBlock, width, width, num_stacks - 1)
        self.conv1x1s = nn.ModuleList(ConvBN(width, width, 1, relu=False) for _ in range(num_stacks - 1))
        self.out_convs = nn.ModuleList(ConvBN(width, feat_channels, 3) for _ in range(num_stacks))
        self.remap_convs = nn.ModuleList(ConvBN(feat_channels, width, 1, relu=False) for _ in range(num_stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        self.final_layers = nn.ModuleList(nn.Conv2d(feat_channels, num_keypoints, 1) for _ in range(num_stacks))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmpose's initialisation: convs N(0, 0.001) with zero bias, BN weight 1 and bias 0."""
        init_normal(self, _INIT_STD, (nn.Conv2d,))

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images (B, 3, H, W) -> S dicts ``{"heatmaps": (B, K, H/4, W/4)}``, the last stack's last."""
        check_image_batch("Hourglass", images, self.input_multiple,
                          f"stride {STRIDE} x {self.downsample_times} halvings")
        x = self.stem(images)
        outputs = []
        for index in range(self.num_stacks):
            feats = self.out_convs[index](self.hourglass_modules[index](x))
            outputs.append({"heatmaps": self.final_layers[index](feats)})
            if index < self.num_stacks - 1:
                x = self.conv1x1s[index](x) + self.remap_convs[index](feats)
                x = self.inters[index](self.relu(x))
        return outputs


def build_hourglass(num_stacks: int = 2, num_keypoints: int = COCO_17.num_keypoints, **sizes: Any) -> Hourglass:
    """A ``num_stacks``-stack :class:`Hourglass`, mmpose's sizes unless ``sizes`` (its other arguments) says."""
    return Hourglass(num_stacks=num_stacks, num_keypoints=num_keypoints, **sizes)


def build(cfg: Any, skeleton: Skeleton) -> Hourglass:
    """The architecture table's builder: the stacks of its :class:`HourglassSettings` at mmpose's sizes, one
    heatmap per keypoint."""
    return build_hourglass(num_stacks=cfg.settings.stacks, num_keypoints=skeleton.num_keypoints)


# --------------------------------------------------------------------------- mmpose checkpoints
def is_hourglass_mmpose(keys: Collection[str]) -> bool:
    """True if an unwrapped key set is an mmpose top-down HourglassNet checkpoint's."""
    return ("backbone.stem.0.conv.weight" in keys and "backbone.hourglass_modules.0.up1.0.conv1.weight" in keys
            and mmpose_head_prefix(keys, _MMPOSE_HEAD_KEY) is not None)


def _shape(state: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in state or not isinstance(state[key], torch.Tensor):
        raise ValueError(f"Hourglass state dict: missing tensor {key!r}")
    return tuple(state[key].shape)


def hourglass_config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Hourglass` arguments an unwrapped state dict describes (ours or mmpose's).

    Stacks: the ``hourglass_modules.<i>`` count; levels: the nesting of ``low2``; per level the
    width of ``up1.0.conv1`` and the ``up1`` block count, at the bottom the ``low2`` ResLayer's;
    ``feat_channels`` from ``out_convs.0.conv``, ``stem_channels`` from ``stem.0.conv``, K from
    ``final_layers.0``.
    """
    state = _rename_mmpose(state_dict) if is_hourglass_mmpose(state_dict) else state_dict
    channels, blocks, prefix = [], [], "hourglass_modules.0."
    while f"{prefix}up1.0.conv1.weight" in state:
        channels.append(_shape(state, f"{prefix}up1.0.conv1.weight")[0])
        blocks.append(numbered_children(state, f"{prefix}up1."))
        prefix += "low2."
    if not channels:
        raise ValueError("Hourglass state dict: missing key 'hourglass_modules.0.up1.0.conv1.weight'; not an hourglass")
    channels.append(_shape(state, f"{prefix}0.conv1.weight")[0])
    blocks.append(numbered_children(state, prefix))
    final = _shape(state, "final_layers.0.weight")
    if len(final) != 4 or final[2:] != (1, 1):
        raise ValueError(f"Hourglass state dict: 'final_layers.0.weight' must be a 1x1 conv, got shape {final}")
    return {"num_stacks": numbered_children(state, "hourglass_modules."), "num_keypoints": final[0],
            "downsample_times": len(channels) - 1, "stage_channels": tuple(channels), "stage_blocks": tuple(blocks),
            "feat_channels": _shape(state, "out_convs.0.conv.weight")[0],
            "stem_channels": _shape(state, "stem.0.conv.weight")[0]}


def _rename_mmpose(state: Mapping[str, Any], what: str = "mmpose Hourglass state dict") -> dict[str, Any]:
    """``backbone.X`` -> ``X``, ``{head}multi_final_layers.i`` -> ``final_layers.i``; other keys are an error."""
    return rename_mmpose(state, what, (_MMPOSE_HEAD_KEY,), {"multi_final_layers.": "final_layers."})


def convert_hourglass_mmpose(state: Mapping[str, torch.Tensor], source: str = "mmpose Hourglass state dict",
                             all_stages: bool = False) -> tuple[HourglassSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter of mmpose HourglassNet checkpoints (0.x ``keypoint_head.``, 1.x
    ``head.``): (the file's stacks, the state renamed by :func:`_rename_mmpose`).

    Keys and shapes are checked by loading: the network has mmpose's COCO sizes (:data:`STAGE_CHANNELS`,
    :data:`STAGE_BLOCKS`, 5 levels), as every released file does; another size is named key by key.
    """
    renamed = _rename_mmpose(state, source)
    return HourglassSettings(stacks=numbered_children(renamed, "hourglass_modules.")), renamed
