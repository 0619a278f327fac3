"""The architecture table: every network the project builds, loads, trains and runs, one row each.

A row (:class:`Architecture`) says everything the rest of the code asks about a kind of model:
its name (``model.arch``), its branch (bottom-up PAF model or top-down heatmap model), the
function that builds it from the ``model`` config section, the foreign weight files it reads
(one :class:`WeightLayout` each: how to recognise the file, how to convert it, and the input and
pixel conventions its reference code ran it with), the ImageNet classifier its trunk starts from
(``--backbone-weights``), and the settings of its published model. The factory, weight loading,
the training branches, both predictors, the command line, export and the benchmark read this table
and nothing else to tell models apart.

**Adding an architecture** is one model file plus one row here (and its config, docs and tests).
The model file provides the functions the row names:

* ``build(cfg: ModelConfig, skeleton: Skeleton) -> nn.Module``: the network, whose ``forward``
  returns one dict of raw maps per stage, and whose class carries ``arch`` (this row's name) and
  ``stride``;
* per foreign layout, ``detect(keys: frozenset[str]) -> bool`` (the key set of a state dict that is
  already unwrapped, see :mod:`openpose_lite.models.weights`) and ``convert(state, source,
  all_stages) -> (model settings, state dict in our names)``;
* for the ImageNet trunk, ``detect`` likewise and ``load(model, state, source) -> str``, what was
  loaded in words.

Functions are named as ``"module:function"`` references and imported on first use, so this table,
like the ``model`` config section that is checked against it, imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from openpose_lite.geometry import LIGHTWEIGHT_REPORT_SHIFT
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "BackboneLayout",
    "Branch",
    "INPUT_NORMS",
    "WeightLayout",
    "architecture",
    "architecture_of",
    "architectures",
    "resolve",
]

Branch = Literal["bottomup", "topdown"]
BRANCHES: tuple[str, ...] = ("bottomup", "topdown")

# The input normalisations a network may have been trained with (preprocess.INPUT_NORMS computes
# them): CMU's BGR ``pixel / 256 - 0.5``, and torchvision's ImageNet mean and std on RGB or, as the
# SimpleBaseline reference's ResNet files were trained, on BGR pixels.
INPUT_NORMS: tuple[str, ...] = ("cmu", "imagenet_rgb", "imagenet_bgr")


def resolve(ref: str) -> Callable[..., Any]:
    """The function a ``"package.module:function"`` reference names (imported on first use)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class WeightLayout:
    """A foreign weight file an architecture reads: another project's names for its tensors.

    ``detect`` and ``convert`` are references (see the module docstring); ``settings`` is the
    config delta (``{section: {key: value}}``) that runs the file as its reference code did: its
    input normalisation (``model.input_norm``), pixel and cell convention (``topdown.convention``)
    or where it reports keypoints (``codec.report_shift``). ``reference`` cites where those facts
    come from.
    """

    name: str
    what: str
    detect: str
    convert: str
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reference: str = ""


@dataclass(frozen=True)
class BackboneLayout:
    """The ImageNet classifier a trunk starts from (``--backbone-weights``): ``what`` names the file in words."""

    what: str
    detect: str
    load: str


@dataclass(frozen=True)
class Architecture:
    """One row of the table; see the module docstring.

    ``settings`` names the ``model`` config fields the network reads (for its description);
    ``published`` is the config delta of the published model (model sizes and codec settings),
    which a config naming this architecture starts from; ``input_norm`` the input normalisation of
    the networks we train.
    """

    name: str
    branch: Branch
    title: str
    build: str
    settings: tuple[str, ...]
    input_norm: str
    published: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    layouts: tuple[WeightLayout, ...] = ()
    backbone: BackboneLayout | None = None

    def __post_init__(self) -> None:
        if self.branch not in BRANCHES:
            raise ValueError(f"architecture {self.name}: branch {self.branch!r} is not one of {BRANCHES}")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"architecture {self.name}: input_norm {self.input_norm!r} is not one of {INPUT_NORMS}")

    @property
    def person_skeleton(self) -> Skeleton:
        """The skeleton of person models of this branch: the CMU channel order bottom-up, COCO's top-down."""
        return OPENPOSE_18 if self.branch == "bottomup" else COCO_17

    def layout(self, skeleton: Skeleton) -> Skeleton:
        """``skeleton`` as this branch's networks carry it: with a background channel and a limb tree
        bottom-up (COCO's person: the CMU layout), as annotated top-down."""
        return skeleton.bottomup_layout() if self.branch == "bottomup" else skeleton.annotation_layout()

    def describe(self, cfg: Any) -> str:
        """The network of a ``model`` config section in words, e.g. ``hrnet (hrnet_width 32, hrnet_blocks 4)``."""
        return f"{self.name} ({', '.join(f'{k} {getattr(cfg, k):g}' for k in self.settings)})"


_PERSON = "COCO person keypoints"
_HRNET_REPO = "deep-high-resolution-net.pytorch"

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        name="vgg19_paf", branch="bottomup", title="OpenPose: VGG19 trunk + PAF stages (Cao et al. 2017)",
        build="openpose_lite.models.vgg19_paf:build", settings=("num_stages", "stage_channels", "width_mult"),
        input_norm="cmu",
        layouts=(
            WeightLayout("cmu_named", "the CMU COCO body model (pose_iter_440000) in the PyTorch ports' Caffe names",
                         "openpose_lite.models.cmu_weights:is_cmu_named", "openpose_lite.models.cmu_weights:convert_cmu",
                         reference="CMU caffe model pose_iter_440000; input BGR pixel / 256 - 0.5"),
            WeightLayout("cmu_numbered", "the CMU COCO body model in the PyTorch ports' numbered Sequential keys",
                         "openpose_lite.models.cmu_weights:is_cmu_numbered", "openpose_lite.models.cmu_weights:convert_cmu",
                         reference="CMU caffe model pose_iter_440000; input BGR pixel / 256 - 0.5"),
            WeightLayout("openpose_lite_state_dict", "a bare openpose_lite VGG19 state dict (no config inside)",
                         "openpose_lite.models.vgg19_paf:is_bare_state_dict",
                         "openpose_lite.models.vgg19_paf:convert_bare_state_dict"),
        ),
        backbone=BackboneLayout("torchvision's ImageNet vgg19 file (vgg19-dcbb9e9d.pth)",
                                "openpose_lite.models.cmu_weights:is_torchvision_vgg19",
                                "openpose_lite.models.imagenet_weights:load_vgg19_imagenet"),
    ),
    Architecture(
        name="mobilenet_paf", branch="bottomup", title="Lightweight OpenPose: dilated MobileNetV1 + PAF stages (Osokin 2018)",
        build="openpose_lite.models.mobilenet_paf:build", settings=("num_stages", "stage_channels", "width_mult"),
        input_norm="cmu", published={"model": {"num_stages": 2}},
        layouts=(
            WeightLayout("lightweight", "a Lightweight OpenPose checkpoint (checkpoint_iter_370000.pth)",
                         "openpose_lite.models.mobilenet_weights:is_lightweight_layout",
                         "openpose_lite.models.mobilenet_weights:convert_lightweight",
                         settings={"codec": {"report_shift": LIGHTWEIGHT_REPORT_SHIFT}},
                         reference="lightweight-human-pose-estimation.pytorch: val.py, convert_to_coco_format "
                                   "(keypoints reported half a pixel on); input BGR pixel / 256 - 0.5 (normalize)"),
        ),
        backbone=BackboneLayout("the ImageNet MobileNetV1 file (mobilenet_sgd_68.848.pth.tar)",
                                "openpose_lite.models.mobilenet_weights:is_mobilenet_imagenet_layout",
                                "openpose_lite.models.mobilenet_weights:load_mobilenet_backbone"),
    ),
    Architecture(
        name="hrnet", branch="topdown", title="HRNet (Sun et al. 2019)",
        build="openpose_lite.models.hrnet:build", settings=("hrnet_width", "hrnet_blocks"), input_norm="imagenet_rgb",
        layouts=(
            WeightLayout("hrnet_official", f"an official pose-HRNet file ({_PERSON}, e.g. pose_hrnet_w32_256x192.pth)",
                         "openpose_lite.models.hrnet:is_hrnet_official", "openpose_lite.models.hrnet:convert_hrnet",
                         settings={"topdown": {"convention": "hrnet"}, "model": {"input_norm": "imagenet_rgb"}},
                         reference=f"{_HRNET_REPO}: experiments/coco/hrnet/*.yaml (COLOR_RGB: true), tools/test.py "
                                   "(Normalize), lib/dataset/JointsDataset.py, lib/core/inference.py"),
        ),
        backbone=BackboneLayout("the official ImageNet HRNet file (e.g. hrnet_w32-36af842e.pth)",
                                "openpose_lite.models.imagenet_weights:is_hrnet_imagenet",
                                "openpose_lite.models.imagenet_weights:load_hrnet_imagenet"),
    ),
    Architecture(
        name="simple_baseline", branch="topdown", title="SimpleBaseline: ResNet + deconvolutions (Xiao et al. 2018)",
        build="openpose_lite.models.simple_baseline:build", settings=("depth",), input_norm="imagenet_rgb",
        published={"model": {"depth": 50}},
        layouts=(
            WeightLayout("pose_resnet_official", f"an official SimpleBaseline file ({_PERSON}, e.g. "
                         "pose_resnet_50_256x192.pth)", "openpose_lite.models.simple_baseline:is_pose_resnet_official",
                         "openpose_lite.models.simple_baseline:convert_pose_resnet_official",
                         settings={"topdown": {"convention": "hrnet"}, "model": {"input_norm": "imagenet_bgr"}},
                         reference=f"{_HRNET_REPO}: experiments/coco/resnet/*.yaml (COLOR_RGB: false: the network sees "
                                   "BGR), lib/dataset/JointsDataset.py __getitem__, tools/test.py (Normalize)"),
            WeightLayout("pose_resnet_mmpose", f"mmpose's SimpleBaseline ({_PERSON}, e.g. res50_coco_256x192)",
                         "openpose_lite.models.simple_baseline:is_pose_resnet_mmpose",
                         "openpose_lite.models.simple_baseline:convert_pose_resnet_mmpose",
                         settings={"topdown": {"convention": "hrnet"}, "model": {"input_norm": "imagenet_rgb"}},
                         reference="mmpose: PoseDataPreprocessor (bgr_to_rgb, ImageNet mean/std x 255), "
                                   "bbox_xyxy2cs + TopdownAffine (the HRNet reference's crop), MSRAHeatmap.decode "
                                   "(cell j at crop px 4j), flip_heatmaps (shift one cell)"),
        ),
        backbone=BackboneLayout("torchvision's ImageNet resnet file of the model's depth (e.g. resnet50-0676ba61.pth)",
                                "openpose_lite.models.simple_baseline:is_torchvision_resnet",
                                "openpose_lite.models.simple_baseline:load_imagenet_resnet"),
    ),
    Architecture(
        name="hourglass", branch="topdown", title="Stacked Hourglass (Newell et al. 2016), as mmpose builds it",
        build="openpose_lite.models.hourglass:build", settings=("num_stages",), input_norm="imagenet_rgb",
        published={"model": {"num_stages": 1}, "topdown": {"input_hw": [256, 256], "heatmap_hw": [64, 64]}},
        layouts=(
            WeightLayout("hourglass_mmpose", f"mmpose's Hourglass ({_PERSON}, e.g. hourglass52_coco_256x256: one stack)",
                         "openpose_lite.models.hourglass:is_hourglass_mmpose",
                         "openpose_lite.models.hourglass:convert_hourglass_mmpose",
                         settings={"topdown": {"convention": "hrnet", "input_hw": [256, 256], "heatmap_hw": [64, 64]},
                                   "model": {"input_norm": "imagenet_rgb"}},
                         reference="mmpose: configs td-hm_hourglass52_8xb32-210e_coco-256x256.py (256x256, one stack), "
                                   "PoseDataPreprocessor (bgr_to_rgb), TopdownAffine, MSRAHeatmap.decode"),
        ),
    ),
)

_BY_NAME: dict[str, Architecture] = {a.name: a for a in ARCHITECTURES}
if len(_BY_NAME) != len(ARCHITECTURES):
    raise ValueError("architecture names must be unique")


def architecture(name: str) -> Architecture:
    """The row of ``name``; ValueError listing the known names otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(_BY_NAME)}") from None


def architectures(branch: Branch | None = None) -> tuple[Architecture, ...]:
    """Every row, or those of one branch, in table order."""
    return tuple(a for a in ARCHITECTURES if branch is None or a.branch == branch)


def architecture_of(model: Any) -> Architecture | None:
    """The row of a built network (its class's ``arch``); ``None`` for a module of no architecture (a test double)."""
    name = getattr(model, "arch", None)
    if isinstance(name, str) and name in _BY_NAME:
        return _BY_NAME[name]
    return None
