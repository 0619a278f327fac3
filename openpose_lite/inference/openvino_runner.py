"""The OpenVINO runtime: :class:`OpenVinoRunner`, called as :class:`~openpose_lite.inference.network.NetworkRunner`.

The network is converted once and cached (:mod:`~openpose_lite.inference.openvino_model`),
then compiled for OpenVINO's CPU device with ``INFERENCE_NUM_THREADS`` = ``torch.get_num_threads()``
(one thread setting governs both runtimes), the ``LATENCY`` performance hint (one stream: all
threads on one call) or ``THROUGHPUT`` (a batch split between parallel requests), and the precision
of :func:`resolve_openvino_precision`; fp32 sets ``INFERENCE_PRECISION_HINT`` f32, as OpenVINO would
otherwise pick bf16 by itself on a CPU that has it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from openpose_lite import devices
from openpose_lite.inference.calibration import Calibration
from openpose_lite.inference.openvino_model import IrModel, import_openvino, openvino_core, openvino_model

__all__ = ["OPENVINO_PRECISIONS", "PERFORMANCE_HINTS", "OpenVinoRunner", "openvino_native_precisions",
           "resolve_openvino_precision"]

logger = logging.getLogger(__name__)

OPENVINO_PRECISIONS = ("fp32", "bf16", "int8", "auto")
PERFORMANCE_HINTS = ("latency", "throughput")


def openvino_native_precisions() -> set[str]:
    """The precisions OpenVINO's CPU device runs natively here: fp32, bf16 and int8 where present.

    bf16 needs OpenVINO's ``OPTIMIZATION_CAPABILITIES`` to list BF16 (it does on plain AVX-512 CPUs
    too, where it is emulated) and the CPU to compute it natively (its flags, or OpenVINO's default hint).
    """
    ov = import_openvino()
    core = openvino_core()
    capabilities = set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    native = {"fp32"}
    default_bf16 = core.get_property("CPU", "INFERENCE_PRECISION_HINT") == ov.Type.bf16
    # OpenVINO's default hint comes from the CPU itself, not from a oneDNN ISA cap (ONEDNN_MAX_CPU_ISA)
    # below bf16, under which its bf16 kernels fail to run.
    if "BF16" in capabilities and (devices.cpu_computes_bf16() or (default_bf16 and devices.onednn_isa_cap() is None)):
        native.add("bf16")
    if "INT8" in capabilities:
        native.add("int8")
    return native


def resolve_openvino_precision(precision: str, calibration: Calibration | None, file_precision: str = "fp32") -> str:
    """The precision to run under OpenVINO: ``fp32``, ``bf16`` or ``int8``; refuses what cannot run, saying why.

    ``auto``: int8 where a calibration set is given and the CPU has int8 dot products (VNNI, AMX), else
    native bf16, else fp32; logged. int8 without VNNI runs with a smaller gain (a warning where the overflow
    fix is ``disable``). An IR that is int8 (``file_precision``) runs as int8 only.
    """
    if precision not in OPENVINO_PRECISIONS:
        if precision == "fp16":
            raise ValueError("precision fp16: the OpenVINO CPU backend runs fp32, bf16 (where native), int8 or auto; "
                             "fp16 is for CUDA devices (backend torch)")
        raise ValueError(f"precision: expected one of {OPENVINO_PRECISIONS} with backend openvino, got {precision!r}")
    if file_precision == "int8":
        if precision not in ("int8", "auto"):
            raise ValueError(f"precision {precision}: this IR is quantised to int8, so it runs as int8 (or auto) only; "
                             "export an fp32 IR for other precisions")
        if calibration is not None:
            raise ValueError("calibration: this IR is quantised to int8 already; it takes no calibration set")
        return "int8"
    native = openvino_native_precisions()
    if precision == "auto":
        if calibration is not None and "int8" in native and devices.cpu_computes_int8():
            choice, why = "int8", "calibration given and the CPU has int8 dot products (VNNI/AMX)"
        elif "bf16" in native:
            choice, why = "bf16", "the CPU computes bfloat16 natively" + (
                "; the calibration set is unused: no VNNI/AMX int8 instructions" if calibration is not None else "")
        else:
            choice, why = "fp32", "no native bf16 (avx512_bf16, amx_bf16)" + (
                "" if calibration is not None else " and no calibration set for int8")
        logger.info("precision auto (OpenVINO): %s, %s", choice, why)
        return choice
    if precision == "bf16" and "bf16" not in native:
        raise ValueError("precision bf16: this CPU does not compute bfloat16 natively (no avx512_bf16 or amx_bf16; "
                         "OpenVINO would emulate it, slower than fp32); use fp32, or int8 with a calibration set")
    if precision == "int8":
        if calibration is None:
            raise ValueError("precision int8 needs a calibration set: a folder of a few hundred images like those "
                             "the model will run on")
        if "int8" not in native:
            raise ValueError("precision int8: OpenVINO's CPU device lists no INT8 capability on this CPU; use fp32")
        if not devices.cpu_computes_int8():
            # The command line checks its options before a Calibration exists (a folder stands for it).
            if getattr(calibration, "overflow_fix", None) != "disable":
                logger.info("precision int8 on a CPU without VNNI/AMX int8 instructions: it runs, with a smaller gain")
            else:
                logger.warning("precision int8 on a CPU without VNNI/AMX int8 instructions, quantised with overflow "
                               "fix disable: its 16-bit sums of full-range int8 weights saturate (maps further from "
                               "fp32 than on a VNNI CPU); the default overflow fix, first_layer_only, or enable "
                               "avoid most or all of it")
    elif calibration is not None:
        raise ValueError(f"calibration: only precision int8 (or auto) uses a calibration set, not {precision}")
    return precision


def cpu_device(device: str | torch.device | None) -> torch.device:
    """The CPU, the one device backend openvino runs on; another device is a ValueError naming it."""
    name = "auto" if device is None else str(device)
    if name not in ("auto", "cpu"):
        raise ValueError(f"device {name}: backend openvino runs on the CPU (OpenVINO's CPU device); "
                         "use backend torch for CUDA")
    return torch.device("cpu")


class OpenVinoRunner:
    """A network compiled by OpenVINO for the CPU, called like :class:`~openpose_lite.inference.network.NetworkRunner`.

    ``model``: a torch network or an :class:`IrModel` (assigning another converts that one); ``cache``: as
    :func:`~openpose_lite.inference.openvino_model.cache_root` takes it; ``performance``: :data:`PERFORMANCE_HINTS`.
    """

    backend = "openvino"

    def __init__(self, model: nn.Module | IrModel, names: Sequence[str], device: str | torch.device | None = None,
                 precision: str = "fp32", calibration: Calibration | None = None,
                 cache: str | os.PathLike[str] | bool | None = None, performance: str = "latency") -> None:
        if performance not in PERFORMANCE_HINTS:
            raise ValueError(f"performance: expected one of {PERFORMANCE_HINTS}, got {performance!r}")
        if calibration is not None and not isinstance(calibration, Calibration):
            raise ValueError(f"calibration: expected a Calibration, got {type(calibration).__name__}")
        self.device = cpu_device(device)
        self.names = tuple(names)
        self.performance = performance
        self.requested_precision = precision
        self.calibration = calibration
        self.cache = cache
        self.model = model

    @property
    def model(self) -> nn.Module | IrModel:
        return self._model

    @model.setter
    def model(self, model: nn.Module | IrModel) -> None:
        file_precision = model.precision if isinstance(model, IrModel) else "fp32"
        if isinstance(model, IrModel):
            missing = [n for n in self.names if n not in model.names]
            if missing:
                foreign = " (an IR another tool wrote: no openpose_lite settings inside)" if model.foreign else ""
                raise ValueError(f"{model.path}: outputs {list(model.names)}, but the predictor needs {list(self.names)}"
                                 f"{foreign}")
        else:
            model = model.to(self.device).eval()
        precision = resolve_openvino_precision(self.requested_precision, self.calibration, file_precision)
        quantise = precision == "int8" and file_precision != "int8"  # an int8 IR is quantised already
        ov_model, _ = openvino_model(model, self.names, quantise, self.calibration, self.cache)
        self._compile(ov_model, precision)
        self._model = model
        self.precision = precision

    def _compile(self, ov_model: Any, precision: str) -> None:
        ov = import_openvino()
        self.threads = max(1, torch.get_num_threads())
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": self.performance.upper(),
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        # No compiled-blob cache (OpenVINO's CACHE_DIR): compiling the IR takes a fraction of a
        # second, and a blob per precision, hint and thread count would double the disk used.
        self.compiled = openvino_core().compile_model(ov_model, "CPU", config)
        ports = {name: i for i, output in enumerate(self.compiled.outputs) for name in output.get_names()}
        self._ports = [ports[name] for name in self.names]
        self._request = self.compiled.create_infer_request()
        self.requests = 1
        if self.performance == "throughput":
            self.requests = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._queue = ov.AsyncInferQueue(self.compiled, self.requests)
        logger.info("OpenVINO CPU: %s, %s hint, %d threads, %d parallel requests", precision, self.performance,
                    self.threads, self.requests)

    def to_device(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The host batch as a float32 CPU tensor (the predictors slice and mirror it as torch tensors)."""
        return torch.as_tensor(batch, dtype=torch.float32)

    def __call__(self, batch: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """(B, 3, H, W) float32 -> the last stage's ``{name: (B, C, h, w) float32 numpy}``."""
        x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.requests > 1 and len(x) > 1:
            return self._parallel(x)
        result = self._request.infer({0: x}, share_inputs=True)
        return {name: np.asarray(result[port], dtype=np.float32) for name, port in zip(self.names, self._ports)}

    def _parallel(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Throughput: the batch split between parallel requests (one stream each), joined in order."""
        chunks = np.array_split(x, min(self.requests, len(x)))
        results: dict[int, list[np.ndarray]] = {}

        def done(request: Any, index: int) -> None:
            results[index] = [request.get_output_tensor(port).data.copy() for port in self._ports]

        self._queue.set_callback(done)
        for index, chunk in enumerate(chunks):
            self._queue.start_async({0: np.ascontiguousarray(chunk)}, index)
        self._queue.wait_all()
        return {name: np.concatenate([results[i][k] for i in range(len(chunks))]).astype(np.float32, copy=False)
                for k, name in enumerate(self.names)}

    def sync(self) -> None:
        """Calls return when their maps are ready: nothing to wait for."""
