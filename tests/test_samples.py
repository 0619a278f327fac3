"""The one training-sample pipeline: both branches warp through one matrix, and top-down crops are inference's."""

from __future__ import annotations

import numpy as np
import pytest

from openpose_lite.codecs.topdown import TopDownHeatmapCodec
from openpose_lite.data.people import PersonInstance, TopDownInstances
from openpose_lite.data.samples import (
    BottomUpTrainDataset,
    TopDownDataset,
    TrainingSamples,
)
from openpose_lite.data.synthetic import SceneConfig, render_scene
from openpose_lite.transforms import AugmentParams, TopDownAugmentParams
from openpose_lite.geometry import apply_affine
from openpose_lite.preprocess import crop_person
from openpose_lite.skeleton import COCO_17

K = COCO_17.num_keypoints


class _Scenes:
    """Generated scenes as a bottom-up sample source (``image``, ``keypoints``, ``ignore_mask``, ``boxes``)."""

    def __init__(self, n: int) -> None:
        self.scenes = [render_scene(np.random.default_rng(i), SceneConfig(image_hw=(96, 128), people_range=(1, 3)))
                       for i in range(n)]

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int):
        s = self.scenes[i]

        class _Sample:
            image, keypoints, boxes = s.image, s.keypoints, s.boxes
            ignore_mask = np.zeros(s.image.shape[:2], bool)

        return _Sample()


class _RecordingCodec:
    """Stands in for a codec: records what it is asked to encode."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def encode(self, keypoints, input_hw, ignore_mask=None):
        self.calls.append((keypoints.copy(), tuple(input_hw), ignore_mask))
        return {"heatmaps": np.zeros((1, 2, 2), np.float32)}, {"heatmaps": np.ones((1, 2, 2), np.float32)}


def _top_down_people(scenes: _Scenes) -> TopDownInstances:
    people = [PersonInstance(i, s.keypoints[0], s.boxes[0].astype(np.float64), 1.0, i)
              for i, s in enumerate(scenes.scenes) if len(s.keypoints)]
    return TopDownInstances(people, lambda i: scenes.scenes[i].image)


def test_both_branches_warp_image_and_keypoints_through_the_one_matrix_they_report():
    scenes = _Scenes(4)
    bottom_up = BottomUpTrainDataset(scenes, _RecordingCodec(), AugmentParams(crop_size=64), seed=1)
    top_down = TopDownDataset(_top_down_people(scenes), TopDownHeatmapCodec(), TopDownAugmentParams(rotation_prob=1.0))
    for dataset in (bottom_up, top_down):
        assert isinstance(dataset, TrainingSamples)
        for epoch in range(3):
            dataset.set_epoch(epoch)
            s = dataset.prepare(0)
            source = scenes.scenes[0].keypoints if dataset is bottom_up else scenes.scenes[0].keypoints[:1]
            labelled = source[..., 2] > 0
            moved = apply_affine(s.matrix, source[..., :2])
            if s.flipped:  # a mirror swaps left and right slots
                moved, labelled = moved[:, COCO_17.flip_permutation], labelled[:, COCO_17.flip_permutation]
            np.testing.assert_allclose(s.keypoints[..., :2][labelled], moved[labelled], atol=1e-3)
            assert s.image.shape[:2] == dataset.input_hw
    assert bottom_up.codec.calls[-1][1] == (64, 64) and bottom_up.codec.calls[-1][2].shape == (64, 64)


@pytest.mark.parametrize("convention", ["openpose_lite", "hrnet"])
def test_a_top_down_training_crop_is_the_inference_crop_of_its_region(convention):
    scenes = _Scenes(3)
    codec = TopDownHeatmapCodec(convention=convention)
    dataset = TopDownDataset(_top_down_people(scenes), codec, TopDownAugmentParams(rotation_prob=1.0, flip_prob=0.5))
    flipped = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        s = dataset.sample(1)
        crop, matrix = crop_person(scenes.scenes[1].image, s.center, s.size, s.rotation, codec.input_hw,
                                   flip=s.flipped, convention=convention)
        np.testing.assert_array_equal(s.image, crop)
        np.testing.assert_array_equal(s.matrix, matrix)
        flipped.add(s.flipped)
    assert flipped == {False, True}


def test_an_index_out_of_range_is_an_index_error_in_both_branches():
    scenes = _Scenes(2)
    for dataset in (BottomUpTrainDataset(scenes, _RecordingCodec(), AugmentParams(crop_size=64)),
                    TopDownDataset(_top_down_people(scenes), TopDownHeatmapCodec())):
        with pytest.raises(IndexError, match="out of range"):
            dataset.prepare(len(dataset))
        dataset.prepare(-1)  # the last sample, as a sequence gives it
