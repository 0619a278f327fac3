"""Training data: COCO-format files on disk, generated scenes and videos, and the one sample pipeline.

``coco`` reads COCO keypoint files (checked by :mod:`openpose_lite.coco.validation`, the check evaluation shares);
``people`` lists the person crops of the top-down branch; ``samples`` turns either branch's items into network
inputs and codec targets; ``figures``, ``synthetic`` and ``synthetic_video`` generate annotated
scenes and videos.
"""
