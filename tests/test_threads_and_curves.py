"""``--threads N`` (infer, eval, train, bench: one meaning, openpose_lite.devices.set_threads) reaches
the network's computation; every training run writes ``curves.png`` (losses per stage and branch,
learning rate, validation AP) at each evaluation, and TensorBoard event files with ``--tensorboard``."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import import_optional
from train_helpers import load_train_script, tiny_args, write_tiny_scenes

from openpose_lite import devices
from openpose_lite.cli import main
from openpose_lite.inference.network import NetworkRunner
from openpose_lite.training import engine
from openpose_lite.training.curves import curves_figure, epoch_records, loss_terms

train_vgg19 = load_train_script()


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------------- threads
def test_set_threads_is_torchs_intra_op_count_and_0_keeps_the_default(restore_threads):
    assert devices.set_threads(1) == 1 == torch.get_num_threads()
    assert devices.set_threads(2) == 2 == torch.get_num_threads()
    assert devices.set_threads(0) == 2  # 0: leave it as it is (torch's default in a fresh process)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads: expected an integer >= 0"):
            devices.set_threads(bad)


@pytest.fixture
def threads_seen(monkeypatch):
    """torch's thread count each time the network runs (infer, eval) or an epoch trains."""
    seen: list[int] = []
    call = NetworkRunner.__call__
    train_one_epoch = engine.train_one_epoch

    def network(self, batch):
        seen.append(torch.get_num_threads())
        return call(self, batch)

    def epoch(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return train_one_epoch(*args, **kwargs)

    monkeypatch.setattr(NetworkRunner, "__call__", network)
    monkeypatch.setattr(engine, "train_one_epoch", epoch)
    return seen


@pytest.mark.parametrize("threads", [1, 2])
def test_infer_and_eval_run_the_network_on_threads_threads(threads, threads_seen, restore_threads, checkpoint, dataset,
                                                           tmp_path):
    torch.set_num_threads(3)
    assert main(["infer", str(dataset / "images" / "000001.jpg"), "--checkpoint", str(checkpoint), "-o",
                 str(tmp_path / "out"), "--no-progress", "--threads", str(threads)]) == 0
    assert threads_seen and set(threads_seen) == {threads}
    threads_seen.clear()
    torch.set_num_threads(3)
    assert main(["eval", "--checkpoint", str(checkpoint), "--ann", str(dataset / "annotations.json"),
                 "--images", str(dataset / "images"), "--max-images", "1", "--threads", str(threads)]) == 0
    assert threads_seen and set(threads_seen) == {threads}


def test_without_threads_infer_keeps_torchs_count(threads_seen, restore_threads, checkpoint, dataset, tmp_path):
    torch.set_num_threads(3)
    assert main(["infer", str(dataset / "images" / "000001.jpg"), "--checkpoint", str(checkpoint), "-o",
                 str(tmp_path / "out"), "--no-progress"]) == 0
    assert set(threads_seen) == {3}


def _openmp_environment(code: str, **env: str) -> dict[str, str]:
    """What torch's OpenMP runtime (libgomp) read at start-up in a fresh interpreter running ``code``:
    libgomp prints its settings on ``OMP_DISPLAY_ENV=VERBOSE`` when it loads."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env, "OMP_DISPLAY_ENV": "VERBOSE"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = dict(re.findall(r"^\s+(\w+) = '([^']*)'", done.stderr, flags=re.M))
    if "GOMP_SPINCOUNT" not in found:
        pytest.skip("torch's OpenMP runtime here is not libgomp (no GOMP_SPINCOUNT in OMP_DISPLAY_ENV)")
    return found


def test_importing_the_package_first_makes_waiting_openmp_threads_sleep_instead_of_spinning():
    # The reference, GCC's libgomp (libgomp/env.c, initialize_env after parse_wait_policy): without
    # GOMP_SPINCOUNT, the spin count is 300000 rounds (about 3 ms) when OMP_WAIT_POLICY is unset,
    # 30000000000 for ACTIVE and 0 for PASSIVE; a GOMP_SPINCOUNT given wins over the policy. On a
    # CPU shared with another job the spinning thread takes the core the working one needs
    # (docs/benchmarks.md, "Threads on a busy CPU").
    assert _openmp_environment("import torch; torch.ones(4).sum()")["GOMP_SPINCOUNT"] == "300000"
    assert _openmp_environment("import openpose_lite, torch; torch.ones(4).sum()")["GOMP_SPINCOUNT"] == "0"
    # What the command line and the training script import first, before torch.
    assert _openmp_environment("import openpose_lite.cli, torch")["GOMP_SPINCOUNT"] == "0"


@pytest.mark.parametrize("env, spin", [({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000"),
                                       ({"GOMP_SPINCOUNT": "1000"}, "1000")])
def test_the_users_own_openmp_wait_setting_wins(env, spin):
    assert _openmp_environment("import openpose_lite, torch", **env)["GOMP_SPINCOUNT"] == spin


@pytest.mark.parametrize("argv", [["infer", "x.jpg", "--threads", "-1"], ["eval", "--ann", "a.json", "--threads", "two"]])
def test_a_bad_thread_count_is_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and "--threads: expected an integer >= 0" in capsys.readouterr().err


# --------------------------------------------------------------------------------- curves
def _records(epochs: int, stages: int, ap_every: int) -> list[dict]:
    out = []
    for e in range(1, epochs + 1):
        r = {"type": "epoch", "epoch": e, "train/loss": 100.0 / e, "train/lr": 1e-3 if e < 3 else 1e-4,
             "train/steps": 4.0, "train/seconds": 2.0, "train/samples_per_s": 8.0, "val/loss": 120.0 / e}
        for s in range(1, stages + 1):
            for branch in ("pafs", "heatmaps"):
                r[f"train/stage{s}/{branch}"] = r[f"val/stage{s}/{branch}"] = 10.0 * s / e
        if e % ap_every == 0:
            r.update({"val/AP": 0.1 * e, "val/AP50": 0.2 * e})
        out.append(r)
    return out


def test_the_curves_give_every_stage_and_branch_its_own_colour_and_label_every_axis():
    epochs = epoch_records([{"type": "run_start"}, *_records(4, stages=3, ap_every=2)])
    assert loss_terms(epochs) == ["stage1/heatmaps", "stage1/pafs", "stage2/heatmaps", "stage2/pafs",
                                  "stage3/heatmaps", "stage3/pafs"]
    fig = curves_figure(epochs, "a run")
    train_ax, val_ax, lr_ax, ap_ax = fig.axes
    for ax in (train_ax, val_ax):
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["total", *loss_terms(epochs)]
        assert len({line.get_color() for line in lines}) == len(lines) == 7  # one colour per series
        assert ax.get_yscale() == "log"
    # a stage and branch has the same colour for training and validation
    assert [line.get_color() for line in train_ax.get_lines()] == [line.get_color() for line in val_ax.get_lines()]
    assert list(lr_ax.get_lines()[0].get_ydata()) == [1e-3, 1e-3, 1e-4, 1e-4]
    ap = {line.get_label(): list(line.get_xdata()) for line in ap_ax.get_lines()}
    assert ap == {"AP": [2, 4], "AP50": [2, 4]}  # the epochs evaluated only
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_title()


def test_a_short_training_run_writes_its_curves_on_the_threads_asked_for(scenes, tmp_path, threads_seen,
                                                                         restore_threads):
    out = tmp_path / "run"
    torch.set_num_threads(2)
    assert train_vgg19.main([*tiny_args(scenes, out, "train.epochs=2", "train.eval_every=1"), "--threads", "1"]) == 0
    assert len(threads_seen) >= 2 and set(threads_seen) == {1}  # both epochs (and the AP's network) on one thread
    assert _png_size(out / "curves.png") == (1100, 750)  # the figure's 11 x 7.5 inches at 100 dpi, drawn whole
    assert not (out / "tensorboard").exists()  # only with --tensorboard
    epochs = epoch_records(json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
    assert [("val/AP" in r) for r in epochs] == [True, True]  # evaluated at both epochs, drawn at both


def test_tensorboard_writes_event_files_next_to_the_curves(scenes, tmp_path):
    import_optional("tensorboard")
    out = tmp_path / "run"
    assert train_vgg19.main([*tiny_args(scenes, out, "train.epochs=1"), "--tensorboard"]) == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*")) and (out / "curves.png").is_file()


def test_tensorboard_without_the_package_is_refused_before_anything_is_written(scenes, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    out = tmp_path / "run"
    assert train_vgg19.main([*tiny_args(scenes, out, "train.epochs=1"), "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert "--tensorboard: TensorBoard cannot be written here" in err and "openpose-lite[tensorboard]" in err
    assert not out.exists()
