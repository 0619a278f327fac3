"""A Lightweight OpenPose file's keypoints land where the reference's COCO evaluation puts them.

The reference is Daniil-Osokin/lightweight-human-pose-estimation.pytorch (read at commit
a70ef04). Its published AP (40% on COCO val2017) comes from ``val.py``, whose arithmetic this
file writes in numpy and OpenCV, as read there:

* ``infer``: ``normalize`` is ``(img - 128) / 256``; the image is resized by
  ``ratio = 368 / height`` (``cv2.resize(fx=ratio, fy=ratio, INTER_CUBIC)``); ``pad_width``
  pads it with 0 to a width that is a multiple of 8 (centred: ``floor(extra / 2)`` on the
  left); after the network, the last stage's heatmaps are resized by ``fx = fy = stride = 8``
  (``INTER_CUBIC``), the padding is cut off, and they are resized to the image's
  ``(width, height)`` (``INTER_CUBIC``).
* ``modules/keypoints.py``, ``extract_keypoints``: values below 0.1 become 0; a peak is a pixel
  strictly above its four neighbours; peaks closer than 6 px to an earlier one (sorted by x)
  are suppressed. Coordinates are the peak's integer pixel.
* ``convert_to_coco_format``: ``cx = cx + 0.5``, ``cy = cy + 0.5``.

The reference trains with cell j standing for pixel ``j * 8 + 3.5`` (``datasets/coco.py``,
``_add_gaussian``: ``shift = stride / 2 - 0.5``), as our codec does, so our decoding of the
same maps finds the same image point; what ``val.py`` adds is the final half pixel.

The network is replaced by one whose maps are given (Gaussians at chosen image pixels, PAFs
along the limbs, drawn here in numpy), so the expected answer is computed from the maps alone;
it keeps its input, which at the image's own height must be val.py's ``normalize`` exactly.
The images' sizes make the reference's padding zero: with padding, the network would see the
image at another offset from ours, which a map-replaying network cannot model.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_mobilenet_paf import random_state, reference_entries, reference_network
from torch import nn

from openpose_lite.config import Config, config_to_dict
from openpose_lite.inference import BottomUpPredictor
from openpose_lite.models import load_model
from openpose_lite.skeleton import OPENPOSE_18
from openpose_lite.training.checkpoint import save_checkpoint

STRIDE = 8
BASE_HEIGHT = 368
SIGMA_PX = 7.0  # the reference's training sigma (train.py, --sigma default 7), in input pixels

# One upright person in image pixels (x, y), OpenPose-18 order: nose, neck, right arm, left arm,
# right leg, left leg, eyes, ears. Integer pixels, so that the reference's integer peaks fall on them.
PERSON = np.array([
    [250, 60], [250, 100], [220, 100], [205, 150], [200, 195], [280, 100], [295, 150], [300, 195],
    [232, 200], [228, 270], [225, 335], [268, 200], [272, 270], [275, 335], [243, 52], [257, 52],
    [235, 58], [265, 58],
], dtype=np.float64)


def reference_cell(p: np.ndarray, ratio: float) -> np.ndarray:
    """The map cell that val.py carries to image pixel ``p`` (pixel indices; no padding).

    cv2.resize samples destination pixel d at source ``(d + 0.5) / scale - 0.5``: the resize to
    the image takes p to scaled pixel ``(p + 0.5) * ratio - 0.5``, the x8 upsampling takes that to
    cell ``(u + 0.5) / 8 - 0.5``.
    """
    u = (p + 0.5) * ratio - 0.5
    return (u + 0.5) / STRIDE - 0.5


def draw_maps(cells: np.ndarray, map_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (19, h, w) with a Gaussian at each keypoint's cell and the background last, and
    PAFs (38, h, w): each limb's unit vector within a cell of the segment, x then y channels."""
    h, w = map_hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sigma = SIGMA_PX / STRIDE
    parts = np.exp(-((xs[None] - cells[:, 0, None, None]) ** 2 + (ys[None] - cells[:, 1, None, None]) ** 2)
                   / (2 * sigma ** 2))
    heatmaps = np.concatenate([parts, 1.0 - parts.max(axis=0, keepdims=True)])
    pafs = np.zeros((2 * len(OPENPOSE_18.limbs), h, w))
    for i, (a, b) in enumerate(OPENPOSE_18.limbs):
        d = cells[b] - cells[a]
        length = np.hypot(*d)
        along = ((xs - cells[a, 0]) * d[0] + (ys - cells[a, 1]) * d[1]) / length
        across = np.abs((xs - cells[a, 0]) * d[1] - (ys - cells[a, 1]) * d[0]) / length
        band = (along >= 0) & (along <= length) & (across <= 1.0)
        pafs[2 * i][band], pafs[2 * i + 1][band] = d[0] / length, d[1] / length
    return heatmaps.astype(np.float32), pafs.astype(np.float32)


def reference_val_keypoints(heatmaps: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(K, 2) keypoints val.py reports for one person's maps (one peak per type), padding zero."""
    height, width = image_hw
    up = cv2.resize(heatmaps.transpose(1, 2, 0), (0, 0), fx=STRIDE, fy=STRIDE, interpolation=cv2.INTER_CUBIC)
    full = cv2.resize(up, (width, height), interpolation=cv2.INTER_CUBIC)
    found = []
    for k in range(OPENPOSE_18.num_keypoints):
        m = full[:, :, k].copy()
        m[m < 0.1] = 0
        c = np.pad(m, 1)
        peaks = ((c[1:-1, 1:-1] > c[1:-1, :-2]) & (c[1:-1, 1:-1] > c[1:-1, 2:])
                 & (c[1:-1, 1:-1] > c[:-2, 1:-1]) & (c[1:-1, 1:-1] > c[2:, 1:-1]))
        ys, xs = np.nonzero(peaks)
        assert len(xs) == 1, f"keypoint {k}: the reference finds {len(xs)} peaks, the test expects one"
        found.append([xs[0] + 0.5, ys[0] + 0.5])  # convert_to_coco_format
    return np.array(found)


class ReplayMaps(nn.Module):
    """A stand-in network: returns the given maps for an input of the expected size."""

    stride = STRIDE
    skeleton = OPENPOSE_18

    def __init__(self, heatmaps: np.ndarray, pafs: np.ndarray, input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.input_hw = input_hw
        self.register_buffer("heatmaps", torch.from_numpy(heatmaps)[None])
        self.register_buffer("pafs", torch.from_numpy(pafs)[None])
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        self.seen = x.clone()
        assert tuple(x.shape[-2:]) == self.input_hw, f"network input {tuple(x.shape[-2:])}, expected {self.input_hw}"
        return [{"heatmaps": self.heatmaps.expand(x.shape[0], -1, -1, -1),
                 "pafs": self.pafs.expand(x.shape[0], -1, -1, -1)}]


@pytest.fixture(scope="module")
def reference_layout_file(tmp_path_factory) -> Path:
    """A bare state dict in the reference's layout (random weights): what users bring."""
    net = reference_network(num_refinement_stages=1)
    path = tmp_path_factory.mktemp("lw_val") / "lightweight.pth"
    torch.save(random_state(reference_entries(net), seed=5), path)
    return path


# image (height, width): its own height (ratio 1), and 460 x 620 (ratio 0.8, scaled to 368 x 496).
@pytest.mark.parametrize("image_hw", [(368, 496), (460, 620)], ids=["ratio_1", "ratio_0.8"])
def test_lightweight_file_keypoints_are_where_the_reference_val_py_reports_them(reference_layout_file, image_hw):
    ratio = BASE_HEIGHT / image_hw[0]
    input_hw = (BASE_HEIGHT, round(image_hw[1] * ratio))
    assert input_hw[1] % STRIDE == 0  # the reference pads nothing
    heatmaps, pafs = draw_maps(reference_cell(PERSON, ratio), (input_hw[0] // STRIDE, input_hw[1] // STRIDE))
    expected = reference_val_keypoints(heatmaps, image_hw)
    # The maps put each keypoint on its pixel in the reference's reading, half a pixel on, up to
    # the reference's own rounding: bicubic x8 then down to the image moves a few peaks by 1 px.
    assert np.abs(expected - (PERSON + 0.5)).max() <= 1.0

    predictor = BottomUpPredictor.from_weights(reference_layout_file)
    predictor.model = net = ReplayMaps(heatmaps, pafs, input_hw)
    image = np.random.default_rng(0).integers(0, 256, image_hw + (3,), dtype=np.uint8)
    poses = predictor(image)
    if ratio == 1:  # no resize: the network input is val.py's normalize of the BGR image, exactly
        reference_input = (image.astype(np.float32) - 128) / 256
        np.testing.assert_array_equal(net.seen[0].permute(1, 2, 0).numpy(), reference_input)
    assert len(poses) == 1
    found = poses.keypoints[0]
    assert (found[:, 2] > 0).all()
    # Our sub-pixel peaks against the reference's integer ones: each within the reference's
    # 1 px rounding (ours are within 0.01 px of the drawn points), and no offset on average.
    # Without the half pixel val.py adds, the mean is -0.5.
    diff = found[:, :2] - expected
    assert np.abs(diff).max() <= 1.01
    assert abs(diff.mean()) <= 0.15, f"mean offset {diff.mean():.3f} px from the reference's keypoints"


def test_our_mobilenet_checkpoints_report_in_our_convention(reference_layout_file, tmp_path):
    """A checkpoint we trained carries its config and was trained in our codec: no shift."""
    model = load_model(reference_layout_file)
    cfg = config_to_dict(Config())
    cfg["model"].update(arch="mobilenet_paf", num_stages=2)
    ours = save_checkpoint(tmp_path / "ours.pt", model_state=model.state_dict(), config=cfg)
    assert BottomUpPredictor.from_weights(reference_layout_file).report_shift == 0.5
    assert BottomUpPredictor.from_weights(ours).report_shift == 0.0


@pytest.mark.parametrize("bad", [float("nan"), "half", None])
def test_a_report_shift_that_is_not_a_finite_number_is_refused_by_name(reference_layout_file, bad):
    predictor = BottomUpPredictor.from_weights(reference_layout_file)
    with pytest.raises(ValueError, match="report_shift"):
        BottomUpPredictor(predictor.model, predictor.codec, report_shift=bad)
