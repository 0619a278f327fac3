"""The check at the door of every network whose trunk needs its input size to divide evenly."""

from __future__ import annotations

import torch

__all__ = ["check_image_batch"]


def check_image_batch(owner: str, images: torch.Tensor, multiple: int, why: str) -> None:
    """Raise ValueError unless ``images`` is (B, 3, H, W) with H and W multiples of ``multiple``.

    ``why`` says where the multiple comes from (e.g. "the trunk's stride"). Skipped under tracing
    (TorchScript/ONNX export), where the sizes stay symbolic.
    """
    if torch.jit.is_tracing():
        return
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{owner}: images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    h, w = int(images.shape[-2]), int(images.shape[-1])
    if h % multiple or w % multiple:
        raise ValueError(f"{owner}: image height and width must be multiples of {multiple} ({why}), "
                         f"got H x W = {h} x {w}")
