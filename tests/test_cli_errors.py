"""The commands' one error path: bad input -> one line naming the file or option and the fix, exit 2;
a run that stopped -> exit 1 or 130 with what was written; no traceback, no library chatter.

Models are tiny random ones (``tests/conftest.py``'s fixtures); inputs are generated.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import import_optional

from openpose_lite.cli import main
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.models.hrnet import build_hrnet
from openpose_lite.run_lock import LOCK_NAME


def one_error_line(err: str) -> str:
    """The error output must be exactly one line, without a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def exit_code(argv: list[str]) -> int:
    """``main``'s exit code, also when argparse exits by itself (usage errors: 2)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def official_hrnet(tmp_path_factory) -> Path:
    """A bare HRNet state dict (the official files' layout, no config)."""
    path = tmp_path_factory.mktemp("official") / "pose_hrnet_tiny.pth"
    torch.save(build_hrnet(width=8, num_blocks=1).state_dict(), path)
    return path


# ------------------------------------------------------------------------------ weight files
@pytest.mark.parametrize("content", ["text", "random bytes", "pickled object", "truncated"])
def test_garbage_weights_files_give_one_line_naming_the_file(content, checkpoint, dataset, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    if content == "text":
        bad.write_text("these are not weights\n" * 20)
    elif content == "random bytes":
        bad.write_bytes(os.urandom(4000))
    elif content == "pickled object":
        torch.save({"model": {"x": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, bad)
    else:
        bad.write_bytes(checkpoint.read_bytes()[:50_000])
    code = main(["infer", str(dataset / "images"), "--weights", str(bad), "-o", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line
    assert "Please file an issue" not in line and "weights_only` set to `False`" not in line  # torch's advice
    if content == "pickled object":
        assert "argparse.Namespace" in line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_folder_passed_as_checkpoint_suggests_the_best_pt_inside(checkpoint, dataset, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(checkpoint.read_bytes())
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(run), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is a folder" in line and f"did you mean {run / 'best.pt'}?" in line


def test_a_weights_typo_is_one_short_line_without_the_cmu_paragraph(dataset, tmp_path, capsys):
    missing = tmp_path / "body_pose_modle.pth"
    assert main(["infer", str(dataset / "images"), "--weights", str(missing), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "weights file not found" in line and str(missing) in line
    assert "CMU" not in line and len(line) < 200


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize("option, expected", [
    (["--scales", "0"], "argument --scales: expected a positive number"),
    (["--device", "gpu"], "--device: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer"),
    (["--input-size", "100"], "--input-size 100: expected a multiple of the model's stride (8), e.g. 96"),
])
def test_bad_options_are_reported_as_what_they_are_not_as_a_checkpoint_failure(option, expected, checkpoint, dataset,
                                                                              capsys):
    assert exit_code(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "--no-progress", *option]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "cannot load" not in err and str(checkpoint) not in err


def test_cuda_device_without_cuda_names_the_option(checkpoint, dataset, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "--device", "cuda"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("openpose-lite infer: error: --device 'cuda' requested but CUDA is not available")


def test_person_detector_with_an_hrnet_file_fails_up_front(hrnet_checkpoint, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["infer", str(dataset / "images"), "--checkpoint", str(hrnet_checkpoint), "--person-detector",
                 str(hrnet_checkpoint), "-o", str(out), "--no-progress"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--person-detector {hrnet_checkpoint}: holds a top-down model (hrnet)" in line
    assert "bottom-up" in line and not out.exists()


def test_infer_output_naming_an_existing_file_is_refused(checkpoint, dataset, tmp_path, capsys):
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "-o", str(taken)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--output {taken}: is a file" in line
    assert taken.read_text() == "keep me"


# ------------------------------------------------------------------------------ export
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_without_output_writes_beside_the_weights_not_in_the_current_folder(checkpoint, tmp_path, monkeypatch):
    weights = tmp_path / "models" / "tiny.pt"
    weights.parent.mkdir()
    weights.write_bytes(checkpoint.read_bytes())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["export", "--checkpoint", str(weights), "--format", "torchscript", "--input-hw", "32", "32"]) == 0
    assert (weights.parent / "tiny.torchscript.pt").is_file()
    assert list(cwd.iterdir()) == []
    torch.jit.load(str(weights.parent / "tiny.torchscript.pt"))


def test_export_into_an_existing_folder_writes_the_default_name_there(checkpoint, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    assert main(["export", "--weights", str(checkpoint), "--format", "torchscript", "-o", str(folder),
                 "--input-hw", "32", "32"]) == 0
    assert [p.name for p in folder.iterdir()] == ["tiny.torchscript.pt"]


@pytest.mark.parametrize("args, expected", [
    (["--format", "torchscript", "--input-hw", "1", "1"], "--input-hw 1 1: input_hw must be (height, width) of integers >= 8"),
    (["--format", "onnx", "--opset", "99"], "--opset 99: the installed torch exports ONNX opsets 7 to"),
])
def test_export_refuses_bad_sizes_and_opsets_in_one_line(args, expected, checkpoint, tmp_path, capsys):
    if "onnx" in args:
        import_optional("onnx")
    assert main(["export", "--weights", str(checkpoint), "-o", str(tmp_path / "net"), *args]) == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_hrnet_export_defaults_to_its_own_crop_and_a_bad_size_gets_a_hint(official_hrnet, tmp_path, capsys):
    out = tmp_path / "hrnet.pt"
    assert main(["export", "--weights", str(official_hrnet), "--format", "torchscript", "-o", str(out)]) == 0
    assert out.is_file()  # the default --input-hw is the model's (256x192), not 368x368
    assert main(["export", "--weights", str(official_hrnet), "--format", "torchscript", "-o", str(out),
                 "--input-hw", "368", "368"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--input-hw 368 368" in line and "multiples of 32" in line and "e.g. --input-hw 256 192" in line


# ------------------------------------------------------------------------------ eval
def test_eval_with_the_wrong_images_folder_is_refused_up_front_saying_how_many_are_missing(checkpoint, dataset, tmp_path,
                                                                                          capfd):
    wrong = tmp_path / "other_images"
    wrong.mkdir()
    write_dataset(tmp_path / "other", 1, seed=9, cfg=SceneConfig(image_hw=(64, 64)))
    (wrong / "000001.jpg").write_bytes((tmp_path / "other" / "images" / "000001.jpg").read_bytes())
    code = main(["eval", "--checkpoint", str(checkpoint), "--ann", str(dataset / "annotations.json"),
                 "--images", str(wrong)])
    assert code == 2
    captured = capfd.readouterr()  # file descriptors: OpenCV writes its warnings there, not to sys.stderr
    line = one_error_line(captured.err)
    assert "2 of the 3 images to evaluate are not in this folder" in line
    assert "WARN" not in captured.err and "cannot read image" not in captured.err and captured.out == ""


def test_eval_headers_say_labelled_people_for_ground_truth_and_detected_for_the_model(checkpoint, dataset, capsys):
    ann = dataset / "annotations.json"
    labelled = sum(1 for a in json.loads(ann.read_text())["annotations"] if not a.get("iscrowd") and a["num_keypoints"] > 0)
    assert main(["eval", "--checkpoint", str(checkpoint), "--ann", str(ann), "--images", str(dataset / "images")]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert f"3 images ({labelled} labelled people)" in header and "people detected" in header
    assert main(["eval", "--oracle", "bottomup", "--ann", str(ann)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert f"3 images, {labelled} labelled people" in header and "people decoded" in header


@pytest.mark.slow
def test_topdown_eval_follows_the_checkpoints_flip_test_unless_told(hrnet_checkpoint, dataset, capsys):
    base = ["eval", "--checkpoint", str(hrnet_checkpoint), "--ann", str(dataset / "annotations.json"),
            "--images", str(dataset / "images"), "--max-images", "1"]
    assert main(base) == 0
    assert "flip on" in capsys.readouterr().out.splitlines()[0]
    assert main([*base, "--no-flip"]) == 0
    assert "flip off" in capsys.readouterr().out.splitlines()[0]


def test_progress_bars_are_not_drawn_when_stderr_is_not_a_terminal(checkpoint, dataset, capsys):
    ann = str(dataset / "annotations.json")
    assert main(["eval", "--checkpoint", str(checkpoint), "--ann", ann, "--images", str(dataset / "images")]) == 0
    assert main(["eval", "--oracle", "bottomup", "--ann", ann]) == 0
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "-o",
                 str(dataset.parent / "progress_out")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err and "img/s" not in err, err


# ------------------------------------------------------------------------------ stopped runs
def test_ctrl_c_in_infer_exits_130_with_one_line_listing_what_was_written(checkpoint, dataset, tmp_path, capsys,
                                                                          monkeypatch):
    from openpose_lite.inference.bottomup import BottomUpPredictor

    real, calls = BottomUpPredictor.forward, []

    def interrupted_on_the_second(self, prepared):  # Ctrl-C reaches the main thread, which runs the network
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, prepared)

    monkeypatch.setattr(BottomUpPredictor, "forward", interrupted_on_the_second)
    out = tmp_path / "out"
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "-o", str(out)]) == 130
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("openpose-lite infer: interrupted after 1 image; wrote 1 keypoint file")
    assert "results_coco.json and images.json" in line
    # Nothing done is lost: the run's index covers the image that was finished.
    assert len(json.loads((out / "images.json").read_text())) == 1
    assert [p.name for p in out.glob(".*")] == [LOCK_NAME]  # the folder's lock (emptied), no temporary file


def test_a_full_disk_in_infer_stops_with_exit_1_and_a_summary_of_what_was_written(checkpoint, dataset, tmp_path,
                                                                                  capsys, monkeypatch):
    from openpose_lite.runs import model_record, outputs

    real, writes = outputs.write_json_atomic, []

    def disk_fills_after_two(path, data, indent=None):
        writes.append(path)
        if len(writes) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, indent)

    for module in (outputs, model_record):  # every JSON the run writes: its files, its index and its model's record
        monkeypatch.setattr(module, "write_json_atomic", disk_fills_after_two)
    out = tmp_path / "out"
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "-o", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "stopped: " in line and "No space left on device" in line and "000003_keypoints.json" in line
    assert "wrote 2 keypoint files to" in line and "(results_coco.json and images.json not written)" in line
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) == ["000001_keypoints.json", "000002_keypoints.json"]


# ------------------------------------------------------------------------------ parsing
def test_version_and_verbose_before_train(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    from openpose_lite import __version__

    assert capsys.readouterr().out.strip() == f"openpose-lite {__version__}"
    seen = []
    monkeypatch.setattr("openpose_lite.cli._run_train", lambda args: seen.append(args.train_argv) or 0)
    assert main(["-v", "train", "--config", "x.yaml", "train.lr=1e-3"]) == 0
    assert seen == [["--config", "x.yaml", "train.lr=1e-3"]]


def test_synth_help_describes_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("how many scenes to write (default: 100)", "random seed of the scenes, an integer >= 0 (default: 0)",
                     "(default: 368 368; with --video 360 640)", "exactly this many people per image", "annotations.json"):
        assert expected in text


def test_the_quickstart_and_default_exports_leave_git_status_clean():
    # What the README's quickstart, infer, bench and export with its defaults write is ignored by git.
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    written = ["openpose_output/000001_keypoints.json", "bench_out/speed.csv", "runs/x/best.pt", "new_scene/annotations.json",
               "demo_data/annotations.json", "body_pose_model.onnx", "body_pose_model.torchscript.pt"]
    ignored = subprocess.run(["git", "check-ignore", *written], cwd=root, capture_output=True, text=True, check=False)
    assert sorted(ignored.stdout.split()) == sorted(written)
