"""``openpose-lite export``: the network to ONNX, TorchScript or an OpenVINO IR (fp32 or int8)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from openpose_lite.cli.errors import EXIT_OK, CliError
from openpose_lite.cli.models_args import (
    add_input_bound_args,
    add_weights_args,
    input_bound,
    load_weights,
    weights_path,
)
from openpose_lite.io import check_destination

_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "openvino": ".xml"}


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export the network to ONNX, TorchScript or OpenVINO (decoding stays in Python)",
        description="Writes the network alone: input 'images' (B, 3, H, W) in the model's input normalisation "
        "(model.input_norm: bottom-up BGR / 256 - 0.5; top-down ImageNet mean and std, RGB or, for the SimpleBaseline "
        "reference's files, BGR); outputs the last stage's maps (bottom-up: pafs, heatmaps at 1/8 of the input size; "
        "top-down: heatmaps at 1/4). Pre- and post-processing stay in openpose_lite. An OpenVINO IR (.xml + .bin) "
        "carries the config and skeleton, so 'infer --weights model.xml' runs it like any weights file.",
    )
    add_weights_args(p)
    p.add_argument("--format", choices=tuple(_SUFFIXES), required=True)
    # Kept as typed: Path() drops a trailing slash, and "newdir/" names a folder, not a file "newdir".
    p.add_argument("--output", "-o", type=str,
                   help="output file, or an existing folder to write it in (default: <weights stem>.onnx, "
                   "<weights stem>.torchscript.pt or <weights stem>.xml beside the weights file); a name ending in "
                   "/ is a folder, which must exist")
    p.add_argument("--input-hw", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="example input size for tracing; ONNX keeps batch, height and width dynamic (default: the "
                   "model's own: bottom-up a square of its input height, e.g. 368 368, top-down its crop, e.g. 256 192)")
    add_input_bound_args(p)
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="--format openvino: fp32 (default) or int8 (NNCF post-training quantisation on --calibration)")
    p.add_argument("--calibration", type=Path, metavar="DIR",
                   help="--format openvino --precision int8: a folder of images like those the model will see")


def _output_path(args: argparse.Namespace, weights: Path) -> Path:
    """``-o`` (a file, or a folder to hold the default name); by default beside the weights, not in the current folder."""
    name = weights.stem + _SUFFIXES[args.format]
    output = Path(args.output) if args.output is not None else weights.with_name(name)
    if args.output is not None and os.path.basename(args.output) in ("", ".", "..") and not output.is_dir():
        # "newdir/" (or "newdir/."): the user named a folder; writing a file called "newdir" would surprise them
        there = "is not a folder" if output.exists() else "does not exist"
        raise CliError(f"-o {args.output}: a trailing slash names a folder, and {output} {there}; create the "
                       "folder first, or leave the slash out to name the output file")
    if output.is_dir():
        output = output / name
    if output.resolve() == weights.resolve():
        raise CliError(f"-o {output}: that is the weights file itself; name another output file")
    if not output.parent.is_dir():
        raise CliError(f"-o {output}: the folder {output.parent} does not exist; create it or name another")
    # Nothing but a regular file is replaced (a FIFO, /dev/full ...): said before the model is loaded.
    for written in (output, output.with_suffix(".bin")) if args.format == "openvino" else (output,):
        try:
            check_destination(written)
        except ValueError as exc:
            raise CliError(f"-o {exc}") from None
    return output


def _run_export(args: argparse.Namespace) -> int:
    from openpose_lite.config import config_to_dict
    from openpose_lite.inference import PredictorOptions, build_predictor
    from openpose_lite.models import export_onnx, export_torchscript
    from openpose_lite.models.export import check_input_hw, onnx_opsets

    if (args.precision != "fp32" or args.calibration is not None) and args.format != "openvino":
        raise CliError("--precision and --calibration are for --format openvino")
    if args.precision == "int8" and args.calibration is None:
        raise CliError("--precision int8 needs --calibration DIR: a folder of a few hundred images to quantise on")
    bound = input_bound(args)
    if args.input_hw is not None:  # beyond the bound: refused before the weights are read
        try:
            check_input_hw(args.input_hw, 1, bound)
        except ValueError as exc:
            raise CliError(f"--input-hw {args.input_hw[0]} {args.input_hw[1]}: {exc}; raise the limits with "
                           "--max-input-side and --max-input-pixels") from None
    output = _output_path(args, weights_path(args))
    if args.format == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnx") is None:  # torch.onnx.export needs it
            raise CliError("ONNX export needs the onnx package: pip install 'openpose-lite[onnx]'")
        low, high = onnx_opsets()
        if not low <= args.opset <= high:
            raise CliError(f"--opset {args.opset}: the installed torch exports ONNX opsets {low} to {high}")
    path, loaded = load_weights(args)
    try:  # its preprocessing: the model's own example size, its output names, the calibration set
        predictor = build_predictor(loaded, PredictorOptions(device="cpu"))
    except ValueError as exc:
        raise CliError(f"cannot load {path}: {exc}") from None
    model, config = loaded.model, config_to_dict(loaded.config)
    own = predictor.example_input_hw
    input_hw = own if args.input_hw is None else (int(args.input_hw[0]), int(args.input_hw[1]))
    if args.format == "openvino":  # dynamic sizes: no example size to get wrong
        from openpose_lite.inference.openvino_model import export_ir

        try:  # int8 calibrated as its predictor would be
            written = export_ir(model, output, predictor.output_names, config, precision=args.precision,
                                calibration=predictor.calibration_set(args.calibration))
        except ValueError as exc:  # the extra missing, a calibration folder of no readable images
            raise CliError(str(exc)) from None
        print(f"wrote the OpenVINO IR ({args.precision}) to {written} and {written.with_suffix('.bin')}")
        return EXIT_OK
    try:
        if args.format == "onnx":
            written = export_onnx(model, output, input_hw=input_hw, opset=args.opset, config=config, input_bound=bound)
        else:
            written = export_torchscript(model, output, input_hw=input_hw, config=config, input_bound=bound)
    except ValueError as exc:  # the example size does not suit the network
        hint = f"; e.g. --input-hw {own[0]} {own[1]} (the model's own size), or leave it out"
        raise CliError(f"--input-hw {input_hw[0]} {input_hw[1]}: {exc}{hint}") from None
    print(f"wrote {args.format} network to {written}")
    return EXIT_OK
