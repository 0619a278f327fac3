"""One check of COCO keypoint files for training and evaluation: every defect named by file, image and annotation.

Each defect is written into a small crafted file; both readers (``CocoKeypoints`` for training,
``load_coco`` for ``eval`` and the oracles) must refuse it with one line that names the file,
the image id and the annotation id, or accept it with one warning that counts the cases the
official COCO files contain. The compressed RLE decoder is checked against what pycocotools
encodes.
"""

from __future__ import annotations

import json
import logging
import math

import cv2
import numpy as np
import pytest
from conftest import COCO_SAMPLE_DIR, SKIP_REASON
from pycocotools import mask as mask_utils

from openpose_lite.cli import main
from openpose_lite.data.coco import CocoKeypoints, annotation_mask
from openpose_lite.coco.rle import rle_counts_from_string
from openpose_lite.coco.validation import AnnotationError, read_coco_keypoints
from openpose_lite.evaluation import load_coco
from openpose_lite.skeleton import COCO_17

K = COCO_17.num_keypoints
H, W = 60, 80


def _column_major_runs(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a mask: run lengths of the column-major pixels, starting with zeros."""
    runs, current, run = [], 0, 0
    for v in mask.astype(np.uint8).flatten(order="F"):
        if v != current:
            runs.append(run)
            current, run = v, 0
        run += 1
    runs.append(run)
    return runs


def _person(ann_id: int, image_id: int) -> dict:
    kps = [0.0] * (3 * K)
    for k, (x, y) in enumerate([(10.0, 10.0), (12.0, 9.0), (8.0, 9.0)]):
        kps[3 * k : 3 * k + 3] = [x, y, 2]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [5.0, 5.0, 20.0, 30.0],
            "area": 400.0, "num_keypoints": 3, "keypoints": kps, "segmentation": [[5, 5, 24, 5, 24, 34, 5, 34]]}


def _valid() -> dict:
    crowd = np.zeros((H, W), bool)
    crowd[40:, :30] = True
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W},
                   {"id": 2, "file_name": "b.png", "height": H, "width": W}],
        "annotations": [
            _person(11, 1), _person(12, 2),
            {"id": 13, "image_id": 2, "category_id": 1, "iscrowd": 1, "bbox": [0.0, 40.0, 30.0, 20.0], "area": 600.0,
             "num_keypoints": 0, "keypoints": [0] * (3 * K),
             "segmentation": {"counts": _column_major_runs(crowd), "size": [H, W]}},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints), "skeleton": []}],
    }


@pytest.fixture()
def write(tmp_path):
    """Writes a COCO dict as ``defect.json`` beside two images; returns (annotation file, image folder)."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(images / name), np.full((H, W, 3), 90, np.uint8))

    def _write(data: dict):
        path = tmp_path / "defect.json"
        path.write_text(json.dumps(data))  # NaN is written as NaN, as Python writers do
        return path, images

    return _write


def _both_refuse(path, images, pattern: str) -> None:
    """CocoKeypoints and load_coco both raise AnnotationError matching ``defect.json: ...pattern``."""
    for read in (lambda: CocoKeypoints(path, images), lambda: load_coco(path)):
        with pytest.raises(AnnotationError, match=rf"defect\.json: {pattern}") as info:
            read()
        assert "\n" not in str(info.value)


def test_a_valid_file_reads_in_both_readers_without_warnings(write, caplog):
    path, images = write(_valid())
    with caplog.at_level(logging.WARNING):
        assert CocoKeypoints(path, images, min_people=0).image_ids == [1, 2]
        assert sorted(load_coco(path).getImgIds()) == [1, 2]
    assert caplog.records == []


# ------------------------------------------------------------------ defects training accepted silently
def test_a_nan_bbox_is_refused_naming_file_image_and_annotation(write):
    data = _valid()
    data["annotations"][1]["bbox"] = [math.nan, 5.0, 20.0, 30.0]
    _both_refuse(*write(data), r"annotation 12 has bbox \[nan, 5\.0, 20\.0, 30\.0\], expected \[x, y, w, h\]: "
                               r"4 finite numbers with w, h >= 0 \(image id 2\)")


def test_a_negative_bbox_width_is_refused(write):
    data = _valid()
    data["annotations"][0]["bbox"] = [5.0, 5.0, -20.0, 30.0]
    _both_refuse(*write(data), r"annotation 11 has bbox .*w, h >= 0 \(image id 1\)")


@pytest.mark.parametrize("field, value, named", [
    ("keypoints", (0, 1e30), r"has keypoint 0 at \(1e\+30, 10\), outside its 80x60 image by more than the image's size "
                             r"\(expected x in \[-80, 160\], y in \[-60, 120\]\) \(image id 2\)"),
    ("keypoints", (4, -61.0), r"has keypoint 1 at \(12, -61\), outside its 80x60 image"),
    ("bbox", [5.0, 5.0, 156.0, 30.0], r"has bbox \[5\.0, 5\.0, 156\.0, 30\.0\], outside its 80x60 image"),
    ("segmentation", [[5, 5, 24, 5, 24, 1e9, 5, 34]], r"has segmentation polygon 0 = .*, outside its 80x60 image"),
])
def test_coordinates_far_outside_the_image_are_refused_naming_the_annotation(field, value, named, write):
    data = _valid()
    person = data["annotations"][1]
    if field == "keypoints":
        person["keypoints"][value[0]] = value[1]
    else:
        person[field] = value
    _both_refuse(*write(data), rf"annotation 12 {named}")


def test_coordinates_one_image_size_past_the_border_are_accepted(write):
    data = _valid()
    data["annotations"][1]["keypoints"][0:3] = [-80.0, 120.0, 1]  # the corner of the sane range
    data["annotations"][1]["bbox"] = [-80.0, -60.0, 240.0, 180.0]
    path, images = write(data)
    assert CocoKeypoints(path, images, min_people=0).image_ids == [1, 2]


def test_a_duplicate_image_id_is_refused_naming_both_entries(write):
    data = _valid()
    data["images"][1]["id"] = 1
    _both_refuse(*write(data), r"image id 1 appears twice \(images\[0\] and images\[1\]\); image ids must be unique")


def test_a_duplicate_annotation_id_is_refused_naming_both_images(write):
    data = _valid()
    data["annotations"][1]["id"] = 11
    _both_refuse(*write(data), r"annotation 11 appears twice \(annotations\[0\] of image id 1 and annotations\[1\] "
                               r"of image id 2\); annotation ids must be unique")


def test_visibility_seven_is_refused(write):
    data = _valid()
    data["annotations"][1]["keypoints"][3 * 2 + 2] = 7
    _both_refuse(*write(data), r"annotation 12 has keypoint 2 with visibility 7, expected 0 \(unlabelled\), "
                               r"1 \(labelled, occluded\) or 2 \(visible\) \(image id 2\)")


def test_rle_counts_that_do_not_add_up_to_the_image_are_refused(write):
    data = _valid()
    data["annotations"][2]["segmentation"]["counts"][-1] -= 5
    _both_refuse(*write(data), rf"annotation 13 has RLE counts summing to {H * W - 5}, expected height x width = "
                               rf"{H} x {W} = {H * W} \(image id 2\)")


def test_an_annotation_on_an_unknown_image_is_refused(write):
    data = _valid()
    data["annotations"][1]["image_id"] = 99
    _both_refuse(*write(data), r"annotation 12 refers to image id 99, expected the id of an image of the file")


# ------------------------------------------------------------------ defects eval --oracle named badly
def test_wrong_length_keypoints_are_refused_by_evaluation_too(write):
    data = _valid()
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    path, _ = write(data)
    with pytest.raises(AnnotationError, match=r"defect\.json: annotation 11 has 48 keypoint values, expected 51 "
                                              r"\(3 x 17 keypoints of category 'person'\) \(image id 1\)"):
        load_coco(path)


def test_nan_keypoints_are_refused(write):
    data = _valid()
    data["annotations"][1]["keypoints"][3 * 1] = math.nan
    _both_refuse(*write(data), r"annotation 12 has keypoint 1 with x = nan, expected finite numbers \(image id 2\)")


@pytest.mark.parametrize("counts, pattern", [
    ("0a?!", r"has a compressed RLE that does not decode \(character '!' at position 3\)"),
    ("4k", r"has a compressed RLE that does not decode \(the string ends inside a run length\)"),
    ("<", r"has RLE counts summing to 12, expected height x width"),
])
def test_bad_compressed_rle_is_refused(write, counts, pattern):
    data = _valid()
    data["annotations"][2]["segmentation"] = {"counts": counts, "size": [H, W]}
    _both_refuse(*write(data), rf"annotation 13 {pattern}.*\(image id 2\)")


def test_an_rle_of_another_size_than_its_image_is_refused(write):
    data = _valid()
    data["annotations"][2]["segmentation"]["size"] = [W, H]
    _both_refuse(*write(data), rf"annotation 13 has an RLE segmentation of size \[{W}, {H}\], expected the image's "
                               rf"\[height, width\] = \[{H}, {W}\] \(image id 2\)")


def test_a_polygon_with_an_odd_number_of_values_is_refused(write):
    data = _valid()
    data["annotations"][0]["segmentation"] = [[5, 5, 24, 5, 24, 34, 5]]
    _both_refuse(*write(data), r"annotation 11 has segmentation polygon 0 = .*expected an even count of finite numbers")


def test_eval_oracle_reports_a_malformed_file_in_one_line_naming_it(write, capsys):
    data = _valid()
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-6]
    path, _ = write(data)
    assert main(["eval", "--oracle", "bottomup", "--ann", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert str(path) in err and "annotation 11" in err and "image id 1" in err and "expected 51" in err


# ------------------------------------------------------------------ accepted with one counting warning
def test_degenerate_polygons_are_counted_in_one_warning_and_left_out_of_the_mask(write, caplog):
    data = _valid()
    data["annotations"][0]["segmentation"] = [[5, 5, 24, 5], [5, 5, 24, 5, 24, 34, 5, 34]]
    data["annotations"][1]["segmentation"] = [[1, 1]]
    data["annotations"][1]["num_keypoints"] = 0  # unlabelled in COCO's eyes: its mask is used for the ignore mask
    data["annotations"][1]["keypoints"] = [0] * (3 * K)
    path, images = write(data)
    with caplog.at_level(logging.WARNING, logger="openpose_lite.coco.validation"):
        coco = CocoKeypoints(path, images, min_people=0)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "2 polygons of fewer than 3 points" in warnings[0] and "annotation 11, image id 1" in warnings[0]
    ann = data["annotations"][0]
    only_valid = dict(ann, segmentation=ann["segmentation"][1:])
    np.testing.assert_array_equal(annotation_mask(ann, H, W, use_bbox=False), annotation_mask(only_valid, H, W, use_bbox=False))
    # A person whose polygons all enclose nothing is masked by its box (5..24 x 5..34), as one without any.
    assert coco.ignore_mask(1)[:38].sum() == 20 * 30


def test_num_keypoints_that_disagree_with_the_keypoints_give_one_counting_warning(write, caplog):
    data = _valid()
    data["annotations"][0]["num_keypoints"] = 5
    data["annotations"][1]["num_keypoints"] = 0
    path, images = write(data)
    with caplog.at_level(logging.WARNING, logger="openpose_lite.coco.validation"):
        load_coco(path)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2 annotations whose num_keypoints differs from their count of labelled keypoints" in warning


# ------------------------------------------------------------------ compressed RLE, the real sample
def test_compressed_rle_decodes_to_the_runs_pycocotools_encodes():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.uniform(0.02, 0.98)
        if trial % 10 == 0:
            mask[:] = trial % 20 == 0  # all empty, all full
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")
        assert rle_counts_from_string(encoded) == _column_major_runs(mask)


@pytest.mark.skipif(not (COCO_SAMPLE_DIR / "person_keypoints.json").is_file(), reason=SKIP_REASON)
def test_the_real_coco_sample_files_pass_the_check(caplog):
    files = ["person_keypoints.json", "person_keypoints_val2017only.json", "extras/ochuman/ochuman_sample.json",
             "extras/crowdpose/crowdpose_sample_coco17.json"]
    with caplog.at_level(logging.WARNING, logger="openpose_lite.coco.validation"):
        for name in files:
            read_coco_keypoints(COCO_SAMPLE_DIR / name, COCO_17)
            load_coco(COCO_SAMPLE_DIR / name)
        assert caplog.records == []
        # CrowdPose's own 14-keypoint file: two people whose num_keypoints is not their labelled count.
        read_coco_keypoints(COCO_SAMPLE_DIR / "extras/crowdpose/crowdpose_sample_orig14kp.json")
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2 annotations whose num_keypoints differs" in warning
