"""SimpleBaseline: the official pose_resnet and mmpose layouts, their forward pass, ImageNet trunks, inputs.

The layouts and the forward pass are written out here from the references, independently of the
model code, and read weights by the references' names:

* leoxiaobin/deep-high-resolution-net.pytorch ``lib/models/pose_resnet.py``: ``PoseResNet``
  (stem conv 7x7/2 pad 3, BN, ReLU, max pool 3/2 pad 1; ``_make_layer``: the first block of
  layer2..4 has stride 2 and a 1x1 conv + BN ``downsample``, also wherever the width changes;
  ``BasicBlock``/``Bottleneck`` with the stride on the 3x3 conv), ``_make_deconv_layer`` +
  ``_get_deconv_cfg`` (ConvTranspose2d 4x4/2, padding 1, output_padding 0, ``DECONV_WITH_BIAS:
  false``, BN, ReLU), ``final_layer`` (1x1, ``FINAL_CONV_KERNEL: 1``), ``resnet_spec``;
* open-mmlab/mmpose: ``mmpose/models/backbones/resnet.py`` (``ResNet``, ``ResLayer``, style
  'pytorch': stride on conv2; mmcv ``build_norm_layer`` names BNs ``bn1``...), 0.x
  ``mmpose/models/heads/topdown_heatmap_simple_head.py`` (``TopdownHeatmapSimpleHead``, under
  ``keypoint_head.``) and 1.x ``mmpose/models/heads/heatmap_heads/heatmap_head.py`` (``HeatmapHead``,
  under ``head.``): the same deconvolutions and ``final_layer`` as the release;
* torchvision's ``resnet18`` is its own reference for the ImageNet trunk.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import COCO_SAMPLE_IMAGES, COCO_SAMPLE_VAL_ANN, import_optional, needs_coco_sample
from reference_topdown_inputs import (
    MMPOSE_STD,
    TORCH_MEAN,
    TORCH_STD,
    hrnet_official_input,
    hrnet_repo_get_affine_transform,
    hrnet_repo_xywh2cs,
    mmpose_box_center_scale,
    mmpose_get_warp_matrix,
    mmpose_input,
    pose_resnet_official_input,
)
from test_hrnet import official_layout as hrnet_layout

from openpose_lite.inference import TopDownPredictor
from openpose_lite.models.hourglass import build_hourglass
from openpose_lite.models.hrnet import is_hrnet_official
from openpose_lite.models.mobilenet_paf import build_mobilenet_paf
from openpose_lite.models.simple_baseline import (
    SimpleBaseline,
    build_simple_baseline,
    convert_pose_resnet_mmpose,
    convert_pose_resnet_official,
    is_pose_resnet_mmpose,
    is_pose_resnet_official,
    is_torchvision_resnet,
    load_imagenet_resnet,
)
from openpose_lite.network_settings import SimpleBaselineSettings
from openpose_lite.models.state_dict import load_exact
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.models.weights import load_model, read_weights

K = 17
# lib/models/pose_resnet.py, resnet_spec: depth -> (block, blocks per layer1..4).
SPEC = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3]),
        101: ("bottleneck", [3, 4, 23, 3]), 152: ("bottleneck", [3, 8, 36, 3])}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the CPU is shared, and two spinning threads stall each other there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- the reference layout
def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def trunk_layout(depth: int, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Every trunk key of a ResNet-``depth`` (``PoseResNet``/torchvision/mmpose names) with its shape."""
    block, counts = SPEC[depth]
    expansion = 4 if block == "bottleneck" else 1
    out = {f"{prefix}conv1.weight": (64, 3, 7, 7)} | _bn(f"{prefix}bn1", 64)
    inplanes = 64
    for li, (planes, n) in enumerate(zip([64, 128, 256, 512], counts)):
        for b in range(n):
            p = f"{prefix}layer{li + 1}.{b}"
            stride = 2 if (li > 0 and b == 0) else 1
            if block == "bottleneck":
                out |= {f"{p}.conv1.weight": (planes, inplanes, 1, 1), f"{p}.conv2.weight": (planes, planes, 3, 3),
                        f"{p}.conv3.weight": (planes * 4, planes, 1, 1)}
                out |= _bn(f"{p}.bn1", planes) | _bn(f"{p}.bn2", planes) | _bn(f"{p}.bn3", planes * 4)
            else:
                out |= {f"{p}.conv1.weight": (planes, inplanes, 3, 3), f"{p}.conv2.weight": (planes, planes, 3, 3)}
                out |= _bn(f"{p}.bn1", planes) | _bn(f"{p}.bn2", planes)
            if b == 0 and (stride != 1 or inplanes != planes * expansion):  # _make_layer's rule
                out |= {f"{p}.downsample.0.weight": (planes * expansion, inplanes, 1, 1)}
                out |= _bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    return out


def pose_resnet_layout(depth: int, k: int, backbone: str = "", head: str = "") -> dict[str, tuple[int, ...]]:
    """An official pose_resnet (``backbone=head=""``) or mmpose (``"backbone."``, ``"head."``/``"keypoint_head."``) layout."""
    out = trunk_layout(depth, backbone)
    inplanes = 2048 if SPEC[depth][0] == "bottleneck" else 512
    for i in range(3):  # deconv_layers: [ConvTranspose2d, BN, ReLU] x 3 -> indices 0, 1 / 3, 4 / 6, 7
        out |= {f"{head}deconv_layers.{3 * i}.weight": (inplanes, 256, 4, 4)} | _bn(f"{head}deconv_layers.{3 * i + 1}", 256)
        inplanes = 256
    return out | {f"{head}final_layer.weight": (k, 256, 1, 1), f"{head}final_layer.bias": (k,)}


def random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values for a layout: conv weights ~ 1/sqrt(fan), BN scale near 1, random running statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(11, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            state[key] = 0.2 * torch.randn(shape, generator=g)
        elif key.endswith(".weight") and len(shape) == 1:
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 4:
            state[key] = torch.randn(shape, generator=g) / float(np.prod(shape[1:])) ** 0.5
        else:
            state[key] = 0.1 * torch.randn(shape, generator=g)
    return state


# ----------------------------------------------------------------------------- the reference forward
def reference_forward(s: dict[str, torch.Tensor], x: torch.Tensor, depth: int, backbone: str = "",
                      head: str = "") -> torch.Tensor:
    """``PoseResNet.forward`` (and mmpose's ResNet + simple head) read by name; BN in eval mode."""

    def bn(p: str, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(t, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                            training=False, eps=1e-5)

    def conv(p: str, t: torch.Tensor, stride: int = 1) -> torch.Tensor:
        w = s[f"{p}.weight"]
        return F.conv2d(t, w, s.get(f"{p}.bias"), stride=stride, padding=w.shape[-1] // 2)

    block, counts = SPEC[depth]
    x = F.relu(bn(f"{backbone}bn1", conv(f"{backbone}conv1", x, 2)))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for li, n in enumerate(counts):
        for b in range(n):
            p = f"{backbone}layer{li + 1}.{b}"
            stride = 2 if (li > 0 and b == 0) else 1
            if block == "bottleneck":
                y = F.relu(bn(f"{p}.bn1", conv(f"{p}.conv1", x)))
                y = F.relu(bn(f"{p}.bn2", conv(f"{p}.conv2", y, stride)))
                y = bn(f"{p}.bn3", conv(f"{p}.conv3", y))
            else:
                y = F.relu(bn(f"{p}.bn1", conv(f"{p}.conv1", x, stride)))
                y = bn(f"{p}.bn2", conv(f"{p}.conv2", y))
            shortcut = bn(f"{p}.downsample.1", conv(f"{p}.downsample.0", x, stride)) if b == 0 and (
                stride != 1 or x.shape[1] != y.shape[1]) else x
            x = F.relu(y + shortcut)
    for i in range(3):
        x = F.conv_transpose2d(x, s[f"{head}deconv_layers.{3 * i}.weight"], None, stride=2, padding=1, output_padding=0)
        x = F.relu(bn(f"{head}deconv_layers.{3 * i + 1}", x))
    return F.conv2d(x, s[f"{head}final_layer.weight"], s[f"{head}final_layer.bias"])


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


@pytest.fixture(scope="module")
def official_r50() -> dict[str, torch.Tensor]:
    return random_state(pose_resnet_layout(50, K), seed=1)


# ----------------------------------------------------------------------------- shapes, size, init
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_state_dict_has_exactly_the_official_keys_and_shapes(depth):
    with torch.device("meta"):
        state = SimpleBaseline(depth, K).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == pose_resnet_layout(depth, K)


@pytest.mark.parametrize("depth, millions", [(50, 34.0), (101, 53.0), (152, 68.6)])
def test_parameter_count_matches_the_published_one(depth, millions):
    # HRNet README / mmpose docs/en/inference_speed_summary.md: 34.0, 53.0, 68.6 M (COCO, K=17).
    with torch.device("meta"):
        model = SimpleBaseline(depth, K)
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - millions) < 0.05


def test_heatmaps_are_at_stride_4_and_bad_inputs_are_clear_errors():
    model = build_simple_baseline(18, 5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 96))
    assert len(out) == 1 and set(out[0]) == {"heatmaps"} and out[0]["heatmaps"].shape == (2, 5, 16, 24)
    assert model.stride == 4
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="depth must be one of"):
        SimpleBaseline(depth=42)


def test_initialisation_is_the_release_one():
    torch.manual_seed(0)
    model = build_simple_baseline(50)
    assert abs(model.deconv_layers[0].weight.std().item() - 1e-3) < 1e-4
    assert abs(model.final_layer.weight.std().item() - 1e-3) < 2e-4
    assert torch.all(model.final_layer.bias == 0)
    assert torch.all(model.deconv_layers[1].weight == 1) and torch.all(model.deconv_layers[1].bias == 0)
    assert model.deconv_layers[0].bias is None


# ----------------------------------------------------------------------------- official files
def converted(state: dict, convert=convert_pose_resnet_official) -> SimpleBaseline:
    """A model loaded as the architecture table loads a file: convert (rename, read the depth), then load exactly."""
    settings, ours = convert(state, "test file")
    model = build_simple_baseline(depth=settings.depth, num_keypoints=int(ours["final_layer.weight"].shape[0]))
    load_exact(model, ours, "test file")
    return model.eval()


@pytest.mark.parametrize("depth", [18, 50])
def test_official_layout_converts_loads_strictly_and_computes_the_reference_forward(depth, official_r50):
    state = official_r50 if depth == 50 else random_state(pose_resnet_layout(depth, K), seed=2)
    model = converted(state)
    images = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = model(images)[0]["heatmaps"]
        expected = reference_forward(state, images, depth)
    assert got.shape == expected.shape == (2, K, 16, 8)
    assert _relative_error(got, expected) <= 1e-4


def test_an_old_dataparallel_file_without_bn_counters_loads_through_read_weights(official_r50, tmp_path):
    # K = 5 is no person skeleton, so the file is loaded for its 17-keypoint twin: the layout's
    # handling (module. prefix, missing counters) is what is tested.
    state = {k: v for k, v in official_r50.items() if not k.endswith("num_batches_tracked")}
    state["final_layer.weight"] = torch.randn(17, 256, 1, 1)
    state["final_layer.bias"] = torch.zeros(17)
    path = tmp_path / "pose_resnet_50_256x192.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    loaded = read_weights(path)
    assert loaded.layout.name == "pose_resnet_official" and loaded.config.model.settings.depth == 50
    assert loaded.model.state_dict()["layer3.5.bn2.num_batches_tracked"].item() == 0
    assert torch.equal(loaded.model.state_dict()["deconv_layers.6.weight"], official_r50["deconv_layers.6.weight"])


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_the_depth_is_read_from_either_layout(depth):
    for backbone, head, convert in (("", "", convert_pose_resnet_official),
                                    ("backbone.", "head.", convert_pose_resnet_mmpose),
                                    ("backbone.", "keypoint_head.", convert_pose_resnet_mmpose)):
        state = {key: torch.empty(shape, device="meta") for key, shape in pose_resnet_layout(depth, K, backbone, head).items()}
        assert convert(state, "x")[0] == SimpleBaselineSettings(depth=depth)


def test_conversion_and_loading_errors_name_the_problem(official_r50):
    with pytest.raises(ValueError, match=r"counts \(0, 0, 0, 0\) in layer1..4 match no ResNet"):
        convert_pose_resnet_official({"conv1.weight": official_r50["conv1.weight"]}, "x")
    missing = dict(official_r50)
    del missing["layer2.1.conv3.weight"]
    with pytest.raises(ValueError, match=r"layer2\.1\.conv3\.weight"):
        converted(missing)
    wrong = dict(official_r50)
    wrong["deconv_layers.3.weight"] = torch.zeros(256, 128, 4, 4)
    with pytest.raises(ValueError, match=r"shape mismatch.*deconv_layers\.3\.weight"):
        converted(wrong)
    # A 1.x HeatmapHead with extra conv_layers is not the res50 head: refused by name.
    mm = {f"backbone.{k}" if not k.startswith(("deconv", "final")) else f"head.{k}": v for k, v in official_r50.items()}
    mm["head.conv_layers.0.weight"] = torch.zeros(256, 256, 1, 1)
    with pytest.raises(ValueError, match=r"conv_layers\.0\.weight"):
        converted(mm, convert_pose_resnet_mmpose)


# ----------------------------------------------------------------------------- mmpose files
@pytest.mark.parametrize("head, depth", [("head.", 18), ("keypoint_head.", 50)])
def test_mmpose_layout_converts_loads_strictly_and_computes_the_reference_forward(head, depth):
    state = random_state(pose_resnet_layout(depth, K, "backbone.", head), seed=4)
    assert is_pose_resnet_mmpose(state.keys()) and not is_pose_resnet_official(state.keys())
    model = converted(state, convert_pose_resnet_mmpose)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = model(images)[0]["heatmaps"]
        expected = reference_forward(state, images, depth, "backbone.", head)
    assert _relative_error(got, expected) <= 1e-4


# ----------------------------------------------------------------------------- detection
def _other_layouts() -> dict[str, frozenset[str]]:
    with torch.device("meta"):
        vgg = build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125).state_dict()
        lightweight = build_mobilenet_paf().state_dict()
        hourglass = build_hourglass(1).state_dict()
    return {
        "hrnet": frozenset(hrnet_layout(32, K)),
        "vgg19_paf": frozenset(vgg), "lightweight": frozenset(lightweight),
        "hourglass_mmpose": frozenset(f"backbone.{k}" if not k.startswith("final_layers") else
                                      k.replace("final_layers", "head.multi_final_layers") for k in hourglass),
        "torchvision_vgg19": frozenset({"features.0.weight", "features.0.bias", "classifier.0.weight"}),
    }


def test_each_layout_is_detected_and_no_other_is():
    official = frozenset(pose_resnet_layout(101, K))
    mm0 = frozenset(pose_resnet_layout(50, K, "backbone.", "keypoint_head."))
    mm1 = frozenset(pose_resnet_layout(152, K, "backbone.", "head."))
    torchvision = frozenset(trunk_layout(34) | {"fc.weight": (1000, 512), "fc.bias": (1000,)})
    assert is_pose_resnet_official(official) and not is_pose_resnet_mmpose(official) and not is_torchvision_resnet(official)
    for mm in (mm0, mm1):
        assert is_pose_resnet_mmpose(mm) and not is_pose_resnet_official(mm) and not is_torchvision_resnet(mm)
    assert is_torchvision_resnet(torchvision) and not is_pose_resnet_official(torchvision)
    assert not is_pose_resnet_mmpose(torchvision)
    for name, keys in _other_layouts().items():
        detected = [is_pose_resnet_official(keys), is_pose_resnet_mmpose(keys), is_torchvision_resnet(keys)]
        assert not any(detected), name
    # ... and the HRNet detector leaves these files alone.
    assert not any(is_hrnet_official(dict.fromkeys(keys)) for keys in (official, mm0, torchvision))
    # A ResNet whose block counts are no published depth is not taken for one.
    odd = frozenset(k for k in official if not k.startswith("layer3.22."))
    assert not is_pose_resnet_official(odd)


# ----------------------------------------------------------------------------- ImageNet trunks
def test_imagenet_resnet_fills_the_trunk_and_computes_torchvision_layer4():
    tv = import_optional("torchvision")
    torch.manual_seed(6)
    reference = tv.models.resnet18(weights=None).eval()
    with torch.no_grad():  # random BN statistics, so a wrong mapping of running stats shows
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model = build_simple_baseline(18).eval()
    head_before = model.final_layer.weight.clone()
    message = load_imagenet_resnet(model, reference.state_dict(), "resnet18.pth")
    assert message == "ImageNet ResNet-18 from resnet18.pth"
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        r = reference
        expected = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(images))))))))
        got = model.features(images)
    assert _relative_error(got, expected) <= 1e-5
    assert torch.equal(model.final_layer.weight, head_before)


def test_imagenet_resnet_of_another_depth_or_with_missing_keys_is_refused_by_name():
    trunk18 = random_state(trunk_layout(18) | {"fc.weight": (1000, 512), "fc.bias": (1000,)})
    with pytest.raises(ValueError, match="ResNet-18 does not fit .* ResNet-50"):
        load_imagenet_resnet(build_simple_baseline(50), trunk18, "r18.pth")
    broken = {k: v for k, v in trunk18.items() if k != "layer4.1.bn2.running_var"}
    with pytest.raises(ValueError, match=r"layer4\.1\.bn2\.running_var"):
        load_imagenet_resnet(build_simple_baseline(18), broken, "r18.pth")
    old = {k: v for k, v in trunk18.items() if not k.endswith("num_batches_tracked")}
    model = build_simple_baseline(18)
    load_imagenet_resnet(model, old, "r18.pth")
    assert torch.equal(model.layer2[0].downsample[1].running_var, trunk18["layer2.0.downsample.1.running_var"])


# ----------------------------------------------------------------------------- the reference inputs helper
def _smooth_image(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 16, w // 16, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_pose_resnet_and_hrnet_inputs_differ_only_by_channel_order():
    image = _smooth_image()
    box = [40.3, 30.7, 90.0, 150.5]
    a = pose_resnet_official_input(image, box)
    b = hrnet_official_input(image, box)
    assert a.shape == b.shape == (3, 256, 192)
    # Undo each normalisation (its mean/std by channel position): the pixels are the same, reversed.
    pixels_a = a * TORCH_STD[:, None, None] + TORCH_MEAN[:, None, None]
    pixels_b = b * TORCH_STD[:, None, None] + TORCH_MEAN[:, None, None]
    np.testing.assert_allclose(pixels_a, pixels_b[::-1], atol=1e-6)
    assert not np.allclose(a, b[::-1], atol=1e-2)  # the normalisation is not reversed with them


def test_mmpose_input_of_a_detection_box_is_the_hrnet_reference_input():
    image = _smooth_image(seed=1)
    for box in ([40.3, 30.7, 90.0, 150.5], [100.0, 20.0, 160.0, 60.0]):
        center, scale = hrnet_repo_xywh2cs(box, (192, 256))
        m_center, m_scale = mmpose_box_center_scale(box, (192, 256))
        np.testing.assert_allclose(m_center, center, atol=1e-4)
        np.testing.assert_allclose(m_scale, scale * 200, rtol=1e-5)
        np.testing.assert_allclose(mmpose_get_warp_matrix(m_center, m_scale, 0, (192, 256)),
                                   hrnet_repo_get_affine_transform(center, scale, 0, (192, 256)), atol=1e-4)
        # Same pixels up to the float32 rounding of the two matrices (a pixel may round one level apart).
        diff = np.abs(mmpose_input(image, box) * MMPOSE_STD[:, None, None] / 255.0
                      - hrnet_official_input(image, box) * TORCH_STD[:, None, None])
        assert diff.max() <= 1.0 / 255 + 1e-5 and (diff > 1e-5).mean() < 0.01


@needs_coco_sample
def test_pose_resnet_input_of_a_labelled_coco_person_is_finite_and_in_range():
    data = json.loads(COCO_SAMPLE_VAL_ANN.read_text())
    ann = next(a for a in data["annotations"] if a["num_keypoints"] > 10 and not a["iscrowd"])
    info = next(i for i in data["images"] if i["id"] == ann["image_id"])
    image = cv2.imread(str(COCO_SAMPLE_IMAGES / info["file_name"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    x = pose_resnet_official_input(image, ann["bbox"])
    assert x.shape == (3, 256, 192) and np.isfinite(x).all()
    low, high = (0 - TORCH_MEAN) / TORCH_STD, (1 - TORCH_MEAN) / TORCH_STD
    assert np.all(x >= low[:, None, None] - 1e-5) and np.all(x <= high[:, None, None] + 1e-5)
    # The box centre lands on crop pixel (W/2, H/2): the crop there is the image there (bilinear, +-1 level).
    cx, cy = ann["bbox"][0] + ann["bbox"][2] / 2, ann["bbox"][1] + ann["bbox"][3] / 2
    x0, y0 = int(np.floor(cx)), int(np.floor(cy))
    fx, fy = cx - x0, cy - y0
    patch = image[y0:y0 + 2, x0:x0 + 2].astype(np.float64)
    expected = ((1 - fy) * ((1 - fx) * patch[0, 0] + fx * patch[0, 1]) + fy * ((1 - fx) * patch[1, 0] + fx * patch[1, 1]))
    got = (x[:, 128, 96] * TORCH_STD + TORCH_MEAN) * 255.0
    np.testing.assert_allclose(got, expected, atol=1.5)


# ----------------------------------------------------------------------------- through the architecture table
def test_an_official_file_loads_through_load_model_with_the_reference_heatmaps(official_r50, tmp_path):
    path = tmp_path / "pose_resnet_50_256x192.pth"
    torch.save(official_r50, path)  # what the release's torch.save(model.state_dict()) writes
    model = load_model(path)
    assert isinstance(model, SimpleBaseline) and model.depth == 50 and not model.training
    images = torch.randn(1, 3, 64, 32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        got = model(images)[0]["heatmaps"]
        expected = reference_forward(official_r50, images, 50)
    assert _relative_error(got, expected) <= 1e-4


def _labelled_box() -> tuple[np.ndarray, list[float]]:
    """A real COCO image (BGR, as cv2.imread gives it) and the box of its first labelled person."""
    data = json.loads(COCO_SAMPLE_VAL_ANN.read_text())
    ann = next(a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 5)
    name = next(im["file_name"] for im in data["images"] if im["id"] == ann["image_id"])
    return cv2.imread(str(COCO_SAMPLE_IMAGES / name)), [float(v) for v in ann["bbox"]]


@needs_coco_sample
@pytest.mark.parametrize("kind", ["pose_resnet_official", "hrnet_official", "pose_resnet_mmpose"])
def test_an_official_file_is_fed_its_references_crop_within_one_grey_level(kind, official_r50, tmp_path):
    if kind == "hrnet_official":
        state = random_state(hrnet_layout(8, K), seed=9)  # any width: the crop is what is compared
        reference = hrnet_official_input
    elif kind == "pose_resnet_official":
        state, reference = official_r50, pose_resnet_official_input
    else:
        state = {(f"head.{k}" if k.startswith(("deconv", "final")) else f"backbone.{k}"): v
                 for k, v in official_r50.items()}
        reference = mmpose_input
    path = tmp_path / f"{kind}.pth"
    torch.save({"state_dict": state, "meta": {}} if kind == "pose_resnet_mmpose" else state, path)
    predictor = TopDownPredictor.from_weights(path, device="cpu", flip=False)
    seen: list[torch.Tensor] = []
    predictor.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    image, box = _labelled_box()
    predictor.predict(image, np.array([box]))
    ours, theirs = seen[0][0].numpy(), reference(image, box)
    # Undo the (shared) normalisation to compare pixels: each reference scales by the ImageNet std x 255.
    grey_levels = np.abs(ours - theirs) * np.asarray(TORCH_STD, np.float32)[:, None, None] * 255.0
    assert ours.shape == theirs.shape == (3, 256, 192)
    # One grey level (plus the float rounding of the normalisations): the two warps may round a pixel apart.
    assert grey_levels.max() <= 1.0 + 1e-3, (kind, float(grey_levels.max()))
    assert (grey_levels > 0.5).mean() < 0.01  # and do so for few pixels


def test_simple_baseline_trains_evaluates_infers_exports_and_benches_as_hrnet_does(tmp_path, capsys):
    from openpose_lite.bench import BenchConfig, run_bench
    from openpose_lite.cli import main
    from openpose_lite.data.synthetic import SceneConfig, write_dataset
    from openpose_lite.training.checkpoint import load_checkpoint

    ann = write_dataset(tmp_path / "scenes", 4, seed=3, cfg=SceneConfig(image_hw=(96, 128), people_range=(1, 2)))
    images, out = ann.parent / "images", tmp_path / "run"
    assert main(["train", "--output-dir", str(out), "--no-progress", "--held-out-images", "0",
                 "model.arch=simple_baseline", "model.depth=18", "topdown.input_hw=[64,32]",
                 "topdown.heatmap_hw=[16,8]", "topdown.sigma_px=4.0", f"data.train_ann={ann}",
                 f"data.train_images={images}", f"data.val_ann={ann}", f"data.val_images={images}",
                 "data.num_workers=0", "train.batch_size=4", "train.epochs=1", "train.optimizer=adam",
                 "train.lr=1e-3", "train.device=cpu", "train.amp=false", "train.eval_every=1"]) == 0
    assert "simple_baseline (depth 18)" in capsys.readouterr().out
    assert load_checkpoint(out / "last.pt")["config"]["model"]["arch"] == "simple_baseline"
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--ann", str(ann), "--images", str(images)]) == 0
    assert "top-down 64x32" in capsys.readouterr().out
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 70], "score": 0.9}]))
    assert main(["infer", str(images / "000001.jpg"), "--checkpoint", str(out / "last.pt"), "--boxes", str(dets),
                 "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert len(json.loads((tmp_path / "out" / "000001_keypoints.json").read_text())["people"]) == 1
    assert main(["export", "--checkpoint", str(out / "last.pt"), "--format", "torchscript"]) == 0
    config = BenchConfig(td_arch="simple_baseline", people=(1,), image_hw=(64, 96), repeats=1, warmup=0,
                         decode_repeats=1, device="cpu", threads=1, bu_width_mult=0.125, bu_stages=1, bu_input_size=32,
                         td_input_hw=(64, 32), out_dir=str(tmp_path / "bench"))
    result = run_bench(config)
    assert "simple_baseline (depth 50) 64x32, random weights" in result.info["topdown"]
    assert result.config.td_arch == "simple_baseline" and "--td-arch simple_baseline" in result.config.command_line()
