"""Lightweight OpenPose: a MobileNetV1 trunk, a light CPM, an initial stage and refinement stages.

Architecture (Osokin, "Real-time 2D Multi-Person Pose Estimation on CPU: Lightweight OpenPose", 2018), laid
out as the reference (Daniil-Osokin/lightweight-human-pose-estimation.pytorch, ``models/with_mobilenet.py``
``PoseEstimationWithMobileNet``, blocks from ``modules/conv.py``) so that its checkpoints load by key name:

* ``model`` (the trunk, stride 8): a 3x3 conv 3 -> 32 at stride 2, then eleven depthwise-separable blocks
  (3x3 depthwise, 1x1 pointwise, no bias, each + BatchNorm + ReLU) of MobileNetV1 up to ``conv5_5``;
  block 6 (``conv4_2``) has stride 1 instead of 2 and block 7's depthwise conv is dilated (2) to regain
  the receptive field.
* ``cpm``: ``align`` (1x1 conv 512 -> C + ReLU), ``trunk`` (three depthwise-separable blocks without
  BatchNorm, ELU after each conv) added to its own input, then ``conv`` (3x3 + ReLU): the features F.
* ``initial_stage``: ``trunk`` (three 3x3 convs + ReLU), heads ``heatmaps`` and ``pafs`` (1x1 conv
  C -> 512 + ReLU, 1x1 output conv).
* ``refinement_stages[t]``: input ``concat(F, heatmaps_{t-1}, pafs_{t-1})`` (the reference's order, not
  CMU's), five residual blocks (``initial`` 1x1 conv + ReLU; ``trunk`` a 3x3 conv and a 3x3 conv with
  dilation 2, each with bias, BatchNorm and ReLU; ``initial + trunk``), heads 1x1 C -> C + ReLU, 1x1 out.

Output convs have no activation; BatchNorms are PyTorch's defaults; convs outside the trunk carry a bias.
The reference trains CMU's channel layout (keypoints in CMU order, background last; limb ``i`` of
``BODY_PARTS_KPT_IDS``, equal to ``OPENPOSE_18.limbs``, in PAF channels ``(2i, 2i + 1)``), so the published
weights need ``OPENPOSE_18``, and BGR input ``pixel / 256 - 0.5`` as CMU's (``datasets/coco.py``:
``(image - 128) / 256``; ``val.py``: ``img_mean=(128, 128, 128)``, ``img_scale=1/256``). Weight layouts:
:mod:`openpose_lite.models.mobilenet_weights`.

Shape legend: B batch, K keypoints, L limbs, C ``num_channels``, H x W input size; maps are
``ceil(H / 8) x ceil(W / 8)`` (every stride-2 conv has kernel 3 and padding 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from openpose_lite.models.vgg19_paf import check_network_args, scaled_width
from openpose_lite.skeleton import OPENPOSE_18, Skeleton

ARCH = "mobilenet_paf"
STRIDE = 8

# Trunk blocks in order: (base output width, stride, dilation). Block 0 is a full 3x3 conv,
# the others depthwise-separable; the base widths are MobileNetV1's (width_mult 1.0).
TRUNK_LAYOUT: tuple[tuple[int, int, int], ...] = (
    (32, 2, 1),   # conv1
    (64, 1, 1),   # conv2_1
    (128, 2, 1),  # conv2_2
    (128, 1, 1),  # conv3_1
    (256, 2, 1),  # conv3_2
    (256, 1, 1),  # conv4_1
    (512, 1, 1),  # conv4_2: stride 2 in MobileNetV1; 1 here keeps the trunk at stride 8
    (512, 1, 2),  # conv5_1: dilated to regain the receptive field of the dropped stride
    (512, 1, 1),  # conv5_2
    (512, 1, 1),  # conv5_3
    (512, 1, 1),  # conv5_4
    (512, 1, 1),  # conv5_5
)
TRUNK_OUT_BASE = TRUNK_LAYOUT[-1][0]
_NUM_CPM_BLOCKS = 3
_NUM_INITIAL_CONVS = 3
# The initial stage's heads widen to a fixed 512 whatever num_channels is (as the reference).
_INITIAL_HEAD_CHANNELS = 512
_NUM_REFINEMENT_BLOCKS = 5
_REFINEMENT_DILATION = 2


# --------------------------------------------------------------------------- building blocks
def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1,
          bias: bool = True, bn: bool = False, act: type[nn.Module] | None = nn.ReLU) -> list[nn.Module]:
    """[conv, (BatchNorm), (activation)]: a conv with "same" padding for odd kernels at stride 1.

    Returned as a list so that callers lay several convs out flat in one Sequential, which
    fixes the positional key names (``<block>.<position>.weight``) of the reference.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=dilation * (kernel // 2),
                  dilation=dilation, groups=groups, bias=bias)
    ]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if act is not None:
        layers.append(act(inplace=True))
    return layers


def _depthwise_separable(
    c_in: int, c_out: int, stride: int = 1, dilation: int = 1, bn: bool = True, act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """3x3 depthwise conv then 1x1 pointwise conv, both without bias.

    With ``bn``: positions 0 dw, 1 BN, 2 act, 3 pw, 4 BN, 5 act (the trunk); without:
    0 dw, 1 act, 2 pw, 3 act (the CPM, with ELU).
    """
    return nn.Sequential(
        *_conv(c_in, c_in, 3, stride=stride, dilation=dilation, groups=c_in, bias=False, bn=bn, act=act),
        *_conv(c_in, c_out, 1, bias=False, bn=bn, act=act),
    )


def _head(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """1x1 conv + ReLU, then the raw 1x1 output conv; keys ``0.0.*`` and ``1.0.*``."""
    return nn.Sequential(nn.Sequential(*_conv(c_in, hidden, 1)), nn.Sequential(*_conv(hidden, c_out, 1, act=None)))


class LightCpm(nn.Module):
    """Trunk features (B, C_trunk, h, w) -> shared features F (B, C, h, w).

    ``conv(align(x) + trunk(align(x)))``: the residual lets the ELU blocks refine the aligned
    features instead of replacing them.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.align = nn.Sequential(*_conv(in_channels, out_channels, 1))
        self.trunk = nn.Sequential(
            *(_depthwise_separable(out_channels, out_channels, bn=False, act=nn.ELU) for _ in range(_NUM_CPM_BLOCKS))
        )
        self.conv = nn.Sequential(*_conv(out_channels, out_channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.align(x)
        return self.conv(x + self.trunk(x))


class InitialStage(nn.Module):
    """F (B, C, h, w) -> (pafs (B, 2L, h, w), heatmaps (B, K+1, h, w)), raw."""

    def __init__(self, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(nn.Sequential(*_conv(channels, channels, 3)) for _ in range(_NUM_INITIAL_CONVS)))
        self.heatmaps = _head(channels, _INITIAL_HEAD_CHANNELS, num_heatmaps)
        self.pafs = _head(channels, _INITIAL_HEAD_CHANNELS, num_pafs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.pafs(x), self.heatmaps(x)


class RefinementBlock(nn.Module):
    """(B, C_in, h, w) -> (B, C, h, w): ``initial(x) + trunk(initial(x))``.

    The dilated second conv widens the receptive field the way CMU's 7x7 convs do, at a
    fraction of the cost (two 3x3 convs cover 7x7 with dilation 1 and 2).
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.initial = nn.Sequential(*_conv(in_channels, channels, 1))
        self.trunk = nn.Sequential(
            nn.Sequential(*_conv(channels, channels, 3, bn=True)),
            nn.Sequential(*_conv(channels, channels, 3, dilation=_REFINEMENT_DILATION, bn=True)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        return x + self.trunk(x)


class RefinementStage(nn.Module):
    """concat(F, heatmaps, pafs) (B, C_in, h, w) -> (pafs (B, 2L, h, w), heatmaps (B, K+1, h, w)), raw."""

    def __init__(self, in_channels: int, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            *(RefinementBlock(in_channels if i == 0 else channels, channels) for i in range(_NUM_REFINEMENT_BLOCKS))
        )
        self.heatmaps = _head(channels, channels, num_heatmaps)
        self.pafs = _head(channels, channels, num_pafs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.pafs(x), self.heatmaps(x)


# --------------------------------------------------------------------------- the network
class MobileNetPafNet(nn.Module):
    """Lightweight OpenPose: images (B, 3, H, W) -> one dict of raw maps per stage (initial first).

    ``num_refinement_stages`` (reference: 1; 0: the initial stage alone), ``num_channels`` C (reference: 128);
    ``width_mult`` scales the trunk widths (32 ... 512), rounded and at least 8 (1.0 is the reference and the
    only width the ImageNet weights fit). ``skeleton`` sets the output channels.

    ``init="cmu"``: PyTorch's defaults, as the reference, whose training starts the trunk from ImageNet
    (:func:`~openpose_lite.models.mobilenet_weights.load_mobilenet_imagenet`). ``init="kaiming"``, from
    scratch: every conv Kaiming-normal (trunk fan_out, the rest fan_in) with zero biases, but each head's
    output conv N(0, 0.01^2). PyTorch's default draws about 2.4x smaller weights; through the nine convs
    without BatchNorm of the CPM and initial stage the signal fades and the PAF branch sits on its all-zero
    plateau for epochs (synthetic quickstart: val AP 0.05 after 10 epochs; docs/benchmarks.md).
    """

    arch = ARCH

    def __init__(self, skeleton: Skeleton = OPENPOSE_18, num_refinement_stages: int = 1, num_channels: int = 128,
                 width_mult: float = 1.0, init: str = "cmu") -> None:
        super().__init__()
        check_network_args(init, width_mult, num_refinement_stages=(num_refinement_stages, 0), num_channels=(num_channels, 1))
        self.skeleton = skeleton
        self.num_refinement_stages = int(num_refinement_stages)
        self.num_channels = int(num_channels)
        self.width_mult = float(width_mult)
        self.init = init
        self.stride = STRIDE

        blocks: list[nn.Module] = []
        c_in = 3
        for i, (base, stride, dilation) in enumerate(TRUNK_LAYOUT):
            c_out = scaled_width(base, width_mult)
            if i == 0:
                blocks.append(nn.Sequential(*_conv(c_in, c_out, 3, stride=stride, bias=False, bn=True)))
            else:
                blocks.append(_depthwise_separable(c_in, c_out, stride=stride, dilation=dilation))
            c_in = c_out
        self.model = nn.Sequential(*blocks)
        self.trunk_channels = c_in

        self.cpm = LightCpm(self.trunk_channels, self.num_channels)
        self.feature_channels = self.num_channels

        num_heatmaps, num_pafs = skeleton.num_heatmaps, skeleton.num_pafs
        self.initial_stage = InitialStage(self.num_channels, num_heatmaps, num_pafs)
        refine_in = self.num_channels + num_heatmaps + num_pafs
        self.refinement_stages = nn.ModuleList(
            RefinementStage(refine_in, self.num_channels, num_heatmaps, num_pafs)
            for _ in range(self.num_refinement_stages)
        )
        if init == "kaiming":
            self._kaiming_init()

    def _kaiming_init(self) -> None:
        """The ``init="kaiming"`` weights (see the class docstring)."""
        for part, mode in ((self.model, "fan_out"), (self.cpm, "fan_in"), (self.initial_stage, "fan_in"),
                           (self.refinement_stages, "fan_in")):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        for stage in (self.initial_stage, *self.refinement_stages):
            for head in (stage.heatmaps, stage.pafs):
                nn.init.normal_(head[-1][0].weight, std=0.01)

    @property
    def num_stages(self) -> int:
        """Stages S, the initial one included (the length of :meth:`forward`'s list)."""
        return 1 + self.num_refinement_stages

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the MobileNet part (``model``), for freeze-then-release schedules."""
        return self.model.parameters()

    def refinement_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the refinement stages (the reference's train.py: 4x the base rate for their convs)."""
        return self.refinement_stages.parameters()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> shared features F (B, C, H/8, W/8)."""
        return self.cpm(self.model(images))

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images (B, 3, H, W) -> S dicts ``{"pafs": (B, 2L, H/8, W/8), "heatmaps": (B, K+1, H/8, W/8)}``, raw,
        the initial stage first; keys in :class:`VGG19PafNet`'s order (the reference returns ``[heatmaps, pafs]``)."""
        features = self.features(images)
        pafs, heatmaps = self.initial_stage(features)
        outputs: list[dict[str, torch.Tensor]] = [{"pafs": pafs, "heatmaps": heatmaps}]
        for stage in self.refinement_stages:
            # The reference's order: features, then heatmaps, then PAFs.
            pafs, heatmaps = stage(torch.cat([features, heatmaps, pafs], dim=1))
            outputs.append({"pafs": pafs, "heatmaps": heatmaps})
        return outputs

    @torch.jit.export
    def forward_last(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) -> the last stage's dict (what inference decodes)."""
        return self.forward(images)[-1]


def build_mobilenet_paf(num_refinement_stages: int = 1, num_channels: int = 128, width_mult: float = 1.0,
                        skeleton: Skeleton = OPENPOSE_18, init: str = "cmu") -> MobileNetPafNet:
    """Build a :class:`MobileNetPafNet`; the defaults are the published Lightweight OpenPose model."""
    return MobileNetPafNet(skeleton=skeleton, num_refinement_stages=num_refinement_stages,
                           num_channels=num_channels, width_mult=width_mult, init=init)


def build(cfg: Any, skeleton: Skeleton) -> MobileNetPafNet:
    """The architecture table's builder: ``num_stages`` of its :class:`MobileNetPafSettings` counts the
    initial stage and the refinement stages."""
    s = cfg.settings
    return build_mobilenet_paf(num_refinement_stages=s.num_stages - 1, num_channels=s.stage_channels,
                               width_mult=s.width_mult, skeleton=skeleton, init=cfg.init)
