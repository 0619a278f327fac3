"""The branch table: the ways the project finds people, one row each: what is the same for every network
of a kind (skeleton layout, codec, predictor, datasets, loss, AP, oracle). Each architecture row names its branch.

* ``bottomup``: whole images -> PAF model -> people grouped by part affinity fields;
* ``topdown``: person boxes -> crops -> heatmap model -> one person per box.

**Adding a branch** is one module plus one row here, naming its functions as ``"module:function"``
references (imported on first use, so this table imports no torch):

* ``codec(cfg: Config, skeleton=...) -> Codec``: the codec a config describes;
* ``predictor``: a :class:`~openpose_lite.inference.base.Predictor` subclass with
  ``from_config(model, codec, cfg, options)`` (its settings from the config and
  :class:`~openpose_lite.inference.base.PredictorOptions`), ``calibration_set``, ``example_input_hw``
  and ``describe``;
* ``datasets(cfg, data, codec) -> (train, val or None)``, ``loss(outputs, targets, weights) -> {term: loss}``
  and ``ap(model, cfg, ann, images, device, max_images=0, progress=False) -> metrics`` for training;
* ``oracle(ann_file, codec, progress=False, **geometry) -> COCO results``: ground truth through the codec.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton

__all__ = ["BRANCHES", "Branch", "branch", "resolve"]


def resolve(ref: str) -> Callable[..., Any]:
    """The function a ``"package.module:function"`` reference names (imported on first use)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Branch:
    """One row of the branch table. ``layout`` turns any skeleton into the one its networks carry;
    ``needs_boxes``: its predictor runs on person boxes. ``options``: the decoding options of ``eval`` and
    ``infer`` that apply to it; the command line leaves the others out, so they keep the model's settings.
    """

    name: str
    title: str
    person_skeleton: Skeleton
    layout: Callable[[Skeleton], Skeleton]
    codec: str
    predictor: str
    needs_boxes: bool
    options: tuple[str, ...]
    datasets: str
    loss: str
    ap: str
    sample_kind: str
    oracle: str

    def build_codec(self, cfg: Any = None, skeleton: Skeleton | None = None) -> Any:
        """The codec ``cfg`` (a :class:`~openpose_lite.config.Config`; None: the defaults) describes for
        ``skeleton`` (default: the person), in this branch's layout."""
        return resolve(self.codec)(cfg, skeleton=skeleton or self.person_skeleton)

    # The functions the row names, resolved (signatures in the module docstring).
    predictor_class = property(lambda self: resolve(self.predictor))
    build_datasets = property(lambda self: resolve(self.datasets))
    loss_terms = property(lambda self: resolve(self.loss))
    evaluate_ap = property(lambda self: resolve(self.ap))
    oracle_results = property(lambda self: resolve(self.oracle))


BRANCHES: tuple[Branch, ...] = (
    Branch(name="bottomup", title="bottom-up", person_skeleton=OPENPOSE_18, layout=Skeleton.bottomup_layout,
           codec="openpose_lite.config:build_bottomup_codec",
           predictor="openpose_lite.inference.bottomup:BottomUpPredictor", needs_boxes=False,
           options=("input_size", "peak_threshold", "refine", "blur_kernel"),
           datasets="openpose_lite.training.data:bottomup_datasets",
           loss="openpose_lite.training.branches:bottomup_loss_terms", ap="openpose_lite.training.branches:bottomup_ap",
           sample_kind="training images", oracle="openpose_lite.oracle:bottomup_oracle_results"),
    Branch(name="topdown", title="top-down", person_skeleton=COCO_17, layout=Skeleton.annotation_layout,
           codec="openpose_lite.config:build_topdown_codec",
           predictor="openpose_lite.inference.topdown:TopDownPredictor", needs_boxes=True, options=("refine",),
           datasets="openpose_lite.training.data:topdown_datasets",
           loss="openpose_lite.training.branches:topdown_loss_terms", ap="openpose_lite.training.branches:topdown_ap",
           sample_kind="person crops", oracle="openpose_lite.oracle:topdown_oracle_results"),
)

_BY_NAME: dict[str, Branch] = {b.name: b for b in BRANCHES}


def branch(name: str) -> Branch:
    """The row of ``name``; ValueError listing the known branches otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown branch {name!r}; known: {', '.join(_BY_NAME)}") from None
