"""CMU OpenPose's Caffe files -> the networks of :mod:`openpose_lite.models.cmu_caffe`: which of CMU's
networks a file holds, its conversion to our names, and the loaders.

A ``.caffemodel`` (read by :mod:`openpose_lite.models.caffemodel`) or a PyTorch file that kept CMU's Caffe
layer names is a state dict in those names. :func:`identify_cmu_network` tells the five networks apart by
names and output channels; the body networks load through the architecture table (``read_weights``: the
``cmu_body25``, ``cmu_mpi`` and ``cmu_named`` layouts), the hand and face networks through
:func:`load_part_model`. docs/cmu_models.md lists the files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from openpose_lite.cmu_skeletons import BODY_25, MPI_15
from openpose_lite.models.caffemodel import caffe_state_dict, is_caffemodel_path, read_caffemodel
from openpose_lite.models.cmu_caffe import Body25Net, CpmNet, build_body25, build_cpm
from openpose_lite.models.cmu_weights import PARAMS, cmu_stage_count, convert_cmu_state_dict
from openpose_lite.models.state_dict import (key_mismatch_error, load_exact, load_state_dict_file, sample_keys,
                                             unwrap_weights)
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.network_settings import Body25Settings, PafSettings
from openpose_lite.skeleton import OPENPOSE_18

__all__ = ["CMU_CAFFE_FILES", "body_network", "convert_body25", "convert_body25_layout", "convert_cpm", "convert_mpi",
           "identify_cmu_network", "is_body25_named", "is_mpi_named", "load_part_model",
           "read_body_caffemodel", "read_caffe_state"]

logger = logging.getLogger(__name__)

# CMU's files, by the name :func:`identify_cmu_network` gives: (file as getModels.sh fetches it, what it is).
CMU_CAFFE_FILES: dict[str, tuple[str, str]] = {
    "body25": ("pose/body_25/pose_iter_584000.caffemodel", "BODY_25: 25 keypoints with feet (OpenPose's default)"),
    "coco": ("pose/coco/pose_iter_440000.caffemodel", "COCO: 18 keypoints"),
    "mpi": ("pose/mpi/pose_iter_160000.caffemodel", "MPI: 15 keypoints"),
    "hand": ("hand/pose_iter_102000.caffemodel", "hand: 21 keypoints per hand"),
    "face": ("face/pose_iter_116000.caffemodel", "face: 70 keypoints per face"),
}


# ------------------------------------------------------------------------------ which CMU network
def _channels(state: Mapping[str, torch.Tensor], key: str) -> int | None:
    tensor = state.get(key)
    return int(tensor.shape[0]) if tensor is not None and tensor.ndim >= 1 else None


def identify_cmu_network(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which of CMU's networks a state dict in Caffe layer names holds (a ``.caffemodel`` read by
    :func:`~openpose_lite.models.caffemodel.caffe_state_dict`, or a port that kept the names):
    ``"body25"``, ``"coco"``, ``"mpi"``, ``"hand"``, ``"face"``, or None. Told apart by layer
    names and the output channels of the first stage (COCO 38 + 19, MPI 28 + 16, hand 22, face 71)."""
    if "Mconv1_stage0_L2_0.weight" in state:
        return "body25"
    first = (_channels(state, "conv5_5_CPM_L1.weight"), _channels(state, "conv5_5_CPM_L2.weight"))
    if first == (38, 19):
        return "coco"
    if first == (28, 16):
        return "mpi"
    cpm = _channels(state, "conv6_2_CPM.weight")
    return {22: "hand", 71: "face"}.get(cpm) if cpm is not None else None


def describe_unknown(state: Mapping[str, torch.Tensor]) -> str:
    """What a state dict in Caffe names holds, for the error that refuses it: a few layers and their shapes."""
    layers = sorted({k.rsplit(".", 1)[0] for k in state})
    shapes = [f"{n} {list(state[f'{n}.weight'].shape)}" for n in sample_keys(layers) if f"{n}.weight" in state]
    known = "; ".join(f"{f} ({w})" for f, w in CMU_CAFFE_FILES.values())
    return (f"a Caffe net of {len(layers)} layers with weights (e.g. {', '.join(shapes)}) that is none of CMU's "
            f"OpenPose networks read here: {known}")


def _strip_block_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Caffe layer names with a PyTorch port's block prefix (``model1_0.conv1_1.weight``) dropped."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        out[".".join(parts[1:]) if len(parts) == 3 and parts[0].startswith("model") else key] = value
    return out


def _convert(state: Mapping[str, torch.Tensor], names: Mapping[str, tuple[str, str]], what: str,
             source: str) -> dict[str, torch.Tensor]:
    """A state dict in Caffe layer names -> ours, requiring exactly the layers of ``names``."""
    theirs = {f"{cmu}.{p}": f"{ours}.{p}" for ours, (cmu, kind) in names.items()
              for p in (("weight",) if kind == "PReLU" else PARAMS)}
    missing, unexpected = set(theirs) - set(state), set(state) - set(theirs)
    if missing or unexpected:
        raise key_mismatch_error(f"{source}: not CMU's {what} network", missing, unexpected)
    return {ours: state[cmu] for cmu, ours in theirs.items()}


def _width_scale(state: Mapping[str, torch.Tensor], layer: str, source: str) -> float:
    """The width multiplier of a file, from its widest trunk layer (512 channels in CMU's files: 1.0)."""
    width = _channels(state, f"{layer}.weight")
    if width is None:
        raise ValueError(f"{source}: no layer {layer}, which every CMU network has")
    return width / 512


def convert_body25(state: Mapping[str, torch.Tensor], source: str, skeleton: Any) -> tuple[Body25Net, dict]:
    """(an untrained BODY_25 network of the file's stage counts, the file's state in our names)."""
    keys = frozenset(state)
    paf = sum(1 for t in range(16) if f"Mconv1_stage{t}_L2_0.weight" in keys)
    heat = sum(1 for t in range(16) if f"Mconv1_stage{t}_L1_0.weight" in keys)
    model = build_body25(skeleton, max(paf, 1), max(heat, 1), _width_scale(state, "conv4_2", source))
    return model, _convert(state, model.caffe_layer_names(), "BODY_25", source)


def convert_cpm(state: Mapping[str, torch.Tensor], source: str) -> tuple[str, CpmNet, dict[str, torch.Tensor]]:
    """(``"hand"`` or ``"face"``, an untrained network of the file's size, the state in our names) of a hand
    or face network in Caffe layer names (a .caffemodel, or Hzzone's ``hand_pose_model.pth`` layout, with
    or without its ``model1_0.`` block prefixes).

    Raises ValueError naming ``source`` when the state is neither network."""
    state = _strip_block_prefix(state)
    kind = identify_cmu_network(state)
    if kind not in ("hand", "face"):
        raise ValueError(f"{source}: expected CMU's hand or face network (layers conv1_1 ... conv6_2_CPM, "
                         f"Mconv1_stage2 ...), got {describe_unknown(state) if state else 'no layers'}")
    keypoints = int(state["conv6_2_CPM.weight"].shape[0]) - 1
    stages = 1 + sum(1 for t in range(2, 20) if f"Mconv1_stage{t}.weight" in state)
    model = build_cpm(keypoints, stages, _width_scale(state, "conv5_2", source))
    return kind, model, _convert(state, model.caffe_layer_names(), kind, source)


# ------------------------------------------------------------------------------------------ files
def read_caffe_state(path: Any) -> dict[str, torch.Tensor]:
    """A ``.caffemodel``'s weights as a state dict in Caffe layer names (one-line errors naming the file)."""
    _, layers = read_caffemodel(path)
    return caffe_state_dict(layers, str(path))


def load_part_model(path: Any) -> tuple[str, CpmNet]:
    """(``"hand"`` or ``"face"``, the network in eval mode) of CMU's hand or face weights: the
    ``.caffemodel`` (``hand/pose_iter_102000``, ``face/pose_iter_116000``) or a PyTorch file keyed by
    the Caffe layer names (Hzzone/pytorch-openpose's ``hand_pose_model.pth``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file: unreadable, or not CMU's hand or face network.
    """
    source = str(path)
    if is_caffemodel_path(path):
        state = read_caffe_state(path)
    else:
        state, _ = unwrap_weights(load_state_dict_file(path), source)
    kind, model, ours = convert_cpm(state, source)
    load_exact(model, ours, f"{source} ({kind})")
    logger.info("loaded CMU's %s network from %s", kind, source)
    return kind, model.eval()


def body_network(state: Mapping[str, torch.Tensor], source: str) -> tuple[str, nn.Module, dict[str, torch.Tensor]]:
    """(which body network, an untrained network of its size, the state in our names) of a CMU body model
    in Caffe layer names: BODY_25 (:class:`Body25Net`), COCO or MPI (the two-branch
    :class:`~openpose_lite.models.vgg19_paf.VGG19PafNet` with the OPENPOSE_18 or MPI_15 skeleton).

    Raises ValueError naming ``source`` and what the state holds when it is none of them (a hand or face
    network is named as such: those run per person, ``--hand`` / ``--face``)."""
    kind = identify_cmu_network(state)
    if kind == "body25":
        model, ours = convert_body25(state, source, BODY_25)
        return kind, model, ours
    if kind in ("coco", "mpi"):
        settings, ours = convert_mpi(state, source)
        return kind, build_vgg19_paf(**vars(settings), skeleton=OPENPOSE_18 if kind == "coco" else MPI_15), ours
    if kind in ("hand", "face"):
        raise ValueError(f"{source}: holds CMU's {CMU_CAFFE_FILES[kind][1]} network, which runs on the people a "
                         f"body model finds (infer --{kind} {source}), not as a body model")
    raise ValueError(f"{source}: {describe_unknown(state)}")


def is_body25_named(keys: frozenset[str]) -> bool:
    """A BODY_25 state dict in CMU's Caffe layer names (a .caffemodel, or a PyTorch file that kept them)."""
    return "Mconv1_stage0_L2_0.weight" in keys and "Mconv7_stage0_L1.weight" in keys


def convert_body25_layout(state: Mapping[str, torch.Tensor], source: str,
                          all_stages: bool = False) -> tuple[Body25Settings, dict[str, torch.Tensor]]:
    """The table's converter of ``cmu_body25``: (the file's :class:`Body25Settings`, our state dict)."""
    model, ours = convert_body25(state, source, BODY_25)
    return Body25Settings(model.paf_stages, model.heatmap_stages, model.width_scale), ours


def is_mpi_named(keys: frozenset[str]) -> bool:
    """CMU's MPI body model in Caffe layer names: COCO's layer names (``cmu_named``) with MPI's first-stage
    outputs (28 PAF and 16 heatmap channels), read from the key set's ``shapes``
    (:func:`~openpose_lite.models.weights.detect_layout` gives them)."""
    shapes = getattr(keys, "shapes", {})
    first = [shapes.get(f"{prefix}conv5_5_CPM_L{b}.weight", (0,))[0] for prefix in ("", "model1_1.", "model1_2.")
             for b in (1, 2)]
    return 28 in first and 16 in first and "Mconv1_stage0_L2_0.weight" not in keys


def convert_mpi(state: Mapping[str, torch.Tensor], source: str,
                all_stages: bool = False) -> tuple[PafSettings, dict[str, torch.Tensor]]:
    """The table's converter of ``cmu_mpi`` (and of COCO's files in :func:`body_network`): (the file's
    :class:`PafSettings`, our state dict); the widths are read from the file."""
    named = _strip_block_prefix(state)
    stages = cmu_stage_count(state)
    settings = PafSettings(stages, _channels(named, "conv5_1_CPM_L1.weight") or 128, _width_scale(named, "conv4_2", source))
    return settings, convert_cmu_state_dict(state, stages)


def read_body_caffemodel(path: Any) -> dict[str, torch.Tensor]:
    """The state dict, in Caffe layer names, of one of CMU's body ``.caffemodel`` files (BODY_25, COCO, MPI),
    which the architecture table's layouts then recognise. Raises ValueError naming the file for a hand or
    face network (those run per person) and for a net that is none of CMU's."""
    state = read_caffe_state(path)
    if identify_cmu_network(state) not in ("body25", "coco", "mpi"):
        body_network(state, str(path))  # raises, naming what the file holds: the table converts the rest
    return state
