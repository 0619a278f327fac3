"""Skeletons, the coordinate convention and the Poses result type."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from openpose_lite import geometry as geo
from openpose_lite.skeleton import (
    COCO_17,
    OPENPOSE_18,
    Skeleton,
    coco_to_openpose,
    openpose_to_coco,
)
from openpose_lite.structures import Poses


def test_openpose18_channel_counts_and_cmu_order():
    assert (OPENPOSE_18.num_keypoints, OPENPOSE_18.num_heatmaps, OPENPOSE_18.num_pafs) == (18, 19, 38)
    assert OPENPOSE_18.keypoints[:3] == ("nose", "neck", "right_shoulder")
    assert OPENPOSE_18.limbs[0] == (1, 8) and OPENPOSE_18.limbs[-1] == (15, 17)
    assert (COCO_17.num_keypoints, COCO_17.num_limbs) == (17, 19)


@pytest.mark.parametrize("skeleton", [COCO_17, OPENPOSE_18])
def test_flip_permutations_are_involutions_that_swap_left_and_right(skeleton):
    perm = skeleton.flip_permutation
    np.testing.assert_array_equal(perm[perm], np.arange(skeleton.num_keypoints))
    for k, name in enumerate(skeleton.keypoints):
        mirror = skeleton.keypoints[perm[k]]
        assert mirror == name.replace("left", "#").replace("right", "left").replace("#", "right")
    limbs = skeleton.limb_flip_permutation
    np.testing.assert_array_equal(limbs[limbs], np.arange(skeleton.num_limbs))


def test_paf_flip_negates_x_and_reversed_limbs_negate_both():
    sign = COCO_17.paf_flip_sign.reshape(-1, 2)
    hips = COCO_17.limbs.index((11, 12))  # mirrors onto itself, reversed
    assert tuple(sign[hips]) == (1.0, -1.0)
    assert (OPENPOSE_18.paf_flip_sign.reshape(-1, 2) == [-1.0, 1.0]).all()


def test_skeleton_rejects_a_limb_whose_mirror_is_missing():
    with pytest.raises(ValueError, match="mirror"):
        Skeleton("bad", ("a", "l", "r"), ((0, 1),), ((1, 2),), (0.1, 0.1, 0.1))


def test_coco_openpose_conversion_neck_needs_both_shoulders():
    kps = np.zeros((2, 17, 3), np.float32)
    kps[:, 5] = (10, 20, 2)  # left shoulder
    kps[:, 6] = (30, 24, 1)  # right shoulder
    kps[1, 6, 2] = 0
    op = coco_to_openpose(kps)
    neck = OPENPOSE_18.index("neck")
    np.testing.assert_allclose(op[0, neck], (20, 22, 1))
    assert op[1, neck, 2] == 0
    assert op[0, OPENPOSE_18.index("right_shoulder"), 0] == 30
    np.testing.assert_array_equal(openpose_to_coco(op), kps)


def test_cell_centres_follow_the_stride_convention():
    assert geo.cell_to_input(np.array([0.0, 1.0]), 8).tolist() == [3.5, 11.5]
    np.testing.assert_allclose(geo.input_to_cell(geo.cell_to_input(np.array([2.25]), 8), 8), [2.25])
    assert geo.map_hw((368, 370), 8) == (46, 47)


def test_scale_affine_moves_points_like_cv2_resize_moves_pixels():
    image = np.zeros((40, 60), np.float32)
    image[10, 20] = 1.0
    resized = cv2.resize(image, (120, 80), interpolation=cv2.INTER_LINEAR)
    y, x = np.unravel_index(np.argmax(resized), resized.shape)
    expected = geo.apply_affine(geo.scale_affine(2.0), np.array([20.0, 10.0]))
    # the bright pixel spreads over a 2x2 block centred on the mapped point
    assert abs(expected[0] - (x + 0.5)) <= 0.5 and abs(expected[1] - (y + 0.5)) <= 0.5


def test_crop_affine_matches_cv2_warp_and_inverts():
    yy, xx = np.mgrid[:200, :150]
    image = np.exp(-((xx - 40.0) ** 2 + (yy - 120.0) ** 2) / (2 * 4.0**2)).astype(np.float32)  # a blob at (40, 120)
    m = geo.crop_affine(np.array([70.0, 100.0]), np.array([96.0, 128.0]), (64, 48), rotation_deg=30.0)
    warped = cv2.warpAffine(image, m, (48, 64), flags=cv2.INTER_LINEAR)
    gy, gx = np.mgrid[:64, :48]
    centroid = np.array([(warped * gx).sum(), (warped * gy).sum()]) / warped.sum()
    px = geo.apply_affine(m, np.array([40.0, 120.0]))
    assert np.hypot(*(px - centroid)) < 0.1
    back = geo.apply_affine(geo.invert_affine(m), px)
    np.testing.assert_allclose(back, [40.0, 120.0], atol=1e-9)


def test_letterbox_keeps_aspect_and_pads_to_stride():
    m, padded = geo.letterbox_affine((480, 640), 368, 8)
    assert padded == (368, 496)
    np.testing.assert_allclose(m[0, 0], 368 / 480)
    with pytest.raises(ValueError, match="positive"):
        geo.letterbox_affine((0, 10), 368, 8)


def test_box_to_center_scale_grows_to_aspect_ratio_with_padding():
    center, size = geo.box_to_center_scale(np.array([10.0, 20.0, 30.0, 120.0]), 0.75, 1.25)
    np.testing.assert_allclose(center, [24.5, 79.5])
    np.testing.assert_allclose(size, [90.0 * 1.25, 120.0 * 1.25])


def test_poses_openpose_json_has_cmu_fields_and_zero_for_missing():
    kps = np.zeros((1, 18, 3), np.float32)
    kps[0, 0] = (5.0, 6.0, 0.9)
    doc = Poses(kps, np.array([0.7])).to_openpose_dict()
    json.dumps(doc)
    assert doc["version"] == 1.3
    flat = doc["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 54 and flat[:3] == [5.0, 6.0, 0.9] and flat[3:6] == [0.0, 0.0, 0.0]


def test_poses_to_coco_drops_neck_and_transform_moves_points():
    kps = np.zeros((1, 18, 3), np.float32)
    kps[0, OPENPOSE_18.index("left_eye")] = (5.0, 6.0, 1.0)
    poses = Poses(kps, np.array([0.5])).transform(geo.scale_affine(2.0))
    res = poses.to_coco(image_id=7)
    assert res[0]["image_id"] == 7 and len(res[0]["keypoints"]) == 51
    np.testing.assert_allclose(res[0]["keypoints"][3:6], [10.5, 12.5, 1.0])


def test_poses_reject_wrong_shapes():
    with pytest.raises(ValueError, match="keypoints"):
        Poses(np.zeros((1, 17, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="scores"):
        Poses(np.zeros((2, 18, 3)), np.zeros(1))
    assert len(Poses.empty()) == 0
