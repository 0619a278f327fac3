"""Hands and faces per person, against CMU OpenPose's rules written here in numpy from
CMU-Perceptual-Computing-Lab/openpose: src/openpose/hand/handDetector.cpp (getHandFromPoseIndexes, threshold
0.03 in detectHands), src/openpose/face/faceDetector.cpp (getFaceFromPoseKeypoints, threshold 0.25 in
detectFaces), src/openpose/hand/handExtractorCaffe.cpp (cropFrame: warpAffine with WARP_INVERSE_MAP, the left
hand mirrored; connectKeypoints), src/openpose/net/resizeAndMergeBase.cpp (INTER_CUBIC to the input size) and
src/openpose/net/maximumBase.cpp (cv::minMaxLoc per map). Hzzone/pytorch-openpose src/util.py handDetect is the
same hand rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from caffe_reference import CaffeNet, reference_cpm, seeded_weights
from conftest import import_optional

from openpose_lite.cmu_skeletons import BODY_25, MPI_15
from openpose_lite.inference.hands_faces import HandFaceEstimator, face_boxes, hand_boxes
from openpose_lite.models.cmu_caffe import build_cpm
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, coco_to_openpose

COCO_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_sample"
needs_coco_sample = pytest.mark.skipif(not (COCO_SAMPLE / "person_keypoints.json").is_file(),
                                       reason="the COCO sample (../shared/data/coco_sample) is not available")


# ----------------------------------------------------------------------- OpenPose's rules, in numpy
def openpose_hand(pose: np.ndarray, wrist: int, elbow: int, shoulder: int) -> np.ndarray:
    """getHandFromPoseIndexes for one person and arm: (x, y, width) of the square."""
    x = y = width = 0.0
    if pose[wrist, 2] > 0.03 and pose[elbow, 2] > 0.03 and pose[shoulder, 2] > 0.03:
        x = pose[wrist, 0] + 0.33 * (pose[wrist, 0] - pose[elbow, 0])
        y = pose[wrist, 1] + 0.33 * (pose[wrist, 1] - pose[elbow, 1])
        d_we = np.hypot(*(pose[wrist, :2] - pose[elbow, :2]))
        d_es = np.hypot(*(pose[elbow, :2] - pose[shoulder, :2]))
        width = 1.5 * max(d_we, 0.9 * d_es)
    return np.array([x - width / 2, y - width / 2, width])


def openpose_face(pose: np.ndarray, neck: int, nose: int, l_ear: int, r_ear: int, l_eye: int, r_eye: int) -> np.ndarray:
    """getFaceFromPoseKeypoints for one person: (x, y, size)."""
    t = 0.25
    above = lambda i: pose[i, 2] > t  # noqa: E731
    dist = lambda a, b: float(np.hypot(*(pose[a, :2] - pose[b, :2])))  # noqa: E731
    point, size, counter = np.zeros(2), 0.0, 0
    if nose == l_ear == r_ear:  # MPI: one head point
        if above(neck) and above(nose):
            point, size = pose[nose, :2].astype(np.float64), 1.33 * dist(neck, nose)
    else:
        if above(neck) and above(nose):
            if above(l_eye) == above(l_ear) and above(r_eye) == above(r_ear) and above(l_eye) != above(r_eye):
                eye, ear = (l_eye, l_ear) if above(l_eye) else (r_eye, r_ear)
                point += (pose[eye, :2] + pose[ear, :2] + pose[nose, :2]) / 3
                size += 0.85 * (dist(nose, eye) + dist(nose, ear) + dist(neck, nose))
            else:
                point += (pose[neck, :2] + pose[nose, :2]) / 2
                size += 2 * dist(neck, nose)
            counter += 1
        if above(l_eye) and above(r_eye):
            point += (pose[l_eye, :2] + pose[r_eye, :2]) / 2
            size += 3 * dist(l_eye, r_eye)
            counter += 1
        if above(l_ear) and above(r_ear):
            point += (pose[l_ear, :2] + pose[r_ear, :2]) / 2
            size += 2 * dist(l_ear, r_ear)
            counter += 1
        if counter:
            point, size = point / counter, size / counter
    return np.array([point[0] - size / 2, point[1] - size / 2, size])


# OpenPose-18 (COCO) indices: wrist, elbow, shoulder per side; neck, nose, ears, eyes.
LEFT, RIGHT = (7, 6, 5), (4, 3, 2)
FACE = dict(neck=1, nose=0, l_ear=17, r_ear=16, l_eye=15, r_eye=14)


def coco_people() -> tuple[np.ndarray, np.ndarray]:
    """(image 000000000785.jpg BGR, its people as OpenPose-18 keypoints with score 1 where labelled)."""
    data = json.loads((COCO_SAMPLE / "person_keypoints.json").read_text())
    image_id = 785
    anns = [a for a in data["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0 and not a["iscrowd"]]
    kps = np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, 17, 3)
    kps[..., 2] = (kps[..., 2] > 0).astype(np.float32)
    image = cv2.imread(str(COCO_SAMPLE / "images" / f"{image_id:012d}.jpg"))
    return image, coco_to_openpose(kps)


# ------------------------------------------------------------------------------------------- tests
def test_boxes_follow_openpose_on_made_up_people():
    rng = np.random.default_rng(4)
    people = np.concatenate([rng.uniform(0, 300, (40, 18, 2)), rng.choice([0.0, 0.02, 0.1, 0.3, 0.9], (40, 18, 1))], -1)
    people = people.astype(np.float32)
    hands, faces = hand_boxes(people, OPENPOSE_18), face_boxes(people, OPENPOSE_18)
    for i, pose in enumerate(people):
        np.testing.assert_allclose(hands[i, 0], openpose_hand(pose, *LEFT), atol=1e-3)
        np.testing.assert_allclose(hands[i, 1], openpose_hand(pose, *RIGHT), atol=1e-3)
        np.testing.assert_allclose(faces[i], openpose_face(pose, **FACE), atol=1e-3)
    assert (hands[..., 2] > 0).any() and (hands[..., 2] == 0).any() and (faces[:, 2] > 0).any()


def test_body25_mpi_and_coco17_give_the_same_hands_as_openpose18():
    rng = np.random.default_rng(5)
    coco = np.concatenate([rng.uniform(0, 300, (6, 17, 2)), np.ones((6, 17, 1))], -1).astype(np.float32)
    op18 = coco_to_openpose(coco)
    body25 = np.zeros((6, 25, 3), np.float32)
    for name in OPENPOSE_18.keypoints:
        body25[:, BODY_25.index(name)] = op18[:, OPENPOSE_18.index(name)]
    mpi = np.zeros((6, 15, 3), np.float32)
    for name in ("neck", "left_wrist", "left_elbow", "left_shoulder", "right_wrist", "right_elbow", "right_shoulder"):
        mpi[:, MPI_15.index(name)] = op18[:, OPENPOSE_18.index(name)]
    mpi[:, MPI_15.index("head")] = op18[:, OPENPOSE_18.index("nose")]
    expected = hand_boxes(op18, OPENPOSE_18)
    for kps, skeleton in ((coco, COCO_17), (body25, BODY_25), (mpi, MPI_15)):
        np.testing.assert_array_equal(hand_boxes(kps, skeleton), expected)
    np.testing.assert_array_equal(face_boxes(body25, BODY_25), face_boxes(op18, OPENPOSE_18))
    mpi_faces = face_boxes(mpi, MPI_15)
    for i in range(6):  # MPI's head rule: nose == ears == eyes == the head
        np.testing.assert_allclose(mpi_faces[i], openpose_face(mpi[i], neck=1, nose=0, l_ear=0, r_ear=0, l_eye=0,
                                                               r_eye=0), atol=1e-3)


@needs_coco_sample
def test_hands_on_a_coco_photo_match_openpose_boxes_and_a_functional_forward():
    image, people = coco_people()
    side = 64
    net = seeded_weights(build_cpm(21, width_scale=0.25), 7)
    runner = lambda batch: {"heatmaps": net(torch.from_numpy(batch))[-1]["heatmaps"].detach().numpy()}  # noqa: E731
    hands, faces = HandFaceEstimator(hand_runner=runner, side=side)(image, people, OPENPOSE_18)
    assert faces is None and hands.shape == (len(people), 2, 21, 3)
    blobs = {f"{cmu}.{p}": t for ours, (cmu, _) in net.caffe_layer_names().items()
             for p, t in (("weight", net.state_dict()[f"{ours}.weight"]), ("bias", net.state_dict()[f"{ours}.bias"]))}
    ran = same = total = 0
    for i, pose in enumerate(people):
        for h, arm in enumerate((LEFT, RIGHT)):
            x, y, width = openpose_hand(pose, *arm)
            np.testing.assert_allclose(hand_boxes(people, OPENPOSE_18)[i, h], (x, y, width), atol=1e-3)
            if not (width > 1 and width * width > 10):
                assert not hands[i, h].any()
                continue
            ran += 1
            scale = width / side  # cropFrame: inverse map crop -> image, the left hand (0) mirrored
            matrix = np.array([[-scale if h == 0 else scale, 0, x + width if h == 0 else x], [0, scale, y]])
            crop = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            x_in = torch.from_numpy(np.ascontiguousarray((crop.astype(np.float32) / 256 - 0.5).transpose(2, 0, 1)))[None]
            with torch.no_grad():
                maps = reference_cpm(CaffeNet(blobs), x_in)[0, :21].numpy()
            for k in range(21):
                big = cv2.resize(maps[k], (side, side), interpolation=cv2.INTER_CUBIC)
                _, score, _, (px, py) = cv2.minMaxLoc(big)
                if score <= 0:  # a keypoint scored 0 or less is written as missing (0, 0, 0)
                    continue
                expected = (matrix[0, 0] * px + matrix[0, 2], matrix[1, 1] * py + matrix[1, 2], min(score, 1.0))
                ours = hands[i, h, k]
                same += bool(np.allclose(ours, expected, atol=1e-3))
                total += 1
                # Where two pixels tie to 5e-4 (float rounding of the batched network), ours is the other maximum.
                ox, oy = (ours[0] - matrix[0, 2]) / matrix[0, 0], (ours[1] - matrix[1, 2]) / matrix[1, 1]
                assert abs(ox - round(ox)) < 1e-3 and abs(oy - round(oy)) < 1e-3
                assert big[int(round(oy)), int(round(ox))] >= score - 5e-4
                assert abs(ours[2] - min(score, 1.0)) < 5e-4
    assert ran >= 2 and same >= 0.9 * total  # both hands of the photo's person were cropped and run


@needs_coco_sample
def test_every_crop_of_a_frame_goes_through_the_network_in_one_batch():
    image, people = coco_people()
    calls = []

    def runner(batch):
        calls.append(batch.shape)
        return {"heatmaps": np.zeros((batch.shape[0], 22, 8, 8), np.float32)}

    def face_runner(batch):
        calls.append(batch.shape)
        return {"heatmaps": np.zeros((batch.shape[0], 71, 8, 8), np.float32)}

    HandFaceEstimator(runner, face_runner, side=64)(image, people, OPENPOSE_18)
    hands = int((hand_boxes(people, OPENPOSE_18)[..., 2] > 1).sum())
    assert calls[0] == (hands, 3, 64, 64) and len(calls) == 2 and calls[1][0] >= 1


class _People:
    """A body predictor double: the same people in every image."""

    def __init__(self, keypoints: np.ndarray, skeleton) -> None:
        self.keypoints, self.skeleton = keypoints, skeleton

    def predict_batch(self, images, image_ids=None):
        from openpose_lite.structures import Poses

        return [Poses(self.keypoints, np.ones(len(self.keypoints)), self.skeleton) for _ in images]


def test_people_carry_hands_and_faces_into_the_openpose_json(tmp_path):
    from openpose_lite.inference.hands_faces import with_hands_faces
    from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel

    hand_file = tmp_path / "pose_iter_102000.caffemodel"
    net = seeded_weights(build_cpm(21, width_scale=0.125), 1)
    write_caffemodel(hand_file, state_dict_layers(net.state_dict(), net.caffe_layer_names()))
    # One person whose arms and head are found, one with nothing but a nose: no boxes, empty arrays.
    person = np.zeros((2, 25, 3), np.float32)
    for name, xy in (("neck", (100, 60)), ("nose", (100, 40)), ("right_shoulder", (80, 62)), ("right_elbow", (70, 90)),
                     ("right_wrist", (66, 120)), ("left_shoulder", (120, 62)), ("left_elbow", (130, 90)),
                     ("left_wrist", (134, 120))):
        person[0, BODY_25.index(name)] = (*xy, 0.9)
    person[1, BODY_25.index("nose")] = (30, 30, 0.9)
    predictor = with_hands_faces(_People(person, BODY_25), hand=hand_file, side=32, device="cpu")
    poses = predictor.predict_batch([np.full((200, 200, 3), 90, np.uint8)])[0]
    assert poses.hands.shape == (2, 2, 21, 3) and poses.faces is None
    people = poses.to_openpose_dict()["people"]
    assert len(people[0]["pose_keypoints_2d"]) == 75
    assert len(people[0]["hand_left_keypoints_2d"]) == 63 and len(people[0]["hand_right_keypoints_2d"]) == 63
    assert people[0]["face_keypoints_2d"] == []
    assert not any(people[1]["hand_left_keypoints_2d"]) and not any(people[1]["hand_right_keypoints_2d"])
    # The hand keypoints lie in the hand boxes OpenPose's rule gives.
    for side, arm in ((0, (7, 6, 5)), (1, (4, 3, 2))):
        x, y, w = openpose_hand(person[0], *arm)
        found = poses.hands[0, side][poses.hands[0, side, :, 2] > 0]
        assert len(found) and (found[:, 0] >= x - 1e-3).all() and (found[:, 0] <= x + w).all()
        assert (found[:, 1] >= y - 1e-3).all() and (found[:, 1] <= y + w).all()


def test_a_face_file_given_as_the_hand_network_is_refused_naming_it(tmp_path):
    from openpose_lite.inference.hands_faces import with_hands_faces
    from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel

    face = seeded_weights(build_cpm(70, width_scale=0.125), 2)
    path = tmp_path / "face.caffemodel"
    write_caffemodel(path, state_dict_layers(face.state_dict(), face.caffe_layer_names()))
    with pytest.raises(ValueError, match=r"face\.caffemodel: holds CMU's face network, given as the hand network"):
        with_hands_faces(_People(np.zeros((0, 25, 3)), BODY_25), hand=path, device="cpu")


def test_infer_runs_cmu_caffemodels_with_hands_faces_and_render(tmp_path):
    from openpose_lite.cli import main
    from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel
    from openpose_lite.models.cmu_caffe import build_body25

    files = {}
    for name, net in (("pose_iter_584000", build_body25(BODY_25, width_scale=0.125)),
                      ("pose_iter_102000", build_cpm(21, width_scale=0.125)),
                      ("pose_iter_116000", build_cpm(70, width_scale=0.125))):
        files[name] = tmp_path / f"{name}.caffemodel"
        write_caffemodel(files[name], state_dict_layers(seeded_weights(net, 3).state_dict(), net.caffe_layer_names()))
    image = tmp_path / "scene.jpg"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code = main(["infer", str(image), "--weights", str(files["pose_iter_584000"]), "--hand",
                 str(files["pose_iter_102000"]), "--face", str(files["pose_iter_116000"]), "--render", "--output",
                 str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    result = json.loads((out / "scene_keypoints.json").read_text())
    for person in result["people"]:
        assert len(person["pose_keypoints_2d"]) == 75
        assert len(person["hand_left_keypoints_2d"]) in (0, 63) and len(person["face_keypoints_2d"]) in (0, 210)
    assert (out / "scene_rendered.jpg").is_file()


def test_infer_refuses_a_truncated_caffemodel_in_one_line(tmp_path, capsys):
    from openpose_lite.cli import main

    path = tmp_path / "pose_iter_584000.caffemodel"
    path.write_bytes(b"\x0a\x05hello\xa2\x06\xff\xff\x01abc")
    image = tmp_path / "scene.jpg"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    code = main(["infer", str(image), "--weights", str(path), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(path) in err[0] and "not a Caffe model" in err[0]


def test_tracking_keeps_each_persons_hands_and_face():
    from openpose_lite.structures import Poses
    from openpose_lite.tracking import Tracker

    rng = np.random.default_rng(9)
    kps = np.concatenate([rng.uniform(20, 200, (3, 18, 2)), np.ones((3, 18, 1))], -1).astype(np.float32)
    hands = np.concatenate([rng.uniform(0, 200, (3, 2, 21, 2)), np.full((3, 2, 21, 1), 0.5)], -1).astype(np.float32)
    tracker = Tracker()
    for _ in range(2):
        out = tracker.update(Poses(kps, np.ones(3), OPENPOSE_18, hands=hands))
    np.testing.assert_array_equal(out.hands, hands)
    assert out.faces is None and out.track_ids is not None


# ----------------------------------------------------------------------- backends, streams
def _scene_people():
    """A generated 368 px scene of two large people, their COCO-17 keypoints (score 1 where labelled)."""
    from openpose_lite.data.synthetic import SceneConfig, render_scene

    scene = render_scene(np.random.default_rng(1), SceneConfig(person_height_range=(0.6, 0.9), occlusion_prob=0.0),
                         num_people=2)
    kps = scene.keypoints.copy()
    kps[..., 2] = (kps[..., 2] > 0).astype(np.float32)
    return scene.image, kps


def test_hands_and_faces_on_openvino_fp32_match_torch(tmp_path, monkeypatch):
    import_optional("openvino")
    from openpose_lite.inference.network import make_runner

    monkeypatch.setenv("OPENPOSE_LITE_CACHE", str(tmp_path / "cache"))
    image, people = _scene_people()
    nets = [seeded_weights(build_cpm(k, num_stages=2, width_scale=0.125), k) for k in (21, 70)]
    found = {}
    for backend in ("torch", "openvino"):
        hand, face = (make_runner(net, ["heatmaps"], "cpu", backend=backend) for net in nets)
        assert hand.backend == backend
        found[backend] = HandFaceEstimator(hand, face, side=64)(image, people, COCO_17)
    for ours, theirs in zip(found["openvino"], found["torch"]):
        assert (theirs[..., 2] > 0).sum() >= 40  # both hands and faces of the two people were run
        same = np.abs(ours - theirs).max(-1) < 1e-3
        assert same.mean() > 0.97  # where two pixels tie to float rounding, the other one may win
        np.testing.assert_allclose(ours[..., 2], theirs[..., 2], atol=1e-4)


def test_int8_hands_are_calibrated_on_the_crops_of_the_people_the_body_model_finds(tmp_path, monkeypatch):
    import_optional("nncf")
    from openpose_lite.inference.hands_faces import with_hands_faces
    from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel

    monkeypatch.setenv("OPENPOSE_LITE_CACHE", str(tmp_path / "cache"))
    image, people = _scene_people()
    net = seeded_weights(build_cpm(21, num_stages=2, width_scale=0.125), 5)
    path = tmp_path / "hand.caffemodel"
    write_caffemodel(path, state_dict_layers(net.state_dict(), net.caffe_layer_names()))
    body = _People(people, COCO_17)
    seen = []
    real = body.predict_batch
    body.predict_batch = lambda images, ids=None: seen.append(len(images)) or real(images, ids)
    predictor = with_hands_faces(body, hand=path, side=64, backend="openvino", precision="int8", calibration=[image])
    runner = predictor.estimator.hand_runner
    assert runner.precision == "int8" and seen  # the body model found the people of the calibration image
    calibration = list(runner.calibration)
    boxes = hand_boxes(people, COCO_17)
    assert len(calibration) == int((boxes[..., 2] > 1).sum()) and calibration[0].shape == (1, 3, 64, 64)
    hands = predictor.predict_batch([image])[0].hands
    for i, pair in enumerate(boxes):
        for h, (x, y, w) in enumerate(pair):
            found = hands[i, h][hands[i, h, :, 2] > 0]
            assert ((found[:, 0] >= x - 1e-3) & (found[:, 0] <= x + w) & (found[:, 1] >= y - 1e-3)
                    & (found[:, 1] <= y + w)).all()


class _PeopleLive(_People):
    """The body predictor double, in the steps a live run calls."""

    def prepare(self, images, image_ids=None):
        return len(images)

    def forward(self, prepared):
        return prepared

    def finish(self, prepared, outputs):
        return self.predict_batch([None] * prepared)


def test_a_live_stream_with_hand_writes_each_persons_hands(monkeypatch, checkpoint, tmp_path):
    from openpose_lite.cli import live as live_cli
    from openpose_lite.cli import main
    from openpose_lite.data.mjpeg_stream import MjpegServer
    from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel

    net = seeded_weights(build_cpm(21, num_stages=2, width_scale=0.125), 6)
    hand = tmp_path / "pose_iter_102000.caffemodel"
    write_caffemodel(hand, state_dict_layers(net.state_dict(), net.caffe_layer_names()))
    person = np.zeros((1, 25, 3), np.float32)
    for name, xy in (("right_shoulder", (50, 30)), ("right_elbow", (45, 50)), ("right_wrist", (44, 70)),
                     ("left_shoulder", (80, 30)), ("left_elbow", (85, 50)), ("left_wrist", (86, 70))):
        person[0, BODY_25.index(name)] = (*xy, 0.9)
    monkeypatch.setattr(live_cli, "build_predictor", lambda args: _PeopleLive(person, BODY_25))
    out = tmp_path / "out"
    with MjpegServer(frames=50, fps=25, image_hw=(96, 128)) as server:
        code = main(["infer", server.url, "--checkpoint", str(checkpoint), "--hand", str(hand), "--max-frames", "3",
                     "--track", "-o", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    frames = sorted(out.glob("stream_*_keypoints.json"))
    assert len(frames) == 3
    for frame in frames:
        (found,) = json.loads(frame.read_text())["people"]
        assert len(found["pose_keypoints_2d"]) == 75 and found["face_keypoints_2d"] == []
        for field in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            triples = np.array(found[field]).reshape(21, 3)
            assert (triples[:, 2] > 0).any()
