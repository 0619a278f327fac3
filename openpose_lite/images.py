"""Reading images: one reader, one orientation rule, one size bound, for training, evaluation, inference and benchmarks.

Orientation: the EXIF orientation tag is **ignored**; pixels come as stored, the frame of COCO's
annotations, as the HRNet reference reads them (``lib/dataset/JointsDataset.py``, ``__getitem__``:
``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION``); plain ``IMREAD_COLOR`` would rotate the image
away from its keypoints. Files are decoded from their bytes (``cv2.imdecode``): one clear error for a
missing or broken file instead of OpenCV's warnings.

Size: width and height come from the header first (:mod:`openpose_lite.image_headers`); more than
``max_pixels`` (``--max-image-pixels``, ``data.max_image_pixels``), or a size contradicting the
annotation's, is refused by name before decoding. A format without a header parser here is decoded
under OpenCV's ``OPENCV_IO_MAX_IMAGE_PIXELS``, read once at OpenCV's import: importing ``openpose_lite``
sets it to :data:`DEFAULT_MAX_IMAGE_PIXELS` when unset (:data:`OPENCV_MAX_PIXELS` is the value in
effect), so a larger ``max_pixels`` needs it raised too.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar

import numpy as np

from openpose_lite import DEFAULT_MAX_IMAGE_PIXELS, OPENCV_MAX_PIXELS
from openpose_lite.image_headers import HeaderError, header_size
from openpose_lite.io import format_bytes, open_regular

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "IMAGE_EXTENSIONS", "OPENCV_MAX_PIXELS", "PROGRESS_MIN_IMAGES",
           "ImageNotFoundError", "ImageReadError", "ImageTooLargeError", "check_image_files", "check_max_pixels",
           "image_in_folder", "image_size", "read_image", "read_image_bytes"]

# The largest file an image of n pixels is: 8 bytes a pixel (16-bit RGBA, uncompressed) plus
# room for metadata. Anything larger is no image of that size.
_BYTES_PER_PIXEL, _METADATA_BYTES = 8, 64 << 20
_LIMIT_OPTION = "--max-image-pixels (train: data.max_image_pixels)"
# The file name endings taken for images where a folder is listed (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


class ImageReadError(ValueError):
    """An image that cannot be read, or whose size contradicts what was expected; the message names the file."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """The image file does not exist (both an :class:`ImageReadError` and a ``FileNotFoundError``)."""


class ImageTooLargeError(ImageReadError):
    """An image of more pixels than allowed (refused from its header, before decoding)."""


def check_max_pixels(value: int, where: str = "--max-image-pixels") -> int:
    """``value`` as a pixel limit: an integer >= 1 that OpenCV's own limit (:data:`OPENCV_MAX_PIXELS`) allows.

    Raises ValueError naming ``where``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: expected a number of pixels >= 1, got {value!r}")
    if value > OPENCV_MAX_PIXELS:
        raise ValueError(f"{where}: {value} is above OpenCV's own decoding limit, OPENCV_IO_MAX_IMAGE_PIXELS = "
                         f"{OPENCV_MAX_PIXELS}; set that environment variable to at least {value} as well")
    return int(value)


def image_in_folder(folder: str | os.PathLike[str], file_name: str, anywhere: bool = False) -> Path:
    """The path of an annotation's ``file_name`` inside ``folder``.

    A ``file_name`` is a path relative to the image folder (``000000000139.jpg``,
    ``train2017/000000000139.jpg``); an absolute one, or one that climbs out with ``..``, is
    refused (ValueError naming it) unless ``anywhere``, so an annotation file cannot make a run
    read files outside the folder it was given.
    """
    path = PurePosixPath(file_name.replace("\\", "/"))
    if not anywhere and (path.is_absolute() or ".." in path.parts or Path(file_name).is_absolute()):
        raise ValueError(f"file_name {file_name!r} is outside the image folder {folder}: file names are relative to "
                         "it (--images-anywhere, in training data.images_anywhere=true, lets them be anywhere)")
    return Path(folder) / file_name


def _open(p: Path) -> BinaryIO:
    try:
        return open_regular(p, "image")
    except FileNotFoundError:
        raise ImageNotFoundError(f"image not found: {p}") from None
    except ValueError as exc:  # a folder, a FIFO, a device, a symbolic link loop
        raise ImageReadError(f"cannot read {exc}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {p}: {exc.strerror or exc}") from None


def _header(fh: BinaryIO, p: Path, max_pixels: int) -> tuple[int, int] | None:
    """(height, width) from the header of ``fh``, refused above ``max_pixels``; None for a format without one here."""
    try:
        wh = header_size(fh)
    except HeaderError as exc:
        raise ImageReadError(f"cannot read image {p}: {exc}") from None
    if wh is None:
        return None
    _check_pixels(p, wh[1], wh[0], max_pixels)
    return wh[1], wh[0]


def _check_pixels(p: Path, height: int, width: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image {p} is {width}x{height} = {width * height} pixels, above the limit of "
                                 f"{max_pixels} pixels; raise it with {_LIMIT_OPTION} to read it")


def _check_expected(p: Path, hw: tuple[int, int], expected_hw: tuple[int, int] | None) -> None:
    if expected_hw is not None and tuple(hw) != (int(expected_hw[0]), int(expected_hw[1])):
        raise ImageReadError(f"image {p} is {hw[1]}x{hw[0]} (width x height) but its annotation entry says "
                             f"{int(expected_hw[1])}x{int(expected_hw[0])}")


def _decode(fh: BinaryIO, p: Path, max_pixels: int) -> np.ndarray:
    import cv2

    size = fh.seek(0, os.SEEK_END)  # a file or bytes in memory (an upload)
    limit = _BYTES_PER_PIXEL * max_pixels + _METADATA_BYTES
    if size > limit:
        raise ImageTooLargeError(f"image {p} is a {format_bytes(size)} file, more than an image within the limit of "
                                 f"{max_pixels} pixels takes ({format_bytes(limit)}); raise it with {_LIMIT_OPTION}")
    fh.seek(0)
    data = np.frombuffer(fh.read(limit + 1), dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    except cv2.error:  # OpenCV's own pixel limit (a format read without its header here)
        raise ImageTooLargeError(f"image {p}: OpenCV refused to decode it, larger than its limit "
                                 f"OPENCV_IO_MAX_IMAGE_PIXELS = {OPENCV_MAX_PIXELS} pixels") from None
    if image is None:
        # OpenCV says why only in a log line: a damaged or truncated file, or pixels it cannot give
        # as 8-bit colour (a TIFF of 32- or 64-bit samples; 16-bit ones it converts).
        raise ImageReadError(f"cannot read image {p}: OpenCV cannot decode it as 8-bit colour (a damaged or "
                             "truncated file, or floating-point samples), or it is no image")
    return image


def image_size(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               decode: bool = True) -> tuple[int, int] | None:
    """(height, width) of an image file, from its header; a format without one here is decoded
    (``decode=False``: None instead, and None for a malformed header too).

    Raises :class:`ImageReadError` as :func:`read_image` does, without decoding what it refuses.
    """
    p = Path(path)
    with _open(p) as fh:
        try:
            hw = _header(fh, p, max_pixels)
        except ImageReadError as exc:
            if decode or isinstance(exc, ImageTooLargeError):
                raise
            return None
        if hw is None and decode:
            image = _decode(fh, p, max_pixels)
            hw = image.shape[0], image.shape[1]
            _check_pixels(p, hw[0], hw[1], max_pixels)
    return hw


_T = TypeVar("_T")
# Above this many images a check shows a progress bar (when asked to): a few seconds of work.
PROGRESS_MIN_IMAGES = 200


def _in_order(pool: ThreadPoolExecutor, work: Callable[[int], _T], count: int, window: int) -> Iterator[_T]:
    """``work(0), ..., work(count - 1)`` run in ``pool``, in order, at most ``window`` at a time: a set of
    100,000 images holds as many futures (and decoded images) as the window, never one per image."""
    pending: deque[Future[_T]] = deque()
    for i in range(count):
        pending.append(pool.submit(work, i))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def check_image_files(folder: str | os.PathLike[str], entries: Sequence[tuple[str, int, int]], what: str,
                      max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, anywhere: bool = False,
                      strict: bool = True, decode: bool = False, workers: int = 0,
                      progress: bool = False) -> list[Path]:
    """Check, before a run reads any of them, the images an annotation file names; returns their paths.

    Each entry ``(file_name, height, width)`` must lie inside ``folder`` (:func:`image_in_folder`), be a
    regular file, and have a header of that size within ``max_pixels``; formats without a header parser are
    decoded when ``strict`` (else left to the run, as are malformed headers). ``decode``: every image is
    decoded as :func:`read_image` does (what a header cannot tell), in ``workers`` threads (0: one per core,
    at most 16). ``progress``: a bar above :data:`PROGRESS_MIN_IMAGES` images. ``what`` names the images
    in the message. Raises ImageReadError naming the folder, the missing images' count (and one) and the
    others' (and the first problem); ValueError for a file name outside ``folder``.
    """
    from tqdm import tqdm

    try:
        paths = [image_in_folder(folder, name, anywhere) for name, _, _ in entries]
    except ValueError as exc:
        raise ValueError(f"an image {what}: {exc}") from None

    def problem(i: int) -> str | None:
        try:
            if decode:
                read_image(paths[i], entries[i][1:], max_pixels)
                return None
            hw = image_size(paths[i], max_pixels, decode=strict)
            if hw is not None:
                _check_expected(paths[i], hw, entries[i][1:])
        except ImageNotFoundError:
            return ""
        except ImageReadError as exc:
            return str(exc)
        return None

    # Reading headers waits on the disk (16 threads); decoding is work for the cores.
    threads = workers if workers > 0 else (min(16, os.cpu_count() or 1) if decode else 16)
    threads = max(1, min(threads, len(paths)))
    missing, others, first_other = [], 0, ""
    bar = tqdm(total=len(paths), desc=f"{'decoding' if decode else 'checking'} images", unit="img", leave=False,
               disable=not progress or len(paths) <= PROGRESS_MIN_IMAGES, dynamic_ncols=True)
    with bar, ThreadPoolExecutor(max_workers=threads) as pool:
        for i, msg in enumerate(_in_order(pool, problem, len(paths), 4 * threads)):
            bar.update(1)
            if msg == "":
                missing.append(i)
            elif msg is not None:
                others += 1
                first_other = first_other or msg
    parts = []
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        parts.append(f"{len(missing)} of the {len(paths)} images {what} {verb} not in this folder "
                     f"(e.g. {entries[missing[0]][0]})")
    if others:
        parts.append(f"{others} of the {len(paths)} images {what} cannot be used (the first: {first_other})")
    if parts:
        hint = "; pass the folder of the annotation file's images" if missing else ""
        raise ImageReadError(f"{folder}: {'; '.join(parts)}{hint}")
    return paths


def read_image(path: str | os.PathLike[str], expected_hw: tuple[int, int] | None = None,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of an image file (a regular file: a FIFO or a device is refused unread).

    ``expected_hw``: the (height, width) it must have (e.g. its COCO image entry's). Raises
    :class:`ImageReadError` when the file is missing or no regular file, is not an image OpenCV can
    decode, has another size, or has more than ``max_pixels`` pixels (:class:`ImageTooLargeError`,
    from its header before anything is decoded).
    """
    p = Path(path)
    with _open(p) as fh:
        return _read(fh, p, expected_hw, max_pixels)


def read_image_bytes(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of an encoded image held in memory (an upload), ``name`` in errors, with
    :func:`read_image`'s checks and errors."""
    return _read(io.BytesIO(data), Path(name), None, max_pixels)


def _read(fh: BinaryIO, p: Path, expected_hw: tuple[int, int] | None, max_pixels: int) -> np.ndarray:
    hw = _header(fh, p, max_pixels)
    if hw is not None:
        _check_expected(p, hw, expected_hw)  # a wrong size is refused before the decode
    image = _decode(fh, p, max_pixels)
    if hw is None:
        _check_pixels(p, image.shape[0], image.shape[1], max_pixels)
    _check_expected(p, image.shape[:2], expected_hw)
    return image
