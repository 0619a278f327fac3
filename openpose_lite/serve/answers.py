"""What the pose server says: the people of one image as JSON, and the model it runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from openpose_lite.architectures import architecture_of
from openpose_lite.inference import TopDownPipeline
from openpose_lite.inference.boxes import boxes_from_poses
from openpose_lite.inference.hands_faces import WithHandsFaces
from openpose_lite.structures import Poses

__all__ = ["describe_model", "pose_payload"]


def pose_payload(poses: Poses, image_hw: tuple[int, int]) -> dict[str, Any]:
    """The answer for one image: its size, the people as an OpenPose JSON 1.3 document (keypoints in
    ``skeleton``'s order) and as COCO keypoint results (``coco_skeleton``'s order, ``image_id`` 0) with
    each person's score and box ``[x, y, w, h]`` (the extent of its found keypoints)."""
    coco = poses.to_coco(image_id=0)
    for i, result in enumerate(coco):
        boxes, _ = boxes_from_poses(poses.select(np.array([i])), padding=0.0, min_keypoints=1)
        result["bbox"] = [round(float(v), 3) for v in boxes[0]] if len(boxes) else [0.0, 0.0, 0.0, 0.0]
    return {
        "width": int(image_hw[1]),
        "height": int(image_hw[0]),
        "skeleton": poses.openpose_skeleton.name,
        "coco_skeleton": poses.skeleton.annotation_layout().name,
        "openpose": poses.to_openpose_dict(),
        "coco": coco,
    }


def describe_model(predictor: Any) -> dict[str, Any]:
    """``GET /v1/model``: the architecture, the two skeletons of :func:`pose_payload` (``Skeleton.to_dict``),
    whether hands and faces are found, the runtime and the input size (bottom-up: the network input
    height at scale 1, with the scales; top-down: the crop's [height, width])."""
    parts = predictor.estimator if isinstance(predictor, WithHandsFaces) else None
    body = predictor.predictor if parts is not None else predictor
    topdown = isinstance(body, TopDownPipeline)
    inner = body.predictor if topdown else body
    row = architecture_of(inner.model)
    skeleton = predictor.skeleton
    info: dict[str, Any] = {
        "architecture": row.name if row is not None else type(inner.model).__name__,
        "title": row.title if row is not None else type(inner.model).__name__,
        "branch": "topdown" if topdown else "bottomup",
        "skeleton": Poses.empty(skeleton).openpose_skeleton.to_dict(),
        "coco_skeleton": skeleton.annotation_layout().to_dict(),
        "backend": getattr(inner.runner, "backend", "torch"),
        "precision": inner.runner.precision,
        "device": str(inner.device),
        "flip": bool(inner.flip),
        "hands": parts is not None and parts.hand_runner is not None,
        "faces": parts is not None and parts.face_runner is not None,
    }
    if topdown:
        info["input_size"] = [int(v) for v in inner.codec.input_hw]
    else:
        info["input_size"] = int(inner.input_size)
        info["scales"] = [float(s) for s in inner.scales]
    return info
