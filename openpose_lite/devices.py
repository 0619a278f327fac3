"""Where models run: one rule for every entry point (training, inference, benchmarks)."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a device -> a device.

    Under DDP on GPUs, ``"auto"`` and ``"cuda"`` pick ``cuda:<local_rank>`` (one GPU per
    process). Asking for CUDA where there is none is a ValueError, not a silent CPU run.
    """
    if name is None:
        name = "auto"
    elif isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); use 'cpu' or 'auto'")
    if name in ("auto", "cuda"):
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    index = int(name.split(":", 1)[1])
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices are visible")
    return torch.device("cuda", index)
