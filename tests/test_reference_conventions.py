"""External contracts held to their references: official HRNet weights, ImageNet trunks.

Every expected value here is computed by the reference's own arithmetic, written out in plain
numpy from reading the reference code (cited per function), never by our code:

* HRNet: leoxiaobin/deep-high-resolution-net.pytorch (the official pose code whose COCO
  checkpoints users bring): ``lib/dataset/coco.py`` (``_xywh2cs``, ground-truth box cleaning in
  ``_load_coco_keypoint_annotation_kernal``, rescoring in ``evaluate``), ``lib/utils/transforms.py``
  (``get_affine_transform``, ``transform_preds``, ``flip_back``), ``lib/core/inference.py``
  (``get_max_preds``, ``get_final_preds``), ``lib/core/function.py`` (``validate``: flip test and
  ``SHIFT_HEATMAP``), ``lib/dataset/JointsDataset.py`` (``generate_target``: cell j is crop pixel
  ``j * 4``), ``lib/nms/nms.py`` (``oks_iou``, ``oks_nms``), and the COCO W32 config
  ``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml`` (sizes, sigma 2, IN_VIS_THRE 0.2,
  OKS_THRE 0.9, PRETRAINED_LAYERS, COLOR_RGB, ImageNet normalisation in ``tools/test.py``).
* The ImageNet HRNet classification checkpoint: HRNet/HRNet-Image-Classification
  ``lib/models/cls_hrnet.py`` (``HighResolutionNet``: the same trunk names, ``stage4`` with
  ``multi_scale_output=True``, head ``incre_modules`` / ``downsamp_modules`` / ``final_layer`` /
  ``classifier``).
* torchvision's VGG19: ``torchvision.models.vgg19`` itself is the reference network; its
  input is RGB in [0, 1] normalised by mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)
  (the ``VGG19_Weights`` transforms, torchvision docs).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO_SAMPLE_IMAGES, COCO_SAMPLE_VAL_ANN, import_optional, needs_coco_sample
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from reference_topdown_inputs import (
    PIXEL_STD,
    hrnet_official_input,
    hrnet_repo_get_affine_transform,
    hrnet_repo_xywh2cs,
)
from test_hrnet import official_layout
from torch import nn

from openpose_lite.codecs import TopDownHeatmapCodec
from openpose_lite.data.ground_truth import gt_box_source, labelled_people
from openpose_lite.geometry import box_to_center_scale, crop_affine
from openpose_lite.inference import TopDownPipeline, TopDownPredictor
from openpose_lite.models.hrnet import build_hrnet
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.models.weights import detect_layout, load_backbone
from openpose_lite.oks import oks_nms
from openpose_lite.preprocess import crop_person
from openpose_lite.skeleton import COCO_17

# ---------------------------------------------------------------- the HRNet reference, in numpy
# COCO W32 256x192 config: MODEL.IMAGE_SIZE [192, 256] (w, h), HEATMAP_SIZE [48, 64], SIGMA 2.
IMAGE_W, IMAGE_H = 192, 256
HEAT_W, HEAT_H = 48, 64
ASPECT = IMAGE_W / IMAGE_H
SIGMA = 2.0
IN_VIS_THRE, OKS_THRE = 0.2, 0.9
FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]  # lib/dataset/coco.py
# lib/nms/nms.py, oks_iou: the COCO sigmas.
REF_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
# tools/test.py: transforms.Normalize on ToTensor's RGB / 255.
MEAN_RGB = np.array([0.485, 0.456, 0.406])
STD_RGB = np.array([0.229, 0.224, 0.225])


def ref_clean_bbox(ann: dict, width: int, height: int):
    """lib/dataset/coco.py, _load_coco_keypoint_annotation_kernal: the ground-truth box sanitising."""
    x, y, w, h = ann["bbox"]
    x1, y1 = np.max((0, x)), np.max((0, y))
    x2 = np.min((width - 1, x1 + np.max((0, w - 1))))
    y2 = np.min((height - 1, y1 + np.max((0, h - 1))))
    if ann["area"] > 0 and x2 >= x1 and y2 >= y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


def ref_affine_point(pt, t) -> np.ndarray:
    """lib/utils/transforms.py, affine_transform."""
    return np.dot(t, np.array([pt[0], pt[1], 1.0]))[:2]


def ref_get_final_preds(batch_heatmaps: np.ndarray, centers, scales) -> tuple[np.ndarray, np.ndarray]:
    """lib/core/inference.py, get_max_preds + get_final_preds with TEST.POST_PROCESS (the quarter offset)."""
    n, k, h, w = batch_heatmaps.shape
    flat = batch_heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, 2).reshape(n, k, 1)
    maxvals = np.amax(flat, 2).reshape(n, k, 1)
    coords = np.tile(idx, (1, 1, 2)).astype(np.float32)
    coords[:, :, 0] = coords[:, :, 0] % w
    coords[:, :, 1] = np.floor(coords[:, :, 1] / w)
    coords *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    for i in range(n):
        for p in range(k):
            hm = batch_heatmaps[i][p]
            px, py = int(math.floor(coords[i][p][0] + 0.5)), int(math.floor(coords[i][p][1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                coords[i][p] += np.sign(diff) * 0.25
    preds = np.zeros(coords.shape)
    for i in range(n):  # transform_preds
        trans = hrnet_repo_get_affine_transform(centers[i], scales[i], 0, [w, h], inv=True)
        for p in range(k):
            preds[i, p] = ref_affine_point(coords[i, p], trans)
    return preds, maxvals


def ref_flip_test(output: np.ndarray, output_flipped: np.ndarray) -> np.ndarray:
    """lib/core/function.py, validate: flip_back (mirror, swap pairs), SHIFT_HEATMAP one cell right, average."""
    back = output_flipped[:, :, :, ::-1].copy()
    for a, b in FLIP_PAIRS:
        tmp = back[:, a].copy()
        back[:, a] = back[:, b]
        back[:, b] = tmp
    back[:, :, :, 1:] = back.copy()[:, :, :, 0:-1]
    return (output + back) * 0.5


def ref_oks_iou(g, d, a_g, a_d) -> np.ndarray:
    """lib/nms/nms.py, oks_iou with sigmas=None, in_vis_thre=None (as its COCO evaluation calls it)."""
    var = (REF_SIGMAS * 2) ** 2
    xg, yg = g[0::3], g[1::3]
    ious = np.zeros(d.shape[0])
    for n_d in range(d.shape[0]):
        dx, dy = d[n_d, 0::3] - xg, d[n_d, 1::3] - yg
        e = (dx ** 2 + dy ** 2) / var / ((a_g + a_d[n_d]) / 2 + np.spacing(1)) / 2
        ious[n_d] = np.sum(np.exp(-e)) / e.shape[0] if e.shape[0] != 0 else 0.0
    return ious


def ref_oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = OKS_THRE) -> list[int]:
    """lib/nms/nms.py, oks_nms: greedy, drop those with OKS > thresh to the kept one."""
    kpts = kpts.reshape(len(kpts), -1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        ovr = ref_oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]])
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def ref_rescore(kpts: np.ndarray, box_score: float) -> float:
    """lib/dataset/coco.py, evaluate: box score x mean of the keypoint scores above IN_VIS_THRE (0 if none)."""
    valid = kpts[:, 2] > IN_VIS_THRE
    return float(kpts[valid, 2].mean() * box_score) if valid.any() else 0.0


def ref_pipeline(image_bgr, boxes, box_scores, heatmaps_of, flip: bool):
    """Reference predictions of one image: per box the crop, the network maps, get_final_preds, rescoring, OKS NMS.

    ``heatmaps_of(i, mirrored)`` is the network: the (K, 64, 48) maps of box i's crop (or of its mirror).
    Returns (keypoints (N, K, 3) image px, scores (N,)), NMS-kept, best first.
    """
    people, scores, areas = [], [], []
    for i, box in enumerate(boxes):
        center, scale = hrnet_repo_xywh2cs(box, (IMAGE_W, IMAGE_H))
        output = heatmaps_of(i, False)[None]
        if flip:
            output = ref_flip_test(output, heatmaps_of(i, True)[None])
        preds, maxvals = ref_get_final_preds(output, [center], [scale])
        kpts = np.concatenate([preds[0], maxvals[0]], axis=1)
        people.append(kpts)
        scores.append(ref_rescore(kpts, box_scores[i]))
        areas.append(float(np.prod(scale * 200)))  # validate(): all_boxes[:, 4] = prod(s * 200)
    if not people:
        return np.zeros((0, 17, 3)), np.zeros(0)
    people, scores = np.asarray(people), np.asarray(scores)
    keep = ref_oks_nms(people, scores, np.asarray(areas))
    return people[keep], scores[keep]


def gaussian_maps(cells_xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(K, 64, 48) exp(-d^2 / 2 sigma^2) around each visible keypoint's cell (zeros for the others)."""
    gx, gy = np.meshgrid(np.arange(HEAT_W, dtype=np.float64), np.arange(HEAT_H, dtype=np.float64))
    maps = np.zeros((len(cells_xy), HEAT_H, HEAT_W), dtype=np.float32)
    for k, ((cx, cy), vis) in enumerate(zip(cells_xy, visible)):
        if vis:
            maps[k] = np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * SIGMA ** 2))
    return maps


class ReferenceTrainedNet(nn.Module):
    """Stands in for an official HRNet checkpoint: for each crop it is given, the maps the reference training teaches.

    It knows the crops the reference would cut for the current image (:meth:`expect`) and the
    people's keypoints in them. Given a crop, it finds which reference crop it is, or the mirror
    of which (recording how far the pixels are from it: the crop itself is part of the contract), and returns
    Gaussians at the reference cells of that crop's keypoints: crop pixel u is cell u / 4
    (generate_target), and a mirrored crop shows crop pixel u at W - 1 - u with left and right swapped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.crops: list[np.ndarray] = []
        self.keypoints: list[np.ndarray] = []
        self.calls = 0
        self.worst_crop_error = 0.0  # mean abs difference to the closest reference crop, normalised units

    def expect(self, crops: list[np.ndarray], keypoints: list[np.ndarray]) -> None:
        self.crops, self.keypoints = crops, keypoints

    def heatmaps(self, i: int, mirrored: bool) -> np.ndarray:
        kps = self.keypoints[i].astype(np.float64).copy()
        if mirrored:
            kps[:, 0] = IMAGE_W - 1 - kps[:, 0]
            perm = np.arange(17)
            for a, b in FLIP_PAIRS:
                perm[a], perm[b] = b, a
            kps = kps[perm]
        return gaussian_maps(kps[:, :2] / 4.0, kps[:, 2] > 0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = []
        for crop in x.detach().cpu().numpy():
            self.calls += 1
            errors = [(np.abs(crop - ref).mean(), i, False) for i, ref in enumerate(self.crops)]
            errors += [(np.abs(crop - ref[..., ::-1]).mean(), i, True) for i, ref in enumerate(self.crops)]
            error, i, mirrored = min(errors)
            self.worst_crop_error = max(self.worst_crop_error, float(error))
            out.append(self.heatmaps(i, mirrored))
        return {"heatmaps": torch.from_numpy(np.stack(out))}


def smooth_image(hw=(360, 480), seed=0) -> np.ndarray:
    """A smooth random colour image: crops that differ by a fraction of a pixel differ little in value."""
    noise = np.random.default_rng(seed).uniform(0, 255, (hw[0] // 8, hw[1] // 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> Path:
    """A small file in the official pose-HRNet layout (no config inside): what a user's official checkpoint looks like."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hrnet") / "pose_hrnet_w8_256x192.pth"
    torch.save(build_hrnet(width=8, num_blocks=1).state_dict(), path)
    return path


def _predictor(official_file: Path, flip: bool) -> tuple[TopDownPredictor, ReferenceTrainedNet]:
    predictor = TopDownPredictor.from_weights(official_file, flip=flip, codec_overrides={"refine": "quarter"},
                                             device="cpu")
    net = ReferenceTrainedNet()
    predictor.model = net
    return predictor, net


def _people(seed: int, boxes: np.ndarray) -> np.ndarray:
    """COCO-17 keypoints (N, 17, 3) spread inside each box, some unlabelled."""
    rng = np.random.default_rng(seed)
    kps = np.zeros((len(boxes), 17, 3))
    for n, (x, y, w, h) in enumerate(boxes):
        kps[n, :, 0] = x + rng.uniform(0.05, 0.95, 17) * w
        kps[n, :, 1] = y + rng.uniform(0.05, 0.95, 17) * h
        kps[n, :, 2] = np.where(rng.uniform(size=17) < 0.85, 2, 0)
    return kps


def _reference_crops(image, boxes, kps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    crops, crop_kps = [], []
    for box, person in zip(boxes, kps):
        center, scale = hrnet_repo_xywh2cs(box, (IMAGE_W, IMAGE_H))
        crops.append(hrnet_official_input(image, box))
        trans = hrnet_repo_get_affine_transform(center, scale, 0, (IMAGE_W, IMAGE_H))
        moved = person.copy()
        for j in range(17):
            if person[j, 2] > 0:  # JointsDataset: only visible joints are transformed
                moved[j, :2] = ref_affine_point(person[j, :2], trans)
        crop_kps.append(moved)
    return crops, crop_kps


def _match(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Our people reordered to the reference's (both best first; matched by nearest mean keypoint)."""
    assert len(ours) == len(ref)
    order = [int(np.argmin([np.abs(o[r[:, 2] > 0, :2] - r[r[:, 2] > 0, :2]).mean() for o in ours])) for r in ref]
    assert sorted(order) == list(range(len(ref)))
    return ours[order]


# ------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("box", [(10.0, 20.0, 30.0, 120.0), (5.5, 7.25, 200.0, 60.0), (0.0, 0.0, 96.0, 128.0)])
def test_hrnet_convention_box_to_centre_and_size_is_the_reference_xywh2cs(box):
    center, size = box_to_center_scale(np.array(box), ASPECT, 1.25, convention="hrnet")
    ref_center, ref_scale = hrnet_repo_xywh2cs(box, (IMAGE_W, IMAGE_H))
    np.testing.assert_allclose(center, ref_center, atol=1e-4)
    np.testing.assert_allclose(size, ref_scale * PIXEL_STD, rtol=1e-6)


@pytest.mark.parametrize("rotation", [0.0, 30.0, -45.0])
def test_hrnet_convention_crop_is_the_reference_get_affine_transform(rotation):
    center, scale = hrnet_repo_xywh2cs((40.0, 30.0, 90.0, 200.0), (IMAGE_W, IMAGE_H))
    ours = crop_affine(center.astype(np.float64), scale.astype(np.float64) * PIXEL_STD, (IMAGE_H, IMAGE_W),
                       rotation_deg=rotation, convention="hrnet")
    np.testing.assert_allclose(ours, hrnet_repo_get_affine_transform(center, scale, rotation, (IMAGE_W, IMAGE_H)), atol=2e-4)
    # Our own convention puts the centre half a pixel up and left of the reference's.
    plain = crop_affine(center.astype(np.float64), scale.astype(np.float64) * PIXEL_STD, (IMAGE_H, IMAGE_W))
    assert np.allclose(plain[:, 2] - ours[:, 2], -0.5, atol=1e-6) if rotation == 0.0 else True

    image = smooth_image()
    crop, _ = crop_person(image, center, scale * PIXEL_STD, 0.0, (IMAGE_H, IMAGE_W), convention="hrnet")
    ref = cv2.warpAffine(image, hrnet_repo_get_affine_transform(center, scale, 0, (IMAGE_W, IMAGE_H)), (IMAGE_W, IMAGE_H),
                         flags=cv2.INTER_LINEAR)
    assert np.abs(crop.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip_test"])
def test_official_weights_decode_like_the_reference_get_final_preds(official_file, flip):
    image = smooth_image()
    boxes = np.array([[20.0, 30.0, 110.0, 260.0], [250.0, 40.0, 90.0, 230.0], [150.0, 200.0, 140.0, 120.5]])
    box_scores = np.array([0.9, 0.8, 0.7])
    kps = _people(1, boxes)
    crops, crop_kps = _reference_crops(image, boxes, kps)
    predictor, net = _predictor(official_file, flip)
    net.expect(crops, crop_kps)

    poses = predictor(image, boxes, box_scores)
    ref_kps, ref_scores = ref_pipeline(image, boxes, box_scores, net.heatmaps, flip)

    assert net.calls == len(boxes) * (2 if flip else 1)
    ours = _match(poses.keypoints, ref_kps)
    # get_max_preds zeroes the coordinates of a joint whose maximum is <= 0 (pred_mask): no location.
    # Ours writes such a joint as not found, (0, 0, 0); every found joint sits where the reference puts it.
    found = ref_kps[..., 2] > 0
    np.testing.assert_allclose(ours[found][:, :2], ref_kps[found][:, :2], atol=0.05)
    assert (ours[~found] == 0).all()
    np.testing.assert_allclose(ours[..., 2], ref_kps[..., 2], atol=1e-5)
    np.testing.assert_allclose(np.sort(poses.scores)[::-1], ref_scores, atol=1e-5)
    assert net.worst_crop_error < 0.01  # our crops are the reference's pixels (a half-pixel shift gives ~0.03)


def test_hrnet_convention_dark_and_quarter_decode_reference_targets_at_their_pixels():
    # A Gaussian at crop pixel u is drawn at cell u / 4 by the reference's training targets.
    u = np.array([[61.3, 97.8], [130.6, 17.2], [100.0, 200.0]])
    maps = gaussian_maps(np.tile(u / 4.0, (6, 1))[:17], np.ones(17, bool))
    expected = np.tile(u, (6, 1))[:17]
    dark = TopDownHeatmapCodec(refine="dark", blur_kernel=0, convention="hrnet").decode_keypoints(maps[None])[0]
    np.testing.assert_allclose(dark[:, :2], expected, atol=0.02)
    quarter = TopDownHeatmapCodec(refine="quarter", convention="hrnet").decode_keypoints(maps[None])[0]
    assert np.abs(quarter[:, :2] - expected).max() <= 4 * 0.25 + 1e-9  # within a quarter cell, in crop px
    # Decoded in our own convention the same maps land 1.5 crop px off: the mismatch this convention removes.
    ours = TopDownHeatmapCodec(refine="dark", blur_kernel=0).decode_keypoints(maps[None])[0]
    np.testing.assert_allclose(ours[:, :2] - expected, 1.5, atol=0.02)


def test_oks_nms_keeps_what_the_reference_oks_nms_keeps():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(2, 9))
        base = rng.uniform(0, 300, (3, 17, 2))
        kps = np.zeros((n, 17, 3))
        kps[..., :2] = base[rng.integers(0, 3, n)] + rng.normal(0, rng.uniform(0.5, 8), (n, 17, 2))
        kps[..., 2] = rng.uniform(0, 1, (n, 17))  # low-score keypoints count too in the reference
        scores = rng.permutation(n) / n + 0.01
        areas = rng.uniform(2000, 20000, n)  # unequal areas: the reference averages the pair's
        assert oks_nms(kps, scores, areas, COCO_17.sigmas_array, 0.9).tolist() == ref_oks_nms(kps, scores, areas)


def test_ground_truth_boxes_are_the_labelled_people_only(tmp_path):
    data = {
        "images": [{"id": 1, "file_name": "1.jpg", "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints)}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 900, "bbox": [10, 10, 30, 30],
             "num_keypoints": 1, "keypoints": [20, 20, 2] + [0, 0, 0] * 16},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 900, "bbox": [50, 50, 30, 30],
             "num_keypoints": 0, "keypoints": [0, 0, 0] * 17},  # a person without keypoints: not evaluated
            {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 900, "bbox": [0, 0, 99, 99],
             "num_keypoints": 0, "keypoints": [0, 0, 0] * 17},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(__import__("json").dumps(data))
    boxes, scores = gt_box_source(path)(np.zeros((100, 100, 3), np.uint8), 1)
    np.testing.assert_array_equal(boxes, [[10, 10, 30, 30]])
    # The reference's cleaning: x2 = x1 + w - 1, so the width shrinks by one pixel.
    boxes, _ = gt_box_source(path, "hrnet")(np.zeros((100, 100, 3), np.uint8), 1)
    np.testing.assert_array_equal(boxes, [[10, 10, 29, 29]])


@needs_coco_sample
def test_ground_truth_boxes_on_the_coco_sample_are_its_110_labelled_people():
    import json

    data = json.loads(COCO_SAMPLE_VAL_ANN.with_name("person_keypoints.json").read_text())
    people = labelled_people(data)
    assert sum(len(v) for v in people.values()) == 110  # the sample README's count
    source = gt_box_source(COCO_SAMPLE_VAL_ANN.with_name("person_keypoints.json"))
    total = sum(len(source(np.zeros((1, 1, 3), np.uint8), im["id"])[0]) for im in data["images"])
    assert total == 110


def _ap(coco: COCO, results: list[dict]) -> float:
    if not results:
        return 0.0
    ev = COCOeval(coco, coco.loadRes(results), "keypoints")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@needs_coco_sample
@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip_test"])
def test_official_weights_on_the_coco_sample_get_the_reference_pipeline_ap(official_file, flip):
    """Maps shaped as an official checkpoint outputs them, ground-truth boxes: our AP is the reference's."""
    coco = COCO.__new__(COCO)  # quiet construction of pycocotools' index
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        coco.__init__(str(COCO_SAMPLE_VAL_ANN))
    predictor, net = _predictor(official_file, flip)
    pipeline = TopDownPipeline(predictor, gt_box_source(COCO_SAMPLE_VAL_ANN, predictor.codec.convention))
    ours_results, ref_results = [], []
    worst = 0.0
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        image = cv2.imread(str(COCO_SAMPLE_IMAGES / info["file_name"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        anns = [a for a in coco.imgToAnns.get(image_id, []) if not a["iscrowd"] and max(a["keypoints"]) > 0]
        boxes, kps = [], []
        for ann in anns:
            clean = ref_clean_bbox(ann, info["width"], info["height"])
            if clean is not None:
                boxes.append(clean)
                kps.append(np.asarray(ann["keypoints"], np.float64).reshape(17, 3))
        crops, crop_kps = _reference_crops(image, boxes, kps)
        net.expect(crops, crop_kps)
        poses = pipeline(image, image_id)
        ref_kps, ref_scores = ref_pipeline(image, boxes, np.ones(len(boxes)), net.heatmaps, flip)
        if len(ref_kps):
            found = ref_kps[..., 2] > 0  # joints the reference locates (get_max_preds: maxval > 0)
            ours = _match(poses.keypoints, ref_kps)
            worst = max(worst, float(np.abs(ours[found][:, :2] - ref_kps[found][:, :2]).max()))
        ours_results.extend(poses.to_coco(image_id))
        ref_results.extend({"image_id": image_id, "category_id": 1, "keypoints": k.reshape(-1).tolist(), "score": float(s)}
                           for k, s in zip(ref_kps, ref_scores))
    ours_ap, ref_ap = _ap(coco, ours_results), _ap(coco, ref_results)
    print(f"flip={flip}: AP ours {ours_ap:.4f}, reference pipeline {ref_ap:.4f}, worst keypoint {worst:.4f} px")
    assert worst < 0.05
    assert abs(ours_ap - ref_ap) <= 0.005, (ours_ap, ref_ap)
    assert ref_ap > 0.9


# ------------------------------------------------------------------------------ ImageNet trunks
def test_imagenet_vgg19_trunk_on_the_cmu_input_computes_torchvision_vgg19_on_its_input(tmp_path):
    torchvision = import_optional("torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).eval()
    path = tmp_path / "vgg19.pth"
    torch.save(reference.state_dict(), path)
    model = build_vgg19_paf(num_stages=1).eval()
    load_backbone(model, path)

    photo = smooth_image((192, 256), seed=3)  # BGR uint8, as cv2.imread gives
    # torchvision's input: RGB, / 255, (x - mean) / std.
    tv_input = ((photo[..., ::-1] / 255.0 - MEAN_RGB) / STD_RGB).transpose(2, 0, 1)[None].astype(np.float32)
    # The CMU input (the CMU demo and our predictor): BGR, / 256 - 0.5.
    cmu_input = (photo / 256.0 - 0.5).transpose(2, 0, 1)[None].astype(np.float32)
    with torch.no_grad():
        expected = reference.features[:23](torch.from_numpy(tv_input)).numpy()
        ours = model.trunk(torch.from_numpy(cmu_input)).numpy()
    assert ours.shape == expected.shape == (1, 512, 24, 32)
    border = 6  # cells at stride 8 that see the zero padding of some layer
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    relative = np.abs(ours[inner] - expected[inner]).max() / np.abs(expected[inner]).max()
    assert relative <= 1e-4


def _imagenet_hrnet_state(c: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the layout of the official ImageNet HRNet-W``c`` classifier (cls_hrnet.py)."""
    shapes = {k: v for k, v in official_layout(c, 17).items() if not k.startswith("final_layer")}
    widths = [c, 2 * c, 4 * c, 8 * c]
    # stage4's last module keeps every output branch in the classifier (multi_scale_output=True).
    for i in range(1, 4):
        for j in range(4):
            q = f"stage4.2.fuse_layers.{i}.{j}"
            if j > i:
                shapes[f"{q}.0.weight"] = (widths[i], widths[j], 1, 1)
                shapes |= {f"{q}.1.{n}": (widths[i],) for n in ("weight", "bias", "running_mean", "running_var")}
            for s in range(i - j):
                w_out = widths[i] if s == i - j - 1 else widths[j]
                shapes[f"{q}.{s}.0.weight"] = (w_out, widths[j], 3, 3)
                shapes |= {f"{q}.{s}.1.{n}": (w_out,) for n in ("weight", "bias", "running_mean", "running_var")}
    # The classification head: incre_modules (Bottleneck to 32/64/128/256 x 4), downsamp_modules, final_layer, classifier.
    head = [32, 64, 128, 256]
    for i, w in enumerate(widths):
        p = f"incre_modules.{i}.0"
        shapes |= {f"{p}.conv1.weight": (head[i], w, 1, 1), f"{p}.conv2.weight": (head[i], head[i], 3, 3),
                   f"{p}.conv3.weight": (4 * head[i], head[i], 1, 1), f"{p}.downsample.0.weight": (4 * head[i], w, 1, 1)}
    for i in range(3):
        shapes |= {f"downsamp_modules.{i}.0.weight": (4 * head[i + 1], 4 * head[i], 3, 3),
                   f"downsamp_modules.{i}.0.bias": (4 * head[i + 1],)}
    shapes |= {"final_layer.0.weight": (2048, 1024, 1, 1), "final_layer.0.bias": (2048,),
               "classifier.weight": (1000, 2048), "classifier.bias": (1000,)}
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(3) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g)) for k, s in shapes.items()}


def test_imagenet_hrnet_checkpoint_fills_the_reference_pretrained_layers_only(tmp_path):
    state = _imagenet_hrnet_state(8)
    path = tmp_path / "hrnet_w8_imagenet.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="ImageNet classification network.*ImageNet HRNet.*model.arch hrnet"):
        detect_layout(state)
    torch.manual_seed(1)
    model = build_hrnet(width=8)
    head_before = model.final_layer.weight.clone()
    assert load_backbone(model, path) == f"ImageNet HRNet-W8 from {path}"
    loaded = model.state_dict()
    pretrained = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3",
                  "transition3", "stage4")  # the W32 config's PRETRAINED_LAYERS
    trunk_keys = [k for k in loaded if k.split(".")[0] in pretrained]
    assert len(trunk_keys) > 100
    for key in trunk_keys:
        assert torch.equal(loaded[key], state[key]), key
    assert torch.equal(model.final_layer.weight, head_before)  # the pose head is not ImageNet's final_layer


def test_imagenet_hrnet_of_another_width_is_refused_naming_keys(tmp_path):
    path = tmp_path / "hrnet_w16_imagenet.pth"
    torch.save(_imagenet_hrnet_state(16), path)
    with pytest.raises(ValueError, match="shape mismatches with HRNet-W8"):
        load_backbone(build_hrnet(width=8), path)
