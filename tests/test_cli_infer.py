"""``openpose-lite infer``, ``eval`` with a model and ``export``, run in-process on a tiny random model.

Inputs are generated: scenes written with ``write_dataset``, a short MJPG video (the codec every
OpenCV build, headless included, can write and read back), broken files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import import_optional, mixed_folder, read_video_frames, write_tiny_checkpoint, write_video

from openpose_lite.cli import main
from openpose_lite.config import CodecConfig
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.run_lock import LOCK_NAME
from openpose_lite.skeleton import COCO_17, OPENPOSE_18

OPENPOSE_PERSON_FIELDS = {
    "person_id", "pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
    "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d",
}


def check_openpose_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    assert data["version"] == 1.3
    assert isinstance(data["people"], list)
    for person in data["people"]:
        assert set(person) == OPENPOSE_PERSON_FIELDS
        assert len(person["pose_keypoints_2d"]) == 3 * OPENPOSE_18.num_keypoints
    return data


def test_one_image_gives_a_valid_openpose_json_and_coco_results(checkpoint, dataset, tmp_path, capsys):
    image = dataset / "images" / "000001.jpg"
    out = tmp_path / "out"
    code = main(["infer", str(image), "--checkpoint", str(checkpoint), "--output", str(out), "--no-progress", "--render"])
    assert code == 0
    data = check_openpose_json(out / "000001_keypoints.json")
    assert len(data["people"]) > 0
    height, width = cv2.imread(str(image)).shape[:2]
    for person in data["people"]:
        kps = np.asarray(person["pose_keypoints_2d"]).reshape(-1, 3)
        found = kps[:, 2] > 0
        # Image pixels: inside the image (give or take the refinement's half cell), not network pixels.
        assert (kps[found, 0] > -8).all() and (kps[found, 0] < width + 8).all()
        assert (kps[found, 1] > -8).all() and (kps[found, 1] < height + 8).all()
    results = json.loads((out / "results_coco.json").read_text())
    assert len(results) == len(data["people"])
    assert {r["image_id"] for r in results} == {1}  # the COCO-style number in the file name
    assert all(len(r["keypoints"]) == 3 * COCO_17.num_keypoints for r in results)
    assert json.loads((out / "images.json").read_text())["1"]["file"] == str(image)
    rendered = cv2.imread(str(out / "000001_rendered.jpg"))
    assert rendered.shape == (height, width, 3)
    assert f"1 image, {len(data['people'])} people, 0 failures" in capsys.readouterr().out


def test_a_folder_gives_one_json_per_image_with_batches(checkpoint, dataset, tmp_path):
    out = tmp_path / "out"
    code = main(["infer", str(dataset / "images"), "--checkpoint", str(checkpoint), "-o", str(out),
                 "--batch-size", "2", "--scales", "1.0", "0.5", "--flip", "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in out.glob("*_keypoints.json")) == [f"{i:06d}_keypoints.json" for i in (1, 2, 3)]
    for path in out.glob("*_keypoints.json"):
        check_openpose_json(path)
    assert set(json.loads((out / "images.json").read_text())) == {"1", "2", "3"}


def test_a_video_gives_one_json_per_frame_and_a_rendered_video(checkpoint, tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=3)
    out = tmp_path / "out"
    code = main(["infer", str(video), "--weights", str(checkpoint), "-o", str(out), "--batch-size", "2",
                 "--render", "--no-progress"])
    assert code == 0
    names = sorted(p.name for p in out.glob("*_keypoints.json"))
    assert names == [f"clip_{i:012d}_keypoints.json" for i in range(3)]
    for path in out.glob("*_keypoints.json"):
        check_openpose_json(path)
    index = json.loads((out / "images.json").read_text())
    assert sorted(entry["frame"] for entry in index.values()) == [0, 1, 2]
    assert len(read_video_frames(out / "clip_rendered.mp4")) == 3
    assert [p.name for p in out.glob(".*")] == [LOCK_NAME]  # no temporary files left behind, only the folder's lock
    # The video's encoder writes into an owner-only temporary file; the finished video gets the mode
    # every other output gets (the umask's), as a file the encoder had made itself would.
    assert (out / "clip_rendered.mp4").stat().st_mode & 0o777 == (out / "images.json").stat().st_mode & 0o777


def test_an_unreadable_image_is_reported_and_skipped_and_the_run_fails(checkpoint, dataset, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes((dataset / "images" / "000002.jpg").read_bytes())
    (folder / "b_broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "out"
    code = main(["infer", str(folder), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"])
    assert code == 1
    captured = capsys.readouterr()
    assert "cannot read image" in captured.err and "b_broken.jpg" in captured.err
    # each line names the file once (the reader's message names it already)
    assert all(line.count("b_broken.jpg") == 1 for line in captured.err.splitlines() if "b_broken" in line)
    assert "1 image, " in captured.out and "1 failure;" in captured.out
    assert (out / "a_good_keypoints.json").is_file()  # the run went on past the broken file
    assert not (out / "b_broken_keypoints.json").exists()
    assert json.loads((out / "images.json").read_text()) == {
        "1": {"file": str(folder / "a_good.jpg"), "frame": None, "json": "a_good_keypoints.json"}
    }


def test_without_weights_exit_2_and_say_where_weights_come_from(dataset, capsys):
    code = main(["infer", str(dataset / "images"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "CMU COCO body model" in err and "train_vgg19.py" in err


@pytest.mark.parametrize("case", ["missing file", "unknown layout", "empty folder", "missing input", "not an image type"])
def test_bad_model_files_and_inputs_give_clear_messages(case, checkpoint, dataset, tmp_path, capsys):
    weights, inputs, expected = checkpoint, [str(dataset / "images" / "000001.jpg")], ""
    if case == "missing file":
        weights, expected = tmp_path / "nope.pt", "weights file not found"
    elif case == "unknown layout":
        weights = tmp_path / "other.pt"
        torch.save({"backbone.layer1.weight": torch.zeros(2, 2)}, weights)
        expected = "no known layout"
    elif case == "empty folder":
        (tmp_path / "empty").mkdir()
        inputs, expected = [str(tmp_path / "empty")], "holds no images or videos"
    elif case == "missing input":
        inputs, expected = [str(tmp_path / "ghost.jpg")], "input not found"
    else:
        (tmp_path / "data.csv").write_text("1,2")
        inputs, expected = [str(tmp_path / "data.csv")], "unsupported file type"
    code = main(["infer", *inputs, "--weights", str(weights), "-o", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err
    if case == "unknown layout":
        assert str(weights) in err


def test_checkpoint_flag_rejects_a_bare_state_dict(dataset, tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save(build_vgg19_paf(num_stages=1, stage_channels=8, width_mult=0.125).state_dict(), bare)
    code = main(["infer", str(dataset / "images"), "--checkpoint", str(bare), "--no-progress"])
    assert code == 2
    assert "not an openpose_lite checkpoint" in capsys.readouterr().err


def test_eval_with_a_model_prints_coco_metrics(checkpoint, dataset, tmp_path, capsys):
    results = tmp_path / "results.json"
    code = main(["eval", "--checkpoint", str(checkpoint), "--ann", str(dataset / "annotations.json"),
                 "--images", str(dataset / "images"), "--batch-size", "2", "--flip", "--json-out", str(results)])
    assert code == 0
    out = capsys.readouterr().out
    assert "3 images" in out and "| AP | AP50 |" in out
    assert all(r["image_id"] in (1, 2, 3) for r in json.loads(results.read_text()))


def test_eval_rejects_oracle_with_a_model_and_a_model_without_images(checkpoint, dataset, capsys):
    ann = str(dataset / "annotations.json")
    assert main(["eval", "--oracle", "bottomup", "--checkpoint", str(checkpoint), "--ann", ann]) == 2
    assert main(["eval", "--checkpoint", str(checkpoint), "--ann", ann]) == 2
    assert "--images DIR is required" in capsys.readouterr().err


def test_eval_oracle_still_works(dataset, capsys):
    assert main(["eval", "--oracle", "bottomup", "--ann", str(dataset / "annotations.json")]) == 0
    assert "bottomup oracle" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_writes_a_torchscript_network_that_matches_the_model(checkpoint, tmp_path):
    out = tmp_path / "net.pt"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "-o", str(out),
                 "--input-hw", "64", "64"]) == 0
    from openpose_lite.models import load_model

    model = load_model(checkpoint)
    loaded = torch.jit.load(str(out))
    images = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pafs, heatmaps = loaded(images)
        expected = model(images)[-1]
    torch.testing.assert_close(heatmaps, expected["heatmaps"])
    torch.testing.assert_close(pafs, expected["pafs"])


def test_export_onnx_and_missing_weights(checkpoint, tmp_path, capsys):
    import_optional("onnx")
    out = tmp_path / "net.onnx"
    assert main(["export", "--weights", str(checkpoint), "--format", "onnx", "-o", str(out), "--input-hw", "64", "64"]) == 0
    assert out.is_file() and out.stat().st_size > 0
    assert main(["export", "--format", "onnx"]) == 2
    assert "no weights given" in capsys.readouterr().err


def test_coco_result_ids_are_numeric_stems_and_other_inputs_never_take_them(checkpoint, dataset, tmp_path):
    # A video and a non-numeric name come first in name order; 1.jpg and 2.jpg must keep ids 1 and 2.
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, source in (("1.jpg", "000001.jpg"), ("2.jpg", "000002.jpg"), ("a.jpg", "000003.jpg")):
        (folder / name).write_bytes((dataset / "images" / source).read_bytes())
    write_video(folder / "0_clip.avi", frames=2)
    out = tmp_path / "out"
    assert main(["infer", str(folder), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"]) == 0
    images = json.loads((out / "images.json").read_text())
    by_file = {(Path(v["file"]).name, v["frame"]): int(k) for k, v in images.items()}
    assert by_file[("1.jpg", None)] == 1 and by_file[("2.jpg", None)] == 2
    others = [by_file[("0_clip.avi", 0)], by_file[("0_clip.avi", 1)], by_file[("a.jpg", None)]]
    assert len(set(others)) == 3 and not set(others) & {1, 2}
    results = json.loads((out / "results_coco.json").read_text())
    assert {r["image_id"] for r in results} <= set(by_file.values())


def test_eval_oracle_decodes_with_the_codec_the_predictors_and_bench_use(dataset, capsys, monkeypatch):
    from openpose_lite import oracle
    from openpose_lite.bench import BenchConfig
    from openpose_lite.bench.models import build_models as _build_models
    from openpose_lite.config import build_bottomup_codec

    used = []
    real = oracle.bottomup_oracle_results

    def spy(ann_file, codec=None, input_size=368, progress=False):
        used.append((codec, input_size))
        return real(ann_file, codec, input_size, progress)

    monkeypatch.setattr(oracle, "bottomup_oracle_results", spy)
    assert main(["eval", "--oracle", "bottomup", "--ann", str(dataset / "annotations.json")]) == 0
    assert "bottomup oracle" in capsys.readouterr().out
    models, _ = _build_models(BenchConfig(people=(1,), bu_width_mult=0.125, bu_stages=1, hrnet_width=8,
                                          td_input_hw=(64, 64), device="cpu"), torch.device("cpu"))
    # One codec for one file: eval --oracle, BottomUpPredictor.from_weights (CodecConfig defaults) and bench.
    assert used == [(build_bottomup_codec(), CodecConfig().input_size)]
    assert models.bottomup.codec == used[0][0] and models.bottomup.input_size == used[0][1]


@pytest.mark.parametrize("video_first", [True, False], ids=["video-first", "image-first"])
def test_an_image_named_like_a_video_frame_never_shares_its_outputs(video_first, checkpoint, dataset, tmp_path):
    image = tmp_path / "photos" / "clip_000000000001.jpg"
    image.parent.mkdir()
    image.write_bytes((dataset / "images" / "000001.jpg").read_bytes())
    video = write_video(tmp_path / "clip.avi", frames=3)
    inputs = [str(video), str(image)] if video_first else [str(image), str(video)]
    out = tmp_path / "out"
    assert main(["infer", *inputs, "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"]) == 0
    index = json.loads((out / "images.json").read_text())
    names = [entry["json"] for entry in index.values()]
    assert len(index) == 4 and len(set(names)) == 4  # one output per image and frame, none overwritten
    assert {entry["json"] for entry in index.values() if entry["frame"] is None} == {"clip_000000000001_keypoints.json"}
    assert sorted(p.name for p in out.glob("*_keypoints.json")) == sorted(names)


def test_a_truncated_video_reports_the_frames_read_against_its_header(checkpoint, tmp_path, capsys):
    whole = write_video(tmp_path / "whole.avi", frames=10)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    out = tmp_path / "out"
    assert main(["infer", str(cut), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    found = re.search(r"video \S*cut.avi: read (\d+) of the 10 frames its header announces", err)
    assert found, err
    read = int(found.group(1))
    assert 0 < read < 10
    assert len(list(out.glob("cut_*_keypoints.json"))) == read  # the frames read keep their outputs


def test_a_degenerate_image_is_skipped_and_the_folder_goes_on(checkpoint, dataset, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_line.png"), np.full((1, 2000, 3), 200, np.uint8))
    cv2.imwrite(str(folder / "b_column.png"), np.full((3000, 1, 3), 200, np.uint8))
    (folder / "c_good.jpg").write_bytes((dataset / "images" / "000002.jpg").read_bytes())
    out = tmp_path / "out"
    assert main(["infer", str(folder), "--checkpoint", str(checkpoint), "-o", str(out), "--batch-size", "3",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "a_line.png: 2000x1 px (width x height): an aspect ratio of 2000:1 is beyond" in err
    assert "b_column.png: 1x3000 px" in err
    assert sorted(p.name for p in out.glob("*_keypoints.json")) == ["c_good_keypoints.json"]
    assert [entry["file"] for entry in json.loads((out / "images.json").read_text()).values()] == [str(folder / "c_good.jpg")]


def test_confidences_in_the_written_files_stay_within_0_and_1(dataset, tmp_path):
    # Maps lifted well above 1 (output bias): peak values over 1 must not leak out as confidences.
    path = write_tiny_checkpoint(tmp_path / "hot.pt", heatmap_bias=1.5, refine="dark")
    out = tmp_path / "out"
    assert main(["infer", str(dataset / "images"), "--checkpoint", str(path), "-o", str(out), "--no-progress",
                 "--scales", "1", "0.5"]) == 0
    confidences = [v for f in out.glob("*_keypoints.json")
                   for person in json.loads(f.read_text())["people"] for v in person["pose_keypoints_2d"][2::3]]
    results = json.loads((out / "results_coco.json").read_text())
    assert confidences and results
    assert max(confidences) <= 1.0 and min(confidences) >= 0.0
    assert all(0.0 <= v <= 1.0 for r in results for v in r["keypoints"][2::3] + [r["score"]])


def test_pipelined_and_step_by_step_infer_write_the_same_files(checkpoint, dataset, tmp_path):
    # The overlapped run (the default) and --no-pipeline differ only in when each step runs.
    folder = mixed_folder(tmp_path / "mixed", dataset, frames=4)
    outputs = {}
    for flags in ([], ["--no-pipeline"]):
        out = tmp_path / ("sequential" if flags else "pipelined")
        assert main(["infer", str(folder), "--checkpoint", str(checkpoint), "-o", str(out), "--batch-size", "2",
                     "--no-progress", *flags]) == 1  # the broken image fails, the rest is written
        outputs[bool(flags)] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert outputs[False] == outputs[True]
    assert len([n for n in outputs[False] if n.endswith("_keypoints.json")]) == 3 + 4
    assert any(json.loads(outputs[False][n])["people"] for n in outputs[False] if n.endswith("_keypoints.json"))
