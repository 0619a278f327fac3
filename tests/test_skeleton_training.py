"""Training, running and evaluating models of a skeleton of the user's own, end to end.

A run takes its skeleton from a COCO-format file (``data.skeleton``, or the training file's own
category), builds its network for it (a background channel and a limb tree bottom-up, the
keypoints as annotated top-down), stores it in the checkpoint, and everything downstream (the
predictors, infer's JSON, eval's scoring) reads it from there, with no annotation file at hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import CUSTOM_SKELETON_FILES, needs_custom_skeletons
from train_helpers import load_train_script

from openpose_lite.cli import main
from openpose_lite.coco.skeleton import skeleton_of_file
from openpose_lite.models.weights import read_weights
from openpose_lite.skeleton import Skeleton
from openpose_lite.training.checkpoint import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
QUADRUPED = REPO / "configs" / "skeletons" / "quadruped.json"
TINY_BOTTOMUP = ["model.num_stages=1", "model.stage_channels=16", "model.width_mult=0.125", "data.crop_size=96",
                 "codec.input_size=96"]
TINY_RUN = ["data.synthetic=true", f"data.skeleton={QUADRUPED}", "data.synthetic_train_images=6",
            "data.synthetic_val_images=2", "data.num_workers=0", "train.epochs=1", "train.batch_size=3",
            "train.device=cpu", "train.amp=false", "train.optimizer=adam", "train.lr=1e-3",
            "train.freeze_trunk_epochs=0", "train.eval_every=1"]


@pytest.fixture(scope="module")
def quadruped_run(tmp_path_factory) -> Path:
    """A bottom-up model trained (one epoch, through train_vgg19.py) on generated scenes of the quadruped skeleton."""
    out = tmp_path_factory.mktemp("quadruped") / "run"
    script = load_train_script()
    assert script.main(["--output-dir", str(out), "--no-progress", "--held-out-images", "2", *TINY_BOTTOMUP,
                        *TINY_RUN]) == 0
    return out


def test_the_checkpoint_carries_the_skeleton_of_the_file_and_the_network_is_built_for_it(quadruped_run):
    stored = Skeleton.from_dict(load_checkpoint(quadruped_run / "last.pt")["skeleton"])
    expected = skeleton_of_file(QUADRUPED).bottomup_layout()
    assert stored == expected and stored.background and stored.num_keypoints == 17
    loaded = read_weights(quadruped_run / "last.pt")
    assert loaded.model.skeleton == expected
    heads = loaded.model.stages[-1]
    assert heads.heatmaps[-1].out_channels == 18 and heads.pafs[-1].out_channels == 2 * expected.num_limbs
    # The generated scenes are annotated in the skeleton's own category, which states it whole.
    data = json.loads((quadruped_run / "data" / "held_out" / "annotations.json").read_text())
    assert data["categories"][0]["name"] == "quadruped" and len(data["categories"][0]["keypoints"]) == 17


def _lively(run: Path, path: Path) -> Path:
    """The run's checkpoint with its heatmaps lifted (the last conv's bias), so its one epoch of noise has
    peaks: the outputs then hold animals and every field of them is written (conftest's tiny checkpoint does so)."""
    ckpt = load_checkpoint(run / "last.pt")
    state = dict(ckpt["model"])
    bias = sorted(k for k in state if k.startswith("stages.0.heatmaps.") and k.endswith(".bias"))[-1]
    state[bias] = state[bias] + 0.4
    return save_checkpoint(path, model_state=state, config=ckpt["config"], skeleton=Skeleton.from_dict(ckpt["skeleton"]))


def test_infer_and_eval_run_the_checkpoint_with_no_annotation_file_of_its_skeleton(quadruped_run, tmp_path, capsys):
    held_out = quadruped_run / "data" / "held_out"
    out = tmp_path / "out"
    checkpoint = _lively(quadruped_run, tmp_path / "lively.pt")
    assert main(["infer", str(held_out / "images"), "--checkpoint", str(checkpoint), "-o", str(out),
                 "--render", "--no-progress"]) == 0
    people = json.loads((out / "000001_keypoints.json").read_text())["people"]
    assert people and all(len(p["pose_keypoints_2d"]) == 17 * 3 for p in people)
    assert (out / "000001_rendered.jpg").is_file()
    assert re.search(r"\d+ images?, \d+ instances?, 0 failures", capsys.readouterr().out)  # animals, not people
    assert main(["eval", "--checkpoint", str(quadruped_run / "last.pt"), "--ann", str(held_out / "annotations.json"),
                 "--images", str(held_out / "images")]) == 0
    assert "scored: category 'quadruped', with the OKS sigmas of quadruped" in capsys.readouterr().out


def test_eval_refuses_an_annotation_file_of_another_skeleton_naming_it(quadruped_run, dataset, capsys):
    ann = dataset / "annotations.json"  # generated people: the COCO person category
    assert main(["eval", "--checkpoint", str(quadruped_run / "last.pt"), "--ann", str(ann),
                 "--images", str(dataset / "images")]) == 2
    err = capsys.readouterr().err
    assert f"{ann}: no category has the keypoints of quadruped" in err and "'person'" in err


def test_a_top_down_network_trains_on_the_skeleton_and_is_scored_on_its_ground_truth_boxes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), "--no-progress", "--held-out-images", "0",
                 "model.arch=simple_baseline", "model.depth=18", "topdown.input_hw=[64,64]",
                 "topdown.heatmap_hw=[16,16]", *TINY_RUN]) == 0
    assert Skeleton.from_dict(load_checkpoint(out / "last.pt")["skeleton"]) == skeleton_of_file(QUADRUPED)
    val = out / "data" / "val"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--ann", str(val / "annotations.json"),
                 "--images", str(val / "images"), "--no-flip"]) == 0
    printed = capsys.readouterr().out
    labelled = sum(1 for a in json.loads((val / "annotations.json").read_text())["annotations"] if a["num_keypoints"])
    # One crop per labelled quadruped: the ground-truth boxes are the skeleton's category's.
    assert f"({labelled} labelled instances), {labelled} instances detected" in printed


@needs_custom_skeletons
def test_a_real_annotation_file_of_another_skeleton_trains_with_the_skeleton_it_names(tmp_path):
    ann = CUSTOM_SKELETON_FILES["animalpose"]  # 20 keypoints, L_/R_ names
    scenes = tmp_path / "scenes"
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), "--no-progress", "--held-out-images", "0", *TINY_BOTTOMUP,
                 f"data.train_ann={ann}", f"data.train_images={ann.parent}", "data.val_ann=null",
                 "data.val_images=null", "data.num_workers=0", "train.epochs=1", "train.batch_size=2",
                 "train.device=cpu", "train.amp=false", "train.freeze_trunk_epochs=0", "train.eval_every=0"]) == 0
    stored = Skeleton.from_dict(load_checkpoint(out / "last.pt")["skeleton"])
    assert stored == skeleton_of_file(ann).bottomup_layout() and stored.num_keypoints == 20
    assert not scenes.exists()
