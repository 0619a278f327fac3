"""Bad inputs a training run meets: images a header cannot tell are broken, an absurd learning rate, a missing
validation file, a resume with nothing to train.

Each is refused in one line with exit 2 before the run folder exists, or, where the run can go on (an image that
breaks once the run trains), skipped, counted in the epoch's record and logged, and the epoch finishes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from train_helpers import load_train_script, tiny_args, write_tiny_scenes

from openpose_lite.cli import main
from openpose_lite.images import PROGRESS_MIN_IMAGES, ImageReadError, _in_order, check_image_files, read_image
from openpose_lite.train_config import MAX_LR, TrainConfig
from openpose_lite.training.checkpoint import load_checkpoint
from openpose_lite.training.metrics import read_jsonl

train_vgg19 = load_train_script()

TRUNCATED_BYTES = 600  # `head -c 600`: the JPEG's header and size survive, its pixels do not


@pytest.fixture
def scenes(tmp_path) -> dict[str, Path]:
    """Tiny generated sets of this test's own (tests damage their images): 8 training, 2 validation."""
    return write_tiny_scenes(tmp_path / "scenes")


def _truncate(image: Path) -> None:
    image.write_bytes(image.read_bytes()[:TRUNCATED_BYTES])


def _float_tiff(scenes: dict[str, Path], split: str, index: int) -> Path:
    """Replace image ``index`` of ``split`` by a TIFF of its pixels as float32 (0..1), named in the annotation file."""
    ann = scenes[split] / "annotations.json"
    data = json.loads(ann.read_text())
    entry = data["images"][index]
    jpeg = scenes[split] / "images" / entry["file_name"]
    tiff = jpeg.with_suffix(".tif")
    assert cv2.imwrite(str(tiff), cv2.imread(str(jpeg)).astype(np.float32) / 255)
    jpeg.unlink()
    entry["file_name"] = tiff.name
    ann.write_text(json.dumps(data))
    return tiff


def _image(scenes: dict[str, Path], split: str, index: int) -> Path:
    data = json.loads((scenes[split] / "annotations.json").read_text())
    return scenes[split] / "images" / data["images"][index]["file_name"]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "WARN" not in err, err
    return lines[0]


# ------------------------------------------------------------------ 14. images a header cannot tell are broken
@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("damage", ["truncated jpeg", "float32 tiff"])
def test_an_image_that_cannot_be_decoded_is_refused_in_one_line_before_the_run_folder_exists(
        scenes, tmp_path, capfd, split, damage):
    if damage == "truncated jpeg":
        bad = _image(scenes, split, 1)
        _truncate(bad)
    else:
        bad = _float_tiff(scenes, split, 1)
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "--threads", "1")) == 2
    line = _one_error_line(capfd.readouterr().err)  # the file descriptor: OpenCV's own warnings are silenced too
    total = 8 if split == "train" else 2
    assert f"1 of the {total} images that {scenes[split] / 'annotations.json'} names cannot be used" in line
    assert f"cannot read image {bad}: OpenCV cannot decode it as 8-bit colour" in line
    assert not out.exists()  # refused before the folder was made: the corrected run needs no --overwrite


def test_a_float_tiff_is_refused_by_the_one_reader_naming_what_it_holds(tmp_path):
    tiff = tmp_path / "float.tif"
    assert cv2.imwrite(str(tiff), np.full((20, 30, 3), 0.5, np.float32))
    with pytest.raises(ImageReadError, match=rf"cannot read image {re.escape(str(tiff))}: .*floating-point samples"):
        read_image(tiff)


def test_the_up_front_check_counts_every_bad_image_and_names_the_first(tmp_path):
    good = np.full((16, 24, 3), 128, np.uint8)
    entries = []
    for i in range(6):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), good)
        entries.append((path.name, 16, 24))
    for i in (2, 4):
        _truncate(tmp_path / f"{i}.jpg")
    assert len(check_image_files(tmp_path, entries, "listed")) == 6  # the headers are whole: they pass
    with pytest.raises(ImageReadError) as refused:
        check_image_files(tmp_path, entries, "listed", decode=True, workers=2)
    assert str(refused.value).startswith(f"{tmp_path}: 2 of the 6 images listed cannot be used (the first: "
                                         f"cannot read image {tmp_path / '2.jpg'}:")


def test_the_check_shows_a_bar_only_on_a_large_set_and_only_when_asked(tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((4, 4, 3), np.uint8))
    for count, progress, drawn in ((PROGRESS_MIN_IMAGES + 1, True, True), (PROGRESS_MIN_IMAGES, True, False),
                                   (PROGRESS_MIN_IMAGES + 1, False, False)):
        check_image_files(tmp_path, [("a.png", 4, 4)] * count, "listed", decode=True, workers=2, progress=progress)
        assert ("decoding images" in capsys.readouterr().err) == drawn, (count, progress)


def test_the_check_holds_a_bounded_number_of_images_however_large_the_set(monkeypatch):
    # The images are decoded a window at a time, in order: a set of 100,000 holds as many as the
    # window (one future each), never one per image.
    consumed, ahead = 0, []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            ahead.append(i - consumed)
        time.sleep(0.0002 * (i % 3))  # out-of-order completion
        return i

    with ThreadPoolExecutor(4) as pool:
        results = []
        for value in _in_order(pool, work, 2000, 8):
            results.append(value)
            with lock:
                consumed += 1
    assert results == list(range(2000))
    assert max(ahead) <= 8


def _epoch_record(out: Path) -> dict:
    return [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "epoch"][-1]


@pytest.mark.parametrize("damage", ["truncated jpeg", "float32 tiff"])
def test_an_image_that_breaks_once_the_run_trains_is_skipped_counted_and_the_epoch_finishes(
        scenes, tmp_path, monkeypatch, capsys, caplog, damage):
    # A set above the decoding bound is checked from its headers (they are whole here), so the run
    # meets the broken pixels while it trains, as it would an image damaged after the check.
    monkeypatch.setattr("openpose_lite.training.data.DECODE_CHECK_MAX_IMAGES", 0)
    if damage == "truncated jpeg":
        bad = _image(scenes, "train", 5)
        _truncate(bad)
    else:
        bad = _float_tiff(scenes, "train", 5)
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "--threads", "1")) == 0
    record = _epoch_record(out)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped, cannot be read")]
    assert record["train/skipped_images"] == len(warned) >= 1 and record["val/skipped_images"] == 0
    assert all(str(bad) in message for message in warned)
    assert record["train/steps"] == 2 and record["train/samples"] == 8  # the epoch is whole
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert f"{len(warned)} unreadable image" in capsys.readouterr().out


def test_a_top_down_run_skips_the_crops_of_an_image_that_breaks_and_counts_each(scenes, tmp_path, monkeypatch,
                                                                                caplog):
    monkeypatch.setattr("openpose_lite.training.data.DECODE_CHECK_MAX_IMAGES", 0)
    bad = _image(scenes, "train", 3)
    _truncate(bad)
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), "--no-progress", "--threads", "1", "model.arch=hrnet",
                 "model.width=8", "model.blocks=1", "topdown.input_hw=[64,32]", "topdown.heatmap_hw=[16,8]",
                 f"data.train_ann={scenes['train'] / 'annotations.json'}",
                 f"data.train_images={scenes['train'] / 'images'}",
                 "data.val_split=0", "data.num_workers=0", "train.batch_size=4", "train.optimizer=adam",
                 "train.lr=1e-3", "train.device=cpu", "train.amp=false", "train.epochs=1",
                 "train.freeze_trunk_epochs=0"]) == 0
    record = _epoch_record(out)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped, cannot be read")]
    assert record["train/skipped_images"] == len(warned) >= 1 and all(str(bad) in m for m in warned)
    assert record["train/samples"] == 4 * record["train/steps"] and load_checkpoint(out / "last.pt")["epoch"] == 1


def test_the_skips_of_dataloader_worker_processes_are_counted_as_in_one_process(scenes, tmp_path, monkeypatch):
    monkeypatch.setattr("openpose_lite.training.data.DECODE_CHECK_MAX_IMAGES", 0)
    _truncate(_image(scenes, "train", 2))
    _truncate(_image(scenes, "val", 0))
    counts = {}
    for workers in (0, 2):
        out = tmp_path / f"run{workers}"
        assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "--threads", "1",
                                          f"data.num_workers={workers}")) == 0
        record = _epoch_record(out)
        counts[workers] = (record["train/skipped_images"], record["val/skipped_images"])
    assert counts[0] == counts[2] and counts[0][0] >= 1 and counts[0][1] >= 1


def test_a_run_whose_images_are_all_gone_stops_in_one_line_naming_the_last(scenes, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr("openpose_lite.training.data.DECODE_CHECK_MAX_IMAGES", 0)
    for image in (scenes["train"] / "images").iterdir():
        _truncate(image)
    out = tmp_path / "run"
    code = train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "--threads", "1", "data.num_workers=1"))
    line = _one_error_line(capfd.readouterr().err)
    assert code == 2, line
    assert re.search(r"error: 10 items in a row could not be read, the last: cannot read image .*\.jpg: .*; is the "
                     r"image folder still there\?", line), line
    assert "no checkpoint yet" in line and not (out / "last.pt").exists()


# ------------------------------------------------------------- 15. an absurd rate, a missing file, nothing to train
@pytest.mark.parametrize("rate", ["1e38", "11", ".inf", ".nan"])
def test_an_absurd_learning_rate_is_refused_in_one_line_before_the_run_folder_exists(scenes, tmp_path, capfd, rate):
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "train.optimizer=adam", f"train.lr={rate}")) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert f"train.lr: expected a number > 0 and <= {MAX_LR:g}" in line
    assert not out.exists()


def test_the_largest_rate_allowed_steps_adam_where_1e38_cannot():
    # Why the bound is where it is: Adam's first step is lr / (1 - beta1) = 10 lr, which float32 holds for
    # any rate allowed (multipliers included) and not for 1e38 (the error the run used to end in).
    with pytest.raises(ValueError, match="the largest per-parameter rate must be <= 10"):
        TrainConfig(lr=MAX_LR / 4, refinement_lr_mult=4.0, bias_lr_mult=2.0)
    for lr, overflows in ((MAX_LR, False), (1e38, True)):
        weight = torch.nn.Parameter(torch.ones(3))
        optimizer = torch.optim.Adam([weight], lr=lr)
        weight.grad = torch.ones(3)
        if overflows:
            with pytest.raises(RuntimeError, match="overflow"):
                optimizer.step()
        else:
            optimizer.step()
            assert torch.isfinite(weight).all()


@pytest.mark.parametrize("run_kind", ["own file", "synthetic"])
def test_a_missing_validation_file_is_refused_by_name_with_exit_2_before_the_run_folder_exists(
        scenes, tmp_path, capfd, run_kind):
    out = tmp_path / "run"
    missing = tmp_path / "nowhere" / "val.json"
    args = [a for a in tiny_args(scenes, out, "train.epochs=1") if not a.startswith("data.val_ann=")]
    if run_kind == "synthetic":
        args = [a for a in args if not a.startswith("data.train_")] + ["data.synthetic=true",
                                                                        "data.synthetic_train_images=4"]
    assert train_vgg19.main([*args, f"data.val_ann={missing}"]) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert line.endswith(f"error: annotation file not found: {missing}"), line  # no "<out>/data:" in front
    assert not out.exists()


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_resuming_a_finished_run_into_another_folder_is_refused_with_the_command_that_trains_further(
        scenes, tmp_path, capfd):
    run = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, run, "train.epochs=1", "--threads", "1")) == 0
    capfd.readouterr()
    before = _files(run)
    elsewhere = tmp_path / "elsewhere"
    last = run / "last.pt"
    assert main(["train", "--resume", str(last), f"train.output_dir={elsewhere}", "--no-progress"]) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert (f"--resume {last}: its run is complete (1 of train.epochs 1), so nothing would be trained into "
            f"{elsewhere}; to train it further there, raise train.epochs: ") in line
    assert not elsewhere.exists() and _files(run) == before  # nothing written here or there
    # The command it gives trains the run further, in the other folder, and the checkpoint it names is there.
    advised = line.split("raise train.epochs: ")[1].split()
    assert main(["train", *advised, "--no-progress", "--threads", "1"]) == 0
    assert f"done: {elsewhere / 'last.pt'}" in capfd.readouterr().out
    assert load_checkpoint(elsewhere / "last.pt")["epoch"] == 2 and _files(run) == before
