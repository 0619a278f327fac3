"""Transforms: image, mask and keypoints move together; flips swap left and right."""

from __future__ import annotations

import numpy as np
import pytest

from openpose_lite.transforms import AugmentParams, random_affine, warp_sample
from openpose_lite.geometry import apply_affine
from openpose_lite.preprocess import PAD_VALUE, letterbox, to_network_input
from openpose_lite.skeleton import COCO_17

K = COCO_17.num_keypoints
LEFT_WRIST, RIGHT_WRIST = COCO_17.index("left_wrist"), COCO_17.index("right_wrist")
CROP = 96


def _blob_image(hw, points, channels):
    """Dark image with a Gaussian blob (sigma 2 px) at each (x, y), each in its own colour channel."""
    h, w = hw
    image = np.zeros((h, w, 3), dtype=np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    for (x, y), c in zip(points, channels):
        image[:, :, c] += 255.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    return np.clip(image, 0, 255).astype(np.uint8)


def _centroid(channel: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre (x, y) of the pixels above half the channel's peak."""
    weights = np.where(channel >= 0.5 * channel.max(), channel.astype(np.float64), 0.0)
    yy, xx = np.mgrid[0 : channel.shape[0], 0 : channel.shape[1]]
    return np.array([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()


def _keypoints(points: dict[int, tuple[float, float]]) -> np.ndarray:
    kps = np.zeros((1, K, 3), dtype=np.float32)
    for k, (x, y) in points.items():
        kps[0, k] = (x, y, 2)
    return kps


PARAMS = AugmentParams(crop_size=CROP, scale_min=0.7, scale_max=1.3, target_person_scale=0.6,
                       rotation_deg=40, center_jitter_px=8, flip_prob=0.5)


@pytest.mark.parametrize("seed", range(8))
def test_bright_pixel_moves_with_its_keypoint(seed):
    hw = (120, 160)
    left, right = (70.0, 55.0), (95.0, 65.0)
    image = _blob_image(hw, [left, right], channels=[0, 2])  # left wrist blue, right wrist red
    kps = _keypoints({LEFT_WRIST: left, RIGHT_WRIST: right})
    rng = np.random.default_rng(seed)
    matrix, flipped = random_affine(rng, hw, np.array([82.0, 60.0]), 60.0, PARAMS)
    # Black padding, so only the blobs are bright.
    out, _, out_kps = warp_sample(image, None, kps, matrix, (CROP, CROP), flipped, COCO_17, pad_value=0)
    blue_at, red_at = _centroid(out[:, :, 0]), _centroid(out[:, :, 2])
    if flipped:
        # Mirrored: the original left wrist (blue) now plays the right wrist, and vice versa.
        blue_at, red_at = red_at, blue_at
    assert np.linalg.norm(blue_at - out_kps[0, LEFT_WRIST, :2]) < 1.0
    assert np.linalg.norm(red_at - out_kps[0, RIGHT_WRIST, :2]) < 1.0


def test_both_flip_outcomes_are_covered_by_the_seeds_above():
    flips = {random_affine(np.random.default_rng(s), (120, 160), np.array([82.0, 60.0]), 60.0, PARAMS)[1]
             for s in range(8)}
    assert flips == {True, False}


def test_forced_flip_mirrors_and_swaps_left_right():
    params = AugmentParams(crop_size=CROP, scale_min=1, scale_max=1, rotation_deg=0, center_jitter_px=0, flip_prob=1)
    hw = (96, 96)
    kps = _keypoints({LEFT_WRIST: (30.0, 40.0), RIGHT_WRIST: (60.0, 40.0)})
    matrix, flipped = random_affine(np.random.default_rng(0), hw, np.array([47.5, 47.5]), 96 * 0.6, params)
    assert flipped
    _, _, out = warp_sample(np.zeros((96, 96, 3), np.uint8), None, kps, matrix, (CROP, CROP), flipped)
    # Scale 1, centred, mirrored: x -> 95 - x, and the labels swap.
    np.testing.assert_allclose(out[0, RIGHT_WRIST, :2], [65.0, 40.0], atol=1e-4)
    np.testing.assert_allclose(out[0, LEFT_WRIST, :2], [35.0, 40.0], atol=1e-4)


def test_main_person_is_scaled_to_target_fraction_of_crop():
    params = AugmentParams(crop_size=CROP, scale_min=1, scale_max=1, rotation_deg=0, center_jitter_px=0, flip_prob=0)
    head, foot = np.array([100.0, 20.0]), np.array([100.0, 220.0])
    matrix, _ = random_affine(np.random.default_rng(0), (300, 300), (head + foot) / 2, 200.0, params)
    top, bottom = apply_affine(matrix, np.stack([head, foot]))
    assert bottom[1] - top[1] == pytest.approx(0.6 * CROP)
    np.testing.assert_allclose((top + bottom) / 2, [(CROP - 1) / 2, (CROP - 1) / 2], atol=1e-9)


def test_same_seed_same_affine():
    a = random_affine(np.random.default_rng(5), (100, 100), np.array([50.0, 50.0]), 40.0, PARAMS)
    b = random_affine(np.random.default_rng(5), (100, 100), np.array([50.0, 50.0]), 40.0, PARAMS)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


@pytest.mark.parametrize("seed", range(4))
def test_mask_follows_the_image(seed):
    hw = (100, 130)
    image = np.zeros(hw + (3,), np.uint8)
    mask = np.zeros(hw, bool)
    image[20:60, 30:90] = 255
    mask[20:60, 30:90] = True
    matrix, flipped = random_affine(np.random.default_rng(seed), hw, np.array([60.0, 40.0]), 40.0, PARAMS)
    out_image, out_mask, _ = warp_sample(image, mask, np.zeros((0, K, 3)), matrix, (CROP, CROP), flipped,
                                         pad_value=0)
    bright = out_image[:, :, 0] >= 128
    assert out_mask.dtype == bool and out_mask.any()
    iou = (bright & out_mask).sum() / (bright | out_mask).sum()
    assert iou > 0.95


def test_border_outside_image_is_gray_and_not_ignored():
    hw = (40, 40)
    params = AugmentParams(crop_size=CROP, scale_min=1, scale_max=1, rotation_deg=0, center_jitter_px=0, flip_prob=0)
    # A 40 px person scaled to 0.6 * 96 px: the 40 x 40 image shrinks to ~58 px inside the 96 crop.
    matrix, flipped = random_affine(np.random.default_rng(0), hw, np.array([19.5, 19.5]), 40.0, params)
    out_image, out_mask, _ = warp_sample(np.zeros(hw + (3,), np.uint8), np.ones(hw, bool), np.zeros((0, K, 3)),
                                         matrix, (CROP, CROP), flipped)
    assert (out_image[0, 0] == PAD_VALUE).all() and not out_mask[0, 0]
    assert (out_image[CROP // 2, CROP // 2] == 0).all() and out_mask[CROP // 2, CROP // 2]


def test_points_outside_crop_keep_visibility_and_unlabelled_are_zeroed():
    params = AugmentParams(crop_size=CROP, scale_min=1, scale_max=1, rotation_deg=0, center_jitter_px=0, flip_prob=0)
    kps = _keypoints({0: (500.0, 50.0), 1: (50.0, 50.0)})
    kps[0, 2] = (30.0, 40.0, 0.0)  # unlabelled, with a stray position
    matrix, flipped = random_affine(np.random.default_rng(0), (600, 600), np.array([50.0, 50.0]), 96 * 0.6, params)
    _, _, out = warp_sample(np.zeros((600, 600, 3), np.uint8), None, kps, matrix, (CROP, CROP), flipped)
    assert out[0, 0, 0] > CROP and out[0, 0, 2] == 2
    np.testing.assert_array_equal(out[0, 2], [0.0, 0.0, 0.0])


def test_wrong_keypoint_count_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, 17, 3\)"):
        warp_sample(np.zeros((8, 8, 3), np.uint8), None, np.zeros((1, 18, 3)), np.eye(2, 3), (8, 8), False)


def test_augment_params_validate():
    with pytest.raises(ValueError, match="scale_min"):
        AugmentParams(scale_min=1.2, scale_max=1.1)


def test_letterbox_matrix_moves_pixels_like_the_image():
    hw = (150, 220)
    point = (150.0, 70.0)
    image = _blob_image(hw, [point], channels=[1])
    out, matrix = letterbox(image, target_height=96, stride=8, pad_value=0)
    assert out.shape[0] % 8 == 0 and out.shape[1] % 8 == 0 and out.shape[0] == 96
    expected = apply_affine(matrix, np.array(point))
    assert np.linalg.norm(_centroid(out[:, :, 1]) - expected) < 0.5
    gray, _ = letterbox(image, target_height=96, stride=8)
    assert gray.shape[1] == 144 and (gray[:, -1] == PAD_VALUE).all()  # 220 * 96 / 150 = 140.8 -> 144


def test_network_input_is_cmu_normalised_and_channels_first():
    image = np.zeros((4, 5, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 0, 128, 255
    x = to_network_input(image)
    assert x.shape == (3, 4, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0], [-0.5, 0.0, 255 / 256 - 0.5])
    assert to_network_input(np.stack([image, image])).shape == (2, 3, 4, 5)
