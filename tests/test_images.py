"""The one image reader: EXIF orientation ignored (as COCO's annotations need), clear errors naming the file.

Reference for the orientation rule: the HRNet reference reads COCO images with
``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`` (leoxiaobin/deep-high-resolution-net.pytorch,
``lib/dataset/JointsDataset.py``, ``__getitem__``); COCO's image entries give the stored pixel
size. The EXIF layout written below follows the EXIF 2.3 / TIFF 6.0 specifications: an APP1
segment ``Exif\\0\\0``, a little-endian TIFF header, one IFD entry Orientation (tag 0x0112,
SHORT), value 6 = "rotate 90 degrees clockwise to display".
"""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.images import ImageNotFoundError, ImageReadError, read_image


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
        "categories": [{"id": 1, "name": "person"}],
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
