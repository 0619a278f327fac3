"""The branch table (openpose_lite/branches.py) is the one place that tells the branches apart.

What holds it: every reference of a row resolves; every architecture names a row; no other module
compares anything with a branch's name or keys a dict by branch names (as test_architectures.py
holds for architecture names); and a branch defined here, a codec and a predictor of its own plus
one row, runs through :func:`~openpose_lite.inference.build_predictor` and :func:`~openpose_lite.oracle.run_oracle`
with no edit anywhere else.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from openpose_lite import branches
from openpose_lite.branches import BRANCHES, Branch, branch
from openpose_lite.codecs.base import Codec
from openpose_lite.config import Config
from openpose_lite.data.synthetic import write_dataset
from openpose_lite.evaluation import load_coco
from openpose_lite.inference import PredictorOptions, build_predictor
from openpose_lite.inference.base import Predictor
from openpose_lite.inference.network import make_runner
from openpose_lite import architectures
from openpose_lite.architectures import ARCHITECTURES, Architecture, resolve
from openpose_lite.network_settings import NetworkSettings
from openpose_lite.models.weights import LoadedWeights
from openpose_lite.oracle import run_oracle
from openpose_lite.skeleton import Skeleton
from openpose_lite.structures import Poses

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "openpose_lite" / "branches.py"
BRANCH_NAMES = {b.name for b in BRANCHES}


# ------------------------------------------------------------------ the rows
@pytest.mark.parametrize("row", BRANCHES, ids=lambda row: row.name)
def test_every_reference_of_a_row_resolves(row):
    for ref in (row.codec, row.predictor, row.datasets, row.loss, row.ap, row.oracle):
        assert callable(resolve(ref)), ref
    assert row.build_codec(Config()).skeleton == row.layout(row.person_skeleton)


def test_every_architecture_names_a_row_and_an_unknown_branch_is_refused():
    assert {a.branch_row for a in ARCHITECTURES} == set(BRANCHES)
    with pytest.raises(ValueError, match="unknown branch 'sideways'; known: bottomup, topdown"):
        branch("sideways")


# ------------------------------------------------------------------ nothing else tells branches apart
def _sources() -> list[Path]:
    return [*sorted((ROOT / "openpose_lite").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py")),
            ROOT / "train_vgg19.py"]


def _violations(paths: list[Path]) -> list[str]:
    """Comparisons with a branch's name, and dicts keyed by branch names, outside the table.

    ``topdown`` is also the name of a config section, so a dict counts as keyed by branches when
    all its keys are branch names (a section delta has others beside it)."""
    found = []
    for path in paths:
        if path == TABLE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                named = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in BRANCH_NAMES]
                if named:
                    found.append(f"{path.name}:{node.lineno} compares with {named}")
            if isinstance(node, ast.Dict) and len(node.keys) > 1 and all(
                    isinstance(k, ast.Constant) and k.value in BRANCH_NAMES for k in node.keys):
                found.append(f"{path.name}:{node.lineno} a dict keyed by branch names")
    return found


def test_no_module_asks_which_branch_a_model_is_outside_the_table():
    assert not _violations(_sources())


def test_the_check_above_catches_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(row, name):\n    if row.branch == 'topdown' or name in ('bottomup', 'x'):\n"
                   "        return {'bottomup': 1, 'topdown': 2}\n    return {'topdown': {'input_hw': [1, 2]}, 'model': 3}\n")
    assert len(_violations([bad])) == 3


# ------------------------------------------------------------------ a third branch: one module, one row
@dataclass(frozen=True)
class BrightestCodec(Codec):
    """Each keypoint at its map's brightest cell (one person per image); stride 4."""

    skeleton: Skeleton

    @property
    def stride(self) -> int:
        return 4

    def channels(self) -> dict[str, int]:
        return {"heatmaps": self.skeleton.num_keypoints}

    def encode(self, keypoints, input_hw=None, ignore_mask=None):
        raise NotImplementedError("the fake branch does not train")

    def decode(self, outputs) -> Poses:
        maps = outputs["heatmaps"]  # (K, h, w)
        cells = maps.reshape(len(maps), -1).argmax(1)
        ys, xs = np.unravel_index(cells, maps.shape[1:])
        centre = (self.stride - 1) / 2  # cell j is centred on input pixel j * stride + (stride - 1) / 2
        keypoints = np.stack([xs * self.stride + centre, ys * self.stride + centre, np.ones(len(xs))], 1)
        return Poses(keypoints[None].astype(np.float32), np.ones(1, np.float32), self.skeleton)

    def flip_outputs(self, outputs):
        raise NotImplementedError


def brightest_codec(cfg, skeleton):
    return BrightestCodec(skeleton.annotation_layout())


class BrightnessNet(nn.Module):
    """Every keypoint's map is the image's brightness pooled by 4: a network of the fake branch."""

    stride = 4

    def __init__(self, skeleton: Skeleton) -> None:
        super().__init__()
        self.skeleton = skeleton

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        pooled = nn.functional.avg_pool2d(images.mean(1, keepdim=True), 4)
        return [{"heatmaps": pooled.repeat(1, self.skeleton.num_keypoints, 1, 1)}]


class BrightestPredictor(Predictor):
    def __init__(self, model, codec, options: PredictorOptions) -> None:
        codec.check_model(model)
        self.codec = codec
        self.runner = make_runner(model, self.output_names, options.device, options.precision, backend=options.backend)

    @classmethod
    def from_config(cls, model, codec, cfg, options):
        return cls(model, codec, options)

    def __call__(self, image_bgr: np.ndarray) -> Poses:
        x = torch.from_numpy(image_bgr.astype(np.float32).transpose(2, 0, 1)[None] / 255)
        maps = self.runner(self.runner.to_device(x))
        return self.codec.decode({name: m[0] for name, m in maps.items()})


def ground_truth_oracle(ann_file, codec, progress=False):
    """The annotations themselves as results: what a perfect codec gives."""
    coco = load_coco(ann_file, codec.skeleton)
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
            for a in coco.dataset["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)]


@pytest.fixture
def brightest(monkeypatch):
    """The fake branch's row in the table, and an architecture row of its network."""
    here = __name__
    row = Branch(name="brightest", title="brightest-cell", person_skeleton=branch("topdown").person_skeleton,
                 layout=Skeleton.annotation_layout, codec=f"{here}:brightest_codec", predictor=f"{here}:BrightestPredictor",
                 needs_boxes=False, options=(), datasets="", loss="", ap="", sample_kind="images",
                 oracle=f"{here}:ground_truth_oracle")
    monkeypatch.setattr(branches, "BRANCHES", (*BRANCHES, row))
    monkeypatch.setitem(branches._BY_NAME, row.name, row)
    net = Architecture(name="brightness", branch=row.name, title="a brightness map", build=f"{here}:BrightnessNet",
                       settings=NetworkSettings, input_norm="cmu")
    monkeypatch.setitem(architectures._BY_NAME, net.name, net)
    return row, net


def test_a_third_branch_is_one_module_and_one_row(brightest, tmp_path):
    row, net = brightest
    model = BrightnessNet(row.person_skeleton)
    predictor = build_predictor(LoadedWeights(model, net, None, Config()), PredictorOptions(device="cpu"))
    assert isinstance(predictor, BrightestPredictor) and predictor.output_names == ("heatmaps",)
    image = np.zeros((48, 64, 3), np.uint8)
    image[24:28, 40:44] = 255  # the one bright cell: (10, 6), centred on pixel (41.5, 25.5)
    poses = predictor(image)
    np.testing.assert_allclose(poses.keypoints[0, :, :2], np.tile([41.5, 25.5], (17, 1)))
    scenes = write_dataset(tmp_path / "scenes", num_images=2, seed=3)
    metrics, results = run_oracle("brightest", scenes)
    assert results and metrics["AP"] == pytest.approx(1.0)
