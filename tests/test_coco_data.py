"""COCO-format data: people, ignore masks, errors; the bottom-up training wrapper."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO_SAMPLE_ANN, COCO_SAMPLE_IMAGES, needs_coco_sample

from openpose_lite.data.coco import CocoKeypoints, annotation_mask
from openpose_lite.data.samples import BottomUpTrainDataset
from openpose_lite.transforms import AugmentParams, choose_main_person
from openpose_lite.skeleton import COCO_17

K = COCO_17.num_keypoints


def _person(ann_id, image_id, points, bbox, segmentation=None):
    kps = [0.0] * (3 * K)
    for k, (x, y) in points.items():
        kps[3 * k : 3 * k + 3] = [x, y, 2]
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": bbox,
           "keypoints": kps, "num_keypoints": len(points), "area": bbox[2] * bbox[3]}
    if segmentation is not None:
        ann["segmentation"] = segmentation
    return ann


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (column-major runs, starting with zeros), as crowds are stored."""
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


@pytest.fixture()
def tiny_coco(tmp_path):
    """Two 60x80 images: image 1 with a labelled person, an unlabelled one and a crowd; image 2 only a crowd."""
    h, w = 60, 80
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(images_dir / name), np.full((h, w, 3), 90, np.uint8))
    crowd = np.zeros((h, w), bool)
    crowd[40:60, 0:40] = True
    labelled = _person(1, 1, {0: (10.0, 10.0), 5: (12.0, 20.0), 6: (18.0, 20.0)}, [5, 5, 20, 50],
                       segmentation=[[5, 5, 24, 5, 24, 54, 5, 54]])
    unlabelled = _person(2, 1, {}, [50, 10, 20, 20])  # no keypoints, no segmentation: masked by its box
    unlabelled["keypoints"] = [0] * (3 * K)
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": h, "width": w},
                   {"id": 2, "file_name": "b.jpg", "height": h, "width": w}],
        "annotations": [
            labelled, unlabelled,
            {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 40, 40, 20],
             "segmentation": _uncompressed_rle(crowd), "num_keypoints": 0, "keypoints": [0] * (3 * K)},
            {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 1, "bbox": [0, 40, 40, 20],
             "segmentation": _uncompressed_rle(crowd)},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints)}],
    }
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    return ann, images_dir


def test_items_are_images_with_labelled_people(tiny_coco):
    ann, images = tiny_coco
    assert CocoKeypoints(ann, images).image_ids == [1]
    assert CocoKeypoints(ann, images, min_people=0).image_ids == [1, 2]


def test_sample_fields(tiny_coco):
    sample = CocoKeypoints(*tiny_coco)[0]
    assert sample.image.shape == (60, 80, 3) and sample.image.dtype == np.uint8
    assert sample.keypoints.shape == (1, K, 3) and sample.keypoints.dtype == np.float32
    np.testing.assert_array_equal(sample.keypoints[0, 0], [10, 10, 2])
    np.testing.assert_array_equal(sample.boxes, [[5, 5, 20, 50]])
    assert sample.ignore_mask.shape == (60, 80) and sample.ignore_mask.dtype == bool


def test_ignore_mask_covers_unlabelled_people_and_crowds_minus_labelled_people(tiny_coco):
    mask = CocoKeypoints(*tiny_coco)[0].ignore_mask
    assert mask[10:30, 50:70].all()            # unlabelled person's box
    assert mask[45:60, 25:40].all()            # crowd, where no labelled person stands
    assert not mask[45:54, 6:24].any()         # crowd under the labelled person's outline: kept
    assert not mask[0:5, :].any() and not mask[10:30, 30:45].any()  # elsewhere: supervised
    only_crowd = CocoKeypoints(*tiny_coco, min_people=0)[1].ignore_mask
    assert only_crowd.sum() == 20 * 40


def test_annotation_mask_formats():
    poly = annotation_mask({"segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}, 20, 20)
    assert poly[2:8, 2:8].all() and not poly[12:, 12:].any()
    assert annotation_mask({"segmentation": [], "bbox": [2, 3, 4, 5]}, 20, 20).sum() == 20
    assert annotation_mask({"segmentation": []}, 20, 20, use_bbox=False) is None


def test_missing_image_error_names_the_file(tiny_coco):
    ann, images = tiny_coco
    (images / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        CocoKeypoints(ann, images)[0]


def test_bad_annotation_files_are_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        CocoKeypoints(bad, tmp_path)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="bad.json.*annotations"):
        CocoKeypoints(bad, tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        CocoKeypoints(tmp_path / "missing.json", tmp_path)


def test_wrong_keypoint_count_is_named(tiny_coco):
    ann, images = tiny_coco
    data = json.loads(ann.read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"ann.json: annotation 1 has 48 keypoint values, expected 51"):
        CocoKeypoints(ann, images)


# ------------------------------------------------------------------ the real COCO sample
@needs_coco_sample
def test_real_coco_sample_people_masks_and_counts():
    ann_file = COCO_SAMPLE_ANN
    data = json.loads(ann_file.read_text())
    dataset = CocoKeypoints(ann_file, COCO_SAMPLE_IMAGES)
    by_image: dict[int, list] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    expected_items = [i["id"] for i in data["images"]
                      if any(a["num_keypoints"] > 0 and not a["iscrowd"] for a in by_image.get(i["id"], []))]
    assert dataset.image_ids == expected_items

    checked_crowd = checked_unlabelled = 0
    for index, image_id in enumerate(dataset.image_ids):
        anns = by_image[image_id]
        people = [a for a in anns if a["num_keypoints"] > 0 and not a["iscrowd"]]
        if not any(a["iscrowd"] or a["num_keypoints"] == 0 for a in anns) and index % 4:
            continue  # only decode every image that has something to ignore, plus a few others
        sample = dataset[index]
        h, w = sample.image.shape[:2]
        assert sample.keypoints.shape == (len(people), K, 3)
        np.testing.assert_array_equal((sample.keypoints[:, :, 2] > 0).sum(axis=1),
                                      [a["num_keypoints"] for a in people])
        labelled_area = np.zeros((h, w), bool)
        for a in people:
            m = annotation_mask(a, h, w, use_bbox=False)
            labelled_area |= m if m is not None else False
        for a in anns:
            region = annotation_mask(a, h, w)
            if a["iscrowd"]:
                assert sample.ignore_mask[region & ~labelled_area].all()
                checked_crowd += 1
            elif a["num_keypoints"] == 0:
                assert sample.ignore_mask[region].all()
                checked_unlabelled += 1
    assert checked_crowd > 0 and checked_unlabelled > 0


# ------------------------------------------------------------------ the training wrapper
class FakeCodec:
    """Stands in for BottomUpPafCodec.encode: records its inputs, returns maps of the right kind."""

    stride = 8

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def encode(self, keypoints, input_hw, ignore_mask=None):
        self.calls.append((keypoints.copy(), input_hw, None if ignore_mask is None else ignore_mask.copy()))
        h, w = input_hw[0] // self.stride, input_hw[1] // self.stride
        heatmaps = np.zeros((K + 1, h, w), np.float32)
        for kp in keypoints.reshape(-1, K, 3):
            for k, (x, y, v) in enumerate(kp):
                cx, cy = int(round((x - 3.5) / 8)), int(round((y - 3.5) / 8))
                if v > 0 and 0 <= cx < w and 0 <= cy < h:
                    heatmaps[k, cy, cx] = 1.0
        weight = 1.0 - cv2.resize(ignore_mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)[None]
        return ({"heatmaps": heatmaps, "pafs": np.zeros((2, h, w), np.float32)},
                {"heatmaps": weight.astype(np.float32), "pafs": weight.astype(np.float32)})


def test_train_wrapper_returns_normalised_tensors_and_codec_maps(tiny_coco):
    codec = FakeCodec()
    ds = BottomUpTrainDataset(CocoKeypoints(*tiny_coco), codec, AugmentParams(crop_size=64), train=True, seed=3)
    image, targets, weights = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert float(image.min()) >= -0.5 and float(image.max()) < 0.5
    assert targets["heatmaps"].shape == (K + 1, 8, 8) and weights["pafs"].shape == (1, 8, 8)
    keypoints, input_hw, mask = codec.calls[-1]
    assert input_hw == (64, 64) and mask.shape == (64, 64) and keypoints.shape == (1, K, 3)


def test_train_wrapper_is_deterministic_per_seed_epoch_index(tiny_coco):
    coco = CocoKeypoints(*tiny_coco)
    a = BottomUpTrainDataset(coco, FakeCodec(), AugmentParams(crop_size=64), train=True, seed=3)
    b = BottomUpTrainDataset(coco, FakeCodec(), AugmentParams(crop_size=64), train=True, seed=3)
    assert torch.equal(a[0][0], b[0][0])
    b.set_epoch(1)
    assert not torch.equal(a[0][0], b[0][0])
    a.set_epoch(1)
    assert torch.equal(a[0][0], b[0][0])


def test_eval_wrapper_fits_whole_image_without_randomness(tiny_coco):
    codec = FakeCodec()
    ds = BottomUpTrainDataset(CocoKeypoints(*tiny_coco), codec, AugmentParams(crop_size=64), train=False, seed=0)
    ds[0]
    first = codec.calls[-1][0]
    ds.set_epoch(5)
    ds[0]
    np.testing.assert_array_equal(codec.calls[-1][0], first)
    # The 80 px wide image fills the 64 px crop: scale 0.8 about the image centre (39.5, 29.5).
    np.testing.assert_allclose(first[0, 0, :2], [0.8 * (10 - 39.5) + 31.5, 0.8 * (10 - 29.5) + 31.5], atol=1e-4)


def test_main_person_prefers_well_labelled_people():
    kps = np.zeros((2, K, 3), np.float32)
    kps[0, :2] = (10, 10, 2)     # 2 keypoints: not a CMU main person
    kps[1, :6] = (50, 50, 2)     # 6 keypoints
    boxes = np.array([[0, 0, 100, 100], [40, 40, 40, 80]], np.float32)
    for seed in range(5):
        center, height = choose_main_person(np.random.default_rng(seed), kps, boxes)
        assert height == 80.0 and center[0] == pytest.approx(40 + 39 / 2)
    assert choose_main_person(np.random.default_rng(0), np.zeros((0, K, 3)), None) == (None, None)


def test_wrapper_with_the_real_codec(tiny_coco):
    from openpose_lite.codecs import bottomup
    codec = bottomup.BottomUpPafCodec()
    ds = BottomUpTrainDataset(CocoKeypoints(*tiny_coco), codec, AugmentParams(crop_size=64), train=True, seed=0)
    image, targets, weights = ds[0]
    skeleton = codec.skeleton
    assert targets["heatmaps"].shape == (skeleton.num_heatmaps, 8, 8)
    assert targets["pafs"].shape == (skeleton.num_pafs, 8, 8)
    assert weights["heatmaps"].shape == (1, 8, 8)
