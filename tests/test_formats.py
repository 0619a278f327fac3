"""Output formats and keypoint orders held to their references.

* OpenPose JSON, CMU-Perceptual-Computing-Lab/openpose: ``src/openpose/filestream/fileStream.cpp``
  (``savePeopleJson``: ``"version": 1.3``, "Version 1.3: Added person ID", then ``people``, one
  object per person with the keys below, each keypoint array flat ``x0, y0, c0, x1, ...``) and
  ``doc/02_output.md`` (the key names; ``c`` "in the range [0,1]"); the COCO body model's part
  order is ``POSE_COCO_BODY_PARTS`` (``include/openpose/pose/poseParameters.hpp``, quoted in the
  doc), 18 parts then background; an untracked person has ``"person_id": [-1]``.
* COCO keypoint results (cocodataset.org, "Results Format", keypoint detection):
  ``[{"image_id", "category_id", "keypoints": [x1, y1, v1, ..., x17, y17, v17], "score"}]`` in the
  order of the person category's ``keypoints`` list.
* COCO-17 -> OpenPose-18, the CMU training code (CMU-Perceptual-Computing-Lab/caffe_train,
  ``src/caffe/cpm_data_transformer.cpp``, ``TransformJoints``): OpenPose part i is the mean of
  COCO parts ``COCO_to_ours_1[i]`` and ``COCO_to_ours_2[i]`` (1-based), the two tables differing
  only at the neck (left and right shoulder); the neck is missing unless both shoulders are labelled.
"""

from __future__ import annotations

import numpy as np

from openpose_lite.skeleton import (
    COCO_17,
    OPENPOSE_18,
    coco_to_openpose,
    openpose_to_coco,
)
from openpose_lite.structures import Poses

POSE_COCO_BODY_PARTS = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip",
                        "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar"]
OPENPOSE_PERSON_KEYS = ["person_id", "pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                        "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                        "hand_right_keypoints_3d"]
# The COCO person category's keypoint names (person_keypoints_*.json "categories").
COCO_KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle"]
COCO_TO_OURS_1 = [1, 6, 7, 9, 11, 6, 8, 10, 13, 15, 17, 12, 14, 16, 3, 2, 5, 4]
COCO_TO_OURS_2 = [1, 7, 7, 9, 11, 6, 8, 10, 13, 15, 17, 12, 14, 16, 3, 2, 5, 4]


def _cmu_name(name: str) -> str:
    """Our keypoint names in CMU's spelling: right_shoulder -> RShoulder."""
    side, _, part = name.partition("_")
    if not part:
        return side.capitalize()
    return {"right": "R", "left": "L"}[side] + part.capitalize()


def test_openpose_18_is_the_cmu_coco_body_part_order_with_a_trailing_background():
    assert [_cmu_name(n) for n in OPENPOSE_18.keypoints] == POSE_COCO_BODY_PARTS
    assert OPENPOSE_18.background and OPENPOSE_18.num_heatmaps == len(POSE_COCO_BODY_PARTS) + 1
    assert list(COCO_17.keypoints) == COCO_KEYPOINTS


def test_openpose_json_has_the_cmu_version_keys_and_flat_part_order():
    kps = np.zeros((2, 18, 3), np.float32)
    kps[0, :, 0] = np.arange(18)  # x = part index: the flat array must follow the part order
    kps[0, :, 1] = 100 + np.arange(18)
    kps[0, :, 2] = 0.5
    kps[1, 3] = (7.0, 8.0, 0.9)  # one part only; the others are missing
    data = Poses(kps, np.array([0.9, 0.4]), OPENPOSE_18).to_openpose_dict()
    assert data["version"] == 1.3 and list(data) == ["version", "people"]
    first, second = data["people"]
    assert list(first) == OPENPOSE_PERSON_KEYS and first["person_id"] == [-1]
    flat = np.asarray(first["pose_keypoints_2d"]).reshape(18, 3)
    np.testing.assert_allclose(flat[:, 0], np.arange(18))
    np.testing.assert_allclose(flat[:, 1], 100 + np.arange(18))
    other = np.asarray(second["pose_keypoints_2d"]).reshape(18, 3)
    np.testing.assert_allclose(other[3], (7.0, 8.0, 0.9), rtol=1e-6)
    assert (other[np.arange(18) != 3] == 0).all()  # missing parts are 0, 0, 0 as CMU writes them
    assert all(first[k] == [] for k in OPENPOSE_PERSON_KEYS[2:])


def test_coco_results_follow_the_coco_keypoint_results_format():
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, :, 0] = np.arange(17)
    kps[0, :, 1] = 50.0
    kps[0, :, 2] = 0.8
    kps[0, 4, 2] = 0.0  # not found
    (result,) = Poses(kps, np.array([0.7]), COCO_17).to_coco(image_id=785)
    assert set(result) == {"image_id", "category_id", "keypoints", "score"}
    assert result["image_id"] == 785 and result["category_id"] == 1 and abs(result["score"] - 0.7) < 1e-6
    flat = np.asarray(result["keypoints"]).reshape(17, 3)
    assert flat.shape == (17, 3)
    np.testing.assert_allclose(flat[np.arange(17) != 4, 0], np.arange(17)[np.arange(17) != 4])
    assert (flat[4] == 0).all()


def test_coco_to_openpose_is_the_cmu_training_codes_joint_tables():
    rng = np.random.default_rng(0)
    coco = np.zeros((4, 17, 3), np.float32)
    coco[..., :2] = rng.uniform(0, 500, (4, 17, 2))
    coco[..., 2] = rng.integers(0, 3, (4, 17))
    coco[0, 5:7, 2] = 2  # both shoulders labelled: a neck
    coco[1, 5, 2], coco[1, 6, 2] = 2, 0  # one shoulder missing: no neck
    expected = np.zeros((4, 18, 3))
    for i in range(18):
        a, b = COCO_TO_OURS_1[i] - 1, COCO_TO_OURS_2[i] - 1
        expected[:, i, :2] = 0.5 * (coco[:, a, :2] + coco[:, b, :2])
        both = (coco[:, a, 2] > 0) & (coco[:, b, 2] > 0)
        expected[:, i, 2] = np.where(both, np.minimum(coco[:, a, 2], coco[:, b, 2]), 0)
    ours = coco_to_openpose(coco)
    labelled = expected[..., 2] > 0
    np.testing.assert_array_equal(ours[..., 2], expected[..., 2])
    np.testing.assert_allclose(ours[labelled][:, :2], expected[labelled][:, :2], rtol=1e-6)
    assert ours[0, 1, 2] > 0 and ours[1, 1, 2] == 0
    # Back to COCO: the neck is dropped and every COCO part returns where it was.
    back = openpose_to_coco(ours)
    np.testing.assert_array_equal(back[..., 2], coco[..., 2])
