"""Caffe's weight files (``.caffemodel``): read and written through the ``protobuf`` library.

A ``.caffemodel`` is one protobuf ``NetParameter`` message. Only the part of BVLC Caffe's
``src/caffe/proto/caffe.proto`` that holds weights is declared here, as a descriptor built in
code (no ``protoc``, no generated module); every other field of a file (layer parameters, learning
rates, phases) is skipped by the parser as an unknown field. The field numbers:

* ``NetParameter``: ``name`` = 1, ``layer`` = 100 (``LayerParameter``), and the older files'
  ``layers`` = 2 (``V1LayerParameter``);
* ``LayerParameter``: ``name`` = 1, ``type`` = 2 (a string such as ``"Convolution"``), ``blobs`` = 7;
* ``V1LayerParameter``: ``name`` = 4, ``type`` = 5 (an enum: CONVOLUTION = 4, ...), ``blobs`` = 6;
* ``BlobProto``: ``shape`` = 7 (``BlobShape``: packed int64 ``dim`` = 1), packed float ``data`` = 5,
  packed double ``double_data`` = 8, and the legacy 4-D size ``num`` = 1, ``channels`` = 2,
  ``height`` = 3, ``width`` = 4.

A file reads as a list of :class:`CaffeLayer` (name, type, blobs as float32 arrays), and
:func:`caffe_state_dict` turns the layers with weights into a state dict keyed by the Caffe
layer names (``conv1_1.weight``, ``conv1_1.bias``, ``prelu4_2.weight``), which the weight layouts
of the architecture table recognise and convert like any other foreign file. :func:`write_caffemodel`
writes layers back through the same messages (tests, and files for other tools).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openpose_lite.io import atomic_write, open_regular

__all__ = ["CAFFEMODEL_SUFFIX", "CaffeLayer", "caffe_state_dict", "is_caffemodel_path", "read_caffemodel",
           "state_dict_layers", "write_caffemodel"]

logger = logging.getLogger(__name__)

CAFFEMODEL_SUFFIX = ".caffemodel"
# V1LayerParameter.LayerType values of the layers that carry weights (caffe.proto), as the type
# strings of the current LayerParameter.
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}
# The first bytes of a NetParameter as Caffe writes it: field 1 (name), 2 (V1 layers) or 100
# (layer), each length-delimited (wire type 2): tags 0x0A, 0x12 and the varint 0xA2 0x06.
_FIRST_TAGS = (b"\x0a", b"\x12", b"\xa2\x06")


@dataclass(frozen=True)
class CaffeLayer:
    """One layer of a Caffe net: its name, its type (``"Convolution"``, ``"PReLU"``) and its blobs
    (float32 arrays in Caffe's shapes: a convolution's (O, I, kh, kw) weights and (O,) bias)."""

    name: str
    type: str
    blobs: tuple[np.ndarray, ...]


@functools.cache
def _messages() -> dict[str, Any]:
    """The message classes of the caffe.proto subset above, built from a descriptor made in code."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        raise ImportError("reading a .caffemodel needs the protobuf package: pip install 'openpose-lite[caffe]'") \
            from None

    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    packed = descriptor_pb2.FieldOptions(packed=True)
    proto = descriptor_pb2.FileDescriptorProto(name="openpose_lite_caffe_weights.proto", package="caffe",
                                               syntax="proto2")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".caffe.{type_name}"
            if label == repeated and ftype in (field.TYPE_FLOAT, field.TYPE_DOUBLE, field.TYPE_INT64):
                f.options.CopyFrom(packed)

    message("BlobShape", ("dim", 1, field.TYPE_INT64, repeated, ""))
    message("BlobProto",
            ("num", 1, field.TYPE_INT64, optional, ""), ("channels", 2, field.TYPE_INT64, optional, ""),
            ("height", 3, field.TYPE_INT64, optional, ""), ("width", 4, field.TYPE_INT64, optional, ""),
            ("data", 5, field.TYPE_FLOAT, repeated, ""), ("shape", 7, field.TYPE_MESSAGE, optional, "BlobShape"),
            ("double_data", 8, field.TYPE_DOUBLE, repeated, ""))
    message("LayerParameter",
            ("name", 1, field.TYPE_STRING, optional, ""), ("type", 2, field.TYPE_STRING, optional, ""),
            ("blobs", 7, field.TYPE_MESSAGE, repeated, "BlobProto"))
    # V1's type is an enum on the wire (a varint); read as an integer, so unknown values stay readable.
    message("V1LayerParameter",
            ("name", 4, field.TYPE_STRING, optional, ""), ("type", 5, field.TYPE_INT32, optional, ""),
            ("blobs", 6, field.TYPE_MESSAGE, repeated, "BlobProto"))
    message("NetParameter",
            ("name", 1, field.TYPE_STRING, optional, ""),
            ("layers", 2, field.TYPE_MESSAGE, repeated, "V1LayerParameter"),
            ("layer", 100, field.TYPE_MESSAGE, repeated, "LayerParameter"))
    pool = descriptor_pool.DescriptorPool()  # a private pool: never clashes with another "caffe" package
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
            for name in ("BlobProto", "NetParameter")}


def is_caffemodel_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Caffe weight file: its suffix is ``.caffemodel``, or it is a regular file
    whose first bytes are a ``NetParameter``'s first field (a renamed file; PyTorch's files start
    with a zip or pickle header)."""
    p = Path(path)
    if p.suffix.lower() == CAFFEMODEL_SUFFIX:
        return True
    try:
        with open_regular(p, "weights file") as fh:
            head = fh.read(2)
    except (OSError, ValueError):
        return False
    return any(head.startswith(tag) for tag in _FIRST_TAGS)


def _blob_array(blob: Any, where: str) -> np.ndarray:
    """One BlobProto as a float32 array of its shape (``shape.dim``, else the legacy num x channels x height x width)."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(v) for v in (blob.num, blob.channels, blob.height, blob.width))
    values = np.asarray(blob.data if len(blob.data) or not len(blob.double_data) else blob.double_data,
                        dtype=np.float32)
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) != values.size:
        raise ValueError(f"{where}: {values.size} values for the blob shape {list(shape)}")
    return values.reshape(shape)


def read_caffemodel(path: str | os.PathLike[str]) -> tuple[str, list[CaffeLayer]]:
    """(the net's name, its layers in file order) of a ``.caffemodel``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file: not a protobuf NetParameter (another kind of file, a
            truncated one), a blob whose values do not fill its shape, or no layer with weights.
    """
    from google.protobuf.message import DecodeError

    p = Path(path)
    with open_regular(p, "weights file") as fh:
        raw = fh.read()
    net = _messages()["NetParameter"]()
    try:
        net.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:  # upb raises DecodeError; a bad UTF-8 name, ValueError
        raise ValueError(f"{p}: not a Caffe model (a .caffemodel is a protobuf NetParameter), or a truncated one "
                         f"({str(exc).strip() or type(exc).__name__})") from None
    typed = [(layer, layer.type) for layer in net.layer]
    typed += [(layer, _V1_TYPES.get(int(layer.type), f"V1 layer type {int(layer.type)}")) for layer in net.layers]
    layers = [CaffeLayer(layer.name, kind, tuple(_blob_array(b, f"{p}: layer {layer.name!r} blob {i}")
                                                 for i, b in enumerate(layer.blobs))) for layer, kind in typed]
    if not any(layer.blobs for layer in layers):
        raise ValueError(f"{p}: not a Caffe model with weights (no layer of a protobuf NetParameter holds a blob; "
                         f"{len(raw)} bytes read), or a truncated one")
    logger.debug("%s: Caffe net %r, %d layers", p, net.name, len(layers))
    return net.name, layers


# What a layer's blobs are called in a state dict: a convolution's (weights, bias), PReLU's slopes.
_BLOB_NAMES = ("weight", "bias")


def caffe_state_dict(layers: Sequence[CaffeLayer], source: str) -> dict[str, Any]:
    """``{"<layer>.weight": tensor, "<layer>.bias": tensor}`` of the layers with blobs (torch tensors,
    float32; a bias or PReLU slope flattened to 1-D, as Caffe's legacy files store them as 1 x 1 x 1 x C).

    Raises ValueError naming ``source`` for a layer name given twice or a layer with more than two blobs.
    """
    import torch

    state: dict[str, Any] = {}
    for layer in layers:
        if not layer.blobs:
            continue
        if len(layer.blobs) > len(_BLOB_NAMES):
            raise ValueError(f"{source}: layer {layer.name!r} ({layer.type}) has {len(layer.blobs)} blobs; the "
                             "layers read here have weights and an optional bias")
        if f"{layer.name}.weight" in state:
            raise ValueError(f"{source}: two layers are named {layer.name!r}")
        for blob_name, blob in zip(_BLOB_NAMES, layer.blobs):
            array = blob if (blob_name == "weight" and layer.type != "PReLU") else blob.reshape(-1)
            state[f"{layer.name}.{blob_name}"] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return state


def state_dict_layers(state: Mapping[str, Any], names: Mapping[str, tuple[str, str]]) -> list[CaffeLayer]:
    """The Caffe layers of a state dict: ``names`` maps a module prefix of ours (``trunk.conv1_1``) to
    (Caffe layer name, Caffe type); each layer takes the module's ``weight`` and, where it has one,
    ``bias``, in ``names``' order."""
    layers = []
    for ours, (name, kind) in names.items():
        blobs = [state[f"{ours}.{b}"] for b in _BLOB_NAMES if f"{ours}.{b}" in state]
        layers.append(CaffeLayer(name, kind, tuple(np.asarray(b.detach().cpu().float().numpy()) for b in blobs)))
    return layers


def write_caffemodel(path: str | os.PathLike[str], layers: Sequence[CaffeLayer], name: str = "",
                     legacy: bool = False) -> Path:
    """Write layers as a ``.caffemodel`` (atomically): the ``layer`` field with ``BlobShape`` shapes, or
    with ``legacy=True`` the V1 ``layers`` field with 4-D num/channels/height/width sizes (as Caffe's
    files before 2015 store them; a convolution only)."""
    net = _messages()["NetParameter"](name=name)
    v1_codes = {kind: code for code, kind in _V1_TYPES.items()}
    for layer in layers:
        if legacy:
            if layer.type not in v1_codes:
                raise ValueError(f"layer {layer.name!r}: a V1 file has no {layer.type} layers")
            msg = net.layers.add(name=layer.name, type=v1_codes[layer.type])
        else:
            msg = net.layer.add(name=layer.name, type=layer.type)
        for blob in layer.blobs:
            out = msg.blobs.add()
            array = np.asarray(blob, dtype=np.float32)
            if legacy:
                num, channels, height, width = (1,) * (4 - array.ndim) + array.shape
                out.num, out.channels, out.height, out.width = num, channels, height, width
            else:
                out.shape.dim.extend(int(d) for d in array.shape)
            out.data.extend(array.reshape(-1).tolist())
    data = net.SerializeToString()
    return atomic_write(path, lambda fh: fh.write(data), binary=True)
