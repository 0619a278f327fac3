"""Stacked Hourglass: mmpose's checkpoint layout, its forward pass on every stack, conversion, detection.

The layout and the forward pass are written out here from open-mmlab/mmpose, independently of the
model code, and read weights by mmpose's names:

* ``mmpose/models/backbones/hourglass.py`` (identical in 0.x and 1.x): ``HourglassNet.__init__``
  (``stem`` = ConvModule 7x7/2 3 -> 128 + ResLayer(BasicBlock, 1, 128 -> 256, stride 2);
  ``hourglass_modules``; ``inters`` = ResLayer(BasicBlock, num_stacks - 1); ``conv1x1s`` and
  ``remap_convs`` = 1x1 ConvModule without activation; ``out_convs`` = 3x3 ConvModule) and
  ``HourglassNet.forward`` (out_convs after each hourglass; between stacks conv1x1s(x) +
  remap_convs(features), ReLU, ``inters[i]``); ``HourglassModule`` (``up1``, ``low1`` stride 2,
  ``low2`` recursive or a ResLayer at the bottom, ``low3`` with ``downsample_first=False``,
  ``up2`` = nearest ``nn.Upsample(scale_factor=2)``, output up1 + up2);
* ``mmpose/models/backbones/resnet.py``: ``BasicBlock`` (conv1 3x3 with the stride, bn1, ReLU,
  conv2, bn2, + identity or ``downsample`` (1x1 conv + BN), ReLU) and ``ResLayer`` (downsample
  where stride != 1 or the width changes; the first block is built even for 0 blocks);
* mmcv ``ConvModule``: ``conv`` (no bias with a norm) + ``bn`` (``build_norm_layer``: "bn") + ReLU;
* heads: 0.x ``topdown_heatmap_multi_stage_head.py`` ``TopdownHeatmapMultiStageHead`` (under
  ``keypoint_head.``) and 1.x ``heatmap_heads/cpm_head.py`` ``CPMHead`` (under ``head.``), with no
  deconvolutions (the COCO configs): ``multi_final_layers.<stack>`` 1x1 convs with bias.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_hrnet import official_layout as hrnet_layout
from test_simple_baseline import _bn, _relative_error, pose_resnet_layout, random_state

from openpose_lite.models.hourglass import (
    Hourglass,
    build_hourglass,
    convert_hourglass_mmpose,
    hourglass_config_from_state_dict,
    is_hourglass_mmpose,
)
from openpose_lite.models.hrnet import is_hrnet_official
from openpose_lite.models.simple_baseline import is_pose_resnet_mmpose, is_pose_resnet_official
from openpose_lite.network_settings import HourglassSettings
from openpose_lite.models.state_dict import load_exact

K = 17
# The mmpose COCO config (hourglass52_coco_256x256.py / td-hm_hourglass52_8xb32-210e_coco-256x256.py):
# HourglassNet(num_stacks=1) with its defaults.
MMPOSE_COCO = dict(num_stacks=1, downsample_times=5, stage_channels=(256, 256, 384, 384, 384, 512),
                   stage_blocks=(2, 2, 2, 2, 2, 4), feat_channels=256, stem_channels=128)
# A small two-stack network for forward comparisons on a 64 x 64 input (stride 4, 3 halvings -> 2 x 2).
TINY = dict(num_stacks=2, downsample_times=3, stage_channels=(16, 16, 24, 32), stage_blocks=(1, 2, 1, 2),
            feat_channels=12, stem_channels=8)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- the mmpose layout
def _block(p: str, cin: int, cout: int, stride: int) -> dict[str, tuple[int, ...]]:
    out = {f"{p}.conv1.weight": (cout, cin, 3, 3), f"{p}.conv2.weight": (cout, cout, 3, 3)}
    out |= _bn(f"{p}.bn1", cout) | _bn(f"{p}.bn2", cout)
    if stride != 1 or cin != cout:
        out |= {f"{p}.downsample.0.weight": (cout, cin, 1, 1)} | _bn(f"{p}.downsample.1", cout)
    return out


def _res_layer(p: str, n: int, cin: int, cout: int, stride: int = 1, downsample_first: bool = True):
    out: dict[str, tuple[int, ...]] = {}
    if downsample_first:  # ResLayer: the first block always, then n - 1 more
        out |= _block(f"{p}.0", cin, cout, stride)
        for i in range(1, n):
            out |= _block(f"{p}.{i}", cout, cout, 1)
    else:
        for i in range(n - 1):
            out |= _block(f"{p}.{i}", cin, cin, 1)
        out |= _block(f"{p}.{max(n - 1, 0)}", cin, cout, stride)
    return out


def _hourglass_module(p: str, depth: int, ch, bl) -> dict[str, tuple[int, ...]]:
    out = _res_layer(f"{p}.up1", bl[0], ch[0], ch[0]) | _res_layer(f"{p}.low1", bl[0], ch[0], ch[1], 2)
    out |= _hourglass_module(f"{p}.low2", depth - 1, ch[1:], bl[1:]) if depth > 1 else _res_layer(
        f"{p}.low2", bl[1], ch[1], ch[1])
    return out | _res_layer(f"{p}.low3", bl[0], ch[1], ch[0], downsample_first=False)


def _conv_module(p: str, cin: int, cout: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{p}.conv.weight": (cout, cin, k, k)} | _bn(f"{p}.bn", cout)


def mmpose_layout(k: int, head: str, num_stacks: int, downsample_times: int, stage_channels, stage_blocks,
                  feat_channels: int, stem_channels: int) -> dict[str, tuple[int, ...]]:
    """Every key of an mmpose TopDown HourglassNet + multi-stage head state dict with its shape."""
    b, c0 = "backbone.", stage_channels[0]
    out = _conv_module(f"{b}stem.0", 3, stem_channels, 7) | _res_layer(f"{b}stem.1", 1, stem_channels, c0, 2)
    for i in range(num_stacks):
        out |= _hourglass_module(f"{b}hourglass_modules.{i}", downsample_times, stage_channels, stage_blocks)
        out |= _conv_module(f"{b}out_convs.{i}", c0, feat_channels, 3)
        out |= {f"{head}multi_final_layers.{i}.weight": (k, feat_channels, 1, 1), f"{head}multi_final_layers.{i}.bias": (k,)}
    out |= _res_layer(f"{b}inters", num_stacks - 1, c0, c0)
    for i in range(num_stacks - 1):
        out |= _conv_module(f"{b}conv1x1s.{i}", c0, c0, 1) | _conv_module(f"{b}remap_convs.{i}", feat_channels, c0, 1)
    return out


# ----------------------------------------------------------------------------- the mmpose forward
def reference_forward(s: dict[str, torch.Tensor], x: torch.Tensor, head: str, num_stacks: int,
                      downsample_times: int, stage_blocks) -> list[torch.Tensor]:
    """``HourglassNet.forward`` + the multi-stage head, read by name (BN in eval mode): one map per stack."""

    def bn(p: str, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(t, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                            training=False, eps=1e-5)

    def conv(p: str, t: torch.Tensor, stride: int = 1) -> torch.Tensor:
        w = s[f"{p}.weight"]
        return F.conv2d(t, w, s.get(f"{p}.bias"), stride=stride, padding=w.shape[-1] // 2)

    def block(p: str, t: torch.Tensor, stride: int) -> torch.Tensor:
        y = bn(f"{p}.bn2", conv(f"{p}.conv2", F.relu(bn(f"{p}.bn1", conv(f"{p}.conv1", t, stride)))))
        changes = stride != 1 or t.shape[1] != y.shape[1]
        return F.relu(y + (bn(f"{p}.downsample.1", conv(f"{p}.downsample.0", t, stride)) if changes else t))

    def res_layer(p: str, t: torch.Tensor, n: int, stride: int = 1, first: bool = True) -> torch.Tensor:
        n = max(n, 1)
        strides = [stride] + [1] * (n - 1) if first else [1] * (n - 1) + [stride]
        for i, st in enumerate(strides):
            t = block(f"{p}.{i}", t, st)
        return t

    def hourglass(p: str, t: torch.Tensor, depth: int, bl) -> torch.Tensor:
        up1 = res_layer(f"{p}.up1", t, bl[0])
        low1 = res_layer(f"{p}.low1", t, bl[0], stride=2)
        low2 = hourglass(f"{p}.low2", low1, depth - 1, bl[1:]) if depth > 1 else res_layer(f"{p}.low2", low1, bl[1])
        low3 = res_layer(f"{p}.low3", low2, bl[0], first=False)
        return up1 + low3.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # nearest x2

    b = "backbone."
    inter = res_layer(f"{b}stem.1", F.relu(bn(f"{b}stem.0.bn", conv(f"{b}stem.0.conv", x, 2))), 1, stride=2)
    outputs = []
    for i in range(num_stacks):
        feat = F.relu(bn(f"{b}out_convs.{i}.bn", conv(f"{b}out_convs.{i}.conv",
                                                      hourglass(f"{b}hourglass_modules.{i}", inter, downsample_times, stage_blocks))))
        outputs.append(conv(f"{head}multi_final_layers.{i}", feat))
        if i < num_stacks - 1:
            inter = bn(f"{b}conv1x1s.{i}.bn", conv(f"{b}conv1x1s.{i}.conv", inter)) + bn(
                f"{b}remap_convs.{i}.bn", conv(f"{b}remap_convs.{i}.conv", feat))
            inter = block(f"{b}inters.{i}", F.relu(inter), 1)
    return outputs


@pytest.fixture(scope="module")
def tiny_mmpose() -> dict[str, torch.Tensor]:
    return random_state(mmpose_layout(5, "keypoint_head.", **TINY), seed=11)


def converted(state: dict) -> Hourglass:
    """A model loaded as the architecture table loads a file: convert (rename, count the stacks), then load
    exactly into the network of the file's sizes (the table builds mmpose's COCO sizes; these are tiny)."""
    settings, ours = convert_hourglass_mmpose(state, "test file")
    model = build_hourglass(**hourglass_config_from_state_dict(state))
    assert model.num_stacks == settings.stacks
    load_exact(model, ours, "test file")
    return model.eval()


# ----------------------------------------------------------------------------- the checkpoint's layout
def test_the_mmpose_coco_checkpoint_layout_converts_to_exactly_our_keys_and_shapes():
    layout = mmpose_layout(K, "keypoint_head.", **MMPOSE_COCO)
    assert "backbone.inters.0.conv1.weight" in layout  # mmpose builds it even for one stack
    state = {key: torch.empty(shape, device="meta") for key, shape in layout.items()}
    assert is_hourglass_mmpose(state.keys())
    config = hourglass_config_from_state_dict(state)
    assert config == {"num_keypoints": K, **MMPOSE_COCO}
    settings, converted = convert_hourglass_mmpose(state)
    assert settings == HourglassSettings(stacks=1)  # mmpose's COCO hourglass52 file has one stack
    with torch.device("meta"):
        ours = Hourglass(**config).state_dict()
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in ours.items()}


def test_parameter_count_is_mmposes_hourglass52():
    # mmpose docs/en/inference_speed_summary.md (0.x): Hourglass-52, COCO 256x256, 94.85 M parameters.
    with torch.device("meta"):
        model = build_hourglass(**{"num_keypoints": K, **MMPOSE_COCO})
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 94.85) < 0.01


# ----------------------------------------------------------------------------- forward against mmpose's
@pytest.mark.parametrize("head", ["keypoint_head.", "head."])
def test_every_stack_computes_the_mmpose_forward_after_conversion(head, tiny_mmpose):
    state = {k.replace("keypoint_head.", head): v for k, v in tiny_mmpose.items()}
    model = converted(state)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        got = model(images)
        expected = reference_forward(state, images, head, TINY["num_stacks"], TINY["downsample_times"],
                                     TINY["stage_blocks"])
    assert len(got) == len(expected) == 2
    for stack, (ours, ref) in enumerate(zip(got, expected)):
        assert set(ours) == {"heatmaps"} and ours["heatmaps"].shape == ref.shape == (2, 5, 16, 16), stack
        assert _relative_error(ours["heatmaps"], ref) <= 1e-4, stack


def test_the_second_stack_reads_the_first_stacks_features(tiny_mmpose):
    model = converted(tiny_mmpose)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        before = [o["heatmaps"].clone() for o in model(images)]
        model.final_layers[0].weight.mul_(2.0)  # the first head alone: the second stack does not see it
        after_head = [o["heatmaps"].clone() for o in model(images)]
        model.remap_convs[0].conv.weight.mul_(2.0)  # the first stack's features: the second stack sees them
        after_remap = [o["heatmaps"] for o in model(images)]
    assert not torch.allclose(before[0], after_head[0]) and torch.equal(before[1], after_head[1])
    assert torch.equal(after_head[0], after_remap[0]) and not torch.allclose(after_head[1], after_remap[1])


def test_shapes_sizes_and_bad_inputs():
    model = build_hourglass(3, 4, **{k: v for k, v in TINY.items() if k != "num_stacks"}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 64))
    assert [tuple(o["heatmaps"].shape) for o in out] == [(1, 4, 24, 16)] * 3 and model.stride == 4
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match="same length"):
        Hourglass(downsample_times=5, stage_channels=(8, 8, 8), stage_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="num_stacks"):
        Hourglass(num_stacks=0)


def test_initialisation_is_mmposes():
    torch.manual_seed(0)
    model = build_hourglass(**TINY)
    assert abs(model.hourglass_modules[1].low2.low2.low2[1].conv1.weight.std().item() - 1e-3) < 1e-4
    assert torch.all(model.final_layers[1].bias == 0) and model.out_convs[0].conv.bias is None
    bn = model.stem[1][0].bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


# ----------------------------------------------------------------------------- detection, errors
def test_detection_accepts_both_generations_and_rejects_other_layouts(tiny_mmpose):
    assert is_hourglass_mmpose(tiny_mmpose.keys())
    assert is_hourglass_mmpose({k.replace("keypoint_head.", "head."): v for k, v in tiny_mmpose.items()}.keys())
    assert not is_pose_resnet_official(tiny_mmpose.keys()) and not is_pose_resnet_mmpose(tiny_mmpose.keys())
    assert not is_hrnet_official(tiny_mmpose)
    for other in (hrnet_layout(32, K), pose_resnet_layout(50, K), pose_resnet_layout(50, K, "backbone.", "head.")):
        assert not is_hourglass_mmpose(other.keys())
    with torch.device("meta"):
        ours = build_hourglass(1).state_dict()
    assert not is_hourglass_mmpose(ours.keys())  # our own names are not mmpose's (no backbone. prefix)


def test_loading_fills_bn_counters_and_names_what_is_wrong(tiny_mmpose):
    old = {k: v for k, v in tiny_mmpose.items() if not k.endswith("num_batches_tracked")}
    assert converted(old).state_dict()["stem.0.bn.num_batches_tracked"].item() == 0
    missing = dict(tiny_mmpose)
    del missing["backbone.hourglass_modules.1.low2.low3.0.bn2.running_mean"]
    with pytest.raises(ValueError, match=r"hourglass_modules\.1\.low2\.low3\.0\.bn2\.running_mean"):
        converted(missing)
    deconv_head = dict(tiny_mmpose)
    deconv_head["keypoint_head.multi_deconv_layers.0.0.weight"] = torch.zeros(12, 12, 4, 4)
    with pytest.raises(ValueError, match=r"multi_deconv_layers\.0\.0\.weight"):
        convert_hourglass_mmpose(deconv_head)
    wrong = dict(tiny_mmpose)
    wrong["backbone.out_convs.1.conv.weight"] = torch.zeros(12, 16, 1, 1)
    with pytest.raises(ValueError, match=r"shape mismatch.*out_convs\.1\.conv\.weight"):
        converted(wrong)
    with pytest.raises(ValueError, match="no '{head,keypoint_head}.multi_final_layers.0.weight'"):
        convert_hourglass_mmpose(pose_resnet_layout(18, K))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load's deprecation notice
def test_traced_torchscript_export_returns_the_last_stack(tmp_path):
    from openpose_lite.models.export import export_torchscript

    torch.manual_seed(0)
    model = build_hourglass(**{"num_keypoints": 3, **TINY}).eval()
    traced = torch.jit.load(str(export_torchscript(model, tmp_path / "hg.pt", input_hw=(64, 64))))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        (heatmaps,) = traced(images)
        torch.testing.assert_close(heatmaps, model(images)[-1]["heatmaps"])


# ----------------------------------------------------------------------------- through the architecture table
@pytest.mark.slow
def test_an_mmpose_checkpoint_runs_through_infer_and_eval_as_hrnet_files_do(tmp_path, capsys):
    import json

    from openpose_lite.cli import main
    from openpose_lite.data.synthetic import SceneConfig, write_dataset
    from openpose_lite.models.weights import read_weights

    # The published file's sizes (one stack), random values, saved as mmpose saves a checkpoint.
    state = random_state(mmpose_layout(K, "keypoint_head.", **MMPOSE_COCO), seed=14)
    path = tmp_path / "hourglass52_coco_256x256.pth"
    torch.save({"meta": {"mmpose_version": "0.x"}, "state_dict": state}, path)
    loaded = read_weights(path)
    assert loaded.layout.name == "hourglass_mmpose" and loaded.model.num_stacks == 1
    assert loaded.config.topdown.input_hw == (256, 256) and loaded.config.model.input_norm == "imagenet_rgb"
    del loaded, state
    ann = write_dataset(tmp_path / "scenes", 2, seed=5, cfg=SceneConfig(image_hw=(96, 128), people_range=(1, 1)))
    images = ann.parent / "images"
    assert main(["eval", "--weights", str(path), "--ann", str(ann), "--images", str(images), "--no-flip"]) == 0
    assert "top-down 256x256" in capsys.readouterr().out
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 70], "score": 0.9}]))
    out = tmp_path / "out"
    assert main(["infer", str(images / "000001.jpg"), "--weights", str(path), "--boxes", str(dets), "-o", str(out),
                 "--no-progress", "--no-flip"]) == 0
    assert len(json.loads((out / "000001_keypoints.json").read_text())["people"]) == 1


def test_the_training_loss_supervises_every_stack():
    # The loss the training loop uses for top-down models: every stack's heatmaps against the same targets.
    from openpose_lite.branches import branch

    torch.manual_seed(0)
    model = build_hourglass(**{"num_keypoints": 3, **TINY})
    outputs = model(torch.randn(2, 3, 64, 64))
    targets = {"heatmaps": torch.rand(2, 3, 16, 16)}
    weights = {"heatmaps": torch.ones(2, 3, 1, 1)}
    terms = branch("topdown").loss_terms(outputs, targets, weights)
    assert set(terms) == {"stage1/heatmaps", "stage2/heatmaps"}
    terms["stage1/heatmaps"].backward()
    # The first stack's loss reaches the first head, and not the second's.
    assert model.final_layers[0].weight.grad.abs().sum() > 0 and model.final_layers[1].weight.grad is None
