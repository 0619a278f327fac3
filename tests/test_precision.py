"""Inference precision: fp32 / bf16 (CPU autocast) / fp16 (CUDA autocast) / auto, one setting for both branches.

A network that reproduces known maps through a convolution (so autocast really lowers its
precision) stands in for a trained model: bf16 must give maps that differ from fp32 (the
lower precision was used) yet decode to the same people.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from openpose_lite import devices
from openpose_lite.codecs import BottomUpPafCodec, TopDownHeatmapCodec
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor
from openpose_lite.inference.network import NetworkRunner, make_runner
from openpose_lite.skeleton import COCO_17, OPENPOSE_18

CODEC = BottomUpPafCodec(refine="dark", blur_kernel=0)


class MapsThroughAConv(nn.Module):
    """Returns fixed maps, computed by a 1x1 convolution (identity weights) so that autocast applies."""

    stride = 8
    skeleton = OPENPOSE_18

    def __init__(self, maps: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.names = list(maps)
        stacked = np.concatenate([maps[n] for n in self.names])[None]
        self.register_buffer("maps", torch.from_numpy(stacked))
        self.split = [maps[n].shape[0] for n in self.names]
        self.conv = nn.Conv2d(stacked.shape[1], stacked.shape[1], 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(stacked.shape[1])[:, :, None, None])

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        out = self.conv(self.maps.expand(images.shape[0], -1, -1, -1))
        return [dict(zip(self.names, torch.split(out, self.split, dim=1)))]


def _people_maps() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An image of 240x320 and the bottom-up codec's maps of three people at known places."""
    rng = np.random.default_rng(0)
    kps = np.zeros((3, 17, 3), np.float32)
    for n, (cx, cy) in enumerate([(60, 110), (160, 120), (260, 100)]):
        kps[n, :, 0] = cx + rng.uniform(-25, 25, 17)
        kps[n, :, 1] = cy + rng.uniform(-70, 70, 17)
        kps[n, :, 2] = 2
    image = np.full((240, 320, 3), 90, np.uint8)
    matrix, input_hw = letterbox_affine(image.shape[:2], 240, 8)
    targets, _ = CODEC.encode(transform_keypoints(matrix, kps), input_hw)
    return image, targets


@pytest.fixture()
def native_bf16(monkeypatch):
    """Pretend this CPU computes bf16 natively (the arithmetic is emulated; results are the same)."""
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)


def test_bf16_maps_differ_from_fp32_yet_decode_the_same_people(native_bf16):
    image, targets = _people_maps()
    model = MapsThroughAConv(targets)
    fp32 = BottomUpPredictor(model, CODEC, input_size=240, device="cpu", precision="fp32")
    bf16 = BottomUpPredictor(model, CODEC, input_size=240, device="cpu", precision="bf16")
    maps32, maps16 = fp32.predict_maps([image])[0], bf16.predict_maps([image])[0]
    assert maps16["heatmaps"].dtype == np.float32  # decoded in float32
    assert 0 < np.abs(maps16["heatmaps"] - maps32["heatmaps"]).max() < 0.01  # bf16 was used, and is close
    people32, people16 = fp32(image), bf16(image)
    assert len(people32) == len(people16) == 3
    order = np.argsort(people32.keypoints[:, 1, 0])
    order16 = np.argsort(people16.keypoints[:, 1, 0])
    a, b = people32.keypoints[order], people16.keypoints[order16]
    found = (a[..., 2] > 0) & (b[..., 2] > 0)
    assert found.sum() >= 50
    assert np.abs(a[found][:, :2] - b[found][:, :2]).max() < 0.25


def test_topdown_predictor_takes_the_same_precision_setting(native_bf16):
    class Heatmaps(nn.Module):
        stride = 4

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 17, 4, stride=4)

        def forward(self, images):
            return [{"heatmaps": self.conv(images)}]

    torch.manual_seed(0)
    predictor = TopDownPredictor(Heatmaps(), TopDownHeatmapCodec(), device="cpu", precision="bf16")
    assert predictor.runner.precision == "bf16"
    poses = predictor(np.full((300, 200, 3), 128, np.uint8), np.array([[20.0, 20.0, 100.0, 200.0]]))
    assert poses.keypoints.dtype == np.float32 and len(poses) == 1


def test_topdown_bf16_decodes_the_keypoints_fp32_decodes(native_bf16):
    # 256x192 crops, 64x48 maps, DARK. (Quarter offset steps a quarter cell on the sign of the
    # neighbours' difference, so on a peak centred on a cell any rounding, bf16 or a network's
    # own noise, may flip it by half a cell: not a precision effect to test.)
    codec = TopDownHeatmapCodec(refine="dark")
    rng = np.random.default_rng(1)
    crop_kps = np.zeros((17, 3), np.float32)
    crop_kps[:, 0] = rng.uniform(20, 172, 17)
    crop_kps[:, 1] = rng.uniform(20, 236, 17)
    crop_kps[:, 2] = 2
    targets, _ = codec.encode(crop_kps)  # {"heatmaps": (17, 64, 48)}

    class CropMaps(MapsThroughAConv):  # the same maps for every crop, through a conv
        stride = codec.stride
        skeleton = COCO_17

    model = CropMaps(targets)
    image = np.full((300, 200, 3), 128, np.uint8)
    boxes = np.array([[20.0, 20.0, 100.0, 200.0], [60.0, 40.0, 120.0, 240.0]])
    fp32 = TopDownPredictor(model, codec, device="cpu", precision="fp32")(image, boxes)
    bf16 = TopDownPredictor(model, codec, device="cpu", precision="bf16")(image, boxes)
    assert len(fp32) == len(bf16) == 2
    a, b = fp32.keypoints[np.argsort(fp32.keypoints[:, 0, 0])], bf16.keypoints[np.argsort(bf16.keypoints[:, 0, 0])]
    assert (a[..., 2] > 0).all() and (b[..., 2] > 0).all()
    moved = np.abs(a[..., :2] - b[..., :2]).max()
    assert 0 < moved < 0.25  # bf16 was used (the refined peaks moved), and the keypoints agree
    assert np.abs(a[..., 2] - b[..., 2]).max() < 0.02


def test_a_precision_the_cpu_cannot_run_natively_is_refused_with_a_reason(monkeypatch):
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    model = MapsThroughAConv(_people_maps()[1])
    with pytest.raises(ValueError, match="bf16: this CPU does not compute bfloat16 natively"):
        BottomUpPredictor(model, CODEC, input_size=240, device="cpu", precision="bf16")
    with pytest.raises(ValueError, match="fp16: float16 needs a CUDA device"):
        NetworkRunner(model, ("heatmaps",), "cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision: expected one of"):
        NetworkRunner(model, ("heatmaps",), "cpu", precision="int8")


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_the_fastest_native_precision_and_logs_why(monkeypatch, caplog, native):
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: native)
    with caplog.at_level(logging.INFO, logger="openpose_lite.devices"):
        chosen = devices.resolve_precision("auto", torch.device("cpu"))
    assert chosen == ("bf16" if native else "fp32")
    assert f"precision auto: {chosen}" in caplog.text
    if not native:
        assert "no native bf16" in caplog.text


def test_a_torch_runner_resolves_and_logs_auto_once(monkeypatch, caplog):
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger="openpose_lite.devices"):
        runner = make_runner(nn.Conv2d(3, 2, 1), ("heatmaps",), "cpu", precision="auto")
    assert runner.precision == "fp32" and caplog.text.count("precision auto:") == 1


def test_cpu_bf16_detection_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(devices, "_cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert devices.cpu_computes_bf16()
    monkeypatch.setattr(devices, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert not devices.cpu_computes_bf16()


@pytest.mark.parametrize("flags, int8", [({"avx2", "avx512_vnni"}, True), ({"avx2", "avx_vnni"}, True),
                                         ({"amx_int8", "amx_tile"}, True), ({"avx2", "avx512f", "avx512_bf16"}, False)])
def test_cpu_int8_detection_reads_the_vnni_and_amx_flags(monkeypatch, flags, int8):
    monkeypatch.setattr(devices, "_cpu_flags", lambda: flags)
    assert devices.cpu_computes_int8() is int8
    assert all(flag in devices.cpu_description() for flag in flags)


def test_fp32_is_the_default_and_gives_the_exact_maps():
    image, targets = _people_maps()
    predictor = BottomUpPredictor(MapsThroughAConv(targets), CODEC, input_size=240, device="cpu")
    assert predictor.runner.precision == "fp32"
    maps = predictor.predict_maps([image])[0]
    np.testing.assert_allclose(maps["heatmaps"], targets["heatmaps"], atol=1e-6)


@pytest.mark.parametrize("command", ["infer", "eval", "bench"])
def test_the_commands_refuse_a_precision_the_cpu_cannot_run_with_exit_2(command, monkeypatch, checkpoint, dataset,
                                                                       tmp_path, capsys):
    from openpose_lite.cli import main

    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    argv = {
        "infer": ["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out")],
        "eval": ["eval", "--checkpoint", str(checkpoint), "--ann", str(dataset / "annotations.json"),
                 "--images", str(dataset / "images")],
        "bench": ["bench", "--people", "1", "--size", "64", "64", "--bu-width-mult", "0.125", "--bu-stages", "1",
                  "--hrnet-width", "8", "--td-input-hw", "64", "64", "--device", "cpu", "--out", str(tmp_path / "b")],
    }[command]
    assert main([*argv, "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "bf16: this CPU does not compute bfloat16 natively" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "b").exists()


# oneDNN's cap: the dnnl_cpu_isa_t masks of oneDNN's docs ("CPU Dispatcher Control", enum
# dnnl_cpu_isa_t), where an ISA is available under a cap when its bits are a subset of the cap's:
# AVX2 0x7, AVX2_VNNI 0xf, AVX512_CORE 0x27, AVX512_CORE_VNNI 0x67, AVX512_CORE_BF16 0xe7.
_ZEN4 = "fpu avx avx2 avx512f avx512bw avx512_vnni avx512_bf16\n"


@pytest.mark.parametrize("cap, bf16, int8", [(None, True, True), ("AVX2", False, False), ("avx512_core", False, False),
                                             ("AVX512_CORE_VNNI", False, True), ("AVX512_CORE_BF16", True, True),
                                             ("ALL", True, True)])
def test_a_onednn_isa_cap_hides_the_flags_of_isas_above_it(monkeypatch, cap, bf16, int8):
    monkeypatch.setattr(devices, "_cpuinfo_field", lambda key: _ZEN4 if key == "flags" else "AMD EPYC")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    masks = {"AVX2": 0x7, "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7}
    allowed = masks.get((cap or "").upper(), 0xFFFF)
    assert (0xE7 & allowed == 0xE7) is bf16 and (0x67 & allowed == 0x67) is int8  # the reference's rule
    assert devices.cpu_computes_bf16() is bf16 and devices.cpu_computes_int8() is int8
    assert ("capped at" in devices.cpu_description()) is (cap is not None and cap != "ALL")
