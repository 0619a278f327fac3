"""The bottom-up input bound: inputs beyond it are scaled to fit (and people still come back where
they were drawn); degenerate images are refused, by name, before anything runs."""

from __future__ import annotations

import numpy as np
import pytest
from test_predictor import GroundTruthMaps, make_scene, max_error_px

from openpose_lite.codecs import BottomUpPafCodec
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.inference import BottomUpPredictor, scaled_input_height
from openpose_lite.preprocess import InputBound, letterbox

CODEC = BottomUpPafCodec(refine="dark", blur_kernel=0)


class BoundedGroundTruthMaps(GroundTruthMaps):
    """Returns the encoded ground truth of the scene it is shown, recognised among the scenes
    letterboxed (within ``bound``) to any of ``heights``, possibly mirrored: an input built in
    any other way (a wrong scale, padding in the wrong place) matches nothing and fails."""

    def __init__(self, scenes, codec: BottomUpPafCodec, bound: InputBound, heights) -> None:
        super().__init__(scenes, codec)
        self.bound, self.heights = bound, heights

    def _candidates(self, h: int, w: int):
        for image, keypoints in self.scenes:
            for height in self.heights:
                boxed, matrix = letterbox(image, height, self.codec.stride, bound=self.bound)
                if boxed.shape[0] <= h and boxed.shape[1] <= w:
                    yield boxed, matrix, keypoints


def test_letterbox_scales_an_image_beyond_the_bound_to_fit_exactly_as_its_matrix_says():
    bound = InputBound(max_side=2944, max_pixels=2**21)
    image = np.zeros((100, 3000, 3), np.uint8)
    image[:, 1500] = 255  # a marker column whose position the matrix must predict
    boxed, matrix = letterbox(image, 368, 8, bound=bound)
    assert boxed.shape[1] <= 2944 + 7 and boxed.shape[0] < 368
    assert matrix[0, 0] == pytest.approx(2944 / 3000)
    column = int(np.argmax(boxed[boxed.shape[0] // 2, :, 0]))
    assert abs(column - transform_keypoints(matrix, np.array([[[1500.0, 50.0, 1.0]]]))[0, 0, 0]) <= 1


def test_letterbox_affine_keeps_both_the_longest_side_and_the_pixel_count_bounds():
    matrix, (h, w) = letterbox_affine((1000, 1000), 2048, 8, max_side=4096, max_pixels=1_000_000)
    assert h * w <= 1_000_000 + 8 * 1008 and matrix[0, 0] == pytest.approx(1.0)
    matrix, (h, w) = letterbox_affine((480, 640), 368, 8, max_side=2944, max_pixels=2**21)
    assert (h, w) == (368, 496) and matrix[0, 0] == pytest.approx(368 / 480)  # the paper's use: untouched


@pytest.mark.parametrize("image_hw, expected", [
    ((1, 2000), "2000x1 px (width x height): an aspect ratio of 2000:1 is beyond the 32:1"),
    ((3000, 1), "1x3000 px (width x height): an aspect ratio of 3000:1 is beyond"),
    ((2, 2000), "becomes 2944x3 px at input height 368"),
    ((480, 640), None),
    ((100, 3000), None),
])
def test_degenerate_images_are_named_with_what_is_wrong(image_hw, expected):
    bound = InputBound(max_aspect=2000.0) if image_hw == (2, 2000) else InputBound()
    problem = bound.problem(image_hw, [368])
    assert problem is None if expected is None else expected in problem


def test_the_predictor_refuses_a_degenerate_image_before_running_anything():
    model = BoundedGroundTruthMaps([], CODEC, InputBound(), [])
    predictor = BottomUpPredictor(model, CODEC, input_size=128, device="cpu")
    good = np.zeros((64, 64, 3), np.uint8)
    assert predictor.input_problem((1, 2000)) is not None and predictor.input_problem((64, 64)) is None
    with pytest.raises(ValueError, match=r"images\[1\]: 2000x1 px"):
        predictor.predict_batch([good, np.zeros((1, 2000, 3), np.uint8)])


@pytest.mark.parametrize("scales, flip, tolerance", [((1.0,), False, 0.5), ((1.0, 0.5), True, 2.0)],
                         ids=["single-scale", "multi-scale+flip"])
def test_an_image_scaled_to_fit_the_bound_gives_back_its_people_in_image_pixels(scales, flip, tolerance):
    # One image beyond the bound (600 px wide at input 128 would be 384 > 320) and one within it,
    # in one batch: the first is fitted (and padded at the bottom), the second is as before.
    bound = InputBound(max_side=320)
    scenes = [make_scene(5, (200, 600), people=1), make_scene(6, (160, 160), people=1)]
    heights = sorted({scaled_input_height(128, s, 8) for s in scales} | {128})
    model = BoundedGroundTruthMaps(scenes, CODEC, bound, heights)
    predictor = BottomUpPredictor(model, CODEC, input_size=128, scales=scales, flip=flip, device="cpu",
                                  input_bound=bound)
    maps = predictor.predict_maps([image for image, _ in scenes])
    assert maps[0]["input_hw"].tolist() == [112, 320]  # 600 x 200 scaled by 320 / 600, padded to 8
    for poses, (_, truth) in zip(predictor.predict_batch([image for image, _ in scenes]), scenes):
        assert max_error_px(poses, truth) < tolerance
