"""Which network a config describes: :class:`ModelConfig` (the ``model`` section) and :func:`build_model`.

The architectures themselves, and the sizes of their published models, are rows of the table in
:mod:`openpose_lite.models.architectures`; this module checks a ``model`` section against it and
builds through it. It imports no torch until a model is built, so the configuration can be read
without it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from openpose_lite.models.architectures import ARCHITECTURES, INPUT_NORMS, architecture, resolve
from openpose_lite.params import Params
from openpose_lite.skeleton import Skeleton

__all__ = ["ModelConfig", "build_model", "build_model_from_config_dict", "published_config"]

MAX_STAGES = 12
MAX_STAGE_CHANNELS = 1024
MAX_WIDTH_MULT = 4.0
MAX_HRNET_WIDTH = 128
MAX_HRNET_BLOCKS = 8
RESNET_DEPTHS = (18, 34, 50, 101, 152)


@dataclass(frozen=True)
class ModelConfig(Params):
    """Network architecture (the ``model`` config section); ``arch`` is a row of the architecture table.

    ``num_stages`` / ``stage_channels`` / ``width_mult``: the bottom-up networks' stages (CMU:
    6 x 128 on the full-width VGG19 trunk; Lightweight OpenPose: 2, the initial stage and one
    refinement stage) and trunk width (1.0 keeps the published layout the public weights need;
    small values give fast CPU models); the Stacked Hourglass's ``num_stages`` is its stack count.
    ``hrnet_width`` / ``hrnet_blocks``: HRNet's base width and residual blocks per branch (Sun et
    al. 2019: W32, 4). ``depth``: the ResNet trunk of SimpleBaseline (18, 34, 50, 101, 152).
    ``init``: how the bottom-up networks' convs start: ``cmu`` (the published recipes', for a
    pretrained trunk) or ``kaiming`` (He-normal, for training the whole network from scratch with
    Adam; see models/vgg19_paf.py). ``input_norm``: the input normalisation the network was trained
    with (``cmu``, ``imagenet_rgb``, ``imagenet_bgr``); ``None`` is the architecture's own (the
    table's ``input_norm``); files trained elsewhere set their reference's (the table's layouts).
    """

    _section: typing.ClassVar[str] = "model"

    arch: str = "vgg19_paf"
    num_stages: int = 6
    stage_channels: int = 128
    width_mult: float = 1.0
    hrnet_width: int = 32
    hrnet_blocks: int = 4
    depth: int = 50
    init: Literal["cmu", "kaiming"] = "cmu"
    input_norm: str | None = None

    def _check(self) -> None:
        # Upper bounds keep a crafted config (or checkpoint) from asking for a network that cannot
        # fit in memory; they sit well above every published model (CMU: 6 x 128, HRNet-W48, 4 blocks).
        self._require(self.arch in {a.name for a in ARCHITECTURES}, "arch",
                      f"one of {', '.join(a.name for a in ARCHITECTURES)}")
        self._require(1 <= self.num_stages <= MAX_STAGES, "num_stages", f"an integer in [1, {MAX_STAGES}]")
        self._require(1 <= self.stage_channels <= MAX_STAGE_CHANNELS, "stage_channels",
                      f"an integer in [1, {MAX_STAGE_CHANNELS}]")
        self._require(math.isfinite(self.width_mult) and 0 < self.width_mult <= MAX_WIDTH_MULT, "width_mult",
                      f"a number in (0, {MAX_WIDTH_MULT:g}]")
        self._require(1 <= self.hrnet_width <= MAX_HRNET_WIDTH, "hrnet_width", f"an integer in [1, {MAX_HRNET_WIDTH}]")
        self._require(1 <= self.hrnet_blocks <= MAX_HRNET_BLOCKS, "hrnet_blocks", f"an integer in [1, {MAX_HRNET_BLOCKS}]")
        self._require(self.depth in RESNET_DEPTHS, "depth", f"one of {', '.join(map(str, RESNET_DEPTHS))}")
        self._require(self.input_norm is None or self.input_norm in INPUT_NORMS, "input_norm",
                      f"null (the architecture's own) or one of {', '.join(INPUT_NORMS)}")

    @property
    def resolved_input_norm(self) -> str:
        """The input normalisation the network runs with: ``input_norm``, else its architecture's."""
        return self.input_norm or architecture(self.arch).input_norm


def published_config(arch: str) -> ModelConfig:
    """The ``model`` section of ``arch``'s published network (the table's ``published`` sizes)."""
    return ModelConfig(arch=arch, **dict(architecture(arch).published.get("model", {})))


def build_model(cfg: ModelConfig, skeleton: Skeleton | None = None) -> Any:
    """An untrained network of the architecture ``cfg`` describes, for ``skeleton`` (its layout for the
    network's branch; default: the person skeleton of the branch), which the network carries as
    ``model.skeleton``: codecs, checkpoints and exports read it there."""
    row = architecture(cfg.arch)
    skeleton = skeleton or row.person_skeleton
    model = resolve(row.build)(cfg, skeleton)
    if getattr(model, "skeleton", None) is None:
        model.skeleton = skeleton  # the top-down networks take a keypoint count; the skeleton travels beside it
    return model


def build_model_from_config_dict(model_cfg: Mapping[str, Any], skeleton: Skeleton | None = None) -> Any:
    """:func:`build_model` of the plain ``config["model"]`` dict of a checkpoint (missing keys: the defaults)."""
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model config must be a dict, got {type(model_cfg).__name__}")
    known = {f.name for f in dataclasses.fields(ModelConfig)}  # the section's keys (not its ClassVars)
    unknown = sorted(set(model_cfg) - known)
    if unknown:
        raise ValueError(f"model config: unknown keys {unknown}; valid keys: {sorted(known)}")
    return build_model(ModelConfig(**dict(model_cfg)), skeleton)
