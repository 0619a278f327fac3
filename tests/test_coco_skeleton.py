"""Skeletons from COCO categories: names, limbs, flip pairs, sigmas, completed limbs, layouts, plain dicts.

References held here:

* COCO's category format (cocodataset.org, "Data format", keypoint detection): ``keypoints`` is the
  list of names, ``skeleton`` the list of limbs as 1-based keypoint index pairs.
* The published OKS sigmas of the animal sets, as their benchmark code evaluates them:
  open-mmlab/mmpose, ``configs/_base_/datasets/ap10k.py``, ``animalpose.py`` and ``macaque.py``
  (``dataset_info["sigmas"]``, in the keypoint order of their ``keypoint_info``, which is the
  files' order). Written out below from those files.
* The default sigma of any other skeleton: DeepLabCut/DeepLabCut, ``deeplabcut/core/metrics/api.py``,
  ``compute_metrics(..., oks_sigma=0.1)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import COCO_SAMPLE_DIR, CUSTOM_SKELETON_FILES, SKIP_REASON, needs_custom_skeletons
from skeleton_data import INSECT_FOREST, INSECT_NAMES, insect_instances, write_skeleton_file

from openpose_lite.cli import main
from openpose_lite.coco.skeleton import flip_pairs_from_names, skeleton_from_category, skeleton_of_file
from openpose_lite.limbs import limb_components
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton
from openpose_lite.viz import limb_colours

MMPOSE_AP10K_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
                       0.087, 0.087, 0.089, 0.089]
MMPOSE_ANIMALPOSE_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.10, 0.10, 0.10, 0.107, 0.107, 0.107, 0.107, 0.087,
                            0.087, 0.087, 0.087, 0.089, 0.089, 0.089, 0.089]
MMPOSE_MACAQUE_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
                         0.087, 0.087, 0.089, 0.089]
DEEPLABCUT_OKS_SIGMA = 0.1


def _pairs_by_name(skeleton: Skeleton) -> set[tuple[str, str]]:
    return {(skeleton.keypoints[a], skeleton.keypoints[b]) for a, b in skeleton.flip_pairs}


# ------------------------------------------------------------------ flip pairs from names
@pytest.mark.parametrize("left, right", [
    ("left_eye", "right_eye"), ("L_F_Paw", "R_F_Paw"), ("EyeL", "EyeR"), ("eye_l", "eye_r"), ("LEye", "REye"),
    ("wing_left_tip", "wing_right_tip"), ("LeftHindPaw", "RightHindPaw"), ("L1", "R1"), ("ear-Lt", "ear-Rt"),
    ("LEFT_EAR", "RIGHT_EAR"),
])
def test_names_that_differ_in_one_side_word_are_flip_pairs(left, right):
    assert flip_pairs_from_names(["nose", right, left, "tail"]) == ((2, 1),)


@pytest.mark.parametrize("names, pairs", [
    (["eyel", "eyer", "rear", "lear"], ()),  # a side letter glued to a word is no side
    (["left_eye", "right_ear"], ()),  # they differ in more than the side
    (["left_eye", "right_eye", "left_tail_tip", "left_right"], ((0, 1),)),  # no counterpart, or two sides
    (["L_eye", "left_eye", "R_eye"], ()),  # two left eyes: which one mirrors R_eye is not told
])
def test_names_without_one_mirror_counterpart_pair_with_nothing(names, pairs):
    assert flip_pairs_from_names(names) == pairs


# ------------------------------------------------------------------ the shared real files
@needs_custom_skeletons
def test_ap10k_file_is_one_skeleton_of_its_54_species_with_mmposes_sigmas():
    data = json.loads(CUSTOM_SKELETON_FILES["ap10k"].read_text())
    category = data["categories"][0]
    skeleton = skeleton_of_file(CUSTOM_SKELETON_FILES["ap10k"])
    assert len(data["categories"]) == 54 and all(c["keypoints"] == category["keypoints"] for c in data["categories"])
    assert list(skeleton.keypoints) == category["keypoints"]
    assert [list(limb) for limb in skeleton.limbs] == [[a - 1, b - 1] for a, b in category["skeleton"]]
    assert list(skeleton.sigmas) == MMPOSE_AP10K_SIGMAS
    assert _pairs_by_name(skeleton) == {(f"left_{p}", f"right_{p}") for p in
                                        ("eye", "shoulder", "elbow", "front_paw", "hip", "knee", "back_paw")}
    assert skeleton.added_limbs == ()  # its limbs connect every keypoint


@needs_custom_skeletons
def test_animalpose_file_pairs_l_and_r_prefixes_and_has_mmposes_sigmas():
    data = json.loads(CUSTOM_SKELETON_FILES["animalpose"].read_text())
    skeleton = skeleton_of_file(CUSTOM_SKELETON_FILES["animalpose"])
    assert skeleton.num_keypoints == 20 and list(skeleton.sigmas) == MMPOSE_ANIMALPOSE_SIGMAS
    assert [list(limb) for limb in skeleton.limbs] == [[a - 1, b - 1] for a, b in data["categories"][0]["skeleton"]]
    assert _pairs_by_name(skeleton) == {(f"L_{p}", f"R_{p}") for p in
                                        ("Eye", "EarBase", "F_Elbow", "B_Elbow", "F_Knee", "B_Knee", "F_Paw", "B_Paw")}


@needs_custom_skeletons
def test_macaque_file_names_coco_keypoints_so_it_is_the_person_layout_with_mmposes_macaque_sigmas():
    skeleton = skeleton_of_file(CUSTOM_SKELETON_FILES["macaque"])
    assert skeleton is COCO_17 and list(skeleton.sigmas) == MMPOSE_MACAQUE_SIGMAS
    assert skeleton.bottomup_layout() is OPENPOSE_18


def test_a_skeleton_no_dataset_publishes_sigmas_for_gets_deeplabcuts_default():
    skeleton = skeleton_from_category({"name": "fly", "keypoints": ["head", "thorax", "tail"], "skeleton": [[1, 2]]})
    assert skeleton.sigmas == (DEEPLABCUT_OKS_SIGMA,) * 3


# ------------------------------------------------------------------ stated settings
def test_flip_pairs_sigmas_and_limbs_can_be_stated_in_the_category_or_as_settings():
    category = {"name": "bird", "keypoints": ["beak", "wing_a", "wing_b", "tail"], "skeleton": [[1, 2], [1, 3], [1, 4]],
                "flip_pairs": [[2, 3]], "sigmas": [0.02, 0.05, 0.05, 0.08]}
    from_file = skeleton_from_category(category)
    assert from_file.flip_pairs == ((1, 2),) and from_file.sigmas == (0.02, 0.05, 0.05, 0.08)
    stated = skeleton_from_category(category, flip_pairs=[("wing_b", "wing_a")], sigmas={"beak": 0.1, "wing_a": 0.2,
                                    "wing_b": 0.2, "tail": 0.3}, limbs=[("tail", "beak"), (0, 1), (0, 2)])
    assert stated.flip_pairs == ((2, 1),) and stated.sigmas == (0.1, 0.2, 0.2, 0.3)
    assert stated.limbs == ((3, 0), (0, 1), (0, 2))
    assert skeleton_from_category(dict(category, flip_pairs=[])).flip_pairs == ()


def test_a_limb_whose_mirror_is_missing_gets_its_mirror_added_and_recorded():
    skeleton = skeleton_from_category({"name": "x", "keypoints": ["neck", "left_arm", "right_arm"], "skeleton": [[1, 2]]})
    assert skeleton.limbs == ((0, 1), (0, 2)) and skeleton.added_limbs == (1,)
    assert skeleton.limb_flip_permutation.tolist() == [1, 0]


# ------------------------------------------------------------------ completed limbs
def test_a_forest_of_limbs_is_joined_by_the_shortest_pairs_labelled_together(tmp_path):
    names = ["a", "b", "c", "d"]
    instances = np.zeros((3, 4, 3))
    instances[..., 2] = 2
    instances[:, :, :2] = [[0, 0], [10, 0], [30, 0], [45, 0]]  # a-b and c-d given; b-c (20) is the shortest link
    instances[2, 1, 2] = 0  # b unlabelled in one instance: its distances come from the other two
    path = write_skeleton_file(tmp_path / "chain.json", names, [[1, 2], [3, 4]], instances)
    skeleton = skeleton_of_file(path)
    # b-c joins the pieces; a-c then keeps the instance without b whole (a and c labelled, b not).
    assert skeleton.limbs == ((0, 1), (2, 3), (1, 2), (0, 2)) and skeleton.added_limbs == (2, 3)
    assert limb_components(4, skeleton.limbs).max() == 0


def test_the_insect_forest_and_its_missing_limb_list_become_symmetric_connected_trees(tmp_path):
    for limbs in (INSECT_FOREST, None):
        path = write_skeleton_file(tmp_path / "insect.json", INSECT_NAMES, limbs, insect_instances(5))
        skeleton = skeleton_of_file(path)
        assert limb_components(skeleton.num_keypoints, skeleton.limbs).max() == 0
        given = len(limbs or [])
        assert skeleton.limbs[:given] == tuple((a - 1, b - 1) for a, b in limbs or [])
        assert skeleton.added_limbs == tuple(range(given, skeleton.num_limbs))
        assert len(skeleton.flip_pairs) == 14  # side words, L1/R1, camelCase L/R, _l/_r
        bottomup = skeleton.bottomup_layout()  # every mirror limb is a limb: flipping is defined
        assert bottomup.background and bottomup.num_heatmaps == 33 and bottomup.num_pafs == 2 * skeleton.num_limbs


def test_the_bottomup_layout_refuses_limbs_that_leave_keypoints_apart():
    skeleton = skeleton_from_category({"name": "pair", "keypoints": ["a", "b", "c"], "skeleton": [[1, 2]]})
    with pytest.raises(ValueError, match=r"pair: the limbs leave keypoints \['c'\] unconnected"):
        skeleton.bottomup_layout()


@needs_custom_skeletons
def test_limbs_closing_a_cycle_are_redundant_in_the_bottomup_layout():
    skeleton = skeleton_of_file(CUSTOM_SKELETON_FILES["ap10k"]).bottomup_layout()
    # The eyes and the nose make a triangle; walked from the neck, the eye-eye limb closes it.
    assert [skeleton.limbs[i] for i in skeleton.redundant_limbs] == [(0, 1)]
    assert skeleton.annotation_layout().redundant_limbs == () and not skeleton.annotation_layout().background


# ------------------------------------------------------------------ layouts, dicts, colours
def test_the_person_layouts_are_the_cmu_pair():
    assert COCO_17.bottomup_layout() is OPENPOSE_18 and OPENPOSE_18.annotation_layout() is COCO_17
    assert COCO_17.annotation_layout() is COCO_17 and OPENPOSE_18.bottomup_layout() is OPENPOSE_18


def test_skeleton_dicts_round_trip_through_json_and_a_weights_only_checkpoint(tmp_path):
    skeleton = skeleton_of_file(write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST,
                                                    insect_instances(4))).bottomup_layout()
    for person in (COCO_17, OPENPOSE_18):
        assert Skeleton.from_dict(json.loads(json.dumps(person.to_dict()))) is person
    torch.save({"skeleton": skeleton.to_dict()}, tmp_path / "ckpt.pt")
    back = Skeleton.from_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["skeleton"], source="ckpt.pt")
    assert back == skeleton and back.limb_colours == skeleton.limb_colours and back.added_limbs == skeleton.added_limbs
    assert back.redundant_limbs == skeleton.redundant_limbs and back.background


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(extra=1), r"ckpt: skeleton dict has unknown keys \['extra'\]"),
    (lambda d: d.pop("sigmas"), r"lacks \['sigmas'\]"),
    (lambda d: d.update(limbs=[[0, 99]]), r"ckpt: not a valid skeleton dict \(.*limb \(0, 99\)"),
    (lambda d: d.update(background="yes"), r"ckpt: not a valid skeleton dict \(expected true or false"),
])
def test_a_broken_skeleton_dict_is_named(change, message):
    data = COCO_17.to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        Skeleton.from_dict(data, source="ckpt")


def test_person_drawing_colours_are_the_hue_wheel_of_viz():
    assert COCO_17.limb_colours == OPENPOSE_18.limb_colours == tuple(limb_colours(19))


def test_derived_colours_tell_left_from_right_and_give_mirror_limbs_matching_colours(tmp_path):
    skeleton = skeleton_of_file(write_skeleton_file(tmp_path / "i.json", INSECT_NAMES, INSECT_FOREST,
                                                    insect_instances(4)))
    colours = skeleton.limb_colours
    assert colours == skeleton_of_file(tmp_path / "i.json").limb_colours  # deterministic
    left = {a for a, _ in skeleton.flip_pairs}
    right = {b for _, b in skeleton.flip_pairs}
    mirror = skeleton.limb_flip_permutation
    for i, (a, b) in enumerate(skeleton.limbs):
        if {a, b} <= left:
            j = int(mirror[i])
            assert set(skeleton.limbs[j]) <= right
            assert colours[i][2] > colours[i][0] and colours[j][0] > colours[j][2]  # left warm (R > B), right cool
            assert max(colours[i]) == max(colours[j])  # the same place in their ranges


# ------------------------------------------------------------------ bad skeletons, named
def _category_file(tmp_path: Path, **category) -> Path:
    names = category.get("keypoints", ["head", "left_ear", "right_ear"])
    instances = np.zeros((1, max(len(names), 1), 3))
    instances[0, :, :2] = np.arange(2 * len(instances[0])).reshape(-1, 2) + 10
    instances[0, :, 2] = 2
    return write_skeleton_file(tmp_path / "bad.json", names, category.pop("skeleton", [[1, 2], [1, 3]]), instances,
                               category={k: v for k, v in category.items() if k != "keypoints"})


@pytest.mark.parametrize("category, message", [
    ({"skeleton": [[1, 2], [1, 4]]}, r"bad\.json: category 'insect': skeleton\[1\] = \[1, 4\] has keypoint index 4, "
                                     r"expected 1\.\.3 for 3 keypoints"),
    ({"skeleton": [[0, 1]]}, r"bad\.json: category 'insect': skeleton\[0\] = \[0, 1\] has keypoint index 0, expected "
                             r"1\.\.3 for 3 keypoints \(COCO's limb indices are 1-based"),
    ({"keypoints": ["head", "ear", "ear"]}, r"bad\.json: category 'insect': keypoint name 'ear' appears twice "
                                            r"\(keypoints\[1\] and keypoints\[2\]\)"),
    ({"skeleton": [[2, 2]]}, r"bad\.json: category 'insect': skeleton\[0\] = \[2, 2\] joins a keypoint to itself"),
    ({"sigmas": [0.1, -1, 0.1]}, r"bad\.json: category 'insect': 'sigmas' is \[0\.1, -1, 0\.1\], expected 3 OKS sigmas"),
    ({"flip_pairs": [[2, 7]]}, r"bad\.json: category 'insect': flip_pairs\[0\] = \[2, 7\] has keypoint index 7"),
])
def test_bad_skeletons_are_refused_naming_the_file_and_field(tmp_path, capsys, category, message):
    path = _category_file(tmp_path, **category)
    with pytest.raises(ValueError, match=message):
        skeleton_of_file(path)
    assert main(["eval", "--oracle", "bottomup", "--ann", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("openpose-lite eval: error: ") and "bad.json: " in err


def test_a_category_without_keypoints_and_annotations_of_the_wrong_length_are_refused_by_eval(tmp_path, capsys):
    path = _category_file(tmp_path)
    data = json.loads(path.read_text())
    data["categories"][0]["keypoints"] = []
    path.write_text(json.dumps(data))
    assert main(["eval", "--oracle", "bottomup", "--ann", str(path)]) == 2
    assert "bad.json: categories[0] ('insect') has keypoints [], expected a non-empty list of keypoint names" \
        in capsys.readouterr().err
    data = json.loads(_category_file(tmp_path).read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    path.write_text(json.dumps(data))
    assert main(["eval", "--oracle", "topdown", "--ann", str(path)]) == 2
    assert ("bad.json: annotation 1 has 6 keypoint values, expected 9 (3 x 3 keypoints of category 'insect') "
            "(image id 1)") in capsys.readouterr().err
    del data["categories"][0]["keypoints"]  # no names: no skeleton (not COCO-17 people)
    data["annotations"][0]["keypoints"] += [0, 0, 0]
    path.write_text(json.dumps(data))
    assert main(["eval", "--oracle", "bottomup", "--ann", str(path)]) == 2
    assert "bad.json: none of its categories ('insect') lists 'keypoints', so it states no skeleton" \
        in capsys.readouterr().err


@pytest.mark.skipif(not (COCO_SAMPLE_DIR / "extras/crowdpose/crowdpose_sample_orig14kp.json").is_file(), reason=SKIP_REASON)
def test_crowdposes_own_14_keypoint_file_lists_coco_limbs_out_of_its_range_and_is_refused_by_name():
    with pytest.raises(ValueError, match=r"crowdpose_sample_orig14kp\.json: category 'person': skeleton\[0\] = "
                                         r"\[16, 14\] has keypoint index 16, expected 1\.\.14 for 14 keypoints"):
        skeleton_of_file(COCO_SAMPLE_DIR / "extras/crowdpose/crowdpose_sample_orig14kp.json")
