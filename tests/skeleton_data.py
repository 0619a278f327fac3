"""COCO-format files of made-up skeletons for the skeleton tests: an insect of 32 keypoints whose limb
list is a forest (or absent), with instances at known coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# name -> (x, y) of the template insect, in units of its length (left side at +x). Four naming
# conventions of left and right: a side word, L1/R1, a camelCase suffix, _l/_r.
INSECT = {
    "head": (0.0, -0.40), "thorax": (0.0, -0.15), "abdomen": (0.0, 0.15), "tail": (0.0, 0.45),
    "antenna_left_base": (0.04, -0.47), "antenna_left_tip": (0.15, -0.62),
    "antenna_right_base": (-0.04, -0.47), "antenna_right_tip": (-0.15, -0.62),
    "wingBaseL": (0.07, -0.08), "wingTipL": (0.30, 0.30), "wingBaseR": (-0.07, -0.08), "wingTipR": (-0.30, 0.30),
    "eye_l": (0.06, -0.42), "eye_r": (-0.06, -0.42),
}
for _i in (1, 2, 3):
    for _side, _sign in (("L", 1.0), ("R", -1.0)):
        _y = -0.25 + 0.1 * _i
        INSECT[f"{_side}{_i}_coxa"] = (_sign * 0.08, _y)
        INSECT[f"{_side}{_i}_femur"] = (_sign * 0.25, _y - 0.06)
        INSECT[f"{_side}{_i}_tarsus"] = (_sign * 0.42, _y + 0.08)
INSECT_NAMES = list(INSECT)
# A forest: the body chain, each leg, antenna and wing on its own, the eyes joined to nothing.
_FOREST = [("head", "thorax"), ("thorax", "abdomen"), ("abdomen", "tail"),
           ("antenna_left_base", "antenna_left_tip"), ("antenna_right_base", "antenna_right_tip"),
           ("wingBaseL", "wingTipL"), ("wingBaseR", "wingTipR")]
_FOREST += [(f"{s}{i}_coxa", f"{s}{i}_femur") for i in (1, 2, 3) for s in "LR"]
_FOREST += [(f"{s}{i}_femur", f"{s}{i}_tarsus") for i in (1, 2, 3) for s in "LR"]
INSECT_FOREST = [[INSECT_NAMES.index(a) + 1, INSECT_NAMES.index(b) + 1] for a, b in _FOREST]


def insect_instances(count: int, seed: int = 0, size: float = 120.0) -> np.ndarray:
    """(count, 32, 3) insects: the template scaled to ``size`` px, turned a little, every keypoint moved
    by up to 2 % of the size, all labelled (v = 2), centred at (150, 150)."""
    rng = np.random.default_rng(seed)
    template = np.array(list(INSECT.values()))
    out = np.zeros((count, len(template), 3))
    for n in range(count):
        angle = rng.uniform(-0.3, 0.3)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = (template + rng.uniform(-0.02, 0.02, template.shape)) @ rot.T
        out[n, :, :2] = 150.0 + size * pts
        out[n, :, 2] = 2
    return out


def write_skeleton_file(path: Path, names: list[str], limbs: list | None, instances: np.ndarray,
                        image_hw: tuple[int, int] = (300, 300), category: dict | None = None) -> Path:
    """A COCO keypoint file: one category (``names``, ``limbs`` 1-based, or no ``skeleton`` for None),
    one image per instance (the images need not exist to read the file)."""
    cat = {"id": 1, "name": "insect", "supercategory": "animal", "keypoints": names, **(category or {})}
    if limbs is not None:
        cat["skeleton"] = limbs
    images, anns = [], []
    for n, kps in enumerate(np.asarray(instances, dtype=np.float64)):
        images.append({"id": n + 1, "file_name": f"{n + 1:03d}.jpg", "height": image_hw[0], "width": image_hw[1]})
        on = kps[:, 2] > 0
        lo, hi = kps[on, :2].min(axis=0), kps[on, :2].max(axis=0)
        anns.append({"id": n + 1, "image_id": n + 1, "category_id": cat["id"], "iscrowd": 0,
                     "keypoints": [round(float(v), 2) for v in kps.reshape(-1)], "num_keypoints": int(on.sum()),
                     "bbox": [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])],
                     "area": float((hi - lo).prod())})
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [cat]}))
    return path
