"""CMU OpenPose's five Caffe networks: each written as a .caffemodel from the project's own layer list, read
back into the network with the same weights, and run against a reference forward written here from CMU's
deploy prototxts (CMU-Perceptual-Computing-Lab/openpose: models/pose/body_25/pose_deploy.prototxt,
models/pose/coco/pose_deploy_linevec.prototxt, models/pose/mpi/pose_deploy_linevec.prototxt,
models/hand/pose_deploy.prototxt, models/face/pose_deploy.prototxt).

The reference (tests/caffe_reference.py) is Caffe's layer arithmetic in functional torch, addressing the
weights by Caffe layer name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from caffe_reference import CaffeNet, reference_body25, reference_cpm, reference_two_branch, seeded_weights
from torch import nn

from openpose_lite.cmu_skeletons import BODY_25, MPI_15
from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel
from openpose_lite.models.cmu_caffe import Body25Net, CpmNet, build_body25, build_cpm, two_branch_caffe_layer_names
from openpose_lite.models.cmu_caffe_weights import body_network, load_part_model, read_caffe_state
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.skeleton import OPENPOSE_18


def caffe_layer_names(model: nn.Module) -> dict[str, tuple[str, str]]:
    """The project's layer list of a network: its own, or the two-branch network's table."""
    if hasattr(model, "caffe_layer_names"):
        return model.caffe_layer_names()
    return two_branch_caffe_layer_names(model.num_stages)


def write_model(model: nn.Module, path) -> None:
    write_caffemodel(path, state_dict_layers(model.state_dict(), caffe_layer_names(model)), name="test net")


def assert_same_weights(loaded: nn.Module, original: nn.Module) -> None:
    ours, theirs = loaded.state_dict(), original.state_dict()
    assert set(ours) == set(theirs)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    assert float(ref.abs().max()) > 0.1  # the check compares maps of substance, not of near-zeros
    assert float((ours - ref).abs().max()) <= 1e-4


# -------------------------------------------------------------------------------------------- tests
# BODY_25 round-trips at CMU's size; the four others at a quarter of the widths (the files are read at any
# width, told apart by names and output channels), and their full-size layers are checked against the
# prototxts' num_output and kernel_size below.
def test_body25_caffemodel_loads_and_runs_as_the_prototxt_says(tmp_path):
    original = seeded_weights(build_body25(BODY_25), 25)
    path = tmp_path / "pose_iter_584000.caffemodel"
    write_model(original, path)
    state = read_caffe_state(path)
    kind, model, ours = body_network(state, str(path))
    assert kind == "body25" and isinstance(model, Body25Net)
    model.load_state_dict(ours)
    assert_same_weights(model, original)
    x = torch.randn(1, 3, 44, 52, generator=torch.Generator().manual_seed(0))  # not multiples of 8: ceil pooling
    with torch.no_grad():
        last = model.eval()(x)[-1]
        paf, heat = reference_body25(CaffeNet(state), x)
    assert paf.shape[1:] == (52, 6, 7) and heat.shape[1:] == (26, 6, 7)
    assert_close(last["pafs"], paf)
    assert_close(last["heatmaps"], heat)


@pytest.mark.parametrize("kind, skeleton", [("coco", OPENPOSE_18), ("mpi", MPI_15)])
def test_coco_and_mpi_caffemodels_load_into_the_two_branch_network(tmp_path, kind, skeleton):
    original = seeded_weights(build_vgg19_paf(skeleton=skeleton, width_mult=0.25, stage_channels=32),
                              18 if kind == "coco" else 15)
    path = tmp_path / f"{kind}.caffemodel"
    write_model(original, path)
    state = read_caffe_state(path)
    found, model, ours = body_network(state, str(path))
    assert found == kind and model.skeleton == skeleton
    model.load_state_dict(ours)
    assert_same_weights(model, original)
    # The two-branch network floors its pools; at multiples of 8 (the predictors' inputs) that is Caffe's size.
    x = torch.randn(1, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        last = model.eval()(x)[-1]
        paf, heat = reference_two_branch(CaffeNet(state), x, 6)
    assert_close(last["pafs"], paf)
    assert_close(last["heatmaps"], heat)


@pytest.mark.parametrize("kind, keypoints", [("hand", 21), ("face", 70)])
def test_hand_and_face_caffemodels_load_and_run_as_the_prototxt_says(tmp_path, kind, keypoints):
    original = seeded_weights(build_cpm(keypoints, width_scale=0.25), keypoints)
    path = tmp_path / f"{kind}.caffemodel"
    write_model(original, path)
    found, model = load_part_model(path)
    assert found == kind and isinstance(model, CpmNet) and model.keypoints == keypoints
    assert_same_weights(model, original)
    x = torch.randn(2, 3, 36, 44, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(x)[-1]["heatmaps"]
        ref = reference_cpm(CaffeNet(read_caffe_state(path)), x)
    assert ref.shape == (2, keypoints + 1, 5, 6)
    assert_close(ours, ref)


def test_hzzone_hand_pose_model_pth_loads(tmp_path):
    """Hzzone/pytorch-openpose src/model.py handpose_model keeps the Caffe names inside blocks model1_0,
    model1_1, model2 ... model6; its hand_pose_model.pth holds them without the block (src/util.py transfer
    strips it). Both forms load, with the same tensors as the Caffe file."""
    original = seeded_weights(build_cpm(21, width_scale=0.25), 3)
    caffe = {f"{cmu}.{p}": t for ours, (cmu, _) in caffe_layer_names(original).items()
             for p, t in (("weight", original.state_dict()[f"{ours}.weight"]),
                          ("bias", original.state_dict()[f"{ours}.bias"]))}
    plain, blocked = tmp_path / "hand_pose_model.pth", tmp_path / "hand_blocks.pth"
    torch.save(caffe, plain)

    def block(name: str) -> str:
        if name.startswith("Mconv"):
            return f"model{name.split('stage')[1]}"
        return "model1_1" if name.startswith("conv6") else "model1_0"

    torch.save({f"{block(k.split('.')[0])}.{k}": v for k, v in caffe.items()}, blocked)
    for path in (plain, blocked):
        kind, model = load_part_model(path)
        assert kind == "hand"
        assert_same_weights(model, original)


def test_a_body_file_given_as_a_hand_network_is_refused_naming_it(tmp_path):
    path = tmp_path / "body.pth"
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 3, 3), "conv1_1.bias": torch.zeros(64)}, path)
    with pytest.raises(ValueError, match=r"body\.pth: expected CMU's hand or face network") as err:
        load_part_model(path)
    assert "\n" not in str(err.value)


def test_layer_names_cover_every_weight_once():
    for model in (build_body25(BODY_25, width_scale=0.125), build_cpm(21, width_scale=0.125),
                  build_vgg19_paf(skeleton=MPI_15, width_mult=0.125)):
        names = caffe_layer_names(model)
        params = {k.rsplit(".", 1)[0] for k in model.state_dict()}
        assert set(names) == params
        assert len({cmu for cmu, _ in names.values()}) == len(names)
    assert np.unique([n for n, _ in caffe_layer_names(build_body25(BODY_25, width_scale=0.125)).values()]).size == 213


def prototxt_shapes(kind: str) -> dict[str, tuple[int, int, int]]:
    """Caffe layer name -> (num_output, input channels, kernel_size) of every convolution, from the prototxts."""
    shapes: dict[str, tuple[int, int, int]] = {}
    c = 3
    trunk = [("conv1_1", 64), ("conv1_2", 64), ("conv2_1", 128), ("conv2_2", 128), ("conv3_1", 256), ("conv3_2", 256),
             ("conv3_3", 256), ("conv3_4", 256), ("conv4_1", 512), ("conv4_2", 512)]
    if kind in ("hand", "face"):
        trunk += [("conv4_3", 512), ("conv4_4", 512), ("conv5_1", 512), ("conv5_2", 512), ("conv5_3_CPM", 128)]
    else:
        trunk += [("conv4_3_CPM", 256), ("conv4_4_CPM", 128)]
    for name, out in trunk:
        shapes[name], c = (out, c, 3), out
    f = c
    if kind in ("coco", "mpi"):
        paf, heat = (38, 19) if kind == "coco" else (28, 16)
        for b, out in ((1, paf), (2, heat)):
            shapes.update({f"conv5_{i}_CPM_L{b}": (128, f if i == 1 else 128, 3) for i in (1, 2, 3)})
            shapes[f"conv5_4_CPM_L{b}"], shapes[f"conv5_5_CPM_L{b}"] = (512, 128, 1), (out, 512, 1)
            for t in range(2, 7):
                shapes.update({f"Mconv{i}_stage{t}_L{b}": (128, f + paf + heat if i == 1 else 128, 7) for i in range(1, 6)})
                shapes[f"Mconv6_stage{t}_L{b}"], shapes[f"Mconv7_stage{t}_L{b}"] = (128, 128, 1), (out, 128, 1)
    elif kind == "body25":
        for b, out, inputs in (("L2", 52, [f, f + 52, f + 52, f + 52]), ("L1", 26, [f + 52, f + 26 + 52])):
            for t, c_in in enumerate(inputs):
                w, hidden = (96, 256) if t == 0 else (128, 512)
                for i in range(1, 6):
                    for j in range(3):
                        shapes[f"Mconv{i}_stage{t}_{b}_{j}"] = (w, c_in if (i, j) == (1, 0) else (w if j else 3 * w), 3)
                shapes[f"Mconv6_stage{t}_{b}"], shapes[f"Mconv7_stage{t}_{b}"] = (hidden, 3 * w, 1), (out, hidden, 1)
    else:
        out = 22 if kind == "hand" else 71
        shapes["conv6_1_CPM"], shapes["conv6_2_CPM"] = (512, f, 1), (out, 512, 1)
        for t in range(2, 7):
            shapes.update({f"Mconv{i}_stage{t}": (128, f + out if i == 1 else 128, 7) for i in range(1, 6)})
            shapes[f"Mconv6_stage{t}"], shapes[f"Mconv7_stage{t}"] = (128, 128, 1), (out, 128, 1)
    return shapes


@pytest.mark.parametrize("kind", ["body25", "coco", "mpi", "hand", "face"])
def test_full_size_networks_have_the_prototxt_layers(kind):
    model = {"body25": lambda: build_body25(BODY_25), "coco": lambda: build_vgg19_paf(skeleton=OPENPOSE_18),
             "mpi": lambda: build_vgg19_paf(skeleton=MPI_15), "hand": lambda: build_cpm(21),
             "face": lambda: build_cpm(70)}[kind]()
    state = model.state_dict()
    ours = {cmu: tuple(state[f"{path}.weight"].shape) for path, (cmu, t) in caffe_layer_names(model).items()
            if t == "Convolution"}
    expected = {name: (o, i, k, k) for name, (o, i, k) in prototxt_shapes(kind).items()}
    assert ours == expected
