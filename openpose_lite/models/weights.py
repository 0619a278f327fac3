"""Weight files in external layouts -> our models.

Layouts understood (see :data:`LAYOUTS`, a table: add a row for a new layout):

* ``openpose_lite``: our own state dict (``trunk.conv1_1.weight`` ...), bare or inside a
  checkpoint dict ``{"model": state_dict, "config": {...}}``.
* ``cmu_named``: the CMU COCO body model as published by the common PyTorch ports, keyed by
  the Caffe layer names (``conv1_1.weight``, ``conv4_3_CPM.weight``, ``conv5_1_CPM_L1.weight``,
  ``Mconv7_stage6_L2.bias``), with or without the port's block prefix (``model0.conv1_1.weight``,
  ``model1_1.conv5_1_CPM_L1.weight``, ``model6_2.Mconv7_stage6_L2.bias``).
* ``cmu_numbered``: the same model with ``nn.Sequential`` position keys (``model0.0.weight`` ...
  ``model6_2.12.bias``); positions count the ReLU and max-pool modules between convs.
* ``torchvision_vgg19``: torchvision's ImageNet ``vgg19`` (``features.0.weight`` ...), of which
  conv1_1 ... conv4_2 initialise our trunk.

Any layout may sit behind a ``module.`` prefix (``nn.DataParallel``). Block ``L1`` of the CMU
model is our ``pafs`` branch, ``L2`` our ``heatmaps`` branch.

Input convention of the CMU weights (a property of the published model, not of this code):
BGR images scaled as ``pixel / 256 - 0.5``. torchvision's VGG19 expects RGB normalised with
the ImageNet mean and std.

Everything is read with ``torch.load(..., map_location="cpu", weights_only=True)``.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openpose_lite.models.hrnet import ARCH as HRNET_ARCH
from openpose_lite.models.hrnet import HRNet, build_hrnet, convert_hrnet_official, hrnet_config_from_state_dict, is_hrnet_official
from openpose_lite.models.vgg19_paf import ARCH as VGG19_PAF_ARCH
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf

logger = logging.getLogger(__name__)

_PARAMS = ("weight", "bias")
_SAMPLE = 5
CMU_NUM_STAGES = 6


# --------------------------------------------------------------------------- CMU key map
@dataclass(frozen=True)
class ConvKeys:
    """Where one conv lives in each layout.

    ``ours``: module path in :class:`VGG19PafNet`; ``cmu_name``: the Caffe layer name;
    ``cmu_block``: the block (Sequential) of the PyTorch ports; ``cmu_index``: the conv's
    position inside that Sequential (ReLU and max-pool modules take positions too).
    """

    ours: str
    cmu_name: str
    cmu_block: str
    cmu_index: int


# The trunk and CPM convs, written out: (our path, CMU layer name, position in "model0").
# torchvision's vgg19.features interleaves conv, ReLU and pool exactly as CMU's model0 does,
# so the same positions address conv1_1 ... conv4_2 there ("features.<position>").
_TRUNK_CONVS: tuple[tuple[str, str, int], ...] = (
    ("trunk.conv1_1", "conv1_1", 0),
    ("trunk.conv1_2", "conv1_2", 2),
    # 4: pool1
    ("trunk.conv2_1", "conv2_1", 5),
    ("trunk.conv2_2", "conv2_2", 7),
    # 9: pool2
    ("trunk.conv3_1", "conv3_1", 10),
    ("trunk.conv3_2", "conv3_2", 12),
    ("trunk.conv3_3", "conv3_3", 14),
    ("trunk.conv3_4", "conv3_4", 16),
    # 18: pool3
    ("trunk.conv4_1", "conv4_1", 19),
    ("trunk.conv4_2", "conv4_2", 21),
    ("cpm.conv4_3", "conv4_3_CPM", 23),
    ("cpm.conv4_4", "conv4_4_CPM", 25),
)
_VGG19_TRUNK_CONVS = _TRUNK_CONVS[:10]  # conv1_1 ... conv4_2

# CMU branch suffix -> our branch name: L1 regresses the PAFs, L2 the confidence maps.
_CMU_BRANCHES: tuple[tuple[int, str], ...] = ((1, "pafs"), (2, "heatmaps"))
_STAGE1_CONVS = 5  # conv5_1 .. conv5_5
_REFINE_CONVS = 7  # Mconv1 .. Mconv7


def cmu_conv_table(num_stages: int = CMU_NUM_STAGES) -> list[ConvKeys]:
    """Every conv of the CMU model with ``num_stages`` stages, in network order.

    In the stage blocks each conv is followed by a ReLU (the last conv by nothing), so
    conv ``i`` (1-based) sits at Sequential position ``2 * (i - 1)``.
    """
    table = [ConvKeys(ours, name, "model0", index) for ours, name, index in _TRUNK_CONVS]
    for branch_id, branch in _CMU_BRANCHES:
        for i in range(1, _STAGE1_CONVS + 1):
            table.append(ConvKeys(f"stages.0.{branch}.conv{i}", f"conv5_{i}_CPM_L{branch_id}", f"model1_{branch_id}", 2 * (i - 1)))
    for t in range(2, num_stages + 1):
        for branch_id, branch in _CMU_BRANCHES:
            for i in range(1, _REFINE_CONVS + 1):
                table.append(
                    ConvKeys(f"stages.{t - 1}.{branch}.conv{i}", f"Mconv{i}_stage{t}_L{branch_id}", f"model{t}_{branch_id}", 2 * (i - 1))
                )
    return table


def _cmu_key_named(c: ConvKeys, param: str) -> str:
    return f"{c.cmu_name}.{param}"


def _cmu_key_prefixed(c: ConvKeys, param: str) -> str:
    return f"{c.cmu_block}.{c.cmu_name}.{param}"


def _cmu_key_numbered(c: ConvKeys, param: str) -> str:
    return f"{c.cmu_block}.{c.cmu_index}.{param}"


def _cmu_key_style(keys: Collection[str], layout: str) -> Callable[[ConvKeys, str], str]:
    if layout == "cmu_numbered":
        return _cmu_key_numbered
    # The ports that keep block prefixes name the trunk "model0.conv1_1".
    return _cmu_key_prefixed if "model0.conv1_1.weight" in keys else _cmu_key_named


def _cmu_file_stages(keys: Collection[str], key_of: Callable[[ConvKeys, str], str]) -> int:
    """Number of stages present: 1 + how many consecutive refinement stages have their first conv."""
    num_stages = 1
    while True:
        probe = ConvKeys("", f"Mconv1_stage{num_stages + 1}_L1", f"model{num_stages + 1}_1", 0)
        if key_of(probe, "weight") not in keys:
            return num_stages
        num_stages += 1


def _cmu_key_map(key_of: Callable[[ConvKeys, str], str], num_stages: int) -> dict[str, str]:
    """CMU file key -> our key, for a model with ``num_stages`` stages."""
    return {key_of(c, p): f"{c.ours}.{p}" for c in cmu_conv_table(num_stages) for p in _PARAMS}


def _our_key_set(num_stages: int = CMU_NUM_STAGES) -> frozenset[str]:
    return frozenset(f"{c.ours}.{p}" for c in cmu_conv_table(num_stages) for p in _PARAMS)


def _vgg_key_set() -> frozenset[str]:
    return frozenset(f"features.{index}.{p}" for _, _, index in _VGG19_TRUNK_CONVS for p in _PARAMS)


# --------------------------------------------------------------------------- layout table
@dataclass(frozen=True)
class WeightLayout:
    """A known state-dict layout.

    ``detect(keys)`` says whether a key set (``module.`` already stripped) is in this layout;
    ``reference_keys()`` lists the keys of the full-size model in it, used to name missing and
    unexpected keys when no layout matches.
    """

    name: str
    detect: Callable[[frozenset[str]], bool]
    reference_keys: Callable[[], frozenset[str]]


LAYOUTS: list[WeightLayout] = [
    WeightLayout("openpose_lite", lambda k: "trunk.conv1_1.weight" in k, _our_key_set),
    WeightLayout("cmu_numbered", lambda k: "model0.0.weight" in k and "model1_1.0.weight" in k,
                 lambda: frozenset(_cmu_key_map(_cmu_key_numbered, CMU_NUM_STAGES))),
    WeightLayout("cmu_named", lambda k: "conv5_1_CPM_L1.weight" in k or "model1_1.conv5_1_CPM_L1.weight" in k,
                 lambda: frozenset(_cmu_key_map(_cmu_key_named, CMU_NUM_STAGES))),
    WeightLayout("torchvision_vgg19", lambda k: "features.0.weight" in k, _vgg_key_set),
    # The official HRNet pose checkpoints; our HRNet keeps their parameter names.
    WeightLayout("hrnet", lambda k: is_hrnet_official(dict.fromkeys(k)), lambda: _hrnet_key_set()),
    # The official ImageNet HRNet classification checkpoints (hrnet_w32-36af842e.pth): the same
    # trunk names plus a classification head (incre_modules, downsamp_modules, final_layer.0, classifier).
    WeightLayout("hrnet_imagenet", lambda k: "conv1.weight" in k and "classifier.weight" in k
                 and any(key.startswith("incre_modules.") for key in k), lambda: _hrnet_key_set()),
]


def _hrnet_key_set() -> frozenset[str]:
    with torch.device("meta"):
        return frozenset(build_hrnet().state_dict())


def _sample(keys: Collection[str]) -> list[str]:
    return sorted(keys)[:_SAMPLE]


def _key_mismatch_error(what: str, missing: Collection[str], unexpected: Collection[str], hint: str = "") -> ValueError:
    msg = (
        f"{what}: {len(missing)} missing keys (e.g. {_sample(missing)}), "
        f"{len(unexpected)} unexpected keys (e.g. {_sample(unexpected)})"
    )
    return ValueError(msg + (f"; {hint}" if hint else ""))


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` / DDP put on every key (if all have it)."""
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """Name of the layout of ``state_dict`` (a ``module.`` prefix is allowed): one of :data:`LAYOUTS`.

    Raises:
        ValueError: no layout matches; the message names the missing and unexpected keys
            relative to the closest layout.
    """
    keys = frozenset(strip_module_prefix(state_dict))
    for layout in LAYOUTS:
        if layout.detect(keys):
            return layout.name
    closest = max(LAYOUTS, key=lambda layout: len(keys & layout.reference_keys()))
    reference = closest.reference_keys()
    raise _key_mismatch_error(
        f"state dict in no known layout {[layout.name for layout in LAYOUTS]}; closest is {closest.name!r}",
        reference - keys, keys - reference,
    )


# --------------------------------------------------------------------------- files
def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """Read a weights file: a state dict, or a checkpoint dict holding one under ``"model"``.

    Uses ``torch.load(map_location="cpu", weights_only=True)``: a weights file is data, never code.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a weights-only PyTorch file holding a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a weights-only PyTorch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    return dict(obj)


def split_checkpoint(obj: Mapping[str, Any], source: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state dict, config or None) from a loaded file.

    Accepts our checkpoint dict ``{"model": state_dict, "config": dict}`` (``"config"``
    optional) or a bare state dict (every value a tensor).
    """
    if "model" in obj and isinstance(obj["model"], Mapping):
        state, config = obj["model"], obj.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"{source}: checkpoint 'config' must be a dict, got {type(config).__name__}")
        config = dict(config) if config is not None else None
    else:
        state, config = obj, None
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(
            f"{source}: expected a state dict (names -> tensors) or a checkpoint with 'model'; "
            f"non-tensor entries {_sample(bad)}"
        )
    if not state:
        raise ValueError(f"{source}: the state dict is empty")
    return dict(state), config


def _load_exact(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` requiring the same keys and shapes; clear errors otherwise."""
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise _key_mismatch_error(f"{source}: keys do not match the model", missing, unexpected)
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if state[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"{source}: {len(wrong)} shape mismatches, e.g. {wrong[:_SAMPLE]}")
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- conversions
def convert_cmu_state_dict(state_dict: Mapping[str, torch.Tensor], num_stages: int = CMU_NUM_STAGES) -> dict[str, torch.Tensor]:
    """A CMU COCO body model state dict (``cmu_named`` or ``cmu_numbered``) -> our key names.

    ``num_stages`` may be smaller than the file's stage count: the later stages are dropped
    (the first stages of a CMU model are a valid shorter model). Tensors are not copied.

    Raises:
        ValueError: not a CMU layout, a key missing or unexpected, or more stages requested
            than the file holds.
    """
    state = strip_module_prefix(state_dict)
    layout = detect_layout(state)
    if layout not in ("cmu_named", "cmu_numbered"):
        raise ValueError(f"expected a CMU COCO body model state dict, got layout {layout!r}")
    keys = frozenset(state)
    key_of = _cmu_key_style(keys, layout)
    file_stages = _cmu_file_stages(keys, key_of)
    if num_stages < 1 or num_stages > file_stages:
        raise ValueError(f"num_stages={num_stages} requested but the CMU state dict holds {file_stages} stages")
    full_map = _cmu_key_map(key_of, file_stages)
    missing, unexpected = set(full_map) - keys, keys - set(full_map)
    if missing or unexpected:
        raise _key_mismatch_error(f"CMU state dict ({layout}, {file_stages} stages)", missing, unexpected)
    kept = _cmu_key_map(key_of, num_stages)
    if num_stages < file_stages:
        logger.info("CMU weights: keeping %d of %d stages", num_stages, file_stages)
    return OrderedDict((ours, state[theirs]) for theirs, ours in kept.items())


def _cmu_stage_count(state: Mapping[str, torch.Tensor]) -> int:
    keys = frozenset(state)
    return _cmu_file_stages(keys, _cmu_key_style(keys, detect_layout(state)))


# torchvision's ImageNet input (docs of torchvision.models.VGG19_Weights, "transforms"): RGB in
# [0, 1], then per channel (x - mean) / std.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# The CMU input our VGG19PafNet is fed (and the CMU weights need): BGR, pixel / 256 - 0.5.
_CMU_SCALE, _CMU_SHIFT = 1.0 / 256.0, -0.5


def fold_imagenet_input_into_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1_1 of a network trained on torchvision's input, rewritten for the CMU input.

    With CMU input ``y = p / 256 - 0.5`` (BGR) and torchvision input ``t_c = (p_c / 255 - m_c) / s_c``
    (RGB), ``t_c = a_c * y_{2-c} + b_c`` with ``a_c = 256 / (255 s_c)`` and
    ``b_c = (128 / 255 - m_c) / s_c``. So the conv on ``t`` equals, on ``y``, the conv whose input
    channels are reversed (RGB -> BGR) and scaled by ``a``, with ``sum(W * b)`` added to the bias.
    Equal everywhere except where the conv's zero padding is read: padding is 0 in ``t`` there
    but ``y = 0`` means ``t = b``, so outputs within the receptive field of the border differ.

    Args:
        weight: (C_out, 3, kh, kw) in RGB order; bias: (C_out,).
    Returns:
        (weight, bias) for BGR CMU input, float32.
    """
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD_RGB, dtype=torch.float64)
    # p = (y - shift) / scale: t_c = (p / 255 - m_c) / s_c = a_c y + b_c.
    a = 1.0 / (_CMU_SCALE * 255.0 * std)
    b = (-_CMU_SHIFT / (_CMU_SCALE * 255.0) - mean) / std
    w = weight.to(torch.float64)
    folded_bias = bias.to(torch.float64) + (w * b[None, :, None, None]).sum(dim=(1, 2, 3))
    folded_weight = (w * a[None, :, None, None]).flip(1)  # RGB input channels -> BGR
    return folded_weight.to(torch.float32), folded_bias.to(torch.float32)


def load_vgg19_imagenet(model: VGG19PafNet, path: str | Path) -> None:
    """Copy torchvision's ImageNet ``vgg19`` conv1_1 ... conv4_2 into ``model.trunk`` (in place).

    ``path`` holds the plain ``vgg19`` state dict (``features.<i>.weight`` ...); classifier and
    later feature keys are ignored. The model must have ``width_mult == 1``.

    The network is fed the CMU input (BGR, ``pixel / 256 - 0.5``), the ImageNet weights expect
    torchvision's (RGB, ImageNet mean and std), so torchvision's normalisation and the channel
    swap are folded into conv1_1 (:func:`fold_imagenet_input_into_conv`): the trunk then computes
    torchvision's ``vgg19.features[:23]`` of the same photo, away from the padded border.

    Raises:
        ValueError: width_mult != 1, a file in another layout (vgg19_bn included), a
            missing key or a shape mismatch.
    """
    if model.width_mult != 1.0:
        raise ValueError(f"ImageNet VGG19 weights need width_mult=1.0, the model has width_mult={model.width_mult}")
    state, _ = split_checkpoint(load_state_dict_file(path), str(path))
    state = strip_module_prefix(state)
    if any("running_mean" in k for k in state):
        raise ValueError(f"{path}: batch-norm VGG (vgg19_bn) weights are not supported; expected plain torchvision vgg19")
    layout = detect_layout(state)
    if layout != "torchvision_vgg19":
        raise ValueError(f"{path}: expected torchvision vgg19 weights (features.0.weight ...), got layout {layout!r}")
    missing = _vgg_key_set() - set(state)
    if missing:
        raise _key_mismatch_error(f"{path}: torchvision vgg19", missing, ())
    trunk = model.trunk
    with torch.no_grad():
        for ours, name, index in _VGG19_TRUNK_CONVS:
            conv = trunk.get_submodule(ours.split(".", 1)[1])
            src = {p: state[f"features.{index}.{p}"] for p in _PARAMS}
            for p in _PARAMS:
                if src[p].shape != getattr(conv, p).shape:
                    raise ValueError(f"{path}: features.{index}.{p} ({name}) has shape {tuple(src[p].shape)}, "
                                     f"model needs {tuple(getattr(conv, p).shape)}")
            if index == 0:  # conv1_1 reads the image: fold the ImageNet normalisation in
                src["weight"], src["bias"] = fold_imagenet_input_into_conv(src["weight"], src["bias"])
            for p in _PARAMS:
                getattr(conv, p).copy_(src[p])
    logger.info("loaded ImageNet VGG19 conv1_1..conv4_2 from %s (input normalisation folded into conv1_1)", path)


# The layers the HRNet reference initialises from its ImageNet checkpoint
# (experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml, MODEL.EXTRA.PRETRAINED_LAYERS; loaded by
# lib/models/pose_hrnet.py, PoseHighResolutionNet.init_weights): everything but the pose head.
HRNET_PRETRAINED_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                           "transition2", "stage3", "transition3", "stage4")


def load_hrnet_imagenet(model: HRNet, path: str | Path) -> int:
    """Initialise an HRNet's trunk from the official ImageNet HRNet classification checkpoint (in place).

    As the reference's ``init_weights`` does: the file's entries whose first name component is
    in :data:`HRNET_PRETRAINED_LAYERS` are copied into the model's parameters and buffers of the
    same name; the classification head and the extra fusion layers the classifier's last
    module has (the pose net fuses into one branch there) have no counterpart and are left
    out. The official pose code feeds RGB normalised with the ImageNet mean and std, which is
    what :func:`~openpose_lite.data.topdown.to_hrnet_input` gives, so nothing is folded.

    Returns:
        The number of tensors copied.
    Raises:
        ValueError: a file in another layout, a width that is not the model's, or a trunk
            tensor missing from the file or of another shape.
    """
    state, _ = split_checkpoint(load_state_dict_file(path), str(path))
    state = strip_module_prefix(state)
    layout = detect_layout(state)
    if layout != "hrnet_imagenet":
        raise ValueError(f"{path}: expected the official ImageNet HRNet classification checkpoint "
                         f"(conv1, stage2..4, incre_modules, classifier keys), got layout {layout!r}")
    target = model.state_dict()
    wanted = {k for k in target if k.split(".")[0] in HRNET_PRETRAINED_LAYERS}
    # Very old files have no BatchNorm batch counters; they do not change the weights.
    missing = sorted(k for k in wanted - set(state) if not k.endswith("num_batches_tracked"))
    if missing:
        raise _key_mismatch_error(f"{path}: ImageNet HRNet for HRNet-W{model.width}", missing, (),
                                  hint="is the file's width the model's (model.hrnet_width)?")
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
             for k in sorted(wanted & set(state)) if state[k].shape != target[k].shape]
    if wrong:
        raise ValueError(f"{path}: {len(wrong)} shape mismatches with HRNet-W{model.width}, e.g. {wrong[:_SAMPLE]}")
    copied = {k: state[k] for k in wanted & set(state)}
    model.load_state_dict(copied, strict=False)
    logger.info("loaded %d ImageNet HRNet trunk tensors from %s", len(copied), path)
    return len(copied)


def load_backbone(model: nn.Module, path: str | Path) -> str:
    """Initialise a model's trunk from an ImageNet classification file; returns what was loaded, in words.

    VGG19PafNet: torchvision's vgg19 (:func:`load_vgg19_imagenet`); HRNet: the official ImageNet
    HRNet (:func:`load_hrnet_imagenet`).
    """
    if isinstance(model, VGG19PafNet):
        load_vgg19_imagenet(model, path)
        return f"ImageNet VGG19 from {path}"
    if isinstance(model, HRNet):
        load_hrnet_imagenet(model, path)
        return f"ImageNet HRNet-W{model.width} from {path}"
    raise ValueError(f"--backbone-weights: no ImageNet trunk loader for {type(model).__name__}")


def load_weights_into(model: VGG19PafNet, path: str | Path) -> str:
    """Load any supported layout into an existing model (in place); returns the layout name.

    Our own files and CMU files must match the model exactly (a CMU file may hold more
    stages than the model); torchvision VGG19 files fill the trunk only.
    """
    state, _ = split_checkpoint(load_state_dict_file(path), str(path))
    state = strip_module_prefix(state)
    layout = detect_layout(state)
    if layout == "torchvision_vgg19":
        load_vgg19_imagenet(model, path)
    elif layout in ("cmu_named", "cmu_numbered"):
        _load_exact(model, convert_cmu_state_dict(state, num_stages=model.num_stages), f"{path} ({layout})")
    elif layout == "openpose_lite":
        _load_exact(model, state, str(path))
    else:
        raise ValueError(f"{path}: layout {layout!r} cannot be loaded into {type(model).__name__}")
    return layout


# --------------------------------------------------------------------------- building models
_VGG19_PAF_DEFAULTS: dict[str, Any] = {"num_stages": CMU_NUM_STAGES, "stage_channels": 128, "width_mult": 1.0, "init": "cmu"}


def build_model_from_config_dict(model_cfg: Mapping[str, Any]) -> nn.Module:
    """Build an untrained model from the plain ``config["model"]`` dict of a checkpoint.

    Keys: ``arch`` (``"vgg19_paf"`` or ``"hrnet"``); for vgg19_paf ``num_stages``,
    ``stage_channels``, ``width_mult``, ``init`` (initialisation, see VGG19PafNet); for hrnet ``hrnet_width``. A missing key takes the
    paper default and keys meant for other parts (training options) are ignored.
    """
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model config must be a dict, got {type(model_cfg).__name__}")
    arch = model_cfg.get("arch", VGG19_PAF_ARCH)
    if arch == VGG19_PAF_ARCH:
        args = {k: model_cfg.get(k, default) for k, default in _VGG19_PAF_DEFAULTS.items()}
        return build_vgg19_paf(
            num_stages=int(args["num_stages"]),
            stage_channels=int(args["stage_channels"]),
            width_mult=float(args["width_mult"]),
            init=str(args["init"]),
        )
    if arch == HRNET_ARCH:
        return build_hrnet(width=int(model_cfg.get("hrnet_width", 32)), num_blocks=int(model_cfg.get("hrnet_blocks", 4)))
    raise ValueError(f"model config 'arch': unknown architecture {arch!r}; known: [{VGG19_PAF_ARCH!r}, {HRNET_ARCH!r}]")


_STAGE_KEY = re.compile(r"^stages\.(\d+)\.")


def _infer_vgg19_paf_config(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Model config of a bare state dict in our layout, read from its tensor shapes."""
    try:
        num_stages = 1 + max(int(m.group(1)) for k in state if (m := _STAGE_KEY.match(k)))
        stage_channels = int(state["stages.0.pafs.conv1.weight"].shape[0])
        # The widest layer gives the most precise width multiplier.
        width_mult = int(state["trunk.conv4_2.weight"].shape[0]) / 512
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{source}: cannot infer the model size from a bare state dict ({exc}); save a checkpoint with its config") from exc
    return {"arch": VGG19_PAF_ARCH, "num_stages": num_stages, "stage_channels": stage_channels, "width_mult": width_mult}


def load_model(path: str | Path, device: str | torch.device | None = None) -> nn.Module:
    """A ready-to-run model (eval mode) from a weights file in any supported layout.

    See :func:`load_model_with_config`, which also returns the checkpoint's config.
    """
    return load_model_with_config(path, device)[0]


def load_model_with_config(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[nn.Module, dict[str, Any] | None]:
    """(model in eval mode, the checkpoint's config dict or None) from a weights file in any layout.

    The file is read once; predictors use the config's codec section when there is one.

    * CMU files (``cmu_named`` / ``cmu_numbered``): the full-width CMU model with the file's
      stage count (6 for the published weights).
    * Official HRNet pose files (``hrnet``): HRNet of the file's width and keypoint count;
      our HRNet checkpoints share that layout and carry their config.
    * Our checkpoints: built from ``config["model"]`` (see :func:`build_model_from_config_dict`);
      a bare state dict in our layout: sizes inferred from its tensor shapes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, unknown layout, a trunk-only ImageNet file, or keys and
            shapes that do not fit the model.
    """
    source = str(path)
    state, config = split_checkpoint(load_state_dict_file(path), source)
    state = strip_module_prefix(state)
    layout = detect_layout(state)
    if layout in ("cmu_named", "cmu_numbered"):
        num_stages = _cmu_stage_count(state)
        model: nn.Module = build_vgg19_paf(num_stages=num_stages)
        _load_exact(model, convert_cmu_state_dict(state, num_stages), f"{source} ({layout})")
    elif layout == "openpose_lite":
        if config is not None:
            model_cfg = config.get("model", {})
            if not isinstance(model_cfg, Mapping):
                raise ValueError(f"{source}: checkpoint config['model'] must be a dict, got {type(model_cfg).__name__}")
        else:
            model_cfg = _infer_vgg19_paf_config(state, source)
        model = build_model_from_config_dict(model_cfg)
        _load_exact(model, state, source)
    elif layout == "hrnet":
        state = convert_hrnet_official(state)
        if config is not None and isinstance(config.get("model"), Mapping):
            model = build_model_from_config_dict(config["model"])
        else:
            model = build_hrnet(**hrnet_config_from_state_dict(state))
        _load_exact(model, state, source)
    elif layout in ("torchvision_vgg19", "hrnet_imagenet"):
        raise ValueError(f"{source}: holds an ImageNet classification network ({layout}), not a pose model; "
                         "it initialises a trunk for training (--backbone-weights)")
    else:
        raise ValueError(f"{source}: no model loader for layout {layout!r}")
    logger.info("loaded %s weights from %s", layout, source)
    if device is not None:
        model = model.to(device)
    return model.eval(), config
