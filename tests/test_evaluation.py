"""COCO OKS evaluation: ground truth scores perfectly, errors lower it, bad input is named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import COCO_SAMPLE_VAL_ANN, needs_coco_sample

from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.evaluation import (
    METRIC_NAMES,
    evaluate_keypoints,
    format_metrics,
    load_coco,
)


def _gt_as_results(dataset: dict, shift_px: float = 0.0, seed: int = 0) -> list[dict]:
    """Ground-truth people as detections (score 1), optionally moved by random offsets of ``shift_px``."""
    rng = np.random.default_rng(seed)
    results = []
    for ann in dataset["annotations"]:
        if ann["num_keypoints"] == 0 or ann.get("iscrowd", 0):
            continue
        kps = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kps[:, :2] += rng.normal(0.0, shift_px, (len(kps), 2)) if shift_px else 0.0
        results.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": 1.0})
    return results


@pytest.fixture(scope="module")
def synthetic_ann(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    return write_dataset(out, num_images=6, seed=0, cfg=SceneConfig(image_hw=(256, 256), people_range=(2, 4)))


def test_ground_truth_as_results_scores_one(synthetic_ann, capsys):
    dataset = json.loads(synthetic_ann.read_text())
    metrics = evaluate_keypoints(synthetic_ann, _gt_as_results(dataset))
    assert list(metrics) == list(METRIC_NAMES)
    for name in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
        assert metrics[name] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # pycocotools' chatter is silenced


def test_moving_keypoints_lowers_ap_monotonically(synthetic_ann):
    coco = load_coco(synthetic_ann)
    ap = [evaluate_keypoints(coco, _gt_as_results(coco.dataset, shift))["AP"] for shift in (0.0, 2.0, 6.0)]
    assert ap[0] == pytest.approx(1.0)
    assert ap[0] > ap[1] > ap[2]


def test_evaluation_does_not_modify_the_results(synthetic_ann):
    results = _gt_as_results(json.loads(synthetic_ann.read_text()))
    before = json.dumps(results)
    evaluate_keypoints(synthetic_ann, results)
    assert json.dumps(results) == before


def test_image_ids_restrict_the_evaluation(synthetic_ann):
    coco = load_coco(synthetic_ann)
    only_first = [r for r in _gt_as_results(coco.dataset) if r["image_id"] == 1]
    assert evaluate_keypoints(coco, only_first, image_ids=[1])["AR"] == pytest.approx(1.0)
    assert evaluate_keypoints(coco, only_first)["AR"] < 0.5
    with pytest.raises(ValueError, match="image_ids"):
        evaluate_keypoints(coco, only_first, image_ids=[999])


def test_empty_results_give_zeros_and_a_warning(synthetic_ann, caplog):
    with caplog.at_level(logging.WARNING, logger="openpose_lite.evaluation"):
        metrics = evaluate_keypoints(synthetic_ann, [])
    assert metrics == {name: 0.0 for name in METRIC_NAMES}
    assert "no results" in caplog.text


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        evaluate_keypoints(missing, [])


def test_invalid_json_is_named(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_coco(bad)


def test_file_without_annotations_says_what_is_expected(tmp_path):
    bad = tmp_path / "images_only.json"
    bad.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(ValueError, match=r"images_only\.json.*annotations"):
        load_coco(bad)


def test_ground_truth_without_keypoints_is_rejected(tmp_path):
    bad = tmp_path / "boxes.json"
    bad.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}],
    }))
    with pytest.raises(ValueError, match="keypoints"):
        evaluate_keypoints(bad, [])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("score"), "score"),
        (lambda r: r.pop("keypoints"), "keypoints"),
        (lambda r: r.update(keypoints=r["keypoints"][:-3]), "keypoints"),
        (lambda r: r.update(image_id=12345), "image_id"),
    ],
)
def test_bad_results_are_rejected(synthetic_ann, change, message):
    results = _gt_as_results(json.loads(synthetic_ann.read_text()))
    change(results[1])
    with pytest.raises(ValueError, match=rf"results\[1\].*{message}"):
        evaluate_keypoints(synthetic_ann, results)


def test_format_metrics_line_and_markdown():
    metrics = {name: 0.5 for name in METRIC_NAMES}
    assert format_metrics(metrics).startswith("AP=0.500 AP50=0.500")
    table = format_metrics(metrics, style="markdown").splitlines()
    assert table[0].startswith("| AP | AP50 |") and len(table) == 3
    with pytest.raises(ValueError, match="style"):
        format_metrics(metrics, style="html")


@needs_coco_sample
def test_real_coco_ground_truth_as_results_scores_one():
    dataset = json.loads(COCO_SAMPLE_VAL_ANN.read_text())
    metrics = evaluate_keypoints(COCO_SAMPLE_VAL_ANN, _gt_as_results(dataset))
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AR"] == pytest.approx(1.0)
