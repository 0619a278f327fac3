"""Losses: CMU masked per-stage sums and the HRNet per-keypoint MSE."""

from __future__ import annotations

import pytest
import torch

from openpose_lite.losses import keypoint_mse_loss, masked_sse, stage_losses, total_loss
from openpose_lite.skeleton import OPENPOSE_18

B, H, W = 2, 6, 5
C_HM, C_PAF = OPENPOSE_18.num_heatmaps, OPENPOSE_18.num_pafs


def _batch(num_stages: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    targets = {"pafs": torch.rand(B, C_PAF, H, W, generator=g), "heatmaps": torch.rand(B, C_HM, H, W, generator=g)}
    weight = torch.ones(B, 1, H, W)
    weight[0, 0, 2:4, 1:3] = 0.0  # an ignored region, e.g. a crowd
    weight[1, 0, 0, :] = 0.0
    weights = {"pafs": weight, "heatmaps": weight.clone()}
    outputs = [
        {"pafs": torch.rand(B, C_PAF, H, W, generator=g), "heatmaps": torch.rand(B, C_HM, H, W, generator=g)}
        for _ in range(num_stages)
    ]
    return outputs, targets, weights


def test_terms_are_named_per_stage_and_branch_in_order():
    outputs, targets, weights = _batch(num_stages=3)
    terms = stage_losses(outputs, targets, weights)
    assert list(terms) == [f"stage{s}/{b}" for s in (1, 2, 3) for b in ("pafs", "heatmaps")]
    assert all(t.dim() == 0 for t in terms.values())


def test_normalisation_is_sum_over_elements_over_twice_batch():
    outputs, targets, weights = _batch(num_stages=1)
    terms = stage_losses(outputs, targets, weights)
    diff = outputs[0]["heatmaps"] - targets["heatmaps"]
    expected = (weights["heatmaps"] * diff**2).sum() / (2 * B)
    assert torch.allclose(terms["stage1/heatmaps"], expected)


def test_masked_cells_do_not_change_the_loss():
    outputs, targets, weights = _batch()
    before = stage_losses(outputs, targets, weights)
    ignored = weights["pafs"] == 0  # (B, 1, H, W), broadcast over channels
    for stage in outputs:
        for name, pred in stage.items():
            stage[name] = torch.where(ignored.expand_as(pred), torch.full_like(pred, 1e3), pred)
    after = stage_losses(outputs, targets, weights)
    for name in before:
        assert torch.allclose(before[name], after[name]), name


def test_unmasked_cells_do_change_the_loss():
    outputs, targets, weights = _batch(num_stages=1)
    before = stage_losses(outputs, targets, weights)["stage1/pafs"]
    outputs[0]["pafs"][0, :, 0, 0] += 1.0  # weight 1 there
    assert stage_losses(outputs, targets, weights)["stage1/pafs"] > before


def test_perfect_prediction_gives_zero_loss():
    _, targets, weights = _batch()
    outputs = [{k: v.clone() for k, v in targets.items()} for _ in range(2)]
    assert float(total_loss(stage_losses(outputs, targets, weights))) == 0.0


def test_total_loss_is_the_sum_and_backpropagates():
    outputs, targets, weights = _batch()
    for stage in outputs:
        for t in stage.values():
            t.requires_grad_(True)
    terms = stage_losses(outputs, targets, weights)
    total = total_loss(terms)
    assert torch.allclose(total, sum(terms.values()))
    total.backward()
    assert outputs[-1]["heatmaps"].grad is not None


def test_half_precision_predictions_are_summed_in_float32():
    outputs, targets, weights = _batch(num_stages=1)
    half = [{k: v.half() for k, v in outputs[0].items()}]
    terms = stage_losses(half, targets, weights)
    assert all(t.dtype == torch.float32 for t in terms.values())


def test_missing_target_is_a_clear_error():
    outputs, targets, weights = _batch(num_stages=1)
    del targets["pafs"]
    with pytest.raises(ValueError, match="'pafs'"):
        stage_losses(outputs, targets, weights)


def test_shape_mismatch_is_a_clear_error():
    outputs, targets, weights = _batch(num_stages=1)
    with pytest.raises(ValueError, match="stage1/heatmaps"):
        masked_sse(outputs[0]["heatmaps"], targets["heatmaps"][:, :3], weights["heatmaps"], "stage1/heatmaps")
    with pytest.raises(ValueError, match="weight shape"):
        masked_sse(outputs[0]["heatmaps"], targets["heatmaps"], torch.ones(B, 2, H, W))


def test_keypoint_mse_matches_hrnet_definition():
    g = torch.Generator().manual_seed(1)
    k = 4
    pred, target = torch.rand(B, k, H, W, generator=g), torch.rand(B, k, H, W, generator=g)
    weight = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    # HRNet JointsMSELoss: per joint 0.5 * MSE(pred * w, gt * w) over (B, h*w), averaged over joints.
    expected = sum(
        0.5 * torch.mean((pred[:, j] * weight[:, j, None, None] - target[:, j] * weight[:, j, None, None]) ** 2)
        for j in range(k)
    ) / k
    assert torch.allclose(keypoint_mse_loss(pred, target, weight), expected)
    assert torch.allclose(keypoint_mse_loss(pred, target, weight[..., None]), expected)


def test_keypoint_mse_ignores_zero_weight_keypoints():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(1, 3, H, W, generator=g), torch.rand(1, 3, H, W, generator=g)
    weight = torch.tensor([[1.0, 0.0, 1.0]])
    before = keypoint_mse_loss(pred, target, weight)
    pred[0, 1] += 100.0
    assert torch.allclose(keypoint_mse_loss(pred, target, weight), before)
