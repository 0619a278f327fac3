"""Hands and faces per person, as CMU OpenPose finds them: boxes from the body keypoints, square crops
through CMU's hand and face networks, one peak per map. Written from CMU-Perceptual-Computing-Lab/openpose:

* **hand boxes** (``src/openpose/hand/handDetector.cpp``, ``getHandFromPoseIndexes``; Hzzone/pytorch-openpose
  ``src/util.py`` ``handDetect`` follows the same rule): when the wrist, elbow and shoulder of an arm all
  score above 0.03, a square centred at ``wrist + 0.33 (wrist - elbow)`` with side
  ``1.5 max(|wrist - elbow|, 0.9 |elbow - shoulder|)``; otherwise no box (side 0).
* **face boxes** (``src/openpose/face/faceDetector.cpp``, ``getFaceFromPoseKeypoints``, threshold
  0.25): with neck and nose, their midpoint and ``2 |neck - nose|`` (or, for a profile with one eye
  and its ear, the mean of nose, eye and ear and ``0.85 (|nose-eye| + |nose-ear| + |neck-nose|)``);
  with both eyes, their midpoint and ``3 |eye - eye|``; with both ears, their midpoint and
  ``2 |ear - ear|``; centres and sides averaged over the cues found. MPI's skeleton has a head
  instead of nose, eyes and ears: the box is at the head, with side ``1.33 |neck - head|``.
* **crops** (``handExtractorCaffe.cpp`` ``cropFrame``, ``faceExtractorCaffe.cpp``): the box scaled
  onto the network's square input by ``cv2.warpAffine`` (inverse map ``crop -> image``; the *left*
  hand mirrored, so that both hands look like right hands to the network), bilinear, black outside
  the image; BGR ``x / 256 - 0.5``. Hands are run when their box is over 1 px wide with an area over
  10 px², faces when over 40 px.
* **peaks** (``resizeAndMergeBase.cpp``, ``maximumBase.cpp``): each keypoint's map resized to the
  input with ``cv2.INTER_CUBIC``, its maximum (the first one in row order) is the keypoint, its value
  the score, mapped back to the image through the crop's matrix.

A frame's crops go through the network in one batch. Results: ``hands`` (N, 2, 21, 3) float32, left
first, and ``faces`` (N, 70, 3), x, y, score in image pixels, zeros where there was no box.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from openpose_lite.cmu_skeletons import FACE_70, HAND_21
from openpose_lite.geometry import transform_keypoints
from openpose_lite.inference.calibration import Calibration, CalibrationError
from openpose_lite.preprocess import to_network_input, warp_image
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton, coco_to_openpose

__all__ = ["FACE_THRESHOLD", "HAND_THRESHOLD", "NET_INPUT", "HandFaceEstimator", "crop_matrix", "face_boxes",
           "hand_boxes", "part_calibration", "peaks", "with_hands_faces"]

# OpenPose's rules' constants (handDetector.cpp, faceDetector.cpp, the extractors).
HAND_THRESHOLD = 0.03
FACE_THRESHOLD = 0.25
NET_INPUT = 368
_WRIST_ELBOW_RATIO = 0.33
_MIN_HAND_SIDE, _MIN_HAND_AREA, _MIN_FACE_SIDE = 1.0, 10.0, 40.0
_ARMS = (("left_wrist", "left_elbow", "left_shoulder"), ("right_wrist", "right_elbow", "right_shoulder"))


def _body(keypoints: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, Skeleton]:
    """Keypoints (N, K, 3) in a skeleton with a neck: COCO-17 gets OpenPose-18's neck (the shoulders' mean)."""
    kps = np.asarray(keypoints, dtype=np.float32).reshape(-1, skeleton.num_keypoints, 3)
    if skeleton == COCO_17:
        return coco_to_openpose(kps), OPENPOSE_18
    return kps, skeleton


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[..., :2] - b[..., :2]) ** 2).sum(-1))


def hand_boxes(keypoints: np.ndarray, skeleton: Skeleton, threshold: float = HAND_THRESHOLD) -> np.ndarray:
    """Body keypoints (N, K, 3) -> hand boxes (N, 2, 3): (x, y, side) of the left and the right hand's
    square, top-left corner and side in image pixels; side 0 where the arm is not found (OpenPose's rule,
    see the module docstring). Raises ValueError for a skeleton without wrists, elbows and shoulders."""
    kps, skeleton = _body(keypoints, skeleton)
    boxes = np.zeros((kps.shape[0], 2, 3), np.float32)
    for side, names in enumerate(_ARMS):
        wrist, elbow, shoulder = (kps[:, skeleton.index(n)] for n in names)
        found = (wrist[:, 2] > threshold) & (elbow[:, 2] > threshold) & (shoulder[:, 2] > threshold)
        centre = wrist[:, :2] + _WRIST_ELBOW_RATIO * (wrist[:, :2] - elbow[:, :2])
        width = 1.5 * np.maximum(_distance(wrist, elbow), 0.9 * _distance(elbow, shoulder))
        width = np.where(found, width, 0.0)
        centre = np.where(found[:, None], centre, 0.0)
        boxes[:, side, :2] = centre - width[:, None] / 2
        boxes[:, side, 2] = width
    return boxes


def face_boxes(keypoints: np.ndarray, skeleton: Skeleton, threshold: float = FACE_THRESHOLD) -> np.ndarray:
    """Body keypoints (N, K, 3) -> face boxes (N, 3): (x, y, side), side 0 where no face is found
    (OpenPose's rule, see the module docstring). Raises ValueError for a skeleton without a neck and a
    nose (or MPI's head)."""
    kps, skeleton = _body(keypoints, skeleton)
    out = np.zeros((kps.shape[0], 3), np.float32)
    neck = kps[:, skeleton.index("neck")]
    if "head" in skeleton.keypoints:  # MPI: the head stands for nose, eyes and ears
        head = kps[:, skeleton.index("head")]
        found = (neck[:, 2] > threshold) & (head[:, 2] > threshold)
        size = np.where(found, 1.33 * _distance(neck, head), 0.0)
        out[:, :2] = np.where(found[:, None], head[:, :2], 0.0) - size[:, None] / 2
        out[:, 2] = size
        return out
    nose, l_eye, r_eye, l_ear, r_ear = (kps[:, skeleton.index(n)]
                                        for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
    point, size, count = np.zeros((kps.shape[0], 2)), np.zeros(kps.shape[0]), np.zeros(kps.shape[0])

    def cue(found: np.ndarray, centre: np.ndarray, side: np.ndarray) -> None:
        point[found] += centre[found]
        size[found] += side[found]
        count[found] += 1

    le, re, lear, rear = (p[:, 2] > threshold for p in (l_eye, r_eye, l_ear, r_ear))
    neck_nose = (neck[:, 2] > threshold) & (nose[:, 2] > threshold)
    profile = (le == lear) & (re == rear) & (le != re)
    eye, ear = np.where(le[:, None], l_eye, r_eye), np.where(le[:, None], l_ear, r_ear)
    cue(neck_nose & profile, (eye[:, :2] + ear[:, :2] + nose[:, :2]) / 3.0,
        0.85 * (_distance(nose, eye) + _distance(nose, ear) + _distance(neck, nose)).astype(np.float64))
    cue(neck_nose & ~profile, (neck[:, :2] + nose[:, :2]) / 2.0, 2.0 * _distance(neck, nose).astype(np.float64))
    cue(le & re, (l_eye[:, :2] + r_eye[:, :2]) / 2.0, 3.0 * _distance(l_eye, r_eye).astype(np.float64))
    cue(lear & rear, (l_ear[:, :2] + r_ear[:, :2]) / 2.0, 2.0 * _distance(l_ear, r_ear).astype(np.float64))
    point, size = point / np.maximum(count, 1)[:, None], size / np.maximum(count, 1)
    out[:, 0], out[:, 1], out[:, 2] = point[:, 0] - size / 2, point[:, 1] - size / 2, size
    return out


def crop_matrix(box: np.ndarray, side: int, mirror: bool = False) -> np.ndarray:
    """The 2x3 affine from crop pixels (a ``side`` x ``side`` network input) to image pixels of a square
    ``box`` (x, y, width); ``mirror`` flips the crop left-right (OpenPose's left hand)."""
    x, y, width = (float(v) for v in box)
    scale = width / side
    return np.array([[-scale if mirror else scale, 0.0, x + width if mirror else x], [0.0, scale, y]], np.float64)


def peaks(heatmaps: np.ndarray, side: int, keypoints: int) -> np.ndarray:
    """Network maps (B, C >= K, h, w) -> (B, K, 3): per map the (x, y) of its maximum after a bicubic
    resize to ``side`` x ``side`` (the crop's pixels) and the maximum itself; the first maximum in
    row order wins, as ``cv::minMaxLoc``."""
    out = np.zeros((heatmaps.shape[0], keypoints, 3), np.float32)
    for b, maps in enumerate(heatmaps):
        hwc = np.ascontiguousarray(np.moveaxis(maps[:keypoints].astype(np.float32), 0, -1))
        big = cv2.resize(hwc, (side, side), interpolation=cv2.INTER_CUBIC).reshape(side * side, keypoints)
        index = big.argmax(axis=0)
        out[b, :, 0], out[b, :, 1] = index % side, index // side
        out[b, :, 2] = big[index, np.arange(keypoints)]
    return out


@dataclass(frozen=True)
class _Crop:
    person: int
    part: int  # 0, 1: left and right hand; 2: the face
    matrix: np.ndarray


def _crops(keypoints: np.ndarray, skeleton: Skeleton, side: int, hands: bool, faces: bool) -> list[_Crop]:
    """The crops OpenPose's rules cut for one frame's people (N, K, 3): every hand, then every face."""
    found: list[_Crop] = []
    if hands:
        for person, pair in enumerate(hand_boxes(keypoints, skeleton)):
            for hand, box in enumerate(pair):
                if box[2] > _MIN_HAND_SIDE and box[2] * box[2] > _MIN_HAND_AREA:
                    found.append(_Crop(person, hand, crop_matrix(box, side, mirror=hand == 0)))
    if faces:
        for person, box in enumerate(face_boxes(keypoints, skeleton)):
            if box[2] > _MIN_FACE_SIDE:
                found.append(_Crop(person, 2, crop_matrix(box, side)))
    return found


def _warp(image_bgr: np.ndarray, found: list[_Crop], side: int) -> np.ndarray:
    """The crops' pixels (B, side, side, 3) uint8: bilinear, black outside the image."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    images = [warp_image(image_bgr, c.matrix, (side, side), 0, interpolation=flags) for c in found]
    return np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)


def part_calibration(source: Any, people: Callable[[np.ndarray], Any], part: str, side: int = NET_INPUT,
                     key: str = "") -> Calibration:
    """The int8 calibration set of CMU's ``part`` network (``"hand"`` or ``"face"``): in each image of
    ``source`` (a folder or BGR images), the crops OpenPose's rules cut around the people that
    ``people(image)`` finds (:class:`~openpose_lite.structures.Poses`), as the network sees them.
    ``key``: what finds the people, in words (part of the calibrated model's cache key)."""
    if part not in ("hand", "face"):
        raise ValueError(f"part: expected 'hand' or 'face', got {part!r}")

    def to_inputs(image: np.ndarray) -> np.ndarray:
        found = people(image)
        crops = _crops(found.keypoints, found.skeleton, side, part == "hand", part == "face")
        return to_network_input(_warp(image, crops, side))

    return Calibration(source, to_inputs, f"{part} crops {side} (x / 256 - 0.5) of the people of {key}")


class HandFaceEstimator:
    """CMU's hand and/or face network run on the people of a frame, by OpenPose's rules.

    ``hand_runner`` / ``face_runner``: a (B, 3, side, side) batch (moved by its ``to_device`` when it has
    one) -> ``{"heatmaps": (B, K+1, h, w)}``, as :func:`~openpose_lite.inference.network.make_runner`'s
    runners; None skips that part. ``side``: the networks' square input (CMU: 368).
    """

    def __init__(self, hand_runner: Any = None, face_runner: Any = None, side: int = NET_INPUT) -> None:
        if hand_runner is None and face_runner is None:
            raise ValueError("HandFaceEstimator: give a hand network, a face network or both")
        if side < 8:
            raise ValueError(f"HandFaceEstimator: the crop side must be >= 8 px, got {side}")
        self.hand_runner, self.face_runner, self.side = hand_runner, face_runner, int(side)

    def crops(self, image_bgr: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton) -> tuple[list[_Crop], np.ndarray]:
        """(what each crop is, the crops (B, side, side, 3) uint8) of one frame's people (N, K, 3)."""
        found = _crops(keypoints, skeleton, self.side, self.hand_runner is not None, self.face_runner is not None)
        return found, _warp(image_bgr, found, self.side)

    def __call__(self, image_bgr: np.ndarray, keypoints: np.ndarray,
                 skeleton: Skeleton) -> tuple[np.ndarray | None, np.ndarray | None]:
        """One frame's people (N, K, 3) -> (hands (N, 2, 21, 3) or None, faces (N, 70, 3) or None) in image pixels."""
        n = int(np.asarray(keypoints).reshape(-1, skeleton.num_keypoints, 3).shape[0])
        hands = np.zeros((n, 2, HAND_21.num_keypoints, 3), np.float32) if self.hand_runner is not None else None
        faces = np.zeros((n, FACE_70.num_keypoints, 3), np.float32) if self.face_runner is not None else None
        found, images = self.crops(image_bgr, keypoints, skeleton)
        for is_face, runner, count in ((False, self.hand_runner, HAND_21.num_keypoints),
                                       (True, self.face_runner, FACE_70.num_keypoints)):
            mine = [i for i, c in enumerate(found) if (c.part == 2) == is_face]
            if not mine:
                continue
            batch = to_network_input(images[mine])
            to_device = getattr(runner, "to_device", None)  # the project's runners take the batch on their device
            maps = np.asarray(runner(to_device(batch) if to_device is not None else batch)["heatmaps"], np.float32)
            for i, points in zip(mine, peaks(maps, self.side, count)):
                c = found[i]
                out, index = (faces, c.person) if is_face else (hands, (c.person, c.part))
                out[index] = transform_keypoints(c.matrix, points)
        return hands, faces


class WithHandsFaces:
    """A predictor whose people also carry their ``hands`` and ``faces``: the body predictor's steps run as they
    are, then :class:`HandFaceEstimator` on each frame's people; everything else is the body predictor's."""

    def __init__(self, predictor: Any, estimator: HandFaceEstimator) -> None:
        self.predictor, self.estimator = predictor, estimator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def _add(self, images: Any, poses: list) -> list:
        out = []
        for image, found in zip(images, poses):
            hands, faces = self.estimator(image, found.keypoints, found.skeleton)
            out.append(dataclasses.replace(found, hands=hands, faces=faces))
        return out

    def prepare(self, images: Any, image_ids: Any = None) -> tuple[Any, Any]:
        return list(images), self.predictor.prepare(images, image_ids)

    def forward(self, prepared: tuple[Any, Any]) -> Any:
        return self.predictor.forward(prepared[1])

    def finish(self, prepared: tuple[Any, Any], outputs: Any) -> list:
        return self._add(prepared[0], self.predictor.finish(prepared[1], outputs))

    def predict_batch(self, images: Any, image_ids: Any = None) -> list:
        return self._add(images, self.predictor.predict_batch(images, image_ids))


def with_hands_faces(predictor: Any, hand: Any = None, face: Any = None, side: int = NET_INPUT,
                     calibration: Any = None, *, device: Any = None, backend: str | None = None,
                     precision: str | None = None) -> Any:
    """``predictor`` with CMU's hand network from the file ``hand`` and/or face network from ``face``
    (``.caffemodel``, or Hzzone's ``hand_pose_model.pth`` layout) run on its people, on the body
    model's runtime (``device``, ``backend``, ``precision`` as :func:`~openpose_lite.inference.network.make_runner`
    takes them). ``calibration`` (openvino only): a folder or images, each network calibrated on the crops
    of the people ``predictor`` finds in them (:func:`part_calibration`). Neither file: ``predictor`` itself."""
    from openpose_lite.inference.network import make_runner
    from openpose_lite.models.cmu_caffe_weights import load_part_model

    if hand is None and face is None:
        return predictor
    runtime: dict[str, Any] = {"device": device, "backend": backend or "torch", "precision": precision or "fp32"}
    calibration = calibration if runtime["backend"] == "openvino" else None
    body = _body_identity(predictor) if calibration is not None else None  # one digest of the body network
    runners = {}
    for wanted, path in (("hand", hand), ("face", face)):
        if path is None:
            continue
        kind, model = load_part_model(path)
        if kind != wanted:
            raise ValueError(f"{path}: holds CMU's {kind} network, given as the {wanted} network (--{wanted})")
        if calibration is not None:
            runtime["calibration"] = part_calibration(calibration, lambda image: predictor.predict_batch([image])[0],
                                                      wanted, side, body)
        try:
            runners[wanted] = make_runner(model, ["heatmaps"], **runtime)
        except CalibrationError as exc:
            raise CalibrationError(f"{exc} (the {wanted} network is calibrated on the {wanted} crops of the people "
                                   "the body model finds in them)") from None
    return WithHandsFaces(predictor, HandFaceEstimator(runners.get("hand"), runners.get("face"), side))


def _body_identity(predictor: Any) -> str:
    """The body network in a digest (its weights decide the people, hence the crops calibrated on); a
    predictor without a network, by its class."""
    from torch import nn

    from openpose_lite.inference.openvino_model import model_digest

    model = getattr(predictor, "model", None)
    if isinstance(model, nn.Module):
        return f"body network {model_digest(model)}"
    return model.digest() if hasattr(model, "digest") else type(predictor).__qualname__
