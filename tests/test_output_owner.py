"""A folder's outputs are one model's, and ``export -o DIR/`` names a folder.

``infer`` writes beside its index a record of the model its outputs are of
(``openpose-lite-model.json``: the weights file and the SHA-256 of its bytes, the results'
skeleton and category id); ``--append`` of another model (another skeleton, other weights) is
refused in one line naming both, exit 2, every file of the folder byte-identical; the same model
(a copy of its weights included) still adds to it. ``export -o newdir/`` with no such folder is
refused instead of writing a file called ``newdir``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_checkpoint
from test_cli_errors import one_error_line

from openpose_lite.cli import main
from openpose_lite.coco.skeleton import skeleton_of_file
from openpose_lite.config import CodecConfig, Config, ModelConfig, config_to_dict
from openpose_lite.network_settings import PafSettings
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.runs.model_record import MODEL_RECORD, RESULTS_CATEGORY_ID
from openpose_lite.skeleton import COCO_17
from openpose_lite.training.checkpoint import save_checkpoint

QUADRUPED = Path(__file__).resolve().parents[1] / "configs" / "skeletons" / "quadruped.json"


@pytest.fixture(scope="module")
def quadruped_checkpoint(tmp_path_factory) -> Path:
    """A tiny random bottom-up model of the quadruped skeleton (AP-10K's keypoints), its part maps
    lifted as :func:`write_tiny_checkpoint`'s so that it finds instances."""
    skeleton = skeleton_of_file(QUADRUPED).bottomup_layout()
    torch.manual_seed(0)
    model = build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125, skeleton=skeleton)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.stages[-1].heatmaps[-1].bias.add_(0.3)
    cfg = Config(model=ModelConfig(settings=PafSettings(num_stages=2, stage_channels=16, width_mult=0.125)),
                 codec=CodecConfig(input_size=128, peak_threshold=0.35))
    path = tmp_path_factory.mktemp("quadruped") / "quadruped.pt"
    return save_checkpoint(path, model_state=model.state_dict(), config=config_to_dict(cfg), skeleton=skeleton)


def _infer(weights: Path, out: Path, image: Path, *extra: str) -> int:
    return main(["infer", str(image), "--checkpoint", str(weights), "-o", str(out), "--no-progress", *extra])


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of the folder (hidden ones, the lock and the record included), by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _record(out: Path) -> dict:
    return json.loads((out / MODEL_RECORD).read_text())


def _append_refused(weights: Path, out: Path, image: Path, capsys, *extra: str) -> str:
    """``infer --append`` of ``weights`` into ``out`` exits 2 in one line (returned), every file unchanged."""
    before = _files(out)
    capsys.readouterr()
    assert _infer(weights, out, image, "--append", *extra) == 2
    line = one_error_line(capsys.readouterr().err)
    assert _files(out) == before
    return line


# --------------------------------------------------------------------------- the record
def test_the_record_names_the_weights_their_content_digest_and_the_results_skeleton(checkpoint, dataset, tmp_path):
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    record = _record(out)
    # A bottom-up person model's results are in COCO-17 order: that is the skeleton recorded.
    assert record == {"written_by": "openpose-lite infer", "weights": str(checkpoint.resolve()),
                      "weights_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
                      "skeleton": COCO_17.name, "keypoints": list(COCO_17.keypoints),
                      "category_id": RESULTS_CATEGORY_ID}
    results = json.loads((out / "results_coco.json").read_text())
    assert results and {r["category_id"] for r in results} == {record["category_id"]}
    assert {len(r["keypoints"]) for r in results} == {3 * len(record["keypoints"])}


# --------------------------------------------------------------------------- --append
@pytest.mark.parametrize("first", ["person", "quadruped"])
def test_append_of_a_model_of_another_skeleton_is_refused_naming_both_and_the_folder_is_untouched(
        first, checkpoint, quadruped_checkpoint, dataset, tmp_path, capsys):
    weights = {"person": checkpoint, "quadruped": quadruped_checkpoint}
    second = "quadruped" if first == "person" else "person"
    out = tmp_path / "out"
    assert _infer(weights[first], out, dataset / "images" / "000001.jpg", "--render") == 0
    line = _append_refused(weights[second], out, dataset / "images" / "000002.jpg", capsys, "--render")
    quadruped_name = skeleton_of_file(QUADRUPED).name
    names = {"person": f"skeleton {COCO_17.name}", "quadruped": f"skeleton {quadruped_name}"}
    assert line.startswith(f"openpose-lite infer: error: --append: {out} holds the outputs of "
                           f"{weights[first].resolve()} ({names[first]}, ")
    assert f"this run's model is {weights[second].resolve()} ({names[second]}, " in line
    assert ": another skeleton; a folder holds one model's outputs: replace them with --overwrite" in line


def test_append_of_other_weights_of_the_same_skeleton_is_refused(checkpoint, dataset, tmp_path, capsys):
    other = write_tiny_checkpoint(tmp_path / "other.pt", heatmap_bias=0.25)
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    line = _append_refused(other, out, dataset / "images" / "000002.jpg", capsys)
    assert f"this run's model is {other.resolve()} (skeleton coco17" in line and ": other weights;" in line


def test_append_of_the_same_model_adds_to_the_folder_also_from_a_copy_of_its_weights(checkpoint, dataset, tmp_path):
    out = tmp_path / "out"
    copy = shutil.copy(checkpoint, tmp_path / "copy.pt")
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    record = (out / MODEL_RECORD).read_bytes()
    assert _infer(Path(copy), out, dataset / "images" / "000002.jpg", "--append") == 0
    assert _infer(checkpoint, out, dataset / "images" / "000003.jpg", "--append") == 0
    assert sorted(json.loads((out / "images.json").read_text()), key=int) == ["1", "2", "3"]
    assert (out / MODEL_RECORD).read_bytes() == record  # the first record is kept


def test_overwrite_gives_the_folder_to_the_new_model_and_its_record(checkpoint, quadruped_checkpoint, dataset,
                                                                     tmp_path):
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    assert _infer(quadruped_checkpoint, out, dataset / "images" / "000002.jpg", "--overwrite") == 0
    assert _record(out)["weights"] == str(quadruped_checkpoint.resolve())
    assert _record(out)["skeleton"] == skeleton_of_file(QUADRUPED).name
    assert _infer(quadruped_checkpoint, out, dataset / "images" / "000003.jpg", "--append") == 0


def test_outputs_without_a_record_take_a_person_model_only_and_then_record_it(
        checkpoint, quadruped_checkpoint, dataset, tmp_path, capsys):
    """A folder an earlier release wrote (no record): another skeleton's model is refused, since nothing
    says whose the outputs are; a person model's run, whose results agree with them, adds and records."""
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    (out / MODEL_RECORD).unlink()
    line = _append_refused(quadruped_checkpoint, out, dataset / "images" / "000002.jpg", capsys)
    assert f"{out} holds results of 17 keypoints without a record of their model ({MODEL_RECORD})" in line
    assert f"this run's model is {quadruped_checkpoint.resolve()}" in line and "--overwrite" in line
    assert _infer(checkpoint, out, dataset / "images" / "000002.jpg", "--append") == 0
    assert _record(out)["weights"] == str(checkpoint.resolve())


def test_a_damaged_record_is_refused_in_one_line_naming_it(checkpoint, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert _infer(checkpoint, out, dataset / "images" / "000001.jpg") == 0
    (out / MODEL_RECORD).write_text(json.dumps({**_record(out), "keypoints": "nose"}))
    line = _append_refused(checkpoint, out, dataset / "images" / "000002.jpg", capsys)
    assert f"{out / MODEL_RECORD}: keypoints: expected list, got str" in line and "--overwrite" in line


# --------------------------------------------------------------------------- export -o DIR/
def test_export_to_a_missing_folder_named_with_a_trailing_slash_is_refused_and_writes_no_file(
        checkpoint, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p.name for p in work.iterdir())
    for named in (f"{work / 'newdir'}/", f"{work / 'newdir'}/."):
        assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "-o", named]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line == (f"openpose-lite export: error: -o {named}: a trailing slash names a folder, and "
                        f"{work / 'newdir'} does not exist; create the folder first, or leave the slash out to name "
                        "the output file")
    (work / "file").write_bytes(b"mine")
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "-o", f"{work / 'file'}/"]) == 2
    assert f"{work / 'file'} is not a folder" in one_error_line(capsys.readouterr().err)
    assert (work / "file").read_bytes() == b"mine"
    assert sorted(p.name for p in work.iterdir()) == sorted(before + ["file"])


def test_export_to_an_existing_folder_named_with_a_trailing_slash_writes_the_default_name_inside(
        checkpoint, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "-o", f"{folder}/"]) == 0
    assert [p.name for p in folder.iterdir()] == [f"{checkpoint.stem}.torchscript.pt"]


def test_a_live_run_records_its_model_and_refuses_to_append_to_another_models_folder(checkpoint, quadruped_checkpoint,
                                                                                     dataset, tmp_path, capsys):
    from openpose_lite.data.mjpeg_stream import MjpegServer

    out = tmp_path / "out"
    with MjpegServer(frames=250, fps=25, image_hw=(96, 128)) as server:
        assert main(["infer", server.url, "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress",
                     "--max-frames", "2"]) == 0
        assert _record(out)["weights_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        before = _files(out)
        capsys.readouterr()
        assert main(["infer", server.url, "--checkpoint", str(quadruped_checkpoint), "-o", str(out), "--no-progress",
                     "--max-frames", "2", "--append"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert str(checkpoint.resolve()) in err and str(quadruped_checkpoint.resolve()) in err
    assert _files(out) == before
