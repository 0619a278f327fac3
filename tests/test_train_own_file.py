"""Training on a keypoint file of the user's own, as docs/training.md writes the command; refused runs leave no
file; generated scenes belong to the settings that generated them; an interrupted resume continues to its end.

The own-file runs are the docs' command (``openpose-lite train --config <a synthetic config>
data.train_ann=... data.train_images=...``) on the real Animal-Pose and AP-10K samples with the
network, crops and epochs made tiny: each run takes seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import CUSTOM_SKELETON_FILES, needs_custom_skeletons
from train_helpers import REPO, load_train_script, tiny_args, write_tiny_scenes

from openpose_lite.cli import main
from openpose_lite.coco.skeleton import skeleton_of_file
from openpose_lite.config import Config, config_from_dict, config_to_dict, load_config
from openpose_lite.data.skeleton_figures import PoseBank
from openpose_lite.skeleton import Skeleton
from openpose_lite.training import engine
from openpose_lite.training.checkpoint import load_checkpoint
from openpose_lite.training.data import fitting_batch, generate_scenes, held_out_items
from openpose_lite.training.distributed import DistInfo
from openpose_lite.training.metrics import read_jsonl

train_vgg19 = load_train_script()

QUADRUPED_CONFIG = REPO / "configs" / "vgg19_quadruped_synthetic_cpu.yaml"
QUADRUPED = REPO / "configs" / "skeletons" / "quadruped.json"
# What makes the docs' command a run of seconds; nothing here touches the data, skeleton or validation settings.
TINY = ["train.epochs=1", "--threads", "1", "--no-progress", "model.stage_channels=8", "model.width_mult=0.125",
        "data.crop_size=64", "codec.input_size=64", "data.num_workers=0"]


def _own_file_command(ann: Path, out: Path, *extra: str) -> list[str]:
    """docs/training.md's "Train" command on ``ann`` (the quadruped config as my_config.yaml), made tiny."""
    return ["train", "--config", str(QUADRUPED_CONFIG), f"data.train_ann={ann}", f"data.train_images={ann.parent}",
            "--output-dir", str(out), *TINY, *extra]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def own_file_runs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """The docs' command run on each sample as written (plus TINY): {name: (run folder, what it printed)}."""
    if not all(p.is_file() for p in CUSTOM_SKELETON_FILES.values()):
        pytest.skip("the non-human COCO-format sets (../shared/data/custom_skeletons) are not available")
    runs = {}
    for name in ("animalpose", "ap10k"):
        out = tmp_path_factory.mktemp(name) / "run"
        with pytest.MonkeyPatch.context() as patch:
            printed: list[str] = []
            patch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
            code = main(_own_file_command(CUSTOM_SKELETON_FILES[name], out))
        assert code == 0, "\n".join(printed)
        runs[name] = (out, "\n".join(printed))
    return runs


# ------------------------------------------------------------------ the docs' own-file command
@needs_custom_skeletons
@pytest.mark.parametrize("name", ["animalpose", "ap10k"])
def test_the_docs_own_file_command_trains_on_the_file_and_validates_on_an_image_it_holds_out(own_file_runs, name):
    out, printed = own_file_runs[name]
    ann = CUSTOM_SKELETON_FILES[name]
    source = json.loads(ann.read_text())
    held = json.loads((out / "data" / "val_split" / "annotations.json").read_text())
    # One of the file's two images is held out, with every annotation of it and the file's categories.
    assert len(held["images"]) == 1 and held["images"][0] in source["images"]
    held_id = held["images"][0]["id"]
    assert held["annotations"] == [a for a in source["annotations"] if a["image_id"] == held_id]
    assert held["categories"] == source["categories"]
    assert (f"validation: 1 of the 2 images (with a labelled instance) of {ann}, held out of training by "
            "data.val_split 0.1") in printed
    assert f"listed in {out / 'data' / 'val_split' / 'annotations.json'}" in printed
    # No generated figure anywhere: data/ holds the split and nothing else.
    assert [p for p in _files(out / "data") if not p.startswith("val_split")] == []
    # The other image trains, alone: the config's batch of 8 is cut to it, and the line says so.
    assert (f"batch: train.batch_size 8 is more than the training set holds (1 training image of {ann}): "
            "training in batches of 1") in printed
    records = read_jsonl(out / "metrics.jsonl")
    start, epoch = records[0], [r for r in records if r["type"] == "epoch"][0]
    assert start["train_samples"] == 1 and start["batch_size"] == 1 and epoch["train/steps"] == 1
    assert "val/loss" in epoch and "val/AP" in epoch  # validated, and scored, on the held-out image
    # The network is the file's skeleton's: its keypoints, in its order.
    stored = Skeleton.from_dict(load_checkpoint(out / "last.pt")["skeleton"])
    file_skeleton = skeleton_of_file(ann)
    assert stored.keypoints[:file_skeleton.num_keypoints] == file_skeleton.keypoints


@needs_custom_skeletons
def test_a_config_skeleton_the_file_has_no_category_of_gives_way_to_the_files_own_and_the_run_says_so(own_file_runs):
    out, printed = own_file_runs["animalpose"]
    ann = CUSTOM_SKELETON_FILES["animalpose"]  # 20 keypoints; the quadruped config's skeleton has AP-10K's 17
    assert Skeleton.from_dict(load_checkpoint(out / "last.pt")["skeleton"]) == skeleton_of_file(ann).bottomup_layout()
    assert f"skeleton: {ann}'s own, 'cat' (20 keypoints); the config's data.skeleton" in printed
    assert load_checkpoint(out / "last.pt")["config"]["data"]["skeleton"] is None
    # AP-10K's keypoints are the quadruped's: its skeleton stays, and nothing is said about it.
    out, printed = own_file_runs["ap10k"]
    assert "skeleton:" not in printed
    assert load_checkpoint(out / "last.pt")["config"]["data"]["skeleton"] == "configs/skeletons/quadruped.json"


@needs_custom_skeletons
def test_a_top_down_run_on_the_file_trains_on_the_crops_of_its_images_and_validates_on_those_it_holds_out(tmp_path):
    ann = CUSTOM_SKELETON_FILES["animalpose"]  # one animal in each of its two images
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "simple_baseline_synthetic_cpu.yaml"),
                 f"data.train_ann={ann}", f"data.train_images={ann.parent}", "--output-dir", str(out), *TINY[:4],
                 "data.num_workers=0", "model.depth=18", "topdown.input_hw=[64,64]", "topdown.heatmap_hw=[16,16]"]) == 0
    records = read_jsonl(out / "metrics.jsonl")
    epoch = [r for r in records if r["type"] == "epoch"][0]
    assert records[0]["train_samples"] == 1 and epoch["train/steps"] == 1  # the other image's animal only
    assert "val/loss" in epoch and "val/AP" in epoch
    assert len(json.loads((out / "data" / "val_split" / "annotations.json").read_text())["annotations"]) == 1


# ------------------------------------------------------------------ refused runs leave no file
@needs_custom_skeletons
def test_a_skeleton_named_on_the_command_line_that_the_file_lacks_is_refused_leaving_no_file(tmp_path, capsys):
    ann = CUSTOM_SKELETON_FILES["animalpose"]
    out = tmp_path / "run"
    assert main(_own_file_command(ann, out, f"data.skeleton={QUADRUPED}")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{ann}: no category has the keypoints of quadruped" in err[0]
    assert f"data.skeleton={QUADRUPED} names a skeleton this file cannot be trained or scored with" in err[0]
    assert not out.exists()
    # The corrected command then runs into the same folder, without --overwrite.
    assert main(_own_file_command(ann, out)) == 0
    assert (out / "last.pt").is_file()


def _one_pose_file(path: Path, labelled: int) -> Path:
    """A COCO file of one three-keypoint animal with ``labelled`` keypoints labelled."""
    keypoints = [[10, 10, 2], [30, 12, 2], [20, 40, 2]]
    flat = [v for k, p in enumerate(keypoints) for v in (p if k < labelled else [0, 0, 0])]
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 64, "width": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": flat, "num_keypoints": labelled,
                         "bbox": [10, 10, 20, 30], "area": 600, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "tripod", "keypoints": ["head", "left_foot", "right_foot"],
                        "skeleton": [[1, 2], [1, 3]]}],
    }))
    return path


def test_a_synthetic_run_whose_skeleton_draws_no_figure_is_refused_leaving_no_file(tmp_path, capsys):
    out = tmp_path / "run"
    skeleton = _one_pose_file(tmp_path / "tripod.json", labelled=1)  # one labelled keypoint: no pose to draw
    args = ["train", "--output-dir", str(out), "--no-progress", "--held-out-images", "0", "data.synthetic=true",
            f"data.skeleton={skeleton}", "data.synthetic_train_images=2", "data.synthetic_val_images=1", *TINY[:1],
            *TINY[4:], "train.batch_size=2", "train.device=cpu", "train.amp=false", "train.freeze_trunk_epochs=0",
            "model.num_stages=1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{skeleton}: no annotated instance of tripod with two labelled keypoints" in err[0]
    assert not out.exists()  # no config.yaml, no metrics.jsonl, no generated scene
    _one_pose_file(skeleton, labelled=3)
    assert main(args) == 0
    assert json.loads((out / "data" / "val" / "annotations.json").read_text())["categories"][0]["name"] == "tripod"


# ------------------------------------------------------------------ generated scenes and their settings
def test_generated_scenes_are_reused_for_the_same_settings_and_drawn_again_for_another_skeleton(tmp_path):
    out = tmp_path / "run"
    people = load_config(None, ["data.synthetic=true", "data.synthetic_train_images=2", "data.synthetic_val_images=1",
                                f"train.output_dir={out}"])
    paths = generate_scenes(people, DistInfo(), 0, bank=None)
    train_ann = paths.train_ann
    first = train_ann.stat().st_mtime_ns
    assert generate_scenes(people, DistInfo(), 0, bank=None) == paths and train_ann.stat().st_mtime_ns == first

    # What --overwrite with data.skeleton=quadruped.json runs: the people in data/ are not this run's scenes.
    bank = PoseBank.from_file(QUADRUPED)
    quadrupeds = generate_scenes(people, DistInfo(), 0, bank=bank)
    for ann in (quadrupeds.train_ann, quadrupeds.val_ann):
        data = json.loads(ann.read_text())
        assert [c["name"] for c in data["categories"]] == ["quadruped"]
        drawn = sorted(p.name for p in (ann.parent / "images").iterdir())
        assert drawn == sorted(i["file_name"] for i in data["images"])
    # Another count is another set too, and no image of the larger one stays behind.
    fewer = load_config(None, ["data.synthetic=true", "data.synthetic_train_images=1", "data.synthetic_val_images=1",
                               f"train.output_dir={out}"])
    generate_scenes(fewer, DistInfo(), 0, bank=bank)
    assert len(list((out / "data" / "train" / "images").iterdir())) == 1


# ------------------------------------------------------------------ the validation split and the batch
def test_the_held_out_images_are_a_seeded_fraction_at_least_one_leaving_one_to_train_on():
    assert held_out_items(2, 0.1, seed=0) in ((0,), (1,))
    assert len(held_out_items(100, 0.1, seed=0)) == 10 and len(held_out_items(10, 0.5, seed=0)) == 5
    assert held_out_items(100, 0.1, seed=0) == held_out_items(100, 0.1, seed=0) != held_out_items(100, 0.1, seed=1)
    assert len(held_out_items(3, 0.9, seed=0)) == 2  # one image always trains
    assert held_out_items(1, 0.5, seed=0) == () and held_out_items(50, 0.0, seed=0) == ()


def test_a_config_stored_before_val_split_resumes_holding_nothing_out():
    stored = config_to_dict(Config())
    del stored["data"]["val_split"]  # a checkpoint of a run from before data.val_split: it held nothing out
    assert config_from_dict(stored).data.val_split == 0.0
    assert Config().data.val_split == 0.1 and config_from_dict({"train": {"epochs": 2}}).data.val_split == 0.1


def test_a_batch_larger_than_the_training_set_is_cut_to_it_and_a_set_too_small_for_the_processes_is_refused():
    assert fitting_batch(8, 100, 1, "training images", Path("a.json")) == (8, None)
    batch, note = fitting_batch(8, 3, 1, "training images", Path("a.json"))
    assert batch == 3 and "train.batch_size 8 is more than the training set holds (3 training images of a.json)" in note
    batch, note = fitting_batch(4, 5, 2, "person crops", Path("a.json"))
    assert batch == 2 and "over 2 processes" in note and "batches of 2 per process" in note
    with pytest.raises(ValueError, match=r"a.json: 1 person crop to train on, fewer than one per process \(2\)"):
        fitting_batch(4, 1, 2, "person crops", Path("a.json"))


# ------------------------------------------------------------------ interrupted runs and resume
@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


def _interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    """Ctrl-C (a KeyboardInterrupt) at the start of training epoch ``epoch``."""
    real = engine.train_one_epoch

    def train_one_epoch(model, loader, optimizer, loss_terms, device, scaler, at_epoch, *args, **kwargs):
        if at_epoch == epoch:
            raise KeyboardInterrupt
        return real(model, loader, optimizer, loss_terms, device, scaler, at_epoch, *args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", train_one_epoch)


def _epochs(run: Path) -> list[int]:
    return [r["epoch"] for r in read_jsonl(run / "metrics.jsonl") if r["type"] == "epoch"]


@pytest.mark.parametrize("stopped_in_epoch", [2, 3])
def test_a_resume_with_overrides_interrupted_continues_with_a_bare_resume_to_the_epochs_it_was_given(
        scenes, tmp_path, monkeypatch, capsys, stopped_in_epoch):
    out = tmp_path / "run"
    last = out / "last.pt"
    assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "train.optimizer=adam", "train.lr=1e-3",
                                      "train.freeze_trunk_epochs=0")) == 0
    capsys.readouterr()
    _interrupt_at_epoch(monkeypatch, stopped_in_epoch)  # 2: before the resumed run saved a checkpoint; 3: after one
    assert train_vgg19.main(["--resume", str(last), "train.epochs=3", "--no-progress"]) == train_vgg19.EXIT_INTERRUPTED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"interrupted after epoch {stopped_in_epoch - 1} of 3" in err[0]
    assert f"{last} holds the run: continue with python train_vgg19.py --resume {last}" in err[0]
    monkeypatch.undo()

    assert train_vgg19.main(["--output-dir", str(out), "--resume", "--no-progress"]) == 0  # nothing said again
    printed = capsys.readouterr().out
    assert "the run is complete" not in printed and _epochs(out) == [1, 2, 3]
    assert load_checkpoint(last)["epoch"] == 3 and load_checkpoint(last)["config"]["train"]["epochs"] == 3
    if stopped_in_epoch == 2:  # last.pt still held epochs=1: the settings came from the interrupted start
        assert (f"settings: those the run was last started with ({out / 'config.yaml'}): train.epochs=3 (the "
                "checkpoint's: 1)") in printed


def test_an_interrupt_before_the_first_checkpoint_says_none_was_written_and_how_to_start_again(
        scenes, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt_at_epoch(monkeypatch, 1)
    assert main(["train", *tiny_args(scenes, out, "train.epochs=2")]) == train_vgg19.EXIT_INTERRUPTED
    err, = capsys.readouterr().err.strip().splitlines()
    assert re.search(rf"interrupted after epoch 0 of 2; written in {re.escape(str(out))}: config.yaml, metrics.jsonl; "
                     rf"no checkpoint yet \({re.escape(str(out / 'last.pt'))} is written after each epoch\): "
                     "start again with --overwrite", err), err
