"""Model options shared by ``infer``, ``eval`` and ``export``, and the one way to build a predictor from them.

Options are checked before the weights are read, each error naming its option (``--scales``,
``--device``, ``--input-size`` ...); what goes wrong while reading a file names that file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from openpose_lite.cli.errors import CliError

__all__ = ["WEIGHTS_HELP", "add_predictor_args", "add_threads_arg", "add_weights_args", "apply_threads", "build_predictor",
           "describe", "load_weights", "non_negative_int", "positive_int", "weights_path"]

WEIGHTS_HELP = (
    "pass --weights FILE (a public pose model: the CMU COCO body model as the PyTorch OpenPose ports save it, "
    "e.g. body_pose_model.pth; a Lightweight OpenPose checkpoint; official HRNet pose weights; or any "
    "openpose_lite checkpoint or state dict) or --checkpoint FILE (a checkpoint written by train_vgg19.py or "
    "'openpose-lite train'); docs/cli.md lists every file the architecture table reads"
)


# ------------------------------------------------------------------------------- option types
def _number_type(kind: Callable[[str], Any], minimum: float, strict: bool, what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value > minimum if strict else value >= minimum) or value != value:  # NaN fails too
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_float = _number_type(float, 0.0, True, "a positive number")
positive_int = _number_type(int, 0, True, "a positive integer")
non_negative_int = _number_type(int, 0, False, "an integer >= 0")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads N``: the one CPU-thread option of infer, eval and train (bench: ``BenchConfig.threads``)."""
    from openpose_lite.devices import THREADS_HELP

    p.add_argument("--threads", type=non_negative_int, default=0, metavar="N", help=f"{THREADS_HELP} (default: %(default)s)")


def apply_threads(args: argparse.Namespace) -> int:
    """Set the threads ``--threads`` asks for (:func:`openpose_lite.devices.set_threads`); returns the number in effect."""
    from openpose_lite.devices import set_threads

    return set_threads(args.threads)


def _fraction(text: str) -> float:
    value = _number_type(float, 0.0, False, "a number in [0, 1]")(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def add_weights_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", type=Path, metavar="FILE",
                       help="weights in any supported layout: public pose models (CMU, Lightweight OpenPose, HRNet ...) "
                       "or our files")
    group.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint written by train_vgg19.py or openpose-lite train")


def add_predictor_args(p: argparse.ArgumentParser, input_size: bool = True) -> None:
    from openpose_lite.preprocess import DEFAULT_INPUT_BOUND as bound

    p.add_argument("--scales", type=positive_float, nargs="+", default=[1.0], metavar="S",
                   help="input heights input_size * S whose maps are averaged (e.g. 1.0 0.75 0.5 0.25)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="also run mirrored images and average (flip test); default: off for bottom-up models, "
                   "the checkpoint's topdown.flip_test for top-down ones (official HRNet files: on)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--backend", choices=("torch", "openvino"), default=None,
                   help="runtime of the network: torch (default) or openvino (CPU deployment: converted once and cached, "
                   "pip install 'openpose-lite[openvino]'; an .xml weights file runs on it)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "int8", "auto"), default=None,
                   help="network precision: fp32 (default, exact outputs; an int8 OpenVINO IR: int8), bf16 (on CPUs that compute bfloat16 natively, "
                   "and CUDA), fp16 (CUDA), int8 (backend openvino, quantised on --calibration images), auto (the "
                   "fastest this device runs natively)")
    p.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                   help="backend openvino, precision int8 (or auto): a folder of a few hundred images like those the "
                   "model will see, to calibrate the quantisation on (cached with the converted model)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images (or video frames) per network batch")
    add_threads_arg(p)
    p.add_argument("--peak-threshold", type=_fraction, default=None,
                   help="minimum confidence of a keypoint (default: the checkpoint's codec setting, else 0.1)")
    p.add_argument("--max-input-side", type=_number_type(int, 8, False, "an integer >= 8"), default=None,
                   help=f"bottom-up: longest side of the network input; larger inputs are scaled to fit "
                   f"(default {bound.max_side})")
    p.add_argument("--max-input-pixels", type=_number_type(int, 64, False, "an integer >= 64"), default=None,
                   help=f"bottom-up: pixels of the network input; larger inputs are scaled to fit (default {bound.max_pixels})")
    p.add_argument("--boxes", type=Path, metavar="FILE",
                   help="top-down models: person boxes from a COCO detections JSON (image ids as in the annotations "
                   "or the numeric image file names)")
    p.add_argument("--person-detector", type=Path, metavar="FILE",
                   help="top-down models: person boxes from this bottom-up model's people (no external detector)")
    if input_size:
        p.add_argument("--input-size", type=positive_int, default=None,
                       help="network input height at scale 1, a multiple of 8 (default: the checkpoint's, else 368)")


# ------------------------------------------------------------------------------- weight files
def _existing_file(path: Path, option: str) -> Path:
    """``path`` if it is a file; otherwise one line saying what it is and what to pass instead."""
    if path.is_dir():
        best = path / "best.pt"
        if best.is_file():
            raise CliError(f"{option} {path}: is a folder, not a weights file; did you mean {best}?")
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth"))[:5]
        held = f"it holds {', '.join(found)}" if found else "it holds no .pt or .pth file"
        raise CliError(f"{option} {path}: is a folder, not a weights file ({held}); pass one file")
    if not path.is_file():
        raise CliError(f"weights file not found: {path} ({option} takes a .pt or .pth file; check the path)")
    return path


def weights_path(args: argparse.Namespace) -> Path:
    """The weights file the options name (checked to exist), before anything is loaded."""
    if args.checkpoint is None and args.weights is None:
        raise CliError(f"no weights given: {WEIGHTS_HELP}")
    return _existing_file(args.checkpoint or args.weights, "--checkpoint" if args.checkpoint else "--weights")


def _load_error(path: Path, exc: Exception) -> CliError:
    from openpose_lite.inference.calibration import CalibrationError

    message = str(exc)
    if isinstance(exc, CalibrationError):  # the calibration images are at fault, not the weights
        return CliError(f"--calibration: {message}")
    return CliError(message if str(path) in message else f"cannot load {path}: {message}")


def load_weights(args: argparse.Namespace):
    """(path, :class:`~openpose_lite.models.weights.LoadedWeights`) of ``--weights`` / ``--checkpoint``; the file is read once."""
    from openpose_lite.inference.base import load_for_inference, require_checkpoint

    path = weights_path(args)
    try:
        loaded = load_for_inference(path)
        if args.checkpoint:
            require_checkpoint(path, loaded)
    except ValueError as exc:
        raise _load_error(path, exc) from None
    return path, loaded


# ------------------------------------------------------------------------------- predictors
def _check_options(args: argparse.Namespace) -> None:
    """The options that need no model: refused before the weights are read, naming the option."""
    from openpose_lite.devices import resolve_device
    from openpose_lite.inference.calibration import calibration_files
    from openpose_lite.inference.network import check_runtime
    from openpose_lite.inference.openvino_model import BackendUnavailableError

    try:
        resolve_device(args.device)
    except ValueError as exc:
        message = str(exc)
        raise CliError("--" + message if message.startswith("device") else f"--device: {message}") from None
    is_ir = weights_path(args).suffix.lower() == ".xml"
    if args.backend is None:
        args.backend = "openvino" if is_ir else "torch"
    elif is_ir and args.backend != "openvino":
        raise CliError(f"--backend {args.backend}: {weights_path(args)} is an OpenVINO IR; it runs with --backend openvino")
    try:
        if args.calibration is not None:
            calibration_files(args.calibration)
        if not is_ir:  # an IR's own precision is known once it is read; the runner checks it then
            args.precision = args.precision or "fp32"
            check_runtime(args.backend, args.precision, args.device, args.calibration)
    except BackendUnavailableError as exc:  # the extra is not installed
        raise CliError(f"--backend: {exc}") from None
    except ValueError as exc:
        option = "--calibration" if args.calibration is not None and "calibration" in str(exc) else "--precision"
        raise CliError(f"{option}: {exc}") from None
    if args.boxes is not None and args.person_detector is not None:
        raise CliError("give --boxes or --person-detector, not both")


def _input_bound(args: argparse.Namespace):
    from openpose_lite.preprocess import InputBound

    limits = {"max_side": args.max_input_side, "max_pixels": args.max_input_pixels}
    return InputBound(**{k: v for k, v in limits.items() if v is not None})


def _bottomup(args: argparse.Namespace, model, config, source: str, **options: Any):
    from openpose_lite.inference import BottomUpPredictor

    try:
        return BottomUpPredictor.from_model(model, config, source, device=args.device, input_bound=_input_bound(args),
                                            backend=args.backend, calibration=args.calibration, **options)
    except ValueError as exc:
        raise _load_error(Path(source), exc) from None


def _person_detector(args: argparse.Namespace):
    """The bottom-up predictor of ``--person-detector``, refused up front when the file holds another kind of model."""
    from openpose_lite.inference.base import load_for_inference

    path = _existing_file(args.person_detector, "--person-detector")
    try:
        loaded = load_for_inference(path)
    except ValueError as exc:
        raise _load_error(path, exc) from None
    if loaded.architecture.branch != "bottomup":
        raise CliError(f"--person-detector {path}: holds a top-down model ({loaded.architecture.name}); the person "
                       "detector must be a bottom-up (OpenPose) model, e.g. the CMU body_pose_model.pth or a vgg19_paf "
                       "checkpoint")
    return _bottomup(args, loaded.model, loaded.config, str(path), precision=args.precision)  # person boxes: same runtime


def _box_source(args: argparse.Namespace, path: Path, predictor):
    from openpose_lite.inference.boxes import detection_box_source, pose_box_source

    if args.person_detector is not None:
        return pose_box_source(_person_detector(args))
    try:
        if args.boxes is not None:
            return detection_box_source(args.boxes)
        if getattr(args, "ann", None) is not None:  # evaluation with the ground-truth boxes (eval only)
            from openpose_lite.data.ground_truth import gt_box_source

            return gt_box_source(args.ann, predictor.codec.convention, predictor.codec.skeleton)
    except (FileNotFoundError, ValueError) as exc:
        source = args.boxes if args.boxes is not None else args.ann
        raise CliError(str(exc) if str(source) in str(exc) else f"{source}: {exc}") from None
    raise CliError(f"{path} is a top-down model: it needs person boxes, from --boxes FILE (COCO detections) "
                   "or --person-detector FILE (bottom-up weights)")


def _build_topdown(args: argparse.Namespace, path: Path, model, config):
    """A TopDownPipeline: the loaded top-down model's predictor plus the person boxes the options name."""
    from openpose_lite.config import config_from_dict
    from openpose_lite.inference import TopDownPipeline, TopDownPredictor

    try:
        cfg = config_from_dict(config, where=f"{path} config")
        # Without --flip/--no-flip, the flip test the model was evaluated with in training (the reference's: on).
        flip = cfg.topdown.flip_test if args.flip is None else args.flip
        predictor = TopDownPredictor.from_model(model, config, str(path), flip=flip, device=args.device,
                                                precision=args.precision, refine=getattr(args, "refine", None),
                                                backend=args.backend, calibration=args.calibration,
                                                batch_size=max(args.batch_size, 32))
    except ValueError as exc:
        raise _load_error(path, exc) from None
    return TopDownPipeline(predictor, _box_source(args, path, predictor))


def build_predictor(args: argparse.Namespace):
    """The predictor the model options describe (loads the weights): bottom-up, or a top-down pipeline."""
    _check_options(args)
    apply_threads(args)  # before a runtime is built: the OpenVINO one reads torch's thread count
    path, loaded = load_weights(args)
    model, config = loaded.model, loaded.config
    if args.precision is None:  # an OpenVINO IR runs in the precision it was exported in by default
        args.precision = getattr(model, "precision", "fp32")
    if loaded.architecture.branch == "topdown":
        return _build_topdown(args, path, model, config)
    if args.boxes is not None or args.person_detector is not None:
        raise CliError("--boxes and --person-detector are for top-down models; this is a bottom-up one")
    stride = int(getattr(model, "stride", 8))
    if args.input_size is not None and args.input_size % stride:
        nearest = max(stride, round(args.input_size / stride) * stride)
        raise CliError(f"--input-size {args.input_size}: expected a multiple of the model's stride ({stride}), "
                       f"e.g. {nearest}")
    overrides: dict = {}
    if args.peak_threshold is not None:
        overrides["peak_threshold"] = args.peak_threshold
    if getattr(args, "refine", None):
        overrides["refine"] = args.refine
    if getattr(args, "blur_kernel", None) is not None:
        overrides["blur_kernel"] = args.blur_kernel
    return _bottomup(args, model, config, str(path), scales=args.scales, flip=bool(args.flip),
                     precision=args.precision, input_size=args.input_size, codec_overrides=overrides)


def describe(predictor) -> str:
    """The settings a predictor runs with, for a command's header line."""
    from openpose_lite.inference import TopDownPipeline

    if isinstance(predictor, TopDownPipeline):
        td = predictor.predictor
        return (f"top-down {td.codec.input_hw[0]}x{td.codec.input_hw[1]}, refine {td.codec.refine}, "
                f"flip {'on' if td.flip else 'off'}, {td.runner.precision}{_runtime(td)}")
    return (f"input {predictor.input_size}, scales {' '.join(f'{s:g}' for s in predictor.scales)}, "
            f"flip {'on' if predictor.flip else 'off'}, {predictor.runner.precision}{_runtime(predictor)}")


def _runtime(predictor) -> str:
    """``", openvino"`` for a predictor on the OpenVINO backend (torch, the default, goes unsaid)."""
    backend = getattr(predictor.runner, "backend", "torch")
    return "" if backend == "torch" else f", {backend}"
