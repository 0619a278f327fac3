"""The predictors under their first import path (their home is :mod:`openpose_lite.inference`).

``from openpose_lite.predictor import BottomUpPredictor, TopDownPredictor`` keeps working.
"""

from openpose_lite.inference.base import require_config
from openpose_lite.inference.bottomup import PHASES, BottomUpPredictor, scaled_input_height
from openpose_lite.inference.topdown import TopDownPipeline, TopDownPredictor

__all__ = ["PHASES", "BottomUpPredictor", "TopDownPipeline", "TopDownPredictor", "require_config", "scaled_input_height"]
