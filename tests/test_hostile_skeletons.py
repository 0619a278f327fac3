"""Hostile skeletons: too many keypoints, no keypoint names, absurd sigmas, bad limbs; each refused in one line.

* a skeleton of more keypoints than :data:`~openpose_lite.skeleton.MAX_KEYPOINTS` (10,000 ran
  ``eval --oracle`` and ``synth`` for minutes) is refused in one line naming the file and how to
  raise the bound, before anything is written; limbs completed for a large skeleton of partly
  labelled instances hold bounded memory (they held every instance's K x K pairs at once);
* a keypoint file whose categories list no ``keypoints`` (or that has none) is refused by
  ``eval`` (oracle and model), ``synth --skeleton`` and ``data.skeleton``, where it was scored as
  COCO's people (AP 0.000, or every metric -1) or ended in an IndexError;
* OKS sigmas outside :data:`~openpose_lite.skeleton.SIGMA_RANGE` (1e300 gave AP 1.000);
* a limb index of 1e30 is shown as what it is, and a limb or flip pair given twice is named
  by the file's own entries, 1-based as the file writes them.

Every command line is checked through ``openpose_lite.cli.main``, as the other CLI tests do.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from skeleton_data import write_skeleton_file

from openpose_lite.cli import main
from openpose_lite.coco.skeleton import skeleton_of_file
from openpose_lite.evaluation import evaluate_keypoints
from openpose_lite.skeleton import MAX_KEYPOINTS, MAX_KEYPOINTS_ENV, Skeleton

REPO = Path(__file__).resolve().parents[1]
QUADRUPED = REPO / "configs" / "skeletons" / "quadruped.json"  # AP-10K's 17 keypoints, 8 poses


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"openpose-lite {command}: error: ")
    return lines[0]


def _chain_file(path: Path, k: int, instances: int = 2, sigmas: list | None = None) -> Path:
    """A worm of ``k`` keypoints in a chain, ``instances`` of it at known places, all labelled."""
    kps = np.zeros((instances, k, 3))
    kps[:, :, 0] = np.linspace(20, 280, k)
    kps[:, :, 1] = 150 + 40 * np.sin(np.linspace(0, 6, k))[None] + np.arange(instances)[:, None]
    kps[:, :, 2] = 2
    extra = {"sigmas": sigmas} if sigmas is not None else {}
    return write_skeleton_file(path, [f"p{i}" for i in range(k)], [[i + 1, i + 2] for i in range(k - 1)], kps,
                               category={"name": "worm", **extra})


def _refused_everywhere(path: Path, tmp_path: Path, capsys, checkpoint: Path | None = None) -> list[str]:
    """The one error line of ``eval --oracle`` (both), ``synth --skeleton`` and a model's ``eval`` on ``path``,
    each exit 2 with nothing written."""
    lines = []
    for branch in ("bottomup", "topdown"):
        results = tmp_path / f"{branch}.json"
        assert main(["eval", "--oracle", branch, "--ann", str(path), "--json-out", str(results)]) == 2
        lines.append(_one_error_line(capsys, "eval"))
        assert not results.exists()
    scenes = tmp_path / "scenes"
    assert main(["synth", str(scenes), "--skeleton", str(path), "--num-images", "1"]) == 2
    lines.append(_one_error_line(capsys, "synth"))
    assert not scenes.exists()
    if checkpoint is not None:
        results = tmp_path / "model.json"
        assert main(["eval", "--checkpoint", str(checkpoint), "--ann", str(path), "--images", str(tmp_path),
                     "--json-out", str(results)]) == 2
        lines.append(_one_error_line(capsys, "eval"))
        assert not results.exists()
    return lines


# ------------------------------------------------------------------------ 7. keypoint count
def test_a_skeleton_past_the_keypoint_bound_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys):
    path = _chain_file(tmp_path / "worm.json", MAX_KEYPOINTS + 1)
    for line in _refused_everywhere(path, tmp_path, capsys):
        assert (f"worm.json: categories[0] ('worm') has {MAX_KEYPOINTS + 1} keypoints, more than the "
                f"{MAX_KEYPOINTS} a skeleton may have") in line
        assert f"raise the limit with the environment variable {MAX_KEYPOINTS_ENV}=N" in line


def test_the_keypoint_bound_is_raised_by_its_environment_variable_and_holds_for_stored_skeletons(tmp_path, capsys,
                                                                                                 monkeypatch):
    path = _chain_file(tmp_path / "worm.json", 40)
    monkeypatch.setenv(MAX_KEYPOINTS_ENV, "39")
    assert main(["eval", "--oracle", "topdown", "--ann", str(path)]) == 2
    assert "has 40 keypoints, more than the 39 a skeleton may have" in _one_error_line(capsys, "eval")
    monkeypatch.setenv(MAX_KEYPOINTS_ENV, "40")
    stored = skeleton_of_file(path).to_dict()
    assert Skeleton.from_dict(stored).num_keypoints == 40
    monkeypatch.setenv(MAX_KEYPOINTS_ENV, "39")  # a checkpoint's skeleton is held to the same bound
    with pytest.raises(ValueError, match=r"ckpt\.pt: not a valid skeleton dict \(skeleton 'worm' has 40 keypoints"):
        Skeleton.from_dict(stored, source="ckpt.pt")


def test_limbs_past_their_bound_are_refused_as_keypoints_are(tmp_path, capsys, monkeypatch):
    # Each limb is two PAF channels of every map: all 499,500 pairs of 1000 keypoints would be a
    # million channels. Here the bound is lowered to 20 keypoints, so 160 limbs, and 20 keypoints
    # joined every way (190 limbs) pass it.
    monkeypatch.setenv(MAX_KEYPOINTS_ENV, "20")
    every_pair = [[a + 1, b + 1] for a in range(20) for b in range(a + 1, 20)]
    one = np.stack([np.linspace(20, 280, 20), np.full(20, 150.0), np.full(20, 2.0)], axis=1)[None]  # (1, 20, 3)
    path = write_skeleton_file(tmp_path / "web.json", [f"p{i}" for i in range(20)], every_pair, one)
    for line in _refused_everywhere(path, tmp_path, capsys):
        assert "web.json: categories[0] ('insect') has 190 limbs, more than the 160 a skeleton may have" in line
        assert f"raise the limit with the environment variable {MAX_KEYPOINTS_ENV}=N (8 limbs per keypoint)" in line


def test_limbs_completed_for_a_large_partly_labelled_skeleton_hold_bounded_memory(tmp_path):
    # 240 instances of 200 keypoints, each missing a random half, no limbs: completing them weighs
    # every keypoint pair of every instance (9.6 million), which took 521 MB at once.
    rng = np.random.default_rng(0)
    k, n = 200, 240
    kps = np.zeros((n, k, 3))
    kps[:, :, 0] = np.linspace(20, 280, k)
    kps[:, :, 1] = 150 + 40 * np.sin(np.linspace(0, 6, k))
    kps[:, :, 2] = np.where(rng.random((n, k)) < 0.5, 2, 0)
    path = write_skeleton_file(tmp_path / "half.json", [f"p{i}" for i in range(k)], None, kps)
    tracemalloc.start()
    try:
        skeleton = skeleton_of_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert skeleton.num_keypoints == k and skeleton.num_limbs >= k - 1  # a tree at least, and whole-keeping limbs
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MB"


# ------------------------------------------------------------------------ 9. no keypoint names
def _without_keypoint_names(tmp_path: Path, categories: str) -> Path:
    data = json.loads(QUADRUPED.read_text())
    if categories == "empty":
        data["categories"] = []
    else:
        del data["categories"][0]["keypoints"]  # 17 values a pose: as many as COCO's person has
    path = tmp_path / f"{categories}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("categories, what", [
    ("unnamed", "none of its categories ('quadruped') lists 'keypoints'"),
    ("empty", "it has no categories"),
])
def test_a_file_naming_no_keypoints_is_refused_not_scored_as_people(categories, what, checkpoint, tmp_path, capsys):
    path = _without_keypoint_names(tmp_path, categories)
    for line in _refused_everywhere(path, tmp_path, capsys, checkpoint):
        assert f"{path.name}: {what}, so it states no skeleton to read or score" in line
    run = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "vgg19_quadruped_synthetic_cpu.yaml"), "--output-dir",
                 str(run), "--no-progress", f"data.skeleton={path}"]) == 2
    assert f"{path.name}: {what}" in _one_error_line(capsys, "train") and not run.exists()


# ------------------------------------------------------------------------ 13. sigmas
@pytest.mark.parametrize("sigma", [1e300, 50, 0, 1e-9, -0.1])
def test_oks_sigmas_outside_the_sane_range_are_refused(sigma, tmp_path, capsys):
    path = _chain_file(tmp_path / "worm.json", 3, sigmas=[0.05, sigma, 0.05])
    for line in _refused_everywhere(path, tmp_path, capsys):
        assert f"worm.json: category 'worm': 'sigmas' is [0.05, {sigma!r}, 0.05], expected 3 OKS sigmas" in line
        assert "each in [0.001, 1]" in line
    with pytest.raises(ValueError, match=r"ckpt\.pt: not a valid skeleton dict \(worm: the OKS sigma list is "):
        Skeleton.from_dict(dict(skeleton_of_file(_chain_file(tmp_path / "ok.json", 3)).to_dict(),
                                sigmas=[0.05, sigma, 0.05]), source="ckpt.pt")


def test_sigmas_at_the_ends_of_the_range_are_kept_and_evaluation_refuses_others(tmp_path):
    path = _chain_file(tmp_path / "worm.json", 3, sigmas=[0.001, 1, 0.5])
    assert skeleton_of_file(path).sigmas == (0.001, 1.0, 0.5)
    ann = json.loads(path.read_text())["annotations"]
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0} for a in ann]
    assert evaluate_keypoints(path, results)["AP"] == 1.0
    with pytest.raises(ValueError, match=r"worm\.json: 'sigmas' is \[1e\+300, 1e\+300, 1e\+300\], expected 3 OKS sigmas"):
        evaluate_keypoints(path, results, sigmas=[1e300] * 3)
    for shape in ((1, 3), (3, 1)):  # K sigmas, one per keypoint: not a table of them
        with pytest.raises(ValueError, match=r"worm\.json: 'sigmas' is .*expected 3 OKS sigmas"):
            evaluate_keypoints(path, results, sigmas=np.full(shape, 0.5))


# ------------------------------------------------------------------------ 16. how limbs are named
def _three_keypoints() -> np.ndarray:
    """(1, 3, 3) one instance: head (10, 10), left ear (20, 10), right ear (10, 20), all visible."""
    return np.array([[[10.0, 10.0, 2], [20.0, 10.0, 2], [10.0, 20.0, 2]]])


@pytest.mark.parametrize("end, shown", [(1e30, "1e+30"), (10**30, "<an integer of 100 bits>")])
def test_a_huge_limb_index_is_shown_as_what_it_is(end, shown, tmp_path, capsys):
    path = write_skeleton_file(tmp_path / "bad.json", ["head", "left_ear", "right_ear"], [[1, end], [1, 3]],
                               _three_keypoints())
    assert main(["eval", "--oracle", "bottomup", "--ann", str(path)]) == 2
    line = _one_error_line(capsys, "eval")
    assert f"bad.json: category 'insect': skeleton[0] = [1, {shown}] has keypoint index {shown}, expected 1..3" in line
    assert "10000000000000000000" not in line


@pytest.mark.parametrize("field, pairs, message", [
    ("skeleton", [[1, 2], [2, 3], [2, 1]],
     "skeleton[2] = [2, 1] joins 'left_ear' and 'head' again, as skeleton[0] = [1, 2] does"),
    ("skeleton", [["head", "left_ear"], ["left_ear", "head"]],
     "skeleton[1] = ['left_ear', 'head'] joins 'left_ear' and 'head' again, as skeleton[0] = ['head', 'left_ear'] "
     "does"),
    ("flip_pairs", [[2, 3], [3, 1]], "flip_pairs[1] = [3, 1] pairs 'right_ear' again, as flip_pairs[0] = [2, 3] does"),
])
def test_a_pair_given_twice_is_named_by_the_files_own_entries(field, pairs, message, tmp_path, capsys):
    category = {field: pairs} if field == "flip_pairs" else {}
    limbs = pairs if field == "skeleton" else [[1, 2], [1, 3]]
    path = write_skeleton_file(tmp_path / "bad.json", ["head", "left_ear", "right_ear"], limbs,
                               _three_keypoints(), category=category)
    assert main(["eval", "--oracle", "topdown", "--ann", str(path)]) == 2
    assert f"bad.json: category 'insect': {message}" in _one_error_line(capsys, "eval")

