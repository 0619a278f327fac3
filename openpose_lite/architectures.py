"""The architecture table: every network the project builds, loads, trains and runs, one row
(:class:`Architecture`) each. The rest of the code reads this table and nothing else to tell models apart.

**Adding an architecture** is one model file, its settings class (:mod:`openpose_lite.network_settings`)
and one row here. The row names the model file's functions as ``"module:function"`` references
(:func:`resolve`, imported on first use, so this table imports no torch):

* ``build(cfg: ModelConfig, skeleton: Skeleton) -> nn.Module``: the network, whose ``forward``
  returns one dict of raw maps per stage, and whose class carries ``arch`` (this row's name) and
  ``stride``;
* per foreign layout, ``detect(keys: frozenset[str]) -> bool`` (the key set of a state dict that is
  already unwrapped, see :mod:`openpose_lite.models.weights`) and ``convert(state, source,
  all_stages) -> (its settings object, state dict in our names)``;
* for the ImageNet trunk, ``detect`` likewise and ``load(model, state, source) -> str``, what was
  loaded in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openpose_lite.branches import Branch, branch, resolve
from openpose_lite.cmu_skeletons import BODY_25, MPI_15
from openpose_lite.geometry import LIGHTWEIGHT_REPORT_SHIFT
from openpose_lite.network_settings import (
    Body25Settings,
    HourglassSettings,
    HRNetSettings,
    MobileNetPafSettings,
    NetworkSettings,
    PafSettings,
    SimpleBaselineSettings,
)
from openpose_lite.skeleton import Skeleton

__all__ = ["ARCHITECTURES", "Architecture", "BackboneLayout", "INPUT_NORMS", "WeightLayout", "architecture",
           "architecture_of", "architectures", "resolve"]

# The input normalisations a network may have been trained with (preprocess.INPUT_NORMS computes
# them): CMU's BGR ``pixel / 256 - 0.5``, and torchvision's ImageNet mean and std on RGB or, as the
# SimpleBaseline reference's ResNet files were trained, on BGR pixels.
INPUT_NORMS: tuple[str, ...] = ("cmu", "imagenet_rgb", "imagenet_bgr")


@dataclass(frozen=True)
class WeightLayout:
    """A foreign weight file an architecture reads: another project's names for its tensors.

    ``settings``: the config delta (``{section: {key: value}}``) that runs the file as its reference
    code did (input norm, pixel convention, report shift), ``reference`` citing where those come from.
    ``skeleton``: the keypoints of a file of another skeleton than its branch's person (BODY_25, MPI);
    detectors also see each key's shape (``keys.shapes``).
    """

    name: str
    what: str
    detect: str
    convert: str
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reference: str = ""
    skeleton: Skeleton | None = None


@dataclass(frozen=True)
class BackboneLayout:
    """The ImageNet classifier a trunk starts from (``--backbone-weights``): ``what`` names the file in words."""

    what: str
    detect: str
    load: str


@dataclass(frozen=True)
class Architecture:
    """One row of the table. ``published``: the config delta (``{section: {key: value}}``) of the published
    model beyond its settings' defaults (e.g. its crop size), which a config naming it starts from;
    ``input_norm``: the input normalisation of the networks we train."""

    name: str
    branch: str
    title: str
    build: str
    settings: type[NetworkSettings]
    input_norm: str
    published: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    layouts: tuple[WeightLayout, ...] = ()
    backbone: BackboneLayout | None = None

    def __post_init__(self) -> None:
        branch(self.branch)  # an unknown branch is refused, naming the known ones
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"architecture {self.name}: input_norm {self.input_norm!r} is not one of {INPUT_NORMS}")

    @property
    def branch_row(self) -> Branch:
        """The row of :mod:`openpose_lite.branches` that ``branch`` names."""
        return branch(self.branch)

    def describe(self, cfg: Any) -> str:
        """The network of a ``model`` config section in words, e.g. ``hrnet (width 32, blocks 4)``."""
        return f"{self.name} ({', '.join(f'{k} {v:g}' for k, v in vars(cfg.settings).items())})"


_PERSON = "COCO person keypoints"
_HRNET_REPO = "deep-high-resolution-net.pytorch"

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        name="vgg19_paf", branch="bottomup", title="OpenPose: VGG19 trunk + PAF stages (Cao et al. 2017)",
        build="openpose_lite.models.vgg19_paf:build", settings=PafSettings, input_norm="cmu",
        layouts=(
            WeightLayout("cmu_mpi", "CMU's MPI body model (pose/mpi/pose_iter_160000.caffemodel, or a PyTorch file in "
                         "its Caffe layer names): COCO's layer names with MPI's shapes",
                         "openpose_lite.models.cmu_caffe_weights:is_mpi_named", "openpose_lite.models.cmu_caffe_weights:convert_mpi",
                         reference="CMU openpose models/pose/mpi/pose_deploy_linevec.prototxt; input BGR pixel / 256 - 0.5",
                         skeleton=MPI_15),
            WeightLayout("cmu_named", "the CMU COCO body model (pose/coco/pose_iter_440000.caffemodel, or the PyTorch "
                         "ports' file in its Caffe names)",
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
        build="openpose_lite.models.mobilenet_paf:build", settings=MobileNetPafSettings, input_norm="cmu",
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
        name="body25_paf", branch="bottomup", title="OpenPose BODY_25: PReLU dense-block PAF stages, then heatmap "
                                                     "stages (Cao et al. 2019)",
        build="openpose_lite.models.cmu_caffe:build", settings=Body25Settings, input_norm="cmu",
        layouts=(
            WeightLayout("cmu_body25", "CMU's BODY_25 model (pose/body_25/pose_iter_584000.caffemodel, or a PyTorch "
                         "file in its Caffe layer names)", "openpose_lite.models.cmu_caffe_weights:is_body25_named",
                         "openpose_lite.models.cmu_caffe_weights:convert_body25_layout",
                         reference="CMU openpose models/pose/body_25/pose_deploy.prototxt; input BGR pixel / 256 - 0.5",
                         skeleton=BODY_25),
        ),
    ),
    Architecture(
        name="hrnet", branch="topdown", title="HRNet (Sun et al. 2019)",
        build="openpose_lite.models.hrnet:build", settings=HRNetSettings, input_norm="imagenet_rgb",
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
        build="openpose_lite.models.simple_baseline:build", settings=SimpleBaselineSettings,
        input_norm="imagenet_rgb",
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
        build="openpose_lite.models.hourglass:build", settings=HourglassSettings, input_norm="imagenet_rgb",
        published={"topdown": {"input_hw": [256, 256], "heatmap_hw": [64, 64]}},
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


def architectures(branch_name: str | None = None) -> tuple[Architecture, ...]:
    """Every row, or those of one branch, in table order."""
    return tuple(a for a in ARCHITECTURES if branch_name is None or a.branch == branch_name)


def architecture_of(model: Any) -> Architecture | None:
    """The row of a built network (its class's ``arch``); ``None`` for a module of no architecture (a test double)."""
    name = getattr(model, "arch", None)
    return _BY_NAME.get(name) if isinstance(name, str) else None
