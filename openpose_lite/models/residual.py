"""ResNet's residual blocks (He et al. 2016) and the input check, shared by HRNet, SimpleBaseline and the
Stacked Hourglass.

The key names (``conv1``/``bn1`` ..., ``downsample.0/.1`` for a 1x1 conv + BN shortcut) are those
of torchvision's ResNet, which the official HRNet and SimpleBaseline releases and mmpose's
hourglass all use, so their files load into these blocks by name. The stride sits on the 3x3 conv.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "check_image_batch", "check_positive_ints", "conv", "init_normal", "res_layer"]


def check_positive_ints(owner: str, **values: Any) -> None:
    """ValueError naming the first of ``values`` that is not a positive int (a bool is not one)."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def check_image_batch(owner: str, images: torch.Tensor, multiple: int, why: str) -> None:
    """Raise ValueError unless ``images`` is (B, 3, H, W) with H and W multiples of ``multiple`` (``why``: where
    the multiple comes from). Skipped under tracing (export), where the sizes stay symbolic."""
    if torch.jit.is_tracing():
        return
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{owner}: images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    h, w = int(images.shape[-2]), int(images.shape[-1])
    if h % multiple or w % multiple:
        raise ValueError(f"{owner}: image height and width must be multiples of {multiple} ({why}), "
                         f"got H x W = {h} x {w}")


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """A ``kernel`` x ``kernel`` conv with "same" padding and no bias (the BN after it shifts instead)."""
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)


def init_normal(model: nn.Module, std: float, kinds: tuple[type[nn.Module], ...]) -> None:
    """The top-down releases' initialisation (HRNet's, SimpleBaseline's, mmpose's): the weights of every
    module of ``kinds`` N(0, ``std``) with zero bias, every BN's weight 1 and bias 0."""
    for module in model.modules():
        if isinstance(module, kinds):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """``downsample``: 1x1 conv + BN where the block changes width or resolution, else None (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first with ``stride``) + shortcut: (B, C_in, h, w) -> (B, C_out, h/s, w/s)."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, out_channels, 3, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (``stride``) -> 1x1 residual block: (B, C_in, h, w) -> (B, 4 * planes, h/s, w/s)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv(in_channels, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def res_layer(block: type[BasicBlock | Bottleneck], in_channels: int, planes: int, num_blocks: int, stride: int = 1,
              downsample_first: bool = True) -> nn.Sequential:
    """torchvision's and mmpose's ``ResLayer``: ``num_blocks`` blocks, the one that changes the width (to
    ``planes * block.expansion``) and the stride first, even for ``num_blocks`` 0 (as mmpose builds it);
    with ``downsample_first=False`` (BasicBlocks: the hourglass's ``low3``) that block last."""
    if not downsample_first:
        return nn.Sequential(*(block(in_channels, in_channels) for _ in range(num_blocks - 1)),
                             block(in_channels, planes, stride))
    out_channels = planes * block.expansion
    return nn.Sequential(block(in_channels, planes, stride),
                         *(block(out_channels, planes) for _ in range(num_blocks - 1)))
