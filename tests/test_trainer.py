"""The trainer as a library: a run from Python with no argparse, its state in one place, resumed; and the
start of a run reads each file once (the training file, a given validation file, the people of a file).

Runs are the tiny ones of tests/test_train.py (a width-1/8 model, 64 px crops of 8 generated scenes,
batch 4: two steps an epoch), a few seconds each.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from train_helpers import tiny_args, write_tiny_scenes

import openpose_lite.io
from openpose_lite.config import build_topdown_codec, load_config
from openpose_lite.skeleton import COCO_17
from openpose_lite.training import TrainOptions, Trainer, TrainListener, TrainResult, TrainState, resolve_run
from openpose_lite.training import data as training_data
from openpose_lite.training.checkpoint import load_checkpoint
from openpose_lite.training.data import DataPaths, read_data, topdown_datasets


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


def _overrides(scenes: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """tiny_args as config overrides alone (no command-line flag), writing into ``out``."""
    return [a for a in tiny_args(scenes, out, *extra) if "=" in a] + [f"train.output_dir={out}"]


class _Heard(TrainListener):
    """What the trainer told its listener, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, result: TrainResult) -> None:
        self.events.append(("started", result.start_epoch, result.epochs))

    def trunk_changed(self, epoch: int, frozen: bool) -> None:
        self.events.append(("trunk", epoch, frozen))

    def epoch_done(self, result: TrainResult, record: dict, improved: bool) -> None:
        self.events.append(("epoch", record["epoch"], record["trunk_frozen"]))


def test_a_run_from_python_freezes_releases_checkpoints_and_resumes_with_its_state_in_one_place(scenes, tmp_path):
    out = tmp_path / "run"
    heard = _Heard()
    trainer = Trainer(resolve_run(None, _overrides(scenes, out, "train.epochs=2", "train.freeze_trunk_epochs=1")),
                      TrainOptions(threads=1), heard)
    result = trainer.fit()
    assert result is trainer.result and result.state is trainer.state and result.epochs_done == 2
    assert heard.events == [("started", 0, 2), ("trunk", 1, True), ("epoch", 1, True), ("trunk", 2, False),
                            ("epoch", 2, False)]
    state = trainer.state
    assert (state.epoch, state.global_step, state.best_name, state.trunk_frozen) == (2, 4, "AP", False)
    last = load_checkpoint(out / "last.pt")
    assert (last["epoch"], last["global_step"], last["best_metric"], last["best_epoch"]) == \
        (state.epoch, state.global_step, state.best, state.best_epoch)

    # Resumed from last.pt with the settings it stored (here one more epoch): the state continues from it.
    heard = _Heard()
    resumed = Trainer(resolve_run(None, ["train.epochs=3"], resume=out / "last.pt"), TrainOptions(threads=1), heard)
    resumed.fit()
    assert heard.events == [("started", 2, 3), ("epoch", 3, False)]  # released since epoch 2: nothing to announce
    assert isinstance(resumed.state, TrainState) and (resumed.state.epoch, resumed.state.global_step) == (3, 6)
    assert resumed.cfg.data.crop_size == 64 and load_checkpoint(out / "last.pt")["config"]["train"]["epochs"] == 3


def _reads_of(monkeypatch, path: Path) -> list[str]:
    """Every opening of ``path`` by the package's one reader of bounded files (openpose_lite.io.open_regular)."""
    opened, real = [], openpose_lite.io.open_regular

    def counting(file, *args, **kwargs):
        if os.path.realpath(file) == os.path.realpath(path):
            opened.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(openpose_lite.io, "open_regular", counting)
    return opened


def test_a_run_on_a_training_file_reads_it_once_for_its_skeleton_training_set_and_held_out_images(
        scenes, tmp_path, monkeypatch):
    train_ann = scenes["train"] / "annotations.json"
    reads = _reads_of(monkeypatch, train_ann)
    out = tmp_path / "run"
    overrides = _overrides(scenes, out, "train.epochs=1", "data.val_ann=null", "data.val_images=null",
                           "data.val_split=0.25")
    result = Trainer(resolve_run(None, overrides), TrainOptions(threads=1)).fit()
    assert len(reads) == 1
    assert out / "data" / "val_split" in result.written and result.train_samples == 6  # 2 of the 8 held out


def test_a_synthetic_run_checks_a_given_validation_file_once_before_its_first_epoch(scenes, tmp_path, monkeypatch):
    val_ann = scenes["val"] / "annotations.json"
    reads = _reads_of(monkeypatch, val_ann)
    out = tmp_path / "run"
    overrides = [a for a in _overrides(scenes, out, "train.epochs=1") if not a.startswith("data.train_")]
    at_start = []
    listener = TrainListener()
    listener.started = lambda result: at_start.append(len(reads))  # the AP after the epoch reads it again
    result = Trainer(resolve_run(None, [*overrides, "data.synthetic=true", "data.synthetic_train_images=4"]),
                     TrainOptions(threads=1, held_out_images=0), listener).fit()
    assert at_start == [1]
    assert f"validation: {val_ann} (2 images with a labelled instance)" in result.notes


def test_the_people_of_a_training_file_are_listed_once_for_its_training_and_held_out_crops(scenes, tmp_path,
                                                                                         monkeypatch):
    cfg = load_config(None, ["model.arch=hrnet", f"data.train_ann={scenes['train'] / 'annotations.json'}",
                             f"data.train_images={scenes['train'] / 'images'}", "data.val_split=0.25",
                             f"train.output_dir={tmp_path / 'run'}"])
    data = read_data(cfg, DataPaths.given(cfg), COCO_17)
    listed, real = [], training_data.person_instances
    monkeypatch.setattr(training_data, "person_instances", lambda coco: listed.append(coco) or real(coco))
    train, val = topdown_datasets(cfg, data, build_topdown_codec(cfg))
    assert listed == [data.train.coco] and data.val.coco is data.train.coco
    assert len(train) + len(val) == len(real(data.train.coco)) and len(val) > 0
