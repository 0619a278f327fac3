"""openpose_lite: multi-person 2D pose estimation (OpenPose bottom-up, HRNet top-down) in PyTorch."""

from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton

__all__ = ["COCO_17", "OPENPOSE_18", "Skeleton"]
__version__ = "0.1.0"
