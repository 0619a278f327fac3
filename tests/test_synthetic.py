"""Synthetic scenes: deterministic, and their annotations agree with what is drawn."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from openpose_lite.data.synthetic import (
    SKELETON,
    SceneConfig,
    coco_person_category,
    generate_scene,
    render_background,
    render_scene,
    write_dataset,
)

SMALL = SceneConfig(image_hw=(192, 256))
SEEDS = range(12)


def _scenes(cfg: SceneConfig, seeds=SEEDS):
    return [(seed, render_scene(np.random.default_rng(seed), cfg)) for seed in seeds]


def test_generate_scene_shapes_and_dtypes():
    image, keypoints, boxes = generate_scene(np.random.default_rng(0), SceneConfig(image_hw=(480, 640)))
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    n = keypoints.shape[0]
    assert keypoints.shape == (n, SKELETON.num_keypoints, 3) and keypoints.dtype == np.float32
    assert boxes.shape == (n, 4) and boxes.dtype == np.float32


def test_same_seed_writes_identical_files_and_other_seed_differs(tmp_path):
    a = write_dataset(tmp_path / "a", num_images=3, seed=5, cfg=SMALL)
    b = write_dataset(tmp_path / "b", num_images=3, seed=5, cfg=SMALL)
    c = write_dataset(tmp_path / "c", num_images=3, seed=6, cfg=SMALL)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    names = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert names == ["000001.jpg", "000002.jpg", "000003.jpg"]
    for name in names:
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()
    assert not list(tmp_path.glob("*/annotations.json.tmp"))


def test_image_i_does_not_depend_on_dataset_size(tmp_path):
    small = json.loads(write_dataset(tmp_path / "s", 1, seed=3, cfg=SMALL, image_format="png").read_text())
    large = json.loads(write_dataset(tmp_path / "l", 2, seed=3, cfg=SMALL, image_format="png").read_text())
    first = [a for a in large["annotations"] if a["image_id"] == 1]
    assert small["annotations"] == first
    assert (tmp_path / "s/images/000001.png").read_bytes() == (tmp_path / "l/images/000001.png").read_bytes()


def test_visible_keypoints_are_drawn_on_their_own_person():
    checked = 0
    for seed, scene in _scenes(SMALL):
        # The scene's background is drawn first from the same generator.
        background = render_background(np.random.default_rng(seed), SMALL.image_hw, SMALL.clutter_range)
        for person, kps in enumerate(scene.keypoints):
            for x, y, v in kps[kps[:, 2] == 2]:
                col, row = int(round(float(x))), int(round(float(y)))
                assert scene.instance_map[row, col] == person
                change = np.abs(scene.image[row, col].astype(int) - background[row, col].astype(int)).sum()
                assert change > 30, f"seed {seed}: keypoint ({x}, {y}) shows the background"
                checked += 1
    assert checked > 200


def test_pixels_owned_by_nobody_show_the_background():
    cfg = SceneConfig(image_hw=(128, 128), occlusion_prob=0.0)
    for seed, scene in _scenes(cfg, range(4)):
        background = render_background(np.random.default_rng(seed), cfg.image_hw, cfg.clutter_range)
        changed = np.abs(scene.image.astype(int) - background.astype(int)).sum(axis=2) > 0
        # Anti-aliased edges reach a pixel beyond the owned area; nothing reaches further.
        owned = (scene.instance_map >= 0).astype(np.uint8)
        near = cv2.dilate(owned, np.ones((5, 5), np.uint8)) > 0
        hidden = (scene.instance_map < 0) & ~near
        assert not (changed & hidden).any()


def test_keypoint_visibility_follows_coco_conventions():
    h, w = SMALL.image_hw
    for _, scene in _scenes(SceneConfig(image_hw=SMALL.image_hw, border_cut_prob=0.5, occlusion_prob=0.5)):
        kps = scene.keypoints
        assert set(np.unique(kps[..., 2])) <= {0.0, 1.0, 2.0}
        unlabelled = kps[..., 2] == 0
        assert np.all(kps[unlabelled][:, :2] == 0)
        labelled = kps[~unlabelled]
        assert np.all((labelled[:, 0] >= 0) & (labelled[:, 0] <= w - 1))
        assert np.all((labelled[:, 1] >= 0) & (labelled[:, 1] <= h - 1))


def test_occluded_keypoints_are_labelled_but_not_visible():
    cfg = SceneConfig(image_hw=SMALL.image_hw, occlusion_prob=1.0)
    occluded = 0
    for _, scene in _scenes(cfg):
        for person, kps in enumerate(scene.keypoints):
            for x, y, _ in kps[kps[:, 2] == 1]:
                assert scene.instance_map[int(round(float(y))), int(round(float(x)))] != person
                occluded += 1
    assert occluded > 20


def test_border_cut_people_lose_only_their_outside_keypoints():
    cfg = SceneConfig(image_hw=SMALL.image_hw, border_cut_prob=1.0, occlusion_prob=0.0)
    h, w = cfg.image_hw
    partly_cut = 0
    for _, scene in _scenes(cfg):
        for person, kps in enumerate(scene.keypoints):
            v = kps[:, 2]
            if (v == 0).any() and (v > 0).any():
                partly_cut += 1
                rows, cols = np.nonzero(scene.instance_map == person)
                touches_border = rows.min() == 0 or cols.min() == 0 or rows.max() == h - 1 or cols.max() == w - 1
                assert touches_border, "a person with unlabelled keypoints must reach the image border"
    assert partly_cut > 5


def test_every_annotated_person_is_visible_and_boxed():
    h, w = SMALL.image_hw
    for _, scene in _scenes(SMALL):
        for person, (kps, box, area) in enumerate(zip(scene.keypoints, scene.boxes, scene.areas)):
            owned = scene.instance_map == person
            assert area == owned.sum() > 0
            x, y, bw, bh = box
            assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
            rows, cols = np.nonzero(owned)
            assert x <= cols.min() and cols.max() + 1 <= x + bw and y <= rows.min() and rows.max() + 1 <= y + bh
            labelled = kps[kps[:, 2] > 0]
            if len(labelled):
                assert np.all(labelled[:, 0] >= x) and np.all(labelled[:, 0] <= x + bw)


@pytest.mark.parametrize(("count", "image_hw"), [(1, (368, 368)), (7, (368, 368)), (32, (480, 640))])
def test_exact_number_of_people(count, image_hw):
    cfg = SceneConfig(image_hw=image_hw)
    for seed in range(3):
        _, keypoints, boxes = generate_scene(np.random.default_rng(seed), cfg, num_people=count)
        assert keypoints.shape[0] == boxes.shape[0] == count
        assert np.all((keypoints[..., 2] > 0).sum(axis=1) > 0)


def test_zero_people_gives_background_only():
    scene = render_scene(np.random.default_rng(0), SMALL, num_people=0)
    assert scene.keypoints.shape == (0, SKELETON.num_keypoints, 3)
    assert np.all(scene.instance_map == -1)


def test_annotation_file_is_coco_format(tmp_path):
    path = write_dataset(tmp_path, num_images=2, seed=0, cfg=SMALL)
    data = json.loads(path.read_text())
    assert [img["id"] for img in data["images"]] == [1, 2]
    assert data["images"][0] == {"id": 1, "file_name": "000001.jpg", "height": 192, "width": 256}
    assert data["categories"] == [coco_person_category()]
    # COCO's own 1-based person skeleton.
    assert data["categories"][0]["skeleton"][:3] == [[16, 14], [14, 12], [17, 15]]
    for ann in data["annotations"]:
        assert len(ann["keypoints"]) == 3 * SKELETON.num_keypoints
        assert ann["num_keypoints"] == sum(1 for v in ann["keypoints"][2::3] if v > 0)
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0 and ann["area"] > 0
    assert len({ann["id"] for ann in data["annotations"]}) == len(data["annotations"])


@pytest.mark.parametrize(
    "field, value",
    [
        ("image_hw", (8, 8)),
        ("people_range", (3, 1)),
        ("person_height_range", (0.0, 0.5)),
        ("occlusion_prob", 1.5),
        ("clutter_range", (-1, 2)),
    ],
)
def test_bad_scene_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SceneConfig(**{field: value})


def test_bad_write_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="image_format"):
        write_dataset(tmp_path, 1, seed=0, image_format="bmp")
    with pytest.raises(ValueError, match="seed"):
        write_dataset(tmp_path, 1, seed=-1)
    with pytest.raises(ValueError, match="num_people"):
        render_scene(np.random.default_rng(0), SMALL, num_people=-2)


def test_scene_config_is_typed_and_names_a_value_of_the_wrong_type():
    with pytest.raises(ValueError, match=r"SceneConfig\.image_hw\[0\]: expected an integer, got 'tall'"):
        SceneConfig(image_hw=("tall", 64))
    with pytest.raises(ValueError, match=r"SceneConfig\.occlusion_prob: expected a number, got None"):
        SceneConfig(occlusion_prob=None)
    assert SceneConfig(image_hw=[64, 80]).image_hw == (64, 80)  # a YAML / JSON list becomes the tuple
