"""Training losses: masked per-stage MSE (bottom-up) and per-keypoint MSE (top-down).

Normalisation (bottom-up), chosen once for the whole project: **CMU's**. Each stage and
branch contributes Caffe's ``EuclideanLoss`` of the masked maps,

    loss = sum over (b, c, y, x) of  w[b, ., y, x] * (pred - target)[b, c, y, x] ** 2  / (2 * B)

i.e. the squared error summed over every channel and cell of an image, halved, averaged
over the batch. It is not divided by the number of channels, cells or unmasked cells, so
masked cells contribute exactly nothing, and the values (and gradients) are on the scale
of the paper's training logs. The price is a small learning rate: the paper's SGD recipe
(base lr 4e-5, momentum 0.9) is the default in :mod:`openpose_lite.config`. Because the sum
grows with the map area, a crop twice as large gives gradients four times as large; Adam is
insensitive to that scale, which is why the small CPU config uses Adam.

Shape legend: B batch, S stages, K keypoints, C channels, h x w output map size.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["keypoint_mse_loss", "masked_sse", "stage_losses", "total_loss"]


def masked_sse(pred: Tensor, target: Tensor, weight: Tensor, name: str = "maps") -> Tensor:
    """CMU's masked Euclidean loss: ``sum(weight * (pred - target)**2) / (2 * B)``.

    ``pred`` and ``target`` are (B, C, h, w); ``weight`` broadcasts against them, typically
    (B, 1, h, w) with 0 where the ground truth is unreliable (crowds, unlabelled people).
    Computed in float32 whatever the prediction's dtype (AMP), so the sum does not overflow.
    """
    if pred.dim() != 4:
        raise ValueError(f"{name}: expected a prediction of shape (B, C, h, w), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"{name}: target shape {tuple(target.shape)} != prediction shape {tuple(pred.shape)}")
    try:
        fits = torch.broadcast_shapes(weight.shape, pred.shape) == pred.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{name}: weight shape {tuple(weight.shape)} does not broadcast to the maps "
                         f"{tuple(pred.shape)}; expected (B, 1, h, w) or (B, C, h, w)")
    diff = pred.float() - target.float()
    return (weight.float() * diff * diff).sum() / (2.0 * pred.shape[0])


def stage_losses(outputs: Sequence[Mapping[str, Tensor]], targets: Mapping[str, Tensor],
                 weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Intermediate supervision (CMU eq. 5): one :func:`masked_sse` per stage and branch.

    ``outputs``: S dicts, one per stage, branch name (``"pafs"``, ``"heatmaps"``) -> (B, C, h, w)
    prediction; ``targets``: branch name -> (B, C, h, w); ``weights``: branch name -> (B, 1, h, w) for the
    bottom-up codec (0 = ignore this cell). Returns ``{"stage1/pafs": scalar, ..., "stageS/heatmaps":
    scalar}`` in stage order, branches in each stage dict's order.
    """
    if len(outputs) == 0:
        raise ValueError("stage_losses: expected at least one stage output, got none")
    terms: dict[str, Tensor] = {}
    for s, stage in enumerate(outputs, start=1):
        if not stage:
            raise ValueError(f"stage_losses: stage {s} has no outputs")
        for branch, pred in stage.items():
            if branch not in targets or branch not in weights:
                raise ValueError(f"stage_losses: stage {s} predicts {branch!r} but targets have "
                                 f"{sorted(targets)} and weights have {sorted(weights)}")
            name = f"stage{s}/{branch}"
            terms[name] = masked_sse(pred, targets[branch], weights[branch], name)
    return terms


def total_loss(terms: Mapping[str, Tensor]) -> Tensor:
    """The sum of the named loss terms (the paper's total loss f = sum over stages of f_S + f_L)."""
    if not terms:
        raise ValueError("total_loss: no loss terms")
    values = list(terms.values())
    return sum(values[1:], values[0])


def keypoint_mse_loss(pred: Tensor, target: Tensor, target_weight: Tensor) -> Tensor:
    """Top-down heatmap loss with the HRNet reference semantics (``JointsMSELoss``):
    ``0.5 * mean over (B, K, h, w) of (w_bk * (pred - target))**2`` for ``pred`` and ``target`` (B, K, h, w)
    and ``target_weight`` (B, K), (B, K, 1) or (B, K, 1, 1) (0 removes keypoint k of sample b)."""
    if pred.dim() != 4:
        raise ValueError(f"keypoint_mse_loss: expected pred of shape (B, K, h, w), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"keypoint_mse_loss: target shape {tuple(target.shape)} != pred shape {tuple(pred.shape)}")
    b, k = pred.shape[:2]
    if target_weight.numel() != b * k or target_weight.shape[:2] != (b, k):
        raise ValueError(f"keypoint_mse_loss: expected target_weight of shape ({b}, {k}) or ({b}, {k}, 1), "
                         f"got {tuple(target_weight.shape)}")
    w = target_weight.reshape(b, k, 1, 1).float()
    diff = w * (pred.float() - target.float())
    return 0.5 * (diff * diff).mean()
