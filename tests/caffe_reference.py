"""Caffe's layer arithmetic in functional torch, and CMU's networks written from their deploy prototxts
(CMU-Perceptual-Computing-Lab/openpose models/pose/body_25/pose_deploy.prototxt, models/pose/coco/
pose_deploy_linevec.prototxt, models/pose/mpi/pose_deploy_linevec.prototxt, models/hand/pose_deploy.prototxt,
models/face/pose_deploy.prototxt): the reference the CMU family tests compare the project's networks with.

Convolution is cross-correlation with zero padding ``pad``; PReLU is BVLC caffe src/caffe/layers/
prelu_layer.cpp's ``max(x, 0) + slope_c * min(x, 0)``; Concat joins channels; max Pooling 2x2 stride 2 has the
output size of src/caffe/layers/pooling_layer.cpp (Reshape, CEIL round mode: ``ceil((H + 2 pad - k) / s) + 1``),
a window cut by the border taking the maximum of what is inside.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ------------------------------------------------------------------------ Caffe's layers, functional
def caffe_pool(x: torch.Tensor) -> torch.Tensor:
    """MAX pooling, kernel 2, stride 2, pad 0, output ceil((H - 2) / 2) + 1: pad the far border with -inf."""
    h, w = x.shape[-2:]
    out_h, out_w = math.ceil((h - 2) / 2) + 1, math.ceil((w - 2) / 2) + 1
    padded = F.pad(x, (0, 2 * out_w - w, 0, 2 * out_h - h), value=float("-inf"))
    return F.max_pool2d(padded, 2, 2)


def caffe_prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0) + slope.view(1, -1, 1, 1) * x.clamp_max(0)


class CaffeNet:
    """Runs layers by Caffe name on a dict of blobs read back from the file."""

    def __init__(self, blobs: dict[str, torch.Tensor]) -> None:
        self.blobs = blobs

    def conv(self, name: str, x: torch.Tensor, pad: int) -> torch.Tensor:
        return F.conv2d(x, self.blobs[f"{name}.weight"], self.blobs[f"{name}.bias"], padding=pad)

    def conv_relu(self, name: str, x: torch.Tensor, pad: int) -> torch.Tensor:
        return self.conv(name, x, pad).clamp_min(0)

    def conv_prelu(self, conv: str, prelu: str, x: torch.Tensor, pad: int) -> torch.Tensor:
        return caffe_prelu(self.conv(conv, x, pad), self.blobs[f"{prelu}.weight"])

    def vgg(self, x: torch.Tensor, last: str) -> torch.Tensor:
        """conv1_1 ... ``last`` (3x3, pad 1, ReLU) with pool1..pool3 after conv1_2, conv2_2, conv3_4."""
        for name in ("conv1_1", "conv1_2", "pool", "conv2_1", "conv2_2", "pool", "conv3_1", "conv3_2", "conv3_3",
                     "conv3_4", "pool", "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2"):
            x = caffe_pool(x) if name == "pool" else self.conv_relu(name, x, 1)
            if name == last:
                return x
        raise AssertionError(last)


def reference_two_branch(net: CaffeNet, x: torch.Tensor, stages: int) -> tuple[torch.Tensor, torch.Tensor]:
    """COCO / MPI (pose_deploy_linevec.prototxt): (last L1 = PAFs, last L2 = heatmaps)."""
    f = net.conv_relu("conv4_4_CPM", net.conv_relu("conv4_3_CPM", net.vgg(x, "conv4_2"), 1), 1)
    outs = {}
    for b in (1, 2):
        y = f
        for i in (1, 2, 3):
            y = net.conv_relu(f"conv5_{i}_CPM_L{b}", y, 1)
        outs[b] = net.conv(f"conv5_5_CPM_L{b}", net.conv_relu(f"conv5_4_CPM_L{b}", y, 0), 0)
    for t in range(2, stages + 1):
        x_t = torch.cat([outs[1], outs[2], f], 1)  # concat_stage<t>: L1, L2, conv4_4_CPM
        for b in (1, 2):
            y = x_t
            for i in range(1, 6):
                y = net.conv_relu(f"Mconv{i}_stage{t}_L{b}", y, 3)
            outs[b] = net.conv(f"Mconv7_stage{t}_L{b}", net.conv_relu(f"Mconv6_stage{t}_L{b}", y, 0), 0)
    return outs[1], outs[2]


def reference_body25(net: CaffeNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BODY_25 (pose_deploy.prototxt): (Mconv7_stage3_L2 = PAFs, Mconv7_stage1_L1 = heatmaps)."""
    y = net.vgg(x, "conv4_1")
    y = net.conv_prelu("conv4_2", "prelu4_2", y, 1)
    y = net.conv_prelu("conv4_3_CPM", "prelu4_3_CPM", y, 1)
    f = net.conv_prelu("conv4_4_CPM", "prelu4_4_CPM", y, 1)

    def stage(inp: torch.Tensor, tag: str) -> torch.Tensor:
        for i in range(1, 6):
            parts = []
            for j in range(3):
                inp = net.conv_prelu(f"Mconv{i}_{tag}_{j}", f"Mprelu{i}_{tag}_{j}", inp, 1)
                parts.append(inp)
            inp = torch.cat(parts, 1)  # Mconv<i>_<tag>_concat
        inp = net.conv_prelu(f"Mconv6_{tag}", f"Mprelu6_{tag}", inp, 0)
        return net.conv(f"Mconv7_{tag}", inp, 0)

    paf = stage(f, "stage0_L2")
    for t in (1, 2, 3):
        paf = stage(torch.cat([f, paf], 1), f"stage{t}_L2")  # concat_stage<t>_L2: conv4_4_CPM, previous
    heat = stage(torch.cat([f, paf], 1), "stage0_L1")  # concat_stage0_L1
    heat = stage(torch.cat([f, heat, paf], 1), "stage1_L1")  # concat_stage1_L1
    return paf, heat


def reference_cpm(net: CaffeNet, x: torch.Tensor) -> torch.Tensor:
    """Hand / face (pose_deploy.prototxt): Mconv7_stage6."""
    f = net.conv_relu("conv5_3_CPM", net.vgg(x, "conv5_2"), 1)
    out = net.conv("conv6_2_CPM", net.conv_relu("conv6_1_CPM", f, 0), 0)
    for t in range(2, 7):
        y = torch.cat([out, f], 1)  # concat_stage<t>: previous maps, conv5_3_CPM
        for i in range(1, 6):
            y = net.conv_relu(f"Mconv{i}_stage{t}", y, 3)
        out = net.conv(f"Mconv7_stage{t}", net.conv_relu(f"Mconv6_stage{t}", y, 0), 0)
    return out


# ------------------------------------------------------------------------------------------ helpers
def seeded_weights(model: nn.Module, seed: int) -> nn.Module:
    """He-scaled random convs, small random biases and PReLU slopes in (0.05, 0.3): maps of order one
    through every stage, so agreement to 1e-4 says something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.05 + 0.25 * torch.rand(m.weight.shape, generator=g))
    return model.eval()
