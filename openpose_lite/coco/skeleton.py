"""A skeleton from a COCO-format annotation file: names, limbs, flip pairs, sigmas, completed limbs.

:func:`skeleton_from_category` turns one COCO keypoint category (``keypoints``: names in annotation order;
``skeleton``: 1-based limbs) into a :class:`~openpose_lite.skeleton.Skeleton`; :func:`skeleton_of_file` takes
the one skeleton of a file (categories sharing one keypoint list, such as AP-10K's 54 species, make one) and
completes its limbs from the annotations. The rules:

* **A file names its keypoints**: one without keypoint names, or with more keypoints than
  :data:`~openpose_lite.skeleton.MAX_KEYPOINTS` (unless raised), is refused.
* **The person**: COCO's 17 names make ``COCO_17`` (bottom-up: CMU's ``OPENPOSE_18``) unless settings are
  given (MacaquePose names its keypoints so, and mmpose gives it COCO's sigmas).
* **Flip pairs** come from names differing only in one side word, ``left``/``right``, ``L``/``R`` or
  ``lt``/``rt``, as a prefix, suffix or part between ``_ - . space`` or at a camelCase or digit boundary,
  case-insensitively (``L_F_Paw``/``R_F_Paw``, ``EyeL``/``EyeR``, ``L1``/``R1``; never ``l`` glued to a word,
  as in ``eyel``); or they are stated: the ``flip_pairs`` setting or category list (1-based or names).
* **OKS sigmas**: the ``sigmas`` setting or category list; else :data:`KNOWN_SIGMAS` for the dataset's
  keypoint list; else :data:`DEFAULT_SIGMA` each.
* **Limbs**: the category's or the ``limbs`` setting, plus the mirror of a limb that has none (PAF models
  see mirrored images). Where they leave keypoints unconnected, :func:`complete_limbs` adds limbs chosen from
  the annotations (logged, kept in ``Skeleton.added_limbs``).

Shape legend: N instances, K keypoints, L limbs.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from openpose_lite.coco.validation import AnnotationError, CocoLayout, read_coco_keypoints
from openpose_lite.limbs import chunks, instance_completion, limb_components, mirror_completion, tree_completion
from openpose_lite.params import brief
from openpose_lite.skeleton import COCO_17, Skeleton, check_sigmas

__all__ = ["DEFAULT_SIGMA", "KNOWN_SIGMAS", "chosen_categories", "chosen_instances", "complete_limbs",
           "flip_pairs_from_names", "pair_distances", "skeleton_from_category", "skeleton_of_coco", "skeleton_of_file"]

logger = logging.getLogger(__name__)

# The OKS sigma of every keypoint of a skeleton that publishes none: DeepLabCut's (DeepLabCut/DeepLabCut,
# deeplabcut/core/metrics/api.py, compute_metrics: oks_sigma=0.1), within COCO's body range (0.062 wrists
# .. 0.107 hips): a keypoint error of 10% of an animal's sqrt(area) scores OKS exp(-0.5 * (0.1 / 0.2)**2) = 0.88.
DEFAULT_SIGMA = 0.1

# Per-keypoint OKS sigmas that benchmarks publish, by the keypoint names of the dataset's files: the
# datasets' papers give none; these are their evaluation's in mmpose (open-mmlab/mmpose, configs/_base_/
# datasets/ap10k.py and animalpose.py, ``sigmas``; AP-10K's code is built on it). macaque.py's are COCO's.
KNOWN_SIGMAS: dict[tuple[str, ...], tuple[str, tuple[float, ...]]] = {
    ("left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder", "left_elbow", "left_front_paw",
     "right_shoulder", "right_elbow", "right_front_paw", "left_hip", "left_knee", "left_back_paw", "right_hip",
     "right_knee", "right_back_paw"): ("AP-10K", (
         0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
         0.089, 0.089)),
    ("L_Eye", "R_Eye", "L_EarBase", "R_EarBase", "Nose", "Throat", "TailBase", "Withers", "L_F_Elbow", "R_F_Elbow",
     "L_B_Elbow", "R_B_Elbow", "L_F_Knee", "R_F_Knee", "L_B_Knee", "R_B_Knee", "L_F_Paw", "R_F_Paw", "L_B_Paw",
     "R_B_Paw"): ("Animal-Pose", (
         0.025, 0.025, 0.026, 0.035, 0.035, 0.10, 0.10, 0.10, 0.107, 0.107, 0.107, 0.107, 0.087, 0.087, 0.087, 0.087,
         0.089, 0.089, 0.089, 0.089)),
}

_SIDES = {"left": "L", "l": "L", "lt": "L", "right": "R", "r": "R", "rt": "R"}
# Words of a name: runs of capitals not followed by a lower-case letter (L in LEye, EYE), a
# capitalised or lower-case word (Eye, eye), digits.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _side_of(name: str) -> tuple[str, tuple[str, ...]] | None:
    """("L" or "R", the name's other words, lower-cased, with the side word's place marked), or None."""
    words = [w for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORD.findall(part)]
    at = [i for i, w in enumerate(words) if w.lower() in _SIDES]
    if len(at) != 1:
        return None
    key = tuple("*" if i == at[0] else w.lower() for i, w in enumerate(words))
    return _SIDES[words[at[0]].lower()], key


def flip_pairs_from_names(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """(left, right) index pairs of the names that differ only in their side word (module docstring); a name
    without a counterpart, or sharing its side and other words with another name, pairs with nothing."""
    by_key: dict[tuple[str, ...], dict[str, list[int]]] = {}
    for i, name in enumerate(names):
        side = _side_of(name)
        if side is not None:
            by_key.setdefault(side[1], {"L": [], "R": []})[side[0]].append(i)
    pairs = [(sides["L"][0], sides["R"][0]) for sides in by_key.values()
             if len(sides["L"]) == 1 and len(sides["R"]) == 1]
    return tuple(sorted(pairs))


# ------------------------------------------------------------------------------ one category
def _names(category: Mapping[str, Any], where: str) -> tuple[str, ...]:
    names = category.get("keypoints")
    if not isinstance(names, list) or not names:
        raise ValueError(f"{where}: 'keypoints' is {brief(names)}, expected a non-empty list of keypoint names")
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: keypoints[{i}] is {brief(name)}, expected a keypoint name")
        if name in first:
            raise ValueError(f"{where}: keypoint name {brief(name)} appears twice (keypoints[{first[name]}] and "
                             f"keypoints[{i}]); names must be distinct")
        first[name] = i
    return tuple(names)


def _index_pairs(raw: Any, names: tuple[str, ...], field: str, where: str, base: int) -> list[tuple[int, int]]:
    """Pairs of keypoint names or ``base``-based indices -> 0-based pairs; errors name ``field`` and show its
    entries as written. A limb list joins a pair of keypoints once; in flip pairs a keypoint appears once."""
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}: '{field}' is {brief(raw)}, expected a list of keypoint pairs")
    k, out = len(names), []
    index = {name: i for i, name in enumerate(names)}
    seen: dict[Any, int] = {}  # a pair (limbs) or a keypoint (flip pairs) -> the entry that has it
    for j, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{where}: {field}[{j}] is {brief(pair)}, expected a pair of keypoints")
        ends = []
        for end in pair:
            if isinstance(end, str):
                if end not in index:
                    raise ValueError(f"{where}: {field}[{j}] names {brief(end)}, which is not one of the keypoints")
                ends.append(index[end])
            elif isinstance(end, (int, np.integer)) and not isinstance(end, bool) and base <= end < k + base:
                ends.append(int(end) - base)
            else:
                zero = " (COCO's limb indices are 1-based: 1 is the first keypoint)" if base == 1 and end == 0 else ""
                raise ValueError(f"{where}: {field}[{j}] = {brief(list(pair))} has keypoint index {brief(end)}, "
                                 f"expected {base}..{k + base - 1} for {k} keypoints{zero}")
        a, b = ends
        if a == b:
            raise ValueError(f"{where}: {field}[{j}] = {brief(list(pair))} joins a keypoint to itself")
        flip = field == "flip_pairs"
        for key in ends if flip else [frozenset(ends)]:
            if key in seen:
                what = f"pairs {names[key]!r} again" if flip else f"joins {names[a]!r} and {names[b]!r} again"
                rule = "a keypoint has one mirror image" if flip else "a pair of keypoints is joined once"
                raise ValueError(f"{where}: {field}[{j}] = {brief(list(pair))} {what}, as {field}[{seen[key]}] = "
                                 f"{brief(list(raw[seen[key]]))} does; {rule}")
            seen[key] = j
        out.append((a, b))
    return out


def _sigmas(explicit: Any, names: tuple[str, ...], where: str) -> tuple[tuple[float, ...], str]:
    """(sigmas, where they come from) for the names (see the module docstring)."""
    if explicit is not None:
        values = [explicit.get(n) for n in names] if isinstance(explicit, Mapping) else explicit
        return check_sigmas(values, len(names), f"{where}: 'sigmas'", written=explicit,
                            form="a list, or a name -> sigma mapping naming every keypoint"), "stated"
    if names in KNOWN_SIGMAS:
        dataset, sigmas = KNOWN_SIGMAS[names]
        return sigmas, f"{dataset}'s published sigmas"
    return (DEFAULT_SIGMA,) * len(names), f"the default sigma {DEFAULT_SIGMA} for every keypoint"


def skeleton_from_category(
    category: Mapping[str, Any],
    *,
    source: str = "category",
    name: str | None = None,
    limbs: Sequence[Sequence[int | str]] | None = None,
    flip_pairs: Sequence[Sequence[int | str]] | None = None,
    sigmas: Sequence[float] | Mapping[str, float] | None = None,
) -> Skeleton:
    """The skeleton of one COCO category (the module docstring's rules), without limb completion.

    ``source`` names the file in errors; ``name`` defaults to the category's. ``limbs`` and ``flip_pairs``
    replace the category's, as name pairs or 0-based index pairs; ``sigmas``: K values or name -> sigma.
    Raises ValueError naming ``source``, the category and the field.
    """
    where = f"{source}: category {brief(category.get('name', category.get('id')))}"
    names = _names(category, where)
    given = (_index_pairs(limbs, names, "limbs", where, 0) if limbs is not None
             else _index_pairs(category.get("skeleton") or [], names, "skeleton", where, 1))
    stated = any(v is not None for v in (limbs, flip_pairs, sigmas)) or {"flip_pairs", "sigmas"} & set(category)
    if names == COCO_17.keypoints and not stated:
        return COCO_17  # the person: its CMU bottom-up layout and COCO's sigmas
    if flip_pairs is not None:
        flips = _index_pairs(flip_pairs, names, "flip_pairs", where, 0)
    elif "flip_pairs" in category:
        flips = _index_pairs(category["flip_pairs"], names, "flip_pairs", where, 1)
    else:
        flips = list(flip_pairs_from_names(names))
    oks, origin = _sigmas(sigmas if sigmas is not None else category.get("sigmas"), names, where)
    perm = np.arange(len(names))
    for a, b in flips:
        perm[a], perm[b] = b, a
    mirrored = mirror_completion(tuple(given), perm)
    if mirrored:
        logger.info("%s: added the mirror images of limbs, which PAF flipping needs: %s", where,
                    ", ".join(f"{names[a]}-{names[b]}" for a, b in mirrored))
    logger.info("%s: %d keypoints, %d limbs, %d flip pairs, OKS sigmas: %s", where, len(names),
                len(given) + len(mirrored), len(flips), origin)
    return Skeleton(
        name=name or str(category.get("name", "skeleton")), keypoints=names, limbs=tuple(given) + tuple(mirrored),
        flip_pairs=tuple(flips), sigmas=oks, added_limbs=tuple(range(len(given), len(given) + len(mirrored))),
    )


# ------------------------------------------------------------------------------ completion
def _instance_scale(ann: Mapping[str, Any], kps: np.ndarray) -> float:
    """An instance's size in pixels: sqrt(area) (OKS's scale), else of its box, else its keypoints' extent."""
    area = ann.get("area")
    if isinstance(area, (int, float)) and area > 0:
        return float(np.sqrt(area))
    box = ann.get("bbox")
    if isinstance(box, list) and len(box) == 4 and box[2] > 0 and box[3] > 0:
        return float(np.sqrt(box[2] * box[3]))
    pts = kps[kps[:, 2] > 0, :2]
    return float(np.ptp(pts, axis=0).max()) if len(pts) > 1 else 0.0


def pair_distances(keypoints: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(K, K) mean distance of each keypoint pair labelled together in ``keypoints`` (N, K, 3), in instance
    sizes ``scales`` (N,; size 0: left out); inf where never."""
    kps = np.asarray(keypoints, dtype=np.float64)
    k = kps.shape[1] if kps.ndim == 3 else 0
    keep = np.asarray(scales, dtype=np.float64) > 0
    kps, scales = kps[keep], np.asarray(scales, dtype=np.float64)[keep]
    total, count = np.zeros((k, k)), np.zeros((k, k))
    # A chunk of instances at a time: (N, K, K) at once is gigabytes for a file of many instances of a
    # large skeleton.
    for part in chunks(len(kps), k * k):
        xy = kps[part, :, :2] / scales[part, None, None]
        labelled = (kps[part, :, 2] > 0).astype(np.float64)  # (n, K)
        dist = xy[:, :, None, 0] - xy[:, None, :, 0]  # (n, K, K), worked in place: the distance, labelled at both ends
        np.hypot(dist, xy[:, :, None, 1] - xy[:, None, :, 1], out=dist)
        dist *= labelled[:, :, None]
        dist *= labelled[:, None, :]
        total += dist.sum(axis=0)
        count += labelled.T @ labelled  # whole numbers: exact
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean[count == 0] = np.inf
    np.fill_diagonal(mean, np.inf)
    return mean


def complete_limbs(skeleton: Skeleton, keypoints: np.ndarray, scales: np.ndarray, source: str = "skeleton") -> Skeleton:
    """``skeleton`` with limbs added (logged, kept in ``added_limbs``) where its limbs leave keypoints
    unconnected, from the instances ``keypoints`` (N, K, 3) of sizes ``scales`` (N,): a minimum spanning tree
    over the pieces (:func:`~openpose_lite.limbs.tree_completion`), then at most one limb per keypoint that
    keeps partly labelled instances whole (:func:`~openpose_lite.limbs.instance_completion`)."""
    if skeleton.background or limb_components(skeleton.num_keypoints, skeleton.limbs).max(initial=0) == 0:
        return skeleton
    distances = pair_distances(keypoints, scales)
    names = skeleton.keypoints

    def listed(pairs: list[tuple[int, int]]) -> str:
        return ", ".join(f"{names[a]}-{names[b]} ({distances[a, b]:.2f})" for a, b in pairs)

    tree = tree_completion(skeleton.limbs, distances, skeleton.flip_permutation)
    measured = [p for p in tree if np.isfinite(distances[p])]
    if measured:
        logger.info("%s: the limbs of %s leave keypoints unconnected; added %d limbs chosen from the annotations "
                    "(shortest mean distances, in instance sizes): %s", source, skeleton.name, len(measured),
                    listed(measured))
    if len(measured) < len(tree):
        logger.warning("%s: keypoints never labelled together with the others, so no annotation places their limbs; "
                       "joined by keypoint order: %s (list limbs explicitly if that is wrong)", source,
                       ", ".join(f"{names[a]}-{names[b]}" for a, b in tree if not np.isfinite(distances[a, b])))
    labelled = np.asarray(keypoints).reshape(-1, skeleton.num_keypoints, 3)[..., 2] > 0
    # At most one limb per keypoint: each is two more PAF channels and one more matching pass.
    whole, still_split = instance_completion(skeleton.limbs + tuple(tree), distances, skeleton.flip_permutation,
                                             labelled, max_added=skeleton.num_keypoints)
    if whole:
        logger.info("%s: added %d limbs that keep partly labelled instances whole (their labelled keypoints joined "
                    "by limbs labelled at both ends; they close cycles): %s", source, len(whole), listed(whole))
    if still_split:
        logger.warning("%s: %d partly labelled instances stay in pieces after %d limbs added to keep such instances "
                       "whole (at most one per keypoint); a bottom-up model may return them in pieces (list limbs "
                       "explicitly to choose others)", source, still_split, len(whole))
    added = tree + whole
    start = len(skeleton.limbs)
    return replace(skeleton, limbs=skeleton.limbs + tuple(added), colours=(),
                   added_limbs=skeleton.added_limbs + tuple(range(start, start + len(added))))


# ------------------------------------------------------------------------------ a whole file
def _choose_group(layout: CocoLayout, source: str, category: int | str | None) -> tuple[str, ...]:
    """The keypoint names of the category group a file's skeleton comes from (see skeleton_of_coco)."""
    layout.check_named(source)
    groups = layout.groups()
    if category is not None:
        for names, ids in groups:
            if any(category in (i, layout.category_names.get(i)) for i in ids):
                return names
        raise AnnotationError(f"{source}: no keypoint category {brief(category)}; its keypoint categories are "
                              f"{brief([layout.category_names.get(i, i) for _, ids in groups for i in ids][:10])}")
    counts = [sum(layout.annotation_counts.get(i, 0) for i in ids) for _, ids in groups]
    return groups[int(np.argmax(counts))][0]


def skeleton_of_coco(
    data: Mapping[str, Any], layout: CocoLayout, source: str, *, category: int | str | None = None,
    complete: bool = True, **settings: Any,
) -> tuple[Skeleton, CocoLayout]:
    """(skeleton, the layout of its categories) of a COCO dict that :func:`read_coco_keypoints` checked.

    The skeleton comes from the group of categories that share one keypoint list and hold the
    most annotations (or the one holding ``category``, an id or a name); other keypoint
    categories are logged as left out. ``settings`` go to :func:`skeleton_from_category`;
    ``complete`` completes the limbs from the group's annotations (:func:`complete_limbs`).
    """
    names = _choose_group(layout, source, category)
    chosen = layout.select(names, source, "the chosen category")
    cats = chosen_categories(data, chosen)
    if len({repr(c.get("skeleton")) for c in cats}) > 1:
        logger.warning("%s: the %d categories sharing these keypoints list different limbs; %r's are used",
                       source, len(cats), cats[0].get("name"))
    if chosen.left_out():
        logger.warning("%s: %s", source, chosen.left_out())
    label = str(cats[0].get("name")) if len(cats) == 1 else Path(source).stem
    skeleton = skeleton_from_category(cats[0], source=source, name=settings.pop("name", None) or label, **settings)
    if complete and not skeleton.is_person:
        anns, kps = chosen_instances(data, chosen, skeleton.num_keypoints)
        scales = np.array([_instance_scale(a, p) for a, p in zip(anns, kps)])
        skeleton = complete_limbs(skeleton, kps, scales, source)
    return skeleton, chosen


def chosen_categories(data: Mapping[str, Any], chosen: CocoLayout) -> list[dict[str, Any]]:
    """The category dicts of a COCO dict that ``chosen`` (:func:`skeleton_of_coco`'s layout) scores, in file order."""
    return [c for c in data.get("categories", []) if isinstance(c, dict) and c.get("id") in chosen.keypoint_categories]


def chosen_instances(data: Mapping[str, Any], chosen: CocoLayout, k: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """(annotations, their keypoints (N, K, 3) float64): the instances of ``chosen``'s categories that
    are not crowds and hold K keypoints, in file order."""
    anns = [a for a in data.get("annotations", []) if chosen.is_person(a) and not a.get("iscrowd", 0)
            and isinstance(a.get("keypoints"), list) and len(a["keypoints"]) == 3 * k]
    return anns, np.asarray([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, k, 3)


def skeleton_of_file(path: str | os.PathLike[str], *, category: int | str | None = None, complete: bool = True,
                     **settings: Any) -> Skeleton:
    """The one skeleton of a COCO-format annotation file (see :func:`skeleton_of_coco`), checked as every
    reader checks it (:func:`~openpose_lite.coco.validation.read_coco_keypoints`).

    Raises FileNotFoundError, or ValueError naming the file and the field.
    """
    data, layout = read_coco_keypoints(path)
    return skeleton_of_coco(data, layout, str(path), category=category, complete=complete, **settings)[0]
