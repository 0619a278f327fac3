"""``infer`` under torchrun: the inputs are shared out between the processes, whole sequences at
a time, and the merged outputs are those of a single-process run, byte for byte with the same
threads per process, to float32 rounding with others; a lost process loses nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import mixed_folder

from openpose_lite.cli.infer import _collect_inputs, _Stream
from openpose_lite.cli.shards import Shard
from openpose_lite.data.synthetic import SceneConfig, write_dataset


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


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


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
    run = subprocess.run(_torchrun("-m", "openpose_lite", *infer, str(shared)), env=env, capture_output=True,
                         text=True, timeout=300)
    # Under torchrun a process that finished its share exits 0, its failed inputs listed by rank 0:
    # torchrun turns any other exit code into a ChildFailedError report with a traceback.
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "ChildFailedError" not in run.stderr
    assert "(2 processes)" in run.stdout and "1 failure (2 processes)" in run.stdout and "failed: " in run.stderr
    assert "broken.jpg" in run.stderr
    expected = {p.name: p.read_bytes() for p in sorted(single.iterdir())}
    got = {p.name: p.read_bytes() for p in sorted(shared.iterdir())}  # no journals are left behind
    assert got == expected
    assert len([n for n in got if n.endswith("_keypoints.json")]) == 3 + 3

    # Rank 0 owns the folder: a second run appends to it, every rank naming its outputs around the first run's.
    again = subprocess.run(_torchrun("-m", "openpose_lite", *infer, str(shared), "--append"), env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    images = json.loads((shared / "images.json").read_text())
    assert len(images) == 2 * 6 and len({e["json"] for e in images.values()}) == 12
    assert {p.name for p in shared.glob("*_keypoints.json")} == {e["json"] for e in images.values()}
    assert all(got[name] == (shared / name).read_bytes() for name in got if name.endswith("_keypoints.json"))

    # With other thread counts the network sums in another order: a person at a threshold may be found
    # in one run only, the others' numbers agree to float32 rounding (docs/cli.md states these bounds).
    threads = subprocess.run([sys.executable, "-m", "openpose_lite", *infer, str(tmp_path / "threads")],
                             env={**os.environ, "OMP_NUM_THREADS": "2"}, capture_output=True, text=True, timeout=300)
    assert threads.returncode == 1, threads.stderr
    moved, score_moved, unmatched, people = _differences(json.loads(expected["results_coco.json"]),
                                                         json.loads((tmp_path / "threads" / "results_coco.json").read_text()))
    assert moved <= 0.05 and score_moved <= 1e-5 and unmatched <= 0.01 * people, (moved, score_moved, unmatched, people)


def _differences(ours: list[dict], theirs: list[dict]) -> tuple[float, float, int, int]:
    """(largest keypoint move in px, largest score change, people found in one run only, people) of two
    runs' COCO results, each person matched to the nearest one of the other run in the same image."""
    moved = score_moved = 0.0
    unmatched = 0
    for image_id in {r["image_id"] for r in ours + theirs}:
        mine = [r for r in ours if r["image_id"] == image_id]
        other = [r for r in theirs if r["image_id"] == image_id]
        for person in mine:
            gaps = [np.abs(np.subtract(person["keypoints"], o["keypoints"])).max() for o in other]
            if not gaps or min(gaps) >= 1.0:
                unmatched += 1
                continue
            match = other.pop(int(np.argmin(gaps)))
            moved, score_moved = max(moved, min(gaps)), max(score_moved, abs(person["score"] - match["score"]))
        unmatched += len(other)
    return moved, score_moved, unmatched, len(ours)


_LOSE_RANK_1 = """
import os, signal, sys
from openpose_lite.cli import main, outputs

if os.environ["RANK"] == "1":  # rank 1 is lost after its third image: SIGKILL, no clean-up of any kind
    record = outputs.InferRun.record

    def record_then_die(self, *args, **kwargs):
        name = record(self, *args, **kwargs)
        if self.num_images == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return name

    outputs.InferRun.record = record_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_lost_process_leaves_rank_0_writing_the_index_of_what_was_done_and_naming_the_rest(checkpoint, tmp_path):
    scenes = write_dataset(tmp_path / "scenes", 24, seed=3, cfg=SceneConfig(image_hw=(64, 96))).parent / "images"
    script = tmp_path / "lose_rank_1.py"
    script.write_text(_LOSE_RANK_1)
    out = tmp_path / "out"
    run = subprocess.run(_torchrun(str(script), "infer", str(scenes), "--checkpoint", str(checkpoint), "-o", str(out),
                                   "--no-progress"), env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0  # torchrun reports the lost process itself
    ours = [line for line in run.stderr.splitlines() if line.startswith("openpose-lite infer")]
    assert len(ours) == 1, run.stderr
    assert "(unfinished: rank 1)" in ours[0] and "inputs not processed: " in ours[0]
    files = {p.name for p in out.glob("*_keypoints.json")}
    index = json.loads((out / "images.json").read_text())
    # Everything that was written is in the index, rank 1's three images included, and nothing else;
    # what is missing is named.
    assert {entry["json"] for entry in index.values()} == files
    assert sum(int(Path(e["file"]).stem) % 2 == 0 for e in index.values()) == 3  # rank 1 had the even inputs
    missing = int(re.search(r"(\d+) inputs not processed", ours[0]).group(1))
    assert missing == 24 - len(files) and missing > 0
    assert not list(out.glob(".infer-shard-*"))
