"""``openpose-lite export``: the network to ONNX or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

from openpose_lite.cli.errors import EXIT_OK, CliError
from openpose_lite.cli.models_args import add_weights_args, load_weights

_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


# -------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export the network to ONNX or TorchScript (decoding stays in Python)",
        description="Writes the network alone: input 'images' (B, 3, H, W), the model's normalisation (bottom-up: "
        "BGR / 256 - 0.5; HRNet: RGB, ImageNet mean and std); outputs the last stage's maps (bottom-up: pafs, "
        "heatmaps at 1/8 of the input size; HRNet: heatmaps at 1/4). Pre- and post-processing stay in openpose_lite.",
    )
    add_weights_args(p)
    p.add_argument("--format", choices=tuple(_SUFFIXES), required=True)
    p.add_argument("--output", "-o", type=Path,
                   help="output file, or an existing folder to write it in (default: <weights stem>.onnx or "
                   "<weights stem>.torchscript.pt beside the weights file)")
    p.add_argument("--input-hw", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="example input size for tracing; ONNX keeps batch, height and width dynamic (default: the "
                   "model's own, 368 368 bottom-up, the checkpoint's crop (official HRNet: 256 192) top-down)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")


def _output_path(args: argparse.Namespace, weights: Path) -> Path:
    """``-o`` (a file, or a folder to hold the default name); by default beside the weights, not in the current folder."""
    name = weights.stem + _SUFFIXES[args.format]
    output = args.output if args.output is not None else weights.with_name(name)
    if output.is_dir():
        output = output / name
    if output.resolve() == weights.resolve():
        raise CliError(f"-o {output}: that is the weights file itself; name another output file")
    if not output.parent.is_dir():
        raise CliError(f"-o {output}: the folder {output.parent} does not exist; create it or name another")
    return output


def _input_hw(args: argparse.Namespace, model, config) -> tuple[int, int]:
    from openpose_lite.config import Config, config_from_dict
    from openpose_lite.models.hrnet import HRNet

    if args.input_hw is not None:
        return int(args.input_hw[0]), int(args.input_hw[1])
    if isinstance(model, HRNet):  # HRNet needs sides that are multiples of 32: its own crop size is one
        cfg = config_from_dict(config, where="checkpoint config") if config is not None else Config()
        return tuple(int(v) for v in cfg.topdown.input_hw)  # type: ignore[return-value]
    return 368, 368


def _run_export(args: argparse.Namespace) -> int:
    from openpose_lite.models import export_onnx, export_torchscript
    from openpose_lite.models.export import onnx_opsets
    from openpose_lite.models.hrnet import HRNet

    path, model, config = load_weights(args)
    output = _output_path(args, path)
    input_hw = _input_hw(args, model, config)
    if args.format == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnx") is None:  # torch.onnx.export needs it
            raise CliError("ONNX export needs the onnx package: pip install 'openpose-lite[onnx]'")
        low, high = onnx_opsets()
        if not low <= args.opset <= high:
            raise CliError(f"--opset {args.opset}: the installed torch exports ONNX opsets {low} to {high}")
    try:
        if args.format == "onnx":
            written = export_onnx(model, output, input_hw=input_hw, opset=args.opset)
        else:
            written = export_torchscript(model, output, input_hw=input_hw)
    except ValueError as exc:  # the example size does not suit the network
        hint = "; e.g. --input-hw 256 192, or leave it out for the model's own crop" if isinstance(model, HRNet) else ""
        raise CliError(f"--input-hw {input_hw[0]} {input_hw[1]}: {exc}{hint}") from None
    print(f"wrote {args.format} network to {written}")
    return EXIT_OK
