"""``infer`` under a memory limit on the inputs that used to blow it up or abort a folder.

Each run is a separate process with its address space capped (``RLIMIT_AS``; importing torch
alone maps about 3.5 GB of it, so the cap leaves a few GB for the run) and reports how far its
peak resident memory grew above its start-up, so an unbounded network input is killed instead of
swapping, and the measure is this run's own whatever torch costs to import on the machine.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import write_video

from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.models.vgg19_paf import build_vgg19_paf

ADDRESS_SPACE_LIMIT = 6 << 30
# The peak resident memory is measured above what the process holds once torch and the CLI are
# imported: that start-up alone is 0.7 to 1.7 GB and differs between machines and environments.
GROWTH_LIMIT_KB = 1 << 20  # 1 GiB above start-up
_RUN = """
import resource, sys
from openpose_lite.cli import main
start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(sys.argv[1:])
print(f"GROWTH_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_kb}", file=sys.stderr)
sys.exit(code)
"""


def run_infer_limited(args: list[str], timeout: float = 300) -> tuple[int, str, int, float]:
    """(exit code, stderr, peak RSS growth in KiB, seconds) of ``openpose-lite infer ARGS`` in a memory-capped process."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    env = dict(os.environ, OMP_NUM_THREADS="2")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUN, "infer", *args, "--no-progress"], capture_output=True, check=False,
                          text=True, timeout=timeout, preexec_fn=cap, env=env)
    seconds = time.perf_counter() - start
    found = re.search(r"GROWTH_KB (\d+)", proc.stderr)
    assert found, f"the run did not finish (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.returncode, proc.stderr, int(found.group(1)), seconds


@pytest.mark.slow
def test_infer_on_a_1x2000_png_finishes_in_seconds_within_1_gb_of_start_up_with_a_clear_message(tmp_path):
    # The paper-size network (random weights): an unbounded letterbox would make a 368 x 736000 input.
    weights = tmp_path / "vgg19_paf.pt"
    torch.save(build_vgg19_paf().state_dict(), weights)
    line = tmp_path / "line.png"
    cv2.imwrite(str(line), np.random.default_rng(0).integers(0, 255, (1, 2000, 3), dtype=np.uint8))
    code, err, growth_kb, seconds = run_infer_limited([str(line), "--weights", str(weights), "-o", str(tmp_path / "out")])
    assert code == 1
    assert f"{line}: 2000x1 px (width x height): an aspect ratio of 2000:1 is beyond the 32:1" in err
    assert growth_kb < GROWTH_LIMIT_KB and seconds < 60, (growth_kb, seconds)
    print(f"1x2000: {seconds:.1f} s, peak RSS growth {growth_kb / 1024:.0f} MiB")


def _soak_folder(root: Path) -> tuple[Path, list[str], list[str]]:
    """40 files: (folder, names that must be processed, names that must be listed as failures)."""
    folder = root / "soak"
    folder.mkdir()
    scenes = write_dataset(root / "scenes", 26, seed=4, cfg=SceneConfig(image_hw=(96, 128))).parent / "images"
    jpegs = sorted(scenes.glob("*.jpg"))
    good, bad = [], []
    for i, src in enumerate(jpegs[:24]):
        (folder / f"g_{i:02d}.jpg").write_bytes(src.read_bytes())
        good.append(f"g_{i:02d}.jpg")
    scene = cv2.imread(str(jpegs[24]))
    for i in range(2):
        cv2.imwrite(str(folder / f"s16_{i}.png"), scene.astype(np.uint16) * 257)  # 16-bit
        cv2.imwrite(str(folder / f"alpha_{i}.png"), np.dstack([scene, np.full(scene.shape[:2], 200, np.uint8)]))
        good += [f"s16_{i}.png", f"alpha_{i}.png"]
    rng = np.random.default_rng(0)
    for i in range(3):
        (folder / f"random_{i}.jpg").write_bytes(rng.integers(0, 256, 3000 + 500 * i, dtype=np.uint8).tobytes())
    (folder / "empty.png").write_bytes(b"")
    whole = jpegs[25].read_bytes()
    for i, fraction in enumerate((0.1, 0.3, 0.6, 0.95)):
        (folder / f"truncated_{i}.jpg").write_bytes(whole[: int(len(whole) * fraction)])
    cv2.imwrite(str(folder / "row_1x2000.png"), rng.integers(0, 255, (1, 2000, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "row_1x900.png"), rng.integers(0, 255, (1, 900, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "column_3000x1.png"), rng.integers(0, 255, (3000, 1, 3), dtype=np.uint8))
    bad += ["random_0.jpg", "random_1.jpg", "random_2.jpg", "empty.png"] + [f"truncated_{i}.jpg" for i in range(4)]
    bad += ["row_1x2000.png", "row_1x900.png", "column_3000x1.png"]
    video = write_video(root / "whole.avi", frames=10)
    (folder / "video_cut.avi").write_bytes(video.read_bytes()[: int(video.stat().st_size * 0.6)])
    bad.append("video_cut.avi")
    assert len(list(folder.iterdir())) == 40
    return folder, good, bad


@pytest.mark.slow
def test_soak_a_folder_of_good_broken_degenerate_and_truncated_files_under_a_memory_limit(checkpoint, tmp_path):
    folder, good, bad = _soak_folder(tmp_path)
    out = tmp_path / "out"
    code, err, growth_kb, seconds = run_infer_limited([str(folder), "--checkpoint", str(checkpoint), "-o", str(out),
                                                     "--batch-size", "4"])
    assert code == 1  # failures were listed
    failed = [line for line in err.splitlines() if line.startswith("  failed: ")]
    for name in bad:  # every bad file is listed, once
        assert sum(name in line for line in failed) == 1, (name, failed)
    assert len(failed) == len(bad)
    for name in good:  # every good one is processed
        assert (out / f"{Path(name).stem}_keypoints.json").is_file(), name
    frames = sorted(out.glob("video_cut_*_keypoints.json"))
    assert 0 < len(frames) < 10  # the frames before the cut are processed
    index = (out / "images.json").read_text()
    assert index.count('"json"') == len(good) + len(frames)
    assert (out / "results_coco.json").is_file()
    assert "Traceback" not in err and "WARN" not in err and "[mjpeg @" not in err  # no OpenCV/FFmpeg chatter
    assert growth_kb < GROWTH_LIMIT_KB, growth_kb
    print(f"soak: {seconds:.1f} s, peak RSS growth {growth_kb / 1024:.0f} MiB")
