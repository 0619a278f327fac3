"""Training: freeze-then-release, exact resume after SIGKILL, non-finite loss stop, logs, engine pieces.

Runs train_vgg19.py on a tiny model (width 1/8, one or two stages) with 64 px crops of a few
generated scenes, so each run takes seconds on a laptop CPU.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from train_helpers import REPO, load_train_script, tiny_args, write_tiny_scenes

from openpose_lite.config import load_config
from openpose_lite.devices import resolve_device
from openpose_lite.factory import ModelConfig, build_model
from openpose_lite.models.weights import load_backbone
from openpose_lite.run_lock import LOCK_NAME
from openpose_lite.training import branches, distributed, engine, metrics, optim
from openpose_lite.training.checkpoint import load_checkpoint

train_vgg19 = load_train_script()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    """Small generated train/val sets shared by the runs of this module."""
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


def build_model_from_dict(model_cfg: dict) -> nn.Module:
    """The network of a plain ``config["model"]`` dict (missing keys: the defaults)."""
    return build_model(ModelConfig.from_dict(model_cfg))


def _initial_model(config_path: Path) -> nn.Module:
    """The model a run starts from: the script seeds with train.seed right before building it."""
    cfg = yaml.safe_load(config_path.read_text())
    torch.manual_seed(cfg["train"]["seed"])
    return build_model_from_dict(cfg["model"])


def _trunk_keys(state: dict) -> list[str]:
    return [k for k in state if k.startswith("trunk.")]


def _same(a: dict, b: dict, keys: list[str]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in keys)


# ------------------------------------------------------------------ freeze then release
def test_trunk_is_frozen_for_the_first_epochs_then_trains(scenes, tmp_path):
    out = tmp_path / "run"
    # SGD with momentum and weight decay: either would move a frozen weight if it were stepped.
    args = tiny_args(scenes, out, "train.freeze_trunk_epochs=1", "train.epochs=1", "train.optimizer=sgd",
                     "train.lr=1e-3", "train.weight_decay=0.1", "train.momentum=0.9")
    assert train_vgg19.main(args) == 0
    init = _initial_model(out / "config.yaml").state_dict()
    after1 = load_checkpoint(out / "last.pt")
    trunk = _trunk_keys(init)
    others = [k for k in init if k not in trunk]
    assert after1["epoch"] == 1
    assert _same(init, after1["model"], trunk), "the trunk moved during a frozen epoch"
    assert not _same(init, after1["model"], others), "the stages did not train"

    # Epoch 2 (resumed, so the released trunk also goes through the resume path) trains it.
    assert train_vgg19.main(["--resume", str(out / "last.pt"), "train.epochs=2"]) == 0
    after2 = load_checkpoint(out / "last.pt")
    assert after2["epoch"] == 2
    changed = [k for k in trunk if not torch.equal(after1["model"][k], after2["model"][k])]
    assert changed == trunk, f"released trunk tensors that did not change: {sorted(set(trunk) - set(changed))}"

    records = metrics.read_jsonl(out / "metrics.jsonl")
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["trunk_frozen"] for r in epochs] == [True, False]


def test_frozen_parameters_are_skipped_by_sgd_and_adam_with_weight_decay():
    for make in (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5),
                 lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.5)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
        opt = make(model.parameters())
        model(torch.randn(4, 3)).sum().backward()
        opt.step()  # momentum / Adam moments now exist for the first layer
        assert optim.set_trainable(model[0].parameters(), False) == 2
        before = [p.detach().clone() for p in model[0].parameters()]
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(before, model[0].parameters()))
        optim.set_trainable(model[0].parameters(), True)
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        assert not any(torch.equal(a, b) for a, b in zip(before, model[0].parameters()))


# ------------------------------------------------------------------ resume after SIGKILL
def _wait_for_checkpoint(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with {proc.returncode}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.02)


def test_run_killed_with_sigkill_resumes_with_same_epoch_optimizer_and_lr(scenes, tmp_path):
    common = ("train.optimizer=adam", "train.lr=1e-3", "train.scheduler=step", "train.step_milestones=[1,2,3]",
              "train.gamma=0.5", "train.freeze_trunk_epochs=0")
    killed = tmp_path / "killed"
    # Far more epochs than it will live for: the kill lands after a checkpoint, mid-run.
    cmd = [sys.executable, str(REPO / "train_vgg19.py"), *tiny_args(scenes, killed, *common, "train.epochs=1000")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(killed / "last.pt", proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(killed / "last.pt")  # atomic writes: whatever is there is complete
    done = saved["epoch"]
    assert done >= 1

    # Resume (config from the checkpoint) for one more epoch ...
    assert train_vgg19.main(["--resume", str(killed / "last.pt"), f"train.epochs={done + 1}"]) == 0
    resumed = load_checkpoint(killed / "last.pt")
    # ... and compare with a run that was never interrupted.
    reference_dir = tmp_path / "reference"
    assert train_vgg19.main(tiny_args(scenes, reference_dir, *common, f"train.epochs={done + 1}")) == 0
    reference = load_checkpoint(reference_dir / "last.pt")

    assert resumed["epoch"] == reference["epoch"] == done + 1
    assert resumed["global_step"] == reference["global_step"]
    for key, value in reference["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    ref_opt, res_opt = reference["optimizer"], resumed["optimizer"]
    assert res_opt["param_groups"] == ref_opt["param_groups"]  # lr, betas, ... included
    assert res_opt["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.5 ** min(done + 1, 3))
    for index, state in ref_opt["state"].items():
        for name, value in state.items():
            assert torch.equal(res_opt["state"][index][name], value), (index, name)
    assert resumed["scheduler"] == reference["scheduler"]


# ------------------------------------------------------------------ non-finite loss
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(scenes, tmp_path, monkeypatch, capsys):
    real = branches.bottomup_loss_terms
    calls = {"n": 0}

    def poisoned(outputs, targets, weights):
        calls["n"] += 1
        terms = real(outputs, targets, weights)
        if calls["n"] > 3:  # epoch 1 (2 steps) and its validation batch are fine, epoch 2 is not
            terms["stage1/pafs"] = terms["stage1/pafs"] * float("nan")
        return terms

    monkeypatch.setattr(branches, "bottomup_loss_terms", poisoned)  # the branch row names it
    out = tmp_path / "run"
    code = train_vgg19.main(tiny_args(scenes, out, "train.epochs=3", "train.freeze_trunk_epochs=0"))
    assert code == train_vgg19.EXIT_STOPPED
    err = capsys.readouterr().err
    assert "non-finite loss at epoch 2" in err and str(out / "last.pt") in err
    kept = load_checkpoint(out / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_train_one_epoch_raises_before_stepping_on_nan():
    model = nn.Conv2d(3, 2, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = (torch.randn(2, 3, 4, 4), {"maps": torch.zeros(2, 2, 4, 4)}, {"maps": torch.ones(2, 1, 4, 4)})

    def nan_loss(outputs, targets, weights):
        return {"maps": (outputs - targets["maps"]).sum() * float("inf") * 0.0}

    with pytest.raises(engine.NonFiniteLossError, match="non-finite loss at epoch 7, step 1"):
        engine.train_one_epoch(model, [batch], opt, nan_loss, torch.device("cpu"), None, epoch=7)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# ------------------------------------------------------------------ outputs of a run
def test_run_saves_resolved_config_logs_and_checkpoints(scenes, tmp_path):
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=2", "train.eval_every=1", "train.lr=2e-3",
                                      "train.freeze_trunk_epochs=0")) == 0
    cfg = load_config(out / "config.yaml")
    assert cfg.train.lr == 2e-3 and cfg.data.crop_size == 64 and cfg.train.output_dir == str(out)

    records = metrics.read_jsonl(out / "metrics.jsonl")
    start = records[0]
    assert start["type"] == "run_start" and start["trunk_init"] == "from scratch (no --backbone-weights)"
    steps = [r for r in records if r["type"] == "train_step"]
    assert len(steps) == 4  # 2 epochs x 2 steps, log_every 1
    for name in ("loss", "stage1/pafs", "stage1/heatmaps", "stage2/pafs", "stage2/heatmaps", "lr", "samples_per_s"):
        assert all(math.isfinite(r[name]) for r in steps), name
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:
        assert {"train/loss", "val/loss", "val/AP", "train/samples_per_s", "next_lr"} <= set(r)
        assert 0.0 <= r["val/AP"] <= 1.0

    best, last = load_checkpoint(out / "best.pt"), load_checkpoint(out / "last.pt")
    assert last["epoch"] == 2 and 1 <= best["epoch"] <= 2 and best["best_metric_name"] == "AP"
    assert last["config"]["train"]["lr"] == 2e-3
    # No temp files left; the lock file stays (see openpose_lite/run_lock.py).
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_backbone_weights_fill_the_trunk_and_stay_fixed_while_frozen(scenes, tmp_path):
    # A file in torchvision's vgg19 layout (features.<i>.weight), random values, full width.
    torch.manual_seed(3)
    vgg = build_model_from_dict({"arch": "vgg19_paf", "num_stages": 1, "width_mult": 1.0})
    positions = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21)
    convs = [m for m in vgg.trunk if isinstance(m, nn.Conv2d)]
    state = {}
    for pos, conv in zip(positions, convs, strict=True):
        state[f"features.{pos}.weight"] = conv.weight.detach().clone()
        state[f"features.{pos}.bias"] = torch.randn_like(conv.bias)
    weights = tmp_path / "vgg19.pth"
    torch.save(state, weights)

    out = tmp_path / "run"
    args = tiny_args(scenes, out, "model.width_mult=1.0", "model.num_stages=1", "train.epochs=1",
                     "train.freeze_trunk_epochs=1", "data.val_ann=null", "data.val_images=null", "data.val_split=0")
    assert train_vgg19.main([*args, "--backbone-weights", str(weights)]) == 0
    trained = load_checkpoint(out / "last.pt")["model"]
    conv_names = [n for n, m in vgg.trunk.named_children() if isinstance(m, nn.Conv2d)]  # conv1_1 ... conv4_2
    # conv1_1 holds the ImageNet input normalisation folded in (tests/test_reference_conventions.py);
    # the other trunk convs are the file's, untouched by the frozen epoch.
    for pos, name in list(zip(positions, conv_names, strict=True))[1:]:
        assert torch.equal(trained[f"trunk.{name}.weight"], state[f"features.{pos}.weight"])
        assert torch.equal(trained[f"trunk.{name}.bias"], state[f"features.{pos}.bias"])
    folded = build_model_from_dict({"arch": "vgg19_paf", "num_stages": 1, "width_mult": 1.0})
    load_backbone(folded, weights)
    assert torch.equal(trained["trunk.conv1_1.weight"], folded.trunk.conv1_1.weight)
    start = metrics.read_jsonl(out / "metrics.jsonl")[0]
    assert start["trunk_init"].startswith("ImageNet VGG19 from")


def test_bad_override_is_a_usage_error(capsys):
    assert train_vgg19.main(["train.lr=fast", "--no-progress"]) == train_vgg19.EXIT_USAGE
    assert "train.lr" in capsys.readouterr().err


def test_shard_sampler_covers_every_index_once():
    shards = [list(distributed.ShardSampler(7, r, 3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7))
    assert [len(distributed.ShardSampler(7, r, 3)) for r in range(3)] == [3, 2, 2]


def test_resolve_device_rejects_missing_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_metrics_logger_appends_lines_and_reader_skips_a_torn_tail(tmp_path):
    path = tmp_path / "m.jsonl"
    with metrics.MetricsLogger(path) as log:
        log.log({"type": "a", "x": 1})
    with metrics.MetricsLogger(path) as log:  # a resumed run appends
        log.log({"type": "b", "x": 2.5})
    with open(path, "a") as fh:
        fh.write('{"type": "c", "x"')  # killed mid-line
    assert metrics.read_jsonl(path) == [{"type": "a", "x": 1}, {"type": "b", "x": 2.5}]
    assert json.loads(path.read_text().splitlines()[0]) == {"type": "a", "x": 1}


def test_kaiming_init_scales_cpm_and_stages_but_keeps_output_convs_small():
    torch.manual_seed(0)
    cmu = build_model_from_dict({"arch": "vgg19_paf", "num_stages": 2, "stage_channels": 32, "width_mult": 0.25})
    torch.manual_seed(0)
    kaiming = build_model_from_dict({"arch": "vgg19_paf", "num_stages": 2, "stage_channels": 32,
                                            "width_mult": 0.25, "init": "kaiming"})
    conv = kaiming.stages[1].pafs.conv1  # 7x7, fan_in = in_channels * 49
    fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.1)
    assert cmu.stages[1].pafs.conv1.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert kaiming.stages[1].pafs.conv7.weight.std().item() == pytest.approx(0.01, rel=0.2)  # output conv
    assert kaiming.cpm.conv4_3.weight.std().item() > 3 * cmu.cpm.conv4_3.weight.std().item()
    for name, value in cmu.trunk.state_dict().items():  # the trunk is drawn the same way by both
        assert torch.equal(value, kaiming.trunk.state_dict()[name]), name
    with pytest.raises(ValueError, match="init"):
        build_model_from_dict({"arch": "vgg19_paf", "init": "xavier"})
