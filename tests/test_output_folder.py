"""One rule for every output folder (openpose_lite/output_folder.py), held by ``infer`` as by training:
a folder holding another run's outputs is refused saying what is there, unless ``--overwrite``
(its files removed first) or ``--append`` (the index then covers every image of the folder); a
folder another live run holds is refused naming its PID."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from openpose_lite.cli import main
from openpose_lite.output_folder import FolderHoldsRunError, OutputFolder
from openpose_lite.run_lock import LOCK_NAME, folder_lock
from openpose_lite.runs.model_record import MODEL_RECORD
from openpose_lite.runs.outputs import InferFolder, InferRun, output_names
from openpose_lite.training.run_folder import RunFolder, RunFolderError


def _infer(checkpoint: Path, out: Path, *inputs: Path, extra: tuple[str, ...] = ()) -> int:
    return main(["infer", *map(str, inputs), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress", *extra])


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _index(out: Path) -> tuple[list[dict], dict[str, dict]]:
    return json.loads((out / "results_coco.json").read_text()), json.loads((out / "images.json").read_text())


def _people_in(out: Path, json_name: str) -> int:
    return len(json.loads((out / json_name).read_text())["people"])


# --------------------------------------------------------------------------- the rule itself
class _Kind(OutputFolder):
    RUN_FILES = (("*_out.json", "output file"), ("index.json", None), ("logs", None))
    OPTION = "--out"
    WAYS = ("add to it with --append", "replace it with --overwrite")


def test_the_rule_counts_and_names_what_a_folder_holds_and_clears_only_a_runs_files(tmp_path):
    folder = _Kind(tmp_path / "f")
    assert folder.check_free(overwrite=False) == []  # a missing folder holds nothing
    folder.path.mkdir()
    for name in ("a_out.json", "b_out.json", "index.json", "notes.txt", ".a_out.json.openpose-lite-tmp-x1y2.json"):
        (folder.path / name).write_text("{}")
    (folder.path / "logs").mkdir()
    with pytest.raises(FolderHoldsRunError) as refused:
        folder.check_free(overwrite=False)
    assert str(refused.value) == (f"{folder.path}: already holds a run (2 output files, index.json, logs/); add to it "
                                  "with --append, replace it with --overwrite, or choose another --out")
    assert len(folder.check_free(overwrite=False, append=True)) == 4  # --append keeps them
    with folder.lock("a test"):
        removed = folder.claim(overwrite=True)
    assert {p.name for p in removed} == {"a_out.json", "b_out.json", "index.json", "logs", ".a_out.json.openpose-lite-tmp-x1y2.json"}
    assert sorted(p.name for p in folder.path.iterdir()) == [LOCK_NAME, "notes.txt"]  # not a run's: it stays


def test_training_run_folders_and_infer_folders_share_the_rule_and_its_words(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    (run.path / "config.yaml").write_text("{}")
    (run.path / "last.pt").write_bytes(b"")
    with pytest.raises(RunFolderError) as refused:
        run.check_free(overwrite=False)
    assert isinstance(refused.value, FolderHoldsRunError)
    assert str(refused.value) == (f"{run.path}: already holds a run (config.yaml, last.pt); continue it with --resume "
                                  f"{run.path / 'last.pt'}, replace it with --overwrite, or choose another --output-dir")
    infer = InferFolder(tmp_path / "out")
    infer.path.mkdir()
    (infer.path / "1_keypoints.json").write_text("{}")
    with pytest.raises(FolderHoldsRunError) as refused:
        infer.check_free(overwrite=False)
    assert str(refused.value) == (f"{infer.path}: already holds a run (1 keypoint file); add to it with --append, "
                                  "replace it with --overwrite, or choose another --output")


def test_appended_names_avoid_the_files_an_earlier_run_left():
    taken = {"000001_keypoints.json", "000001_rendered.jpg", "clip_000000000000_keypoints.json", "clip_rendered.mp4"}
    inputs = [("image", Path("a/000001.jpg")), ("video", Path("clip.mp4")), ("image", Path("b/000002.jpg"))]
    assert output_names(inputs, taken) == ["000001-2", "clip-2", "000002"]
    assert output_names(inputs) == ["000001", "clip", "000002"]


def test_appended_image_ids_avoid_the_earlier_runs_ids():
    run = InferRun.for_inputs(Path("out"), {"keypoints"}, [("image", Path("000001.jpg")), ("image", Path("x.jpg"))],
                              previous=([{"image_id": 1, "score": 1.0}], {"1": {"file": "old/000001.jpg"}}))
    for index in range(2):
        run.entries.append({"input": index, "frame": None, "json": f"{index}.json", "results": [{"score": 0.5}]})
    results, images = run.index()
    assert sorted(images) == ["1", "2", "3"] and images["1"] == {"file": "old/000001.jpg"}
    assert [r["image_id"] for r in results] == [1, 2, 3]


# --------------------------------------------------------------------------- infer
def test_infer_into_a_folder_holding_another_run_is_refused_with_exit_2_saying_what_is_there(
        checkpoint, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg", extra=("--render",)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _infer(checkpoint, out, dataset / "images" / "000002.jpg") == 2
    line = _error_line(capsys.readouterr().err)
    assert line == (f"openpose-lite infer: error: {out}: already holds a run (1 keypoint file, 1 rendered image, "
                    "results_coco.json, images.json); add to it with --append, replace it with --overwrite, or choose "
                    "another --output")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written, nothing lost


def test_overwrite_removes_the_earlier_runs_outputs_first_and_keeps_other_files(checkpoint, dataset, tmp_path):
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg", extra=("--render",)) == 0
    (out / "notes.txt").write_text("mine")
    assert _infer(checkpoint, out, dataset / "images" / "000002.jpg", extra=("--overwrite",)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_NAME, MODEL_RECORD, "000002_keypoints.json",
                                                            "images.json", "notes.txt", "results_coco.json"])
    results, images = _index(out)
    assert list(images) == ["2"] and {r["image_id"] for r in results} <= {2}


def test_append_adds_runs_and_the_index_covers_every_image_of_the_folder(checkpoint, dataset, tmp_path):
    """Three single-image runs into one folder, two of images with one stem: the index holds the three; a
    rerun of an image the index holds adds nothing (--append skips it, as after an interrupted run)."""
    out = tmp_path / "out"
    first, second = dataset / "images" / "000001.jpg", dataset / "images" / "000002.jpg"
    copy = tmp_path / "copies" / "000001.jpg"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    assert _infer(checkpoint, out, first) == 0
    written_first = (out / "000001_keypoints.json").read_bytes()
    assert _infer(checkpoint, out, second, extra=("--append",)) == 0
    assert _infer(checkpoint, out, copy, extra=("--append", "--render")) == 0
    assert _infer(checkpoint, out, first, extra=("--append", "--render")) == 0
    results, images = _index(out)
    assert images == {
        "1": {"file": str(first), "frame": None, "json": "000001_keypoints.json"},
        "2": {"file": str(second), "frame": None, "json": "000002_keypoints.json"},
        "3": {"file": str(copy), "frame": None, "json": "000001-2_keypoints.json"},
    }
    assert not (out / "000001-3_keypoints.json").exists() and not (out / "000001_rendered.jpg").exists()
    assert (out / "000001_keypoints.json").read_bytes() == written_first  # the earlier file is never rewritten
    assert (out / "000001-2_rendered.jpg").is_file()
    for image_id, entry in images.items():
        assert sum(r["image_id"] == int(image_id) for r in results) == _people_in(out, entry["json"])
    assert len(results) == sum(_people_in(out, e["json"]) for e in images.values()) > 0


def test_append_refuses_outputs_without_their_index(checkpoint, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    (out / "images.json").unlink()  # as a run killed before it wrote its index leaves it
    capsys.readouterr()
    assert _infer(checkpoint, out, dataset / "images" / "000002.jpg", extra=("--append",)) == 2
    line = _error_line(capsys.readouterr().err)
    assert "holds outputs without their index" in line and "--overwrite" in line
    assert not (out / "000002_keypoints.json").exists()


def test_overwrite_and_append_together_are_refused(checkpoint, dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        _infer(checkpoint, tmp_path / "out", dataset / "images" / "000001.jpg", extra=("--overwrite", "--append"))
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_second_infer_into_a_folder_in_use_is_refused_naming_the_first_ones_pid(checkpoint, dataset, tmp_path,
                                                                                   capsys, monkeypatch):
    """While a run writes into the folder (here: from inside its first image's write) another infer into it,
    even with --append, is refused at once, naming the run that holds it; the first run is unharmed."""
    out = tmp_path / "out"
    second = []
    record = InferRun.record

    def record_and_start_another(self, index, frame, image, poses):
        if not second:
            second.append(_infer(checkpoint, out, dataset / "images" / "000002.jpg", extra=("--append",)))
            second.append(capsys.readouterr().err)
        return record(self, index, frame, image, poses)

    monkeypatch.setattr(InferRun, "record", record_and_start_another)
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg", extra=("--no-pipeline",)) == 0
    code, err = second
    assert code == 2
    line = _error_line(err)
    assert f"{out}: in use by another run (PID {os.getpid()} " in line and "openpose-lite infer" in line
    assert "choose another --output" in line
    _, images = _index(out)
    assert list(images) == ["1"] and not (out / "000002_keypoints.json").exists()


def test_a_folder_locked_by_any_run_is_refused_before_the_model_loads(checkpoint, dataset, tmp_path, capsys,
                                                                      monkeypatch):
    out = tmp_path / "out"
    import openpose_lite.cli.infer as infer_cli

    monkeypatch.setattr(infer_cli, "build_predictor", lambda args: pytest.fail("the model was loaded"))
    with folder_lock(out, "openpose-lite train"):
        assert _infer(checkpoint, out, dataset / "images" / "000001.jpg", extra=("--overwrite",)) == 2
    assert f"in use by another run (PID {os.getpid()} " in _error_line(capsys.readouterr().err)
