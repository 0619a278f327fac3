"""``infer`` under torchrun: the inputs are shared out between the processes, whole sequences at
a time, and the merged outputs are those of a single-process run, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import mixed_folder

from openpose_lite.cli.infer import _collect_inputs, _Stream
from openpose_lite.cli.shards import Shard


def _inputs(tmp_path: Path) -> list[Path]:
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(4):
        (frames / f"f{n}.jpg").write_bytes(b"")
    for name in ("a.mp4", "b.mp4", "lone.jpg"):
        (tmp_path / name).write_bytes(b"")
    return [frames, tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "lone.jpg"]


@pytest.mark.parametrize("track", [False, True])
def test_every_input_goes_to_exactly_one_rank_and_sequences_stay_whole(track, tmp_path):
    inputs = _collect_inputs(_inputs(tmp_path))
    shares = [_Stream(inputs, Shard(rank, 3), track).mine for rank in range(3)]
    assert sorted(n for share in shares for n in share) == list(range(len(inputs)))
    frames = [n for n, i in enumerate(inputs) if i.path.parent.name == "frames"]
    holders = {rank for rank, share in enumerate(shares) for n in frames if n in share}
    # Tracking follows people through a folder's frames, so one rank takes the folder; otherwise
    # its images are shared out one by one.
    assert len(holders) == (1 if track else 3)
    assert _Stream(inputs, Shard(), track).mine == list(range(len(inputs)))


@pytest.mark.slow
def test_two_processes_under_torchrun_write_what_one_process_writes(checkpoint, dataset, tmp_path):
    folder = mixed_folder(tmp_path / "inputs", dataset)
    # One thread per process in both runs (torchrun's default), so the network's sums are the same.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    infer = ["infer", str(folder), "--checkpoint", str(checkpoint), "--no-progress", "-o"]
    single, shared = tmp_path / "single", tmp_path / "shared"
    alone = subprocess.run([sys.executable, "-m", "openpose_lite", *infer, str(single)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert alone.returncode == 1, alone.stdout + alone.stderr  # the broken image fails the run
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "openpose_lite", *infer, str(shared)], env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0, run.stdout + run.stderr  # ... under torchrun too
    assert "(2 processes)" in run.stdout and "broken.jpg" in run.stderr
    expected = {p.name: p.read_bytes() for p in sorted(single.iterdir())}
    got = {p.name: p.read_bytes() for p in sorted(shared.iterdir())}  # no shard files are left behind
    assert got == expected
    assert len([n for n in got if n.endswith("_keypoints.json")]) == 3 + 3
