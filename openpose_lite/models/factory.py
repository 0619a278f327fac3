"""Which network a config describes: :class:`ModelConfig` (the ``model`` section) and :func:`build_model`.

The paper's sizes are written here once; the network classes and their ``build_*`` helpers take
their defaults from :data:`PAPER`. This module imports no torch until a model is built, so the
configuration can be read without it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from openpose_lite.params import Params

__all__ = ["ARCHS", "LIGHTWEIGHT", "ModelConfig", "PAPER", "build_model", "build_model_from_config_dict"]

ARCHS = ("vgg19_paf", "mobilenet_paf", "hrnet")
MAX_STAGES = 12
MAX_STAGE_CHANNELS = 1024
MAX_WIDTH_MULT = 4.0
MAX_HRNET_WIDTH = 128
MAX_HRNET_BLOCKS = 8


@dataclass(frozen=True)
class ModelConfig(Params):
    """Network architecture (the ``model`` config section; defaults are the papers').

    ``vgg19_paf`` is the CMU bottom-up model (VGG19 trunk + ``num_stages`` stages of
    ``stage_channels`` channels; Cao et al. 2017); ``width_mult`` scales the trunk for small CPU
    models (1.0 keeps the CMU layout, which the public weights need). ``mobilenet_paf`` is
    Lightweight OpenPose (Osokin 2018: a dilated MobileNetV1 trunk, ``num_stages`` = the initial
    stage + refinement stages, 2 in the paper, of ``stage_channels`` = 128), on the same codec.
    ``hrnet`` is the top-down
    comparison branch with base width ``hrnet_width`` and ``hrnet_blocks`` residual blocks per
    branch (Sun et al. 2019: W32, 4 blocks). ``init``: how the bottom-up networks' convs start:
    ``cmu`` (the published recipes', for a pretrained trunk: vgg19_paf's CPM and stages
    N(0, 0.01^2), mobilenet_paf PyTorch's defaults) or ``kaiming`` (He-normal; for training the
    whole network from scratch with Adam, see models/vgg19_paf.py and models/mobilenet_paf.py).
    """

    _section: typing.ClassVar[str] = "model"

    arch: Literal["vgg19_paf", "mobilenet_paf", "hrnet"] = "vgg19_paf"
    num_stages: int = 6
    stage_channels: int = 128
    width_mult: float = 1.0
    hrnet_width: int = 32
    hrnet_blocks: int = 4
    init: Literal["cmu", "kaiming"] = "cmu"

    def _check(self) -> None:
        # Upper bounds keep a crafted config (or checkpoint) from asking for a network that cannot
        # fit in memory; they sit well above every published model (CMU: 6 x 128, HRNet-W48, 4 blocks).
        self._require(1 <= self.num_stages <= MAX_STAGES, "num_stages", f"an integer in [1, {MAX_STAGES}]")
        self._require(1 <= self.stage_channels <= MAX_STAGE_CHANNELS, "stage_channels",
                      f"an integer in [1, {MAX_STAGE_CHANNELS}]")
        self._require(math.isfinite(self.width_mult) and 0 < self.width_mult <= MAX_WIDTH_MULT, "width_mult",
                      f"a number in (0, {MAX_WIDTH_MULT:g}]")
        self._require(1 <= self.hrnet_width <= MAX_HRNET_WIDTH, "hrnet_width", f"an integer in [1, {MAX_HRNET_WIDTH}]")
        self._require(1 <= self.hrnet_blocks <= MAX_HRNET_BLOCKS, "hrnet_blocks", f"an integer in [1, {MAX_HRNET_BLOCKS}]")


# The papers' networks: the CMU COCO body model and HRNet-W32; Lightweight OpenPose's published
# model (the initial stage and one refinement stage of 128 channels on the full-width trunk).
PAPER = ModelConfig()
LIGHTWEIGHT = ModelConfig(arch="mobilenet_paf", num_stages=2)


def build_model(cfg: ModelConfig) -> Any:
    """An untrained network of the architecture ``cfg`` describes."""
    if cfg.arch == "vgg19_paf":
        from openpose_lite.models.vgg19_paf import build_vgg19_paf

        return build_vgg19_paf(num_stages=cfg.num_stages, stage_channels=cfg.stage_channels,
                               width_mult=cfg.width_mult, init=cfg.init)
    if cfg.arch == "mobilenet_paf":
        from openpose_lite.models.mobilenet_paf import build_mobilenet_paf

        return build_mobilenet_paf(num_refinement_stages=cfg.num_stages - 1, num_channels=cfg.stage_channels,
                                   width_mult=cfg.width_mult, init=cfg.init)
    from openpose_lite.models.hrnet import build_hrnet

    return build_hrnet(width=cfg.hrnet_width, num_blocks=cfg.hrnet_blocks)


def build_model_from_config_dict(model_cfg: Mapping[str, Any]) -> Any:
    """:func:`build_model` of the plain ``config["model"]`` dict of a checkpoint (missing keys: the defaults)."""
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model config must be a dict, got {type(model_cfg).__name__}")
    known = {f.name for f in dataclasses.fields(ModelConfig)}  # the section's keys (not its ClassVars)
    unknown = sorted(set(model_cfg) - known)
    if unknown:
        raise ValueError(f"model config: unknown keys {unknown}; valid keys: {sorted(known)}")
    return build_model(ModelConfig(**dict(model_cfg)))
