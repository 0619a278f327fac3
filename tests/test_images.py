"""The one image reader: EXIF orientation ignored (as COCO's annotations need), clear errors naming the file.

Reference for the orientation rule: the HRNet reference reads COCO images with
``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`` (leoxiaobin/deep-high-resolution-net.pytorch,
``lib/dataset/JointsDataset.py``, ``__getitem__``); COCO's image entries give the stored pixel
size. The EXIF layout written below follows the EXIF 2.3 / TIFF 6.0 specifications: an APP1
segment ``Exif\\0\\0``, a little-endian TIFF header, one IFD entry Orientation (tag 0x0112,
SHORT), value 6 = "rotate 90 degrees clockwise to display".
"""

from __future__ import annotations

import io
import json
import struct

import cv2
import numpy as np
import pytest

from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.image_headers import header_size
from openpose_lite.images import ImageNotFoundError, ImageReadError, image_size, read_image
from openpose_lite.skeleton import COCO_17


def jpeg_with_exif_orientation(image: np.ndarray, orientation: int = 6) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = encoded.tobytes()
    assert data[:2] == b"\xff\xd8"
    tiff = b"II*\x00" + struct.pack("<I", 8)  # little-endian TIFF header, first IFD at offset 8
    tiff += struct.pack("<H", 1)  # one entry
    tiff += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)  # Orientation, SHORT, count 1, value, padding
    tiff += struct.pack("<I", 0)  # no next IFD
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + app1 + data[2:]


@pytest.fixture()
def rotated_jpeg(tmp_path):
    image = np.zeros((40, 100, 3), np.uint8)
    image[:, :50] = (0, 0, 255)  # left half red: the stored frame is recognisable
    path = tmp_path / "000000000001.jpg"
    path.write_bytes(jpeg_with_exif_orientation(image))
    return path


def test_exif_rotated_jpeg_is_read_in_its_stored_pixel_frame(rotated_jpeg):
    # OpenCV's plain IMREAD_COLOR applies the EXIF rotation: the trap this reader avoids.
    assert cv2.imread(str(rotated_jpeg), cv2.IMREAD_COLOR).shape[:2] == (100, 40)
    image = read_image(rotated_jpeg)
    assert image.shape == (40, 100, 3) and image.dtype == np.uint8
    assert image[20, 10, 2] > 200 and image[20, 90, 2] < 50  # red stays on the left


def test_training_data_and_eval_read_the_same_frame_as_the_annotations(rotated_jpeg, tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": rotated_jpeg.name, "height": 40, "width": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
                         "bbox": [10, 5, 20, 30], "num_keypoints": 1, "keypoints": [20, 20, 2] + [0, 0, 0] * 16}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints)}],
    }))
    assert CocoKeypoints(ann, tmp_path)[0].image.shape[:2] == (40, 100)


def test_a_size_that_contradicts_the_annotation_entry_is_reported_by_name(rotated_jpeg):
    with pytest.raises(ImageReadError, match=r"000000000001\.jpg is 100x40 .* says 40x100"):
        read_image(rotated_jpeg, expected_hw=(100, 40))


def test_missing_and_broken_files_are_clear_errors(tmp_path):
    with pytest.raises(ImageNotFoundError, match="nope.jpg"):
        read_image(tmp_path / "nope.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="cannot read image .*broken.jpg"):
        read_image(broken)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png"):
        read_image(empty)


def test_grey_alpha_and_16_bit_images_come_back_as_8_bit_bgr(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((5, 6), 77, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.full((5, 6, 4), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((5, 6, 3), 65535, np.uint16))
    for name in ("grey.png", "alpha.png", "deep.png"):
        image = read_image(tmp_path / name)
        assert image.shape == (5, 6, 3) and image.dtype == np.uint8, name


# ------------------------------------------------------------------------------ sizes from headers
# The reference for every size is what OpenCV's own decoder makes of the file (cv2.imdecode, the
# decoder the reader then runs), for files OpenCV's encoders write and files laid out below by the
# formats' specifications.
_ENCODED = {
    "jpeg": (".jpg", [], 3), "jpeg progressive": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 3),
    "png 16-bit rgba": (".png", [], 4), "bmp": (".bmp", [], 3), "tiff": (".tif", [], 3),
    "webp lossy": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 3), "webp lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], 3),
    "webp alpha (VP8X)": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 4), "ppm": (".ppm", [], 3), "pgm": (".pgm", [], 1),
    "pbm": (".pbm", [], 1), "pam": (".pam", [], 3), "pfm": (".pfm", [], 3), "hdr": (".hdr", [], 3),
    "sun raster": (".ras", [], 3), "jpeg 2000": (".jp2", [], 3), "gif": (".gif", [], 3), "avif": (".avif", [], 3),
}


def _encoded(name: str, hw: tuple[int, int] = (37, 53)) -> bytes:
    ext, params, channels = _ENCODED[name]
    image = np.random.default_rng(0).integers(0, 255, (*hw, channels), dtype=np.uint8).squeeze()
    if ext in (".pfm", ".hdr"):
        image = image.astype(np.float32) / 255
    if name.startswith("png 16"):
        image = image.astype(np.uint16) * 257
    try:
        ok, data = cv2.imencode(ext, image, params)
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"this OpenCV build writes no {name}")
    return data.tobytes()


def _assert_header_is_what_opencv_decodes(data: bytes) -> None:
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert header_size(io.BytesIO(data)) == (decoded.shape[1], decoded.shape[0])


@pytest.mark.parametrize("name", sorted(_ENCODED))
def test_the_header_size_is_what_opencv_decodes_for_every_format_it_writes(name):
    _assert_header_is_what_opencv_decodes(_encoded(name))


def _tiff(order: str, big: bool, width: int = 5, height: int = 3) -> bytes:
    """An uncompressed 8-bit grey TIFF 6.0 (or BigTIFF: version 43, 8-byte offsets, 20-byte IFD entries)."""
    pixels = bytes(range(width * height))
    # ImageWidth, ImageLength (LONG), BitsPerSample, Compression = none, Photometric = black is zero,
    # StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts
    header = 16 if big else 8
    count_size, entry_size, next_size = (8, 20, 8) if big else (2, 12, 4)
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, None),
            (277, 3, 1), (278, 4, height), (279, 4, len(pixels))]
    data_at = header + count_size + len(tags) * entry_size + next_size
    out = (b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42)
    out += struct.pack(order + "HHQ", 8, 0, header) if big else struct.pack(order + "I", header)
    out += struct.pack(order + ("Q" if big else "H"), len(tags))
    for tag, kind, value in tags:
        value = data_at if value is None else value
        fmt = {3: "H", 4: "I"}[kind]
        field = struct.pack(order + fmt, value).ljust(8 if big else 4, b"\0")
        out += struct.pack(order + "HH", tag, kind) + struct.pack(order + ("Q" if big else "I"), 1) + field
    return out + bytes(next_size) + pixels


@pytest.mark.parametrize("order, big", [("<", False), (">", False), ("<", True), (">", True)])
def test_tiff_and_bigtiff_sizes_in_either_byte_order(order, big):
    _assert_header_is_what_opencv_decodes(_tiff(order, big))


def test_a_top_down_bmp_has_its_height_as_a_negative_number():
    width, height = 3, 2
    rows = b"".join(bytes([10 * y] * (3 * width)).ljust(12, b"\0") for y in range(height))  # rows padded to 4 bytes
    info = struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    data = b"BM" + struct.pack("<IHHI", 14 + 40 + len(rows), 0, 0, 54) + info + rows
    _assert_header_is_what_opencv_decodes(data)


def test_a_raw_jpeg_2000_codestream_is_sized_from_its_siz_segment():
    jp2 = _encoded("jpeg 2000")
    _assert_header_is_what_opencv_decodes(jp2[jp2.index(b"\xffO\xffQ"):])  # the jp2c box's content


def test_jpeg_fill_bytes_and_a_height_given_later_are_handled():
    data = _encoded("jpeg")
    sof = data.index(b"\xff\xc0")
    _assert_header_is_what_opencv_decodes(data[:sof] + b"\xff\xff\xff" + data[sof:])  # fill bytes before a marker
    # Height 0 in the frame header: defined by a DNL segment later (T.81, B.2.2); left to the decoder.
    assert header_size(io.BytesIO(data[:sof + 5] + b"\x00\x00" + data[sof + 7:])) is None


def test_an_openexr_header_gives_its_data_window():
    # OpenEXR file layout: magic, version, then attributes (name\0 type\0 size value) to a \0.
    attribute = b"dataWindow\0box2i\0" + struct.pack("<i4i", 16, 2, 3, 101, 52)
    data = b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + b"channels\0chlist\0" + struct.pack("<i", 1) + b"\0"
    data += attribute + b"\0"
    assert header_size(io.BytesIO(data)) == (100, 50)


@pytest.mark.parametrize("name, cut, problem", [("png 16-bit rgba", 12, "truncated PNG header"),
                                                ("jpeg", 30, "truncated JPEG header"),
                                                ("tiff", 6, "truncated TIFF header")])
def test_a_truncated_header_is_named(name, cut, problem, tmp_path):
    path = tmp_path / f"cut{_ENCODED[name][0]}"
    path.write_bytes(_encoded(name)[:cut])
    with pytest.raises(ImageReadError, match=rf"cannot read image .*{path.name}: {problem}"):
        read_image(path)


def test_a_size_that_contradicts_the_entry_is_refused_before_decoding(rotated_jpeg, monkeypatch):
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(ImageReadError, match=r"is 100x40 \(width x height\) but its annotation entry says 40x100"):
        read_image(rotated_jpeg, expected_hw=(100, 40))
    assert image_size(rotated_jpeg) == (40, 100)
