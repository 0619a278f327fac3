"""Inference: the predictors, the one function that builds them, and the person boxes the top-down branch needs.

The one import point of the predictors (``from openpose_lite.inference import BottomUpPredictor``).
Nothing here imports training code, the COCO dataset readers or pycocotools: a predictor needs
only a weights file and images.
"""

from openpose_lite.inference.base import PredictorOptions, build_predictor, load_for_inference, require_checkpoint
from openpose_lite.inference.bottomup import PHASES, BottomUpPredictor, scaled_input_height
from openpose_lite.inference.topdown import TopDownPipeline, TopDownPredictor

__all__ = ["PHASES", "BottomUpPredictor", "PredictorOptions", "TopDownPipeline", "TopDownPredictor", "build_predictor",
           "load_for_inference", "require_checkpoint", "scaled_input_height"]
