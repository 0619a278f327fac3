"""BenchConfig: the ``openpose-lite bench`` options; the random models' defaults come from the architecture table."""

from __future__ import annotations

import math
import shlex
import typing
from dataclasses import dataclass
from typing import Literal

from openpose_lite.config import CodecConfig, TopDownConfig
from openpose_lite.devices import PRECISIONS, THREADS_HELP
from openpose_lite.inference.network import BACKENDS
from openpose_lite.architectures import architectures
from openpose_lite.factory import ModelConfig
from openpose_lite.params import CommandLineOptions, Params, option

__all__ = ["BOTTOMUP_ARCHS", "BOX_SOURCES", "BenchConfig", "PROG", "TOPDOWN_ARCHS"]

BoxSource = Literal["gt", "bottomup"]
BOX_SOURCES: tuple[str, ...] = typing.get_args(BoxSource)
BOTTOMUP_ARCHS = _BU_ARCHS = tuple(a.name for a in architectures("bottomup"))
TOPDOWN_ARCHS = _TD_ARCHS = tuple(a.name for a in architectures("topdown"))
_TD = ModelConfig(arch=_TD_ARCHS[0]).settings
# What bu_width_mult and bu_stages size in each bottom-up network, with the published values.
_BU_SIZED = [(a, ModelConfig(arch=a).settings) for a in _BU_ARCHS]
_BU_WIDTHS = ", ".join(f"{a} {s.width_field} {s.size[0]}" for a, s in _BU_SIZED if s.width_field)
_BU_STAGES = ", ".join(f"{a} {s.stages_field} {s.size[1]}" for a, s in _BU_SIZED if s.stages_field)
# Top-down crops: sides a multiple of the deepest trunks' total stride (HRNet's four branches, ResNet's).
TD_INPUT_MULTIPLE = 32
PROG: tuple[str, ...] = ("openpose-lite", "bench")

_CODEC = CodecConfig()
_TD_H, _TD_W = TopDownConfig().input_hw


@dataclass(frozen=True)
class BenchConfig(Params, CommandLineOptions):
    """Everything a benchmark run depends on; each field is an ``openpose-lite bench`` option.

    The random models' sizes are ``None`` until the run resolves them (next to a checkpoint they stay
    ``None``), as are ``device`` ``"auto"``, ``threads`` 0 and ``precision`` (:attr:`BenchResult.config`).
    ``threads`` defaults to 1: on a CPU shared with other jobs, two threads of HRNet's many small convolutions
    mostly wait for each other (2-core box under load: 13 s instead of 0.3 s a crop). A bad value is a
    ValueError naming the field and its flag (``BenchConfig.repeats (--repeats): ...``).
    """

    _section: typing.ClassVar[str] = "BenchConfig"

    people: tuple[int, ...] = option((1, 2, 4, 8, 16, 32), "people per scene, one speed point each", metavar="N")
    image_hw: tuple[int, int] = option((480, 640), "image size", flag="--size", metavar=("H", "W"))
    repeats: int = option(3, "timed calls per point (the median is reported)")
    warmup: int = option(1, "untimed calls per new input shape before the timed ones (the numba kernels are "
                            "compiled before any timing whatever this says)")
    decode_repeats: int = option(20, "timed decodes of the ground-truth maps per point")
    device: str = option("auto", "auto (CUDA when available), cpu, cuda or cuda:N (checked by devices.resolve_device)")
    precision: str = option("fp32", "network precision of both branches: fp32, bf16 (CPUs with avx512_bf16 or "
                                    "amx_bf16, CUDA), fp16 (CUDA), int8 (backend openvino, with --calibration) or auto "
                                    "(the fastest this device runs natively)")
    backend: str = option("torch", "runtime of both networks: torch or openvino (the CPU deployment runtime)")
    calibration: str | None = option(None, "backend openvino, precision int8: images to calibrate on", metavar="DIR")
    threads: int = option(1, f"{THREADS_HELP}; 1 by default here, the repeatable choice on a CPU shared with other "
                             "jobs")
    seed: int = option(0, "seed of the scenes and of the random weights")
    box_source: BoxSource = option("gt", "top-down boxes: the scene's ground truth, or the bottom-up model's people")
    bu_arch: str | None = option(None, f"random bottom-up model: the published network of one of {', '.join(_BU_ARCHS)} "
                                       f"(default: {_BU_ARCHS[0]})")
    td_arch: str | None = option(None, f"random top-down model: the published network of one of {', '.join(_TD_ARCHS)} "
                                       f"(default: {_TD_ARCHS[0]})")
    bu_width_mult: float | None = option(None, f"random bottom-up model: width multiplier (default: the published "
                                               f"network's, {_BU_WIDTHS})")
    bu_stages: int | None = option(None, "random bottom-up model: stages (default: the published network's, "
                                         + _BU_STAGES + ")")
    bu_input_size: int | None = option(None, f"bottom-up network input height, a multiple of {_CODEC.stride} "
                                             f"(default: the checkpoint's, else {_CODEC.input_size})")
    hrnet_width: int | None = option(None, f"random hrnet model: width (default: the published {_TD.width})")
    td_input_hw: tuple[int, int] | None = option(
        None, f"random top-down model: crop size, multiples of {TD_INPUT_MULTIPLE} (default: the architecture's "
              f"published crop, {_TD_H} {_TD_W} for {_TD_ARCHS[0]})", metavar=("H", "W"))
    bu_checkpoint: str | None = option(None, "bottom-up checkpoint (real weights)", metavar="FILE")
    td_checkpoint: str | None = option(None, "top-down checkpoint or public top-down weights (e.g. official HRNet files)",
                                       metavar="FILE")
    ann: str | None = option(None, "COCO-format keypoint annotations: the accuracy section (oracle rows always)",
                             metavar="FILE")
    images: str | None = option(None, "the annotation file's images: model rows (needs checkpoints)", metavar="DIR")
    flip: bool = option(False, "flip test in the accuracy section (both branches)")
    out_dir: str = option("bench_out", "output folder", flag="--out", metavar="DIR")

    def _name(self, field_name: str) -> str:
        return f"{self._section}.{field_name} ({self.flag_of(field_name)})"

    def _check(self) -> None:
        self._require(len(self.people) >= 1 and min(self.people) >= 1, "people", "one or more integers >= 1")
        self._require(min(self.image_hw) >= 16, "image_hw", "(H, W), each at least 16")
        for name, low in (("repeats", 1), ("warmup", 0), ("decode_repeats", 1), ("threads", 0), ("seed", 0)):
            self._require(getattr(self, name) >= low, name, f"an integer >= {low}")
        self._require(self.precision in (*PRECISIONS, "int8"), "precision", f"one of {', '.join(PRECISIONS)}, int8")
        self._require(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}")
        self._check_models()
        self._check_accuracy()

    def _check_models(self) -> None:
        self._require(self.bu_arch in (None, *_BU_ARCHS), "bu_arch", f"one of {', '.join(_BU_ARCHS)}")
        self._require(self.td_arch in (None, *_TD_ARCHS), "td_arch", f"one of {', '.join(_TD_ARCHS)}")
        width, stages, size = self.bu_width_mult, self.bu_stages, self.bu_input_size
        self._require(width is None or (math.isfinite(width) and width > 0), "bu_width_mult", "a number > 0")
        self._require(stages is None or stages >= 1, "bu_stages", "an integer >= 1")
        self._require(size is None or (size >= _CODEC.stride and size % _CODEC.stride == 0), "bu_input_size",
                      f"a positive multiple of the stride {_CODEC.stride}")
        self._require(self.hrnet_width is None or self.hrnet_width >= 1, "hrnet_width", "an integer >= 1")
        m = TD_INPUT_MULTIPLE
        self._require(self.td_input_hw is None or all(v >= m and v % m == 0 for v in self.td_input_hw), "td_input_hw",
                      f"(H, W), positive multiples of {m}")
        for checkpoint, sizes in (("bu_checkpoint", ("bu_arch", "bu_width_mult", "bu_stages")),
                                  ("td_checkpoint", ("td_arch", "hrnet_width", "td_input_hw"))):
            given = [n for n in sizes if getattr(self, n) is not None]
            if getattr(self, checkpoint) is not None and given:
                raise ValueError(f"{', '.join(self._name(n) for n in given)}: size a random-weight model; "
                                 f"{self.flag_of(checkpoint)} brings its own model")

    def _check_accuracy(self) -> None:
        if self.images is None:
            return
        if self.ann is None:
            raise ValueError(f"{self._name('images')}: an image folder needs its annotation file ({self.flag_of('ann')})")
        if self.bu_checkpoint is None and self.td_checkpoint is None:
            raise ValueError(f"{self._name('images')}: model accuracy needs --bu-checkpoint and/or --td-checkpoint "
                             "(without them, --ann alone gives the oracle rows)")
        if self.td_checkpoint is not None and self.box_source != "gt" and self.bu_checkpoint is None:
            raise ValueError(f"{self._name('box_source')}: top-down accuracy on bottom-up boxes needs --bu-checkpoint "
                             "(a random-weight bottom-up model finds nobody)")

    def command_line(self) -> str:
        """``openpose-lite bench ...`` with every option of this config spelled out (None options left out)."""
        return shlex.join([*PROG, *self.command_args()])
