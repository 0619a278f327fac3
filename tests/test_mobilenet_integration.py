"""Lightweight OpenPose through the rest of the project: load_model, the predictor, infer, eval, export, training.

Weight files are built in the reference's layouts from the independent description of the
network in tests/test_mobilenet_paf.py (Daniil-Osokin/lightweight-human-pose-estimation.pytorch:
``models/with_mobilenet.py``; its training checkpoints are ``{"state_dict", "optimizer", "iter",
...}``, train.py), with random tensors, and must give the reference forward's maps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import import_optional
from test_mobilenet_paf import (
    imagenet_entries,
    random_state,
    reference_entries,
    reference_forward,
    reference_network,
)

from openpose_lite.cli import main
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.inference import BottomUpPredictor
from openpose_lite.models import load_model, read_weights
from openpose_lite.factory import ModelConfig, build_model
from openpose_lite.models.mobilenet_paf import MobileNetPafNet
from openpose_lite.network_settings import MobileNetPafSettings, PafSettings
from openpose_lite.models.weights import detect_layout, load_backbone, unwrap_weights


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory) -> tuple[Path, dict]:
    """A reference-layout training checkpoint (iter 370000 style), random weights, the published sizes:
    three refinement stages, as the published file holds (the reference's README, training step 5,
    and its issue #203), of which the reference runs the first (val.py, demo.py:
    ``PoseEstimationWithMobileNet()``, whose default is one refinement stage)."""
    net = reference_network(num_refinement_stages=3)
    state = random_state(reference_entries(net), seed=3)
    path = tmp_path_factory.mktemp("lw") / "checkpoint_iter_370000.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "optimizer": {}, "iter": 370000}, path)
    return path, (net, state)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lw_scenes")
    write_dataset(out, 2, seed=4, cfg=SceneConfig(image_hw=(96, 128)))
    return out


def test_load_model_reads_the_reference_checkpoint_and_computes_the_reference_forward(reference_file):
    path, (net, state) = reference_file
    loaded = read_weights(path)
    model = loaded.model
    # Run as the reference runs it: one refinement stage, so the maps decoded are the second stage's.
    assert isinstance(model, MobileNetPafNet) and not loaded.ours and model.num_refinement_stages == 1
    assert loaded.layout.name == "lightweight" and loaded.config.model.settings.num_stages == 2
    images = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(images)
        expected = reference_forward(net, state, images)[:2]
    assert len(ours) == len(expected) == 2
    for stage, (heatmaps, pafs) in zip(ours, expected):
        torch.testing.assert_close(stage["heatmaps"], heatmaps, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stage["pafs"], pafs, atol=1e-5, rtol=1e-5)


def test_the_predictor_runs_a_reference_file_with_the_shared_codec(reference_file):
    predictor = BottomUpPredictor.from_weights(reference_file[0], device="cpu", input_size=64)
    assert predictor.codec.stride == 8 and predictor.codec.skeleton.num_heatmaps == 19
    poses = predictor(np.full((64, 96, 3), 128, np.uint8))
    assert poses.keypoints.shape[1:] == (18, 3)


def test_infer_and_eval_accept_a_reference_layout_file_as_weights(reference_file, scenes, tmp_path, capsys):
    path = reference_file[0]
    out = tmp_path / "out"
    assert main(["infer", str(scenes / "images"), "--weights", str(path), "-o", str(out), "--input-size", "64",
                 "--no-progress"]) == 0
    assert len(list(out.glob("*_keypoints.json"))) == 2
    assert main(["eval", "--weights", str(path), "--ann", str(scenes / "annotations.json"),
                 "--images", str(scenes / "images"), "--input-size", "64"]) == 0
    assert "| AP |" in capsys.readouterr().out


def test_onnx_export_matches_pytorch_with_onnxruntime(reference_file, tmp_path):
    ort = import_optional("onnxruntime")
    import_optional("onnx")
    onnx_path = tmp_path / "lw.onnx"
    assert main(["export", "--weights", str(reference_file[0]), "--format", "onnx", "-o", str(onnx_path),
                 "--input-hw", "64", "64"]) == 0
    model = load_model(reference_file[0])
    images = torch.randn(1, 3, 96, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        last = model(images)[-1]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"images": images.numpy()})))
    for name in ("heatmaps", "pafs"):
        np.testing.assert_allclose(outputs[name], last[name].numpy(), atol=1e-4, rtol=1e-4)


def test_imagenet_mobilenet_initialises_the_trunk_through_backbone_weights(tmp_path):
    state = random_state(imagenet_entries(with_counters=True), seed=5)  # keys as the file has them: module.model.*
    path = tmp_path / "mobilenet_sgd_68.848.pth.tar"
    torch.save({"state_dict": state, "epoch": 150, "best_prec1": 68.848}, path)
    with pytest.raises(ValueError, match="ImageNet classification network.*MobileNetV1.*model.arch mobilenet_paf"):
        detect_layout(unwrap_weights({"state_dict": state}, str(path))[0])
    model = build_model(ModelConfig(arch="mobilenet_paf"))
    assert load_backbone(model, path) == f"ImageNet MobileNetV1 from {path}"
    trunk = model.model.state_dict()
    assert torch.equal(trunk["0.0.weight"], state["module.model.0.0.weight"])
    with pytest.raises(ValueError, match="ImageNet classification network"):
        load_model(path)


def test_training_runs_the_mobilenet_arch_through_the_bottomup_branch(scenes, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--output-dir", str(out), "--no-progress", "--held-out-images", "0",
            "model.arch=mobilenet_paf", "model.num_stages=2", "model.stage_channels=16", "model.width_mult=0.25",
            f"data.train_ann={scenes / 'annotations.json'}", f"data.train_images={scenes / 'images'}",
            "data.val_ann=null", "data.val_images=null", "data.num_workers=0", "data.crop_size=64",
            "train.batch_size=2", "train.epochs=1", "train.optimizer=adam", "train.lr=1e-3", "train.device=cpu",
            "train.amp=false", "train.freeze_trunk_epochs=0", "codec.input_size=64", "train.eval_every=0"]
    assert main(args) == 0
    loaded = read_weights(out / "last.pt")
    assert isinstance(loaded.model, MobileNetPafNet) and loaded.ours and loaded.config.model.arch == "mobilenet_paf"
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["type"] == "run_start"


# ------------------------------------------------------------------ starting a run from weights
def test_init_weights_copies_every_stage_the_file_holds_and_starts_the_others_afresh(reference_file):
    from openpose_lite.models.weights import init_from_weights

    path, (net, state) = reference_file  # three refinement stages
    torch.manual_seed(1)
    grown = build_model(ModelConfig(arch="mobilenet_paf", settings=MobileNetPafSettings(num_stages=5)))  # the reference's step 3 and one more
    before = {k: v.clone() for k, v in grown.state_dict().items()}
    text = init_from_weights(grown, path)
    after = grown.state_dict()
    for key, value in after.items():
        if key.startswith("refinement_stages.3."):
            assert torch.equal(value, before[key]), key  # a stage the file lacks keeps its initialisation
        else:
            assert torch.equal(value, state[key]), key  # the rest is the file's, all three refinement stages too
    assert "start afresh" in text and "refinement_stages.3" in text
    shrunk = build_model(ModelConfig(arch="mobilenet_paf"))
    assert "not in this model" in init_from_weights(shrunk, path)
    assert torch.equal(shrunk.state_dict()["refinement_stages.0.heatmaps.1.0.weight"],
                       state["refinement_stages.0.heatmaps.1.0.weight"])


def test_init_weights_refuses_another_width_or_architecture(reference_file, tmp_path):
    from openpose_lite.models.weights import init_from_weights

    with pytest.raises(ValueError, match="do not fit the model"):
        init_from_weights(build_model(ModelConfig(arch="mobilenet_paf", settings=MobileNetPafSettings(stage_channels=64))),
                          reference_file[0])
    with pytest.raises(ValueError, match="holds a mobilenet_paf network; the model to start is vgg19_paf"):
        init_from_weights(build_model(ModelConfig(settings=PafSettings(num_stages=2, width_mult=0.125, stage_channels=8))), reference_file[0])


def test_training_starts_from_init_weights_and_refuses_it_beside_backbone_weights(reference_file, scenes, tmp_path,
                                                                                 capsys):
    base = ["train", "--no-progress", "--held-out-images", "0", "model.arch=mobilenet_paf", "model.num_stages=3",
            f"data.train_ann={scenes / 'annotations.json'}", f"data.train_images={scenes / 'images'}",
            "data.val_ann=null", "data.val_images=null", "data.num_workers=0", "data.crop_size=64",
            "train.batch_size=2", "train.epochs=1", "train.optimizer=adam", "train.lr=1e-6", "train.device=cpu",
            "train.amp=false", "train.freeze_trunk_epochs=0", "codec.input_size=64", "train.eval_every=0"]
    out = tmp_path / "run"
    assert main([*base, "--output-dir", str(out), "--init-weights", str(reference_file[0])]) == 0
    assert f"started from {reference_file[0]}" in capsys.readouterr().out
    trained = load_model(out / "last.pt")
    assert trained.num_stages == 3
    # One step at lr 1e-6 from the file's weights: still close to them.
    state = reference_file[1][1]
    weight = trained.state_dict()["refinement_stages.1.heatmaps.1.0.weight"]
    assert (weight - state["refinement_stages.1.heatmaps.1.0.weight"]).abs().max() < 1e-3
    with pytest.raises(SystemExit) as exc:
        main([*base, "--output-dir", str(tmp_path / "other"), "--init-weights", str(reference_file[0]),
              "--backbone-weights", str(reference_file[0])])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
