"""Calibration sets for post-training int8 quantisation: the user's images and how one becomes network inputs.

Quantisation measures every activation's range on inputs like the model's: a few hundred of the
user's images (a folder, or in memory) through the predictor's preprocessing
(:func:`bottomup_calibration`, :func:`topdown_calibration`). A :class:`Calibration` yields single
inputs lazily and has an :meth:`~Calibration.identity` the model cache keys on.

It also carries :data:`OverflowFix`, the one setting that depends on the CPU. Without int8 dot
products (VNNI, AMX) int8 goes through ``vpmaddubsw``, whose saturating 16-bit pair sums clip at
2 x 255 x 127 = 64770 > 32767; NNCF's overflow fix quantises weights to half the range (32640 fits),
losing one bit. The default, NNCF's ``"first_layer_only"``, kept held-out AP within 0.005 of fp32 on
CPUs with and without VNNI, at half the map error of ``"enable"`` (every convolution, bit-identical
maps on every CPU) (docs/benchmarks.md, "int8 on CPUs with and without VNNI").
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from openpose_lite.geometry import box_to_center_scale
from openpose_lite.images import IMAGE_EXTENSIONS, ImageReadError, read_image
from openpose_lite.preprocess import (
    DEFAULT_INPUT_BOUND,
    InputBound,
    crop_person,
    letterbox,
    normalise_input,
)

__all__ = ["DEFAULT_LIMIT", "DEFAULT_OVERFLOW_FIX", "OVERFLOW_FIXES", "Calibration", "CalibrationError", "OverflowFix",
           "bottomup_calibration", "calibration_files", "topdown_calibration"]

logger = logging.getLogger(__name__)

# NNCF's default subset size: its post-training quantisation is documented as needing about 300 samples.
DEFAULT_LIMIT = 300
# NNCF's OverflowFix values: which convolutions get int8 weights in half the range. "enable": every
# ordinary convolution (NNCF 3.4 leaves depthwise ones in the full range; the maps without VNNI
# were identical all the same); "first_layer_only": those that read the model's input; "disable":
# none, which saturated most without VNNI (largest map error 0.69 against 0.29 on the quickstart VGG19).
OverflowFix = Literal["enable", "first_layer_only", "disable"]
OVERFLOW_FIXES: tuple[str, ...] = get_args(OverflowFix)
DEFAULT_OVERFLOW_FIX: OverflowFix = "first_layer_only"
ToInputs = Callable[[np.ndarray], np.ndarray]


class CalibrationError(ValueError):
    """The calibration set gives no network input: the user's calibration images are at fault, not the model."""


@dataclass(frozen=True, eq=False)  # compared by identity: it may hold image arrays
class Calibration:
    """Images to calibrate int8 on, and the function that makes network inputs of one.

    Args:
        source: a folder (searched recursively for image files, name order) or (H, W, 3) uint8 BGR images.
        to_inputs: one BGR image -> (N, 3, H, W) float32 network inputs (N >= 0).
        key: what ``to_inputs`` does, in words (the input size, normalisation): part of the
            calibrated model's cache key, so a change of preprocessing calibrates again.
        limit: the most network inputs used; a larger folder is sampled evenly over its name order.
        overflow_fix: :data:`OverflowFix`, part of the calibrated model's cache key.
    """

    source: Path | tuple[np.ndarray, ...]
    to_inputs: ToInputs
    key: str
    limit: int = DEFAULT_LIMIT
    overflow_fix: OverflowFix = DEFAULT_OVERFLOW_FIX
    _files: tuple[Path, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ValueError(f"calibration limit: expected a positive integer, got {self.limit!r}")
        if self.overflow_fix not in OVERFLOW_FIXES:
            raise ValueError(f"calibration overflow_fix: expected one of {', '.join(OVERFLOW_FIXES)}, "
                             f"got {self.overflow_fix!r}")
        if isinstance(self.source, (str, os.PathLike)):
            folder = Path(self.source)
            object.__setattr__(self, "source", folder)
            object.__setattr__(self, "_files", calibration_files(folder, self.limit))
        else:
            images = tuple(self.source)
            if not images:
                raise ValueError("calibration: no images given")
            object.__setattr__(self, "source", images)

    @property
    def where(self) -> str:
        """The source in words, for messages."""
        return f"calibration folder {self.source}" if isinstance(self.source, Path) else \
            f"{len(self.source)} calibration images"

    def identity(self) -> str:
        """A digest of what calibration sees: the files (names, sizes, times) or pixels, ``key`` and ``limit``."""
        digest = hashlib.sha256(f"{self.key}\0{self.limit}\0".encode())
        if isinstance(self.source, Path):
            digest.update(str(self.source.resolve()).encode())
            for path in self._files:
                stat = path.stat()
                digest.update(f"\0{path.relative_to(self.source)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        else:
            for image in self.source:
                digest.update(f"{image.shape}{image.dtype}".encode())
                digest.update(np.ascontiguousarray(image).data)
        return digest.hexdigest()

    def _images(self, skip: Callable[[str], None]) -> Iterator[tuple[str, np.ndarray]]:
        if isinstance(self.source, Path):
            for path in self._files:
                try:
                    yield str(path), read_image(path)
                except ImageReadError as exc:
                    skip(str(exc))
        else:
            yield from ((f"images[{i}]", image) for i, image in enumerate(self.source))

    def __iter__(self) -> Iterator[np.ndarray]:
        """Single network inputs (1, 3, H, W) float32, at most ``limit`` of them."""
        return self._inputs(lambda reason: logger.warning("calibration: skipping %s", reason))

    def _inputs(self, skip: Callable[[str], None]) -> Iterator[np.ndarray]:
        """:meth:`__iter__`, each image skipped (unreadable, refused) told to ``skip`` with the reason."""
        count = 0
        for name, image in self._images(skip):
            try:
                inputs = np.asarray(self.to_inputs(image), dtype=np.float32)
            except ValueError as exc:  # a degenerate image the predictor refuses too
                skip(f"{name}: {exc}")
                continue
            if inputs.ndim != 4 or inputs.shape[1] != 3:
                raise ValueError(f"calibration: to_inputs({name}) returned shape {inputs.shape}; expected (N, 3, H, W)")
            for one in inputs:
                yield np.ascontiguousarray(one[None])
                count += 1
                if count == self.limit:
                    return

    def check(self) -> None:
        """A :class:`CalibrationError` naming the source and why unless at least one network input comes out of it."""
        skipped: list[str] = []  # the reasons go into the error, one line, not into warnings before it
        if next(self._inputs(skipped.append), None) is None:
            why = f"{len(skipped)} skipped, the first because {skipped[0]}" if skipped else "none gave a network input"
            raise CalibrationError(f"{self.where}: no usable image to calibrate int8 on ({why}); give a folder "
                                   "of images like those the model will run on")


def calibration_files(folder: str | os.PathLike[str], limit: int = DEFAULT_LIMIT) -> tuple[Path, ...]:
    """Up to ``limit`` image files of ``folder`` (recursive, name order), evenly spread over all of them;
    a ValueError naming the folder when it holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"calibration folder {folder}: not found or not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"calibration folder {folder}: holds no images (looked for {' '.join(IMAGE_EXTENSIONS)}, "
                         "recursively); give a folder of a few hundred images like those the model will run on")
    if len(files) > limit:
        # Evenly spread: name-ordered folders are often video frames, whose neighbours are alike.
        files = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, limit).round().astype(int))]
    return tuple(files)


def _as_calibration(source: str | os.PathLike[str] | Sequence[np.ndarray] | Calibration | None, to_inputs: ToInputs,
                    key: str, overflow_fix: OverflowFix) -> Calibration | None:
    if source is None or isinstance(source, Calibration):
        return source
    return Calibration(source, to_inputs, key, overflow_fix=overflow_fix)  # type: ignore[arg-type]


def bottomup_calibration(source: str | os.PathLike[str] | Sequence[np.ndarray] | Calibration | None, input_size: int,
                         stride: int, input_bound: InputBound | None = None, input_norm: str = "cmu",
                         overflow_fix: OverflowFix = DEFAULT_OVERFLOW_FIX) -> Calibration | None:
    """A bottom-up predictor's calibration set: each image as the predictor runs it at scale 1 (letterboxed
    within the input bound, normalised; its own padded width). ``None`` and a :class:`Calibration` pass through."""
    bound = DEFAULT_INPUT_BOUND if input_bound is None else input_bound

    def to_inputs(image: np.ndarray) -> np.ndarray:
        boxed, _ = letterbox(image, input_size, stride, bound=bound)
        return normalise_input(boxed[None], input_norm)

    key = f"bottom-up letterbox {input_size}/{stride} {bound!r} {input_norm}"
    return _as_calibration(source, to_inputs, key, overflow_fix)


def topdown_calibration(source: str | os.PathLike[str] | Sequence[np.ndarray] | Calibration | None,
                        input_hw: tuple[int, int], padding: float, convention: str, input_norm: str = "imagenet_rgb",
                        overflow_fix: OverflowFix = DEFAULT_OVERFLOW_FIX) -> Calibration | None:
    """A top-down predictor's calibration set: one crop per image, cropped as the predictor crops a box
    covering all of it (a plain folder has no person boxes). A folder of person crops, or a
    :class:`Calibration` whose ``to_inputs`` crops known boxes, is closest to what the model sees."""
    out_h, out_w = int(input_hw[0]), int(input_hw[1])

    def to_inputs(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        center, size = box_to_center_scale(np.array([0.0, 0.0, w, h]), out_w / out_h, padding, convention)
        crop, _ = crop_person(image, center, size, 0.0, (out_h, out_w), convention=convention)
        return normalise_input(crop[None], input_norm)

    key = f"top-down whole-image crop {out_h}x{out_w} padding {padding} {convention} {input_norm}"
    return _as_calibration(source, to_inputs, key, overflow_fix)
