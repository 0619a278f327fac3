"""Weight layouts: CMU (named / prefixed / numbered), torchvision VGG19, our checkpoints.

The CMU model is described here from scratch (layer list of the CMU prototxt as the PyTorch
ports lay it out), filled with random tensors, and run by a small functional reference
forward written in this file. Loading the same tensors through the converter must give the
reference's numbers for every stage, so the test checks the key map, the branch assignment
(L1 = PAFs, L2 = heatmaps) and the stage concat order together.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import import_optional

from openpose_lite.models import weights as weights_mod
from openpose_lite.architectures import ARCHITECTURES, Architecture, WeightLayout
from openpose_lite.models.cmu_weights import convert_cmu_state_dict
from openpose_lite.factory import ModelConfig, build_model
from openpose_lite.models.state_dict import load_state_dict_file
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf
from openpose_lite.models.weights import detect_layout, load_backbone, load_model, read_weights, unwrap_weights
from openpose_lite.skeleton import OPENPOSE_18

# ----------------------------------------------------------------- the CMU model, described here
# Small widths for fast tests; "full" is the CMU model. (trunk widths for 64/128/256/512,
# CPM widths for 256/128, stage width, stage-1 1x1 width)
SMALL = {"w64": 8, "w128": 16, "w256": 32, "w512": 64, "cpm1": 32, "cpm2": 16, "stage": 16, "s1_hidden": 64}
FULL = {"w64": 64, "w128": 128, "w256": 256, "w512": 512, "cpm1": 256, "cpm2": 128, "stage": 128, "s1_hidden": 512}
SMALL_MODEL_KW = {"width_mult": 0.125, "stage_channels": 16}
N_PAF, N_HM = OPENPOSE_18.num_pafs, OPENPOSE_18.num_heatmaps


def cmu_blocks(w: dict, num_stages: int) -> dict[str, list[tuple]]:
    """block name -> layers in Sequential order: ("conv", name, c_in, c_out, k, relu_after) or ("pool", name)."""
    model0 = [
        ("conv", "conv1_1", 3, w["w64"], 3, True), ("conv", "conv1_2", w["w64"], w["w64"], 3, True),
        ("pool", "pool1_stage1"),
        ("conv", "conv2_1", w["w64"], w["w128"], 3, True), ("conv", "conv2_2", w["w128"], w["w128"], 3, True),
        ("pool", "pool2_stage1"),
        ("conv", "conv3_1", w["w128"], w["w256"], 3, True), ("conv", "conv3_2", w["w256"], w["w256"], 3, True),
        ("conv", "conv3_3", w["w256"], w["w256"], 3, True), ("conv", "conv3_4", w["w256"], w["w256"], 3, True),
        ("pool", "pool3_stage1"),
        ("conv", "conv4_1", w["w256"], w["w512"], 3, True), ("conv", "conv4_2", w["w512"], w["w512"], 3, True),
        ("conv", "conv4_3_CPM", w["w512"], w["cpm1"], 3, True), ("conv", "conv4_4_CPM", w["cpm1"], w["cpm2"], 3, True),
    ]
    blocks = {"model0": model0}
    s, feat = w["stage"], w["cpm2"]
    for b, out in ((1, N_PAF), (2, N_HM)):
        blocks[f"model1_{b}"] = [
            ("conv", f"conv5_1_CPM_L{b}", feat, s, 3, True), ("conv", f"conv5_2_CPM_L{b}", s, s, 3, True),
            ("conv", f"conv5_3_CPM_L{b}", s, s, 3, True), ("conv", f"conv5_4_CPM_L{b}", s, w["s1_hidden"], 1, True),
            ("conv", f"conv5_5_CPM_L{b}", w["s1_hidden"], out, 1, False),
        ]
        for t in range(2, num_stages + 1):
            blocks[f"model{t}_{b}"] = [
                ("conv", f"Mconv1_stage{t}_L{b}", N_PAF + N_HM + feat, s, 7, True),
                *[("conv", f"Mconv{i}_stage{t}_L{b}", s, s, 7, True) for i in range(2, 6)],
                ("conv", f"Mconv6_stage{t}_L{b}", s, s, 1, True),
                ("conv", f"Mconv7_stage{t}_L{b}", s, out, 1, False),
            ]
    return blocks


def conv_positions(layers: list[tuple]) -> list[tuple[tuple, int]]:
    """(conv layer, its index in an nn.Sequential where ReLUs and pools are modules too)."""
    out, position = [], 0
    for layer in layers:
        if layer[0] == "pool":
            position += 1
            continue
        out.append((layer, position))
        position += 2 if layer[5] else 1
    return out


def random_cmu_weights(w: dict, num_stages: int, seed: int = 0) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]:
    """(block, layer name) -> (weight, bias), He-scaled so activations keep their size through the net."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for block, layers in cmu_blocks(w, num_stages).items():
        for layer in layers:
            if layer[0] != "conv":
                continue
            _, name, c_in, c_out, k, _ = layer
            weight = torch.randn(c_out, c_in, k, k, generator=g) * (2.0 / (c_in * k * k)) ** 0.5
            bias = torch.randn(c_out, generator=g) * 0.1
            tensors[(block, name)] = (weight, bias)
    return tensors


def cmu_state_dict(tensors, w: dict, num_stages: int, style: str, module_prefix: bool = False) -> dict[str, torch.Tensor]:
    """Lay the tensors out as a port would save them."""
    sd = {}
    for block, layers in cmu_blocks(w, num_stages).items():
        for layer, position in conv_positions(layers):
            name = layer[1]
            stem = {"named": name, "prefixed": f"{block}.{name}", "numbered": f"{block}.{position}"}[style]
            weight, bias = tensors[(block, name)]
            sd[f"{stem}.weight"], sd[f"{stem}.bias"] = weight, bias
    if module_prefix:
        sd = {f"module.{k}": v for k, v in sd.items()}
    return sd


def reference_forward(tensors, w: dict, num_stages: int, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The CMU network run from the (block, layer) tensors: [(L1 = PAFs, L2 = heatmaps)] per stage."""
    blocks = cmu_blocks(w, num_stages)

    def run(block: str, h: torch.Tensor) -> torch.Tensor:
        for layer in blocks[block]:
            if layer[0] == "pool":
                h = F.max_pool2d(h, 2, 2)
                continue
            _, name, _, _, k, relu = layer
            weight, bias = tensors[(block, name)]
            h = F.conv2d(h, weight, bias, padding=k // 2)
            h = F.relu(h) if relu else h
        return h

    features = run("model0", x)
    stage_in, outputs = features, []
    for t in range(1, num_stages + 1):
        l1, l2 = run(f"model{t}_1", stage_in), run(f"model{t}_2", stage_in)
        outputs.append((l1, l2))
        stage_in = torch.cat([l1, l2, features], dim=1)
    return outputs


def assert_matches_reference(model: VGG19PafNet, tensors, w: dict, num_stages: int, hw=(48, 40)) -> None:
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = reference_forward(tensors, w, num_stages, x)
        got = model.eval()(x)
    assert len(got) == num_stages
    for (l1, l2), stage in zip(expected, got):
        assert l1.abs().mean() > 1e-2  # the comparison is not between near-zero maps
        torch.testing.assert_close(stage["pafs"], l1, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stage["heatmaps"], l2, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- CMU layouts
@pytest.mark.parametrize("module_prefix", [False, True])
@pytest.mark.parametrize("style, layout", [("named", "cmu_named"), ("prefixed", "cmu_named"), ("numbered", "cmu_numbered")])
def test_cmu_layouts_give_the_reference_outputs(style, layout, module_prefix):
    num_stages = 3
    tensors = random_cmu_weights(SMALL, num_stages)
    sd = cmu_state_dict(tensors, SMALL, num_stages, style, module_prefix)
    row, found = detect_layout(unwrap_weights(sd, "cmu")[0])
    assert (row.name, found.name) == ("vgg19_paf", layout)
    model = build_vgg19_paf(num_stages=num_stages, **SMALL_MODEL_KW)
    model.load_state_dict(convert_cmu_state_dict(sd, num_stages=num_stages), strict=True)
    assert_matches_reference(model, tensors, SMALL, num_stages)


def test_cmu_converter_can_keep_only_the_first_stages():
    tensors = random_cmu_weights(SMALL, 3)
    converted = convert_cmu_state_dict(cmu_state_dict(tensors, SMALL, 3, "numbered"), num_stages=2)
    model = build_vgg19_paf(num_stages=2, **SMALL_MODEL_KW)
    model.load_state_dict(converted, strict=True)
    assert_matches_reference(model, tensors, SMALL, 2)


def test_cmu_converter_refuses_more_stages_than_the_file_holds():
    sd = cmu_state_dict(random_cmu_weights(SMALL, 2), SMALL, 2, "named")
    with pytest.raises(ValueError, match="num_stages=3.*2 stages"):
        convert_cmu_state_dict(sd, num_stages=3)


def test_cmu_missing_and_unexpected_keys_are_named():
    sd = cmu_state_dict(random_cmu_weights(SMALL, 2), SMALL, 2, "named")
    del sd["conv5_3_CPM_L2.bias"]
    sd["conv9_9_extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing.*conv5_3_CPM_L2\.bias.*unexpected.*conv9_9_extra\.weight"):
        convert_cmu_state_dict(sd, num_stages=2)


def test_cmu_shape_mismatch_names_the_layer(tmp_path):
    # The published CMU model is full width; a file of another width is named, layer by layer.
    path = tmp_path / "cmu.pth"
    torch.save(cmu_state_dict(random_cmu_weights(SMALL, 2), SMALL, 2, "numbered"), path)
    with pytest.raises(ValueError, match=r"cmu_numbered.*shape mismatches.*file \(8, 3, 3, 3\) vs model \(64, 3, 3, 3\)"):
        read_weights(path)


def test_load_model_builds_the_full_cmu_model_from_a_dataparallel_numbered_file(tmp_path):
    num_stages = 6
    tensors = random_cmu_weights(FULL, num_stages, seed=7)
    path = tmp_path / "pose_model.pth"
    torch.save(cmu_state_dict(tensors, FULL, num_stages, "numbered", module_prefix=True), path)
    model = load_model(path)
    assert isinstance(model, VGG19PafNet) and not model.training
    assert model.num_stages == 6 and model.width_mult == 1.0 and model.stage_channels == 128
    assert_matches_reference(model, tensors, FULL, num_stages, hw=(32, 32))


# ----------------------------------------------------------------- torchvision VGG19
def torchvision_vgg19_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's vgg19 key names and shapes (from torchvision itself), random values.

    The two large classifier matrices are left out to keep the test light; the loader
    ignores classifier keys anyway, which the remaining classifier keys check.
    """
    torchvision = import_optional("torchvision")
    with torch.device("meta"):
        reference = torchvision.models.vgg19()
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=g)
        for k, v in reference.state_dict().items()
        if k not in ("classifier.0.weight", "classifier.3.weight")
    }


def test_torchvision_vgg19_fills_the_trunk_only(tmp_path):
    sd = torchvision_vgg19_state_dict()
    with pytest.raises(ValueError, match="ImageNet classification network.*vgg19.*model.arch vgg19_paf"):
        detect_layout(sd)
    path = tmp_path / "vgg19.pth"
    torch.save(sd, path)
    model = build_vgg19_paf(num_stages=1)
    cpm_before = model.cpm.conv4_3.weight.clone()
    assert load_backbone(model, path) == f"ImageNet VGG19 from {path}"
    # torchvision vgg19.features positions of conv1_1 ... conv4_2.
    positions = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21]
    names = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4", "conv4_1", "conv4_2"]
    for position, name in zip(positions[1:], names[1:]):
        conv = getattr(model.trunk, name)
        assert torch.equal(conv.weight, sd[f"features.{position}.weight"])
        assert torch.equal(conv.bias, sd[f"features.{position}.bias"])
    # conv1_1 reads the image: it holds the ImageNet normalisation folded in (tests/test_reference_conventions.py
    # checks the trunk against torchvision's own forward), so it is not a plain copy.
    assert not torch.equal(model.trunk.conv1_1.weight, sd["features.0.weight"])
    assert torch.equal(model.cpm.conv4_3.weight, cpm_before)  # torchvision's conv4_3 is not CMU's conv4_3_CPM


def test_torchvision_vgg19_needs_full_width(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision_vgg19_state_dict(), path)
    with pytest.raises(ValueError, match="width_mult"):
        load_backbone(build_vgg19_paf(num_stages=1, width_mult=0.5), path)


def test_batchnorm_vgg_is_rejected(tmp_path):
    path = tmp_path / "vgg19_bn.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64),
                "features.1.weight": torch.ones(64), "features.1.running_mean": torch.zeros(64)}, path)
    with pytest.raises(ValueError, match="vgg19_bn"):
        load_backbone(build_vgg19_paf(num_stages=1), path)


def test_load_model_refuses_a_trunk_only_file(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, path)
    with pytest.raises(ValueError, match="ImageNet classification network .*vgg19.*--backbone-weights"):
        load_model(path)


# ----------------------------------------------------------------- our own files
_SIZES = {"arch": "vgg19_paf", **SMALL_MODEL_KW}  # the model section of small_trained_model's config


def small_trained_model(num_stages: int = 2) -> VGG19PafNet:
    torch.manual_seed(11)
    model = build_vgg19_paf(num_stages=num_stages, **SMALL_MODEL_KW)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def assert_same_outputs(a: VGG19PafNet, b: VGG19PafNet) -> None:
    x = torch.randn(2, 3, 40, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for sa, sb in zip(a(x), b(x), strict=True):
            torch.testing.assert_close(sa["pafs"], sb["pafs"], rtol=0, atol=0)
            torch.testing.assert_close(sa["heatmaps"], sb["heatmaps"], rtol=0, atol=0)


def test_own_checkpoint_rebuilds_from_its_config(tmp_path):
    model = small_trained_model(num_stages=3)
    path = tmp_path / "ckpt.pth"
    config = {"model": {**_SIZES, "num_stages": 3, "pretrained": "none"}, "train": {"lr": 1e-4}}
    torch.save({"model": model.state_dict(), "config": config, "epoch": 4}, path)
    loaded = load_model(path)
    assert not loaded.training
    assert (loaded.num_stages, loaded.stage_channels, loaded.width_mult) == (3, 16, 0.125)
    assert_same_outputs(model, loaded)


@pytest.mark.parametrize("module_prefix", [False, True])
def test_bare_own_state_dict_sizes_are_inferred(tmp_path, module_prefix):
    model = small_trained_model(num_stages=2)
    sd = model.state_dict()
    if module_prefix:
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "bare.pth"
    torch.save(sd, path)
    assert detect_layout(unwrap_weights(sd, "bare")[0])[1].name == "openpose_lite_state_dict"
    loaded = load_model(path, device="cpu")
    assert (loaded.num_stages, loaded.stage_channels, loaded.width_mult) == (2, 16, 0.125)
    assert_same_outputs(model, loaded)


def test_checkpoint_whose_config_disagrees_with_its_weights_fails_clearly(tmp_path):
    model = small_trained_model(num_stages=2)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict(), "config": {"model": {**_SIZES, "num_stages": 3}}}, path)
    with pytest.raises(ValueError, match=r"missing.*stages\.2\."):
        load_model(path)


def test_model_config_defaults_and_unknown_arch():
    model = build_model(ModelConfig.from_dict({"width_mult": 0.125, "stage_channels": 8}))
    assert isinstance(model, VGG19PafNet) and model.num_stages == 6 and model.stage_channels == 8
    with pytest.raises(ValueError, match="arch.*hrnet_w99"):
        ModelConfig.from_dict({"arch": "hrnet_w99"})


# ----------------------------------------------------------------- bad files and layouts
def test_unknown_layout_names_its_keys_and_the_layouts_known():
    sd = {"backbone.layer1.weight": torch.zeros(1), "head.final.bias": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"no known layout: 2 keys such as \['backbone\.layer1\.weight'.*cmu_named"):
        detect_layout(sd)


def is_toy(keys: frozenset[str]) -> bool:
    """The detector of the toy layout of the table-driven test below."""
    return "toy.marker" in keys


def test_detection_is_table_driven(monkeypatch):
    toy = WeightLayout("toy", "a toy file", "test_weights:is_toy", "test_weights:is_toy")
    row = Architecture("toy_net", "bottomup", "a toy", "test_weights:is_toy", (), "cmu", layouts=(toy,))
    monkeypatch.setattr(weights_mod, "ARCHITECTURES", (*ARCHITECTURES, row))
    assert detect_layout({"toy.marker": torch.zeros(1)}) == (row, toy)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found.*nope.pth"):
        load_state_dict_file(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pth")


def test_files_that_are_not_state_dicts_are_rejected(tmp_path):
    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ValueError, match="expected a state dict"):
        load_state_dict_file(tensor_file)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a torch file")
    with pytest.raises(ValueError, match="not a weights-only PyTorch file"):
        load_state_dict_file(junk)
    mixed = tmp_path / "mixed.pth"
    torch.save({"trunk.conv1_1.weight": torch.zeros(1), "note": "hello"}, mixed)
    with pytest.raises(ValueError, match="non-tensor entries.*note"):
        load_model(mixed)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "code.pth"
    torch.save({"model": build_vgg19_paf(num_stages=1, **SMALL_MODEL_KW)}, path)  # a whole module, not data
    with pytest.raises(ValueError, match="weights-only"):
        load_state_dict_file(path)
