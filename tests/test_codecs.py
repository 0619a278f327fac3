"""Codec tests: numba kernels against numpy references, round trips, flips and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from openpose_lite.codecs import BottomUpPafCodec, GroupingParams, TopDownHeatmapCodec
from openpose_lite.codecs import heatmap as hm
from openpose_lite.codecs import paf as pf
from openpose_lite.codecs.grouping import limb_order
from openpose_lite.geometry import hflip_affine, transform_keypoints
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, coco_to_openpose

# A standing person in COCO-17 order, offsets in units of ~1/170 of body height from the hip centre.
_BODY = np.array(
    [
        (0, -80), (-5, -85), (5, -85), (-12, -82), (12, -82),
        (-25, -60), (25, -60), (-35, -30), (35, -30), (-40, 0), (40, 0),
        (-15, 0), (15, 0), (-17, 40), (17, 40), (-18, 80), (18, 80),
    ],
    dtype=np.float32,
)


def person(cx: float, cy: float, scale: float, visibility: float = 2.0) -> np.ndarray:
    """(17, 3) COCO keypoints of a standing person centred at (cx, cy), mirrored like a front view."""
    kps = np.empty((COCO_17.num_keypoints, 3), dtype=np.float32)
    # Front view: the person's left side is on the image's right.
    kps[:, 0] = cx - _BODY[:, 0] * scale
    kps[:, 1] = cy + _BODY[:, 1] * scale
    kps[:, 2] = visibility
    return kps


def three_people() -> np.ndarray:
    return np.stack([person(70.3, 180.6, 1.3), person(185.8, 190.2, 1.6), person(300.1, 175.4, 1.1)])


# ----------------------------------------------------------------- kernels vs numpy references
def test_gaussian_kernel_matches_numpy_reference_for_sum_and_max():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-4, 50, (60, 2))
    channels = rng.integers(0, 6, 60)
    for merge in ("sum", "max"):
        fast = hm.render_gaussians(xy, channels, 6, (46, 40), 0.875, merge)
        ref = hm.render_gaussians_numpy(xy, channels, 6, (46, 40), 0.875, merge)
        np.testing.assert_allclose(fast, ref, atol=1e-6)
        assert fast.max() <= 1.0


def test_paf_kernel_matches_numpy_reference_including_overlaps():
    rng = np.random.default_rng(1)
    a = rng.uniform(-5, 50, (40, 2))
    b = rng.uniform(-5, 50, (40, 2))
    limbs = rng.integers(0, 3, 40)
    fast = pf.render_pafs(a, b, limbs, 3, (46, 46), 1.0)
    ref = pf.render_pafs_numpy(a, b, limbs, 3, (46, 46), 1.0)
    np.testing.assert_allclose(fast, ref, atol=1e-6)
    # Overlapping segments of one type average: no vector is longer than a unit vector.
    norms = np.hypot(fast[0::2], fast[1::2])
    assert norms.max() <= 1.0 + 1e-5
    assert ((norms > 0.01) & (norms < 0.99)).any()


def test_local_maxima_kernel_matches_numpy_reference_with_plateaus():
    rng = np.random.default_rng(2)
    maps = rng.random((4, 30, 25)).astype(np.float32)
    maps[1, 5:8, 5:8] = 0.95  # a plateau must yield exactly one peak
    maps[2] = np.round(maps[2] * 4) / 4  # many ties
    fast = hm.find_local_maxima(maps, 0.3)
    ref = hm.find_local_maxima_numpy(maps, 0.3)
    for f, r in zip(fast, ref):
        np.testing.assert_array_equal(f, r)
    plateau = [(c, y, x) for c, y, x in zip(*fast) if c == 1 and 5 <= y < 8 and 5 <= x < 8]
    assert len(plateau) == 1


def test_limb_score_kernel_matches_numpy_reference():
    rng = np.random.default_rng(3)
    field = rng.normal(size=(2, 20, 24)).astype(np.float32)
    a = rng.uniform(-1, 25, (7, 2))
    b = rng.uniform(-1, 25, (5, 2))
    b[0] = a[0]  # a degenerate, zero-length candidate
    fast = pf.limb_scores(field[0], field[1], a, b, 10, 0.05)
    ref = pf.limb_scores_numpy(field[0], field[1], a, b, 10, 0.05)
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f, r, atol=1e-9)


def test_limb_score_of_rendered_limb_is_one_along_it_and_low_across_it():
    field = pf.render_pafs(np.array([[5.0, 10.0]]), np.array([[20.0, 10.0]]), np.array([0]), 1, (20, 30), 1.0)
    mean, fraction = pf.limb_scores(field[0], field[1], np.array([[5.0, 10.0]]), np.array([[20.0, 10.0], [5.0, 2.0]]))
    assert mean[0, 0] == pytest.approx(1.0) and fraction[0, 0] == 1.0
    assert mean[0, 1] < 0.2


# ----------------------------------------------------------------------------- bottom-up codec
def test_bottomup_channels_derive_from_skeleton():
    codec = BottomUpPafCodec()
    assert codec.channels() == {"heatmaps": OPENPOSE_18.num_heatmaps, "pafs": OPENPOSE_18.num_pafs}
    targets, weights = codec.encode(three_people(), (368, 368))
    assert targets["heatmaps"].shape == (19, 46, 46) and targets["pafs"].shape == (38, 46, 46)
    assert weights["heatmaps"].shape == (1, 46, 46) and targets["heatmaps"].dtype == np.float32


def test_bottomup_heatmap_peaks_sit_on_cell_centres_with_cmu_gaussian():
    codec = BottomUpPafCodec()
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, 0] = (8 * 10 + 3.5, 8 * 20 + 3.5, 2)  # exactly the centre of cell (x=10, y=20)
    targets, _ = codec.encode(kps, (368, 368))
    nose = targets["heatmaps"][OPENPOSE_18.index("nose")]
    assert nose[20, 10] == pytest.approx(1.0)
    assert nose[20, 11] == pytest.approx(np.exp(-(8.0**2) / (2 * 7.0**2)), rel=1e-5)
    assert nose[20, 14] == 0.0  # exp(-32^2 / 98) < 1%: cut
    background = targets["heatmaps"][-1]
    assert background[20, 10] == pytest.approx(0.0) and background[0, 0] == pytest.approx(1.0)


def test_bottomup_round_trip_returns_every_person_complete_within_one_pixel():
    codec = BottomUpPafCodec()
    truth = three_people()
    targets, _ = codec.encode(truth, (368, 368))
    poses = codec.decode(targets).as_skeleton(COCO_17)
    assert len(poses) == len(truth)
    for found in poses.keypoints:
        errors = np.linalg.norm(found[None, :, :2] - truth[:, :, :2], axis=-1).max(axis=1)
        assert errors.min() <= 1.0
        assert (found[:, 2] > 0).all()


def test_bottomup_round_trip_on_non_square_input_and_partial_people():
    codec = BottomUpPafCodec()
    truth = np.stack([person(100.2, 150.7, 1.2), person(420.5, 160.1, 1.0)])
    truth[1, [9, 15], 2] = 0  # unlabelled left wrist and ankle
    targets, _ = codec.encode(truth, (296, 504))
    poses = codec.decode(targets).as_skeleton(COCO_17)
    assert len(poses) == 2
    for found in poses.keypoints:
        k = np.argmin(np.abs(found[0, 0] - truth[:, 0, 0]))
        labelled = truth[k, :, 2] > 0
        np.testing.assert_array_equal(found[:, 2] > 0, labelled)
        assert np.abs(found[labelled, :2] - truth[k, labelled, :2]).max() <= 1.0


def test_flip_outputs_of_mirrored_targets_equal_original_targets():
    codec = BottomUpPafCodec()
    truth = three_people()
    width = 368
    mirrored = transform_keypoints(hflip_affine(width), truth)
    mirrored = mirrored[:, COCO_17.flip_permutation]  # a mirrored person's left is the original's right
    original, _ = codec.encode(truth, (368, width))
    flipped, _ = codec.encode(mirrored, (368, width))
    back = codec.flip_outputs(flipped)
    np.testing.assert_allclose(back["heatmaps"], original["heatmaps"], atol=1e-5)
    np.testing.assert_allclose(back["pafs"], original["pafs"], atol=1e-5)


def test_ignore_mask_sets_zero_weight_on_covered_cells_only():
    codec = BottomUpPafCodec()
    mask = np.zeros((64, 64), bool)
    mask[:16, :16] = True  # cells (0..1, 0..1) fully ignored
    mask[16:20, 16:24] = True  # cell (2, 2) half ignored
    _, weights = codec.encode(three_people()[:0], (64, 64), mask)
    w = weights["heatmaps"][0]
    assert w[:2, :2].max() == 0.0
    assert w[2, 2] == pytest.approx(0.5)
    assert w[4:, 4:].min() == 1.0


def test_no_people_gives_background_only_targets_and_empty_decode():
    codec = BottomUpPafCodec()
    targets, _ = codec.encode(np.zeros((0, 17, 3), np.float32), (64, 96))
    assert targets["heatmaps"][:-1].max() == 0.0 and targets["heatmaps"][-1].min() == 1.0
    assert np.abs(targets["pafs"]).max() == 0.0
    assert len(codec.decode(targets)) == 0


def test_keypoints_outside_the_image_are_rendered_only_where_they_reach():
    codec = BottomUpPafCodec()
    kps = person(30.0, 100.0, 1.0)[None]
    kps[0, :, 0] -= 60.0  # the right half of the body is off the left edge
    targets, _ = codec.encode(kps, (256, 256))
    assert np.isfinite(targets["heatmaps"]).all() and np.isfinite(targets["pafs"]).all()
    poses = codec.decode(targets)
    assert len(poses) >= 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 16, 3), np.float32), "shape"),
        (np.zeros((2, 17), np.float32), "shape"),
        (np.array([[["a", "b", "c"]] * 17]), "dtype"),
    ],
)
def test_encode_rejects_bad_keypoint_arrays_with_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        BottomUpPafCodec().encode(bad, (64, 64))


def test_encode_rejects_nan_in_labelled_keypoints_but_not_in_unlabelled_ones():
    codec = BottomUpPafCodec()
    kps = person(30, 30, 0.2)[None]
    kps[0, 3, :2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(kps, (64, 64))
    kps[0, 3, 2] = 0
    codec.encode(kps, (64, 64))


def test_encode_and_decode_reject_wrong_sizes_and_channels():
    codec = BottomUpPafCodec()
    with pytest.raises(ValueError, match="ignore_mask"):
        codec.encode(three_people(), (64, 64), np.zeros((32, 32), bool))
    with pytest.raises(ValueError, match="input_hw"):
        codec.encode(three_people(), (0, 64))
    with pytest.raises(ValueError, match="heatmaps"):
        codec.decode({"heatmaps": np.zeros((18, 8, 8)), "pafs": np.zeros((38, 8, 8))})
    with pytest.raises(ValueError, match="pafs"):
        codec.decode({"heatmaps": np.zeros((19, 8, 8)), "pafs": np.zeros((38, 8, 9))})


def test_max_merge_keeps_two_close_peaks_that_sum_merge_clips():
    kps = np.stack([person(100.0, 150.0, 1.0), person(112.0, 150.0, 1.0)])
    summed, _ = BottomUpPafCodec(heatmap_merge="sum").encode(kps, (296, 296))
    maxed, _ = BottomUpPafCodec(heatmap_merge="max").encode(kps, (296, 296))
    assert summed["heatmaps"][:-1].max() == pytest.approx(1.0)
    assert (maxed["heatmaps"][:-1] <= summed["heatmaps"][:-1] + 1e-6).all()
    assert (maxed["heatmaps"][:-1] < summed["heatmaps"][:-1] - 1e-3).any()


def test_limb_order_starts_at_neck_and_ends_with_redundant_shoulder_ear_limbs():
    order = limb_order(OPENPOSE_18)
    assert sorted(order) == list(range(OPENPOSE_18.num_limbs))
    assert OPENPOSE_18.keypoints[OPENPOSE_18.limbs[order[0]][0]] == "neck"
    assert order[-2:] == OPENPOSE_18.redundant_limbs


def test_rootless_fragments_merge_only_when_enabled():
    # Legs only: two chains that no limb joins, since the neck is missing.
    kps = person(150.0, 150.0, 1.2)[None]
    kps[0, :11, 2] = 0
    targets, _ = BottomUpPafCodec().encode(kps, (296, 296))
    merged = BottomUpPafCodec().decode(targets)
    split = BottomUpPafCodec(grouping=GroupingParams(merge_rootless=0.0)).decode(targets)
    assert len(merged) == 1 and (merged.keypoints[0, :, 2] > 0).sum() == 6
    assert len(split) == 2


def test_person_scores_rank_complete_people_above_fragments():
    kps = np.stack([person(80.0, 150.0, 1.0), person(220.0, 150.0, 1.0)])
    kps[1, 5:, 2] = 0  # the second person shows only the face
    targets, _ = BottomUpPafCodec().encode(kps, (296, 296))
    poses = BottomUpPafCodec().decode(targets)
    assert len(poses) == 2 and poses.scores[0] > poses.scores[1]
    assert abs(poses.keypoints[0, 0, 0] - 80.0) < 1.0


# ------------------------------------------------------------------------------ top-down codec
def _crop_keypoints(rng: np.random.Generator) -> np.ndarray:
    kps = np.zeros((17, 3), np.float32)
    kps[:, 0] = rng.uniform(16, 176, 17)
    kps[:, 1] = rng.uniform(16, 240, 17)
    kps[:, 2] = 2
    return kps


def test_topdown_dark_recovers_non_integer_centres_within_a_tenth_of_a_cell():
    codec = TopDownHeatmapCodec(refine="dark")
    rng = np.random.default_rng(4)
    for _ in range(5):
        kps = _crop_keypoints(rng)
        targets, target_weights = codec.encode(kps)
        weights = target_weights["heatmaps"].reshape(-1)
        decoded = codec.decode(targets).keypoints[0]
        assert weights.min() == 1.0
        assert np.abs(decoded[:, :2] - kps[:, :2]).max() / codec.stride < 0.1


def test_topdown_dark_beats_quarter_offset_beats_argmax():
    rng = np.random.default_rng(5)
    errors = {}
    for method in ("dark", "quarter", "none"):
        codec = TopDownHeatmapCodec(refine=method)
        rng = np.random.default_rng(5)
        err = []
        for _ in range(10):
            kps = _crop_keypoints(rng)
            decoded = codec.decode(codec.encode(kps)[0]).keypoints[0]
            err.append(np.linalg.norm(decoded[:, :2] - kps[:, :2], axis=1).mean())
        errors[method] = float(np.mean(err))
    assert errors["dark"] < errors["quarter"] < errors["none"]


def test_topdown_weights_are_zero_for_unlabelled_and_far_outside_keypoints():
    codec = TopDownHeatmapCodec()
    kps = _crop_keypoints(np.random.default_rng(6))
    kps[3, 2] = 0
    kps[4, :2] = (-100.0, 50.0)
    targets, target_weights = codec.encode(kps)
    heatmaps, weights = targets["heatmaps"], target_weights["heatmaps"].reshape(-1)
    assert weights[3] == 0 and weights[4] == 0 and weights.sum() == 15
    assert heatmaps[3].max() == 0 and heatmaps[4].max() == 0


def test_topdown_flip_of_mirrored_crop_heatmaps_equals_plain_heatmaps():
    codec = TopDownHeatmapCodec()
    kps = _crop_keypoints(np.random.default_rng(7))
    mirrored = transform_keypoints(hflip_affine(codec.input_hw[1]), kps[None])[0][COCO_17.flip_permutation]
    plain = codec.encode(kps)[0]["heatmaps"]
    flipped = codec.encode(mirrored)[0]["heatmaps"]
    np.testing.assert_allclose(codec.flip_heatmaps(flipped), plain, atol=1e-6)
    # The HRNet convention shifts the mirrored maps one cell right (its reference's flip test).
    hrnet = dataclasses.replace(codec, convention="hrnet")
    shifted = hrnet.flip_heatmaps(flipped)
    np.testing.assert_allclose(shifted[..., 1:], codec.flip_heatmaps(flipped)[..., :-1], atol=1e-6)


def test_topdown_shares_the_bottomup_gaussian_and_refinement_functions():
    import openpose_lite.codecs.bottomup as bu
    import openpose_lite.codecs.topdown as td

    assert td.render_gaussians is bu.render_gaussians is hm.render_gaussians
    assert td.refine_peaks is hm.refine_peaks
    assert bu.find_peaks is hm.find_peaks


def test_topdown_rejects_bad_shapes():
    codec = TopDownHeatmapCodec()
    with pytest.raises(ValueError, match="keypoints"):
        codec.encode(np.zeros((18, 3)))
    with pytest.raises(ValueError, match="heatmaps"):
        codec.decode({"heatmaps": np.zeros((16, 64, 48))})
    with pytest.raises(ValueError, match="multiple"):
        TopDownHeatmapCodec(input_hw=(256, 192), heatmap_hw=(60, 48))


def test_codecs_pickle_for_dataloader_workers():
    import pickle

    codec = BottomUpPafCodec(grouping=GroupingParams(min_parts=3))
    assert pickle.loads(pickle.dumps(codec)) == codec
    assert coco_to_openpose(three_people()).shape == (3, 18, 3)


def test_numba_and_numpy_backends_give_the_same_targets_and_people():
    truth = three_people()
    fast, slow = BottomUpPafCodec(), BottomUpPafCodec(backend="numpy")
    t_fast, _ = fast.encode(truth, (368, 368))
    t_slow, _ = slow.encode(truth, (368, 368))
    for key in t_fast:
        np.testing.assert_allclose(t_fast[key], t_slow[key], atol=1e-6)
    p_fast, p_slow = fast.decode(t_fast), slow.decode(t_fast)
    np.testing.assert_allclose(p_fast.keypoints, p_slow.keypoints, atol=1e-5)
    np.testing.assert_allclose(p_fast.scores, p_slow.scores, atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        BottomUpPafCodec(backend="cuda")


def test_limb_scores_early_stop_keeps_every_passing_pair_exact():
    rng = np.random.default_rng(8)
    a = rng.uniform(0, 30, (12, 2))
    b = a + rng.normal(0, 4, (12, 2))
    field = pf.render_pafs(a, b, np.zeros(12, np.int64), 1, (32, 32), 1.0)
    cand_b = np.concatenate([b, rng.uniform(0, 30, (6, 2))])
    full_mean, full_frac = pf.limb_scores(field[0], field[1], a, cand_b)
    mean, frac = pf.limb_scores(field[0], field[1], a, cand_b, min_fraction=0.8)
    passing = full_frac > 0.8
    assert passing.sum() >= 6 and (~passing).sum() > 0
    np.testing.assert_array_equal(frac > 0.8, passing)
    np.testing.assert_allclose(mean[passing], full_mean[passing])
    assert (frac <= full_frac).all()
