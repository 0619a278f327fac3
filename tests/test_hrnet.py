"""HRNet: shapes, official checkpoint layout (keys, shapes, strict load), forward semantics, size.

The official layout is written out here independently of the model code, from the published
structure of "deep-high-resolution-net.pytorch" (pose_hrnet, COCO W32/W48 configs), and a
small functional re-implementation of the paper's forward pass reads weights by those names.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from openpose_lite.models.hrnet import (
    HighResolutionModule,
    HRNet,
    build_hrnet,
    convert_hrnet_official,
    hrnet_config_from_state_dict,
    is_hrnet_official,
)
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.skeleton import COCO_17

K = COCO_17.num_keypoints

# ----------------------------------------------------------------------------- official layout


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def official_layout(c: int, k: int, blocks: int = 4) -> dict[str, tuple[int, ...]]:
    """Every key of an official pose-HRNet-W``c`` state dict with its shape."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 3, 3), "conv2.weight": (64, 64, 3, 3)}
    out |= _bn("bn1", 64) | _bn("bn2", 64)
    for b in range(4):  # layer1: Bottleneck(64 or 256 -> 64 -> 256)
        p, cin = f"layer1.{b}", (64 if b == 0 else 256)
        out |= {f"{p}.conv1.weight": (64, cin, 1, 1), f"{p}.conv2.weight": (64, 64, 3, 3), f"{p}.conv3.weight": (256, 64, 1, 1)}
        out |= _bn(f"{p}.bn1", 64) | _bn(f"{p}.bn2", 64) | _bn(f"{p}.bn3", 256)
    out |= {"layer1.0.downsample.0.weight": (256, 64, 1, 1)} | _bn("layer1.0.downsample.1", 256)
    # transition1: branch 0 256 -> C (stride 1), branch 1 256 -> 2C (stride 2, nested Sequential).
    out |= {"transition1.0.0.weight": (c, 256, 3, 3)} | _bn("transition1.0.1", c)
    out |= {"transition1.1.0.0.weight": (2 * c, 256, 3, 3)} | _bn("transition1.1.0.1", 2 * c)
    # transition2/3 only open the new branch from the previous lowest-resolution one.
    out |= {"transition2.2.0.0.weight": (4 * c, 2 * c, 3, 3)} | _bn("transition2.2.0.1", 4 * c)
    out |= {"transition3.3.0.0.weight": (8 * c, 4 * c, 3, 3)} | _bn("transition3.3.0.1", 8 * c)
    for stage, modules, branches in ((2, 1, 2), (3, 4, 3), (4, 3, 4)):
        widths = [c * 2 ** i for i in range(branches)]
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for i, w in enumerate(widths):
                for b in range(blocks):
                    q = f"{p}.branches.{i}.{b}"
                    out |= {f"{q}.conv1.weight": (w, w, 3, 3), f"{q}.conv2.weight": (w, w, 3, 3)}
                    out |= _bn(f"{q}.bn1", w) | _bn(f"{q}.bn2", w)
            outputs = 1 if (stage == 4 and m == modules - 1) else branches
            for i in range(outputs):
                for j in range(branches):
                    q = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        out |= {f"{q}.0.weight": (widths[i], widths[j], 1, 1)} | _bn(f"{q}.1", widths[i])
                    for s in range(i - j):  # j < i: chain of stride-2 convs
                        w_out = widths[i] if s == i - j - 1 else widths[j]
                        out |= {f"{q}.{s}.0.weight": (w_out, widths[j], 3, 3)} | _bn(f"{q}.{s}.1", w_out)
    out |= {"final_layer.weight": (k, c, 1, 1), "final_layer.bias": (k,)}
    return out


def random_official_state(c: int, k: int, blocks: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """An official-layout state dict with random values (positive running_var)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_layout(c, k, blocks).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(".weight") and len(shape) == 1:  # BN scale near 1 keeps activations tame
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the CPU is shared, and two spinning threads stall each other there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def official_w32() -> dict[str, torch.Tensor]:
    """One random official-layout W32 state dict shared by the tests (they copy, never mutate)."""
    return random_official_state(32, K)


# ----------------------------------------------------------------------------- shapes


def test_w32_heatmaps_are_at_stride_4_with_k_channels():
    torch.manual_seed(0)
    model = build_hrnet(32, K).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 96))[-1]
    assert set(out) == {"heatmaps"}
    assert out["heatmaps"].shape == (2, K, 16, 24)


def test_w48_heatmaps_shape_and_custom_keypoint_count():
    model = build_hrnet(48, 5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))[-1]
    assert out["heatmaps"].shape == (1, 5, 8, 8)


def test_input_size_not_multiple_of_32_or_not_rgb_is_a_clear_error():
    model = HRNet(width=8, num_keypoints=3, num_blocks=1).eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="width"):
        HRNet(width=0)


def test_last_module_fuses_only_into_the_high_resolution_branch():
    widths = [4, 8, 16]
    feats = [torch.randn(1, w, 16 // 2 ** i, 16 // 2 ** i) for i, w in enumerate(widths)]
    multi = HighResolutionModule(widths, num_blocks=1).eval()
    single = HighResolutionModule(widths, num_blocks=1, multi_scale_output=False).eval()
    with torch.no_grad():
        assert [tuple(y.shape) for y in multi(feats)] == [tuple(x.shape) for x in feats]
        assert [tuple(y.shape) for y in single(feats)] == [tuple(feats[0].shape)]


# ----------------------------------------------------------------------------- size, init


@pytest.mark.parametrize("width, paper_millions", [(32, 28.5), (48, 63.6)])
def test_parameter_count_matches_the_paper(width, paper_millions):
    with torch.device("meta"):
        model = HRNet(width=width, num_keypoints=K)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - paper_millions) / paper_millions < 0.01


def test_initialisation_is_the_official_one():
    torch.manual_seed(0)
    model = build_hrnet(32)
    conv = model.layer1[1].conv2.weight
    assert abs(conv.std().item() - 1e-3) < 1e-4
    assert torch.all(model.final_layer.bias == 0)
    assert torch.all(model.stage3[0].branches[2][0].bn1.weight == 1)
    assert torch.all(model.stage3[0].branches[2][0].bn1.bias == 0)


# ----------------------------------------------------------------------------- official layout


def test_known_official_keys_and_shapes_for_w32():
    state = build_hrnet(32, K).state_dict()
    known = {
        "conv1.weight": (64, 3, 3, 3),
        "bn2.running_var": (64,),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.3.bn3.num_batches_tracked": (),
        "transition1.0.0.weight": (32, 256, 3, 3),
        "transition1.1.0.0.weight": (64, 256, 3, 3),
        "transition2.2.0.0.weight": (128, 64, 3, 3),
        "transition3.3.0.0.weight": (256, 128, 3, 3),
        "stage2.0.branches.0.0.conv1.weight": (32, 32, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
        "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),
        "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),
        "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
        "stage4.0.fuse_layers.3.0.2.0.weight": (256, 32, 3, 3),
        "stage4.2.branches.3.3.conv2.weight": (256, 256, 3, 3),
        "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
        "final_layer.weight": (17, 32, 1, 1),
        "final_layer.bias": (17,),
    }
    for key, shape in known.items():
        assert tuple(state[key].shape) == shape, key
    # The last stage-4 module has a single fusion row (high-resolution output only).
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in state)
    assert "stage4.1.fuse_layers.3.2.0.0.weight" in state


@pytest.mark.parametrize("width", [32, 48])
def test_state_dict_has_exactly_the_official_keys_and_shapes(width):
    with torch.device("meta"):
        state = HRNet(width=width, num_keypoints=K).state_dict()
    expected = official_layout(width, K)
    assert set(state) == set(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_official_state_dict_loads_strictly_and_reproduces_outputs(official_w32):
    official = official_w32
    model = build_hrnet(32, K).eval()
    model.load_state_dict(official, strict=True)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    clone = build_hrnet(32, K).eval()
    clone.load_state_dict(convert_hrnet_official({f"module.{k}": v for k, v in model.state_dict().items()}))
    with torch.no_grad():
        expected = model(images)[-1]["heatmaps"]
        got = clone(images)[-1]["heatmaps"]
    assert torch.equal(expected, got)
    assert model.bn1.num_batches_tracked.item() == 7


# ----------------------------------------------------------------------------- forward semantics


def _reference_forward(s: dict[str, torch.Tensor], x: torch.Tensor, blocks: int) -> torch.Tensor:
    """The paper's forward pass, written from the official layout by name (BN in eval mode)."""

    def bn(p: str, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(t, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"], eps=1e-5)

    def conv(p: str, t: torch.Tensor, stride: int = 1) -> torch.Tensor:
        w = s[f"{p}.weight"]
        return F.conv2d(t, w, s.get(f"{p}.bias"), stride=stride, padding=w.shape[-1] // 2)

    x = F.relu(bn("bn1", conv("conv1", x, 2)))
    x = F.relu(bn("bn2", conv("conv2", x, 2)))
    for b in range(4):
        p = f"layer1.{b}"
        y = F.relu(bn(f"{p}.bn1", conv(f"{p}.conv1", x)))
        y = F.relu(bn(f"{p}.bn2", conv(f"{p}.conv2", y)))
        y = bn(f"{p}.bn3", conv(f"{p}.conv3", y))
        x = F.relu(y + (bn(f"{p}.downsample.1", conv(f"{p}.downsample.0", x)) if b == 0 else x))
    # transition1: both branches come from the 256-channel map.
    xs = [F.relu(bn("transition1.0.1", conv("transition1.0.0", x))),
          F.relu(bn("transition1.1.0.1", conv("transition1.1.0.0", x, 2)))]
    for stage, modules, branches in ((2, 1, 2), (3, 4, 3), (4, 3, 4)):
        if stage > 2:
            t = f"transition{stage - 1}.{branches - 1}.0"
            xs.append(F.relu(bn(f"{t}.1", conv(f"{t}.0", xs[-1], 2))))
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for i in range(branches):
                for b in range(blocks):
                    q = f"{p}.branches.{i}.{b}"
                    y = F.relu(bn(f"{q}.bn1", conv(f"{q}.conv1", xs[i])))
                    xs[i] = F.relu(bn(f"{q}.bn2", conv(f"{q}.conv2", y)) + xs[i])
            outputs = 1 if (stage == 4 and m == modules - 1) else branches
            fused = []
            for i in range(outputs):
                total = torch.zeros_like(xs[i])
                for j in range(branches):
                    q = f"{p}.fuse_layers.{i}.{j}"
                    if j == i:
                        total = total + xs[j]
                    elif j > i:
                        up = bn(f"{q}.1", conv(f"{q}.0", xs[j]))
                        total = total + up.repeat_interleave(2 ** (j - i), -2).repeat_interleave(2 ** (j - i), -1)
                    else:
                        y = xs[j]
                        for step in range(i - j):
                            y = bn(f"{q}.{step}.1", conv(f"{q}.{step}.0", y, 2))
                            y = y if step == i - j - 1 else F.relu(y)
                        total = total + y
                fused.append(F.relu(total))
            xs = fused
    return conv("final_layer", xs[0])


def test_forward_matches_a_functional_reference_of_the_paper():
    blocks, c, k = 1, 8, 3
    state = random_official_state(c, k, blocks=blocks, seed=3)
    model = HRNet(width=c, num_keypoints=k, num_blocks=blocks).eval()
    model.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = model(images)[-1]["heatmaps"]
        expected = _reference_forward(state, images, blocks)
    assert got.shape == (2, k, 16, 24)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_every_branch_reaches_the_heatmaps():
    # A change in the 1/32-resolution branch's weights must move the output (fusion works).
    blocks, c, k = 1, 8, 3
    state = random_official_state(c, k, blocks=blocks, seed=5)
    model = HRNet(width=c, num_keypoints=k, num_blocks=blocks).eval()
    model.load_state_dict(state)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        before = model(images)[-1]["heatmaps"].clone()
        model.stage4[2].branches[3][0].conv2.weight.mul_(2.0)
        after = model(images)[-1]["heatmaps"]
    assert not torch.allclose(before, after)


# ----------------------------------------------------------------------------- detection, conversion


def test_detection_accepts_official_state_dicts_once_unwrapped(official_w32):
    from openpose_lite.models.weights import unwrap_weights

    official = official_w32
    assert is_hrnet_official(official)
    # A DataParallel file's "module." prefix is taken off once, at the door (models/weights.py).
    assert is_hrnet_official(unwrap_weights({f"module.{k}": v for k, v in official.items()}, "prefixed")[0])


def test_detection_rejects_other_layouts(official_w32):
    with torch.device("meta"):
        vgg = build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125).state_dict()
    assert not is_hrnet_official(vgg)
    official = official_w32
    # A bottom-up HigherHRNet-style head ("final_layers.N") is not this layout.
    higher = {k.replace("final_layer.", "final_layers.0."): v for k, v in official.items()}
    assert not is_hrnet_official(higher)
    # A three-stage network (no stage 4 / transition3) is not pose-HRNet either.
    truncated = {k: v for k, v in official.items() if not k.startswith(("stage4.", "transition3."))}
    assert not is_hrnet_official(truncated)
    assert not is_hrnet_official({})


@pytest.mark.parametrize("width, keypoints", [(32, 17), (48, 14)])
def test_config_is_inferred_from_the_state_dict(width, keypoints):
    layout = official_layout(width, keypoints)
    state = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}
    assert hrnet_config_from_state_dict(state) == {"width": width, "num_keypoints": keypoints, "num_blocks": 4}
    prefixed = {f"module.{k}": v for k, v in state.items()}
    assert hrnet_config_from_state_dict(prefixed) == {"width": width, "num_keypoints": keypoints, "num_blocks": 4}


def test_conversion_strips_module_prefix_and_fills_missing_bn_counters(official_w32):
    official = official_w32
    old_file = {f"module.{k}": v for k, v in official.items() if not k.endswith("num_batches_tracked")}
    converted = convert_hrnet_official(old_file)
    assert set(converted) == set(official)
    assert converted["bn1.num_batches_tracked"].item() == 0
    assert torch.equal(converted["stage4.2.fuse_layers.0.3.0.weight"], official["stage4.2.fuse_layers.0.3.0.weight"])
    model = build_hrnet(**hrnet_config_from_state_dict(old_file))
    model.load_state_dict(converted, strict=True)


def test_conversion_errors_name_the_problem(official_w32):
    official = official_w32
    with pytest.raises(ValueError, match="official pose-HRNet layout"):
        convert_hrnet_official({"conv1.weight": official["conv1.weight"]})
    missing = dict(official)
    del missing["stage3.1.branches.2.0.conv1.weight"]
    with pytest.raises(ValueError, match=r"stage3\.1\.branches\.2\.0\.conv1\.weight"):
        convert_hrnet_official(missing)
    wrong = dict(official)
    wrong["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ValueError, match="shape mismatch"):
        convert_hrnet_official(wrong)
    kernel3 = dict(official)
    kernel3["final_layer.weight"] = torch.zeros(K, 32, 3, 3)
    with pytest.raises(ValueError, match="1x1"):
        hrnet_config_from_state_dict(kernel3)
    with pytest.raises(ValueError, match="missing key"):
        hrnet_config_from_state_dict({"conv1.weight": official["conv1.weight"]})


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load's deprecation notice
def test_traced_torchscript_export_runs_at_other_input_sizes(tmp_path):
    from openpose_lite.models.export import export_torchscript

    torch.manual_seed(0)
    model = HRNet(width=8, num_keypoints=3, num_blocks=1).eval()
    path = export_torchscript(model, tmp_path / "hrnet.pt", input_hw=(64, 64))
    traced = torch.jit.load(str(path))
    images = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        (heatmaps,) = traced(images)
        torch.testing.assert_close(heatmaps, model(images)[-1]["heatmaps"])
    assert heatmaps.shape == (1, 3, 24, 32)
