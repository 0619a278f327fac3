"""What a hostile or clumsy input does to the commands: a clear line, the right exit code, bounded
memory and time, and nothing lost (one test per kind of input).

Runs that could blow up memory or hang if a bound were lost run in a subprocess with a timeout
(a hang fails the test instead of stopping the suite) and report their own peak resident
memory. The bombs are built here with zlib: a 32000 x 32000 PNG in about 3 MB, a JPEG whose
frame header claims 65000 x 65000.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
import torch
from train_helpers import load_train_script, tiny_args, write_tiny_scenes

from openpose_lite.cli import main
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.coco.validation import AnnotationError
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.images import ImageTooLargeError, read_image
from openpose_lite.io import read_json
from openpose_lite.models.state_dict import read_torch_file
from openpose_lite.run_lock import LOCK_NAME, FolderLockedError, folder_lock
from openpose_lite.training import checkpoint as checkpoint_module
from openpose_lite.training import engine
from openpose_lite.training.checkpoint import load_checkpoint

train_vgg19 = load_train_script()

# Memory is measured as the growth of the peak resident set above what the process holds once torch
# and the CLI are imported: that start-up alone is 0.7 to 1.1 GB and differs between machines and
# environments (torch's CUDA build maps its libraries), while a decoded image bomb adds 2.9 to 6.4 GB.
GROWTH_LIMIT_KB = 1 << 20  # 1 GiB above start-up
DECODE_MARGIN_KB = 256 << 10  # a bomb may cost this much above a run on a small image (decoded: GBs)
TIMEOUT_S = 120  # "within seconds": a hang is what fails; CI machines are slow and shared
# "openpose-lite ARGS" for each ARGS of a JSON list, in one process (one start-up for several
# commands), each command's exit code and stderr reported, then how far the process's peak resident
# memory grew above its start-up.
_RUN = """
import contextlib, io, json, resource, sys
from openpose_lite.cli import main
start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    print("RESULT " + json.dumps([code, err.getvalue()]))
print(f"GROWTH_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_kb}")
"""


def run_cli_calls(calls: list[list[str]], timeout: float = TIMEOUT_S) -> tuple[list[tuple[int, str]], int]:
    """([(exit code, stderr) of ``openpose-lite ARGS`` for each ARGS], peak RSS growth in KiB) of one separate process."""
    proc = subprocess.run([sys.executable, "-c", _RUN, json.dumps([[str(a) for a in c] for c in calls])],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "2"})
    found = re.search(r"GROWTH_KB (\d+)", proc.stdout)
    assert found and proc.returncode == 0, f"exit {proc.returncode}: {proc.stdout[-2000:]} {proc.stderr[-3000:]}"
    results = [tuple(json.loads(line[len("RESULT "):])) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return results, int(found.group(1))


def run_cli(args: list[str], timeout: float = TIMEOUT_S) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS growth in KiB) of ``openpose-lite ARGS`` in a separate process."""
    (result,), growth_kb = run_cli_calls([args], timeout)
    return result[0], result[1], growth_kb


def error_lines(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    return lines


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid all-black RGB PNG of ``width`` x ``height``, a few MB however large: one deflate block
    of 100 zero rows, compressed once and repeated (it refers to nothing before it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows, row_bytes = 100, 3 * width + 1  # each row: filter byte 0 and its pixels
    assert height % rows == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(rows * row_bytes)) + deflate.flush(zlib.Z_SYNC_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # the final, empty block
    adler = ((row_bytes * height) % 65521) << 16 | 1  # Adler-32 of zeros only: a = 1, b = length
    stream = b"\x78\xda" + block * (height // rows) + last + struct.pack(">I", adler)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", stream) + chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, width: int = 65000, height: int = 65000) -> Path:
    """A baseline JPEG frame header (SOF0, 3 components) claiming ``width`` x ``height`` over no data."""
    sof = struct.pack(">BHH", 8, height, width) + bytes([3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])
    path.write_bytes(b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9")
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


# ------------------------------------------------------------------------ 1. decompression bombs
def test_the_bombs_are_refused_from_their_headers_without_decoding(tmp_path):
    png = png_bomb(tmp_path / "bomb.png", 32000, 32000)
    assert png.stat().st_size < 4_000_000
    small = png_bomb(tmp_path / "small.png", 300, 200)  # the same builder makes an image OpenCV reads
    assert read_image(small).shape == (200, 300, 3) and not read_image(small).any()
    for path, size in ((png, "32000x32000"), (jpeg_bomb(tmp_path / "bomb.jpg"), "65000x65000")):
        with pytest.raises(ImageTooLargeError) as refused:
            read_image(path)
        assert str(path) in str(refused.value) and size in str(refused.value)
        assert "134217728" in str(refused.value) and "--max-image-pixels" in str(refused.value)


@pytest.mark.slow
def test_infer_skips_bombs_and_special_files_in_a_folder_with_bounded_memory(checkpoint, dataset, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    png_bomb(folder / "a_bomb.png", 32000, 32000)
    jpeg_bomb(folder / "b_bomb.jpg")
    shutil.copy(dataset / "images" / "000001.jpg", folder / "c_good.jpg")
    os.mkfifo(folder / "d_fifo.jpg")
    (folder / "e_loop.jpg").symlink_to("e_loop.jpg")
    # The good image alone first: what the run costs without the bombs (the peak only grows).
    (good,), baseline_kb = run_cli_calls([["infer", folder / "c_good.jpg", "--checkpoint", checkpoint, "-o",
                                           tmp_path / "out_good", "--no-progress"]])
    assert good[0] == 0, good
    code, err, growth_kb = run_cli(["infer", str(folder), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out"),
                                  "--no-progress"])
    assert code == 1
    failed = [line for line in error_lines(err) if line.startswith("  failed: ")]
    assert len(failed) == 4, err
    assert any("a_bomb.png is 32000x32000 = 1024000000 pixels, above the limit of 134217728" in f for f in failed)
    assert any("b_bomb.jpg is 65000x65000" in f for f in failed)
    assert any("d_fifo.jpg: is a FIFO (named pipe), not a regular file" in f for f in failed)
    assert any("e_loop.jpg: is a symbolic link loop, not a regular file" in f for f in failed)
    assert (tmp_path / "out" / "c_good_keypoints.json").is_file()
    assert growth_kb < GROWTH_LIMIT_KB and growth_kb < baseline_kb + DECODE_MARGIN_KB, (growth_kb, baseline_kb)


@pytest.mark.slow
def test_eval_refuses_a_bomb_up_front_whatever_its_entry_says(checkpoint, dataset, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(dataset / "images", images)
    png_bomb(images / "000002.jpg", 32000, 32000)  # decoders go by content, not by name
    data = json.loads((dataset / "annotations.json").read_text())
    (tmp_path / "mismatch.json").write_text(json.dumps(data))
    data["images"][1].update(width=32000, height=32000)
    (tmp_path / "match.json").write_text(json.dumps(data))
    results, growth_kb = run_cli_calls([["eval", "--checkpoint", checkpoint, "--ann", tmp_path / ann, "--images", images]
                                      for ann in ("mismatch.json", "match.json")])
    for code, err in results:
        line, = error_lines(err)
        assert code == 2 and "1 of the 3 images to evaluate cannot be used" in line and "above the limit" in line
        assert str(images / "000002.jpg") in line
    assert growth_kb < GROWTH_LIMIT_KB, growth_kb


# ------------------------------------------------------------------------ 2. one run per folder
_HOLD = """
import sys, time
from openpose_lite.run_lock import folder_lock
with folder_lock(sys.argv[1], "a test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_locked_folder_is_refused_naming_the_holder_and_freed_when_the_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError) as refused:
            with folder_lock(tmp_path, "a second run"):
                pass
        assert f"PID {holder.pid}" in str(refused.value) and "a test holder" in str(refused.value)
        assert refused.value.holder["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path, "after the kill"):  # the kernel dropped the lock with its process
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_two_trainings_started_at_once_into_one_folder_one_runs_the_other_exits_2(scenes, tmp_path):
    out = tmp_path / "run"
    args = tiny_args(scenes, out, "train.epochs=2", "train.freeze_trunk_epochs=0")
    command = [sys.executable, "-m", "openpose_lite", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    results = [(run.pid, run.wait(timeout=300), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    codes = sorted(code for _, code, _ in results)
    assert codes == [0, 2], results
    (winner, _, _), = [r for r in results if r[1] == 0]
    (_, _, refused), = [r for r in results if r[1] == 2]
    line, = error_lines(refused)
    assert f"{out}: in use by another run (PID {winner} " in line and "--output-dir" in line
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("run_start") == 1
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]


# ------------------------------------------------------------------------ 3. validate before writing
def test_a_missing_training_image_is_caught_before_any_step_and_nothing_is_written(scenes, tmp_path, capsys,
                                                                                  monkeypatch):
    copy = tmp_path / "scenes"
    shutil.copytree(scenes["train"], copy / "train")
    shutil.copytree(scenes["val"], copy / "val")
    (copy / "train" / "images" / "000003.jpg").unlink()
    steps = []
    monkeypatch.setattr(engine, "train_one_epoch", lambda *a, **k: steps.append(1))
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args({"train": copy / "train", "val": copy / "val"}, out)) == 2
    line, = error_lines(capsys.readouterr().err)
    assert "1 of the 8 images that" in line and "is not in this folder (e.g. 000003.jpg)" in line
    assert steps == [] and not out.exists()


def test_refused_annotations_write_nothing_so_the_corrected_run_needs_no_overwrite(scenes, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(scenes["train"], bad)
    data = json.loads((bad / "annotations.json").read_text())
    data["annotations"][0]["keypoints"][0] = 1e30  # the 1e30 keypoint that used to hang the oracle
    (bad / "annotations.json").write_text(json.dumps(data))
    out = tmp_path / "run"
    args = tiny_args(scenes, out, "train.epochs=1")
    assert train_vgg19.main([*args, f"data.train_ann={bad / 'annotations.json'}"]) == 2
    line, = error_lines(capsys.readouterr().err)
    assert f"{bad / 'annotations.json'}: annotation {data['annotations'][0]['id']} has keypoint 0 at (1e+30" in line
    assert "outside its 96x96 image by more than the image's size" in line and not out.exists()
    assert train_vgg19.main(args) == 0  # the corrected run: no --overwrite needed


def test_an_absurd_learning_rate_is_one_line_before_anything_is_written(scenes, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_vgg19.main(tiny_args(scenes, out, "train.lr=1e300")) == 2
    line, = error_lines(capsys.readouterr().err)
    assert "train.lr: expected a number > 0 and <= 10 (recipes train at 1e-5 to 1; a larger rate diverges at once), " \
        "got 1e+300" in line
    assert not out.exists()


# ------------------------------------------------------------------------ 4. absurd coordinates, endless files
def test_a_keypoint_at_1e30_is_refused_by_name_and_the_map_kernels_stay_bounded(dataset, tmp_path):
    data = json.loads((dataset / "annotations.json").read_text())
    data["annotations"][0]["keypoints"][0:3] = [1e30, 10, 2]
    ann = tmp_path / "far.json"
    ann.write_text(json.dumps(data))
    code, err, _ = run_cli(["eval", "--oracle", "bottomup", "--ann", str(ann)])
    line, = error_lines(err)
    assert code == 2 and f"{ann}: annotation {data['annotations'][0]['id']} has keypoint 0 at (1e+30, 10)" in line
    # Below the reader, the renderers themselves clip before converting to int (1e30 became INT64_MIN,
    # and numba's range from 0 to it counted 2^63 steps).
    kernels = textwrap.dedent("""
        import numpy as np
        from openpose_lite.codecs.heatmap import render_gaussians
        from openpose_lite.codecs.paf import render_pafs
        a, b = np.array([[6.6, 12.4], [-1e30, 3.0]]), np.array([[4.8e29, 10.7], [5.0, 1e30]])
        for backend in ("numba", "numpy"):
            pafs = render_pafs(a, b, np.array([0, 1]), 2, (46, 62), 1.0, backend)
            maps = render_gaussians(np.concatenate([a, b]), np.array([0, 0, 1, 1]), 2, (46, 62), 1.0, backend=backend)
            print(backend, float(np.abs(pafs).sum()), float(maps.sum()))
    """)
    proc = subprocess.run([sys.executable, "-c", kernels], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    sums = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in proc.stdout.splitlines()}
    # The far limbs still cover the cells they cross (the numpy twin says which), and nothing else.
    assert sums["numba"] == pytest.approx(sums["numpy"]) and sums["numba"][0] > 0


@pytest.mark.slow
def test_boxes_from_dev_zero_or_a_fifo_are_refused_at_once(hrnet_checkpoint, dataset, tmp_path):
    fifo = tmp_path / "boxes.json"
    os.mkfifo(fifo)
    cases = [(boxes, kind, command) for boxes, kind in (("/dev/zero", "a character device"),
                                                       (str(fifo), "a FIFO (named pipe)"))
             for command in (["infer", dataset / "images", "-o", tmp_path / "out"],
                             ["eval", "--ann", dataset / "annotations.json", "--images", dataset / "images"])]
    results, growth_kb = run_cli_calls([[*command, "--checkpoint", hrnet_checkpoint, "--boxes", boxes]
                                      for boxes, _, command in cases])
    for (boxes, kind, _), (code, err) in zip(cases, results):
        line, = error_lines(err)
        assert code == 2 and f"box file {boxes}: is {kind}, not a regular file" in line
    assert growth_kb < GROWTH_LIMIT_KB, growth_kb


def test_special_files_as_inputs_are_named_for_what_they_are(checkpoint, tmp_path, capsys):
    fifo, loop = tmp_path / "pipe.jpg", tmp_path / "loop.jpg"
    os.mkfifo(fifo)
    loop.symlink_to(loop.name)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (loop, "a symbolic link loop"),
                       (Path("/dev/zero"), "a character device")):
        assert main(["infer", str(path), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out")]) == 2
        line, = error_lines(capsys.readouterr().err)
        assert f"input {path}: is {kind}, not an image, a video or a folder" in line
    assert main(["infer", str(tmp_path / "ghost.jpg"), "--checkpoint", str(checkpoint)]) == 2
    assert "input not found" in capsys.readouterr().err


def test_data_files_are_read_only_when_regular_and_bounded(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path, problem in ((fifo, "is a FIFO (named pipe), not a regular file"),
                          (Path("/dev/zero"), "is a character device, not a regular file")):
        with pytest.raises(ValueError, match=re.escape(problem)):
            read_json(path, "annotation file")
        with pytest.raises(ValueError, match=re.escape(problem)):
            CocoKeypoints(path, tmp_path)
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 600 + "0]")
    with pytest.raises(ValueError, match=r"big.json: 1.2 KB, more than a box file may hold \(1 KB\)"):
        read_json(big, "box file", max_bytes=1000)


# ------------------------------------------------------------------------ 5. paths stay where they are put
@pytest.mark.parametrize("file_name", ["../../etc/passwd", "/etc/passwd"])
def test_an_annotation_file_name_outside_the_image_folder_is_refused_unless_allowed(file_name, dataset, tmp_path,
                                                                                   checkpoint, capsys):
    data = json.loads((dataset / "annotations.json").read_text())
    data["images"][1]["file_name"] = file_name
    ann = tmp_path / "escape.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=re.escape(f"image id {data['images'][1]['id']}: file_name "
                                                        f"{file_name!r} is outside the image folder")):
        CocoKeypoints(ann, dataset / "images")
    allowed = CocoKeypoints(ann, dataset / "images", min_people=0, images_anywhere=True)
    assert str(allowed.image_path(1)).endswith("etc/passwd")  # named, not read: a test of the rule only
    assert main(["eval", "--checkpoint", str(checkpoint), "--ann", str(ann), "--images", str(dataset / "images")]) == 2
    line, = error_lines(capsys.readouterr().err)
    assert f"file_name {file_name!r} is outside the image folder" in line and "--images-anywhere" in line


def test_an_annotation_file_whose_category_has_no_keypoints_is_named_before_the_model_runs(checkpoint, dataset,
                                                                                          tmp_path, capsys, monkeypatch):
    from openpose_lite.cli import eval as eval_cli

    data = json.loads((dataset / "annotations.json").read_text())
    data["categories"] = [{"id": 1, "name": "person", "keypoints": []}]
    ann = tmp_path / "no_keypoints.json"
    ann.write_text(json.dumps(data))
    monkeypatch.setattr(eval_cli, "build_predictor", lambda args: pytest.fail("the model was loaded"))
    assert main(["eval", "--checkpoint", str(checkpoint), "--ann", str(ann), "--images", str(dataset / "images")]) == 2
    line, = error_lines(capsys.readouterr().err)
    assert f"{ann}: categories[0] ('person') has keypoints [], expected a non-empty list of keypoint names" in line


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_a_pickled_os_system_is_named_as_pickled_code_not_as_a_truncated_file(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, path)
    with pytest.raises(ValueError) as refused:
        read_torch_file(path)
    message = str(refused.value)
    assert "pickled posix.system" in message or "pickled nt.system" in message
    assert "truncated" not in message and "never run" in message


# ------------------------------------------------------------------------ 6. stops: signals, a full disk
def test_sigterm_mid_folder_leaves_an_index_that_matches_the_files(checkpoint, tmp_path):
    scenes = write_dataset(tmp_path / "many", 60, seed=3, cfg=SceneConfig(image_hw=(64, 96))).parent / "images"
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "openpose_lite", "infer", str(scenes), "--checkpoint",
                            str(checkpoint), "-o", str(out), "--batch-size", "1", "--no-progress"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + TIMEOUT_S
    while len(list(out.glob("*_keypoints.json"))) < 4 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=TIMEOUT_S)
    assert run.returncode == 143, err
    line, = error_lines(err)
    files = {p.name for p in out.glob("*_keypoints.json")}
    index = json.loads((out / "images.json").read_text())
    results = json.loads((out / "results_coco.json").read_text())
    assert 4 <= len(files) < 60 and {entry["json"] for entry in index.values()} == files
    assert {r["image_id"] for r in results} <= {int(i) for i in index}
    assert line.startswith(f"openpose-lite infer: terminated (SIGTERM) after {len(files)} images")
    assert f"{60 - len(files)} inputs not processed" in line and [p.name for p in out.glob(".*")] == [LOCK_NAME]


@pytest.mark.slow
def test_sigterm_during_training_is_one_line_exit_143_and_the_checkpoint_stays(scenes, tmp_path):
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "openpose_lite", "train",
                            *tiny_args(scenes, out, "train.epochs=50", "train.freeze_trunk_epochs=0")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + TIMEOUT_S
    while not (out / "last.pt").is_file() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=TIMEOUT_S)
    assert run.returncode == 143, err
    line, = error_lines(err)
    assert line.startswith("openpose-lite train: terminated (SIGTERM) after epoch ") and "--resume" in line
    assert load_checkpoint(out / "last.pt")["epoch"] >= 1


# In a user namespace of its own (unshare -rm): mount a tmpfs of $1, run the rest, then report the
# last checkpoint's epoch and the temporary files left (the tmpfs goes with the namespace).
_IN_TMPFS = """
mount -t tmpfs -o size=2500k tmpfs "$1" || exit 99
out="$1/run"; shift
"$@"; code=$?
python - "$out" <<'PY'
import pathlib, sys
from openpose_lite.training.checkpoint import load_checkpoint
out = pathlib.Path(sys.argv[1])
print("LAST_EPOCH", load_checkpoint(out / "last.pt")["epoch"])
print("LEFT", [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".openpose-lite.lock"])
PY
exit $code
"""


def _tmpfs_available(where: Path) -> bool:
    """Whether this process may mount a tmpfs in a user namespace of its own."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$1"', "sh", str(where)],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


class _FillingFile(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails every write as a full disk does (ENOSPC)."""

    def __init__(self, fh, room: int) -> None:
        self.fh, self.room = fh, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)


def _full_disk_args(scenes: dict[str, Path], tmp_path: Path) -> tuple[Path, Path, list[str]]:
    root = tmp_path / "disk"
    root.mkdir()
    out = root / "run"
    return root, out, tiny_args(scenes, out, "train.epochs=3", "train.freeze_trunk_epochs=0", "train.lr=1e-3")


def _assert_full_disk_ending(code: int, err: str, out: Path, last_epoch: int, left: list[str]) -> None:
    assert code == 1, err
    line, = error_lines(err)
    assert "last.pt: No space left on device (free some space or write elsewhere with --output-dir)" in line
    resume = re.escape(f" --resume {out / 'last.pt'}")
    assert re.search(f"continue with (python train_vgg19.py|openpose-lite train){resume}", line), line
    assert "RuntimeError" not in err
    assert last_epoch == 1 and left == []  # the last good checkpoint whole, no temporary file left


@pytest.mark.slow
def test_a_full_disk_ends_training_in_one_line_with_the_last_checkpoint_whole(scenes, tmp_path):
    root, out, args = _full_disk_args(scenes, tmp_path)
    if not _tmpfs_available(root):
        pytest.skip("no tmpfs can be mounted here (unshare -rm refused); the patched-write test stands in")
    # A real full disk: a 2.5 MB tmpfs holds one checkpoint (1.3 MB) and not the second one's temporary file.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", _IN_TMPFS, "sh", str(root), sys.executable, "-m",
                           "openpose_lite", "train", *args], capture_output=True, text=True, timeout=300, env=env)
    last_epoch = int(re.search(r"LAST_EPOCH (\d+)", proc.stdout).group(1))
    left = json.loads(re.search(r"LEFT (.*)", proc.stdout).group(1).replace("'", '"'))
    _assert_full_disk_ending(proc.returncode, proc.stderr, out, last_epoch, left)


def test_a_full_disk_met_inside_torch_save_ends_in_one_line_with_the_last_checkpoint_whole(scenes, tmp_path,
                                                                                         monkeypatch, capsys):
    # The write patched instead of a tmpfs: torch.save's zip writer meets ENOSPC in the second checkpoint
    # and raises what it raises on a real full disk (a RuntimeError with the OSError as its context).
    _, out, args = _full_disk_args(scenes, tmp_path)
    real, saves = checkpoint_module.atomic_write, []

    def filling(path, write, binary=False):
        saves.append(path)
        return real(path, lambda fh: write(_FillingFile(fh, 1 << 30 if len(saves) == 1 else 4096)), binary)

    monkeypatch.setattr(checkpoint_module, "atomic_write", filling)
    code = train_vgg19.main(args)
    left = sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME)
    _assert_full_disk_ending(code, capsys.readouterr().err, out, load_checkpoint(out / "last.pt")["epoch"], left)


_LOSE_RANK_1_IN_EPOCH_2 = """
import os, signal, sys
from openpose_lite.training import engine
if os.environ["RANK"] == "1":  # rank 1 dies as its second epoch starts: SIGKILL, no clean-up
    train_one_epoch, calls = engine.train_one_epoch, []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return train_one_epoch(*args, **kwargs)

    engine.train_one_epoch = dying
from openpose_lite.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_lost_torchrun_process_ends_training_in_one_line_with_the_last_checkpoint_whole(scenes, tmp_path):
    script = tmp_path / "lose_rank_1.py"
    script.write_text(_LOSE_RANK_1_IN_EPOCH_2)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), "train", *tiny_args(scenes, out, "train.epochs=4", "train.freeze_trunk_epochs=0",
                                                            "train.batch_size=2")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0  # torchrun reports the lost process itself
    ours = [line for line in proc.stderr.splitlines() if line.startswith("openpose-lite train")]
    assert len(ours) == 1 and "[rank0]" not in proc.stderr, proc.stderr[-3000:]
    # Rank 0 hears of it from gloo (a collective fails) or from torchrun (SIGTERM), whichever comes first.
    assert ("stopped: another process of the run was lost (Connection" in ours[0]
            or "terminated (SIGTERM) after epoch 1" in ours[0]), ours[0]
    assert f"continue with openpose-lite train --resume {out / 'last.pt'}" in ours[0]
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
