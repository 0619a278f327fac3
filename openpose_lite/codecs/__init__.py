"""Codecs: everything that knows a channel layout. Pure numpy + numba."""

from openpose_lite.codecs.bottomup import BottomUpPafCodec
from openpose_lite.codecs.grouping import GroupingParams
from openpose_lite.codecs.topdown import TopDownHeatmapCodec

__all__ = ["BottomUpPafCodec", "GroupingParams", "TopDownHeatmapCodec"]
