"""MobileNetPafNet (Lightweight OpenPose) held to the external contracts of the reference.

The reference is Daniil-Osokin/lightweight-human-pose-estimation.pytorch. This file writes
its own description of that network, independently of openpose_lite: every parameter and
BatchNorm buffer as (key, shape), and a functional forward (torch.nn.functional only).
Checkpoints in the reference's layouts are generated from that description, loaded through
our converter, and the model must compute the functional forward. The ImageNet MobileNetV1
file the reference trains from (marvis/pytorch-mobilenet, ``mobilenet_sgd_68.848.pth.tar``)
is described the same way. No expected value is computed with our code.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import import_optional

from openpose_lite.factory import ModelConfig, build_model
from openpose_lite.models.mobilenet_paf import (
    ARCH,
    MobileNetPafNet,
    build_mobilenet_paf,
)
from openpose_lite.models.mobilenet_weights import (
    convert_lightweight_checkpoint,
    is_lightweight_layout,
    is_mobilenet_imagenet_layout,
    lightweight_config_from_state_dict,
    load_mobilenet_imagenet,
)
from openpose_lite.network_settings import MobileNetPafSettings
from openpose_lite.skeleton import COCO_17, OPENPOSE_18

# --------------------------------------------------------------------------- the reference, described
# Sources (repository Daniil-Osokin/lightweight-human-pose-estimation.pytorch):
# * modules/conv.py, conv(): one nn.Sequential [Conv2d(kernel, stride, padding, dilation, bias),
#   BatchNorm2d if bn (default True), ReLU if relu (default True)]; defaults kernel 3, padding 1,
#   bias True. BatchNorm2d keeps PyTorch's defaults: eps 1e-5.
# * modules/conv.py, conv_dw(): one nn.Sequential [3x3 depthwise Conv2d (groups=in, bias=False),
#   BN, ReLU, 1x1 Conv2d (bias=False), BN, ReLU]: positions 0, 1, 3, 4 hold tensors.
# * modules/conv.py, conv_dw_no_bn(): [3x3 depthwise (bias=False), ELU, 1x1 (bias=False), ELU]:
#   positions 0 and 2.
# * models/with_mobilenet.py, PoseEstimationWithMobileNet.__init__: the trunk `model` list below,
#   Cpm(512, num_channels), InitialStage, and refinement_stages, a ModuleList of
#   RefinementStage(num_channels + num_heatmaps + num_pafs, num_channels, ...); defaults
#   num_refinement_stages=1, num_channels=128, num_heatmaps=19, num_pafs=38.
# * models/with_mobilenet.py, PoseEstimationWithMobileNet.forward: stages get
#   cat([cpm features, heatmaps, pafs]); outputs are [heatmaps, pafs] per stage, initial first.
# * models/with_mobilenet.py, Cpm: align = conv(in, C, 1x1, bn=False); trunk = 3 x conv_dw_no_bn;
#   conv = conv(C, C, bn=False); forward conv(align + trunk(align)).
# * models/with_mobilenet.py, InitialStage: trunk = 3 x conv(C, C, bn=False); heatmaps / pafs =
#   [conv(C, 512, 1x1, bn=False), conv(512, out, 1x1, bn=False, relu=False)].
# * models/with_mobilenet.py, RefinementStageBlock: initial = conv(in, C, 1x1, bn=False);
#   trunk = [conv(C, C) (bias and BN), conv(C, C, dilation=2, padding=2)]; returns initial + trunk.
# * models/with_mobilenet.py, RefinementStage: trunk = 5 blocks; heatmaps / pafs =
#   [conv(C, C, 1x1, bn=False), conv(C, out, 1x1, bn=False, relu=False)].

# PoseEstimationWithMobileNet.model: conv(3, 32, stride=2, bias=False), then conv_dw blocks
# (in, out, stride, dilation); dilation 2 comes with padding 2.
REF_FIRST_CONV = (3, 32, 2)
REF_DW_BLOCKS = (
    (32, 64, 1, 1), (64, 128, 2, 1), (128, 128, 1, 1), (128, 256, 2, 1), (256, 256, 1, 1),
    (256, 512, 1, 1),  # "conv4_2"
    (512, 512, 1, 2),
    (512, 512, 1, 1), (512, 512, 1, 1), (512, 512, 1, 1), (512, 512, 1, 1),  # the last is "conv5_5"
)
REF_INITIAL_HEAD = 512
BN_EPS = 1e-5


@dataclass(frozen=True)
class Conv:
    """One conv of the reference: where its tensors live and how it is applied."""

    key: str  # module path of the Conv2d
    c_in: int
    c_out: int
    kernel: int = 3
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    bn: str | None = None  # module path of the BatchNorm2d after it
    act: str | None = "relu"  # "relu", "elu" or None

    @property
    def padding(self) -> int:
        return self.dilation * (self.kernel // 2)


def conv_block(prefix: str, c_in: int, c_out: int, kernel: int = 3, dilation: int = 1, stride: int = 1,
               bias: bool = True, bn: bool = False, relu: bool = True) -> Conv:
    """conv() of modules/conv.py: the Conv2d at position 0, BatchNorm (if any) at 1."""
    return Conv(f"{prefix}.0", c_in, c_out, kernel, stride, dilation, 1, bias, f"{prefix}.1" if bn else None,
                "relu" if relu else None)


def conv_dw_block(prefix: str, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> list[Conv]:
    """conv_dw() of modules/conv.py."""
    return [Conv(f"{prefix}.0", c_in, c_in, 3, stride, dilation, c_in, False, f"{prefix}.1"),
            Conv(f"{prefix}.3", c_in, c_out, 1, 1, 1, 1, False, f"{prefix}.4")]


def conv_dw_no_bn_block(prefix: str, c: int) -> list[Conv]:
    """conv_dw_no_bn() of modules/conv.py."""
    return [Conv(f"{prefix}.0", c, c, 3, 1, 1, c, False, None, "elu"),
            Conv(f"{prefix}.2", c, c, 1, 1, 1, 1, False, None, "elu")]


def head(prefix: str, c_in: int, hidden: int, c_out: int) -> list[Conv]:
    return [conv_block(f"{prefix}.0", c_in, hidden, 1), conv_block(f"{prefix}.1", hidden, c_out, 1, relu=False)]


def reference_network(num_refinement_stages: int = 1, num_channels: int = 128,
                      num_heatmaps: int = 19, num_pafs: int = 38) -> dict:
    """The reference network as named groups of Conv records, in module order."""
    c = num_channels
    trunk = [conv_block("model.0", *REF_FIRST_CONV[:2], stride=REF_FIRST_CONV[2], bias=False, bn=True)]
    for i, (c_in, c_out, stride, dilation) in enumerate(REF_DW_BLOCKS, start=1):
        trunk += conv_dw_block(f"model.{i}", c_in, c_out, stride, dilation)
    net = {
        "trunk": trunk,
        "cpm_align": conv_block("cpm.align", REF_DW_BLOCKS[-1][1], c, 1),
        "cpm_trunk": [conv for i in range(3) for conv in conv_dw_no_bn_block(f"cpm.trunk.{i}", c)],
        "cpm_conv": conv_block("cpm.conv", c, c, 3),
        "initial_trunk": [conv_block(f"initial_stage.trunk.{i}", c, c, 3) for i in range(3)],
        "initial_heatmaps": head("initial_stage.heatmaps", c, REF_INITIAL_HEAD, num_heatmaps),
        "initial_pafs": head("initial_stage.pafs", c, REF_INITIAL_HEAD, num_pafs),
        "refinement": [],
    }
    for t in range(num_refinement_stages):
        p = f"refinement_stages.{t}"
        blocks = []
        for b in range(5):
            c_in = c + num_heatmaps + num_pafs if b == 0 else c
            q = f"{p}.trunk.{b}"
            blocks.append((conv_block(f"{q}.initial", c_in, c, 1),
                           [conv_block(f"{q}.trunk.0", c, c, 3, bn=True),
                            conv_block(f"{q}.trunk.1", c, c, 3, dilation=2, bn=True)]))
        net["refinement"].append({"blocks": blocks, "heatmaps": head(f"{p}.heatmaps", c, c, num_heatmaps),
                                  "pafs": head(f"{p}.pafs", c, c, num_pafs)})
    return net


def all_convs(net: dict) -> list[Conv]:
    convs = list(net["trunk"]) + [net["cpm_align"]] + net["cpm_trunk"] + [net["cpm_conv"]]
    convs += net["initial_trunk"] + net["initial_heatmaps"] + net["initial_pafs"]
    for stage in net["refinement"]:
        for initial, trunk in stage["blocks"]:
            convs += [initial] + trunk
        convs += stage["heatmaps"] + stage["pafs"]
    return convs


def reference_entries(net: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Every (key, shape) of the reference state dict, parameters and BatchNorm buffers."""
    entries = []
    for conv in all_convs(net):
        entries.append((f"{conv.key}.weight", (conv.c_out, conv.c_in // conv.groups, conv.kernel, conv.kernel)))
        if conv.bias:
            entries.append((f"{conv.key}.bias", (conv.c_out,)))
        if conv.bn:
            for name in ("weight", "bias", "running_mean", "running_var"):
                entries.append((f"{conv.bn}.{name}", (conv.c_out,)))
            entries.append((f"{conv.bn}.num_batches_tracked", ()))
    return entries


def is_parameter(key: str) -> bool:
    return not key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def random_state(entries: list[tuple[str, tuple[int, ...]]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every entry: He-scaled conv weights, BatchNorm statistics away from 0 / 1."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in entries:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(370000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) * 1.5 + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith("weight"):  # a BatchNorm scale
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:  # conv and BatchNorm biases
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


def apply(conv: Conv, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    x = F.conv2d(x, state[f"{conv.key}.weight"], state[f"{conv.key}.bias"] if conv.bias else None,
                 stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    if conv.bn:
        b = conv.bn
        x = F.batch_norm(x, state[f"{b}.running_mean"], state[f"{b}.running_var"], state[f"{b}.weight"],
                         state[f"{b}.bias"], training=False, eps=BN_EPS)
    if conv.act == "relu":
        x = F.relu(x)
    elif conv.act == "elu":
        x = F.elu(x)
    return x


def apply_all(convs: list[Conv], state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    for conv in convs:
        x = apply(conv, state, x)
    return x


def reference_forward(net: dict, state: dict[str, torch.Tensor], images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """PoseEstimationWithMobileNet.forward, functionally: [(heatmaps, pafs)] per stage, initial first."""
    x = apply_all(net["trunk"], state, images)
    aligned = apply(net["cpm_align"], state, x)
    features = apply(net["cpm_conv"], state, aligned + apply_all(net["cpm_trunk"], state, aligned))
    t = apply_all(net["initial_trunk"], state, features)
    outputs = [(apply_all(net["initial_heatmaps"], state, t), apply_all(net["initial_pafs"], state, t))]
    for stage in net["refinement"]:
        x = torch.cat([features, outputs[-1][0], outputs[-1][1]], dim=1)
        for initial, trunk in stage["blocks"]:
            x = apply(initial, state, x)
            x = x + apply_all(trunk, state, x)
        outputs.append((apply_all(stage["heatmaps"], state, x), apply_all(stage["pafs"], state, x)))
    return outputs


# marvis/pytorch-mobilenet (main.py, class Net), the ImageNet classifier of mobilenet_sgd_68.848.pth.tar,
# as the reference's modules/load_state.py (load_from_mobilenet) address it:
# model = Sequential(conv_bn(3, 32, 2), 13 conv_dw, AvgPool2d(7)), fc = Linear(1024, 1000), saved
# from nn.DataParallel ("module."), with the conv_bn / conv_dw positions of the reference's conv.py.
IMAGENET_DW_BLOCKS = ((32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)) + (
    (512, 512, 1),) * 5 + ((512, 1024, 2), (1024, 1024, 1))


def imagenet_entries(with_counters: bool) -> list[tuple[str, tuple[int, ...]]]:
    convs = [conv_block("module.model.0", 3, 32, stride=2, bias=False, bn=True)]
    for i, (c_in, c_out, stride) in enumerate(IMAGENET_DW_BLOCKS, start=1):
        convs += conv_dw_block(f"module.model.{i}", c_in, c_out, stride)
    entries: list[tuple[str, tuple[int, ...]]] = []
    for conv in convs:
        entries.append((f"{conv.key}.weight", (conv.c_out, conv.c_in // conv.groups, conv.kernel, conv.kernel)))
        for name in ("weight", "bias", "running_mean", "running_var"):
            entries.append((f"{conv.bn}.{name}", (conv.c_out,)))
        if with_counters:
            entries.append((f"{conv.bn}.num_batches_tracked", ()))
    return entries + [("module.fc.weight", (1000, 1024)), ("module.fc.bias", (1000,))]


# --------------------------------------------------------------------------- helpers
SMALL_INPUT = (1, 3, 64, 48)


def images(shape: tuple[int, ...] = SMALL_INPUT, seed: int = 1) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) - 0.5  # like pixel / 256 - 0.5


def small_model(**kwargs) -> MobileNetPafNet:
    torch.manual_seed(0)
    args = {"num_refinement_stages": 2, "num_channels": 16, "width_mult": 0.125}
    args.update(kwargs)
    return build_mobilenet_paf(**args).eval()


def assert_stages_equal(outputs: list[dict[str, torch.Tensor]], expected: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    assert len(outputs) == len(expected)
    for ours, (heatmaps, pafs) in zip(outputs, expected):
        assert heatmaps.abs().mean() > 1e-3 and pafs.abs().mean() > 1e-3  # the comparison means something
        torch.testing.assert_close(ours["heatmaps"], heatmaps, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours["pafs"], pafs, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- key layout and the forward
@pytest.mark.parametrize("num_refinement_stages", [1, 3])
def test_state_dict_has_the_reference_keys_and_shapes_in_order(num_refinement_stages):
    expected = reference_entries(reference_network(num_refinement_stages))
    with torch.device("meta"):
        model = build_mobilenet_paf(num_refinement_stages=num_refinement_stages)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected


def wrap(state: dict[str, torch.Tensor], how: str) -> dict:
    prefixed = {f"module.{k}": v for k, v in state.items()}
    return {
        "training_checkpoint": {"state_dict": state, "optimizer": {}, "scheduler": {}, "iter": 370000, "current_epoch": 0},
        "bare": state,
        "module_prefixed": prefixed,
        "training_checkpoint_module_prefixed": {"state_dict": prefixed, "optimizer": {}, "iter": 370000},
    }[how]


@pytest.mark.parametrize("how", ["training_checkpoint", "bare", "module_prefixed", "training_checkpoint_module_prefixed"])
def test_reference_checkpoint_loads_and_every_stage_equals_the_reference_forward(how):
    net = reference_network()
    state = random_state(reference_entries(net), seed=3)
    converted = convert_lightweight_checkpoint(wrap(state, how))
    model = build_mobilenet_paf().eval()
    model.load_state_dict(converted, strict=True)
    x = images()
    with torch.no_grad():
        outputs = model(x)
        expected = reference_forward(net, state, x)
    assert len(outputs) == 2
    assert_stages_equal(outputs, expected)


def test_three_refinement_stages_equal_the_reference_forward():
    net = reference_network(num_refinement_stages=3)
    state = random_state(reference_entries(net), seed=4)
    model = build_mobilenet_paf(num_refinement_stages=3).eval()
    model.load_state_dict(convert_lightweight_checkpoint({"state_dict": state}))
    x = images((2, 3, 40, 56), seed=5)
    with torch.no_grad():
        assert_stages_equal(model(x), reference_forward(net, state, x))


def test_checkpoint_without_batchnorm_counters_loads():
    # Files written before PyTorch 0.4.1 have no num_batches_tracked buffers.
    net = reference_network()
    entries = [(k, s) for k, s in reference_entries(net) if not k.endswith("num_batches_tracked")]
    state = random_state(entries, seed=6)
    converted = convert_lightweight_checkpoint({"state_dict": state})
    assert converted["model.0.1.num_batches_tracked"].item() == 0
    model = build_mobilenet_paf().eval()
    model.load_state_dict(converted)
    x = images()
    with torch.no_grad():
        assert_stages_equal(model(x), reference_forward(net, state, x))


def test_parameter_count_equals_the_reference_description():
    expected = sum(int(np.prod(shape)) for key, shape in reference_entries(reference_network()) if is_parameter(key))
    with torch.device("meta"):
        model = build_mobilenet_paf()
    assert sum(p.numel() for p in model.parameters()) == expected
    assert expected == 4_091_698  # the reference configuration: 1 refinement stage, 128 channels


# --------------------------------------------------------------------------- structure
def test_output_stride_8_and_one_dict_per_stage():
    model = small_model(num_refinement_stages=2)
    with torch.no_grad():
        outputs = model(images((2, 3, 64, 48)))
        odd = model(images((1, 3, 65, 47)))
    assert model.stride == 8 and model.num_stages == 3 and len(outputs) == 3
    for stage in outputs:
        assert set(stage) == {"pafs", "heatmaps"}
        assert stage["pafs"].shape == (2, OPENPOSE_18.num_pafs, 8, 6)
        assert stage["heatmaps"].shape == (2, OPENPOSE_18.num_heatmaps, 8, 6)
    # Three stride-2 3x3 convs with padding 1: ceil(H / 8) x ceil(W / 8).
    assert odd[-1]["heatmaps"].shape[-2:] == (9, 6)


def test_channel_counts_follow_the_skeleton():
    model = small_model(num_refinement_stages=1, skeleton=COCO_17)
    with torch.no_grad():
        last = model.forward_last(images((1, 3, 32, 32)))
    assert last["heatmaps"].shape[1] == COCO_17.num_heatmaps  # no background channel
    assert last["pafs"].shape[1] == COCO_17.num_pafs
    first = model.refinement_stages[0].trunk[0].initial[0]
    assert first.in_channels == model.num_channels + COCO_17.num_heatmaps + COCO_17.num_pafs
    assert OPENPOSE_18.num_heatmaps == 19 and OPENPOSE_18.num_pafs == 38  # the reference's defaults


@pytest.mark.parametrize("num_refinement_stages", [0, 1, 3])
def test_num_refinement_stages_is_configurable(num_refinement_stages):
    model = small_model(num_refinement_stages=num_refinement_stages)
    with torch.no_grad():
        outputs = model(images((1, 3, 32, 32)))
    assert len(model.refinement_stages) == num_refinement_stages
    assert len(outputs) == model.num_stages == 1 + num_refinement_stages


def test_width_mult_scales_the_trunk_with_a_floor_of_8_and_num_channels_the_rest():
    model = small_model(width_mult=0.25, num_channels=24, num_refinement_stages=1)
    assert model.model[0][0].out_channels == 8  # 32 * 0.25
    assert model.model[11][3].out_channels == model.trunk_channels == 128  # 512 * 0.25
    assert model.model[1][0].groups == model.model[1][0].in_channels  # still depthwise
    assert model.cpm.align[0].in_channels == 128 and model.cpm.align[0].out_channels == 24
    assert small_model(width_mult=0.01).model[0][0].out_channels == 8


def test_trunk_parameters_are_exactly_the_mobilenet_part():
    model = small_model()
    trunk = {id(p) for p in model.trunk_parameters()}
    names = {n for n, p in model.named_parameters() if id(p) in trunk}
    assert names == {n for n, _ in model.named_parameters() if n.startswith("model.")}
    assert len(names) == 1 * 3 + 11 * 6  # block 0: conv + BN (2); each dw block: 2 convs + 2 BNs (2 each)


def test_outputs_are_raw_maps_without_activation():
    model = small_model()
    with torch.no_grad():
        for head in (model.initial_stage.heatmaps, model.initial_stage.pafs,
                     model.refinement_stages[-1].heatmaps, model.refinement_stages[-1].pafs):
            head[1][0].bias.fill_(-1.0)
            head[1][0].weight.mul_(1e-3)
        outputs = model(images((1, 3, 32, 32)))
    for stage in (outputs[0], outputs[-1]):
        assert (stage["pafs"] < 0).all() and (stage["heatmaps"] < 0).all()


def test_the_settings_and_the_sizes_read_from_a_state_dict_rebuild_the_model():
    model = small_model(num_refinement_stages=3, num_channels=32, width_mult=0.25)
    settings = MobileNetPafSettings(num_stages=4, stage_channels=32, width_mult=0.25)  # the initial stage counts too
    built = build_model(ModelConfig(arch=ARCH, settings=settings))
    assert (built.num_refinement_stages, built.num_channels, built.width_mult) == (3, 32, 0.25)
    config = lightweight_config_from_state_dict({f"module.{k}": v for k, v in model.state_dict().items()})
    assert config == {"num_refinement_stages": 3, "num_channels": 32, "width_mult": 0.25}
    rebuilt = build_mobilenet_paf(**config)
    rebuilt.load_state_dict(convert_lightweight_checkpoint(model.state_dict()))
    with torch.no_grad():
        x = images((1, 3, 32, 40))
        torch.testing.assert_close(rebuilt.eval()(x)[-1]["pafs"], model(x)[-1]["pafs"], rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [{"num_refinement_stages": -1}, {"num_channels": 0}, {"width_mult": 0.0}])
def test_invalid_sizes_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        build_mobilenet_paf(**kwargs)


# --------------------------------------------------------------------------- layouts and errors
def test_layout_detection():
    keys = [k for k, _ in reference_entries(reference_network(num_refinement_stages=0))]
    assert is_lightweight_layout(keys)
    assert not is_lightweight_layout([f"module.{k}" for k in keys])  # unwrapped once, at the door (models/weights.py)
    imagenet = [k.removeprefix("module.") for k, _ in imagenet_entries(with_counters=False)]
    assert not is_lightweight_layout(imagenet) and is_mobilenet_imagenet_layout(imagenet)
    assert not is_mobilenet_imagenet_layout(keys)
    cmu = ["model0.0.weight", "model1_1.0.weight", "conv5_1_CPM_L1.weight"]
    assert not is_lightweight_layout(cmu) and not is_mobilenet_imagenet_layout(cmu)


def test_unknown_layout_raises_naming_the_missing_keys():
    with pytest.raises(ValueError, match=r"cpm\.align\.0\.weight"):
        convert_lightweight_checkpoint({"trunk.conv1_1.weight": torch.zeros(64, 3, 3, 3)})
    imagenet = random_state(imagenet_entries(with_counters=False))
    with pytest.raises(ValueError, match="load_mobilenet_imagenet"):
        convert_lightweight_checkpoint({"state_dict": imagenet})
    with pytest.raises(ValueError, match="non-tensor entries"):
        convert_lightweight_checkpoint({"state_dict": {"model.0.0.weight": [1.0]}})
    with pytest.raises(ValueError, match="empty"):
        convert_lightweight_checkpoint({"state_dict": {}})


def small_reference_state() -> dict[str, torch.Tensor]:
    return random_state(reference_entries(reference_network(num_channels=16)), seed=7)


def test_missing_and_unexpected_keys_are_named():
    state = small_reference_state()
    del state["refinement_stages.0.trunk.3.trunk.1.1.running_var"]
    state["cpm.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        convert_lightweight_checkpoint({"state_dict": state})
    message = str(info.value)
    assert "refinement_stages.0.trunk.3.trunk.1.1.running_var" in message and "cpm.extra.weight" in message


def test_shape_mismatches_are_named():
    # A 17-keypoint head (no background) does not fit OPENPOSE_18 ...
    state = random_state(reference_entries(reference_network(num_channels=16, num_heatmaps=17)), seed=8)
    with pytest.raises(ValueError, match=r"initial_stage\.heatmaps\.1\.0\.weight"):
        convert_lightweight_checkpoint(state)
    # ... but loads for a skeleton with 17 heatmaps and 38 PAFs.
    assert COCO_17.num_heatmaps == 17
    coco_like = random_state(reference_entries(reference_network(num_channels=16, num_heatmaps=17,
                                                                 num_pafs=COCO_17.num_pafs)), seed=8)
    build_mobilenet_paf(num_channels=16, skeleton=COCO_17).load_state_dict(
        convert_lightweight_checkpoint(coco_like, skeleton=COCO_17))


def test_inconsistent_trunk_widths_are_rejected():
    state = small_reference_state()
    state["model.3.3.weight"] = torch.zeros(100, 128, 1, 1)
    with pytest.raises(ValueError, match=r"model\.3\.3\.weight"):
        convert_lightweight_checkpoint(state)


# --------------------------------------------------------------------------- ImageNet MobileNetV1
@pytest.mark.parametrize("with_counters", [False, True])
def test_imagenet_mobilenet_fills_the_trunk_as_the_reference_does(with_counters):
    source = random_state(imagenet_entries(with_counters), seed=9)
    model = build_mobilenet_paf().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copied = load_mobilenet_imagenet(model, {"state_dict": source})
    after = model.state_dict()
    # load_from_mobilenet (modules/load_state.py) looks every key containing "model" up as
    # "module.model...": blocks 0..11, the stride-1 block 6 and the dilated block 7 included.
    trunk_keys = [k for k in after if k.startswith("model.")]
    expected_copied = [k for k in trunk_keys if with_counters or not k.endswith("num_batches_tracked")]
    assert sorted(copied) == sorted(expected_copied)
    assert {int(k.split(".")[1]) for k in copied} == set(range(12))
    for k in expected_copied:
        torch.testing.assert_close(after[k], source[f"module.{k}"], rtol=0, atol=0)
    for k in after:
        if not k.startswith("model.") or k not in expected_copied:
            torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)


def test_imagenet_mobilenet_accepts_bare_and_unprefixed_state_dicts():
    source = random_state(imagenet_entries(with_counters=False), seed=10)
    unprefixed = {k[len("module."):]: v for k, v in source.items()}
    for obj in (source, unprefixed):
        model = build_mobilenet_paf(num_refinement_stages=0)
        load_mobilenet_imagenet(model, obj)
        torch.testing.assert_close(model.model[7][0].weight, source["module.model.7.0.weight"], rtol=0, atol=0)


def test_imagenet_mobilenet_errors_name_the_problem():
    source = random_state(imagenet_entries(with_counters=False), seed=11)
    model = build_mobilenet_paf(num_refinement_stages=0)
    missing = dict(source)
    del missing["module.model.7.0.weight"]
    with pytest.raises(ValueError, match=r"model\.7\.0\.weight"):
        load_mobilenet_imagenet(model, {"state_dict": missing})
    reshaped = dict(source, **{"module.model.5.4.weight": torch.zeros(7)})
    with pytest.raises(ValueError, match=r"model\.5\.4\.weight"):
        load_mobilenet_imagenet(model, reshaped)
    with pytest.raises(ValueError, match="width_mult"):
        load_mobilenet_imagenet(small_model(width_mult=0.5), source)
    with pytest.raises(ValueError, match="convert_lightweight_checkpoint"):
        load_mobilenet_imagenet(model, small_reference_state())


# --------------------------------------------------------------------------- export
class AllStages(torch.nn.Module):
    """A tracer can return tensors but not a list of dicts: every stage's maps as one flat tuple."""

    def __init__(self, model: MobileNetPafNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for stage in self.model(x) for t in (stage["pafs"], stage["heatmaps"]))


def test_traced_and_scripted_models_match_eager_at_another_size():
    model = small_model()
    x = images((1, 3, 40, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        with torch.no_grad():
            traced = torch.jit.trace(AllStages(model), (x,))
        scripted = torch.jit.script(model)
    y = images((2, 3, 48, 64), seed=2)  # another size and batch than the trace
    with torch.no_grad():
        expected = model(y)
        flat = traced(y)
        scripted_out = scripted(y)
        last = scripted.forward_last(y)
    assert len(flat) == 2 * len(expected) == 2 * len(scripted_out)
    for i, e in enumerate(expected):
        torch.testing.assert_close(flat[2 * i], e["pafs"])
        torch.testing.assert_close(flat[2 * i + 1], e["heatmaps"])
        torch.testing.assert_close(scripted_out[i]["pafs"], e["pafs"])
        torch.testing.assert_close(scripted_out[i]["heatmaps"], e["heatmaps"])
    torch.testing.assert_close(last["heatmaps"], expected[-1]["heatmaps"])


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_export_reloads_and_matches_pytorch(tmp_path):
    from openpose_lite.models.export import export_torchscript

    model = small_model()
    loaded = torch.jit.load(str(export_torchscript(model, tmp_path / "lightweight.pt", input_hw=(64, 48))))
    x = images((2, 3, 40, 56), seed=4)
    with torch.no_grad():
        pafs, heatmaps = loaded(x)
        expected = model(x)[-1]
    torch.testing.assert_close(pafs, expected["pafs"])
    torch.testing.assert_close(heatmaps, expected["heatmaps"])


def test_onnx_export_matches_pytorch(tmp_path):
    ort = import_optional("onnxruntime")
    from openpose_lite.models.export import export_onnx

    model = small_model()
    path = export_onnx(model, tmp_path / "lightweight.onnx", input_hw=(64, 48))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["pafs", "heatmaps"]
    x = images((2, 3, 40, 56), seed=3)
    pafs, heatmaps = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        expected = model(x)[-1]
    np.testing.assert_allclose(pafs, expected["pafs"].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(heatmaps, expected["heatmaps"].numpy(), rtol=1e-4, atol=1e-4)
