"""What a valid COCO keypoint file is: the one check that training and evaluation share.

Training (:class:`~openpose_lite.data.coco.CocoKeypoints`) and evaluation (:func:`~openpose_lite.evaluation.load_coco`)
read files through :func:`read_coco_keypoints`, so a file is accepted or refused the same way everywhere, before any
image, mask or metric is computed, with one :class:`AnnotationError` line naming the file, image id and annotation id.

Refused: images without an integer ``id``, a ``file_name`` or positive integer ``height`` and ``width``;
annotations without an integer ``id`` or with an ``image_id`` not in the file; repeated ids; a category larger
than :func:`~openpose_lite.skeleton.check_skeleton_size` allows, or none with keypoint names once a skeleton is
wanted (:meth:`CocoLayout.check_named`). For the instances (annotations of a keypoint category; all of them when
none has names): ``keypoints`` not 3 K finite numbers with v in 0, 1, 2; a ``bbox`` not 4 finite numbers with
``w, h >= 0``; an ``area`` not finite >= 0; ``iscrowd`` not 0 or 1; a ``segmentation`` neither polygons (even
counts of finite numbers) nor an RLE of the image's size (:func:`~openpose_lite.coco.rle.rle_problem`);
coordinates outside [-width, 2 width] x [-height, 2 height] (a corrupt file: the map renderers would work over
that range).

Accepted with one warning that counts them (CrowdPose has both): polygons of under 3 points (left out of the
masks), and a ``num_keypoints`` that differs from the labelled keypoints (COCO evaluation goes by it).

Shape legend: K keypoints per person.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from openpose_lite.coco.rle import is_int, rle_problem
from openpose_lite.io import read_json
from openpose_lite.params import brief
from openpose_lite.skeleton import Skeleton, check_skeleton_size

__all__ = ["AnnotationError", "CocoLayout", "coco_layout", "read_coco_keypoints"]

logger = logging.getLogger(__name__)

# A polygon needs three points (six numbers) to enclose any pixel.
MIN_POLYGON_VALUES = 6
_BOX_FORM = "expected [x, y, w, h]: 4 finite numbers with w, h >= 0"
_POLYGON_FORM = "expected an even count of finite numbers (x, y pairs)"


class AnnotationError(ValueError):
    """A COCO keypoint file that breaks the format; the one-line message names the file, image and annotation."""


@dataclass(frozen=True)
class CocoLayout:
    """What the check learned about a valid file: its categories, and which of them are the instances.

    ``keypoint_categories``: category id -> K of those whose annotations are the instances (every category with
    keypoint names, or those with a skeleton's names; empty: every annotation is one). ``category_keypoints``:
    id -> keypoint names; ``category_names``: id -> name; ``annotation_counts``: id -> annotations.
    """

    keypoint_categories: dict[int, int] = field(default_factory=dict)
    category_keypoints: dict[int, tuple[str, ...]] = field(default_factory=dict)
    category_names: dict[int, str] = field(default_factory=dict)
    annotation_counts: dict[int, int] = field(default_factory=dict)

    def is_person(self, ann: Mapping[str, Any]) -> bool:
        """Whether ``ann`` is an instance (a person, an animal), not, e.g., a car of a full instances
        file or an annotation of a category with another skeleton."""
        return not self.keypoint_categories or ann.get("category_id") in self.keypoint_categories

    def groups(self) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
        """The keypoint categories grouped by keypoint names (categories that share one skeleton, e.g.
        AP-10K's 54 species), in file order: [(names, category ids)]."""
        out: dict[tuple[str, ...], list[int]] = {}
        for cat_id, names in self.category_keypoints.items():
            out.setdefault(names, []).append(cat_id)
        return [(names, tuple(ids)) for names, ids in out.items()]

    def select(self, keypoints: tuple[str, ...], source: str, what: str) -> CocoLayout:
        """This layout with the categories whose keypoint names are ``keypoints`` as the instances; an
        :class:`AnnotationError` names ``source``, ``what`` (the skeleton) and the file's categories if none."""
        self.check_named(source)
        chosen = {i: len(names) for i, names in self.category_keypoints.items() if names == tuple(keypoints)}
        if not chosen:
            found = "; ".join(f"{self._label(ids)} ({len(names)}: {', '.join(names[:4])}, ...)"
                              for names, ids in self.groups())
            raise AnnotationError(f"{source}: no category has the keypoints of {what} ({len(keypoints)}: "
                                  f"{', '.join(keypoints[:4])}, ...); its keypoint categories: {found}")
        return CocoLayout(chosen, self.category_keypoints, self.category_names, self.annotation_counts)

    def check_named(self, source: str) -> None:
        """Refuse (:class:`AnnotationError` naming ``source``) a file none of whose categories lists keypoint
        names: it states no keypoint order or OKS sigmas to score with."""
        if self.category_keypoints:
            return
        labels = [brief(name) for name in self.category_names.values()]
        what = (f"none of its categories ({', '.join(labels[:4])}{', ...' if len(labels) > 4 else ''}) lists "
                "'keypoints'" if labels else "it has no categories")
        raise AnnotationError(f"{source}: {what}, so it states no skeleton to read or score; a keypoint file names its "
                              "keypoints in its category, as COCO's do (\"keypoints\": [\"nose\", \"left_eye\", ...])")

    def left_out(self) -> str:
        """One line on the keypoint categories whose annotations are not instances ("" when none)."""
        out = [f"{self.category_names.get(i, i)!r} ({len(names)} keypoints, {self.annotation_counts.get(i, 0)} "
               "annotations)" for i, names in self.category_keypoints.items() if i not in self.keypoint_categories]
        more = f" and {len(out) - 4} more" if len(out) > 4 else ""
        return f"categories with another keypoint list, left out: {', '.join(out[:4])}{more}" if out else ""

    def _label(self, ids: tuple[int, ...]) -> str:
        names = [repr(self.category_names.get(i, i)) for i in ids]
        return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more sharing its keypoints"


def read_coco_keypoints(path: str | os.PathLike[str], skeleton: Skeleton | None = None) -> tuple[dict, CocoLayout]:
    """Read and check a COCO keypoint file: (its JSON dict, its :class:`CocoLayout`), the instances those of
    the categories with ``skeleton``'s annotation keypoint names (:meth:`CocoLayout.select`; None: every
    keypoint category's). Raises FileNotFoundError, or :class:`AnnotationError` naming the file.
    """
    path = Path(path)
    source = str(path)
    try:
        data = read_json(path, "annotation file")  # a regular file of bounded size (openpose_lite.io)
    except ValueError as exc:
        raise AnnotationError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise AnnotationError(f"{source}: expected a COCO-format dict with 'images' and 'annotations' lists")
    image_hw = _check_images(data["images"], source)
    layout = coco_layout(data, source)
    annotated = layout  # every keypoint category's annotations are checked, each with its own K
    if skeleton is not None:
        scored = skeleton.annotation_layout()
        layout = layout.select(scored.keypoints, source, scored.name)
    numbers = _Numbers(image_hw)
    first_index: dict[int, int] = {}
    for index, ann in enumerate(data["annotations"]):
        ann_id, image_id = _check_ids(ann, index, first_index, data["annotations"], image_hw, source)
        if not annotated.is_person(ann):
            continue
        where = _Where(source, image_id, ann_id)
        cat = ann.get("category_id")  # a file without keypoint names: any K, refused once a skeleton is wanted
        _check_person(ann, where, annotated.keypoint_categories.get(cat),
                      f"category {annotated.category_names.get(cat)!r}", numbers)
    numbers.check()
    for kind, (n, first) in numbers.notes.items():
        what, consequence = _NOTE_TEXT[kind]
        logger.warning("%s: %d %s (first: annotation %s, image id %s); %s", source, n, what, first.ann_id,
                       first.image_id, consequence)
    return data, layout


def coco_layout(data: Mapping[str, Any], source: str) -> CocoLayout:
    """The categories of a COCO dict, checked (:class:`CocoLayout`, every keypoint category an instance one)."""
    categories = data.get("categories", [])
    if not isinstance(categories, list):
        raise AnnotationError(f"{source}: 'categories' must be a list, got {type(categories).__name__}")
    names: dict[int, tuple[str, ...]] = {}
    labels: dict[int, str] = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict):
            continue
        labels[cat.get("id")] = str(cat.get("name", cat.get("id")))
        if "keypoints" not in cat:
            continue
        kps = cat["keypoints"]
        if not isinstance(kps, list) or not kps or not all(isinstance(n, str) for n in kps):
            raise AnnotationError(f"{source}: categories[{i}] ({brief(cat.get('name'))}) has keypoints {brief(kps)}, "
                                  "expected a non-empty list of keypoint names")
        # Before any annotation is looked at: their cost, and every use of the skeleton's, grows with its size.
        limbs = len(cat["skeleton"]) if isinstance(cat.get("skeleton"), list) else 0
        check_skeleton_size(len(kps), limbs, f"{source}: categories[{i}] ({brief(cat.get('name'))})", AnnotationError)
        names[cat.get("id")] = tuple(kps)
    counts = Counter(ann.get("category_id") for ann in data.get("annotations", []) if isinstance(ann, dict))
    return CocoLayout({i: len(n) for i, n in names.items()}, names, labels, dict(counts))


# ------------------------------------------------------------------------------ images, ids
def _is_size(value: Any) -> bool:
    # Some converters write sizes as floats (480.0); what matters is a positive whole number.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and value == int(value) and value > 0


def _check_images(images: list, source: str) -> dict[int, tuple[int, int]]:
    """image id -> (height, width); refuses malformed entries and repeated ids."""
    sizes: dict[int, tuple[int, int]] = {}
    index_of: dict[int, int] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or not is_int(img.get("id")):
            got = repr(img.get("id")) if isinstance(img, dict) else f"(a {type(img).__name__})"
            raise AnnotationError(f"{source}: images[{i}] has id {got}, expected an integer image id")
        image_id = img["id"]
        if image_id in index_of:
            raise AnnotationError(f"{source}: image id {image_id} appears twice (images[{index_of[image_id]}] and "
                                  f"images[{i}]); image ids must be unique")
        index_of[image_id] = i
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise AnnotationError(f"{source}: image id {image_id} has file_name {img.get('file_name')!r}, "
                                  "expected the image's file name")
        for key in ("height", "width"):
            if not _is_size(img.get(key)):
                raise AnnotationError(f"{source}: image id {image_id} has {key} {img.get(key)!r}, "
                                      "expected a positive integer (pixels)")
        sizes[image_id] = (int(img["height"]), int(img["width"]))
    return sizes


def _check_ids(ann: Any, index: int, first_index: dict[int, int], annotations: list,
               image_hw: Mapping[int, tuple[int, int]], source: str) -> tuple[int, int]:
    """(annotation id, image id) of ``annotations[index]``; refuses missing, repeated and dangling ids."""
    if not isinstance(ann, dict):
        raise AnnotationError(f"{source}: annotations[{index}] is a {type(ann).__name__}, expected an annotation dict")
    image_id, ann_id = ann.get("image_id"), ann.get("id")
    if not is_int(ann_id):
        raise AnnotationError(f"{source}: annotations[{index}] (image id {image_id!r}) has id {ann_id!r}, "
                              "expected an integer annotation id")
    if not is_int(image_id) or image_id not in image_hw:
        raise AnnotationError(f"{source}: annotation {ann_id} refers to image id {image_id!r}, "
                              "expected the id of an image of the file")
    if ann_id in first_index:
        first = first_index[ann_id]
        raise AnnotationError(f"{source}: annotation {ann_id} appears twice (annotations[{first}] of image id "
                              f"{annotations[first].get('image_id')} and annotations[{index}] of image id {image_id}); "
                              "annotation ids must be unique")
    first_index[ann_id] = index
    return ann_id, image_id


# ------------------------------------------------------------------------------ one person
class _Where(NamedTuple):
    """Names an annotation in messages: ``<file>: annotation <id> <problem> (image id <id>)``."""

    source: str
    image_id: int
    ann_id: int

    def error(self, problem: str) -> AnnotationError:
        return AnnotationError(f"{self.source}: annotation {self.ann_id} {problem} (image id {self.image_id})")


# Accepted oddities, logged once per kind with their count and the first example: kind -> (what, consequence).
_NOTE_TEXT = {
    "polygon": ("polygons of fewer than 3 points in their segmentation",
                "they enclose nothing and are left out of the masks"),
    "num_keypoints": ("annotations whose num_keypoints differs from their count of labelled keypoints",
                      "training goes by the keypoints, COCO evaluation by num_keypoints"),
}
_Notes = dict[str, tuple[int, _Where]]  # kind -> (count, the first example)


def _note(notes: _Notes, kind: str, where: _Where, n: int = 1) -> None:
    count, first = notes.get(kind, (0, where))
    notes[kind] = (count + n, first)


def _finite_numbers(value: Any) -> bool:
    """Whether ``value`` is a flat list (or tuple) of finite numbers: the slow, exact test, for short lists."""
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


class _Numbers:
    """The keypoint, box, area and polygon lists of a file, checked in a few numpy passes at the end (far faster
    than one per list for COCO's hundreds of thousands; a bad value's list is looked up only to name it), and
    the accepted oddities found (``notes``)."""

    def __init__(self, image_hw: Mapping[int, tuple[int, int]]) -> None:
        self.image_hw = image_hw
        self.notes: _Notes = {}
        self.keypoints: dict[int, list[tuple[list, _Where, Any]]] = {}  # length -> (values, where, num_keypoints)
        self.polygons: list[tuple[list, _Where, int]] = []  # (values, where, polygon index)
        self.boxes: list[tuple[list, _Where]] = []
        self.areas: list[tuple[Any, _Where]] = []

    def check(self) -> None:
        for rows in self.keypoints.values():
            _check_keypoint_rows(rows, self.notes, self._sizes([w for _, w, _ in rows]))
        boxes = _as_finite_array([b for b, _ in self.boxes], ndim=2) if self.boxes else np.zeros((0, 4))
        if boxes is None or (boxes[:, 2:] < 0).any():
            bbox, where = next((b, w) for b, w in self.boxes if not (_finite_numbers(b) and b[2] >= 0 and b[3] >= 0))
            raise where.error(f"has bbox {bbox!r:.80}, {_BOX_FORM}")
        hw = self._sizes([w for _, w in self.boxes])
        corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        bad = _outside(corners[:, 0::2], corners[:, 1::2], hw[:, :1], hw[:, 1:])
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise self.boxes[row][1].error(f"has bbox {self.boxes[row][0]!r:.80}, {_range_text(*hw[row])}")
        areas = _as_finite_array([a for a, _ in self.areas]) if self.areas else np.zeros(0)
        if areas is None or (areas < 0).any():
            area, where = next((a, w) for a, w in self.areas if not (_finite_numbers([a]) and a >= 0))
            raise where.error(f"has area {area!r:.40}, expected a finite number >= 0")
        flat = list(itertools.chain.from_iterable(poly for poly, _, _ in self.polygons))
        values = _as_finite_array(flat) if flat else np.zeros(0)
        if values is None:
            poly, where, i = next(p for p in self.polygons if _as_finite_array(p[0]) is None)
            raise where.error(f"has segmentation polygon {i} = {poly!r:.60}, {_POLYGON_FORM}")
        lengths = [len(p) // 2 for p, _, _ in self.polygons]
        points = np.repeat(self._sizes([w for _, w, _ in self.polygons]), lengths, axis=0)
        bad = _outside(values[0::2], values[1::2], points[:, 0], points[:, 1])
        if bad.any():
            first = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], side="right"))
            poly, where, i = self.polygons[first]
            raise where.error(f"has segmentation polygon {i} = {poly!r:.60}, {_range_text(*self._sizes([where])[0])}")

    def _sizes(self, wheres: list[_Where]) -> np.ndarray:
        """(N, 2) height, width of the images of ``wheres``."""
        return np.array([self.image_hw[w.image_id] for w in wheres], dtype=np.float64).reshape(-1, 2)


def _outside(x: np.ndarray, y: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Where (x, y) lies outside the sane range of an h x w image (:func:`_range_text`)."""
    return (x < -w) | (x > 2 * w) | (y < -h) | (y > 2 * h)


def _range_text(h: float, w: float) -> str:
    return (f"outside its {w:g}x{h:g} image by more than the image's size (expected x in [{-w:g}, {2 * w:g}], "
            f"y in [{-h:g}, {2 * h:g}])")


def _as_finite_array(value: list, ndim: int = 1) -> np.ndarray | None:
    """``value`` as a float64 array of ``ndim`` dimensions holding finite numbers only, else None."""
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nesting
        return None
    if arr.ndim != ndim or arr.dtype.kind not in "iuf":
        return None
    arr = arr.astype(np.float64, copy=False)
    return arr if np.isfinite(arr).all() else None


def _check_keypoint_rows(rows: list[tuple[list, _Where, Any]], notes: _Notes, hw: np.ndarray) -> None:
    """Keypoint lists of one length (rows of ``kps``), ``hw`` (N, 2) their images' height and width."""
    kps = _as_finite_array([r[0] for r in rows], ndim=2)
    if kps is None:
        raw, where, _ = next(r for r in rows if _as_finite_array(r[0]) is None)
        bad = next(i for i, v in enumerate(raw) if not _finite_numbers([v]))
        raise where.error(f"has keypoint {bad // 3} with {'xyv'[bad % 3]} = {raw[bad]!r:.40}, expected finite numbers")
    outside = _outside(kps[:, 0::3], kps[:, 1::3], hw[:, :1], hw[:, 1:])
    if outside.any():
        row, k = (int(v) for v in np.argwhere(outside)[0])
        raise rows[row][1].error(f"has keypoint {k} at ({kps[row, 3 * k]:g}, {kps[row, 3 * k + 1]:g}), "
                                 f"{_range_text(*hw[row])}")
    v = kps[:, 2::3]
    odd = (v != 0) & (v != 1) & (v != 2)
    if odd.any():
        row, k = np.argwhere(odd)[0]
        raise rows[row][1].error(f"has keypoint {int(k)} with visibility {v[row, k]:g}, expected 0 (unlabelled), "
                                 "1 (labelled, occluded) or 2 (visible)")
    nums = np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.float64)  # integers, checked on reading
    differ = np.flatnonzero((nums >= 0) & (nums != np.count_nonzero(v, axis=1)))
    if differ.size:
        _note(notes, "num_keypoints", rows[differ[0]][1], int(differ.size))


def _check_person(ann: dict, where: _Where, k: int | None, category: str, numbers: _Numbers) -> None:
    if ann.get("iscrowd", 0) not in (0, 1):
        raise where.error(f"has iscrowd {ann['iscrowd']!r}, expected 0 or 1")
    if "keypoints" in ann:
        raw = ann["keypoints"]
        if not isinstance(raw, list):
            raise where.error(f"has keypoints of type {type(raw).__name__}, expected a list of x, y, v numbers")
        expected = 3 * k if k is not None else None
        if (expected is not None and len(raw) != expected) or len(raw) % 3:
            wanted = f"{expected} (3 x {k} keypoints of {category})" if expected else "x, y, v triples"
            raise where.error(f"has {len(raw)} keypoint values, expected {wanted}")
        num = ann.get("num_keypoints")
        if num is not None and not (is_int(num) and num >= 0):
            raise where.error(f"has num_keypoints {num!r:.40}, expected an integer >= 0")
        numbers.keypoints.setdefault(len(raw), []).append((raw, where, num))
    bbox = ann.get("bbox")
    if bbox is not None:
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise where.error(f"has bbox {bbox!r:.80}, {_BOX_FORM}")
        numbers.boxes.append((bbox, where))
    if ann.get("area") is not None:
        numbers.areas.append((ann["area"], where))
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        for i, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) % 2:
                raise where.error(f"has segmentation polygon {i} = {poly!r:.60}, {_POLYGON_FORM}")
            if len(poly) < MIN_POLYGON_VALUES:
                _note(numbers.notes, "polygon", where)
            numbers.polygons.append((poly, where, i))
    elif isinstance(seg, dict):
        problem = rle_problem(seg, numbers.image_hw[where.image_id])
        if problem:
            raise where.error(problem)
    elif seg is not None:
        raise where.error(f"has a segmentation of type {type(seg).__name__}, expected polygons (a list) or an RLE dict")
