"""The one codec contract (``openpose_lite.codecs.base.Codec``), held by both branches alike:
encode -> decode gives the people back, flip_outputs undoes a mirror, channels follow the
skeleton, and a model of another stride or channel count is refused by the codec and by the
predictor built on it."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from openpose_lite.codecs import BottomUpPafCodec, TopDownHeatmapCodec
from openpose_lite.codecs.base import Codec
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor
from openpose_lite.skeleton import COCO_17, OPENPOSE_18

# One standing person, COCO-17 order, 64 x 48 px of a 128 x 96 input (x, y, visible).
PERSON = np.array([[48, 20], [51, 17], [45, 17], [55, 19], [41, 19], [60, 32], [36, 32], [64, 46], [32, 46],
                   [66, 58], [30, 58], [56, 60], [40, 60], [57, 78], [39, 78], [58, 96], [38, 96]], np.float32)


def _people() -> np.ndarray:
    kps = np.concatenate([PERSON, np.full((17, 1), 2, np.float32)], axis=1)
    return kps[None]


CODECS = {
    "bottom-up": lambda: BottomUpPafCodec(),
    "top-down": lambda: TopDownHeatmapCodec(input_hw=(128, 96), heatmap_hw=(32, 24)),
}


def _maps(codec: Codec, keypoints: np.ndarray) -> dict[str, np.ndarray]:
    targets, _ = codec.encode(keypoints, (128, 96))
    return {name: targets[name] for name in codec.channels()}


@pytest.mark.parametrize("name", CODECS)
def test_both_codecs_round_trip_a_person_through_encode_and_decode(name):
    codec = CODECS[name]()
    assert isinstance(codec, Codec)
    maps = _maps(codec, _people())
    assert {k: v.shape[0] for k, v in maps.items()} == codec.channels()
    poses = codec.decode(maps)
    coco = poses.as_skeleton(COCO_17).keypoints
    assert len(coco) == 1
    error = np.linalg.norm(coco[0, :, :2] - PERSON, axis=1)
    assert error.max() < 1.0, error  # the input is the expected answer, to a pixel


@pytest.mark.parametrize("name", CODECS)
def test_flip_outputs_of_mirrored_targets_give_the_unmirrored_targets(name):
    codec = CODECS[name]()
    mirrored = _people().copy()
    mirrored[..., 0] = 96 - 1 - mirrored[..., 0]  # pixel centres: x -> W - 1 - x
    # COCO's keypoint order: nose, then left/right pairs (eyes, ears, shoulders ... ankles) swap names.
    mirrored = mirrored[:, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]]
    back = codec.flip_outputs(_maps(codec, mirrored))
    straight = _maps(codec, _people())
    for key in straight:
        np.testing.assert_allclose(back[key], straight[key], atol=0.05, err_msg=key)


def test_channel_counts_derive_from_the_skeleton():
    assert BottomUpPafCodec().channels() == {"heatmaps": OPENPOSE_18.num_heatmaps, "pafs": OPENPOSE_18.num_pafs}
    assert TopDownHeatmapCodec().channels() == {"heatmaps": COCO_17.num_keypoints}


class _Net(nn.Module):
    """A stand-in network with a given stride and skeleton."""

    def __init__(self, stride: int, skeleton) -> None:
        super().__init__()
        self.stride, self.skeleton = stride, skeleton
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        return [{"heatmaps": x[:, :1], "pafs": x[:, :1]}]


@pytest.mark.parametrize(("stride", "skeleton", "message"), [
    (4, OPENPOSE_18, "the codec's stride is 8 but the model's output stride is 4"),
    (8, COCO_17, "the codec has 19 heatmaps channels (openpose18) but the model 17 (coco17)"),
])
def test_the_bottom_up_predictor_refuses_a_model_the_codec_does_not_fit(stride, skeleton, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BottomUpPredictor(_Net(stride, skeleton), BottomUpPafCodec(), device="cpu")


def test_the_top_down_predictor_refuses_a_model_of_another_stride():
    codec = TopDownHeatmapCodec(input_hw=(128, 96), heatmap_hw=(32, 24))  # stride 4
    with pytest.raises(ValueError, match="the codec's stride is 4 but the model's output stride is 8"):
        TopDownPredictor(_Net(8, COCO_17), codec, device="cpu")
