"""The network input of one person box as the top-down references compute it (test helper, no tests).

Plain numpy/OpenCV, written from reading the references (never with openpose_lite's code):

* deep-high-resolution-net.pytorch (leoxiaobin), for its pose_resnet and HRNet COCO files:
  ``lib/dataset/coco.py`` ``COCODataset._xywh2cs`` (box -> centre/scale), ``lib/utils/transforms.py``
  ``get_affine_transform`` (+ ``get_dir``, ``get_3rd_point``), ``lib/dataset/JointsDataset.py``
  ``__getitem__`` (``cv2.warpAffine`` INTER_LINEAR of the BGR image, ``COLOR_RGB``), ``tools/test.py``
  (``ToTensor`` + ``Normalize`` ImageNet mean/std);
* open-mmlab/mmpose 1.x for its res50 (and hourglass) files: ``mmpose/structures/bbox/transforms.py``
  (``bbox_xywh2xyxy``, ``bbox_xyxy2cs``, ``get_warp_matrix``, ``_rotate_point``, ``_get_3rd_point``),
  ``mmpose/datasets/transforms/common_transforms.py`` ``GetBBoxCenterScale`` (padding 1.25),
  ``mmpose/datasets/transforms/topdown_transforms.py`` ``TopdownAffine`` (``_fix_aspect_ratio``,
  ``cv2.warpAffine`` INTER_LINEAR), the config's ``PoseDataPreprocessor`` (``bgr_to_rgb=True``,
  mean/std on 0-255), ``mmpose/datasets/datasets/base/base_coco_style_dataset.py``
  (``parse_data_info``: ground-truth boxes clipped, ``_load_detection_results``: detection boxes not).

Every function takes the image as ``cv2.imread`` gives it (BGR uint8, (H, W, 3)) and one COCO
box [x, y, w, h], and returns the (3, h, w) float32 tensor the network is fed. Sizes are the
references' (w, h) ``image_size`` / ``input_size``.
"""

from __future__ import annotations

import cv2
import numpy as np

PIXEL_STD = 200.0  # lib/dataset/coco.py, COCODataset.__init__ (self.pixel_std)
PADDING = 1.25  # _xywh2cs (scale * 1.25); mmpose GetBBoxCenterScale(padding=1.25)
# tools/test.py: transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# mmpose 1.x td-hm_res50_8xb64-210e_coco-256x192.py, data_preprocessor (0-255 scale).
MMPOSE_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
MMPOSE_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def hrnet_repo_xywh2cs(box, image_size_wh) -> tuple[np.ndarray, np.ndarray]:
    """``lib/dataset/coco.py`` ``COCODataset._xywh2cs``: centre ``x + w / 2``, the box widened or
    heightened to the input's aspect ratio, scale = size / 200, times 1.25."""
    x, y, w, h = (float(v) for v in box)
    aspect_ratio = image_size_wh[0] * 1.0 / image_size_wh[1]
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], dtype=np.float32)
    return center, scale * PADDING


def hrnet_repo_get_affine_transform(center, scale, rot, output_size_wh, inv: bool = False) -> np.ndarray:
    """``lib/utils/transforms.py`` ``get_affine_transform`` (shift 0): three point pairs, the centre
    to ``(W / 2, H / 2)``, a half-width vector along -y (``get_dir``) and its 90 degree turn
    (``get_3rd_point``), solved by ``cv2.getAffineTransform`` in float32 (crop -> image if ``inv``)."""
    src_w = (np.asarray(scale, dtype=np.float32) * PIXEL_STD)[0]
    dst_w, dst_h = output_size_wh
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_point = [0, src_w * -0.5]
    src_dir = np.array([src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs])
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + src_dir
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    for pts in (src, dst):
        direct = pts[0] - pts[1]
        pts[2, :] = pts[1] + np.array([-direct[1], direct[0]], dtype=np.float32)
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def _totensor_normalize(crop: np.ndarray) -> np.ndarray:
    """torchvision ``ToTensor`` (uint8 HWC -> float32 CHW / 255) then ``Normalize`` (float32),
    on the channels in the order they are."""
    x = crop.astype(np.float32) / np.float32(255.0)
    return ((x - TORCH_MEAN) / TORCH_STD).transpose(2, 0, 1).astype(np.float32)


def hrnet_repo_input(image_bgr: np.ndarray, box, image_size_wh, color_rgb: bool) -> np.ndarray:
    """deep-high-resolution-net.pytorch's network input for one box (test time: no rotation, no flip).

    ``JointsDataset.__getitem__``: the image as read (BGR), turned RGB only if ``color_rgb``;
    ``_xywh2cs`` + ``get_affine_transform``; ``cv2.warpAffine(..., flags=cv2.INTER_LINEAR)`` to
    ``image_size`` (border: OpenCV's default constant 0); ``tools/test.py``: ToTensor + Normalize.
    The box is used as given (detection boxes; the reference's ground-truth boxes are first
    cleaned by ``_load_coco_keypoint_annotation_kernal`` to ``x2 = x1 + max(0, w - 1)``).
    """
    data = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if color_rgb else image_bgr
    center, scale = hrnet_repo_xywh2cs(box, image_size_wh)
    trans = hrnet_repo_get_affine_transform(center, scale, 0, image_size_wh)
    crop = cv2.warpAffine(data, trans, (int(image_size_wh[0]), int(image_size_wh[1])), flags=cv2.INTER_LINEAR)
    return _totensor_normalize(crop)


def pose_resnet_official_input(image_bgr: np.ndarray, box, image_size_wh=(192, 256)) -> np.ndarray:
    """The input of the official ``pose_resnet_*`` files: ``experiments/coco/resnet/*.yaml`` have
    ``DATASET.COLOR_RGB: false``, so the BGR image is normalised with the (RGB-ordered) ImageNet
    mean/std channel by channel: B by 0.485/0.229, G by 0.456/0.224, R by 0.406/0.225."""
    return hrnet_repo_input(image_bgr, box, image_size_wh, color_rgb=False)


def hrnet_official_input(image_bgr: np.ndarray, box, image_size_wh=(192, 256)) -> np.ndarray:
    """The input of the official pose-HRNet files: ``experiments/coco/hrnet/*.yaml`` have
    ``DATASET.COLOR_RGB: true`` (RGB, ImageNet mean/std)."""
    return hrnet_repo_input(image_bgr, box, image_size_wh, color_rgb=True)


def mmpose_get_warp_matrix(center, scale, rot, output_size_wh) -> np.ndarray:
    """mmpose 1.x ``get_warp_matrix`` (shift 0, inv False, fix_aspect_ratio True): ``scale`` in
    pixels; the half-width vector along -x (``_rotate_point``), its 90 degree turn (``_get_3rd_point``)."""
    src_w = scale[0]
    dst_w, dst_h = output_size_wh
    rot_rad = np.deg2rad(rot)
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_dir = np.array([[cs, -sn], [sn, cs]]) @ np.array([src_w * -0.5, 0.0])
    dst_dir = np.array([dst_w * -0.5, 0.0])
    src = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + src_dir
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    for pts in (src, dst):
        direction = pts[0] - pts[1]
        pts[2, :] = pts[1] + np.r_[-direction[1], direction[0]]
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def mmpose_box_center_scale(box, input_size_wh, image_wh=None) -> tuple[np.ndarray, np.ndarray]:
    """mmpose 1.x box -> (centre, scale in pixels) for ``TopdownAffine``.

    ``image_wh`` given: a ground-truth box, clipped as ``parse_data_info`` does
    (``x1 = clip(x, 0, W-1)``, ``x2 = clip(x + w, 0, W-1)``); None: a detection box,
    ``bbox_xywh2xyxy`` (``x2 = x + w``). Then ``bbox_xyxy2cs`` (centre = mid-point, scale =
    size x 1.25) and ``TopdownAffine._fix_aspect_ratio``.
    """
    x, y, w, h = (float(v) for v in box)
    x1, y1, x2, y2 = x, y, x + w, y + h
    if image_wh is not None:
        x1, x2 = (float(np.clip(v, 0, image_wh[0] - 1)) for v in (x1, x2))
        y1, y2 = (float(np.clip(v, 0, image_wh[1] - 1)) for v in (y1, y2))
    xyxy = np.array([x1, y1, x2, y2], dtype=np.float32)
    scale = (xyxy[2:] - xyxy[:2]) * PADDING
    center = (xyxy[2:] + xyxy[:2]) * 0.5
    aspect_ratio = input_size_wh[0] / input_size_wh[1]
    sw, sh = scale
    scale = np.array([sw, sw / aspect_ratio] if sw > sh * aspect_ratio else [sh * aspect_ratio, sh], dtype=np.float32)
    return center, scale


def mmpose_input(image_bgr: np.ndarray, box, input_size_wh=(192, 256), image_wh=None) -> np.ndarray:
    """mmpose 1.x's network input for one box (its res50 ``td-hm_res50_8xb64-210e_coco-256x192.py``,
    hourglass ``td-hm_hourglass52_8xb32-210e_coco-256x256.py`` with input (256, 256)).

    ``LoadImage`` (BGR), ``GetBBoxCenterScale`` + ``TopdownAffine`` (see
    :func:`mmpose_box_center_scale`, :func:`mmpose_get_warp_matrix`, ``cv2.warpAffine``
    INTER_LINEAR on the uint8 image), then ``PoseDataPreprocessor``: BGR -> RGB, float32,
    ``(x - mean) / std`` with mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375).
    """
    center, scale = mmpose_box_center_scale(box, input_size_wh, image_wh)
    warp = mmpose_get_warp_matrix(center, scale, 0.0, input_size_wh)
    crop = cv2.warpAffine(image_bgr, warp, (int(input_size_wh[0]), int(input_size_wh[1])), flags=cv2.INTER_LINEAR)
    rgb = crop[..., ::-1].astype(np.float32)
    return ((rgb - MMPOSE_MEAN) / MMPOSE_STD).transpose(2, 0, 1).astype(np.float32)
