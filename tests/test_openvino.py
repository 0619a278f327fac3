"""The OpenVINO runtime: the same maps as torch, conversion once (cached), bf16 / int8 precisions, IR files.

The networks are small random versions of each architecture with weights drawn so their maps
span roughly [-1, 1] (the stock initialisations give maps near 1e-9, where any runtime agrees).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import import_optional
from torch import nn

openvino = import_optional("openvino")  # any failure to import skips the module

from openpose_lite import devices
from openpose_lite.config import Config, build_bottomup_codec, build_topdown_codec, config_to_dict, load_config
from openpose_lite.data.synthetic import SceneConfig, render_scene, write_dataset
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor, openvino_model, openvino_runner
from openpose_lite.inference.calibration import OVERFLOW_FIXES, Calibration, bottomup_calibration
from openpose_lite.inference.network import make_runner
from openpose_lite.inference.openvino_model import BackendUnavailableError, export_ir, read_ir
from openpose_lite.inference.openvino_runner import openvino_native_precisions, resolve_openvino_precision
from openpose_lite.factory import build_model
from openpose_lite.models.hrnet import build_hrnet
from openpose_lite.models.mobilenet_paf import build_mobilenet_paf
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.skeleton import COCO_17

BOTTOMUP = ("heatmaps", "pafs")
# Two input sizes through one converted model (stride 8 bottom-up; HRNet takes multiples of 32).
SIZES = {"vgg19": [(1, 64, 96), (2, 96, 64)], "mobilenet": [(1, 64, 96), (2, 96, 64)], "hrnet": [(1, 64, 64), (2, 96, 64)]}


def _lively(model: nn.Module, seed: int = 0) -> nn.Module:
    """Draw weights that keep activations near unit scale (He-like, gain 1) and non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _network(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch == "vgg19":
        return _lively(build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125))
    if arch == "mobilenet":
        return _lively(build_mobilenet_paf(num_channels=16, width_mult=0.25))
    model = _lively(build_hrnet(width=8, num_blocks=1))
    # HRNet's branch sums grow its maps to ~60; scale the head so they span about [-1, 1].
    with torch.no_grad():
        peak = model(torch.rand(1, 3, 64, 64) - 0.5)[-1]["heatmaps"].abs().max()
        model.final_layer.weight.div_(peak)
        model.final_layer.bias.div_(peak)
    return model


def _names(arch: str) -> tuple[str, ...]:
    return ("heatmaps",) if arch == "hrnet" else BOTTOMUP


def _inputs(batch: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed)) - 0.5


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module (each network converts once), also the predictors' default."""
    folder = tmp_path_factory.mktemp("openvino_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENPOSE_LITE_CACHE", str(folder))
        yield folder / "openvino"


@pytest.fixture(scope="module")
def networks():
    return {arch: _network(arch) for arch in SIZES}


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].shape == b[name].shape and a[name].dtype == np.float32
    return max(float(np.abs(a[name] - b[name]).max()) for name in a)


@pytest.mark.parametrize("arch", list(SIZES))
def test_openvino_fp32_maps_equal_torch_fp32_at_two_input_sizes_through_one_model(arch, networks, cache):
    model = networks[arch]
    torch_runner = make_runner(model, _names(arch))
    ov_runner = make_runner(model, _names(arch), backend="openvino", precision="fp32", cache=cache)
    shape = ov_runner.compiled.inputs[0].get_partial_shape()
    assert shape[1] == 3 and all(shape[i].is_dynamic for i in (0, 2, 3))  # batch, height, width
    # OpenVINO would pick bf16 by itself on a CPU that has it: fp32 must say f32.
    assert ov_runner.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
    assert ov_runner.threads == torch.get_num_threads()
    for batch, h, w in SIZES[arch]:
        x = _inputs(batch, h, w)
        expected = torch_runner(torch_runner.to_device(x))
        assert 0.2 < max(float(np.abs(v).max()) for v in expected.values()) < 5  # maps of unit scale
        assert _max_diff(ov_runner(ov_runner.to_device(x)), expected) < 1e-3


@pytest.mark.slow
def test_openvino_fp32_maps_of_a_trained_quickstart_size_network_equal_torch_fp32(cache):
    # The quickstart's network (configs/vgg19_synthetic_cpu.yaml), trained for a few steps on
    # generated scenes so that its maps are a trained network's (peaks, a background channel near 1,
    # PAFs along limbs) rather than random weights' noise.
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "vgg19_synthetic_cpu.yaml")
    torch.manual_seed(0)
    model = build_model(cfg.model)
    codec = build_bottomup_codec(cfg, skeleton=model.skeleton)
    rng = np.random.default_rng(0)
    scenes = [render_scene(rng, SceneConfig(image_hw=(96, 96), people_range=(1, 2))) for _ in range(4)]
    images = torch.from_numpy(np.stack([sc.image for sc in scenes])).permute(0, 3, 1, 2).float() / 255 - 0.5
    targets = [codec.encode(sc.keypoints, (96, 96))[0] for sc in scenes]
    wanted = {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in BOTTOMUP}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(40):
        outputs = model(images)
        loss = sum(((out[k] - wanted[k]) ** 2).mean() for out in outputs for k in BOTTOMUP)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    assert losses[-1] < 0.5 * losses[0]  # it learned something
    x = images[:2]
    expected = make_runner(model, BOTTOMUP)(x)
    assert float(expected["heatmaps"][:, -1].mean()) > 0.5  # the background channel of a trained network
    on_openvino = make_runner(model, BOTTOMUP, backend="openvino", precision="fp32", cache=cache)(x)
    assert _max_diff(on_openvino, expected) < 1e-3


def test_second_construction_reads_the_cache_and_other_weights_convert_again(networks, cache, monkeypatch):
    model = networks["vgg19"]
    first = make_runner(model, BOTTOMUP, backend="openvino", cache=cache)
    calls = []
    real_convert = openvino.convert_model

    def counting(*args, **kwargs):
        calls.append(1)
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(openvino, "convert_model", counting)
    second = make_runner(model, BOTTOMUP, backend="openvino", cache=cache)
    assert calls == []
    x = _inputs(1, 64, 64)
    assert _max_diff(first(x), second(x)) == 0.0
    entries = list(cache.iterdir())
    assert entries and all((p / "model.xml").is_file() and (p / "model.bin").is_file() for p in entries)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folder left behind

    changed = _network("vgg19")
    with torch.no_grad():
        changed.stages[-1].heatmaps[-1].bias.add_(0.5)
    other = make_runner(changed, BOTTOMUP, backend="openvino", cache=cache)
    assert calls == [1]
    assert _max_diff(other(x), make_runner(changed, BOTTOMUP)(x)) < 1e-3


def test_bottomup_predictor_on_openvino_gives_the_torch_predictors_maps(networks, cache):
    model = networks["mobilenet"]
    codec = build_bottomup_codec(skeleton=model.skeleton)
    image = (np.random.default_rng(0).random((70, 100, 3)) * 255).astype(np.uint8)
    on_torch = BottomUpPredictor(model, codec, input_size=64, flip=True).predict_maps([image])[0]
    on_openvino = BottomUpPredictor(model, codec, input_size=64, flip=True, backend="openvino")
    assert on_openvino.runner.precision == "fp32" and on_openvino.device == torch.device("cpu")
    maps = on_openvino.predict_maps([image])[0]
    assert _max_diff({k: maps[k] for k in BOTTOMUP}, {k: on_torch[k] for k in BOTTOMUP}) < 1e-3


def test_topdown_predictor_on_openvino_gives_the_torch_predictors_heatmaps(networks, cache):
    model = networks["hrnet"]
    cfg = Config()
    codec = build_topdown_codec(cfg)
    crops = _inputs(2, 256, 192, seed=1)
    on_torch = TopDownPredictor(model, codec, flip=True).heatmaps(crops)
    on_openvino = TopDownPredictor(model, codec, flip=True, backend="openvino").heatmaps(crops)
    assert on_openvino.shape == (2, COCO_17.num_keypoints, 64, 48)
    assert float(np.abs(on_openvino - on_torch).max()) < 1e-3


@pytest.mark.skipif("bf16" not in openvino_native_precisions(), reason="this CPU does not compute bf16 natively")
def test_bf16_runs_the_cpus_native_bfloat16_close_to_fp32(networks, cache):
    model = networks["mobilenet"]
    runner = make_runner(model, BOTTOMUP, backend="openvino", precision="bf16", cache=cache)
    assert runner.precision == "bf16"
    assert runner.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16
    x = _inputs(1, 64, 96)
    diff = _max_diff(runner(x), make_runner(model, BOTTOMUP)(x))
    assert 0 < diff < 0.02  # bf16 keeps 8 bits of mantissa: measured 0.007 on these unit-scale maps


def test_bf16_is_refused_on_a_cpu_without_native_bfloat16(networks, cache, monkeypatch):
    monkeypatch.setattr(openvino_runner, "openvino_native_precisions", lambda: {"fp32", "int8"})
    with pytest.raises(ValueError, match="does not compute bfloat16 natively"):
        make_runner(networks["vgg19"], BOTTOMUP, backend="openvino", precision="bf16", cache=cache)
    assert resolve_openvino_precision("auto", None) == "fp32"


@pytest.mark.parametrize("native, vnni, calibrated, expected", [
    ({"fp32", "bf16", "int8"}, True, True, "int8"),
    ({"fp32", "bf16", "int8"}, False, True, "bf16"),
    ({"fp32", "bf16", "int8"}, True, False, "bf16"),
    ({"fp32", "int8"}, True, False, "fp32"),
    ({"fp32", "int8"}, False, True, "fp32"),
])
def test_auto_is_int8_only_with_calibration_and_vnni_else_native_bf16_else_fp32(native, vnni, calibrated, expected,
                                                                                 monkeypatch):
    monkeypatch.setattr(openvino_runner, "openvino_native_precisions", lambda: native)
    monkeypatch.setattr(devices, "cpu_computes_int8", lambda: vnni)
    calibration = Calibration((np.zeros((8, 8, 3), np.uint8),), lambda im: np.zeros((1, 3, 8, 8), np.float32), "t")
    assert resolve_openvino_precision("auto", calibration if calibrated else None) == expected


def test_precisions_and_options_that_cannot_run_are_refused_by_name(networks):
    model = networks["vgg19"]
    with pytest.raises(ValueError, match="int8 needs a calibration set"):
        resolve_openvino_precision("int8", None)
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_openvino_precision("fp16", None)
    with pytest.raises(ValueError, match="backend openvino"):
        make_runner(model, BOTTOMUP, precision="int8")
    with pytest.raises(ValueError, match="runs on the CPU"):
        make_runner(model, BOTTOMUP, device="cuda", backend="openvino")
    with pytest.raises(ValueError, match="backend: expected one of"):
        make_runner(model, BOTTOMUP, backend="tensorrt")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Six generated scenes to calibrate on."""
    out = tmp_path_factory.mktemp("calibration")
    write_dataset(out, 6, seed=3, cfg=SceneConfig(image_hw=(80, 112)))
    return out / "images"


def test_an_unknown_input_norm_is_refused_by_name_before_any_conversion(networks, cache, scenes, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted before the options were checked")

    monkeypatch.setattr(openvino, "convert_model", no_conversion)
    options = {"input_norm": "bgr_0_1", "backend": "openvino", "precision": "int8", "calibration": scenes}
    with pytest.raises(ValueError, match="input_norm: expected one of cmu, imagenet_rgb, imagenet_bgr, got 'bgr_0_1'"):
        BottomUpPredictor(networks["vgg19"], build_bottomup_codec(skeleton=networks["vgg19"].skeleton), **options)
    with pytest.raises(ValueError, match="input_norm: expected one of"):
        TopDownPredictor(networks["hrnet"], build_topdown_codec(Config()), **options)


def test_int8_calibrated_on_generated_scenes_is_close_to_fp32_and_cached(networks, cache, scenes, monkeypatch):
    import_optional("nncf")
    model = networks["mobilenet"]
    codec = build_bottomup_codec(skeleton=model.skeleton)
    predictor = BottomUpPredictor(model, codec, input_size=64, backend="openvino", precision="int8", calibration=scenes)
    runner = predictor.runner
    assert runner.precision == "int8"
    runtime = runner.compiled.get_runtime_model()
    precisions = {info["runtimePrecision"].astype(str) for info in (op.get_rt_info() for op in runtime.get_ops())
                  if "layerType" in info and info["layerType"].astype(str) == "Convolution"}
    assert precisions & {"i8", "u8"}, precisions  # convolutions really run in int8
    x = _inputs(1, 64, 96)
    got, expected = runner(x), make_runner(model, BOTTOMUP)(x)
    # The default overflow fix (first_layer_only), measured on these unit-scale maps: largest difference
    # 0.0276 with VNNI (AVX-512 VNNI, Zen 4), 0.0644 on the same CPU with oneDNN capped to AVX2
    # (ONEDNN_MAX_CPU_ISA=AVX2: jit_avx2 int8 kernels, whose vpmaddubsw saturates on a few values) and
    # 0.0643 on a real AVX2-only CPU; mean difference 0.0052 with VNNI, 0.0056 capped to AVX2.
    assert 0 < _max_diff(got, expected) < 0.09
    assert float(np.mean([np.abs(got[k] - expected[k]).mean() for k in BOTTOMUP])) < 0.008

    import nncf

    def refuse(*args, **kwargs):
        raise AssertionError("quantised again although the calibrated model is cached")

    monkeypatch.setattr(nncf, "quantize", refuse)
    again = BottomUpPredictor(model, codec, input_size=64, backend="openvino", precision="int8", calibration=scenes)
    assert _max_diff(again.runner(x), runner(x)) == 0.0


def test_a_cached_int8_model_starts_from_its_own_entry_alone(networks, cache, scenes, monkeypatch):
    """With the int8 entry cached, a start reads that one IR: the fp32 model it was quantised from is
    neither converted nor read."""
    import_optional("nncf")
    model = networks["mobilenet"]
    codec = build_bottomup_codec(skeleton=model.skeleton)
    options = {"input_size": 64, "backend": "openvino", "precision": "int8", "calibration": scenes}
    first = BottomUpPredictor(model, codec, **options)  # quantises, or reads what an earlier test cached
    read: list[str] = []
    core = openvino_model.openvino_core()

    class CountingCore:
        def read_model(self, path, *args, **kwargs):
            read.append(str(path))
            return core.read_model(path, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("converted again although the int8 model is cached")

    monkeypatch.setattr(openvino_model, "openvino_core", CountingCore)
    monkeypatch.setattr(openvino, "convert_model", refuse)
    again = BottomUpPredictor(model, codec, **options)
    assert len(read) == 1, read
    assert _max_diff(again.runner(_inputs(1, 64, 96)), first.runner(_inputs(1, 64, 96))) == 0.0


def _convolution_weights(ov_model) -> list[np.ndarray]:
    """The int8 weights of every ordinary (not grouped) convolution of a quantised model, in graph order."""
    weights = []
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() == "Convolution":
            node = op.input_value(1).get_node()
            while node.get_type_name() != "Constant":  # Multiply (scale) <- Convert <- the int8 constant
                node = node.input_value(0).get_node()
            assert node.get_output_element_type(0) == openvino.Type.i8
            weights.append(node.get_data())
    return weights


# Reads an IR, runs it on x.npy, saves the maps and prints the convolutions' kernels (oneDNN's names);
# run in a child process, as oneDNN reads ONEDNN_MAX_CPU_ISA once, when it loads.
RUN_IR = """
import json, sys, numpy as np, openvino as ov
compiled = ov.Core().compile_model(sys.argv[1], "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
result = compiled.create_infer_request().infer({0: np.load(sys.argv[2])})
np.savez(sys.argv[3], **{sorted(o.get_names())[0]: np.asarray(result[o]) for o in compiled.outputs})
print(json.dumps(sorted({op.get_rt_info()["primitiveType"].astype(str) for op in compiled.get_runtime_model().get_ops()
                         if op.get_rt_info()["layerType"].astype(str) == "Convolution"})))
"""


def _maps_on_avx2(xml: Path, x: np.ndarray, folder: Path) -> dict[str, np.ndarray]:
    """The maps of the IR ``xml`` on ``x`` with oneDNN capped to AVX2 (a child process); its convolutions must
    run oneDNN's AVX2 int8 kernels (on a VNNI CPU they are brgconv_avx512_*_I8 without the cap)."""
    np.save(folder / "x.npy", x)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", RUN_IR, str(xml), str(folder / "x.npy"), str(folder / "maps.npz")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    kernels = json.loads(done.stdout.strip().splitlines()[-1])
    assert kernels and all("avx2" in k and k.endswith("_I8") for k in kernels), kernels  # the cap took effect
    return dict(np.load(folder / "maps.npz"))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN's x86 ISA cap")
def test_overflow_fix_enable_gives_the_same_int8_maps_without_vnni_as_with_it(networks, cache, scenes, tmp_path):
    """AVX2 (and AVX-512 without VNNI) multiply int8 with vpmaddubsw, whose u8 x s8 pair sums saturate at 16 bits:
    2 x 255 x 127 > 32767. Every ordinary convolution's weights in half the range (|w| <= 64: 2 x 255 x 64 =
    32640) cannot saturate, so the AVX2 kernels compute what the VNNI ones do."""
    import_optional("nncf")
    model = networks["mobilenet"]
    x = _inputs(1, 64, 96).numpy()
    maps = {}
    for fix in ("enable", "first_layer_only"):
        calibration = bottomup_calibration(scenes, 64, model.stride, overflow_fix=fix)
        runner = make_runner(model, BOTTOMUP, backend="openvino", precision="int8", calibration=calibration,
                             cache=cache)
        ov_model, xml = openvino_model.openvino_model(model, BOTTOMUP, True, calibration, cache)  # the cached IR
        (tmp_path / fix).mkdir()
        maps[fix] = runner(x), _maps_on_avx2(xml, x, tmp_path / fix)
        if fix == "enable":
            weights = _convolution_weights(ov_model)
            assert len(weights) == 43 and max(int(np.abs(w).max()) for w in weights) <= 64  # first_layer_only: 127
    assert _max_diff(*maps["enable"]) < 1e-5  # measured 0.0: bit for bit
    # With VNNI here (devices reads a oneDNN cap on this run too) and without it in the child, the default's maps differ.
    if devices.cpu_computes_int8():
        assert _max_diff(*maps["first_layer_only"]) > 0.01  # measured 0.051


def test_overflow_fix_is_part_of_the_cache_key_and_reaches_nncf(networks, cache, scenes, monkeypatch):
    nncf = import_optional("nncf")
    model = networks["mobilenet"]
    calls = []
    real = nncf.quantize
    monkeypatch.setattr(nncf, "quantize", lambda *a, **k: calls.append(k["advanced_parameters"].overflow_fix)
                        or real(*a, **k))
    fixes = {}
    for fix in (None, "disable", "disable"):
        calibration = bottomup_calibration(scenes, 64, model.stride, **({"overflow_fix": fix} if fix else {}))
        fixes[fix] = _convolution_weights(openvino_model.openvino_model(model, BOTTOMUP, True, calibration, cache)[0])
    # The default is read from the cache when an earlier test quantised it; another setting quantises, once.
    assert calls[-1:] == [nncf.OverflowFix.DISABLE] and calls.count(nncf.OverflowFix.DISABLE) == 1
    assert calls[:-1] in ([], [nncf.OverflowFix.FIRST_LAYER])
    half = [int(np.abs(w).max()) <= 64 for w in fixes[None]]
    assert half[0] and not any(half[1:])  # the default, NNCF's: half range on the first convolution only
    assert not any(int(np.abs(w).max()) <= 64 for w in fixes["disable"])
    assert OVERFLOW_FIXES == ("enable", "first_layer_only", "disable")
    with pytest.raises(ValueError, match="calibration overflow_fix: expected one of enable, first_layer_only, "
                                         "disable, got 'on'"):
        bottomup_calibration(scenes, 64, model.stride, overflow_fix="on")


@pytest.mark.parametrize("fix, level", [("enable", "INFO"), ("first_layer_only", "INFO"), ("disable", "WARNING")])
def test_int8_without_vnni_warns_when_the_overflow_fix_is_disabled(fix, level, monkeypatch, caplog):
    monkeypatch.setattr(devices, "cpu_computes_int8", lambda: False)
    calibration = Calibration((np.zeros((8, 8, 3), np.uint8),), lambda im: np.zeros((1, 3, 8, 8), np.float32), "t",
                              overflow_fix=fix)
    with caplog.at_level("INFO", logger=openvino_runner.__name__):
        assert resolve_openvino_precision("int8", calibration) == "int8"
    [record] = [r for r in caplog.records if "without VNNI/AMX" in r.getMessage()]
    assert record.levelname == level and ("overflow fix disable" in record.getMessage()) == (fix == "disable")


def test_calibration_folder_without_readable_images_is_an_error_naming_it(tmp_path, networks, cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"{empty}.*holds no images"):
        bottomup_calibration(empty, 64, 8)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    calibration = bottomup_calibration(broken, 64, 8)
    with pytest.raises(ValueError, match=f"{broken}: no usable image"):
        make_runner(networks["vgg19"], BOTTOMUP, backend="openvino", precision="int8", calibration=calibration,
                    cache=cache)


def test_ir_export_then_import_gives_the_same_maps_and_stored_config(tmp_path, networks, cache):
    model = networks["vgg19"]
    config = config_to_dict(Config())
    path = export_ir(model, tmp_path / "model.xml", BOTTOMUP, config, cache=cache)
    assert path.with_suffix(".bin").is_file()
    ir = read_ir(path)
    assert ir.config == config and not ir.foreign
    assert ir.skeleton == model.skeleton and ir.stride == model.stride and ir.names == BOTTOMUP
    assert ir.precision == "fp32" and ir.arch == "vgg19_paf"
    runner = make_runner(ir, BOTTOMUP, backend="openvino")
    x = _inputs(2, 72, 56)
    assert _max_diff(runner(x), make_runner(model, BOTTOMUP, backend="openvino", cache=cache)(x)) == 0.0
    assert _max_diff(runner(x), make_runner(model, BOTTOMUP)(x)) < 1e-3
    with pytest.raises(ValueError, match="backend openvino"):
        make_runner(ir, BOTTOMUP)


def test_foreign_ir_reads_without_config_and_its_outputs_are_named_as_missing(tmp_path):
    ops = openvino.opset13
    images = ops.parameter([-1, 3, -1, -1], openvino.Type.f32, name="x")
    weights = ops.constant(np.ones((2, 3, 1, 1), np.float32))
    model = openvino.Model([ops.convolution(images, weights, [1, 1], [0, 0], [0, 0], [1, 1])], [images])
    openvino.save_model(model, str(tmp_path / "other.xml"))
    ir = read_ir(tmp_path / "other.xml")
    assert ir.foreign and ir.config is None and ir.skeleton is None
    with pytest.raises(ValueError, match="another tool"):
        make_runner(ir, BOTTOMUP, backend="openvino")
    with pytest.raises(ValueError, match="not found"):
        read_ir(tmp_path / "missing.xml")


def test_missing_openvino_is_an_error_naming_the_extra(networks, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install 'openpose-lite\[openvino\]'") as info:
        make_runner(networks["vgg19"], BOTTOMUP, backend="openvino", cache=False)
    assert isinstance(info.value, ValueError)
    assert openvino_model.EXTRA_INSTALL in str(info.value)


def _bench_openvino():
    """benchmarks/bench_openvino.py as a module."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_openvino.py"
    spec = importlib.util.spec_from_file_location("benchmarks_bench_openvino", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_openvino_runs_on_tiny_networks_and_prints_every_row(capsys):
    import_optional("nncf")
    module = _bench_openvino()
    threads, cache = torch.get_num_threads(), os.environ.get("OPENPOSE_LITE_CACHE")
    try:
        code = module.main(["--small", "--archs", "mobilenet_paf", "--precisions", "fp32", "int8", "--size", "64", "96",
                            "--input-size", "64", "--people", "2", "--repeats", "1", "--calibration-images", "2",
                            "--folder", "2", "--folder-batch", "2", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0 and os.environ.get("OPENPOSE_LITE_CACHE") == cache  # its temporary cache is forgotten
    out = capsys.readouterr().out
    assert "mobilenet_paf torch int8: skipped, precision int8: quantised models run with backend openvino" in out
    number = r"[0-9.]+"
    for backend, precision in (("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8")):
        assert re.search(rf"\| mobilenet_paf \| {backend} \| {precision} \| {number} \| {number}x \| {number} \| "
                         rf"{number}x \| {number} \|", out), out
    for batch, hint in (("1", "latency"), ("2", "latency"), ("2", "throughput")):
        assert re.search(rf"\| mobilenet_paf \| openvino \| int8 \| {batch} \| {hint} \| {number} \| {number}x \|", out), out


# ------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny bottom-up checkpoint and three generated scenes (the CLI tests' inputs)."""
    from conftest import write_tiny_checkpoint

    folder = tmp_path_factory.mktemp("ov_cli")
    ann = write_dataset(folder / "scenes", 3, seed=2, cfg=SceneConfig(image_hw=(96, 128)))
    return write_tiny_checkpoint(folder / "tiny.pt"), ann


def test_a_second_infer_on_the_same_weights_starts_without_converting_again(tiny, cache, tmp_path, monkeypatch):
    from openpose_lite.cli import main

    checkpoint, ann = tiny
    calls = []
    real = openvino_model.convert
    monkeypatch.setattr(openvino_model, "convert", lambda *a, **k: calls.append(1) or real(*a, **k))
    args = ["infer", str(ann.parent / "images"), "--checkpoint", str(checkpoint), "--backend", "openvino",
            "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "first")]) == 0 and len(calls) == 1
    assert main([*args, "-o", str(tmp_path / "second")]) == 0 and len(calls) == 1  # read from the cache
    for name in ("000001_keypoints.json", "results_coco.json"):
        assert (tmp_path / "first" / name).read_text() == (tmp_path / "second" / name).read_text()


def test_threads_sets_the_openvino_runtimes_threads_as_torchs(tiny, cache, tmp_path, monkeypatch):
    """``--threads`` means one thing whatever the runtime: the OpenVINO network compiles with that many threads."""
    from openpose_lite.cli import main

    checkpoint, ann = tiny
    seen = []
    init = openvino_runner.OpenVinoRunner.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append((self.threads, int(self.compiled.get_property("INFERENCE_NUM_THREADS"))))

    monkeypatch.setattr(openvino_runner.OpenVinoRunner, "__init__", recording)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["infer", str(ann.parent / "images" / "000001.jpg"), "--checkpoint", str(checkpoint), "--backend",
                     "openvino", "--threads", "1", "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert seen == [(1, 1)]


def test_export_writes_an_ir_with_its_config_that_infer_and_eval_run_as_weights(tiny, cache, tmp_path, capsys):
    from openpose_lite.cli import main

    checkpoint, ann = tiny
    xml = tmp_path / "tiny.xml"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "openvino", "-o", str(xml)]) == 0
    ir = read_ir(xml)
    assert ir.arch == "vgg19_paf" and ir.config["codec"]["input_size"] == 128 and ir.skeleton.name == "openpose18"
    images = ann.parent / "images"
    assert main(["infer", str(images), "--weights", str(xml), "-o", str(tmp_path / "ir"), "--no-progress"]) == 0
    assert main(["infer", str(images), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "pt"),
                 "--no-progress"]) == 0
    # The IR's people are the torch model's (fp32 maps within 1e-6: the same keypoints to a few 1e-5 px; the
    # tiny noise model's near-tied scores may order them differently).
    import json

    def people(folder: str) -> np.ndarray:
        rows = [[r["image_id"], *r["keypoints"]] for r in json.loads((tmp_path / folder / "results_coco.json").read_text())]
        return np.array(sorted(rows, key=lambda row: [round(v, 1) for v in row]))

    ours, theirs = people("ir"), people("pt")
    assert ours.shape == theirs.shape and len(ours) > 0
    assert np.abs(ours - theirs).max() < 1e-2
    capsys.readouterr()
    assert main(["eval", "--weights", str(xml), "--ann", str(ann), "--images", str(images)]) == 0
    assert "fp32, openvino" in capsys.readouterr().out


def _one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_extra_bf16_without_native_support_and_a_calibration_folder_of_no_images_exit_2(
        tiny, cache, tmp_path, monkeypatch, capsys):
    from openpose_lite.cli import main

    checkpoint, ann = tiny
    base = ["infer", str(ann.parent / "images"), "--checkpoint", str(checkpoint), "--backend", "openvino",
            "-o", str(tmp_path / "out")]
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "openvino", None)
        assert main(base) == 2
        assert "pip install 'openpose-lite[openvino]'" in _one_error(capsys)
    with monkeypatch.context() as m:
        m.setattr(openvino_runner, "openvino_native_precisions", lambda: {"fp32", "int8"})
        assert main([*base, "--precision", "bf16"]) == 2
        assert "--precision: precision bf16: this CPU does not compute bfloat16 natively" in _one_error(capsys)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not an image")
    for vnni in (True, False):  # without VNNI (an AVX2-only CPU) the options are checked the same way
        with monkeypatch.context() as m:
            m.setattr(devices, "cpu_computes_int8", lambda: vnni)
            assert main([*base, "--precision", "int8", "--calibration", str(broken)]) == 2
            assert str(broken) in _one_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bench_openvino_accuracy_prints_a_row_per_overflow_fix_with_its_kernels(tiny, capsys):
    import_optional("nncf")
    checkpoint, ann = tiny
    threads = torch.get_num_threads()
    try:
        code = _bench_openvino().main(["--accuracy", str(checkpoint), "--ann", str(ann), "--images",
                                       str(ann.parent / "images"), "--calibration", str(ann.parent / "images"),
                                       "--map-images", "2", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    out = capsys.readouterr().out
    number = r"[-+]?[0-9.]+"
    cells = " \\| ".join([number] * 7)  # AP, its difference, AP50, AP75, AR, largest and mean map difference
    # torch fp32 is the reference: no difference from itself.
    assert re.search(rf"\| torch \| fp32 \| - \| {number} \| \+0\.000 \| {number} \| {number} \| {number} \| "
                     rf"0\.0000 \| 0\.00000 \|", out), out
    for fix in ("enable", "first_layer_only \\(default\\)", "disable"):
        assert re.search(rf"\| openvino \| int8 \| {fix} \| {cells} \|", out), out
    assert re.search(r"- int8 convolution kernels \(enable, first_layer_only, disable\): .*_I8", out), out


# ------------------------------------------------------------------ a damaged or unwritable cache
def _people(folder: Path) -> list:
    return json.loads((folder / "results_coco.json").read_text())


def test_a_cache_entry_damaged_on_disk_is_rebuilt_not_used(tiny, tmp_path, monkeypatch, caplog):
    """A zeroed model.bin of the same size (OpenVINO reads it: no people at all) and an entry without its
    manifest are both removed and converted again, the run's people those of an undamaged cache."""
    from openpose_lite.cli import main

    monkeypatch.setenv("OPENPOSE_LITE_CACHE", str(tmp_path / "cache"))
    checkpoint, ann = tiny
    args = ["infer", str(ann.parent / "images"), "--checkpoint", str(checkpoint), "--backend", "openvino",
            "--no-progress", "-o"]
    assert main([*args, str(tmp_path / "clean")]) == 0
    expected = _people(tmp_path / "clean")
    assert expected
    (entry,) = (tmp_path / "cache" / "openvino").iterdir()
    calls = []
    real = openvino_model.convert
    monkeypatch.setattr(openvino_model, "convert", lambda *a, **k: calls.append(1) or real(*a, **k))
    for damage, run in (("zeroed bin", "zeroed"), ("no manifest", "unlisted")):
        if damage == "zeroed bin":
            binary = entry / "model.bin"
            binary.write_bytes(bytes(binary.stat().st_size))
        else:
            (entry / "manifest.json").unlink()
        caplog.clear()
        assert main([*args, str(tmp_path / run)]) == 0
        assert _people(tmp_path / run) == expected, damage
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and f"cache entry {entry} is damaged or stale" in warned[0], warned
        assert ("model.bin not as written" if damage == "zeroed bin" else "no manifest.json") in warned[0]
    assert len(calls) == 2  # converted again each time, and the rebuilt entry is whole: read, not converted
    assert main([*args, str(tmp_path / "again")]) == 0 and len(calls) == 2
    assert _people(tmp_path / "again") == expected


@pytest.mark.parametrize("error", [
    RuntimeError("Exception from src/core/src/pass/serialize.cpp:1406:\nbasic_ios::clear: iostream error\n"),
    OSError(28, "No space left on device"),
], ids=["openvino_iostream", "oserror_enospc"])
def test_a_cache_that_cannot_be_written_costs_one_warning_and_runs_from_memory(networks, tmp_path, monkeypatch,
                                                                                 caplog, error):
    """A full disk (OpenVINO's save_model fails with a C++ iostream RuntimeError) ends neither the run nor in a
    traceback: one warning line, the maps of the model in memory, nothing left in the cache folder."""
    model = networks["vgg19"]

    def full_disk(ov_model, path, **kwargs):
        Path(path).write_bytes(b"<?xml")  # a partial file, as a full disk leaves it
        raise error

    monkeypatch.setattr(openvino, "save_model", full_disk)
    cache = tmp_path / "cache"
    with caplog.at_level("WARNING"):
        ov_model, xml = openvino_model.openvino_model(model, BOTTOMUP, cache=cache)
    assert xml is None
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "\n" not in warned[0], warned
    reason = "basic_ios::clear: iostream error" if isinstance(error, RuntimeError) else "No space left on device"
    assert warned[0] == f"OpenVINO cache {cache} not writable ({reason}); running without caching"
    assert list(cache.iterdir()) == []  # the temporary folder is gone
    runner = make_runner(model, BOTTOMUP, backend="openvino", cache=cache)
    x = _inputs(1, 64, 64)
    assert _max_diff(runner(x), make_runner(model, BOTTOMUP)(x)) < 1e-3


def test_a_calibration_folder_of_only_a_decompression_bomb_is_refused_naming_the_folder_and_why(tiny, cache, tmp_path,
                                                                                                capsys):
    from test_hostile_inputs import png_bomb

    from openpose_lite.cli import main

    checkpoint, ann = tiny
    folder = tmp_path / "calibration"
    folder.mkdir()
    png_bomb(folder / "bomb.png", 32000, 32000)
    out = tmp_path / "out"
    assert main(["infer", str(ann.parent / "images"), "--checkpoint", str(checkpoint), "--backend", "openvino",
                 "--precision", "int8", "--calibration", str(folder), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"openpose-lite infer: error: --calibration: calibration folder {folder}: no usable "
                               "image to calibrate int8 on (1 skipped, the first because"), lines[0]
    assert "bomb.png is 32000x32000 = 1024000000 pixels, above the limit" in lines[0]
    assert "cannot load" not in lines[0] and str(checkpoint) not in lines[0]
    assert not out.exists()


# Two OpenVINO networks made and released in that order, then a signal that Python handles: OpenVINO's CPU
# plugin gives the creating thread an alternate signal stack and unmaps it when the plugin goes, so with a
# plugin per network the main thread is left with an unmapped signal stack and the signal ends in SIGSEGV.
RELEASE_THEN_SIGNAL = """
import gc, os, signal, sys, time
from openpose_lite.inference.network import make_runner
from openpose_lite.models.cmu_caffe import build_cpm
runners = [make_runner(build_cpm(k, num_stages=2, width_scale=0.125).eval(), ["heatmaps"], "cpu", backend="openvino")
           for k in (21, 70)]
del runners[0]
gc.collect()
del runners[0]
gc.collect()
handled = []
signal.signal(signal.SIGTERM, lambda *args: handled.append(args[0]))
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
print("handled", handled)
"""


def test_a_signal_after_openvino_networks_are_released_is_handled_not_a_crash(tmp_path):
    import_optional("openvino")
    env = {**os.environ, "OPENPOSE_LITE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", RELEASE_THEN_SIGNAL], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert f"handled [{int(signal.SIGTERM)}]" in done.stdout
