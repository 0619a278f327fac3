"""Top-down data: person crops, HRNet augmentation, target weights, instances from COCO and detections."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO_SAMPLE_ANN, COCO_SAMPLE_IMAGES, needs_coco_sample
from torch.utils.data import DataLoader

from openpose_lite.codecs.topdown import TopDownHeatmapCodec
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.data.people import (
    PersonInstance,
    TopDownInstances,
    detection_instances,
    person_instances,
)
from openpose_lite.data.samples import TopDownDataset
from openpose_lite.transforms import (
    TopDownAugmentParams,
    body_halves,
    half_body_transform,
)
from openpose_lite.geometry import apply_affine, box_to_center_scale
from openpose_lite.inference.boxes import sanitize_box
from openpose_lite.losses import keypoint_mse_loss
from openpose_lite.preprocess import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    crop_person,
    to_imagenet_input,
)
from openpose_lite.skeleton import COCO_17

K = COCO_17.num_keypoints
CODEC = TopDownHeatmapCodec()  # 256 x 192 crops, 64 x 48 heatmaps

# A front-facing person (its left side on the image's right), keypoints >= 5.6 px apart, with a
# sub-pixel offset so nothing sits on the pixel grid by accident.
_LAYOUT = {
    "nose": (40, 20), "left_eye": (44, 16), "right_eye": (36, 16), "left_ear": (48, 20), "right_ear": (32, 20),
    "left_shoulder": (50, 30), "right_shoulder": (30, 30), "left_elbow": (54, 42.5), "right_elbow": (26, 42.5),
    "left_wrist": (56, 54), "right_wrist": (24, 54), "left_hip": (46, 55), "right_hip": (34, 55),
    "left_knee": (47, 70), "right_knee": (33, 70), "left_ankle": (48, 85), "right_ankle": (32, 85),
}
_OFFSET = np.array([5.3, 8.6])
IMAGE_HW = (110, 90)


def _person_keypoints() -> np.ndarray:
    kps = np.zeros((K, 3), np.float32)
    for name, xy in _LAYOUT.items():
        kps[COCO_17.index(name)] = [*(np.asarray(xy) + _OFFSET), 2]
    return kps


def _tight_box(kps: np.ndarray, margin: float = 3.0) -> np.ndarray:
    pts = kps[kps[:, 2] > 0, :2]
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def _blob_image(hw: tuple[int, int], points: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """Black BGR image with a bright Gaussian blob on every point (x, y)."""
    yy, xx = np.mgrid[: hw[0], : hw[1]].astype(np.float64)
    gray = np.zeros(hw)
    for x, y in points:
        gray += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    gray = np.clip(gray * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _blob_centre(gray: np.ndarray, xy: np.ndarray, radius: int = 5) -> np.ndarray | None:
    """Intensity centroid of the window around ``xy``; None when the window leaves the image."""
    cx, cy = int(round(float(xy[0]))), int(round(float(xy[1])))
    h, w = gray.shape
    if not (radius <= cx < w - radius and radius <= cy < h - radius):
        return None
    patch = gray[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1].astype(np.float64)
    assert patch.max() > 100, f"no bright blob near {xy}"
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return np.array([cx + (patch * xx).sum() / patch.sum(), cy + (patch * yy).sum() / patch.sum()])


def _instances(kps: np.ndarray, image: np.ndarray, box: np.ndarray | None = None) -> TopDownInstances:
    box = _tight_box(kps) if box is None else box
    people = [PersonInstance(0, kps, box, float(box[2] * box[3]), image_id=7)]
    return TopDownInstances(people, [image].__getitem__)


def _synthetic_dataset(params: TopDownAugmentParams, train: bool = True, seed: int = 0) -> TopDownDataset:
    kps = _person_keypoints()
    return TopDownDataset(_instances(kps, _blob_image(IMAGE_HW, kps[:, :2])), CODEC, params, train=train, seed=seed)


# ------------------------------------------------------------------------------ boxes
def test_sanitize_box_keeps_inside_boxes_clips_overhangs_and_drops_degenerate_ones():
    np.testing.assert_allclose(sanitize_box([10, 20, 30, 40], (100, 100)), [10, 20, 30, 40])
    # Overhanging left/top and right/bottom: edges clipped to -0.5 and W - 0.5.
    np.testing.assert_allclose(sanitize_box([-10, -5, 30, 20], (100, 100)), [0, 0, 20, 15])
    np.testing.assert_allclose(sanitize_box([90, 95, 30, 20], (100, 100)), [90, 95, 10, 5])
    for degenerate in ([10, 10, 0, 20], [10, 10, 20, 0], [10, 10, -5, 20], [200, 10, 20, 20],
                       [10, -50, 20, 20], [np.nan, 10, 20, 20], [10, 10, np.inf, 20]):
        assert sanitize_box(degenerate, (100, 100)) is None, degenerate
    with pytest.raises(ValueError, match="bbox_xywh"):
        sanitize_box([1, 2, 3], (100, 100))


# ------------------------------------------------------------------------------ crops
def test_crop_person_moves_a_bright_pixel_exactly_as_its_matrix_with_rotation_and_flip():
    point = np.array([37.3, 52.6])
    image = _blob_image((100, 80), point[None])
    center, size = np.array([40.0, 50.0]), np.array([60.0, 80.0])
    plain, m_plain = crop_person(image, center, size, 0.0, (256, 192))
    flipped, m_flip = crop_person(image, center, size, 30.0, (256, 192), flip=True)
    unflipped, m_rot = crop_person(image, center, size, 30.0, (256, 192))
    assert plain.shape == (256, 192, 3) and plain.dtype == np.uint8
    for crop, matrix in ((plain, m_plain), (flipped, m_flip), (unflipped, m_rot)):
        expected = apply_affine(matrix, point)
        found = _blob_centre(crop[:, :, 0], expected, radius=8)
        assert found is not None and np.abs(found - expected).max() < 1.0, (found, expected)
    # The mirror is x -> W - 1 - x of the unmirrored crop, in the same single warp.
    np.testing.assert_allclose(apply_affine(m_flip, point), [191 - apply_affine(m_rot, point)[0],
                                                              apply_affine(m_rot, point)[1]])
    np.testing.assert_array_equal(flipped, unflipped[:, ::-1])


def test_crop_person_rejects_a_degenerate_region():
    with pytest.raises(ValueError, match="size_wh"):
        crop_person(np.zeros((10, 10, 3), np.uint8), [5, 5], [0, 10], 0.0, (256, 192))


def test_eval_crop_centres_the_box_at_the_model_aspect_ratio_with_padding():
    ds = _synthetic_dataset(TopDownAugmentParams(), train=False)
    s = ds.sample(0)
    box = _tight_box(_person_keypoints())
    center, size = box_to_center_scale(box, 192 / 256, 1.25)
    np.testing.assert_allclose(s.center, center)
    np.testing.assert_allclose(s.size, size)
    assert s.size[0] / s.size[1] == pytest.approx(0.75)
    assert s.size[1] == pytest.approx(box[3] * 1.25)  # a tall box keeps its height, grows in width
    assert (s.rotation, s.flipped, s.half_body) == (0.0, False, False)
    # The box centre lands on the crop centre.
    np.testing.assert_allclose(apply_affine(s.matrix, center), [95.5, 127.5], atol=1e-9)
    assert s.image.shape == (256, 192, 3)


def test_training_keypoints_stay_on_their_pixels_under_flip_rotation_scale_and_half_body():
    params = TopDownAugmentParams(rotation_prob=1.0, half_body_prob=0.5, half_body_min_keypoints=8)
    ds = _synthetic_dataset(params)
    seen = {"flipped": 0, "half_body": 0, "rotated": 0, "all_three": 0}
    checked = 0
    for epoch in range(10):
        ds.set_epoch(epoch)
        s = ds.sample(0)
        seen["flipped"] += s.flipped
        seen["half_body"] += s.half_body
        seen["rotated"] += abs(s.rotation) > 1.0
        seen["all_three"] += s.flipped and s.half_body and abs(s.rotation) > 1.0
        assert s.size[0] / s.size[1] == pytest.approx(0.75)  # every crop at the model's aspect ratio
        gray = s.image[:, :, 0]
        for k in range(K):
            if s.target_weights[k] == 0:
                continue
            found = _blob_centre(gray, s.keypoints[k])
            if found is None:
                continue
            assert np.abs(found - s.keypoints[k, :2]).max() < 1.0, (epoch, COCO_17.keypoints[k], found, s.keypoints[k])
            checked += 1
    assert all(v > 0 for v in seen.values()), seen
    assert checked > 60


def test_a_flipped_crop_swaps_left_and_right_so_the_person_stays_anatomically_consistent():
    params = TopDownAugmentParams(scale_factor=0.0, rotation_prob=0.0, flip_prob=1.0, half_body_prob=0.0)
    s = _synthetic_dataset(params).sample(0)
    assert s.flipped
    left, right = COCO_17.index("left_shoulder"), COCO_17.index("right_shoulder")
    # Front-facing person: its left shoulder is on the image's right, before and after the mirror.
    assert s.keypoints[left, 0] > s.keypoints[right, 0]
    # The mirror image of the original right shoulder is where the new left shoulder is.
    original = _person_keypoints()
    np.testing.assert_allclose(s.keypoints[left, :2], apply_affine(s.matrix, original[right, :2]), atol=1e-4)
    # The heatmap channel follows the keypoint slot.
    peak = np.unravel_index(np.argmax(s.heatmaps[left]), s.heatmaps[left].shape)
    assert abs(peak[1] * 4 + 1.5 - s.keypoints[left, 0]) <= 2.5


def test_half_body_region_surrounds_the_chosen_half_enlarged_by_one_and_a_half():
    kps = _person_keypoints()
    upper, lower = body_halves(COCO_17)
    assert {COCO_17.keypoints[i] for i in lower} == {f"{s}_{p}" for s in ("left", "right") for p in ("hip", "knee", "ankle")}
    assert len(upper) + len(lower) == K
    only_upper = kps.copy()
    only_upper[lower, 2] = 0  # the lower half has nothing labelled: the upper half must be chosen
    for seed in range(4):
        center, size = half_body_transform(only_upper, np.random.default_rng(seed), COCO_17, 0.75, 1.5)
        pts = kps[upper, :2].astype(np.float64)
        np.testing.assert_allclose(center, pts.mean(axis=0))
        w, h = pts.max(axis=0) - pts.min(axis=0)
        expected = np.array([w, w / 0.75]) if w > 0.75 * h else np.array([h * 0.75, h])
        np.testing.assert_allclose(size, 1.5 * expected)
    both = {tuple(np.round(half_body_transform(kps, np.random.default_rng(s))[0], 3)) for s in range(20)}
    assert len(both) == 2  # a coin chooses between the two halves
    one_point = np.zeros((K, 3), np.float32)
    one_point[0] = [10, 10, 2]
    assert half_body_transform(one_point, np.random.default_rng(0)) is None


def test_half_body_crop_in_the_dataset_leaves_the_other_half_outside_with_zero_weight():
    params = TopDownAugmentParams(scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0, half_body_prob=1.0)
    ds = _synthetic_dataset(params)
    upper, lower = body_halves(COCO_17)
    halves = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        s = ds.sample(0)
        assert s.half_body
        inside = upper if s.target_weights[upper].all() else lower
        halves.add(len(inside))
        assert s.target_weights[inside].all()
        # Ankles are far from an upper-body crop and the head is far from a lower-body one.
        far = COCO_17.index("left_ankle") if inside is upper else COCO_17.index("nose")
        assert s.target_weights[far] == 0
    assert halves == {len(upper), len(lower)}


def test_target_weights_are_zero_for_unlabelled_keypoints_and_for_keypoints_outside_the_crop():
    kps = _person_keypoints()
    box = _tight_box(kps)
    kps[COCO_17.index("left_eye"), 2] = 0  # unlabelled
    kps[COCO_17.index("left_wrist")] = [190.0, 190.0, 2]  # labelled, far outside the person box
    image = _blob_image((200, 200), kps[kps[:, 2] > 0, :2])
    ds = TopDownDataset(_instances(kps, image, box), CODEC, TopDownAugmentParams(), train=False)
    s = ds.sample(0)
    expected = np.ones(K, np.float32)
    expected[[COCO_17.index("left_eye"), COCO_17.index("left_wrist")]] = 0
    np.testing.assert_array_equal(s.target_weights, expected)
    np.testing.assert_array_equal(s.keypoints[COCO_17.index("left_eye")], [0, 0, 0])
    assert not s.heatmaps[COCO_17.index("left_eye")].any() and not s.heatmaps[COCO_17.index("left_wrist")].any()
    assert s.heatmaps[COCO_17.index("nose")].max() > 0.9


def test_samples_are_reproducible_for_a_seed_epoch_and_index_and_change_with_the_epoch():
    params = TopDownAugmentParams(rotation_prob=1.0, half_body_prob=0.5)
    a, b = _synthetic_dataset(params, seed=3), _synthetic_dataset(params, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    xa, ta, wa = a[0]
    xb, tb, wb = b[0]
    assert torch.equal(xa, xb) and torch.equal(ta["heatmaps"], tb["heatmaps"]) and torch.equal(wa["heatmaps"], wb["heatmaps"])
    b.set_epoch(3)
    assert not torch.equal(xa, b[0][0])


def test_dataset_items_have_the_documented_shapes_and_batch_in_a_dataloader():
    ds = _synthetic_dataset(TopDownAugmentParams())
    image, targets, weights = ds[0]
    assert image.shape == (3, 256, 192) and image.dtype == torch.float32
    assert targets["heatmaps"].shape == (K, 64, 48) and weights["heatmaps"].shape == (K, 1, 1)
    three = TopDownDataset(TopDownInstances(ds.instances.people * 3, ds.instances.load_image), CODEC, seed=1)
    images, targets, weights = next(iter(DataLoader(three, batch_size=3, num_workers=0)))
    assert images.shape == (3, 3, 256, 192) and targets["heatmaps"].shape == (3, K, 64, 48)
    assert weights["heatmaps"].shape == (3, K, 1, 1)
    loss = keypoint_mse_loss(torch.zeros_like(targets["heatmaps"]), targets["heatmaps"], weights["heatmaps"])
    assert loss.item() > 0


def test_to_imagenet_input_is_rgb_imagenet_normalised_and_batches():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    out = to_imagenet_input(image)
    assert out.shape == (3, 4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], (np.array([0.0, 0.0, 1.0]) - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB, rtol=1e-6)
    batch = to_imagenet_input(np.stack([image, image[:, ::-1]]))
    assert batch.shape == (2, 3, 4, 6)
    np.testing.assert_array_equal(batch[0], out)
    with pytest.raises(ValueError, match="to_imagenet_input"):
        to_imagenet_input(np.zeros((4, 6), np.uint8))


def test_augment_params_reject_bad_values():
    with pytest.raises(ValueError, match="flip_prob"):
        TopDownAugmentParams(flip_prob=1.5)
    with pytest.raises(ValueError, match="scale_factor"):
        TopDownAugmentParams(scale_factor=-0.1)


# ------------------------------------------------------------------------------ instances
@pytest.fixture()
def tiny_coco(tmp_path):
    """Image 1 (60x80): a labelled person, one half outside the image, a crowd, an unlabelled
    person, an area-0 person; image 2: nobody."""
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(images_dir / name), np.full((60, 80, 3), 90, np.uint8))

    def person(ann_id, bbox, n=3, area=None, iscrowd=0):
        kps = [0.0] * (3 * K)
        for k in range(n):
            kps[3 * k : 3 * k + 3] = [bbox[0] + 1 + k, bbox[1] + 1 + k, 2]
        return {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": iscrowd, "bbox": bbox, "keypoints": kps,
                "num_keypoints": n, "area": bbox[2] * bbox[3] if area is None else area}

    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 60, "width": 80},
                   {"id": 2, "file_name": "b.png", "height": 60, "width": 80}],
        "annotations": [person(1, [10, 10, 20, 30]), person(2, [70, 40, 30, 30]), person(3, [0, 0, 80, 60], 0, iscrowd=1),
                        person(4, [40, 5, 10, 10], n=0), person(5, [40, 30, 10, 10], area=0)],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints), "skeleton": []}],
    }
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, images_dir


def test_person_instances_keep_labelled_non_crowd_people_with_clipped_boxes(tiny_coco):
    people = person_instances(CocoKeypoints(*tiny_coco))
    assert [p.area for p in people] == [600.0, 900.0]
    np.testing.assert_allclose(people[0].box, [10, 10, 20, 30])
    np.testing.assert_allclose(people[1].box, [70, 40, 10, 20])  # clipped to the 80 x 60 image
    assert people[0].keypoints.shape == (K, 3) and people[0].keypoints[2, 2] == 2
    assert {p.image_id for p in people} == {1}


def test_detection_instances_filter_by_score_and_category_and_name_unknown_images(tiny_coco):
    coco = CocoKeypoints(*tiny_coco, min_people=0)
    detections = [
        {"image_id": 2, "bbox": [5, 5, 20, 40], "score": 0.9, "category_id": 1},
        {"image_id": 2, "bbox": [5, 5, 20, 40], "score": 0.9, "category_id": 3},  # not a person
        (1, [30, 10, 15, 30], 0.2),  # below the threshold
        (1, [30, 10, 15, 30], 0.6),
        (1, [100, 10, 15, 30], 0.8),  # entirely outside the image
    ]
    people = detection_instances(coco, detections, score_threshold=0.5)
    assert [(p.image_id, p.score) for p in people] == [(2, 0.9), (1, 0.6)]
    assert coco.image_ids[people[0].image_index] == 2 and not people[0].keypoints.any()
    instances = TopDownInstances.from_detections(coco, detections, score_threshold=0.5)
    assert instances.load_image(0).shape == (60, 80, 3)
    s = TopDownDataset(instances, CODEC, train=False).sample(1)
    assert s.image.shape == (256, 192, 3) and not s.target_weights.any()
    with pytest.raises(ValueError, match="image_id 99"):
        detection_instances(coco, [(99, [0, 0, 5, 5], 1.0)])


@needs_coco_sample
def test_real_coco_sample_crops_batch_in_a_dataloader_and_keep_labelled_keypoints():
    coco = CocoKeypoints(COCO_SAMPLE_ANN, COCO_SAMPLE_IMAGES)
    instances = TopDownInstances.from_coco(coco)
    assert 100 <= len(instances) <= 110  # the sample's README: 110 people with keypoints
    subset = torch.utils.data.Subset(TopDownDataset(instances, CODEC, train=True, seed=1), range(0, len(instances), 14))
    images, targets, weights = next(iter(DataLoader(subset, batch_size=len(subset), num_workers=0)))
    b = len(subset)
    assert images.shape == (b, 3, 256, 192) and torch.isfinite(images).all()
    assert targets["heatmaps"].shape == (b, K, 64, 48) and weights["heatmaps"].shape == (b, K, 1, 1)
    assert set(weights["heatmaps"].unique().tolist()) <= {0.0, 1.0}
    assert keypoint_mse_loss(torch.zeros_like(targets["heatmaps"]), targets["heatmaps"], weights["heatmaps"]) > 0
    # Without augmentation the padded box holds (nearly) every labelled keypoint.
    evaluation = TopDownDataset(instances, CODEC, train=False)
    labelled = kept = 0
    for i in range(0, len(instances), 7):
        labelled += int((instances[i].keypoints[:, 2] > 0).sum())
        kept += int(evaluation.sample(i).target_weights.sum())
    assert kept >= 0.95 * labelled
