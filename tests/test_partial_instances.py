"""Partly labelled instances stay whole: limbs derived for a file without a limb list keep every
instance's labelled keypoints connected, and bottom-up grouping joins them through those limbs.

A derived tree runs through keypoints that some instances lack; an instance labelled on half its
keypoints then falls into pieces that no limb labelled at both ends joins, and the bottom-up
decoder returns it as several instances. These tests draw instances at known coordinates (or take
the shared animal files, their ``skeleton`` removed and half of each animal's keypoints dropped),
so the expected answer is the input: one decoded instance per instance, holding its keypoints.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import CUSTOM_SKELETON_FILES, needs_custom_skeletons
from skeleton_data import write_skeleton_file

from openpose_lite.codecs import BottomUpPafCodec
from openpose_lite.coco.skeleton import skeleton_of_file
from openpose_lite.limbs import instance_completion
from openpose_lite.oracle import run_oracle
from openpose_lite.skeleton import Skeleton


def _half_labelled(source: Path, out: Path, seed: int) -> Path:
    """``source`` without limb lists, each annotation keeping a seeded half of its labelled keypoints."""
    data = json.loads(source.read_text())
    rng = np.random.default_rng(seed)
    for category in data["categories"]:
        category.pop("skeleton", None)
    for ann in data["annotations"]:
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        on = np.flatnonzero(kps[:, 2] > 0)
        kps[rng.choice(on, size=len(on) // 2, replace=False)] = 0
        ann["keypoints"], ann["num_keypoints"] = kps.reshape(-1).tolist(), int((kps[:, 2] > 0).sum())
    out.write_text(json.dumps(data))
    return out


def _decoded_per_animal(path: Path) -> dict[int, list[set[int]]]:
    """image id -> the labelled keypoint sets of the instances the bottom-up oracle decodes there."""
    _, results = run_oracle("bottomup", path)
    found: dict[int, list[set[int]]] = {}
    for r in results:
        kps = np.asarray(r["keypoints"]).reshape(-1, 3)
        found.setdefault(r["image_id"], []).append(set(np.flatnonzero(kps[:, 2] > 0).tolist()))
    return found


# ------------------------------------------------------------------ the shared animal files
# MacaquePose is left out: its keypoints carry COCO's names, so with or without a limb list it is
# read as the person layout, whose limbs are CMU's OpenPose-18 ones and are never derived.
@needs_custom_skeletons
@pytest.mark.parametrize("name", ["ap10k", "animalpose"])
@pytest.mark.parametrize("seed", range(4))
def test_half_labelled_animals_of_a_file_without_limbs_decode_as_one_instance_each(name, seed, tmp_path):
    path = _half_labelled(CUSTOM_SKELETON_FILES[name], tmp_path / f"{name}.json", seed)
    truth = {a["image_id"]: set(np.flatnonzero(np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0).tolist())
             for a in json.loads(path.read_text())["annotations"]}
    assert len(truth) == 2  # one animal per image in these files
    assert _decoded_per_animal(path) == {image: [labelled] for image, labelled in truth.items()}


# ------------------------------------------------------------------ the derived limbs
def _chain(tmp_path: Path, lacking: dict[int, list[int]], count: int = 4) -> Path:
    """A file of ``count`` chains a-b-c-d (x = 0, 10, 22, 30, y = 0, 2, 4, 6: c-d the shortest link,
    then a-b, then b-c; scaled 4 to 7 times and moved), one per image, with no limb list; instance
    n lacks the keypoints ``lacking[n]``."""
    instances = np.zeros((count, 4, 3))
    for n in range(count):
        instances[n, :, 0] = 60 + (4 + n) * np.array([0.0, 10.0, 22.0, 30.0])
        instances[n, :, 1] = 100 + (4 + n) * np.array([0.0, 2.0, 4.0, 6.0])
        instances[n, :, 2] = 2
        instances[n, lacking.get(n, []), 2] = 0
    return write_skeleton_file(tmp_path / "chain.json", ["a", "b", "c", "d"], None, instances)


def test_an_instance_lacking_a_middle_keypoint_gets_the_limb_that_bridges_it(tmp_path):
    # The tree is the chain c-d, a-b, b-c; an instance lacking b has a and c apart. Of the pairs
    # that join them (a-c, a-d), a-c is the shorter; it closes the cycle a-b-c, so it is redundant.
    # Fully labelled, the same chains get the tree alone.
    skeleton = skeleton_of_file(_chain(tmp_path, {3: [1]}))
    assert skeleton.limbs == ((2, 3), (0, 1), (1, 2), (0, 2)) and skeleton.added_limbs == (0, 1, 2, 3)
    assert len(skeleton.bottomup_layout().redundant_limbs) == 1
    assert skeleton_of_file(_chain(tmp_path, {})).limbs == ((2, 3), (0, 1), (1, 2))


def _distances(pairs: dict[tuple[int, int], float], k: int) -> np.ndarray:
    d = np.full((k, k), np.inf)
    for (a, b), v in pairs.items():
        d[a, b] = d[b, a] = v
    return d


def test_the_pair_joining_the_most_instances_is_taken_so_one_limb_serves_them_all():
    # The chain 0-1-2-3 at x = 0, 1, 2, 3. Instance A has 0, 2, 3 and instance B 0 and 3: the short
    # 0-2 joins A alone, 0-3 joins both. Taking each instance's shortest join would add both.
    d = _distances({(a, b): float(b - a) for a in range(4) for b in range(a + 1, 4)}, 4)
    labelled = np.array([[1, 0, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=bool)
    assert instance_completion(((0, 1), (1, 2), (2, 3)), d, np.arange(4), labelled) == ([(0, 3)], 0)


def test_among_pairs_joining_as_many_instances_the_shortest_is_taken_with_its_mirror():
    # 0 body, 1/2 left/right arm, 3/4 left/right hand (flip pairs 1-2, 3-4); tree 0-1, 0-2, 1-3, 2-4.
    # An instance lacks its left arm: its left hand joins the rest by 0-3, 2-3 or 3-4, and 0-3 is
    # the shortest; the right side gets the mirror image 0-4, which PAF flipping needs.
    d = _distances({(0, 1): 1, (0, 2): 1, (1, 3): 1, (2, 4): 1, (0, 3): 2, (0, 4): 2, (2, 3): 3, (3, 4): 3}, 5)
    labelled = np.array([[1, 0, 1, 1, 1]], dtype=bool)
    added = instance_completion(((0, 1), (0, 2), (1, 3), (2, 4)), d, np.array([0, 2, 1, 4, 3]), labelled)
    assert added == ([(0, 3), (0, 4)], 0)


def test_a_bound_on_the_added_limbs_stops_the_choice_and_counts_the_instances_left_in_pieces():
    # The chain 0-1-2-3-4 at x = 0..4: instance A has 0, 2, 3 (0 apart), B has 1, 2, 4 (4 apart).
    # Each needs a limb of its own; 0-2 (length 2, first in index order among the shortest) comes first.
    d = _distances({(a, b): float(b - a) for a in range(5) for b in range(a + 1, 5)}, 5)
    labelled = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1]], dtype=bool)
    chain = ((0, 1), (1, 2), (2, 3), (3, 4))
    assert instance_completion(chain, d, np.arange(5), labelled) == ([(0, 2), (2, 4)], 0)
    assert instance_completion(chain, d, np.arange(5), labelled, max_added=1) == ([(0, 2)], 1)


def test_a_keypoint_never_labelled_is_joined_by_keypoint_order_with_a_warning(tmp_path, caplog):
    # Keypoint c is labelled in no instance: no annotation places it, so it hangs from its
    # neighbour in the list (b) and the bottom-up layout is defined instead of refused.
    with caplog.at_level(logging.WARNING, logger="openpose_lite.coco.skeleton"):
        skeleton = skeleton_of_file(_chain(tmp_path, {n: [2] for n in range(4)}))
    assert skeleton.limbs == ((0, 1), (1, 3), (1, 2))
    assert "never labelled together with the others" in caplog.text and "b-c" in caplog.text
    assert skeleton.bottomup_layout().background


def test_chains_of_half_labelled_instances_decode_whole(tmp_path):
    # Instances lacking b, c, or both: a-d joins all three (the tree runs a-b-c-d), and each is
    # decoded as one instance holding every keypoint it has.
    lacking = {0: [1], 1: [2], 2: [1, 2], 3: []}
    path = _chain(tmp_path, lacking)
    found = _decoded_per_animal(path)
    assert found == {n + 1: [set(range(4)) - set(lacking[n])] for n in range(4)}


# ------------------------------------------------------------------ grouping through redundant limbs
def test_redundant_limbs_chained_in_any_order_join_parts_to_their_instance():
    # r is the root (tree r-e, r-f, r-x, x-c, x-d); the instance lacks x, so c and d reach it only
    # through the redundant limbs c-d (matched first, when neither part has an instance yet) and
    # e-c. The c-d connection must be tried again once e-c has given c its instance.
    skeleton = Skeleton(name="chain", keypoints=("r", "e", "x", "c", "d", "f"),
                        limbs=((0, 1), (0, 2), (2, 3), (2, 4), (0, 5), (3, 4), (1, 3)), flip_pairs=(),
                        sigmas=(0.1,) * 6, background=True, redundant_limbs=(5, 6))
    kps = np.array([[[100, 100, 2], [100, 160, 2], [160, 100, 0], [200, 80, 2], [200, 160, 2], [40, 100, 2]]],
                   dtype=np.float32)
    codec = BottomUpPafCodec(skeleton=skeleton)
    targets, _ = codec.encode(kps, (296, 296))
    poses = codec.decode(targets)
    assert len(poses) == 1
    np.testing.assert_array_equal(poses.keypoints[0, :, 2] > 0, kps[0, :, 2] > 0)
    assert np.abs(poses.keypoints[0, kps[0, :, 2] > 0, :2] - kps[0, kps[0, :, 2] > 0, :2]).max() <= 1.0
