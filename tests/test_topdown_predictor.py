"""TopDownPredictor: boxes -> crops -> heatmaps -> people, with a model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from openpose_lite.codecs import TopDownHeatmapCodec
from openpose_lite.inference import TopDownPredictor
from openpose_lite.oks import oks_iou, oks_nms
from openpose_lite.skeleton import COCO_17

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
K = COCO_17.num_keypoints


def _dot_red(k: int) -> int:
    """Red level (0-255) of the dot that marks keypoint k; green 255 marks a dot."""
    return 10 + 14 * k


class DotModel(nn.Module):
    """An ideal 'network': channel k is the codec's target Gaussian at the centroid of keypoint k's dot."""

    codec = TopDownHeatmapCodec()

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        rgb = images * _STD + _MEAN  # back to [0, 1] RGB
        red, green = rgb[:, 0] * 255.0, rgb[:, 1] * 255.0
        out = []
        for b in range(images.shape[0]):
            kps = np.zeros((K, 3), np.float32)
            for k in range(K):
                ys, xs = torch.nonzero((green[b] > 250) & ((red[b] - _dot_red(k)).abs() < 4), as_tuple=True)
                if len(xs):
                    kps[k] = (xs.float().mean(), ys.float().mean(), 2)
            out.append(torch.from_numpy(self.codec.encode(kps)[0]["heatmaps"]))
        return [{"heatmaps": torch.stack(out)}]


class MirrorEquivariantModel(nn.Module):
    """Every channel is the same symmetric blur of the image: mirroring in = mirroring out."""

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        gray = nn.functional.avg_pool2d(images.mean(1, keepdim=True), 4)
        return [{"heatmaps": nn.functional.avg_pool2d(gray, 3, stride=1, padding=1).repeat(1, K, 1, 1)}]


def _scene(rng: np.random.Generator, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((300, 400, 3), np.uint8)
    people = []
    for x, y, w, h in boxes:
        kps = np.zeros((K, 3), np.float32)
        # A jittered 3 x 6 grid inside the box keeps the dots apart.
        gx, gy = np.meshgrid(np.linspace(x + 10, x + w - 10, 3), np.linspace(y + 10, y + h - 10, 6))
        kps[:, 0] = (gx.reshape(-1)[:K] + rng.uniform(-3, 3, K)).round()
        kps[:, 1] = (gy.reshape(-1)[:K] + rng.uniform(-3, 3, K)).round()
        kps[:, 2] = 2
        for k, (px, py, _) in enumerate(kps):
            image[int(py) - 3 : int(py) + 4, int(px) - 3 : int(px) + 4] = (0, 255, _dot_red(k))  # BGR, centred on the keypoint
        people.append(kps)
    return image, np.stack(people)


def test_topdown_predictor_recovers_known_keypoints_in_image_pixels():
    boxes = np.array([[20.0, 30.0, 90.0, 200.0], [220.0, 40.0, 120.0, 220.0]])
    image, truth = _scene(np.random.default_rng(0), boxes)
    predictor = TopDownPredictor(DotModel(), TopDownHeatmapCodec(refine="dark"), device="cpu")
    poses = predictor(image, boxes, box_scores=np.array([0.9, 0.5]))
    assert len(poses) == 2 and poses.skeleton == COCO_17
    for found, kps in zip(poses.keypoints, truth):
        assert np.abs(found[:, :2] - kps[:, :2]).max() < 1.0
    assert poses.scores[0] > poses.scores[1]  # box scores carry into person scores
    assert set(predictor.timings) == {"crop", "network", "decode"}


def test_flip_test_with_a_mirror_equivariant_model_equals_the_plain_prediction():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[40.0, 20.0, 100.0, 180.0]])
    plain = TopDownPredictor(MirrorEquivariantModel(), TopDownHeatmapCodec(), device="cpu")
    flipped = TopDownPredictor(MirrorEquivariantModel(), TopDownHeatmapCodec(), flip=True, device="cpu")
    crop = torch.from_numpy(np.zeros((1, 3, 256, 192), np.float32))
    assert plain.heatmaps(crop).shape == (1, K, 64, 48)
    a, b = plain(image, boxes), flipped(image, boxes)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)
    np.testing.assert_allclose(
        plain.heatmaps(torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0))),
        flipped.heatmaps(torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0))),
        atol=1e-5,
    )


def test_duplicate_boxes_are_removed_by_oks_nms_and_bad_boxes_skipped():
    boxes = np.array([[20.0, 30.0, 90.0, 200.0]])
    image, _ = _scene(np.random.default_rng(2), boxes)
    predictor = TopDownPredictor(DotModel(), TopDownHeatmapCodec(), device="cpu")
    poses = predictor(image, np.array([[20.0, 30.0, 90.0, 200.0], [21.0, 31.0, 90.0, 200.0], [0, 0, 0, 0]]))
    assert len(poses) == 1
    assert len(predictor(image, np.zeros((0, 4)))) == 0
    with pytest.raises(ValueError, match="box_scores"):
        predictor(image, boxes, box_scores=np.ones(3))


def test_oks_nms_keeps_distinct_people_and_drops_near_copies():
    kps = np.zeros((3, K, 3))
    kps[0, :, :2] = np.random.default_rng(3).uniform(0, 100, (K, 2))
    kps[1, :, :2] = kps[0, :, :2] + 0.5
    kps[2, :, :2] = kps[0, :, :2] + 300
    kps[..., 2] = 1
    areas = np.full(3, 5000.0)
    oks = oks_iou(kps, areas, COCO_17.sigmas_array)
    assert oks[0, 1] > 0.9 and oks[0, 2] < 1e-6 and np.allclose(np.diag(oks), 1)
    np.testing.assert_array_equal(oks_nms(kps, np.array([0.5, 0.9, 0.7]), areas, COCO_17.sigmas_array), [1, 2])
