"""Each network's settings: one frozen dataclass per network, named by its row of the architecture table,
its defaults the published network's (the ``model`` section: :class:`~openpose_lite.factory.ModelConfig`).

Upper bounds keep a crafted config (or checkpoint) from asking for a network that cannot fit in
memory; they sit well above every published model (CMU: 6 x 128, HRNet-W48, 4 blocks).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass

from openpose_lite.params import Params

__all__ = ["Body25Settings", "HRNetSettings", "HourglassSettings", "MobileNetPafSettings", "NetworkSettings", "PafSettings",
           "RESNET_DEPTHS", "SimpleBaselineSettings"]

MAX_STAGES = 12
MAX_STAGE_CHANNELS = 1024
MAX_WIDTH_MULT = 4.0
MAX_HRNET_WIDTH = 128
MAX_HRNET_BLOCKS = 8
RESNET_DEPTHS = (18, 34, 50, 101, 152)


@dataclass(frozen=True)
class NetworkSettings(Params):
    """The base of every network's settings: its fields are ``model`` keys. ``width_field`` (a factor
    in (0, MAX_WIDTH_MULT]) and ``stages_field`` (a count in [1, MAX_STAGES]) name the fields that
    size a smaller network of the same kind (``bench --bu-width-mult/--bu-stages``), None: none."""

    _section: typing.ClassVar[str] = "model"
    width_field: typing.ClassVar[str | None] = None
    stages_field: typing.ClassVar[str | None] = None

    def _check(self) -> None:
        width, stages = self.size
        if stages is not None:
            self._require(1 <= stages <= MAX_STAGES, self.stages_field, f"an integer in [1, {MAX_STAGES}]")
        if width is not None:
            self._require(math.isfinite(width) and 0 < width <= MAX_WIDTH_MULT, self.width_field,
                          f"a number in (0, {MAX_WIDTH_MULT:g}]")

    @property
    def size(self) -> tuple[float | None, int | None]:
        """The values of (``width_field``, ``stages_field``), None for no such field."""
        return tuple(None if name is None else getattr(self, name)  # type: ignore[return-value]
                     for name in (self.width_field, self.stages_field))


@dataclass(frozen=True)
class PafSettings(NetworkSettings):
    """``vgg19_paf``: the stages the network returns, the first one and its refinements (CMU: 6),
    the width of their convs (CMU: 128), and ``width_mult``, the trunk's width (1.0 keeps the
    published layout the public weights need; small values give fast CPU models)."""

    width_field: typing.ClassVar[str | None] = "width_mult"
    stages_field: typing.ClassVar[str | None] = "num_stages"
    num_stages: int = 6
    stage_channels: int = 128
    width_mult: float = 1.0

    def _check(self) -> None:
        self._require(1 <= self.stage_channels <= MAX_STAGE_CHANNELS, "stage_channels",
                      f"an integer in [1, {MAX_STAGE_CHANNELS}]")


@dataclass(frozen=True)
class MobileNetPafSettings(PafSettings):
    """``mobilenet_paf``: as :class:`PafSettings`, with Lightweight OpenPose's two stages (initial + one refinement)."""

    num_stages: int = 2


@dataclass(frozen=True)
class Body25Settings(NetworkSettings):
    """``body25_paf``: CMU's BODY_25 network, its PAF stages then its heatmap stages (CMU: 4 and 2), and
    ``width_scale``, the factor on every width, trunk and stages alike (1.0 is CMU's network; small values
    give fast CPU models)."""

    width_field: typing.ClassVar[str | None] = "width_scale"
    stages_field: typing.ClassVar[str | None] = "paf_stages"
    paf_stages: int = 4
    heatmap_stages: int = 2
    width_scale: float = 1.0

    def _check(self) -> None:
        self._require(1 <= self.heatmap_stages <= MAX_STAGES, "heatmap_stages", f"an integer in [1, {MAX_STAGES}]")


@dataclass(frozen=True)
class HRNetSettings(NetworkSettings):
    """``hrnet``: the base width C of the branches (C, 2C, 4C, 8C) and the residual blocks per
    branch and module (Sun et al. 2019: W32, 4)."""

    width: int = 32
    blocks: int = 4

    def _check(self) -> None:
        self._require(1 <= self.width <= MAX_HRNET_WIDTH, "width", f"an integer in [1, {MAX_HRNET_WIDTH}]")
        self._require(1 <= self.blocks <= MAX_HRNET_BLOCKS, "blocks", f"an integer in [1, {MAX_HRNET_BLOCKS}]")


@dataclass(frozen=True)
class SimpleBaselineSettings(NetworkSettings):
    """``simple_baseline``: the depth of its ResNet trunk (Xiao et al. 2018 publish 50, 101, 152)."""

    depth: int = 50

    def _check(self) -> None:
        self._require(self.depth in RESNET_DEPTHS, "depth", f"one of {', '.join(map(str, RESNET_DEPTHS))}")


@dataclass(frozen=True)
class HourglassSettings(NetworkSettings):
    """``hourglass``: the hourglasses in sequence, each supervised (mmpose's COCO hourglass52: one)."""

    stages_field: typing.ClassVar[str | None] = "stacks"
    stacks: int = 1
