"""Inference: the bottom-up and top-down predictors, and the person boxes the top-down branch needs.

Nothing here imports training code, the COCO dataset readers or pycocotools: a predictor needs
only a weights file and images.
"""

from openpose_lite.inference.bottomup import BottomUpPredictor
from openpose_lite.inference.topdown import TopDownPipeline, TopDownPredictor

__all__ = ["BottomUpPredictor", "TopDownPipeline", "TopDownPredictor"]
