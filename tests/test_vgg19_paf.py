"""VGG19PafNet: shapes, stride, CMU structure, trunk = torchvision VGG19, scriptability."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import import_optional
from torch import nn

from openpose_lite.factory import ModelConfig, build_model
from openpose_lite.network_settings import PafSettings
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf, scaled_width
from openpose_lite.skeleton import COCO_17, OPENPOSE_18


def small_model(**kwargs) -> VGG19PafNet:
    torch.manual_seed(0)
    args = {"num_stages": 3, "stage_channels": 16, "width_mult": 0.125}
    args.update(kwargs)
    return build_vgg19_paf(**args).eval()


def test_small_model_returns_one_dict_per_stage_at_stride_8():
    model = small_model()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 64, 48))
    assert len(outputs) == 3
    for stage in outputs:
        assert set(stage) == {"pafs", "heatmaps"}
        assert stage["pafs"].shape == (2, OPENPOSE_18.num_pafs, 8, 6)
        assert stage["heatmaps"].shape == (2, OPENPOSE_18.num_heatmaps, 8, 6)


def test_channel_counts_follow_the_skeleton():
    model = small_model(num_stages=2, skeleton=COCO_17)
    with torch.no_grad():
        last = model.forward_last(torch.randn(1, 3, 32, 32))
    assert last["pafs"].shape[1] == COCO_17.num_pafs
    assert last["heatmaps"].shape[1] == COCO_17.num_heatmaps  # no background channel
    # Refinement stages see PAFs + heatmaps + features.
    expected_in = COCO_17.num_pafs + COCO_17.num_heatmaps + model.feature_channels
    assert model.stages[1].pafs.conv1.in_channels == expected_in


def test_full_model_has_the_cmu_layer_sizes():
    torch.manual_seed(0)
    model = build_vgg19_paf().eval()
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    trunk_widths = [convs[f"trunk.{n}"].out_channels for n in
                    ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4", "conv4_1", "conv4_2")]
    assert trunk_widths == [64, 64, 128, 128, 256, 256, 256, 256, 512, 512]
    assert (convs["cpm.conv4_3"].out_channels, convs["cpm.conv4_4"].out_channels) == (256, 128)
    s1 = model.stages[0].pafs
    assert [(c.kernel_size, c.out_channels) for c in (s1.conv1, s1.conv2, s1.conv3, s1.conv4, s1.conv5)] == [
        ((3, 3), 128), ((3, 3), 128), ((3, 3), 128), ((1, 1), 512), ((1, 1), OPENPOSE_18.num_pafs)]
    s6 = model.stages[5].heatmaps
    assert s6.conv1.in_channels == 185 and s6.conv1.kernel_size == (7, 7) and s6.conv1.padding == (3, 3)
    assert (s6.conv6.kernel_size, s6.conv6.out_channels) == ((1, 1), 128)
    assert s6.conv7.out_channels == OPENPOSE_18.num_heatmaps
    # Parameter count from the CMU layer list: (in, out, kernel) per conv, weights + biases.
    cmu_convs = [(3, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 256, 3)] + [(256, 256, 3)] * 3 + [
        (256, 512, 3), (512, 512, 3), (512, 256, 3), (256, 128, 3)]
    for out in (38, 19):
        cmu_convs += [(128, 128, 3)] * 3 + [(128, 512, 1), (512, out, 1)]
        cmu_convs += ([(185, 128, 7)] + [(128, 128, 7)] * 4 + [(128, 128, 1), (128, out, 1)]) * 5
    expected = sum(i * o * k * k + o for i, o, k in cmu_convs)
    assert sum(p.numel() for p in model.parameters()) == expected
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert len(outputs) == 6
    assert outputs[-1]["pafs"].shape == (1, 38, 8, 8) and outputs[-1]["heatmaps"].shape == (1, 19, 8, 8)


def test_trunk_computes_torchvision_vgg19_features_up_to_conv4_2():
    torchvision = import_optional("torchvision")
    model = small_model(width_mult=1.0, num_stages=1)
    # Build torchvision's vgg19 without its 100M-parameter classifier initialisation cost.
    with torch.device("meta"):
        reference = torchvision.models.vgg19()
    features = reference.features[:23].to_empty(device="cpu")
    ours = [m for m in model.trunk if isinstance(m, nn.Conv2d)]
    theirs = [m for m in features if isinstance(m, nn.Conv2d)]
    assert len(ours) == len(theirs) == 10
    torch.manual_seed(1)
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            assert a.weight.shape == b.weight.shape
            b.weight.normal_(0, (2.0 / (b.weight[0].numel())) ** 0.5)
            b.bias.normal_(0, 0.1)
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
        x = torch.randn(1, 3, 40, 56)
        expected = features(x)
        torch.testing.assert_close(model.trunk(x), expected)
    assert expected.shape[-2:] == (5, 7)


def test_refinement_stage_input_is_pafs_then_heatmaps_then_features():
    model = small_model()
    captured = {}
    model.stages[1].register_forward_pre_hook(lambda _m, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        outputs = model(x)
        features = model.features(x)
    expected = torch.cat([outputs[0]["pafs"], outputs[0]["heatmaps"], features], dim=1)
    torch.testing.assert_close(captured["x"], expected)


def test_outputs_are_raw_maps_without_activation():
    model = small_model()
    with torch.no_grad():
        last_convs = [model.stages[0].pafs.conv5, model.stages[0].heatmaps.conv5,
                      model.stages[-1].pafs.conv7, model.stages[-1].heatmaps.conv7]
        for conv in last_convs:
            conv.bias.fill_(-1.0)
        outputs = model(torch.randn(1, 3, 32, 32))
    for stage in (outputs[0], outputs[-1]):
        assert (stage["pafs"] < 0).all() and (stage["heatmaps"] < 0).all()


def test_trunk_parameters_are_exactly_conv1_1_to_conv4_2():
    model = small_model()
    trunk = list(model.trunk_parameters())
    assert len(trunk) == 20  # 10 convs, weight + bias
    named = {id(p): n for n, p in model.named_parameters()}
    assert all(named[id(p)].startswith("trunk.") for p in trunk)
    assert named[id(trunk[-1])] == "trunk.conv4_2.bias"
    assert not any(n.startswith("trunk.") for n, p in model.named_parameters() if id(p) not in {id(q) for q in trunk})


def test_width_mult_scales_trunk_and_cpm_with_a_floor_of_8():
    assert scaled_width(64, 0.125) == 8
    assert scaled_width(64, 0.05) == 8
    assert scaled_width(512, 0.25) == 128
    model = small_model(width_mult=0.25, stage_channels=24)
    assert model.trunk.conv1_1.out_channels == 16
    assert model.trunk.conv4_2.out_channels == 128
    assert model.cpm.conv4_4.out_channels == model.feature_channels == 32
    assert model.stages[0].heatmaps.conv4.out_channels == 4 * 24
    assert model.stages[1].pafs.conv1.out_channels == 24


def test_stage_convs_use_cmu_gaussian_initialisation():
    model = small_model(stage_channels=64, num_stages=2)
    weight = model.stages[1].pafs.conv2.weight
    assert abs(weight.std().item() - 0.01) < 0.001
    assert all((m.bias == 0).all() for m in model.stages.modules() if isinstance(m, nn.Conv2d))


def test_the_tables_builder_takes_the_sizes_of_the_networks_settings():
    model = build_model(ModelConfig(settings=PafSettings(num_stages=2, stage_channels=16, width_mult=0.125)))
    assert (model.num_stages, model.stage_channels, model.width_mult) == (2, 16, 0.125)


def test_scripted_model_matches_eager():
    model = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 40, 32)
    with torch.no_grad():
        expected = model(x)
        got = scripted(x)
        last = scripted.forward_last(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g["pafs"], e["pafs"])
        torch.testing.assert_close(g["heatmaps"], e["heatmaps"])
    torch.testing.assert_close(last["heatmaps"], expected[-1]["heatmaps"])


@pytest.mark.parametrize("kwargs", [{"num_stages": 0}, {"stage_channels": 0}, {"width_mult": 0.0}])
def test_invalid_sizes_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        build_vgg19_paf(**kwargs)
