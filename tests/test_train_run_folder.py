"""The run folder stays consistent whatever happens: kills between writes, occupied folders, resume rules,
non-finite stops, a full disk, Ctrl-C; and the training command line (prog names, ``-v train``, no bars
off a terminal).

Runs are the tiny ones of tests/test_train.py (seconds each). The kill-at-the-write test holds
best.pt's temporary file open for a while (the training process sleeps inside that write) so
that the watcher, which polls the run folder, reliably kills it exactly then.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import (
    REPO,
    TRAIN_SCRIPT,
    load_train_script,
    tiny_args,
    write_tiny_scenes,
)

from openpose_lite.cli import main as cli_main
from openpose_lite.cli.train import _Printer
from openpose_lite.config import Config, ModelConfig
from openpose_lite.run_lock import LOCK_NAME
from openpose_lite.training import branches, trainer
from openpose_lite.training.checkpoint import load_checkpoint, save_checkpoint
from openpose_lite.training.trainer import SCRATCH, TrainResult
from openpose_lite.training.metrics import cut_back, read_jsonl

train_vgg19 = load_train_script()

# Adam from scratch: epoch 2's training loss is far below epoch 1's (so best.pt is written at
# epoch 2), and no validation set, so the watched metric is the training loss (no AP to compute).
TRAIN_LOSS_RUN = ("data.val_ann=null", "data.val_images=null", "data.val_split=0", "train.optimizer=adam",
                  "train.lr=1e-3", "train.freeze_trunk_epochs=0")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


@pytest.fixture(scope="module")
def one_epoch_run(scenes, tmp_path_factory) -> Path:
    """A finished one-epoch run (Adam, validation set); tests copy it before changing it."""
    out = tmp_path_factory.mktemp("one_epoch") / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "train.optimizer=adam", "train.lr=1e-3",
                                      "train.freeze_trunk_epochs=0")) == 0
    return out


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def _epochs(run: Path) -> list[int]:
    return [r["epoch"] for r in read_jsonl(run / "metrics.jsonl") if r["type"] == "epoch"]


def _temp_files(run: Path) -> list[str]:
    """Hidden files a write left behind (the run's lock file is not one: it stays, see run_lock.py)."""
    return sorted(p.name for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME)


def _assert_best_pt_holds_the_best_epoch(run: Path) -> None:
    epochs = [r for r in read_jsonl(run / "metrics.jsonl") if r["type"] == "epoch"]
    best_record = min(epochs, key=lambda r: r["train/loss"])
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert best["epoch"] == best["best_epoch"] == best_record["epoch"]
    assert best["best_metric"] == pytest.approx(best_record["train/loss"], rel=1e-9)
    assert last["best_metric"] == best["best_metric"] and last["best_epoch"] == best["epoch"]


# ------------------------------------------------------------------ kills between the writes
_SLOW_BEST_WRITE = """
import os, runpy, sys, time
import torch
real_save = torch.save
def save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    name = os.path.basename(getattr(f, "name", ""))
    if name.startswith(".best.pt.") and isinstance(obj, dict) and obj.get("epoch", 0) >= 2:
        f.flush()
        time.sleep(120)  # best.pt's temp file stays, half-way through its write, until the watcher kills us
torch.save = save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_sigkill_when_best_pt_temp_appears_then_resume_ends_with_best_pt_holding_the_best_epoch(scenes, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", _SLOW_BEST_WRITE, str(TRAIN_SCRIPT),
           *tiny_args(scenes, out, *TRAIN_LOSS_RUN, "train.epochs=3")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 150
    try:
        # The watcher polls the run folder: once epoch 1 is checkpointed, the next best.pt temp file is epoch 2's.
        while not ((out / "last.pt").is_file() and list(out.glob(".best.pt.*"))):
            if proc.poll() is not None:
                raise AssertionError(f"training ended ({proc.returncode}) before best.pt was rewritten: "
                                     f"{proc.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, "best.pt was never rewritten"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    killed_epoch2 = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "epoch"][-1]
    assert killed_epoch2["epoch"] == 2  # logged before its checkpoints
    assert _temp_files(out) and load_checkpoint(out / "best.pt")["epoch"] == load_checkpoint(out / "last.pt")["epoch"] == 1

    assert train_vgg19.main(["--resume", str(out / "last.pt"), "--no-progress"]) == 0
    assert _temp_files(out) == []  # the stale temp file was removed
    assert _epochs(out) == [1, 2, 3]  # epoch 2 logged once: the killed run's record was cut back
    redone = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "epoch"][1]
    assert redone["train/loss"] == pytest.approx(killed_epoch2["train/loss"], rel=1e-6)
    steps = [r["global_step"] for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train_step"]
    assert steps == list(range(1, 7))  # nothing duplicated, nothing lost
    _assert_best_pt_holds_the_best_epoch(out)


def test_interrupt_between_best_pt_and_last_pt_then_resume_keeps_them_consistent(scenes, tmp_path, monkeypatch, capsys):
    real = trainer.save_training_state

    def interrupted_at_last_pt_of_epoch_2(path, model, optimizer, scheduler, epoch, *args, **kwargs):
        if Path(path).name == "last.pt" and epoch == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises, right after best.pt of epoch 2 was written
        return real(path, model, optimizer, scheduler, epoch, *args, **kwargs)

    monkeypatch.setattr(trainer, "save_training_state", interrupted_at_last_pt_of_epoch_2)
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, *TRAIN_LOSS_RUN, "train.epochs=3")) == train_vgg19.EXIT_INTERRUPTED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted after epoch 1 of 3" in err[0]
    assert f"written in {out}: config.yaml, metrics.jsonl" in err[0] and "best.pt" in err[0] and "last.pt" in err[0]
    assert load_checkpoint(out / "best.pt")["epoch"] == 2 and load_checkpoint(out / "last.pt")["epoch"] == 1

    monkeypatch.undo()
    assert train_vgg19.main(["--resume", str(out / "last.pt"), "--no-progress"]) == 0
    assert _epochs(out) == [1, 2, 3]
    _assert_best_pt_holds_the_best_epoch(out)


@pytest.mark.slow
def test_ctrl_c_during_training_prints_one_line_and_exits_130(scenes, tmp_path):
    out = tmp_path / "run"
    # No DataLoader workers: CPython loses a KeyboardInterrupt that lands in its at-fork hooks, which
    # a worker start runs every epoch; that race is not what this test is about.
    cmd = [sys.executable, str(TRAIN_SCRIPT), *tiny_args(scenes, out, *TRAIN_LOSS_RUN, "train.epochs=1000")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.monotonic() + 150
    while not (out / "last.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == train_vgg19.EXIT_INTERRUPTED
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted after epoch" in lines[0], err[-3000:]
    assert "config.yaml, metrics.jsonl" in lines[0] and f"--resume {out / 'last.pt'}" in lines[0]


def test_cut_back_drops_what_follows_the_checkpoint_and_keeps_what_precedes_it(tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [{"type": "run_start", "start_epoch": 0},
               {"type": "train_step", "epoch": 1, "global_step": 1}, {"type": "train_step", "epoch": 1, "global_step": 2},
               {"type": "epoch", "epoch": 1, "global_step": 2},
               {"type": "train_step", "epoch": 2, "global_step": 3}, {"type": "epoch", "epoch": 2, "global_step": 4}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"type": "train_st')  # a torn tail
    assert cut_back(log, epoch=1, global_step=2) == 2
    assert read_jsonl(log) == records[:4]
    assert log.read_text().endswith("}\n")  # the torn line is gone too


# ------------------------------------------------------------------ which folder a run writes
def test_a_fresh_run_refuses_a_folder_that_holds_a_run_unless_overwrite(one_epoch_run, scenes, tmp_path, capsys):
    out = _copy(one_epoch_run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    args = tiny_args(scenes, out, "train.epochs=1")
    assert train_vgg19.main(args) == train_vgg19.EXIT_USAGE
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched

    (out / ".last.pt.openpose-lite-tmp-k1ll3d.pt").write_bytes(b"half a checkpoint")  # left by a kill mid-write
    no_bars = [a for a in args if a != "--no-progress"]  # stderr is not a terminal here: no bars either way
    assert train_vgg19.main([*no_bars, "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "\r" not in err
    assert _temp_files(out) == []
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["type"] for r in records].count("run_start") == 1 and _epochs(out) == [1]


def test_resume_file_writes_into_its_own_folder_not_the_one_its_config_names(one_epoch_run, tmp_path):
    original = _copy(one_epoch_run, tmp_path / "original")
    moved = _copy(one_epoch_run, tmp_path / "moved")  # its checkpoints' config still names one_epoch_run
    before = (original / "metrics.jsonl").read_bytes()
    assert train_vgg19.main(["--resume", str(moved / "last.pt"), "train.epochs=2", "--no-progress"]) == 0
    assert load_checkpoint(moved / "last.pt")["epoch"] == 2 and _epochs(moved) == [1, 2]
    assert load_checkpoint(one_epoch_run / "last.pt")["epoch"] == 1
    assert (original / "metrics.jsonl").read_bytes() == before
    assert load_checkpoint(moved / "last.pt")["config"]["train"]["output_dir"] == str(moved)


def test_bare_resume_rebuilds_from_the_checkpoint_config(one_epoch_run, tmp_path):
    out = _copy(one_epoch_run, tmp_path / "run")
    # No model or data overrides: the defaults would be a full-size CMU model on no data.
    assert train_vgg19.main(["--output-dir", str(out), "--resume", "train.epochs=2", "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert load_checkpoint(out / "last.pt")["config"]["model"]["width_mult"] == 0.125
    assert "width_mult: 0.125" in (out / "config.yaml").read_text()


def test_resuming_a_finished_run_says_it_is_complete_and_how_to_train_further(one_epoch_run, tmp_path, capsys):
    out = _copy(one_epoch_run, tmp_path / "run")
    assert train_vgg19.main(["--resume", str(out / "last.pt"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert ("resuming after epoch 1 of 1: the run is complete, nothing left to train; to train further raise "
            f"train.epochs (e.g. --resume {out / 'last.pt'} train.epochs=2)") in printed
    assert _epochs(out) == [1]


def test_resume_overrides_take_effect_or_are_refused(one_epoch_run, tmp_path, capsys):
    out = _copy(one_epoch_run, tmp_path / "run")
    config_before = (out / "config.yaml").read_text()
    for override, key in (("train.optimizer=sgd", "train.optimizer"), ("model.num_stages=3", "model.num_stages")):
        assert train_vgg19.main(["--resume", str(out / "last.pt"), override, "train.epochs=2"]) == train_vgg19.EXIT_USAGE
        err = capsys.readouterr().err
        assert f"{key} cannot change on --resume" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert (out / "config.yaml").read_text() == config_before  # refused before anything was written

    assert train_vgg19.main(["--resume", str(out / "last.pt"), "train.lr=0.01", "train.epochs=2", "--no-progress"]) == 0
    resumed = load_checkpoint(out / "last.pt")
    assert [g["lr"] for g in resumed["optimizer"]["param_groups"]] == [pytest.approx(0.01)]
    assert resumed["config"]["train"]["lr"] == 0.01


def test_resume_from_a_bad_checkpoint_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(2048))
    weights_only = tmp_path / "weights_only.pt"
    save_checkpoint(weights_only, model_state={"w": torch.zeros(1)}, config={})  # no optimizer, epoch, RNG
    config = REPO / "configs" / "vgg19_synthetic_cpu.yaml"
    out = tmp_path / "run"
    for checkpoint, expected in ((bad, "not a weights-only PyTorch file"), (weights_only, "not a training checkpoint")):
        code = train_vgg19.main(["--config", str(config), "--resume", str(checkpoint), "--output-dir", str(out)])
        assert code == train_vgg19.EXIT_USAGE
        err = capsys.readouterr().err
        assert str(checkpoint) in err and expected in err and len(err.splitlines()) == 1
        assert not out.exists()  # no config.yaml, no generated scenes


def test_a_codec_stride_other_than_the_models_is_refused_before_anything_is_written(scenes, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "codec.stride=4", "train.epochs=1")) == train_vgg19.EXIT_USAGE
    err = capsys.readouterr().err
    assert "stride is 4" in err and "stride is 8" in err
    assert not out.exists()


# ------------------------------------------------------------------ stops
@pytest.mark.parametrize("nan_from_call, kept", [(3, None), (5, "best.pt")],
                         ids=["first-step-of-epoch-2:-no-sound-checkpoint", "epoch-3:-best.pt-of-epoch-1"])
def test_non_finite_stop_names_the_newest_checkpoint_whose_loss_was_finite(scenes, tmp_path, monkeypatch, capsys,
                                                                           nan_from_call, kept):
    real, calls = branches.bottomup_loss_terms, {"n": 0}

    def poisoned(outputs, targets, weights):
        # 2 steps per epoch: calls 1-2 are epoch 1, 3-4 epoch 2 (made worse: best.pt stays at epoch 1), 5- epoch 3.
        calls["n"] += 1
        terms = real(outputs, targets, weights)
        scale = float("nan") if calls["n"] >= nan_from_call else (10.0 if calls["n"] >= 3 else 1.0)
        return {name: value * scale for name, value in terms.items()}

    monkeypatch.setattr(branches, "bottomup_loss_terms", poisoned)  # the branch row names it
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, *TRAIN_LOSS_RUN, "train.epochs=3")) == train_vgg19.EXIT_STOPPED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "step 1" in err
    if kept is None:
        # last.pt = best.pt = epoch 1, whose weights gave the NaN: resuming from it would fail at once.
        assert "no checkpoint with finite weights and a finite loss exists" in err
    else:
        assert f"is {out / kept} (epoch 1)" in err and f"not from {out / 'last.pt'}" in err


def test_a_full_disk_stops_training_with_one_line_and_exit_1(scenes, tmp_path, monkeypatch, capsys):
    def no_space(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, *TRAIN_LOSS_RUN, "train.epochs=1")) == train_vgg19.EXIT_STOPPED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out / 'best.pt'}: No space left on device" in err[0]
    assert f"written in {out}: config.yaml, metrics.jsonl" in err[0]
    assert _temp_files(out) == []


# ------------------------------------------------------------------ the command line
def test_train_help_and_errors_name_the_command_the_user_typed(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["train", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: openpose-lite train ")
    with pytest.raises(SystemExit) as done:
        cli_main(["train", "--epochs", "many"])
    assert done.value.code == 2 and "usage: openpose-lite train " in capsys.readouterr().err
    assert train_vgg19.get_args_parser().prog == "train_vgg19.py"


def test_openpose_lite_v_train_reaches_the_training_parser(capsys):
    assert cli_main(["-v", "train", "train.lr=fast", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" not in err and "train.lr" in err


def test_the_hrnet_start_lines_count_person_crops_and_name_the_hrnet_backbone_file():
    lines: list[str] = []
    cfg = Config(model=ModelConfig(arch="hrnet"))
    hrnet = branches.branch_of(cfg)
    result = TrainResult(output_dir=Path("runs/x"), branch=hrnet.title, model="HRNet-W16", trunk_init=SCRATCH,
                         backbone_file=branches.backbone_file(cfg), train_samples=400, sample_kind=hrnet.sample_kind)
    _Printer(lines.append).started(result)
    assert "ImageNet HRNet" in lines[0] and "vgg19" not in lines[0]
    assert "400 person crops" in lines[1] and "training images" not in lines[1]
