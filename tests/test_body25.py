"""CMU's BODY_25 as an architecture like the others: generated people with feet, annotated in BODY_25's 25
keypoints; the bottom-up codec's oracle gives those keypoints back; the CPU quickstart config trains on them;
``bench`` sizes its random network (and every bottom-up row's) through its own settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import import_optional

from openpose_lite.architectures import architecture, architectures
from openpose_lite.bench import BenchConfig
from openpose_lite.bench.models import build_models
from openpose_lite.branches import branch
from openpose_lite.cli import main
from openpose_lite.cmu_skeletons import BODY_25, MPI_15
from openpose_lite.config import Config
from openpose_lite.data.figures import People
from openpose_lite.data.synthetic import SceneConfig, render_scene, write_dataset
from openpose_lite.geometry import letterbox_affine, transform_keypoints
from openpose_lite.oracle import run_oracle
from openpose_lite.skeleton import Skeleton
from openpose_lite.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "body25_synthetic_cpu.yaml"
FEET = ("big_toe", "small_toe", "heel")
BIG = SceneConfig(person_height_range=(0.6, 0.9), occlusion_prob=0.0)


def _write_people(root: Path, images: int = 3) -> Path:
    return write_dataset(root, images, seed=0, cfg=BIG, num_people=2, bank=People(BODY_25), image_format="png")


# --------------------------------------------------------------------------------------------- figures
def test_generated_body25_people_have_a_drawn_foot_below_each_ankle():
    scene = render_scene(np.random.default_rng(3), BIG, num_people=2, bank=People(BODY_25))
    assert scene.keypoints.shape == (2, 25, 3)
    k = {name: scene.keypoints[:, BODY_25.index(name)] for name in BODY_25.keypoints}
    heights = scene.boxes[:, 3]
    for side in ("left", "right"):
        ankle, knee = k[f"{side}_ankle"][:, :2], k[f"{side}_knee"][:, :2]
        down = (ankle - knee) / np.linalg.norm(ankle - knee, axis=1, keepdims=True)
        for part in FEET:
            point = k[f"{side}_{part}"]
            offset = point[:, :2] - ankle
            # Below the ankle along the shin, within a foot's length; drawn, so its pixel shows the person.
            assert ((offset * down).sum(1) > 0.02 * heights).all()
            assert (np.linalg.norm(offset, axis=1) < 0.15 * heights).all()
            assert (point[:, 2] == 2).all()
    for middle, a, b in (("neck", "left_shoulder", "right_shoulder"), ("mid_hip", "left_hip", "right_hip")):
        np.testing.assert_allclose(k[middle][:, :2], (k[a][:, :2] + k[b][:, :2]) / 2, atol=0.07)
    # The big toe is on the inner side of each foot: the person's left is the image's right (facing the camera).
    for side, inner in (("left", -1), ("right", 1)):
        assert (inner * (k[f"{side}_big_toe"][:, 0] - k[f"{side}_small_toe"][:, 0]) > 0).all()
    # The feet are drawn: the shoe's pixels under the toes are white (the shins are dark).
    for person in range(2):
        for side in ("left", "right"):
            x, y = np.rint(k[f"{side}_big_toe"][person, :2]).astype(int)
            assert scene.image[y, x].min() > 150


def test_synth_writes_body25_people_when_asked_by_name(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "out"), "--num-images", "1", "--people", "1", "--skeleton", "body25"]) == 0
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    (category,) = data["categories"]
    assert category["keypoints"] == list(BODY_25.keypoints) and len(category["sigmas"]) == 25
    assert [len(a["keypoints"]) for a in data["annotations"]] == [75]
    assert "of body25 figures (25 keypoints)" in capsys.readouterr().out


def test_people_of_a_layout_without_those_keypoints_are_refused():
    with pytest.raises(ValueError, match="mpi15: generated people have no keypoint 'head'"):
        People(MPI_15)
    heels = Skeleton(name="heels", keypoints=("left_ankle", "left_heel"), limbs=((0, 1),), flip_pairs=(),
                     sigmas=(0.089, 0.066))
    with pytest.raises(ValueError, match="heels: a generated foot has all of"):
        People(heels)


# ---------------------------------------------------------------------------------------------- oracle
def test_the_oracle_decodes_the_25_keypoints_of_generated_people(tmp_path):
    ann = _write_people(tmp_path / "set")
    metrics, results = run_oracle("bottomup", ann)
    gt = json.loads(ann.read_text())
    assert gt["categories"][0]["keypoints"] == list(BODY_25.keypoints) and len(gt["annotations"]) == 6
    assert metrics["AP"] > 0.99 and len(results) == len(gt["annotations"])
    for a in gt["annotations"]:
        truth = np.array(a["keypoints"], np.float64).reshape(25, 3)
        found = [np.array(r["keypoints"]).reshape(25, 3) for r in results if r["image_id"] == a["image_id"]]
        error = min(np.abs(f[:, :2] - truth[:, :2])[truth[:, 2] > 0].max() for f in found)
        assert error < 1.5  # every labelled keypoint, feet included, back within a pixel or so

    # The OpenPose JSON of decoded people: 25 (x, y, c) triples per person in CMU's order.
    info = gt["images"][0]
    truth = np.array([a["keypoints"] for a in gt["annotations"] if a["image_id"] == info["id"]], np.float32)
    truth = truth.reshape(-1, 25, 3)
    codec = branch("bottomup").build_codec(Config(), skeleton=BODY_25)
    matrix, input_hw = letterbox_affine((info["height"], info["width"]), Config().codec.input_size, codec.stride)
    targets, _ = codec.encode(transform_keypoints(matrix, truth), input_hw)
    poses = codec.decode(targets)
    people = poses.transform(np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]).to_openpose_dict()["people"]
    assert len(people) == 2
    for person in people:
        triples = np.array(person["pose_keypoints_2d"]).reshape(-1, 3)
        assert triples.shape == (25, 3)
        assert min(np.abs(triples[:, :2] - t[:, :2]).max() for t in truth) < 1.5


# ---------------------------------------------------------------------------------------------- training
def test_the_body25_quickstart_trains_on_generated_people_with_feet(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--config", str(CONFIG), "--output-dir", str(out), "--no-progress", "--threads", "1",
                 "--held-out-images", "0", "train.epochs=1", "train.batch_size=2", "data.synthetic_train_images=4",
                 "data.synthetic_val_images=1", "train.val_max_images=1", "data.num_workers=0", "data.crop_size=64",
                 "codec.input_size=64", "model.width_scale=0.125"])
    assert code == 0, capsys.readouterr().err
    train = json.loads((out / "data" / "train" / "annotations.json").read_text())
    assert train["categories"][0]["keypoints"] == list(BODY_25.keypoints)
    feet = np.array([a["keypoints"] for a in train["annotations"]]).reshape(-1, 25, 3)[:, 19:, 2]
    assert (feet > 0).mean() > 0.8  # the figures have feet, labelled
    epoch = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "epoch"][0]
    assert epoch["train/steps"] == 2 and np.isfinite(epoch["train/loss"])
    checkpoint = load_checkpoint(out / "last.pt")
    assert Skeleton.from_dict(checkpoint["skeleton"]) == BODY_25
    assert checkpoint["config"]["model"]["arch"] == "body25_paf"


# ----------------------------------------------------------------------------------------------- bench
@pytest.mark.parametrize("arch", [a.name for a in architectures("bottomup")])
def test_bench_sizes_every_bottomup_network_through_its_own_settings(arch):
    config = BenchConfig(device="cpu", bu_arch=arch, bu_width_mult=0.125, bu_stages=1, bu_input_size=32,
                         hrnet_width=4, td_input_hw=(64, 32))
    models, resolved = build_models(config, torch.device("cpu"))
    settings = architecture(arch).settings
    assert (resolved.bu_arch, resolved.bu_width_mult, resolved.bu_stages) == (arch, 0.125, 1)
    # The network built is described by the settings it was built from: its own width and stage fields.
    assert models.bu_name.startswith(f"{arch} (")
    assert f"{settings.width_field} 0.125" in models.bu_name and f"{settings.stages_field} 1," in models.bu_name
    assert sum(p.numel() for p in models.bottomup.model.parameters()) < 1e6


def test_the_body25_network_runs_on_openvino_with_torchs_maps(monkeypatch, tmp_path):
    import_optional("openvino")
    from openpose_lite.inference.network import make_runner
    from openpose_lite.models.cmu_caffe import build_body25

    monkeypatch.setenv("OPENPOSE_LITE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build_body25(BODY_25, paf_stages=1, heatmap_stages=2, width_scale=0.125, init="kaiming").eval()
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 3, 48, 64)).astype(np.float32)
    torch_maps = make_runner(model, ["pafs", "heatmaps"], "cpu")(torch.from_numpy(x))
    openvino_maps = make_runner(model, ["pafs", "heatmaps"], "cpu", backend="openvino")(x)
    for name in ("pafs", "heatmaps"):
        assert openvino_maps[name].shape == torch_maps[name].shape
        np.testing.assert_allclose(openvino_maps[name], torch_maps[name], atol=1e-4)
