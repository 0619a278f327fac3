"""Shared test fixtures: the COCO sample's location and the ``slow`` marker.

The real COCO sample lives beside the checkout in ``../shared/data/coco_sample`` (see its
README); it is never copied into the repository, and every test that needs it skips with
the one reason below when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

COCO_SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_sample"
COCO_SAMPLE_ANN = COCO_SAMPLE_DIR / "person_keypoints.json"
COCO_SAMPLE_VAL_ANN = COCO_SAMPLE_DIR / "person_keypoints_val2017only.json"
COCO_SAMPLE_IMAGES = COCO_SAMPLE_DIR / "images"
SKIP_REASON = "the COCO sample (../shared/data/coco_sample) is not available"

needs_coco_sample = pytest.mark.skipif(not COCO_SAMPLE_VAL_ANN.is_file(), reason=SKIP_REASON)
