"""The .caffemodel reader and writer against BVLC Caffe's file format.

Field numbers from BVLC/caffe src/caffe/proto/caffe.proto: NetParameter { name = 1; layers = 2
(V1LayerParameter); layer = 100 (LayerParameter) }, LayerParameter { name = 1; type = 2; blobs = 7 },
V1LayerParameter { name = 4; type = 5 (enum LayerType, CONVOLUTION = 4); blobs = 6 }, BlobProto { num = 1;
channels = 2; height = 3; width = 4; data = 5 [packed]; shape = 7 }, BlobShape { dim = 1 [packed] }. The
bytes below are encoded here from those numbers (protobuf's wire format: varint tags ``field << 3 | type``),
independently of the project's message declarations.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from openpose_lite.models.caffemodel import (
    CaffeLayer,
    caffe_state_dict,
    is_caffemodel_path,
    read_caffemodel,
    write_caffemodel,
)
from openpose_lite.models.cmu_caffe_weights import body_network, read_caffe_state


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def number(number_: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(number_ << 3) + varint(value)


def floats(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


WEIGHTS = np.arange(2 * 3 * 1 * 1, dtype=np.float32).reshape(2, 3, 1, 1) / 4
BIAS = np.array([0.5, -1.5], np.float32)


def test_reads_a_layer_field_file_encoded_from_caffe_proto(tmp_path):
    shape = field(7, field(1, b"".join(varint(d) for d in WEIGHTS.shape)))  # BlobShape.dim packed
    blob_w = shape + field(5, floats(WEIGHTS.ravel()))
    blob_b = field(7, field(1, varint(2))) + field(5, floats(BIAS))
    layer = field(1, b"conv1_1") + field(2, b"Convolution") + field(7, blob_w) + field(7, blob_b)
    relu = field(1, b"relu1_1") + field(2, b"ReLU")
    path = tmp_path / "net.caffemodel"
    path.write_bytes(field(1, b"a net") + field(100, layer) + field(100, relu))
    name, layers = read_caffemodel(path)
    assert name == "a net" and [(l.name, l.type, len(l.blobs)) for l in layers] == [
        ("conv1_1", "Convolution", 2), ("relu1_1", "ReLU", 0)]
    np.testing.assert_array_equal(layers[0].blobs[0], WEIGHTS)
    state = caffe_state_dict(layers, str(path))
    assert torch.equal(state["conv1_1.bias"], torch.from_numpy(BIAS)) and set(state) == {"conv1_1.weight", "conv1_1.bias"}


def test_reads_a_v1_layers_file_with_legacy_4d_sizes(tmp_path):
    blob_w = b"".join(number(f, v) for f, v in zip((1, 2, 3, 4), WEIGHTS.shape)) + field(5, floats(WEIGHTS.ravel()))
    blob_b = b"".join(number(f, v) for f, v in zip((1, 2, 3, 4), (1, 1, 1, 2))) + field(5, floats(BIAS))
    layer = field(4, b"conv1_1") + number(5, 4) + field(6, blob_w) + field(6, blob_b)
    path = tmp_path / "old.caffemodel"
    path.write_bytes(field(2, layer))
    _, layers = read_caffemodel(path)
    assert layers[0].type == "Convolution" and layers[0].blobs[1].shape == (1, 1, 1, 2)
    state = caffe_state_dict(layers, str(path))
    assert state["conv1_1.weight"].shape == (2, 3, 1, 1) and torch.equal(state["conv1_1.bias"], torch.from_numpy(BIAS))


@pytest.mark.parametrize("legacy", [False, True])
def test_written_files_read_back(tmp_path, legacy):
    rng = np.random.default_rng(0)
    layers = [CaffeLayer("conv", "Convolution", (rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                                                 rng.normal(size=4).astype(np.float32)))]
    if not legacy:
        layers.append(CaffeLayer("prelu", "PReLU", (rng.uniform(size=4).astype(np.float32),)))
    path = write_caffemodel(tmp_path / "x.caffemodel", layers, "n", legacy=legacy)
    _, back = read_caffemodel(path)
    for a, b in zip(layers, back):
        assert (a.name, a.type) == (b.name, b.type)
        for x, y in zip(a.blobs, b.blobs):
            np.testing.assert_array_equal(x.reshape(-1), y.reshape(-1))


def test_sniffs_a_renamed_caffemodel_but_not_a_torch_file(tmp_path):
    renamed = write_caffemodel(tmp_path / "weights.bin", [CaffeLayer("c", "Convolution", (np.ones((1, 1, 1, 1), np.float32),))])
    torch.save({"a": torch.zeros(1)}, tmp_path / "w.pth")
    assert is_caffemodel_path(renamed) and is_caffemodel_path(tmp_path / "missing.caffemodel")
    assert not is_caffemodel_path(tmp_path / "w.pth")


@pytest.mark.parametrize("content", ["truncated", "jpeg", "text", "empty"])
def test_a_truncated_or_foreign_file_is_refused_in_one_line_naming_it(tmp_path, content):
    good = write_caffemodel(tmp_path / "good.caffemodel",
                            [CaffeLayer("conv1_1", "Convolution", (np.ones((8, 3, 3, 3), np.float32), np.ones(8, np.float32)))])
    raw = {"truncated": good.read_bytes()[: len(good.read_bytes()) // 2], "jpeg": b"\xff\xd8\xff\xe0" + bytes(200),
           "text": b"layer {\n  name: 'conv1_1'\n}\n", "empty": b""}[content]
    path = tmp_path / f"{content}.caffemodel"
    path.write_bytes(raw)
    with pytest.raises(ValueError) as err:
        read_caffemodel(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a Caffe model") and "\n" not in message


def test_a_caffe_net_that_is_no_cmu_network_is_refused_naming_what_it_holds(tmp_path):
    path = write_caffemodel(tmp_path / "alexnet.caffemodel",
                            [CaffeLayer("conv1", "Convolution", (np.ones((96, 3, 11, 11), np.float32),
                                                                  np.ones(96, np.float32)))])
    with pytest.raises(ValueError, match=r"alexnet\.caffemodel: a Caffe net of 1 layers with weights "
                                         r"\(e\.g\. conv1 \[96, 3, 11, 11\]\) that is none of CMU's") as err:
        body_network(read_caffe_state(path), str(path))
    assert "pose_iter_584000" in str(err.value) and "\n" not in str(err.value)
