"""openpose_lite: multi-person 2D pose estimation (OpenPose bottom-up, HRNet top-down) in PyTorch."""

import os as _os
import sys as _sys

# The largest image (width x height) read unless told otherwise (--max-image-pixels,
# data.max_image_pixels): 134 megapixels, e.g. 16384 x 8192, 400 MB decoded. Larger images are
# refused from their header (openpose_lite.images). OpenCV reads its own limit once, when it is
# first imported; set here, before any module of the package imports it, so that a format the
# package reads no header of is decoded under the same bound (the environment's value wins).
DEFAULT_MAX_IMAGE_PIXELS = 1 << 27
_OPENCV_DEFAULT_MAX_PIXELS = 1 << 30  # OpenCV's CV_IO_MAX_IMAGE_PIXELS default
if "cv2" not in _sys.modules:
    _os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_IMAGE_PIXELS))
try:
    OPENCV_MAX_PIXELS = int(_os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", _OPENCV_DEFAULT_MAX_PIXELS))
except ValueError:
    OPENCV_MAX_PIXELS = _OPENCV_DEFAULT_MAX_PIXELS

# OpenMP threads that wait for work sleep instead of spinning (libgomp spins about 3 ms by default),
# set before torch loads its OpenMP runtime, which reads the variable once. On a CPU shared with
# another job a spinning thread takes the core the working thread needs: with the spin, 2 threads
# were up to 3x slower than one (docs/benchmarks.md, "Threads on a busy CPU"); without it they keep
# their speed on an idle CPU. Either variable set by the user wins (OMP_WAIT_POLICY=ACTIVE, or
# GOMP_SPINCOUNT, restores a spin).
if "torch" not in _sys.modules and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(_os.environ):
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton  # noqa: E402

__all__ = ["COCO_17", "DEFAULT_MAX_IMAGE_PIXELS", "OPENCV_MAX_PIXELS", "OPENPOSE_18", "Skeleton"]
__version__ = "0.1.0"
