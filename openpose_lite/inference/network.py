"""Running a network for inference: the runtimes behind the predictors, and the torch one.

Both predictors get their runtime (backend) from :func:`make_runner` and call it the same way: a
(B, 3, H, W) float32 batch in, the last stage's maps ``{name: (B, C, h, w) float32 numpy}`` out, with
``device``, ``precision``, ``to_device``, ``sync`` and ``model`` beside. Two backends:

* ``torch`` (:class:`NetworkRunner`): the model on its device, run in eval mode (the caller's mode
  restored after each call) under ``torch.inference_mode``, with autocast for bf16/fp16;
* ``openvino`` (:class:`~openpose_lite.inference.openvino_runner.OpenVinoRunner`): the model
  converted once (cached on disk) and compiled for the CPU, in fp32, bf16 or int8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from openpose_lite.devices import autocast_dtype, resolve_device, resolve_precision
from openpose_lite.inference.calibration import Calibration
from openpose_lite.inference.openvino_model import IrModel

__all__ = ["BACKENDS", "NetworkRunner", "check_runtime", "last_stage", "make_runner"]

BACKENDS = ("torch", "openvino")


def last_stage(outputs: Any, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The last stage's ``{name: tensor}`` of a model's output (a list of per-stage dicts, the models' contract)."""
    if isinstance(outputs, Mapping):  # a plain module returning one dict (test doubles) is one stage
        outputs = [outputs]
    last = outputs[-1] if isinstance(outputs, (list, tuple)) and outputs else None
    if not isinstance(last, Mapping) or any(n not in last for n in names):
        raise ValueError(f"model output: expected a list of per-stage dicts with {list(names)} tensors, "
                         f"got {type(outputs).__name__}")
    return {n: last[n] for n in names}


class NetworkRunner:
    """A torch model ready for inference on ``device`` (``None``/``"auto"``: CUDA when present), in
    ``precision`` (:func:`~openpose_lite.devices.resolve_precision`); the maps always come back float32."""

    backend = "torch"

    def __init__(self, model: nn.Module, names: Sequence[str], device: str | torch.device | None = None,
                 precision: str = "fp32") -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.names = tuple(names)
        self.model = model.to(self.device).eval()

    def to_device(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A host batch on the runner's device (float32; autocast lowers the precision inside the network)."""
        return torch.as_tensor(batch).to(self.device, non_blocking=True)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        was_training = self.model.training
        self.model.eval()
        dtype = autocast_dtype(self.precision)
        try:
            with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                outputs = last_stage(self.model(batch), self.names)
            maps = {n: t.float().cpu().numpy() for n, t in outputs.items()}
        finally:
            self.model.train(was_training)
        return maps

    def sync(self) -> None:
        """Wait for queued CUDA work so phase timings are honest (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def check_runtime(backend: str, precision: str, device: str | torch.device | None = None,
                  calibration: Any = None, file_precision: str = "fp32") -> str:
    """The one check of a runtime's options: the precision ``backend`` runs on ``device`` (torch:
    :func:`~openpose_lite.devices.resolve_precision`, openvino: its ``resolve_openvino_precision``), or a ValueError
    saying why not. The command line calls it before reading any weights; the runners check the same way."""
    if backend == "torch":
        if precision == "int8":
            raise ValueError("precision int8: quantised models run with backend openvino (OpenVINO + NNCF)")
        if calibration is not None:
            raise ValueError("calibration: only backend openvino quantises (precision int8)")
        return resolve_precision(precision, resolve_device(device))
    if backend == "openvino":
        from openpose_lite.inference.openvino_model import import_nncf, import_openvino
        from openpose_lite.inference.openvino_runner import cpu_device, resolve_openvino_precision

        cpu_device(device)
        import_openvino()
        if precision == "int8" or (precision == "auto" and calibration is not None):
            import_nncf()
        return resolve_openvino_precision(precision, calibration, file_precision)
    raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")


def make_runner(model: nn.Module | IrModel, names: Sequence[str], device: str | torch.device | None = None,
                precision: str = "fp32", *, backend: str = "torch",
                calibration: Calibration | None = None, cache: Any = None,
                performance: str = "latency") -> NetworkRunner | Any:
    """The runner of ``model`` on ``backend`` (:data:`BACKENDS`): what the predictors call. ``calibration``,
    ``cache`` and ``performance`` are :class:`~openpose_lite.inference.openvino_runner.OpenVinoRunner`'s,
    the only one an :class:`~openpose_lite.inference.openvino_model.IrModel` runs on."""
    if backend == "torch":
        if isinstance(model, IrModel):
            raise ValueError(f"{model.path}: an OpenVINO IR runs with backend openvino, not torch")
        if performance != "latency":
            raise ValueError(f"performance {performance}: the throughput hint is backend openvino's")
        return NetworkRunner(model, names, device, check_runtime(backend, precision, device, calibration))
    if backend == "openvino":
        from openpose_lite.inference.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(model, names, device, precision, calibration=calibration, cache=cache,
                              performance=performance)
    raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
