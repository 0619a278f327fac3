"""Tracking metrics: CLEAR-MOT (MOTA, MOTP) and identity (IDF1) scores of tracked poses, via py-motmetrics.

The distance of a true person and a predicted one is ``1 - OKS`` over the keypoints labelled in
both (:func:`~openpose_lite.oks.keypoint_similarity`), the true person's scale its area (by
default the box of its labelled keypoints). py-motmetrics is an optional dependency (the
``track`` extra); it is imported when :func:`evaluate_tracking` runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openpose_lite.oks import keypoint_box_areas, keypoint_similarity
from openpose_lite.structures import Poses

__all__ = ["MOT_METRICS", "evaluate_tracking"]

# The metrics, in order, and py-motmetrics' name of each.
_MM_NAMES = {
    "mota": "mota", "motp": "motp", "idf1": "idf1", "idp": "idp", "idr": "idr", "precision": "precision",
    "recall": "recall", "id_switches": "num_switches", "fragmentations": "num_fragmentations",
    "false_positives": "num_false_positives", "misses": "num_misses", "person_frames": "num_objects",
    "people": "num_unique_objects", "mostly_tracked": "mostly_tracked",
}
MOT_METRICS: tuple[str, ...] = tuple(_MM_NAMES)
_MM_COUNTS = {"id_switches", "fragmentations", "false_positives", "misses", "person_frames", "people", "mostly_tracked"}


def evaluate_tracking(predicted: Sequence[Poses], truth: Sequence[Poses], max_distance: float = 0.5,
                      truth_areas: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """CLEAR-MOT and identity metrics of tracked people against the true ids, through py-motmetrics.

    Per frame the distance is ``1 - OKS`` (:func:`keypoint_similarity`, the true person as reference, the
    truth's skeleton and sigmas; predictions are converted to it); pairs farther than ``max_distance`` cannot
    match. Predicted people with track id -1 are not hypotheses.

    Args:
        predicted: per frame, Poses with ``track_ids`` (e.g. from :meth:`Tracker.update`).
        truth: per frame, Poses with ``track_ids`` >= 0, the true identities.
        max_distance: the largest ``1 - OKS`` of a match.
        truth_areas: per frame, (N,) scales of the true people (e.g. COCO's segmentation area;
            default: the area of the box of each one's labelled keypoints).
    Returns:
        The keys of :data:`MOT_METRICS`: ``motp`` is the mean ``1 - OKS`` of the matches; rates
        are floats (NaN where undefined), the counts (``id_switches`` ... ``mostly_tracked``) ints,
        ``person_frames`` being true people summed over frames and ``people`` distinct true ids.
    """
    try:
        import motmetrics as mm
    except ImportError as exc:  # a dev/track extra, not a core dependency
        raise ImportError("evaluate_tracking needs py-motmetrics: pip install 'openpose-lite[track]'") from exc

    if len(predicted) != len(truth):
        raise ValueError(f"evaluate_tracking: {len(predicted)} predicted frames for {len(truth)} true frames")
    if truth_areas is not None and len(truth_areas) != len(truth):
        raise ValueError(f"evaluate_tracking: {len(truth_areas)} frames of areas for {len(truth)} true frames")
    if not 0.0 < max_distance <= 1.0:
        raise ValueError(f"evaluate_tracking: max_distance must be in (0, 1], got {max_distance}")

    acc = mm.MOTAccumulator(auto_id=True)
    for i, (pred, gt) in enumerate(zip(predicted, truth)):
        if not isinstance(pred, Poses) or not isinstance(gt, Poses):
            raise TypeError(f"evaluate_tracking: frame {i}: expected Poses, got {type(pred).__name__} and {type(gt).__name__}")
        if gt.track_ids is None or (gt.track_ids < 0).any():
            raise ValueError(f"evaluate_tracking: frame {i}: every true person needs a track id >= 0")
        if pred.track_ids is None:
            raise ValueError(f"evaluate_tracking: frame {i}: the predicted people have no track_ids (run a Tracker first)")
        pred = pred.as_skeleton(gt.skeleton).select(pred.track_ids >= 0)
        for what, ids in (("true", gt.track_ids), ("predicted", pred.track_ids)):
            if len(np.unique(ids)) != len(ids):
                raise ValueError(f"evaluate_tracking: frame {i}: a {what} track id appears twice: {sorted(ids.tolist())}")
        gt_xy, gt_on = gt.keypoints[..., :2].astype(np.float64), gt.keypoints[..., 2] > 0
        if truth_areas is None:
            areas = keypoint_box_areas(gt_xy, gt_on)
        else:
            areas = np.asarray(truth_areas[i], dtype=np.float64).reshape(-1)
            if areas.shape[0] != len(gt):
                raise ValueError(f"evaluate_tracking: frame {i}: {areas.shape[0]} areas for {len(gt)} true people")
        sim = keypoint_similarity(gt.keypoints, pred.keypoints, areas, gt.skeleton.sigmas_array)
        dist = 1.0 - sim
        dist[(dist > max_distance) | (sim <= 0.0)] = np.nan  # motmetrics: NaN = cannot match
        acc.update(gt.track_ids.tolist(), pred.track_ids.tolist(), dist)

    summary = mm.metrics.create().compute(acc, metrics=[_MM_NAMES[k] for k in MOT_METRICS], name="all")
    row = summary.loc["all"]
    return {key: (int(row[_MM_NAMES[key]]) if key in _MM_COUNTS else float(row[_MM_NAMES[key]])) for key in MOT_METRICS}
