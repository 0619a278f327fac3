"""The OpenPose bottom-up network: VGG19 trunk, CPM adaptation layers, T two-branch stages.

Architecture (Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part Affinity
Fields", CVPR 2017, Fig. 3), laid out as the public CMU COCO body model so its weights
load through a plain key-name map (see :mod:`openpose_lite.models.weights`):

* ``trunk``: torchvision's ``vgg19.features`` up to ``conv4_2`` (ten 3x3 convs + ReLU,
  three 2x2 max-pools -> stride 8).
* ``cpm``: ``conv4_3`` (3x3, 256) and ``conv4_4`` (3x3, 128), each + ReLU. Its output is
  the feature map F shared by every stage.
* ``stages[0]``: per branch three 3x3 convs, a 1x1 conv (4 x stage width; 512 in CMU) and
  a 1x1 output conv.
* ``stages[t > 0]``: input ``concat(PAFs_{t-1}, heatmaps_{t-1}, F)`` in the CMU order, per
  branch five 7x7 convs, a 1x1 conv and a 1x1 output conv.

Branch ``pafs`` is CMU's L1 (2L channels), branch ``heatmaps`` is CMU's L2 (K + 1
channels with the background). Output convs have no activation; every other conv is
followed by a ReLU.

Shape legend: B batch, S stages, K keypoints, L limbs, H x W input size (multiple of 8
not required: max-pool floors, so maps are ``floor(H / 8) x floor(W / 8)``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from openpose_lite.network_settings import PafSettings
from openpose_lite.skeleton import OPENPOSE_18, Skeleton

ARCH = "vgg19_paf"
INITS = ("cmu", "kaiming")
STRIDE = 8

# Trunk layers in order: (name, base output width) for convs, (name, None) for max-pools.
# Identical to torchvision vgg19.features[:23] (conv1_1 ... conv4_2 and their ReLUs).
_TRUNK_LAYOUT: tuple[tuple[str, int | None], ...] = (
    ("conv1_1", 64), ("conv1_2", 64), ("pool1", None),
    ("conv2_1", 128), ("conv2_2", 128), ("pool2", None),
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv3_4", 256), ("pool3", None),
    ("conv4_1", 512), ("conv4_2", 512),
)
# CMU's two adaptation convs after the trunk: (name, base output width).
_CPM_LAYOUT: tuple[tuple[str, int], ...] = (("conv4_3", 256), ("conv4_4", 128))

# Stage 1 widens to 4x the stage width in its 1x1 conv (512 for the CMU width 128).
_STAGE1_EXPANSION = 4
_MIN_WIDTH = 8


def scaled_width(base: int, width_mult: float) -> int:
    """``base * width_mult`` rounded to the nearest integer, at least 8."""
    return max(_MIN_WIDTH, int(round(base * width_mult)))


def check_network_args(init: str, width_mult: float, **counts: tuple[int, int]) -> None:
    """The constructor checks both bottom-up networks share: ``init`` one of INITS, each count
    (``name=(value, minimum)``, in order) at least its minimum, ``width_mult`` positive.
    Raises ValueError naming the argument."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    for name, (value, minimum) in counts.items():
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")


def vgg_layers(layout: tuple[tuple[str, int | None], ...], width_mult: float, in_channels: int = 3,
               ceil_mode: bool = False, prelu_after: frozenset[str] = frozenset()) -> tuple[nn.Sequential, int]:
    """(a Sequential of 3x3 convs, each + ReLU or, for the names in ``prelu_after``, PReLU, and 2x2
    max-pools; its output width) from ``(name, base width)`` rows (width ``None``: a pool). Keys are
    the names (``conv1_1``, ``relu1_1``, ``pool1``, ``prelu4_2``); ``ceil_mode``: Caffe's pools."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = in_channels
    for name, base in layout:
        if base is None:
            modules[name] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode)
            continue
        c_out = scaled_width(base, width_mult)
        modules[name] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        suffix = name[len("conv"):]
        modules[f"prelu{suffix}" if name in prelu_after else f"relu{suffix}"] = (
            nn.PReLU(c_out) if name in prelu_after else nn.ReLU(inplace=True))
        c_in = c_out
    return nn.Sequential(modules), c_in


def conv_branch(rows: list[tuple[int, int, int]]) -> nn.Sequential:
    """A Sequential ``conv1, relu1, ..., convN`` of ``(in, out, kernel)`` rows ("same" padding), a ReLU
    after every conv but the last."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (c_in, c_out, kernel) in enumerate(rows, start=1):
        modules[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size=kernel, padding=kernel // 2)
        if i < len(rows):
            modules[f"relu{i}"] = nn.ReLU(inplace=True)
    return nn.Sequential(modules)


def _paf_branch(in_channels: int, width: int, out_channels: int, first: bool) -> nn.Sequential:
    """Stage 1: CMU's conv5_1..conv5_3 (3x3), conv5_4 (1x1, 4 x width: 512) and conv5_5 (1x1, out);
    later stages: Mconv1..Mconv5 (7x7), Mconv6 (1x1, width) and Mconv7 (1x1, out)."""
    num_spatial, kernel, hidden = (3, 3, _STAGE1_EXPANSION * width) if first else (5, 7, width)
    rows = [(in_channels if i == 0 else width, width, kernel) for i in range(num_spatial)]
    return conv_branch(rows + [(width, hidden, 1), (hidden, out_channels, 1)])


class PafStage(nn.Module):
    """One two-branch stage: features (B, C_in, H, W) -> (pafs (B, 2L, H, W), heatmaps (B, K+1, H, W))."""

    def __init__(self, in_channels: int, width: int, num_pafs: int, num_heatmaps: int, first: bool) -> None:
        super().__init__()
        self.pafs = _paf_branch(in_channels, width, num_pafs, first)
        self.heatmaps = _paf_branch(in_channels, width, num_heatmaps, first)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pafs(x), self.heatmaps(x)


class VGG19PafNet(nn.Module):
    """OpenPose VGG19 + PAF network: images (B, 3, H, W) -> one dict of raw maps per stage.

    ``num_stages`` S (CMU: 6), ``stage_channels`` (CMU: 128); ``width_mult`` scales the trunk and CPM widths,
    rounded and at least 8 (1.0: CMU's). ``skeleton`` sets the output channels (CMU's weights: ``OPENPOSE_18``).

    ``init="cmu"`` (the paper's Caffe model): CPM and stage convs N(0, 0.01^2), trunk convs Kaiming-normal
    (fan_out), as torchvision's VGG, all with zero bias. ``init="kaiming"``, for training from scratch with
    Adam: the CPM and stage convs Kaiming-normal (fan_in) too, but each output conv N(0, 0.01^2); at CMU's
    scale Adam's first updates (about lr per weight) dwarf the weights, switch off most ReLUs, and the PAF
    branch sits at its all-zero plateau for epochs.
    """

    arch = ARCH

    def __init__(self, skeleton: Skeleton = OPENPOSE_18, num_stages: int = 6, stage_channels: int = 128,
                 width_mult: float = 1.0, init: str = "cmu") -> None:
        super().__init__()
        check_network_args(init, width_mult, num_stages=(num_stages, 1), stage_channels=(stage_channels, 1))
        self.skeleton = skeleton
        self.num_stages = int(num_stages)
        self.stage_channels = int(stage_channels)
        self.width_mult = float(width_mult)
        self.init = init
        self.stride = STRIDE

        self.trunk, c = vgg_layers(_TRUNK_LAYOUT, width_mult)
        self.cpm, self.feature_channels = vgg_layers(_CPM_LAYOUT, width_mult, c)
        num_pafs, num_heatmaps = skeleton.num_pafs, skeleton.num_heatmaps
        refine_in = num_pafs + num_heatmaps + self.feature_channels
        self.stages = nn.ModuleList(
            PafStage(self.feature_channels if t == 0 else refine_in, self.stage_channels, num_pafs, num_heatmaps,
                     first=t == 0)
            for t in range(self.num_stages)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw all weights with the initialisation described in the class docstring."""
        for m in self.trunk.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for part in (self.cpm, self.stages):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    if self.init == "kaiming":
                        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                    else:
                        nn.init.normal_(m.weight, std=0.01)
                    nn.init.zeros_(m.bias)
        if self.init == "kaiming":
            for stage in self.stages:
                for branch in (stage.pafs, stage.heatmaps):
                    nn.init.normal_(branch[-1].weight, std=0.01)  # the output conv

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the VGG19 part (conv1_1 ... conv4_2), for freeze-then-release schedules."""
        return self.trunk.parameters()

    def refinement_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of stages 2 ... S (CMU's prototxt trains them at 4x the base rate)."""
        return (p for stage in self.stages[1:] for p in stage.parameters())

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> shared features F (B, C, H/8, W/8)."""
        return self.cpm(self.trunk(images))

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images (B, 3, H, W) -> S dicts ``{"pafs": (B, 2L, H/8, W/8), "heatmaps": (B, K+1, H/8, W/8)}``, raw;
        stage t > 1 sees ``concat(pafs, heatmaps, F)`` of stage t - 1 (CMU's order)."""
        features = self.features(images)
        outputs: list[dict[str, torch.Tensor]] = []
        x = features
        for stage in self.stages:
            if len(outputs) > 0:
                x = torch.cat([outputs[-1]["pafs"], outputs[-1]["heatmaps"], features], dim=1)
            pafs, heatmaps = stage(x)
            outputs.append({"pafs": pafs, "heatmaps": heatmaps})
        return outputs

    @torch.jit.export
    def forward_last(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) -> the last stage's dict (what inference decodes)."""
        return self.forward(images)[-1]


def build_vgg19_paf(num_stages: int = 6, stage_channels: int = 128, width_mult: float = 1.0,
                    skeleton: Skeleton = OPENPOSE_18, init: str = "cmu") -> VGG19PafNet:
    """Build a :class:`VGG19PafNet`; the defaults are the CMU COCO body model (``init``: see the class)."""
    return VGG19PafNet(skeleton=skeleton, num_stages=num_stages, stage_channels=stage_channels,
                       width_mult=width_mult, init=init)


def build(cfg: Any, skeleton: Skeleton) -> VGG19PafNet:
    """The architecture table's builder: the network of a ``model`` config section (its :class:`PafSettings`)."""
    return build_vgg19_paf(**vars(cfg.settings), skeleton=skeleton, init=cfg.init)


# ----------------------------------------------------------------------- a bare state dict of ours
_STAGE_KEY = re.compile(r"^stages\.(\d+)\.")


def is_bare_state_dict(keys: frozenset[str]) -> bool:
    """Whether a key set is our own VGG19 + PAF state dict (saved without its checkpoint's config)."""
    return "trunk.conv1_1.weight" in keys


def convert_bare_state_dict(state: Mapping[str, torch.Tensor], source: str,
                            all_stages: bool = False) -> tuple[PafSettings, dict[str, torch.Tensor]]:
    """(the settings read from the tensor shapes, the state dict as it is) of a bare state dict of ours."""
    try:
        num_stages = 1 + max(int(m.group(1)) for k in state if (m := _STAGE_KEY.match(k)))
        stage_channels = int(state["stages.0.pafs.conv1.weight"].shape[0])
        # The widest layer gives the most precise width multiplier.
        width_mult = int(state["trunk.conv4_2.weight"].shape[0]) / 512
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{source}: cannot infer the model size from a bare state dict ({exc}); "
                         "save a checkpoint with its config") from exc
    return PafSettings(num_stages=num_stages, stage_channels=stage_channels, width_mult=width_mult), dict(state)
