"""``openpose-lite export``: the network to ONNX or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

from openpose_lite.cli.errors import EXIT_OK, CliError
from openpose_lite.cli.models_args import _add_weights_args, _load_error, _weights_path


# -------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export the network to ONNX or TorchScript (decoding stays in Python)",
        description="Writes the network alone: input 'images' (B, 3, H, W), BGR / 256 - 0.5; outputs the last "
        "stage's maps (pafs, heatmaps) at 1/8 of the input size. Pre- and post-processing stay in openpose_lite.",
    )
    _add_weights_args(p)
    p.add_argument("--format", choices=("onnx", "torchscript"), required=True)
    p.add_argument("--output", "-o", type=Path, help="output file (default: <weights stem>.onnx or <weights stem>.torchscript.pt)")
    p.add_argument("--input-hw", type=int, nargs=2, default=(368, 368), metavar=("H", "W"),
                   help="example input size for tracing; ONNX keeps batch, height and width dynamic")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")


def _run_export(args: argparse.Namespace) -> int:
    from openpose_lite.models import export_onnx, export_torchscript
    from openpose_lite.models.weights import load_model_with_config

    path = _weights_path(args)
    try:
        model, config = load_model_with_config(path)
    except ValueError as exc:
        raise _load_error(path, exc) from None
    if args.checkpoint is not None and config is None:
        raise CliError(f"{path}: not an openpose_lite checkpoint (no config inside); use --weights for other layouts")
    suffix = ".onnx" if args.format == "onnx" else ".torchscript.pt"
    output = args.output or Path(path.stem + suffix)
    input_hw = (int(args.input_hw[0]), int(args.input_hw[1]))
    if args.format == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnx") is None:  # torch.onnx.export needs it
            raise CliError("ONNX export needs the onnx package: pip install 'openpose-lite[onnx]'")
        written = export_onnx(model, output, input_hw=input_hw, opset=args.opset)
    else:
        written = export_torchscript(model, output, input_hw=input_hw)
    print(f"wrote {args.format} network to {written}")
    return EXIT_OK
