"""What every Poses guarantees, whoever made it: confidences in [0, 1], keypoints not found at (0, 0).

Checked on hand-built Poses and through both branches' decoders with DARK refinement on sharp
peaks taller than 1 (a network's maps can overshoot 1; so can multi-scale resampling).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from openpose_lite.codecs import BottomUpPafCodec, TopDownHeatmapCodec
from openpose_lite.inference import TopDownPredictor
from openpose_lite.skeleton import COCO_17
from openpose_lite.structures import Poses, zero_missing_keypoints


def all_confidences(poses: Poses) -> list[float]:
    """Every confidence the two output formats write: keypoints (OpenPose JSON, COCO) and people (COCO)."""
    values = [v for p in poses.to_openpose_dict()["people"] for v in p["pose_keypoints_2d"][2::3]]
    for result in poses.to_coco(image_id=1):
        values += result["keypoints"][2::3] + [result["score"]]
    return values


def test_poses_clip_confidences_and_put_missing_keypoints_at_the_origin_without_touching_the_input():
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, :, :2] = 50.0
    kps[0, 0, 2], kps[0, 1, 2], kps[0, 2, 2] = 1.3, -0.2, 0.0
    kps[0, 3:, 2] = 0.5
    original = kps.copy()
    poses = Poses(kps, np.array([1.7]), COCO_17)
    np.testing.assert_array_equal(kps, original)  # the caller's array is left alone
    assert poses.keypoints[0, 0, 2] == 1.0 and poses.scores[0] == 1.0
    assert poses.keypoints[0, 1].tolist() == [0.0, 0.0, 0.0] and poses.keypoints[0, 2].tolist() == [0.0, 0.0, 0.0]
    assert all(0.0 <= v <= 1.0 for v in all_confidences(poses))


def test_moving_poses_keeps_missing_keypoints_at_the_origin():
    kps = np.zeros((1, 18, 3), np.float32)
    kps[0, 0] = (10.0, 20.0, 0.8)
    moved = Poses(kps, np.ones(1)).transform(np.array([[2.0, 0.0, 5.0], [0.0, 2.0, 7.0]]))
    assert moved.keypoints[0, 0].tolist() == [25.0, 47.0, 0.800000011920929]
    assert not moved.keypoints[0, 1:].any()  # an affine's offset does not move what was not found


def test_zero_missing_keypoints_is_the_rule_training_targets_use_too():
    kps = np.array([[[3.0, 4.0, 0.0], [5.0, 6.0, 2.0]]], np.float32)
    assert zero_missing_keypoints(kps).tolist() == [[[0.0, 0.0, 0.0], [5.0, 6.0, 2.0]]]
    assert kps[0, 0, 0] == 3.0


def test_bottomup_decoding_of_sharp_peaks_taller_than_one_gives_confidences_within_0_and_1():
    codec = BottomUpPafCodec(refine="dark", blur_kernel=0)
    kps = np.zeros((1, 17, 3), np.float32)
    for k, (x, y) in enumerate(zip(np.linspace(40, 120, 17), np.linspace(30, 150, 17))):
        kps[0, k] = (x, y, 2)
    targets, _ = codec.encode(kps, (184, 184))
    heatmaps = targets["heatmaps"].copy()
    # Sharp peaks: the Gaussian cubed (narrower), then scaled to 1.4 at the top.
    heatmaps[:-1] = 1.4 * heatmaps[:-1] ** 3
    poses = codec.decode({"heatmaps": heatmaps, "pafs": targets["pafs"]})
    assert len(poses) >= 1 and poses.keypoints[..., 2].max() > 0
    assert all(0.0 <= v <= 1.0 for v in all_confidences(poses))


class SharpPeaks(nn.Module):
    """Stands in for HRNet: one-cell peaks of height 1.3 (neighbours 0.3) at fixed cells, whatever the crop."""

    def __init__(self, heatmap_hw: tuple[int, int]) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.stride = 4
        self.heatmap_hw = heatmap_hw

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        h, w = self.heatmap_hw
        maps = torch.zeros(images.shape[0], 17, h, w)
        for k in range(17):
            y, x = 4 + (k * 3) % (h - 8), 4 + (k * 5) % (w - 8)
            maps[:, k, y - 1 : y + 2, x - 1 : x + 2] = 0.3
            maps[:, k, y, x] = 1.3
        return [{"heatmaps": maps + 0.0 * self.anchor}]


def test_topdown_decoding_of_sharp_peaks_taller_than_one_gives_confidences_within_0_and_1():
    codec = TopDownHeatmapCodec(refine="dark", blur_kernel=3)
    model = SharpPeaks(codec.heatmap_hw)
    predictor = TopDownPredictor(model, codec, device="cpu")
    image = np.full((300, 240, 3), 127, np.uint8)
    poses = predictor(image, np.array([[20.0, 30.0, 150.0, 220.0], [60.0, 40.0, 120.0, 200.0]]))
    assert len(poses) >= 1
    assert all(0.0 <= v <= 1.0 for v in all_confidences(poses))
