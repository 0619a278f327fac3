"""Two-process DDP on CPU (gloo) through torchrun: the ranks stay identical, rank 0 alone writes.

The run trains two steps (two epochs of one step; the trunk frozen for the first), so it
also checks that the trunk, released after DDP was first built, is synchronised: DDP only
reduces the gradients of parameters that required grad when it was built, which is why the
script wraps the model again at the release.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.training import metrics
from openpose_lite.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def test_two_process_gloo_run_keeps_ranks_identical_and_only_rank0_writes(tmp_path):
    scenes = tmp_path / "scenes"
    cfg = SceneConfig(image_hw=(96, 96), people_range=(1, 2), person_height_range=(0.5, 0.9))
    write_dataset(scenes, 4, seed=5, cfg=cfg)
    out, dumps = tmp_path / "run", tmp_path / "dumps"
    dumps.mkdir()
    ann, images = scenes / "annotations.json", scenes / "images"
    args = [
        "--output-dir", str(out), "--no-progress",
        f"data.train_ann={ann}", f"data.train_images={images}", "data.val_ann=null", "data.val_images=null",
        "data.val_split=0",
        "data.crop_size=64", "data.num_workers=0", "codec.input_size=64",
        "model.num_stages=2", "model.stage_channels=8", "model.width_mult=0.125",
        # 4 images, 2 ranks, batch 2: one step per epoch on each rank, each rank its own images.
        "train.batch_size=2", "train.epochs=2", "train.freeze_trunk_epochs=1", "train.device=cpu",
        "train.optimizer=sgd", "train.lr=1e-3", "train.weight_decay=1e-3", "train.log_every=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests" / "ddp_worker.py"), str(dumps), *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = {(r, e): torch.load(dumps / f"rank{r}_epoch{e}.pt", map_location="cpu", weights_only=True)
             for r in (0, 1) for e in (1, 2)}
    for e in (1, 2):
        zero, one = ranks[(0, e)], ranks[(1, e)]
        assert zero["ddp"] and one["ddp"], "the model was not wrapped in DistributedDataParallel"
        assert zero["steps"] == one["steps"] == 1.0 and zero["samples"] == 4.0  # samples summed over ranks
        for key, value in zero["state"].items():
            assert torch.equal(value, one["state"][key]), f"epoch {e}: {key} differs between the ranks"
    # The step of epoch 2 moved the released trunk (identically on both ranks, checked above).
    assert not torch.equal(ranks[(0, 1)]["state"]["trunk.conv1_1.weight"], ranks[(0, 2)]["state"]["trunk.conv1_1.weight"])
    assert torch.equal(load_checkpoint(out / "last.pt")["model"]["trunk.conv1_1.weight"],
                       ranks[(0, 2)]["state"]["trunk.conv1_1.weight"])

    records = metrics.read_jsonl(out / "metrics.jsonl")
    assert [r["type"] for r in records].count("run_start") == 1  # rank 1 logged nothing
    assert records[0]["world_size"] == 2
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]
    assert proc.stdout.count("epoch 2/2") == 1  # only rank 0 prints
