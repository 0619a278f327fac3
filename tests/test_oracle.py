"""Codec oracles: ground truth -> maps -> people, scored by COCO AP (what the codecs alone lose)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COCO_SAMPLE_VAL_ANN as SAMPLE
from conftest import needs_coco_sample as needs_sample

from openpose_lite.cli import main
from openpose_lite.data.synthetic import write_dataset
from openpose_lite.oracle import run_oracle


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("scenes"), num_images=12, seed=3)


def test_bottomup_oracle_on_generated_scenes_is_near_perfect(scenes):
    metrics, results = run_oracle("bottomup", scenes)
    assert metrics["AP"] >= 0.9 and results


def test_topdown_oracle_with_dark_on_generated_scenes_is_near_perfect(scenes):
    metrics, _ = run_oracle("topdown", scenes, refine="dark")
    assert metrics["AP"] >= 0.95


@needs_sample
def test_bottomup_oracle_reaches_085_ap_on_the_coco_sample():
    metrics, _ = run_oracle("bottomup", SAMPLE)
    assert metrics["AP"] >= 0.85


@needs_sample
def test_topdown_dark_oracle_reaches_097_ap_on_the_coco_sample():
    metrics, _ = run_oracle("topdown", SAMPLE, refine="dark")
    assert metrics["AP"] >= 0.97


def test_eval_oracle_cli_prints_metrics_and_writes_results(scenes, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["eval", "--oracle", "bottomup", "--ann", str(scenes), "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| AP |" in printed and "bottomup oracle" in printed
    results = json.loads(out.read_text())
    assert results and len(results[0]["keypoints"]) == 51


def test_eval_oracle_cli_reports_a_missing_annotation_file(tmp_path, capsys):
    assert main(["eval", "--oracle", "topdown", "--ann", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_oracle_rejects_an_unknown_branch(scenes):
    with pytest.raises(ValueError, match="branch"):
        run_oracle("sideways", scenes)


def test_an_input_size_for_the_top_down_oracle_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="input_size: not an option of the top-down branch"):
        run_oracle("topdown", tmp_path / "never_read.json", input_size=64)
