"""The CMU COCO body model's weight layouts and their conversion to :class:`~openpose_lite.models.vgg19_paf.VGG19PafNet`.

The model as published by the common PyTorch ports comes in two layouts:

* ``cmu_named``: keyed by the Caffe layer names (``conv1_1.weight``, ``conv4_3_CPM.weight``,
  ``conv5_1_CPM_L1.weight``, ``Mconv7_stage6_L2.bias``), with or without the port's block
  prefix (``model0.conv1_1.weight``, ``model1_1.conv5_1_CPM_L1.weight``);
* ``cmu_numbered``: ``nn.Sequential`` position keys (``model0.0.weight`` ... ``model6_2.12.bias``);
  positions count the ReLU and max-pool modules between convs.

Block ``L1`` of the CMU model is our ``pafs`` branch, ``L2`` our ``heatmaps`` branch. The same
positions address torchvision's ``vgg19.features`` (conv1_1 ... conv4_2), which
:mod:`openpose_lite.models.imagenet_weights` reads.

Input convention of the CMU weights (a property of the published model, not of this code):
BGR images scaled as ``pixel / 256 - 0.5``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import torch

from openpose_lite.network_settings import PafSettings
from openpose_lite.models.state_dict import key_mismatch_error, sample_keys, strip_module_prefix
from openpose_lite.models.vgg19_paf import _CPM_LAYOUT, _TRUNK_LAYOUT

__all__ = ["CMU_NUM_STAGES", "ConvKeys", "VGG19_TRUNK_CONVS", "cmu_conv_table", "cmu_layout", "cmu_stage_count",
           "convert_cmu", "convert_cmu_state_dict", "is_cmu_named", "is_cmu_numbered", "is_torchvision_vgg19",
           "vgg_key_set"]

logger = logging.getLogger(__name__)

PARAMS = ("weight", "bias")
CMU_NUM_STAGES = 6


# --------------------------------------------------------------------------- the key map
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


def _trunk_convs() -> tuple[tuple[str, str, int], ...]:
    """(our path, CMU layer name, position in "model0") of the trunk and CPM convs. A conv and its ReLU take
    two positions, a max-pool one; torchvision's vgg19.features interleaves them as CMU's model0 does, so the
    same positions address conv1_1 ... conv4_2 there ("features.<position>")."""
    rows, index = [], 0
    for part, layout, suffix in (("trunk", _TRUNK_LAYOUT, ""), ("cpm", _CPM_LAYOUT, "_CPM")):
        for name, width in layout:
            if width is not None:
                rows.append((f"{part}.{name}", name + suffix, index))
            index += 1 if width is None else 2
    return tuple(rows)


_TRUNK_CONVS = _trunk_convs()
VGG19_TRUNK_CONVS = _TRUNK_CONVS[:10]  # conv1_1 ... conv4_2

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
    for t in range(1, num_stages + 1):
        for branch_id, branch in _CMU_BRANCHES:
            for i in range(1, (_STAGE1_CONVS if t == 1 else _REFINE_CONVS) + 1):
                name = f"conv5_{i}_CPM_L{branch_id}" if t == 1 else f"Mconv{i}_stage{t}_L{branch_id}"
                table.append(ConvKeys(f"stages.{t - 1}.{branch}.conv{i}", name, f"model{t}_{branch_id}", 2 * (i - 1)))
    return table


def _key_style(keys: Collection[str]) -> tuple[str, Callable[[ConvKeys, str], str]]:
    """(the layout, a conv's parameter -> its key in the file) of a CMU key set; ValueError for another."""
    layout = cmu_layout(keys)
    if layout is None:
        raise ValueError("expected a CMU COCO body model state dict (keys such as conv5_1_CPM_L1.weight or "
                         f"model1_1.0.weight), got keys such as {sample_keys(keys)}")
    if layout == "cmu_numbered":
        return layout, lambda c, p: f"{c.cmu_block}.{c.cmu_index}.{p}"
    # The ports that keep block prefixes name the trunk "model0.conv1_1".
    if "model0.conv1_1.weight" in keys:
        return layout, lambda c, p: f"{c.cmu_block}.{c.cmu_name}.{p}"
    return layout, lambda c, p: f"{c.cmu_name}.{p}"


def vgg_key_set() -> frozenset[str]:
    """The keys of torchvision's ``vgg19.features`` that hold conv1_1 ... conv4_2."""
    return frozenset(f"features.{index}.{p}" for _, _, index in VGG19_TRUNK_CONVS for p in PARAMS)


# --------------------------------------------------------------------------- detection
def cmu_layout(keys: Collection[str]) -> str | None:
    """``"cmu_numbered"``, ``"cmu_named"`` or None for a key set (``module.`` already stripped)."""
    if "model0.0.weight" in keys and "model1_1.0.weight" in keys:
        return "cmu_numbered"
    if "conv5_1_CPM_L1.weight" in keys or "model1_1.conv5_1_CPM_L1.weight" in keys:
        return "cmu_named"
    return None


def is_cmu_named(keys: frozenset[str]) -> bool:
    """The architecture table's detector of the ``cmu_named`` layout."""
    return cmu_layout(keys) == "cmu_named"


def is_cmu_numbered(keys: frozenset[str]) -> bool:
    """The architecture table's detector of the ``cmu_numbered`` layout."""
    return cmu_layout(keys) == "cmu_numbered"


def is_torchvision_vgg19(keys: frozenset[str]) -> bool:
    """torchvision's ImageNet ``vgg19`` (``features.0.weight`` ...), the VGG19 trunk's ``--backbone-weights``."""
    return "features.0.weight" in keys


def cmu_stage_count(state: Mapping[str, torch.Tensor]) -> int:
    """Number of stages of a CMU state dict (``module.`` allowed): 1 + how many consecutive refinement
    stages have their first conv."""
    keys = frozenset(strip_module_prefix(state))
    _, key_of = _key_style(keys)
    num_stages = 1
    while key_of(ConvKeys("", f"Mconv1_stage{num_stages + 1}_L1", f"model{num_stages + 1}_1", 0), "weight") in keys:
        num_stages += 1
    return num_stages


# --------------------------------------------------------------------------- conversion
def convert_cmu_state_dict(state_dict: Mapping[str, torch.Tensor], num_stages: int = CMU_NUM_STAGES) -> dict[str, torch.Tensor]:
    """A CMU COCO body model state dict (``cmu_named`` or ``cmu_numbered``) -> our key names, tensors not copied.
    ``num_stages`` below the file's drops the later stages (the first stages are a valid shorter model).
    ValueError for another layout, a key missing or unexpected, or more stages than the file holds."""
    state = strip_module_prefix(state_dict)
    layout, key_of = _key_style(state)
    file_stages = cmu_stage_count(state)
    if num_stages < 1 or num_stages > file_stages:
        raise ValueError(f"num_stages={num_stages} requested but the CMU state dict holds {file_stages} stages")
    ours = {key_of(c, p): f"{c.ours}.{p}" for c in cmu_conv_table(file_stages) for p in PARAMS}
    missing, unexpected = set(ours) - set(state), set(state) - set(ours)
    if missing or unexpected:
        raise key_mismatch_error(f"CMU state dict ({layout}, {file_stages} stages)", missing, unexpected)
    if num_stages < file_stages:
        logger.info("CMU weights: keeping %d of %d stages", num_stages, file_stages)
    kept = {key_of(c, p) for c in cmu_conv_table(num_stages) for p in PARAMS}
    return {ours[theirs]: state[theirs] for theirs in ours if theirs in kept}


def convert_cmu(state: Mapping[str, torch.Tensor], source: str,
                all_stages: bool = False) -> tuple[PafSettings, dict[str, torch.Tensor]]:
    """The architecture table's converter of both CMU layouts: (the file's stage count, our state dict)."""
    num_stages = cmu_stage_count(state)
    return PafSettings(num_stages=num_stages), convert_cmu_state_dict(state, num_stages)
