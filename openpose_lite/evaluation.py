"""COCO keypoint evaluation (object keypoint similarity AP/AR) through pycocotools.

pycocotools prints progress to stdout; the library must not, so every call into it runs
with stdout redirected, and what it printed is logged at DEBUG level instead.

Shape legend: N people, K keypoints.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from openpose_lite.skeleton import COCO_17

logger = logging.getLogger(__name__)

# pycocotools' order of the keypoint summary statistics (COCOeval.stats for iouType "keypoints").
METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")
_GT_ANNOTATION_KEYS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd")

T = TypeVar("T")


def _quiet(fn: Callable[..., T], *args: Any) -> T:
    """Run a pycocotools call with its stdout chatter captured and sent to the DEBUG log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        out = fn(*args)
    if buffer.getvalue().strip():
        logger.debug("pycocotools: %s", buffer.getvalue().strip())
    return out


def load_coco(path: str | Path) -> COCO:
    """Load a COCO-format annotation file into a pycocotools ``COCO`` object, quietly.

    Raises FileNotFoundError when the file is missing and ValueError naming the file when it is
    not JSON or lacks the top-level "images", "annotations" and "categories" lists.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            dataset = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid JSON file ({exc})") from exc
    if not isinstance(dataset, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories', got {type(dataset).__name__}")
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(dataset.get(key), list)]
    if missing:
        raise ValueError(f"{path}: expected COCO annotations with list fields 'images', 'annotations' and 'categories'; missing or not a list: {missing}")
    coco = COCO()  # built empty and filled here, so a bad file fails with our message, not a KeyError
    coco.dataset = dataset
    _quiet(coco.createIndex)
    return coco


def _check_ground_truth(coco: COCO, source: str) -> int:
    """Check the annotations carry what keypoint evaluation reads; return K of the person category."""
    for ann in coco.dataset["annotations"]:
        missing = [key for key in _GT_ANNOTATION_KEYS if key not in ann]
        if missing:
            raise ValueError(f"{source}: annotation {ann.get('id', '?')} lacks keypoint fields {missing}")
    layouts = {len(cat["keypoints"]) for cat in coco.dataset["categories"] if cat.get("keypoints")}
    if len(layouts) != 1:
        raise ValueError(f"{source}: expected categories with one 'keypoints' name list, found {len(layouts)} keypoint layouts")
    return layouts.pop()


def _check_results(results: Iterable[dict], num_keypoints: int, known_images: set[int]) -> list[dict]:
    """Validated copies of the results (pycocotools' loadRes writes into the dicts it is given)."""
    clean = []
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            raise ValueError(f"results[{i}]: expected a dict with keys {list(_RESULT_KEYS)}, got {type(res).__name__}")
        missing = [key for key in _RESULT_KEYS if key not in res]
        if missing:
            raise ValueError(f"results[{i}]: missing keys {missing}; each result needs {list(_RESULT_KEYS)}")
        kps = np.asarray(res["keypoints"], dtype=np.float64).reshape(-1)
        if kps.size != 3 * num_keypoints or not np.all(np.isfinite(kps)):
            raise ValueError(f"results[{i}]: 'keypoints' must be {3 * num_keypoints} finite numbers (x, y, score per keypoint), got {kps.size}")
        image_id = int(res["image_id"])
        if image_id not in known_images:
            raise ValueError(f"results[{i}]: image_id {image_id} is not an image of the annotation file")
        clean.append(
            {
                "image_id": image_id,
                "category_id": int(res["category_id"]),
                "keypoints": kps.tolist(),
                "score": float(res["score"]),
            }
        )
    return clean


def evaluate_keypoints(
    ann_file: str | Path | COCO,
    results: Sequence[dict],
    image_ids: Sequence[int] | None = None,
    sigmas: Sequence[float] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR of ``results`` against the annotations in ``ann_file``.

    ``results`` are COCO keypoint results (e.g. from ``Poses.to_coco``): dicts with
    ``image_id``, ``category_id``, ``keypoints`` (3K numbers: x, y, score) and ``score``.
    ``image_ids`` restricts the evaluation to those images (default: every image of the file).
    ``sigmas`` (K,) are the OKS constants; the default is COCO's, which pycocotools uses too.

    Returns the ten standard statistics keyed by :data:`METRIC_NAMES` (AP at OKS 0.50:0.95,
    0.50, 0.75, for medium and large people, then the same for AR), each in [0, 1], or -1
    where pycocotools has nothing to measure (e.g. no large person in the ground truth).
    Empty ``results`` give all zeros and a warning (pycocotools cannot load an empty list).
    """
    source = str(ann_file) if not isinstance(ann_file, COCO) else "COCO ground truth"
    coco_gt = ann_file if isinstance(ann_file, COCO) else load_coco(ann_file)
    num_keypoints = _check_ground_truth(coco_gt, source)
    known_images = set(coco_gt.getImgIds())
    clean = _check_results(results, num_keypoints, known_images)
    if not clean:
        logger.warning("evaluate_keypoints: no results to evaluate against %s; every metric is 0", source)
        return {name: 0.0 for name in METRIC_NAMES}

    oks_sigmas = COCO_17.sigmas_array if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if oks_sigmas.shape != (num_keypoints,):
        raise ValueError(f"{source}: {num_keypoints} keypoints per person but {oks_sigmas.size} OKS sigmas")

    coco_dt = _quiet(coco_gt.loadRes, clean)
    evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    evaluator.params.kpt_oks_sigmas = oks_sigmas
    if image_ids is not None:
        unknown = sorted(set(int(i) for i in image_ids) - known_images)
        if unknown:
            raise ValueError(f"image_ids {unknown[:5]} are not images of {source}")
        evaluator.params.imgIds = sorted(set(int(i) for i in image_ids))
    _quiet(evaluator.evaluate)
    _quiet(evaluator.accumulate)
    _quiet(evaluator.summarize)
    return {name: float(value) for name, value in zip(METRIC_NAMES, evaluator.stats)}


def format_metrics(metrics: dict[str, float], style: str = "line") -> str:
    """Render metrics as one line (``style="line"``) or a two-row markdown table (``"markdown"``)."""
    names = [name for name in METRIC_NAMES if name in metrics] + [n for n in metrics if n not in METRIC_NAMES]
    if style == "line":
        return " ".join(f"{name}={metrics[name]:.3f}" for name in names)
    if style == "markdown":
        header = "| " + " | ".join(names) + " |"
        rule = "|" + "|".join("---:" for _ in names) + "|"
        row = "| " + " | ".join(f"{metrics[name]:.3f}" for name in names) + " |"
        return "\n".join([header, rule, row])
    raise ValueError(f"format_metrics: style must be 'line' or 'markdown', got {style!r}")


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Object keypoint similarity between every pair of predicted people.

    Args:
        keypoints: (N, K, 3) x, y, score.
        areas: (N,) object areas (the OKS scale is each row person's area).
        sigmas: (K,) OKS constants.
        threshold: keypoints of the row person scoring at or below it are left out.
    Returns:
        (N, N) OKS of person j measured against person i as the reference.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((kps[:, None, :, :2] - kps[None, :, :, :2]) ** 2).sum(-1)  # (N, N, K)
    e = d2 / (var[None, None, :] * (np.asarray(areas, dtype=np.float64)[:, None, None] + np.spacing(1)) * 2.0)
    use = kps[:, None, :, 2] > threshold  # the reference person's confident keypoints
    count = np.maximum(use.sum(-1), 1)
    return np.where(use, np.exp(-e), 0.0).sum(-1) / count


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float = 0.9) -> np.ndarray:
    """Greedy non-maximum suppression by OKS: keep the best person, drop those too similar to it, repeat.

    The HRNet reference's rule (``lib/nms/nms.py``, ``oks_nms`` and ``oks_iou``, as its COCO
    evaluation calls them): the OKS of two people uses every keypoint and the mean of their two
    areas, ``exp(-d^2 / (2 (2 sigma)^2 (a_i + a_j) / 2))`` averaged over keypoints, and a person is
    dropped when that OKS with a kept one exceeds ``threshold``.

    Args:
        keypoints: (N, K, 3) x, y, score; areas: (N,) (top-down: the crop region's w * h);
        scores: (N,); sigmas: (K,) OKS constants.
    Returns:
        Indices of the kept people, best first.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    if len(order) == 0:
        return order.astype(np.int64)
    kps = np.asarray(keypoints, dtype=np.float64)
    area = np.asarray(areas, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((kps[:, None, :, :2] - kps[None, :, :, :2]) ** 2).sum(-1)  # (N, N, K)
    scale = 0.5 * (area[:, None] + area[None, :]) + np.spacing(1)  # (N, N)
    oks = np.exp(-d2 / var / scale[..., None] / 2.0).mean(-1)
    keep: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= oks[i] > threshold
    return np.asarray(keep, dtype=np.int64)
