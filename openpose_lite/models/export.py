"""Export a pose network to ONNX or TorchScript (the network only: no pre- or post-processing).

Both exports take ``images`` (B, 3, H, W) and return the **last stage only**, as a tuple in
the order of the model's output dict: for :class:`VGG19PafNet` ``(pafs (B, 2L, H/8, W/8),
heatmaps (B, K+1, H/8, W/8))``; ONNX names the outputs ``"pafs"`` and ``"heatmaps"``.
The ONNX graph has dynamic batch, height and width axes; the TorchScript module is traced
from convolutions only, so it runs at any input size too. The example size that traces it is
bounded as a network input at inference is (:class:`~openpose_lite.preprocess.InputBound`:
longest side, pixels): tracing runs the network on it, and 8000 x 8000 takes tens of GB.

Files are written atomically: to a temporary file beside the target, then ``os.replace``; a
destination that is there and is not a regular file (a FIFO, a device) is refused.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openpose_lite.io import atomic_write_path, check_destination
from openpose_lite.preprocess import DEFAULT_INPUT_BOUND, InputBound

logger = logging.getLogger(__name__)


class LastStageOutputs(nn.Module):
    """Wraps a model returning per-stage dicts: images (B, 3, H, W) -> last stage's tensors as a tuple.

    ``names`` fixes the order of the returned tensors (keys of the last stage's dict).
    """

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        last = self.model(images)[-1]
        return tuple(last[name] for name in self.names)


def check_input_hw(input_hw: tuple[int, int], stride: int = 1,
                   bound: InputBound = DEFAULT_INPUT_BOUND) -> tuple[int, int]:
    """(h, w) as ints; a ValueError unless both are at least the model's ``stride`` (its output cell)
    and the size is within ``bound`` (longest side ``bound.max_side``, ``bound.max_pixels`` pixels:
    the network input's limits at inference)."""
    if len(input_hw) != 2 or any(int(v) < max(1, stride) for v in input_hw):
        raise ValueError(f"input_hw must be (height, width) of integers >= {max(1, stride)} (the model's stride), "
                         f"got {tuple(input_hw)!r}")
    h, w = int(input_hw[0]), int(input_hw[1])
    if max(h, w) > bound.max_side or h * w > bound.max_pixels:
        raise ValueError(f"input_hw {h}x{w} ({h * w} pixels) is beyond the network input's limits (longest side "
                         f"<= {bound.max_side}, <= {bound.max_pixels} pixels); the example size only traces the "
                         "network, which then runs at any size")
    return h, w


def onnx_opsets() -> tuple[int, int]:
    """The lowest and highest ONNX opset the TorchScript-based exporter of the installed torch writes."""
    try:
        from torch.onnx import _constants  # private, hence the fallback: torch 2.x's documented range

        return int(_constants.ONNX_MIN_OPSET), int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                                                           _constants.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):
        return 7, 17


@contextmanager
def _exporting(model: nn.Module) -> Iterator[None]:
    """Eval mode (the caller's mode restored afterwards), without the exporters' deprecation notices (the
    TorchScript-based exporters announce theirs; the files they write are what the tests check)."""
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            yield
    finally:
        model.train(was_training)


def _wrap_last_stage(model: nn.Module, input_hw: tuple[int, int],
                     bound: InputBound) -> tuple[LastStageOutputs, torch.Tensor]:
    """The last-stage wrapper and a zero example input (1, 3, H, W) on the model's device."""
    h, w = check_input_hw(input_hw, int(getattr(model, "stride", 1)), bound)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    example = torch.zeros(1, 3, h, w, device=device)
    try:
        with torch.no_grad():
            outputs = model(example)
    except RuntimeError as exc:  # a size the architecture cannot take (pooling down to nothing, ...)
        raise ValueError(f"input_hw {h}x{w}: the model cannot run on it ({str(exc).splitlines()[0]})") from None
    last = outputs[-1] if isinstance(outputs, list) and outputs else None
    if not isinstance(last, dict) or not all(isinstance(v, torch.Tensor) for v in last.values()):
        raise ValueError(f"export needs a model returning a list with one dict of tensors per stage, got {type(outputs).__name__}")
    return LastStageOutputs(model, tuple(last.keys())), example


METADATA_KEY = "openpose_lite"


def export_metadata(model: nn.Module, config: Mapping[str, Any] | None) -> str:
    """The JSON an export carries under :data:`METADATA_KEY`: the config and the network's skeleton, so the
    file says what its channels are (ONNX ``metadata_props``, TorchScript ``_extra_files``)."""
    skeleton = getattr(model, "skeleton", None)
    return json.dumps({"config": dict(config) if config is not None else None,
                       "skeleton": skeleton.to_dict() if skeleton is not None else None})


def export_onnx(model: nn.Module, path: str | Path, input_hw: tuple[int, int] = (368, 368), opset: int = 17,
                config: Mapping[str, Any] | None = None, input_bound: InputBound = DEFAULT_INPUT_BOUND) -> Path:
    """Write ``model``'s last stage as ONNX: input ``images`` (B, 3, H, W), outputs named after its dict keys.

    ``input_hw`` is the example size used for tracing, within ``input_bound`` (:func:`check_input_hw`);
    batch, height and width stay dynamic. The config and skeleton are stored as the model's
    metadata (:func:`export_metadata`). Uses the TorchScript-based exporter (``dynamo=False``), which
    needs no extra packages; ``opset`` must be one it writes (:func:`onnx_opsets`).
    """
    low, high = onnx_opsets()
    if not isinstance(opset, int) or not low <= opset <= high:
        raise ValueError(f"opset {opset!r}: the ONNX exporter of torch {torch.__version__} writes opsets {low} to {high}")
    check_destination(path)
    with _exporting(model):
        wrapper, example = _wrap_last_stage(model, input_hw, input_bound)
        output_names = list(wrapper.names)
        dynamic_axes = {"images": {0: "batch", 2: "height", 3: "width"}}
        for name in output_names:
            dynamic_axes[name] = {0: "batch", 2: "map_height", 3: "map_width"}

        def write(tmp: str) -> None:
            torch.onnx.export(wrapper, (example,), tmp, input_names=["images"], output_names=output_names,
                              opset_version=opset, dynamic_axes=dynamic_axes, dynamo=False)
            import onnx  # torch's exporter needs it too

            proto = onnx.load(tmp)
            onnx.helper.set_model_props(proto, {METADATA_KEY: export_metadata(model, config)})
            onnx.save(proto, tmp)

        out = atomic_write_path(path, write)
    logger.info("exported ONNX (opset %d, outputs %s) to %s", opset, output_names, out)
    return out


def export_torchscript(model: nn.Module, path: str | Path, input_hw: tuple[int, int] = (368, 368),
                       config: Mapping[str, Any] | None = None, input_bound: InputBound = DEFAULT_INPUT_BOUND) -> Path:
    """Write ``model``'s last stage as a traced TorchScript module: images (B, 3, H, W) -> tuple of maps.

    Reload with ``torch.jit.load(path)``; outputs are in the order of the model's dict keys
    (``(pafs, heatmaps)`` for :class:`VGG19PafNet`). The config and skeleton travel as the extra
    file ``openpose_lite.json`` (:func:`export_metadata`; ``torch.jit.load(path, _extra_files=...)``).
    ``input_hw`` is the tracing example's size, within ``input_bound`` (:func:`check_input_hw`).
    """
    check_destination(path)
    with _exporting(model):
        wrapper, example = _wrap_last_stage(model, input_hw, input_bound)
        with torch.no_grad():
            # The network has no data-dependent control flow, so the tracer's own re-run
            # check only costs time; equality with eager mode is covered by the tests.
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
        extra = {f"{METADATA_KEY}.json": export_metadata(model, config)}
        out = atomic_write_path(path, lambda tmp: torch.jit.save(traced, tmp, _extra_files=extra))
    logger.info("exported TorchScript (outputs %s) to %s", list(wrapper.names), out)
    return out
