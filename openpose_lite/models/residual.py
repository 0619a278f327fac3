"""ResNet's residual blocks (He et al. 2016), shared by HRNet, SimpleBaseline and the Stacked Hourglass.

The key names (``conv1``/``bn1`` ..., ``downsample.0/.1`` for a 1x1 conv + BN shortcut) are those
of torchvision's ResNet, which the official HRNet and SimpleBaseline releases and mmpose's
hourglass all use, so their files load into these blocks by name. The stride sits on the 3x3 conv.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "conv", "init_normal"]


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
