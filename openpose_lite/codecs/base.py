"""The codec contract both branches implement: keypoints <-> the maps a network is trained on.

A codec knows one channel layout (derived from its ``skeleton``) and one geometry (``stride``,
the cell convention). It is pure numpy/numba (no torch, no I/O, no randomness), so it pickles
into DataLoader workers. Shape legend: N people, K keypoints, C channels, h x w map size.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np

from openpose_lite.skeleton import Skeleton
from openpose_lite.structures import Poses


class Codec(abc.ABC):
    """Abstract base of :class:`~openpose_lite.codecs.BottomUpPafCodec` and :class:`~openpose_lite.codecs.TopDownHeatmapCodec`."""

    skeleton: Skeleton

    @property
    @abc.abstractmethod
    def stride(self) -> int:
        """Input pixels per output cell."""

    @abc.abstractmethod
    def channels(self) -> dict[str, int]:
        """``{output name: channel count}``."""

    @abc.abstractmethod
    def encode(self, keypoints: np.ndarray, input_hw: tuple[int, int] | None = None,
               ignore_mask: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One sample's targets and loss weights, both ``{output name: array}`` (weights broadcast against
        their targets); keypoints (N, K, 3) in input pixels."""

    @abc.abstractmethod
    def decode(self, outputs: Mapping[str, np.ndarray]) -> Poses:
        """People of one sample's maps (the last stage's ``{name: (C, h, w)}``), in input pixels."""

    @abc.abstractmethod
    def flip_outputs(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Maps of a mirrored input, brought back to the original's frame (the flip test); (C, h, w) or (B, C, h, w)."""

    def check_model(self, model: Any, where: str = "model") -> None:
        """Refuse a model whose stride or output channels differ from this codec's, naming both values.

        A mismatch would otherwise surface as a shape error deep in the loss or as people in the
        wrong place. Models without ``stride`` / ``skeleton`` attributes (test doubles) pass.
        """
        model_stride = getattr(model, "stride", None)
        if model_stride is not None and int(model_stride) != self.stride:
            raise ValueError(f"{where}: the codec's stride is {self.stride} but the model's output stride is "
                             f"{int(model_stride)} (set codec.stride / topdown.input_hw and heatmap_hw to match it)")
        skeleton = getattr(model, "skeleton", None)
        if skeleton is not None:
            theirs = {"heatmaps": skeleton.num_heatmaps, "pafs": skeleton.num_pafs}
            for name, count in self.channels().items():
                expected = theirs[name]
                if count != expected:
                    raise ValueError(f"{where}: the codec has {count} {name} channels ({self.skeleton.name}) but the "
                                     f"model {expected} ({skeleton.name})")
