"""Export: ONNX (checked with onnxruntime) and TorchScript reproduce the last stage of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import import_optional

from openpose_lite.models.export import export_onnx, export_torchscript
from openpose_lite.models.vgg19_paf import VGG19PafNet, build_vgg19_paf


def small_model() -> VGG19PafNet:
    torch.manual_seed(0)
    model = build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125)
    with torch.no_grad():  # move away from the near-zero initial outputs so the comparison means something
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def last_stage(model: VGG19PafNet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model(images)[-1]


def test_onnx_matches_pytorch_at_other_sizes_and_batch(tmp_path):
    ort = import_optional("onnxruntime")
    model = small_model()
    path = export_onnx(model, tmp_path / "net.onnx", input_hw=(64, 64))
    assert path == tmp_path / "net.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["pafs", "heatmaps"]
    # A size and batch other than the export example: the axes are dynamic.
    images = torch.randn(2, 3, 48, 80, generator=torch.Generator().manual_seed(1))
    pafs, heatmaps = session.run(None, {"images": images.numpy()})
    expected = last_stage(model, images)
    assert pafs.shape == (2, model.skeleton.num_pafs, 6, 10)
    assert expected["pafs"].abs().mean() > 1e-2
    np.testing.assert_allclose(pafs, expected["pafs"].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(heatmaps, expected["heatmaps"].numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_reload_equals_pytorch(tmp_path):
    model = small_model()
    path = export_torchscript(model, tmp_path / "net.pt", input_hw=(64, 64))
    loaded = torch.jit.load(str(path))
    images = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        pafs, heatmaps = loaded(images)
    expected = last_stage(model, images)
    torch.testing.assert_close(pafs, expected["pafs"])
    torch.testing.assert_close(heatmaps, expected["heatmaps"])


def test_export_replaces_atomically_and_restores_train_mode(tmp_path):
    model = small_model().train()
    target = tmp_path / "out" / "net.pt"
    target.parent.mkdir()
    target.write_bytes(b"old contents")
    export_torchscript(model, target, input_hw=(32, 32))
    assert model.training
    assert target.read_bytes() != b"old contents"
    assert sorted(p.name for p in target.parent.iterdir()) == ["net.pt"]  # no temporary file left


def test_failed_export_leaves_no_partial_file(tmp_path):
    class NotAPoseModel(torch.nn.Module):
        def forward(self, images):
            return images.mean()

    with pytest.raises(ValueError, match="dict of tensors"):
        export_onnx(NotAPoseModel(), tmp_path / "bad.onnx", input_hw=(16, 16))
    assert list(tmp_path.iterdir()) == []


def test_bad_input_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="input_hw"):
        export_torchscript(small_model(), tmp_path / "x.pt", input_hw=(0, 32))


def test_an_input_smaller_than_the_stride_and_an_unknown_opset_are_refused_before_writing(tmp_path):
    from openpose_lite.models.export import onnx_opsets

    with pytest.raises(ValueError, match=r"integers >= 8 \(the model's stride\), got \(4, 64\)"):
        export_torchscript(small_model(), tmp_path / "x.pt", input_hw=(4, 64))
    low, high = onnx_opsets()
    assert 7 <= low <= 17 <= high
    with pytest.raises(ValueError, match=f"opset 99: .* writes opsets {low} to {high}"):
        export_onnx(small_model(), tmp_path / "x.onnx", input_hw=(32, 32), opset=99)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load's deprecation notice
def test_exports_carry_the_config_and_the_networks_skeleton(tmp_path):
    import json

    from openpose_lite.config import Config, config_to_dict
    from openpose_lite.skeleton import Skeleton

    model, config = small_model(), config_to_dict(Config())
    extra = {"openpose_lite.json": ""}
    torch.jit.load(str(export_torchscript(model, tmp_path / "net.pt", (64, 64), config=config)), _extra_files=extra)
    stored = json.loads(extra["openpose_lite.json"])
    assert stored["config"] == config and Skeleton.from_dict(stored["skeleton"]) == model.skeleton
    onnx = import_optional("onnx")
    proto = onnx.load(str(export_onnx(model, tmp_path / "net.onnx", (64, 64), config=config)))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["openpose_lite"]) == stored
