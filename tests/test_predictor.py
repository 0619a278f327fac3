"""BottomUpPredictor: preprocessing, multi-scale and flip averaging, and the mapping back to image pixels.

The central check replaces the network by a module that returns the codec's ground-truth maps of
the scene it is shown (recognised from the exact letterboxed, possibly mirrored input), so the
people must come back where they were drawn: any error in letterboxing, padding, mirroring,
resampling between scales or the inverse affine moves them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from openpose_lite.codecs import BottomUpPafCodec
from openpose_lite.config import CodecConfig, Config, ModelConfig, config_to_dict
from openpose_lite.data.synthetic import SceneConfig, generate_scene
from openpose_lite.devices import resolve_device
from openpose_lite.geometry import compose_affine, hflip_affine, transform_keypoints
from openpose_lite.inference import PHASES, BottomUpPredictor, scaled_input_height
from openpose_lite.network_settings import PafSettings
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.preprocess import letterbox, to_network_input
from openpose_lite.skeleton import COCO_17, OPENPOSE_18
from openpose_lite.training.checkpoint import save_checkpoint

CODEC = BottomUpPafCodec(refine="dark", blur_kernel=0)
INPUT_SIZE = 256


class GroundTruthMaps(nn.Module):
    """Stands in for the network: returns the encoded ground truth of whichever known scene it sees.

    Each batch item must equal one scene letterboxed to the batch height and padded right (or the
    mirror of that); a mirrored scene yields the maps of the mirrored people, left and right
    swapped, as a real network would predict them.
    """

    def __init__(self, scenes: list[tuple[np.ndarray, np.ndarray]], codec: BottomUpPafCodec) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives .to() and parameters() something to move
        self.skeleton = codec.skeleton
        self.scenes = scenes
        self.codec = codec
        self.seen_mirrored = 0

    def _candidates(self, h: int, w: int):
        """(letterboxed image, its matrix, its keypoints) of each known scene that fits an h x w input."""
        for image, keypoints in self.scenes:
            boxed, matrix = letterbox(image, h, self.codec.stride)
            if boxed.shape[0] <= h and boxed.shape[1] <= w:
                yield boxed, matrix, keypoints

    def _keypoints_for(self, inp: np.ndarray) -> np.ndarray:
        _, h, w = inp.shape
        for boxed, matrix, keypoints in self._candidates(h, w):
            reference = np.zeros((3, h, w), dtype=np.float32)  # gray padding normalises to 0
            reference[:, : boxed.shape[0], : boxed.shape[1]] = to_network_input(boxed)
            if np.array_equal(inp, reference):
                return transform_keypoints(matrix, keypoints)
            if np.array_equal(inp, reference[:, :, ::-1]):
                self.seen_mirrored += 1
                mirrored = transform_keypoints(compose_affine(hflip_affine(w), matrix), keypoints)
                return mirrored[:, COCO_17.flip_permutation]
        raise AssertionError("the input matches no known scene: preprocessing changed the pixels")

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        heatmaps, pafs = [], []
        for inp in images.float().cpu().numpy():
            targets, _ = self.codec.encode(self._keypoints_for(inp), tuple(inp.shape[1:]))
            heatmaps.append(targets["heatmaps"])
            pafs.append(targets["pafs"])
        return [{"heatmaps": torch.from_numpy(np.stack(heatmaps)), "pafs": torch.from_numpy(np.stack(pafs))}]


MARGIN = 16


def make_scene(seed: int, image_hw: tuple[int, int], people: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A generated scene grown by a margin, so no keypoint sits in the last map row or column:
    there a coarser scale's peak is cut by the map edge, a real loss no resampling can undo."""
    inner = (image_hw[0] - 2 * MARGIN, image_hw[1] - 2 * MARGIN)
    cfg = SceneConfig(image_hw=inner, person_height_range=(0.55, 0.8), border_cut_prob=0.0, occlusion_prob=0.0)
    image, keypoints, _ = generate_scene(np.random.default_rng(seed), cfg, num_people=people)
    image = cv2.copyMakeBorder(image, MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_REPLICATE)
    keypoints = keypoints.copy()
    keypoints[..., :2] = np.where(keypoints[..., 2:] > 0, keypoints[..., :2] + MARGIN, 0.0)
    return image, keypoints


def max_error_px(predicted, truth: np.ndarray) -> float:
    """Largest distance between a labelled ground-truth keypoint and its predicted person's; every one must be found."""
    pred = predicted.as_skeleton(COCO_17).keypoints
    assert len(pred) == len(truth), f"{len(pred)} people found, {len(truth)} drawn"
    worst = 0.0
    for person in truth:
        labelled = person[:, 2] > 0
        dists = np.linalg.norm(pred[:, :, :2] - person[None, :, :2], axis=-1)  # (N, K)
        mean = np.where(labelled[None], dists, 0).sum(1) / labelled.sum()
        match = pred[int(np.argmin(mean))]
        assert (match[labelled, 2] > 0).all(), "a labelled keypoint was not found"
        worst = max(worst, float(dists[int(np.argmin(mean))][labelled].max()))
    return worst


@pytest.mark.parametrize(
    "scales, flip",
    [((1.0,), False), ((1.0,), True), ((1.0, 0.5, 1.5), True), ((0.75,), False)],
    ids=["single-scale", "flip", "multi-scale+flip", "scale-without-1"],
)
def test_ground_truth_maps_give_back_the_drawn_people_in_image_pixels(scales, flip):
    # Two sizes and aspects in one batch: the narrow image is padded to the wide one's width.
    scenes = [make_scene(3, (240, 320)), make_scene(4, (300, 200))]
    model = GroundTruthMaps(scenes, CODEC)
    predictor = BottomUpPredictor(model, CODEC, input_size=INPUT_SIZE, scales=scales, flip=flip, device="cpu")
    results = predictor.predict_batch([image for image, _ in scenes])
    assert model.seen_mirrored == (len(scenes) * len(scales) if flip else 0)
    # Sub-pixel DARK peaks at stride 8 are exact to a fraction of a cell; resampled scales add a little.
    tolerance = 0.5 if scales == (1.0,) else 2.0
    for poses, (_, truth) in zip(results, scenes):
        assert poses.skeleton == OPENPOSE_18
        assert max_error_px(poses, truth) < tolerance


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125)
    with torch.no_grad():  # away from the near-zero initial outputs, so comparisons mean something
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_batch_of_same_size_images_equals_one_at_a_time():
    predictor = BottomUpPredictor(tiny_model(), CODEC, input_size=128, flip=True, device="cpu")
    images = [make_scene(s, (120, 160))[0] for s in (1, 2, 3)]
    batch = predictor.predict_maps(images)
    for image, maps in zip(images, batch):
        single = predictor.predict_maps([image])[0]
        assert np.abs(single["heatmaps"]).mean() > 1e-3
        np.testing.assert_allclose(maps["heatmaps"], single["heatmaps"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(maps["pafs"], single["pafs"], rtol=1e-4, atol=1e-5)


def test_maps_are_cropped_to_each_image_at_scale_one_resolution():
    predictor = BottomUpPredictor(tiny_model(), CODEC, input_size=128, scales=(1.0, 0.5), device="cpu")
    images = [np.zeros((100, 300, 3), np.uint8), np.zeros((200, 100, 3), np.uint8)]
    maps = predictor.predict_maps(images)
    # 100x300 -> 128x384; 200x100 -> 128x64: maps are input / 8, whatever the batch padding.
    assert maps[0]["heatmaps"].shape == (OPENPOSE_18.num_heatmaps, 16, 48)
    assert maps[0]["pafs"].shape == (OPENPOSE_18.num_pafs, 16, 48)
    assert maps[1]["heatmaps"].shape == (OPENPOSE_18.num_heatmaps, 16, 8)
    assert tuple(maps[1]["input_hw"]) == (128, 64)
    np.testing.assert_allclose(maps[0]["matrix"][0, 0], 1.28)
    assert set(predictor.timings) == set(PHASES)
    assert predictor.timings["network"] > 0 and predictor.timings["preprocess"] > 0


def test_scaled_input_heights_are_stride_multiples():
    assert scaled_input_height(368, 1.0, 8) == 368
    assert scaled_input_height(368, 0.75, 8) == 280  # 276 px = 34.5 cells, rounded half up
    assert scaled_input_height(368, 0.01, 8) == 8
    assert all(scaled_input_height(368, s, 8) % 8 == 0 for s in (0.25, 0.5, 1.3, 2.0))


def save_tiny_checkpoint(path, codec: CodecConfig | None = None):
    model = tiny_model()
    cfg = Config(model=ModelConfig(settings=PafSettings(num_stages=2, stage_channels=16, width_mult=0.125)), codec=codec or CodecConfig())
    save_checkpoint(path, model_state=model.state_dict(), config=config_to_dict(cfg))
    return model


def test_from_checkpoint_takes_codec_and_input_size_from_the_config(tmp_path):
    path = tmp_path / "tiny.pt"
    save_tiny_checkpoint(path, CodecConfig(input_size=192, peak_threshold=0.3, refine="quarter"))
    predictor = BottomUpPredictor.from_checkpoint(path, scales=(1.0, 0.5), flip=True, device="cpu")
    assert predictor.input_size == 192
    assert predictor.codec.peak_threshold == 0.3 and predictor.codec.refine == "quarter"
    assert predictor.scales == (1.0, 0.5) and predictor.flip
    assert not predictor.model.training
    overridden = BottomUpPredictor.from_weights(path, input_size=128, codec_overrides={"peak_threshold": 0.05}, device="cpu")
    assert overridden.input_size == 128 and overridden.codec.peak_threshold == 0.05
    poses = overridden(make_scene(0, (96, 128))[0])
    assert poses.keypoints.shape[1:] == (OPENPOSE_18.num_keypoints, 3)


def test_bare_state_dict_loads_from_weights_but_not_from_checkpoint(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(tiny_model().state_dict(), path)
    predictor = BottomUpPredictor.from_weights(path, device="cpu")
    assert predictor.input_size == CodecConfig().input_size
    with pytest.raises(ValueError, match="not an openpose_lite checkpoint"):
        BottomUpPredictor.from_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        BottomUpPredictor.from_weights(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown codec fields"):
        BottomUpPredictor.from_weights(path, codec_overrides={"threshold": 0.2})


def test_fp16_is_refused_on_cpu_with_a_clear_message():
    # Only CUDA computes float16 natively: a CPU run fails up front instead of silently running something else.
    with pytest.raises(ValueError, match="fp16: float16 needs a CUDA device"):
        BottomUpPredictor(tiny_model(), CODEC, input_size=64, device="cpu", precision="fp16")


def test_device_resolution():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_bad_inputs_are_clear_value_errors():
    predictor = BottomUpPredictor(tiny_model(), CODEC, input_size=64, device="cpu")
    with pytest.raises(ValueError, match=r"images\[0\].*uint8"):
        predictor(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"images\[1\].*shape"):
        predictor.predict_batch([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 5), np.uint8)])
    with pytest.raises(ValueError, match="input_size"):
        BottomUpPredictor(tiny_model(), CODEC, input_size=100)
    with pytest.raises(ValueError, match="scales"):
        BottomUpPredictor(tiny_model(), CODEC, scales=())
    # Grayscale is accepted and treated as BGR.
    assert predictor(np.zeros((40, 30), np.uint8)).keypoints.shape[1] == OPENPOSE_18.num_keypoints
    assert predictor.predict_batch([]) == []


def test_model_mode_is_restored_after_prediction():
    model = tiny_model().train()
    predictor = BottomUpPredictor(model, CODEC, input_size=64, device="cpu")
    model.train()  # e.g. a training loop switching back between evaluations
    predictor.predict_maps([np.zeros((64, 64, 3), np.uint8)])
    assert model.training


def test_parts_without_limbs_decode_to_one_part_people():
    # Peaks of two keypoint types and no PAF at all: nothing to group, yet decoding must give
    # people in the skeleton's layout (a regression: lone parts once took the layout of the
    # part types present).
    predictor = BottomUpPredictor(tiny_model(), CODEC, input_size=64, device="cpu")
    targets, _ = CODEC.encode(np.zeros((0, COCO_17.num_keypoints, 3)), (64, 64))
    heatmaps = np.zeros_like(targets["heatmaps"])
    heatmaps[0, 2, 2] = heatmaps[3, 5, 5] = 0.9
    maps = {"heatmaps": heatmaps, "pafs": targets["pafs"], "matrix": np.eye(2, 3)}
    poses = predictor.decode_maps(maps)
    assert poses.keypoints.shape == (2, OPENPOSE_18.num_keypoints, 3)
    assert sorted(np.flatnonzero(poses.keypoints[:, :, 2].max(axis=0))) == [0, 3]


def test_draw_poses_colours_each_limb_and_leaves_the_input_alone():
    from openpose_lite.structures import Poses
    from openpose_lite.viz import draw_poses, limb_colours

    image = np.zeros((100, 100, 3), np.uint8)
    keypoints = np.zeros((1, OPENPOSE_18.num_keypoints, 3), np.float32)
    limb = next(i for i in range(OPENPOSE_18.num_limbs) if i not in OPENPOSE_18.redundant_limbs)
    a, b = OPENPOSE_18.limbs[limb]
    keypoints[0, a] = (20, 50, 0.9)
    keypoints[0, b] = (80, 50, 0.9)
    drawn = draw_poses(image, Poses(keypoints, np.ones(1)), thickness=3)
    assert not image.any()
    colours = limb_colours(OPENPOSE_18.num_limbs)
    assert len(set(colours)) == OPENPOSE_18.num_limbs
    assert tuple(int(v) for v in drawn[50, 50]) == colours[limb]  # the middle of the limb
    assert not drawn[10].any() and not drawn[90].any()  # nothing where nobody is
