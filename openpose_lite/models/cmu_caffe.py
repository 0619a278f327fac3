"""CMU OpenPose's Caffe networks: BODY_25, the hand and the face networks, and their Caffe layer names.

Written from the deploy prototxts of CMU-Perceptual-Computing-Lab/openpose (``models/pose/body_25/
pose_deploy.prototxt``, ``models/hand/pose_deploy.prototxt``, ``models/face/pose_deploy.prototxt``)
and Cao et al., TPAMI 2019. The COCO and MPI body networks are the two-branch network of
:mod:`openpose_lite.models.vgg19_paf` (with the OPENPOSE_18 and MPI_15 skeletons); their Caffe layer
names are those of :mod:`openpose_lite.models.cmu_weights`.

* :class:`Body25Net` (``pose_iter_584000.caffemodel``): the VGG19 trunk to ``conv4_2`` (ReLU, then
  PReLU after ``conv4_2``), ``conv4_3_CPM`` (256) and ``conv4_4_CPM`` (128) with PReLU: the features
  F. Then PAF stages first, then heatmap stages, each five *dense blocks* (three 3x3 convs in a
  chain, each + PReLU, their three outputs concatenated), a 1x1 conv + PReLU and a 1x1 output conv.
  The first stage of each kind is narrower (96 per conv, 256 in the 1x1) than the rest (128, 512).
  PAF stage t > 0 sees ``concat(F, PAFs_{t-1})``; the first heatmap stage ``concat(F, PAFs)``, the
  next ``concat(F, heatmaps_{t-1}, PAFs)`` (CMU's four PAF and two heatmap stages). In CMU's names
  ``L2`` is the PAF branch and ``L1`` the heatmaps, the stages count from 0 per branch.
* :class:`CpmNet` (hand ``pose_iter_102000``, 21 keypoints; face ``pose_iter_116000``, 70): one
  branch of convolutional pose machine stages on a VGG19 trunk to ``conv5_2`` plus ``conv5_3_CPM``
  (128), all ReLU; stage 1 is two 1x1 convs (512, K + 1), stages 2-6 see ``concat(maps_{t-1}, F)``
  and are five 7x7 convs (128), a 1x1 (128) and a 1x1 output conv.

Max-pools are Caffe's: 2x2, stride 2, rounding the output size up (PyTorch's ``ceil_mode``), so any
input size gives Caffe's map size ``ceil(H / 8)``.

Shape legend: B batch, K keypoints, L limbs, H x W input, h x w = ceil(H / 8) x ceil(W / 8).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from openpose_lite.models.cmu_weights import cmu_conv_table
from openpose_lite.models.vgg19_paf import (_CPM_LAYOUT, _TRUNK_LAYOUT, check_network_args, conv_branch, scaled_width,
                                            vgg_layers)

__all__ = ["BODY25_ARCH", "Body25Net", "CpmNet", "build", "build_body25", "build_cpm", "two_branch_caffe_layer_names"]

BODY25_ARCH = "body25_paf"
STRIDE = 8

# BODY_25's stage widths: (conv width, 1x1 width) of the first stage of a branch and of the others.
_BODY25_FIRST = (96, 256)
_BODY25_LATER = (128, 512)
_DENSE_BLOCKS = 5
_DENSE_CONVS = 3
# The hand and face networks' trunk after conv4_2: (name, width), all 3x3 + ReLU; conv5_3 is CMU's conv5_3_CPM.
_CPM_TRUNK_TAIL: tuple[tuple[str, int], ...] = (("conv4_3", 512), ("conv4_4", 512), ("conv5_1", 512),
                                                 ("conv5_2", 512), ("conv5_3", 128))
_CPM_STAGE1_HIDDEN = 512
_CPM_STAGE_WIDTH = 128
_CPM_REFINE_7X7 = 5


def _init_convs(module: nn.Module, init: str = "cmu") -> None:
    """Zero biases and weights from N(0, 0.01^2), the Caffe recipes' gaussian filler (``init="cmu"``), or
    for training from scratch (``"kaiming"``) He-normal (fan_in, for the PReLUs' 0.25 start) but for the
    maps' output convs (``conv7``), which keep N(0, 0.01^2) so the first maps are near zero (as
    :class:`~openpose_lite.models.vgg19_paf.VGG19PafNet` starts). PReLU slopes keep 0.25."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            if init == "kaiming" and not name.endswith("conv7"):
                nn.init.kaiming_normal_(m.weight, a=0.25, mode="fan_in", nonlinearity="leaky_relu")
            else:
                nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------------ BODY_25
class DenseBlock(nn.Module):
    """Three 3x3 convs in a chain, each + PReLU; (B, C_in, h, w) -> their outputs concatenated (B, 3 width, h, w)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        for j in range(_DENSE_CONVS):
            setattr(self, f"conv{j}", nn.Conv2d(in_channels if j == 0 else width, width, kernel_size=3, padding=1))
            setattr(self, f"prelu{j}", nn.PReLU(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written out (not a loop over getattr): TorchScript, which export and OpenVINO use, compiles it.
        a = self.prelu0(self.conv0(x))
        b = self.prelu1(self.conv1(a))
        return torch.cat([a, b, self.prelu2(self.conv2(b))], dim=1)


class DenseStage(nn.Module):
    """One BODY_25 stage: five dense blocks, a 1x1 conv + PReLU, a 1x1 output conv (no activation)."""

    def __init__(self, in_channels: int, width: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(DenseBlock(in_channels if i == 0 else _DENSE_CONVS * width, width)
                                    for i in range(_DENSE_BLOCKS))
        self.conv6 = nn.Conv2d(_DENSE_CONVS * width, hidden, kernel_size=1)
        self.prelu6 = nn.PReLU(hidden)
        self.conv7 = nn.Conv2d(hidden, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.conv7(self.prelu6(self.conv6(x)))


class Body25Net(nn.Module):
    """OpenPose's BODY_25 network: images (B, 3, H, W) -> a list of per-stage dicts of raw maps.

    ``skeleton`` sets the output channels (CMU's file: BODY_25); ``paf_stages`` / ``heatmap_stages`` (CMU: 4
    and 2); ``width_scale`` scales every width (1.0: CMU's); ``init``: see :func:`_init_convs`.

    One dict per stage: ``{"pafs"}`` for the PAF stages but the last, ``{"heatmaps"}`` for the heatmap stages
    but the last, then the last of each together (what inference decodes): the loss sees every stage once.
    """

    arch = BODY25_ARCH

    def __init__(self, skeleton: Any, paf_stages: int = 4, heatmap_stages: int = 2, width_scale: float = 1.0,
                 init: str = "cmu") -> None:
        super().__init__()
        if not width_scale > 0:
            raise ValueError(f"width_scale must be > 0, got {width_scale}")
        check_network_args(init, width_scale, paf_stages=(paf_stages, 1), heatmap_stages=(heatmap_stages, 1))
        self.skeleton = skeleton
        self.paf_stages, self.heatmap_stages, self.width_scale = int(paf_stages), int(heatmap_stages), float(width_scale)
        self.stride = STRIDE
        self.trunk, c = vgg_layers(_TRUNK_LAYOUT, width_scale, ceil_mode=True, prelu_after=frozenset({"conv4_2"}))
        self.cpm, self.feature_channels = vgg_layers(_CPM_LAYOUT, width_scale, c, ceil_mode=True,
                                                     prelu_after=frozenset(n for n, _ in _CPM_LAYOUT))
        f, p, k = self.feature_channels, skeleton.num_pafs, skeleton.num_heatmaps

        def stage(first: bool, c_in: int, out: int) -> DenseStage:
            width, hidden = _BODY25_FIRST if first else _BODY25_LATER
            return DenseStage(c_in, scaled_width(width, width_scale), scaled_width(hidden, width_scale), out)

        self.paf_branch = nn.ModuleList(stage(t == 0, f if t == 0 else f + p, p) for t in range(self.paf_stages))
        self.heatmap_branch = nn.ModuleList(stage(t == 0, f + p if t == 0 else f + k + p, k)
                                            for t in range(self.heatmap_stages))
        _init_convs(self, init)

    def trunk_parameters(self) -> Any:
        """Parameters of the VGG19 part (conv1_1 ... conv4_2), for freeze-then-release schedules."""
        return self.trunk.parameters()

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images (B, 3, H, W) -> per-stage dicts (see the class): pafs (B, 2L, h, w), heatmaps (B, K+1, h, w)."""
        features = self.cpm(self.trunk(images))
        pafs: list[torch.Tensor] = []
        for t, stage in enumerate(self.paf_branch):
            pafs.append(stage(features if t == 0 else torch.cat([features, pafs[-1]], dim=1)))
        heatmaps: list[torch.Tensor] = []
        for t, stage in enumerate(self.heatmap_branch):
            x = [features, pafs[-1]] if t == 0 else [features, heatmaps[-1], pafs[-1]]
            heatmaps.append(stage(torch.cat(x, dim=1)))
        outputs: list[dict[str, torch.Tensor]] = [{"pafs": m} for m in pafs[:-1]]
        outputs += [{"heatmaps": m} for m in heatmaps[:-1]]
        outputs.append({"pafs": pafs[-1], "heatmaps": heatmaps[-1]})
        return outputs

    @torch.jit.export
    def forward_last(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) -> the last stage's dict (what inference decodes)."""
        return self.forward(images)[-1]

    def caffe_layer_names(self) -> dict[str, tuple[str, str]]:
        """Our module path -> (CMU's Caffe layer name, Caffe layer type) of every layer with weights."""
        names: dict[str, tuple[str, str]] = {}
        for part, suffix in (("trunk", ""), ("cpm", "_CPM")):
            for name, module in getattr(self, part).named_children():
                if isinstance(module, (nn.Conv2d, nn.PReLU)):
                    kind = "PReLU" if isinstance(module, nn.PReLU) else "Convolution"
                    names[f"{part}.{name}"] = (name + suffix, kind)
        for branch, cmu in (("paf_branch", "L2"), ("heatmap_branch", "L1")):
            for t, stage in enumerate(getattr(self, branch)):
                for i in range(len(stage.blocks)):
                    for j in range(_DENSE_CONVS):
                        names[f"{branch}.{t}.blocks.{i}.conv{j}"] = (f"Mconv{i + 1}_stage{t}_{cmu}_{j}", "Convolution")
                        names[f"{branch}.{t}.blocks.{i}.prelu{j}"] = (f"Mprelu{i + 1}_stage{t}_{cmu}_{j}", "PReLU")
                names[f"{branch}.{t}.conv6"] = (f"Mconv6_stage{t}_{cmu}", "Convolution")
                names[f"{branch}.{t}.prelu6"] = (f"Mprelu6_stage{t}_{cmu}", "PReLU")
                names[f"{branch}.{t}.conv7"] = (f"Mconv7_stage{t}_{cmu}", "Convolution")
        return names


def build_body25(skeleton: Any, paf_stages: int = 4, heatmap_stages: int = 2, width_scale: float = 1.0,
                 init: str = "cmu") -> Body25Net:
    """A :class:`Body25Net`; the defaults with the BODY_25 skeleton are CMU's network."""
    return Body25Net(skeleton, paf_stages, heatmap_stages, width_scale, init)


# ------------------------------------------------------------------------------------- hand and face
class CpmNet(nn.Module):
    """The hand and face networks: crops (B, 3, H, W) -> ``num_stages`` dicts ``{"heatmaps": (B, K+1, h, w)}``.

    ``keypoints`` is K (21 for the hand, 70 for the face; the maps carry a background channel after
    them); ``width_scale`` scales every width (1.0: CMU's networks).
    """

    def __init__(self, keypoints: int, num_stages: int = 6, width_scale: float = 1.0) -> None:
        super().__init__()
        if keypoints < 1 or num_stages < 1 or not width_scale > 0:
            raise ValueError(f"CpmNet needs keypoints >= 1, num_stages >= 1 and width_scale > 0, got {keypoints}, "
                             f"{num_stages} and {width_scale}")
        self.keypoints, self.num_stages, self.width_scale = int(keypoints), int(num_stages), float(width_scale)
        self.stride = STRIDE
        self.trunk, features = vgg_layers(_TRUNK_LAYOUT + _CPM_TRUNK_TAIL, width_scale, ceil_mode=True)
        self.feature_channels = features
        out, width = keypoints + 1, scaled_width(_CPM_STAGE_WIDTH, width_scale)
        stages: list[nn.Module] = []
        for t in range(num_stages):
            if t == 0:
                rows = [(features, scaled_width(_CPM_STAGE1_HIDDEN, width_scale), 1)]
            else:
                rows = [(features + out if i == 0 else width, width, 7) for i in range(_CPM_REFINE_7X7)]
                rows.append((width, width, 1))
            stages.append(conv_branch(rows + [(rows[-1][1], out, 1)]))
        self.stages = nn.ModuleList(stages)
        _init_convs(self)

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """crops (B, 3, H, W) -> per-stage ``{"heatmaps": (B, K+1, h, w)}``; stage t > 1 sees ``concat(maps, F)``."""
        features = self.trunk(images)
        outputs: list[dict[str, torch.Tensor]] = []
        for stage in self.stages:
            x = features if not outputs else torch.cat([outputs[-1]["heatmaps"], features], dim=1)
            outputs.append({"heatmaps": stage(x)})
        return outputs

    @torch.jit.export
    def forward_last(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """crops (B, 3, H, W) -> the last stage's ``{"heatmaps": (B, K+1, h, w)}``."""
        return self.forward(images)[-1]

    def caffe_layer_names(self) -> dict[str, tuple[str, str]]:
        """Our module path -> (CMU's Caffe layer name, Caffe layer type) of every layer with weights."""
        names = {f"trunk.{n}": ("conv5_3_CPM" if n == "conv5_3" else n, "Convolution")
                 for n, m in self.trunk.named_children() if isinstance(m, nn.Conv2d)}
        for t, stage in enumerate(self.stages):
            for n, m in stage.named_children():
                if isinstance(m, nn.Conv2d):
                    i = int(n[len("conv"):])
                    names[f"stages.{t}.{n}"] = (f"conv6_{i}_CPM" if t == 0 else f"Mconv{i}_stage{t + 1}", "Convolution")
        return names


def build_cpm(keypoints: int, num_stages: int = 6, width_scale: float = 1.0) -> CpmNet:
    """A :class:`CpmNet`: ``keypoints`` 21 is CMU's hand network, 70 its face network."""
    return CpmNet(keypoints, num_stages, width_scale)


# ------------------------------------------------------------------------------ Caffe layer names
def two_branch_caffe_layer_names(num_stages: int) -> dict[str, tuple[str, str]]:
    """Our module path -> (CMU's Caffe layer name, type) of the COCO / MPI two-branch network
    (:class:`~openpose_lite.models.vgg19_paf.VGG19PafNet`) with ``num_stages`` stages."""
    return {c.ours: (c.cmu_name, "Convolution") for c in cmu_conv_table(num_stages)}


# ------------------------------------------------------------------------ the architecture table's
def build(cfg: Any, skeleton: Any) -> Body25Net:
    """The architecture table's builder of ``body25_paf``: the network of a ``model`` section (its
    :class:`~openpose_lite.network_settings.Body25Settings`) for ``skeleton``."""
    return build_body25(skeleton, **vars(cfg.settings), init=cfg.init)
