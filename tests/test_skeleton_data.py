"""Everything data-side follows the skeleton of the file: evaluation, oracles, generated scenes, formats, drawing.

The reference scoring is pycocotools' ``COCOeval(gt, dt, "keypoints")`` with ``params.kpt_oks_sigmas``
set to the skeleton's sigmas, called here directly. Categories sharing one skeleton are pooled for
it by giving their ground truth one category id, since ``params.useCats = 0`` does not reach
``computeOks`` (cocodataset/cocoapi issue #515: it reads ``_gts[imgId, -1]``, which is empty).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CUSTOM_SKELETON_FILES, needs_custom_skeletons
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from skeleton_data import INSECT_FOREST, INSECT_NAMES, insect_instances, write_skeleton_file

from openpose_lite.cli import main
from openpose_lite.coco.skeleton import DEFAULT_SIGMA, skeleton_of_file
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.data.skeleton_figures import PoseBank
from openpose_lite.data.synthetic import SceneConfig, render_scene, write_dataset
from openpose_lite.evaluation import evaluate_keypoints, load_coco, scoring_scope
from openpose_lite.skeleton import COCO_17
from openpose_lite.structures import Poses
from openpose_lite.tracking import Tracker
from openpose_lite.viz import draw_poses


def _pycocotools_ap(ann: dict, results: list[dict], sigmas) -> float:
    """COCO keypoint AP by pycocotools itself, every keypoint category pooled under the results' id."""
    pool = results[0]["category_id"] if results else 1
    gt = COCO()
    gt.dataset = {"images": ann["images"], "categories": [{"id": pool, "name": "pool"}],
                  "annotations": [dict(a, category_id=pool) for a in ann["annotations"]]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes([dict(r, category_id=pool) for r in results]), iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def _oracle_ap(ann_file: Path, branch: str, tmp_path: Path, capsys, sigmas, truth: Path | None = None
               ) -> tuple[float, str]:
    """(pycocotools AP of what ``eval --oracle`` writes, against ``truth`` (default the same file); what it printed)."""
    out = tmp_path / f"{branch}.json"
    args = ["eval", "--oracle", branch, "--ann", str(ann_file), "--images", str(ann_file.parent), "--json-out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    return _pycocotools_ap(json.loads((truth or ann_file).read_text()), json.loads(out.read_text()), sigmas), printed


# ------------------------------------------------------------------ scoring one skeleton's annotations
@pytest.fixture(scope="module")
def people_and_dogs(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """Generated people; the same file plus a 'dog' category of 17 other keypoints over some of them;
    the people as results, each keypoint moved by 1 px (AP well under 1)."""
    out = tmp_path_factory.mktemp("mixed")
    people = write_dataset(out, num_images=4, seed=0, cfg=SceneConfig(image_hw=(192, 192), people_range=(2, 3)))
    data = json.loads(people.read_text())
    rng = np.random.default_rng(0)
    results = []
    for ann in data["annotations"]:
        kps = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kps[:, :2] += rng.normal(0.0, 1.0, (len(kps), 2))
        results.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kps.reshape(-1).tolist(),
                        "score": 1.0})
    dog = {"id": 2, "name": "dog", "keypoints": [f"dog_{i}" for i in range(17)], "skeleton": [[1, 2]]}
    dogs = [dict(a, id=1000 + a["id"], category_id=2) for a in data["annotations"][::2]]
    mixed = out / "mixed.json"
    mixed.write_text(json.dumps(dict(data, annotations=data["annotations"] + dogs,
                                     categories=data["categories"] + [dog])))
    return people, mixed, results


def test_another_skeletons_category_is_left_out_of_the_score_and_said(people_and_dogs):
    people, mixed, results = people_and_dogs
    alone = evaluate_keypoints(people, results)["AP"]
    assert 0.3 < alone < 0.95
    assert evaluate_keypoints(mixed, results, skeleton=COCO_17)["AP"] == alone
    assert evaluate_keypoints(mixed, results)["AP"] == alone  # the file's own skeleton: the most annotated one
    scope = scoring_scope(load_coco(mixed), COCO_17)
    assert scope.category_ids == (1,) and not scope.pooled
    assert "left out: 'dog' (17 keypoints" in scope.describe()
    # What scoring every keypoint category would give: the dogs, never detected, pull the mean down.
    assert _pycocotools_ap_per_category(mixed, results) < 0.75 * alone


def _pycocotools_ap_per_category(ann_file: Path, results: list[dict]) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def test_eval_oracle_says_which_categories_it_scored_and_which_it_left_out(people_and_dogs, tmp_path, capsys):
    people, mixed, _ = people_and_dogs
    ap, printed = _oracle_ap(mixed, "topdown", tmp_path, capsys, COCO_17.sigmas, truth=people)
    assert "scored: category 'person', with the OKS sigmas of coco17" in printed
    assert "left out: 'dog' (17 keypoints" in printed and ap > 0.95


def test_a_file_without_the_models_skeleton_is_refused_naming_its_categories(people_and_dogs, tmp_path):
    _, mixed, results = people_and_dogs
    only_dogs = tmp_path / "dogs.json"
    data = json.loads(mixed.read_text())
    only_dogs.write_text(json.dumps(dict(data, categories=[data["categories"][1]])))
    with pytest.raises(ValueError, match=r"dogs\.json: no category has the keypoints of coco17 .*'dog' \(17: dog_0"):
        evaluate_keypoints(only_dogs, results, skeleton=COCO_17)


@needs_custom_skeletons
def test_categories_sharing_a_skeleton_are_pooled_so_their_ground_truth_scores_one():
    path = CUSTOM_SKELETON_FILES["ap10k"]
    data = json.loads(path.read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
               for a in data["annotations"]]
    assert {a["category_id"] for a in data["annotations"]} == {1, 26}
    assert evaluate_keypoints(path, results)["AP"] == pytest.approx(1.0)
    scope = scoring_scope(load_coco(path))
    assert scope.pooled and len(scope.category_ids) == 54 and scope.category_id == 1
    assert "54 categories sharing one keypoint list" in scope.describe()


# ------------------------------------------------------------------ oracles on the real files
@needs_custom_skeletons
@pytest.mark.parametrize("name", ["ap10k", "macaque", "animalpose"])
def test_oracles_on_the_shared_animal_files_score_with_their_own_sigmas(name, tmp_path, capsys):
    path = CUSTOM_SKELETON_FILES[name]
    sigmas = skeleton_of_file(path).sigmas
    bottomup, printed = _oracle_ap(path, "bottomup", tmp_path, capsys, sigmas)
    topdown, _ = _oracle_ap(path, "topdown", tmp_path, capsys, sigmas)
    assert bottomup >= 0.90 and topdown >= 0.95
    assert "2 images" in printed
    results = json.loads((tmp_path / "bottomup.json").read_text())
    k = len(json.loads(path.read_text())["categories"][0]["keypoints"])
    assert results and all(len(r["keypoints"]) == 3 * k and r["category_id"] == 1 for r in results)


# ------------------------------------------------------------------ generated scenes of any skeleton
@pytest.fixture(scope="module")
def insect_scenes(tmp_path_factory) -> dict[str, Path]:
    """``synth --skeleton`` scenes of the 32-keypoint insect whose limb list is a forest, and absent."""
    out = tmp_path_factory.mktemp("insects")
    scenes = {}
    for kind, limbs in (("forest", INSECT_FOREST), ("no_limbs", None)):
        source = write_skeleton_file(out / f"{kind}.json", INSECT_NAMES, limbs, insect_instances(6))
        args = ["synth", str(out / kind), "--num-images", "6", "--seed", "2", "--size", "192", "192",
                "--skeleton", str(source)]
        assert main(args) == 0
        scenes[kind] = out / kind / "annotations.json"
    return scenes


@pytest.mark.parametrize("kind", ["forest", "no_limbs"])
def test_oracles_on_generated_scenes_of_a_32_keypoint_skeleton(kind, insect_scenes, tmp_path, capsys):
    sigmas = [DEFAULT_SIGMA] * len(INSECT_NAMES)
    bottomup, printed = _oracle_ap(insect_scenes[kind], "bottomup", tmp_path, capsys, sigmas)
    topdown, _ = _oracle_ap(insect_scenes[kind], "topdown", tmp_path, capsys, sigmas)
    assert bottomup >= 0.90 and topdown >= 0.95
    assert "labelled instances" in printed and "instances decoded" in printed and "people" not in printed


def test_synth_skeleton_writes_the_skeletons_whole_category(insect_scenes):
    source = skeleton_of_file(insect_scenes["forest"].parent.parent / "forest.json")
    data = json.loads(insect_scenes["forest"].read_text())
    (category,) = data["categories"]
    assert category["keypoints"] == INSECT_NAMES and category["name"] == "insect"
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in source.limbs]  # completed limbs included
    generated = skeleton_of_file(insect_scenes["forest"])
    assert (generated.keypoints, generated.limbs, generated.flip_pairs, generated.sigmas) == \
        (source.keypoints, source.limbs, source.flip_pairs, source.sigmas)
    assert data["annotations"] and all(len(a["keypoints"]) == 3 * 32 and a["category_id"] == 1
                                       for a in data["annotations"])
    coco = CocoKeypoints(insect_scenes["forest"], insect_scenes["forest"].parent / "images")
    assert coco.skeleton.keypoints == tuple(INSECT_NAMES) and coco[0].keypoints.shape[1:] == (32, 3)


def test_visible_figure_keypoints_are_drawn_on_their_own_figure(tmp_path):
    bank = PoseBank.from_file(write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST, insect_instances(3)))
    checked = 0
    for seed in range(4):
        scene = render_scene(np.random.default_rng(seed), SceneConfig(image_hw=(160, 160)), bank=bank)
        assert scene.keypoints.shape[1:] == (32, 3)
        for figure, kps in enumerate(scene.keypoints):
            for x, y, _ in kps[kps[:, 2] == 2]:
                assert scene.instance_map[int(round(float(y))), int(round(float(x)))] == figure
                checked += 1
    assert checked > 50


@pytest.mark.parametrize("area_per_box", [1.0, 0.5, None])
def test_figure_areas_follow_the_area_convention_of_the_file_their_poses_come_from(area_per_box, tmp_path):
    # AP-10K and Animal-Pose files give each animal its box's area, MacaquePose a segmentation (about
    # half); COCO scores OKS at that scale. A file without areas leaves the pixels a figure shows.
    path = write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST, insect_instances(3))
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        if area_per_box is None:
            del ann["area"]
        else:
            ann["area"] = area_per_box * ann["bbox"][2] * ann["bbox"][3]
    path.write_text(json.dumps(data))
    bank = PoseBank.from_file(path)
    assert bank.area_per_box == area_per_box
    scene = render_scene(np.random.default_rng(0), SceneConfig(image_hw=(160, 160)), num_people=3, bank=bank)
    shown = np.array([(scene.instance_map == i).sum() for i in range(len(scene.areas))])
    boxes = scene.boxes[:, 2] * scene.boxes[:, 3]
    assert len(shown) == 3 and (shown < 0.6 * boxes).all()  # thin limbs and blobs: far below their boxes
    expected = shown if area_per_box is None else area_per_box * boxes
    np.testing.assert_allclose(scene.areas, expected, rtol=1e-5)


@needs_custom_skeletons
def test_the_shared_animal_files_area_conventions_are_read_from_their_annotations():
    # The files' own arithmetic, recomputed here: the median of area / (bbox w * h) over their animals.
    for name, path in CUSTOM_SKELETON_FILES.items():
        anns = json.loads(path.read_text())["annotations"]
        expected = float(np.median([a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in anns]))
        assert PoseBank.from_file(path).area_per_box == pytest.approx(min(1.0, expected)), name
    # AP-10K and Animal-Pose give an animal its box's area; MacaquePose a segmentation's, about half.
    assert PoseBank.from_file(CUSTOM_SKELETON_FILES["ap10k"]).area_per_box == 1.0
    assert 0.4 < PoseBank.from_file(CUSTOM_SKELETON_FILES["macaque"]).area_per_box < 0.5


def test_synth_skeleton_scenes_are_deterministic_and_refused_with_video(insect_scenes, tmp_path, capsys):
    source = insect_scenes["forest"].parent.parent / "forest.json"
    for out in ("a", "b"):
        assert main(["synth", str(tmp_path / out), "--num-images", "2", "--size", "96", "96",
                     "--skeleton", str(source)]) == 0
    assert (tmp_path / "a" / "annotations.json").read_bytes() == (tmp_path / "b" / "annotations.json").read_bytes()
    assert (tmp_path / "a" / "images" / "000002.jpg").read_bytes() == (tmp_path / "b" / "images" / "000002.jpg").read_bytes()
    assert main(["synth", str(tmp_path / "v"), "--video", "--skeleton", str(source)]) == 2
    assert main(["synth", str(tmp_path / "m"), "--skeleton", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


# ------------------------------------------------------------------ results, drawing, tracking
def _animal_poses(skeleton) -> Poses:
    kps = np.zeros((2, skeleton.num_keypoints, 3), np.float32)
    kps[:, :, 0] = np.arange(skeleton.num_keypoints) * 3 + np.array([[20.0], [120.0]])
    kps[:, :, 1] = 50 + np.arange(skeleton.num_keypoints)
    kps[:, :, 2] = 0.9
    return Poses(kps, np.array([0.8, 0.7]), skeleton)


def test_results_of_another_skeleton_carry_its_keypoints_and_category(tmp_path):
    skeleton = skeleton_of_file(write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST,
                                                    insect_instances(3))).bottomup_layout()
    poses = _animal_poses(skeleton)
    coco = poses.to_coco(7, category_id=3)
    assert [len(r["keypoints"]) for r in coco] == [96, 96] and {r["category_id"] for r in coco} == {3}
    assert coco[0]["keypoints"][:6] == [20.0, 50.0, 0.9, 23.0, 51.0, 0.9]
    people = poses.to_openpose_dict()["people"]
    assert len(people[1]["pose_keypoints_2d"]) == 3 * 32 and people[1]["pose_keypoints_2d"][:3] == [120.0, 50.0, 0.9]


def test_drawing_another_skeleton_uses_its_limbs_and_colours(tmp_path):
    skeleton = skeleton_of_file(write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST,
                                                    insect_instances(3))).bottomup_layout()
    kps = np.zeros((1, 32, 3), np.float32)
    limb = skeleton.redundant_limbs[0] if skeleton.redundant_limbs else 0
    a, b = skeleton.limbs[limb]
    kps[0, a], kps[0, b] = (20, 50, 0.9), (80, 50, 0.9)
    drawn = draw_poses(np.zeros((100, 100, 3), np.uint8), Poses(kps, np.ones(1), skeleton), thickness=3)
    assert tuple(int(v) for v in drawn[50, 50]) == skeleton.limb_colours[limb]


def test_tracking_follows_animals_of_another_skeleton(tmp_path):
    skeleton = skeleton_of_file(write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST,
                                                    insect_instances(3)))
    tracker = Tracker(skeleton=skeleton)
    ids = []
    for frame in range(5):
        poses = _animal_poses(skeleton)
        moved = poses.keypoints.copy()
        moved[..., 0] += 2 * frame
        ids.append(tracker.update(Poses(moved, poses.scores, skeleton)).track_ids.tolist())
    assert ids[-1] == ids[-2] and len(set(ids[-1])) == 2 and min(ids[-1]) >= 0
