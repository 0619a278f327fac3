"""The top-down branch end to end: `openpose-lite train` on HRNet, then eval and infer with its boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import load_train_script

from openpose_lite.cli import main
from openpose_lite.config import Config, ModelConfig, config_to_dict
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.architectures import architectures
from openpose_lite.factory import build_model
from openpose_lite.network_settings import PafSettings
from openpose_lite.training.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("td_scenes"), 6, seed=11, cfg=SceneConfig(image_hw=(96, 128), people_range=(1, 2)))


def _tiny_args(scenes: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--output-dir", str(out), "--no-progress", "--held-out-images", "0",
        "model.arch=hrnet", "model.width=8", "model.blocks=1",
        "topdown.input_hw=[64,32]", "topdown.heatmap_hw=[16,8]", "topdown.sigma_px=4.0",
        f"data.train_ann={scenes}", f"data.train_images={scenes.parent / 'images'}",
        f"data.val_ann={scenes}", f"data.val_images={scenes.parent / 'images'}", "data.num_workers=0",
        "train.batch_size=4", "train.optimizer=adam", "train.lr=1e-3", "train.device=cpu", "train.amp=false",
        "train.eval_every=1", "train.log_every=1", "train.freeze_trunk_epochs=0", *extra,
    ]


@pytest.fixture(scope="module")
def trained(scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("td_run")
    torch.manual_seed(0)
    assert main(_tiny_args(scenes, out, "train.epochs=1")) == 0
    return out


def test_openpose_lite_train_runs_the_hrnet_branch_and_saves_its_config(trained):
    ckpt = load_checkpoint(trained / "last.pt")
    assert ckpt["config"]["model"]["arch"] == "hrnet" and ckpt["epoch"] == 1
    assert list(ckpt["config"]["topdown"]["input_hw"]) == [64, 32]
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    epoch = [r for r in records if r["type"] == "epoch"][0]
    assert "train/heatmaps" in epoch and "val/AP" in epoch


def test_topdown_resume_continues_from_the_saved_epoch(trained, scenes):
    assert main(["train", "--resume", str(trained / "last.pt"), "train.epochs=2", "--no-progress"]) == 0
    assert load_checkpoint(trained / "last.pt")["epoch"] == 2


def test_eval_and_infer_accept_a_topdown_checkpoint(trained, scenes, tmp_path, capsys):
    ann, images = str(scenes), str(scenes.parent / "images")
    assert main(["eval", "--checkpoint", str(trained / "last.pt"), "--ann", ann, "--images", images]) == 0
    assert "top-down 64x32" in capsys.readouterr().out

    # Person boxes from a bottom-up model: a tiny random one is enough to exercise the path.
    bu = tmp_path / "bu.pt"
    cfg = Config(model=ModelConfig(settings=PafSettings(num_stages=1, width_mult=0.125, stage_channels=16)))
    save_checkpoint(bu, model_state=build_model(cfg.model).state_dict(),
                    config=config_to_dict(cfg))
    out = tmp_path / "out"
    image = str(scenes.parent / "images" / "000001.jpg")
    assert main(["infer", image, "--checkpoint", str(trained / "last.pt"), "--person-detector", str(bu),
                 "-o", str(out), "--no-progress"]) == 0
    assert json.loads((out / "000001_keypoints.json").read_text())["version"] == 1.3

    # Person boxes from a detections file keyed by the numeric file name.
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 70], "score": 0.9}]))
    assert main(["infer", image, "--checkpoint", str(trained / "last.pt"), "--boxes", str(dets),
                 "-o", str(out), "--no-progress", "--overwrite"]) == 0  # replaces the run above (output folder rule)
    people = json.loads((out / "000001_keypoints.json").read_text())["people"]
    assert len(people) == 1 and len(people[0]["pose_keypoints_2d"]) == 54


def test_topdown_infer_without_boxes_says_where_boxes_come_from(trained, scenes, tmp_path, capsys):
    image = str(scenes.parent / "images" / "000001.jpg")
    assert main(["infer", image, "--checkpoint", str(trained / "last.pt"), "-o", str(tmp_path)]) == 2
    assert "--person-detector" in capsys.readouterr().err


def test_train_vgg19_refuses_an_hrnet_config(scenes, tmp_path, capsys):
    train_vgg19 = load_train_script()

    assert train_vgg19.main(_tiny_args(scenes, tmp_path, "train.epochs=1")[1:]) == train_vgg19.EXIT_USAGE
    bottomup = ", ".join(a.name for a in architectures("bottomup"))  # vgg19_paf, mobilenet_paf, ...
    assert f"trains the bottomup models ({bottomup}), got 'hrnet'" in capsys.readouterr().err


def test_hrnet_training_starts_from_an_imagenet_hrnet_checkpoint(scenes, tmp_path):
    from test_reference_conventions import _imagenet_hrnet_state

    state = _imagenet_hrnet_state(8)  # the official ImageNet HRNet classifier's layout (cls_hrnet.py)
    # Variances as a trained file has them (positive): random ones make the eval-mode outputs NaN.
    state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    weights = tmp_path / "hrnet_w8_imagenet.pth"
    torch.save(state, weights)
    out = tmp_path / "run"
    # A learning rate too small to move the weights: the checkpoint then shows what was loaded.
    assert main([*_tiny_args(scenes, out, "train.epochs=1", "train.lr=1e-12"), "--backbone-weights", str(weights)]) == 0
    trained = load_checkpoint(out / "last.pt")["model"]
    for key in ("conv1.weight", "layer1.0.conv2.weight", "stage4.0.branches.3.0.conv1.weight"):
        torch.testing.assert_close(trained[key], state[key], atol=1e-8, rtol=0)
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["trunk_init"] == f"ImageNet HRNet-W8 from {weights}"


def test_hrnet_run_counts_its_samples_as_person_crops(trained):
    start = json.loads((trained / "metrics.jsonl").read_text().splitlines()[0])
    assert start["type"] == "run_start" and start["sample_kind"] == "person crops" and start["train_samples"] > 0
