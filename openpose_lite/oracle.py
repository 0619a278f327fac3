"""Codec oracles: ground truth -> maps at model resolution -> decode -> COCO metrics.

An oracle measures what a codec alone loses, with a perfect network: the AP it gives is
the ceiling of any model trained on that codec's targets.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from openpose_lite.branches import branch
from openpose_lite.coco.skeleton import skeleton_of_file
from openpose_lite.codecs import BottomUpPafCodec, TopDownHeatmapCodec
from openpose_lite.config import Config, build_bottomup_codec, build_topdown_codec
from openpose_lite.data.ground_truth import gt_box
from openpose_lite.evaluation import evaluate_keypoints, load_coco, scoring_scope
from openpose_lite.geometry import (box_to_center_scale, crop_affine, invert_affine, letterbox_affine,
                                    transform_keypoints)
from openpose_lite.skeleton import Skeleton

log = logging.getLogger(__name__)


def _ann_keypoints(anns: list[dict], k: int) -> np.ndarray:
    """(N, K, 3) float32 keypoints of a list of annotations."""
    return np.asarray([a["keypoints"] for a in anns], dtype=np.float32).reshape(len(anns), k, 3)


def bottomup_oracle_results(ann_file: str | Path, codec: BottomUpPafCodec | None = None, input_size: int | None = None,
                            progress: bool = False) -> list[dict]:
    """COCO results decoded from ground-truth maps, one image at a time.

    Each image is scaled so its height is ``input_size`` and padded to the stride (as the CMU
    demo feeds its network); the ground truth of the codec's skeleton is encoded at that size,
    decoded, and mapped back. The results carry the category id of the skeleton's annotations.
    ``codec`` and ``input_size`` default to the config's.
    """
    codec = codec or build_bottomup_codec()
    input_size = input_size or Config().codec.input_size
    coco = load_coco(ann_file, codec.skeleton)  # malformed instances are refused here, named
    scope = scoring_scope(coco, codec.skeleton, str(ann_file))
    people = scope.labelled_instances(coco)
    results: list[dict] = []
    for image_id in tqdm(sorted(coco.getImgIds()), desc="bottom-up oracle", disable=not progress):
        info = coco.imgs[image_id]
        matrix, input_hw = letterbox_affine((info["height"], info["width"]), input_size, codec.stride)
        kps = transform_keypoints(matrix, _ann_keypoints(people.get(image_id, []), scope.skeleton.num_keypoints))
        targets, _ = codec.encode(kps, input_hw)
        poses = codec.decode(targets).transform(invert_affine(matrix))
        results.extend(poses.to_coco(image_id, scope.category_id))
    return results


def topdown_oracle_results(ann_file: str | Path, codec: TopDownHeatmapCodec | None = None, padding: float | None = None,
                           progress: bool = False) -> list[dict]:
    """COCO results decoded from ground-truth heatmaps of crops around the ground-truth boxes.

    Boxes and crops follow the codec's convention, as :class:`~openpose_lite.inference.TopDownPredictor` makes them;
    ``codec`` and ``padding`` default to the config's.
    """
    codec = codec or build_topdown_codec()
    padding = Config().topdown.padding if padding is None else padding
    coco = load_coco(ann_file, codec.skeleton)  # malformed instances are refused here, named
    scope = scoring_scope(coco, codec.skeleton, str(ann_file))
    people = scope.labelled_instances(coco)
    h, w = codec.input_hw
    results: list[dict] = []
    for image_id in tqdm(sorted(people), desc="top-down oracle", disable=not progress):
        info = coco.imgs[image_id]
        for ann in people[image_id]:
            box = gt_box(ann, (info["height"], info["width"]), codec.convention)
            if box is None:
                continue  # a box the convention's evaluation drops gives no person
            center, size = box_to_center_scale(box, w / h, padding, codec.convention)
            matrix = crop_affine(center, size, codec.input_hw, convention=codec.convention)
            kps = transform_keypoints(matrix, _ann_keypoints([ann], scope.skeleton.num_keypoints))[0]
            targets, _ = codec.encode(kps)
            results.extend(codec.decode(targets).transform(invert_affine(matrix)).to_coco(image_id, scope.category_id))
    return results


def run_oracle(branch_name: str, ann_file: str | Path, progress: bool = False, input_size: int | None = None,
               skeleton: Skeleton | None = None, **codec_overrides) -> tuple[dict[str, float], list[dict]]:
    """Oracle COCO metrics of a branch of the table (:mod:`openpose_lite.branches`: ``"bottomup"``,
    ``"topdown"``) on an annotation file.

    ``skeleton``: whose annotations are encoded and scored (default: the file's own,
    :func:`~openpose_lite.coco.skeleton.skeleton_of_file`; COCO_17 for a person file). The codec
    is the one the predictors and ``bench`` use: the branch's, built from the config defaults for the
    skeleton, with ``codec_overrides`` (codec field -> value, e.g. ``refine="dark"``) on top.
    ``input_size``: the bottom-up input height (default ``codec.input_size`` of the config).
    Returns the COCO keypoint metrics and the decoded COCO results.
    """
    row = branch(branch_name)
    if input_size is not None and "input_size" not in row.options:
        raise ValueError(f"input_size: not an option of the {row.title} branch (its options: {', '.join(row.options)})")
    skeleton = skeleton or skeleton_of_file(ann_file)
    codec = dataclasses.replace(row.build_codec(Config(), skeleton=skeleton), **codec_overrides)
    geometry = {} if input_size is None else {"input_size": input_size}
    results = row.oracle_results(ann_file, codec, progress=progress, **geometry)
    log.info("%s oracle: %d people decoded", row.title, len(results))
    return evaluate_keypoints(ann_file, results, skeleton=skeleton), results
