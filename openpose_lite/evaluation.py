"""COCO keypoint evaluation (object keypoint similarity AP/AR) through pycocotools, quietly (:func:`_quiet`).

Results are scored on one skeleton's annotations (:class:`ScoringScope`): the categories whose
keypoint names are the skeleton's, with the skeleton's OKS sigmas. Categories of another keypoint
list are left out and said so. Several categories sharing the skeleton (AP-10K's species) are
pooled as one: their annotations are scored under one category id, what ``params.useCats = 0``
would do if pycocotools' ``computeOks`` honoured it (it reads ``_gts[imgId, catId]`` with catId
-1 and finds nothing: cocodataset/cocoapi issue #515).

Shape legend: N people, K keypoints.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from openpose_lite.coco.validation import read_coco_keypoints
from openpose_lite.data.ground_truth import labelled_instances, scored_layout
from openpose_lite.skeleton import Skeleton, check_sigmas

logger = logging.getLogger(__name__)

# pycocotools' order of the keypoint summary statistics (COCOeval.stats for iouType "keypoints").
METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")
_GT_ANNOTATION_KEYS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd")

T = TypeVar("T")


def _quiet(fn: Callable[..., T], *args: Any) -> T:
    """Run a pycocotools call with its stdout chatter (a library must not print) sent to the DEBUG log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        out = fn(*args)
    if buffer.getvalue().strip():
        logger.debug("pycocotools: %s", buffer.getvalue().strip())
    return out


def load_coco(path: str | Path, skeleton: Skeleton | None = None) -> COCO:
    """Load a COCO-format annotation file into a pycocotools ``COCO`` object, quietly.

    The file is checked as training checks it (:func:`~openpose_lite.coco.validation.read_coco_keypoints`,
    ``skeleton`` the layout every person must have, when given). Raises FileNotFoundError when the file is
    missing and ValueError naming the file (and the image and annotation id) when it is not JSON, lacks
    the top-level "images", "annotations" and "categories" lists, or is malformed.
    """
    dataset, _ = read_coco_keypoints(path, skeleton)
    if not isinstance(dataset.get("categories"), list):
        raise ValueError(f"{path}: expected COCO annotations with list fields 'images', 'annotations' and "
                         "'categories'; missing or not a list: ['categories']")
    coco = COCO()  # built empty and filled here, so a bad file fails with our message, not a KeyError
    coco.dataset = dataset
    _quiet(coco.createIndex)
    return coco


@dataclass(frozen=True)
class ScoringScope:
    """Which annotations of a file results of one skeleton are scored against, and how.

    ``skeleton``: the annotation layout scored (keypoint order, OKS sigmas); ``category_ids`` /
    ``category_names``: the file's categories with its keypoint names; ``left_out``: the line on
    keypoint categories of another skeleton ("" when none).
    """

    skeleton: Skeleton
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    left_out: str = ""

    @property
    def category_id(self) -> int:
        """The category id results carry (the first of the scope's; COCO's person is 1)."""
        return self.category_ids[0]

    @property
    def pooled(self) -> bool:
        """Whether several categories share the skeleton and are scored as one."""
        return len(self.category_ids) > 1

    def labelled_instances(self, coco: COCO) -> dict[int, list[dict]]:
        """image id -> the scope's labelled instances (not crowd, a labelled keypoint), in file order
        (:func:`~openpose_lite.data.ground_truth.labelled_instances`)."""
        return labelled_instances(coco.dataset, self.category_ids)

    def describe(self) -> str:
        """One line: what is scored (and pooled), with which sigmas, and what is left out."""
        names = ", ".join(repr(n) for n in self.category_names[:3]) + (", ..." if len(self.category_names) > 3 else "")
        what = (f"{len(self.category_ids)} categories sharing one keypoint list ({names}), pooled as one "
                f"(category_id {self.category_id})" if self.pooled else f"category {names}")
        return f"scored: {what}, with the OKS sigmas of {self.skeleton.name}" + \
            (f"; {self.left_out}" if self.left_out else "")


def scoring_scope(coco: COCO, skeleton: Skeleton | None = None, source: str = "COCO ground truth") -> ScoringScope:
    """The :class:`ScoringScope` of a skeleton's results on a file (default: the file's own skeleton).

    Raises ValueError naming ``source`` when no category has the skeleton's keypoint names, or none
    lists keypoint names at all (:func:`~openpose_lite.data.ground_truth.scored_layout`).
    """
    skeleton, chosen = scored_layout(coco.dataset, source, skeleton)
    ids = tuple(chosen.keypoint_categories)
    names = tuple(chosen.category_names.get(i, str(i)) for i in ids)
    return ScoringScope(skeleton.annotation_layout(), ids, names, chosen.left_out())


def _scored_ground_truth(coco: COCO, scope: ScoringScope, source: str) -> COCO:
    """The ground truth pycocotools scores: the scope's annotations under one category id (the file's own COCO
    object when that is all of it, as for a person file)."""
    wanted = set(scope.category_ids)
    anns = coco.dataset["annotations"]
    in_scope = [a for a in anns if a.get("category_id") in wanted]
    for ann in in_scope:
        missing = [key for key in _GT_ANNOTATION_KEYS if key not in ann]
        if missing:
            raise ValueError(f"{source}: annotation {ann.get('id', '?')} lacks keypoint fields {missing}")
    if not scope.pooled and len(in_scope) == len(anns):
        return coco
    first = next((c for c in coco.dataset["categories"] if c.get("id") == scope.category_id), {})
    view = COCO()
    view.dataset = {
        "images": coco.dataset["images"],
        "annotations": [dict(a, category_id=scope.category_id) for a in in_scope],
        "categories": [dict(first, id=scope.category_id)],
    }
    _quiet(view.createIndex)
    return view


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
        clean.append({"image_id": image_id, "category_id": int(res["category_id"]), "keypoints": kps.tolist(),
                      "score": float(res["score"])})
    return clean


def evaluate_keypoints(ann_file: str | Path | COCO, results: Sequence[dict], image_ids: Sequence[int] | None = None,
                       sigmas: Sequence[float] | None = None, skeleton: Skeleton | None = None, *,
                       scope: ScoringScope | None = None) -> dict[str, float]:
    """COCO keypoint AP/AR of ``results`` against the annotations in ``ann_file``.

    ``results``: COCO keypoint result dicts (``Poses.to_coco``: ``image_id``, ``category_id``, ``keypoints``
    3K x, y, score, ``score``). ``image_ids``: the images evaluated (default: all). ``skeleton`` (default: the
    file's): only its categories' annotations are scored, pooled when several share it, results of any of them
    counting (:func:`scoring_scope`; ``scope``, when the caller has it, wins). ``sigmas`` (K,): default the
    skeleton's.

    Returns the ten standard statistics keyed by :data:`METRIC_NAMES` (AP at OKS 0.50:0.95,
    0.50, 0.75, for medium and large people, then the same for AR), each in [0, 1], or -1
    where pycocotools has nothing to measure (e.g. no large person in the ground truth).
    Empty ``results`` give all zeros and a warning (pycocotools cannot load an empty list).
    """
    source = str(ann_file) if not isinstance(ann_file, COCO) else "COCO ground truth"
    coco_file = ann_file if isinstance(ann_file, COCO) else load_coco(ann_file)
    scope = scope or scoring_scope(coco_file, skeleton, source)
    coco_gt = _scored_ground_truth(coco_file, scope, source)
    num_keypoints = scope.skeleton.num_keypoints
    known_images = set(coco_gt.getImgIds())
    clean = _check_results(results, num_keypoints, known_images)
    if not clean:
        logger.warning("evaluate_keypoints: no results to evaluate against %s; every metric is 0", source)
        return {name: 0.0 for name in METRIC_NAMES}
    for res in clean:
        if res["category_id"] in scope.category_ids:
            res["category_id"] = scope.category_id  # the pool's one id

    oks_sigmas = scope.skeleton.sigmas_array
    if sigmas is not None:
        given = np.asarray(sigmas, dtype=np.float64)  # (K,): a (1, K) or (K, 1) table is refused
        oks_sigmas = np.asarray(check_sigmas(given, num_keypoints, f"{source}: 'sigmas'", written=given.tolist()))

    coco_dt = _quiet(coco_gt.loadRes, clean)
    evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    evaluator.params.kpt_oks_sigmas = oks_sigmas
    if image_ids is not None:
        unknown = sorted(set(int(i) for i in image_ids) - known_images)
        if unknown:
            raise ValueError(f"image_ids {unknown[:5]} are not images of {source}")
        evaluator.params.imgIds = sorted(set(int(i) for i in image_ids))
    for step in (evaluator.evaluate, evaluator.accumulate, evaluator.summarize):
        _quiet(step)
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


@dataclass
class PredictorEvaluation:
    """What :func:`evaluate_predictor` measured: the metrics, the COCO results, which images were scored,
    and on which annotations (``scope``)."""

    metrics: dict[str, float]
    results: list[dict]
    image_ids: list[int]
    failures: list[str] = field(default_factory=list)
    scope: ScoringScope | None = None


def check_ground_truth(coco: COCO, source: str, skeleton: Skeleton | None = None) -> ScoringScope:
    """The scope a file is scored in (:func:`scoring_scope`), its annotations checked for what keypoint
    evaluation reads: a ValueError naming ``source`` before any model runs."""
    scope = scoring_scope(coco, skeleton, source)
    _scored_ground_truth(coco, scope, source)
    return scope


def evaluate_predictor(predictor: Any, ann_file: str | Path | COCO, images_dir: str | Path, max_images: int = 0,
                       batch_size: int = 1, progress: bool = False, skeleton: Skeleton | None = None, *,
                       max_image_pixels: int | None = None, images_anywhere: bool = False,
                       source: str | None = None) -> PredictorEvaluation:
    """Run ``predictor`` (``predict_batch(images, image_ids) -> list[Poses]``) over the images of a COCO keypoint
    file and score its people. An unreadable image is logged, listed in ``failures`` and left out; a folder
    missing an image, or holding one above ``max_image_pixels`` or of another size than its entry, is refused
    before anything runs (``images_anywhere``: names may leave ``images_dir``). People are scored on their
    skeleton's annotations (``skeleton``, default the codec's, else the people's; :func:`scoring_scope`).
    ``source`` names the ground truth in errors (default: the file's path).
    """
    from tqdm import tqdm

    from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS, ImageReadError, check_image_files, read_image

    source = source or (str(ann_file) if not isinstance(ann_file, COCO) else "COCO ground truth")
    max_pixels = max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS
    coco = ann_file if isinstance(ann_file, COCO) else load_coco(ann_file)
    image_ids = sorted(coco.getImgIds())[: max_images or None]  # max_images 0: all
    if not image_ids:
        raise ValueError("the annotation file lists no images")
    if not Path(images_dir).is_dir():
        raise FileNotFoundError(f"image folder not found: {images_dir}")
    entries = [(coco.imgs[i]["file_name"], coco.imgs[i]["height"], coco.imgs[i]["width"]) for i in image_ids]
    # the headers only, so that a missing, too large or wrongly sized image is refused before anything runs
    paths = check_image_files(images_dir, entries, "to evaluate", max_pixels, images_anywhere, strict=False)
    path_of = dict(zip(image_ids, paths))
    if skeleton is None and isinstance(getattr(predictor, "skeleton", None), Skeleton):
        skeleton = predictor.skeleton  # the predictor's people's (Predictor, TopDownPipeline)
    scope = scoring_scope(coco, skeleton, source) if skeleton is not None else None  # refused before any image
    found: list[tuple[int, Any]] = []
    failures: list[str] = []
    step = max(1, int(batch_size))
    with tqdm(total=len(image_ids), unit="img", desc="eval", disable=not progress, leave=False) as bar:
        for start in range(0, len(image_ids), step):
            ids, images = [], []
            for image_id in image_ids[start : start + step]:
                info = coco.imgs[image_id]
                try:
                    images.append(read_image(path_of[image_id], (info["height"], info["width"]), max_pixels))
                    ids.append(image_id)
                except ImageReadError as exc:
                    failures.append(str(exc))
                    logger.warning("%s (skipped)", exc)
            found.extend(zip(ids, predictor.predict_batch(images, ids)))
            bar.update(len(image_ids[start : start + step]))
    if not found:
        raise ValueError(f"none of the {len(image_ids)} images could be read from {images_dir}")
    scope = scope or scoring_scope(coco, found[0][1].skeleton, source)
    results = [r for image_id, poses in found for r in poses.to_coco(image_id, scope.category_id)]
    evaluated = [image_id for image_id, _ in found]
    metrics = evaluate_keypoints(coco, results, image_ids=evaluated, scope=scope)
    return PredictorEvaluation(metrics, results, evaluated, failures, scope)
