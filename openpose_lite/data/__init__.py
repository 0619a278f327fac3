"""Datasets: COCO-format keypoint data on disk and generated synthetic scenes."""
