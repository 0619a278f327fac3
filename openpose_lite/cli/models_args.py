"""The model options of ``infer``, ``eval``, ``export`` and ``serve``, and the one way to build a predictor from them.

Options are checked before the weights are read, each error naming its option (``--scales``,
``--device``, ``--input-size`` ...); what goes wrong while reading a file names that file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from openpose_lite.cli.errors import CliError

__all__ = ["WEIGHTS_HELP", "add_hands_faces_args", "add_input_bound_args", "add_model_args",
           "add_predictor_args", "add_threads_arg", "add_weights_args", "build_predictor", "decoding_options",
           "hands_and_faces", "input_bound", "load_weights", "non_negative_int", "positive_int", "predictor_setup",
           "weights_path"]

WEIGHTS_HELP = (
    "pass --weights FILE (a public pose model: the CMU COCO body model as the PyTorch OpenPose ports save it, "
    "e.g. body_pose_model.pth; a Lightweight OpenPose checkpoint; official HRNet pose weights; or any "
    "openpose_lite checkpoint or state dict) or --checkpoint FILE (a checkpoint written by train_vgg19.py or "
    "'openpose-lite train'); docs/cli.md lists every file the architecture table reads"
)


# ------------------------------------------------------------------------------- option types
def _number_type(kind: Callable[[str], Any], minimum: float, strict: bool, what: str,
                 maximum: float = float("inf")) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value > minimum if strict else value >= minimum) or not value <= maximum:  # NaN fails too
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


# finite: a value that no input can reach (inf) is refused here, not by what it is multiplied into
positive_float = _number_type(float, 0.0, True, "a positive number", sys.float_info.max)
positive_int = _number_type(int, 0, True, "a positive integer")
non_negative_int = _number_type(int, 0, False, "an integer >= 0")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads N``: the one CPU-thread option of infer, eval and train (bench: ``BenchConfig.threads``)."""
    from openpose_lite.devices import THREADS_HELP

    p.add_argument("--threads", type=non_negative_int, default=0, metavar="N", help=f"{THREADS_HELP} (default: %(default)s)")


def _pixel_limit(text: str) -> int:
    from openpose_lite.images import check_max_pixels

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}")
    try:
        return check_max_pixels(int(value), "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).lstrip(": ")) from None


def add_model_args(p: argparse.ArgumentParser, annotations: bool, input_size: bool = True) -> None:
    """The weights, predictor and image-size options of a command that runs a model on images (infer, eval);
    ``annotations``: it reads image names from an annotation file (``--images-anywhere``)."""
    from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS

    add_weights_args(p)
    add_predictor_args(p, input_size)
    p.add_argument("--max-image-pixels", type=_pixel_limit, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                   help="refuse an image of more than N pixels (width x height), read from its header before it "
                   "is decoded (default: %(default)s = 2^27, e.g. 16384 x 8192). Not --max-input-pixels, which "
                   "bounds the network input an image is scaled to")
    if annotations:
        p.add_argument("--images-anywhere", action="store_true",
                       help="let the annotation file's file_name be an absolute path or leave --images with '..' "
                       "(refused by default)")


def add_hands_faces_args(p: argparse.ArgumentParser) -> None:
    """``--hand`` / ``--face``: CMU's hand and face networks on each person (infer, serve)."""
    p.add_argument("--hand", type=Path, default=None, metavar="FILE",
                   help="CMU's hand model (hand/pose_iter_102000.caffemodel, or hand_pose_model.pth): each person's "
                   "hands, hand_left_keypoints_2d and hand_right_keypoints_2d in the OpenPose JSON")
    p.add_argument("--face", type=Path, default=None, metavar="FILE",
                   help="CMU's face model (face/pose_iter_116000.caffemodel): each person's face_keypoints_2d")


def hands_and_faces(args: argparse.Namespace, predictor):
    """``predictor`` with ``--hand`` / ``--face`` run on its people, on the body model's runtime."""
    from openpose_lite.inference.hands_faces import with_hands_faces

    return with_hands_faces(predictor, getattr(args, "hand", None), getattr(args, "face", None),
                            calibration=getattr(args, "calibration", None), device=args.device, backend=args.backend,
                            precision=args.precision)


def add_weights_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", type=Path, metavar="FILE",
                       help="weights in any supported layout: public pose models (CMU, Lightweight OpenPose, HRNet ...) "
                       "or our files")
    group.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint written by train_vgg19.py or openpose-lite train")


def add_input_bound_args(p: argparse.ArgumentParser) -> None:
    """``--max-input-side`` / ``--max-input-pixels``: the bound on a bottom-up network input (:func:`input_bound`)."""
    from openpose_lite.preprocess import DEFAULT_INPUT_BOUND as bound

    p.add_argument("--max-input-side", type=_number_type(int, 8, False, "an integer >= 8"), default=None, metavar="N",
                   help=f"longest side of a bottom-up network input (default {bound.max_side}): larger inputs are "
                   "scaled to fit; export refuses a larger --input-hw, which tracing would run")
    p.add_argument("--max-input-pixels", type=_number_type(int, 64, False, "an integer >= 64"), default=None,
                   metavar="N", help=f"pixels of a bottom-up network input (default {bound.max_pixels}): larger inputs "
                   "are scaled to fit; export refuses a larger --input-hw")


def input_bound(args: argparse.Namespace):
    """The :class:`~openpose_lite.preprocess.InputBound` of ``--max-input-side`` / ``--max-input-pixels``."""
    from openpose_lite.preprocess import InputBound

    limits = {"max_side": args.max_input_side, "max_pixels": args.max_input_pixels}
    return InputBound(**{k: v for k, v in limits.items() if v is not None})


def add_predictor_args(p: argparse.ArgumentParser, input_size: bool = True) -> None:
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
    p.add_argument("--peak-threshold", type=_number_type(float, 0.0, False, "a number in [0, 1]", 1.0), default=None,
                   help="minimum confidence of a keypoint (default: the checkpoint's codec setting, else 0.1)")
    add_input_bound_args(p)
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


def _load(path: Path, checkpoint: bool = False):
    from openpose_lite.inference.base import load_for_inference, require_checkpoint

    try:
        loaded = load_for_inference(path)
        if checkpoint:
            require_checkpoint(path, loaded)
    except ValueError as exc:
        raise _load_error(path, exc) from None
    return loaded


def load_weights(args: argparse.Namespace):
    """(path, :class:`~openpose_lite.models.weights.LoadedWeights`) of ``--weights`` / ``--checkpoint``, read once."""
    path = weights_path(args)
    return path, _load(path, checkpoint=bool(args.checkpoint))


# ------------------------------------------------------------------------------- predictors
def _backend(args: argparse.Namespace) -> str:
    """``--backend``, by default openvino for an OpenVINO IR (.xml) and torch for anything else."""
    return args.backend or ("openvino" if weights_path(args).suffix.lower() == ".xml" else "torch")


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
    if is_ir and _backend(args) != "openvino":
        raise CliError(f"--backend {args.backend}: {weights_path(args)} is an OpenVINO IR; it runs with --backend openvino")
    try:
        if args.calibration is not None:
            calibration_files(args.calibration)
        if not is_ir:  # an IR's own precision is known once it is read; the runner checks it then
            check_runtime(_backend(args), args.precision or "fp32", args.device, args.calibration)
    except BackendUnavailableError as exc:  # the extra is not installed
        raise CliError(f"--backend: {exc}") from None
    except ValueError as exc:
        option = "--calibration" if args.calibration is not None and "calibration" in str(exc) else "--precision"
        raise CliError(f"{option}: {exc}") from None
    if args.boxes is not None and args.person_detector is not None:
        raise CliError("give --boxes or --person-detector, not both")


def decoding_options(args: argparse.Namespace, branch) -> dict[str, Any]:
    """The decoding options given that apply to ``branch`` (a row of :mod:`openpose_lite.branches`)."""
    given = {name: vars(args).get(name) for name in branch.options}
    return {name: value for name, value in given.items() if value is not None}


def _person_detector(args: argparse.Namespace, loaded):
    """The predictor of ``--person-detector`` on ``loaded``'s runtime; a model that needs boxes is refused."""
    from openpose_lite.inference import PredictorOptions, build_predictor as build

    path = _existing_file(args.person_detector, "--person-detector")
    detector = _load(path)
    row = detector.architecture
    if row.branch_row.needs_boxes:
        raise CliError(f"--person-detector {path}: holds a {row.branch_row.title} model ({row.name}); the person "
                       "detector must find people in whole images: a bottom-up (OpenPose) model, e.g. the CMU "
                       "body_pose_model.pth or a vgg19_paf checkpoint")
    options = PredictorOptions(device=args.device, precision=args.precision or getattr(loaded.model, "precision", "fp32"),
                               backend=_backend(args), calibration=args.calibration, input_bound=input_bound(args))
    try:
        return build(detector, options)
    except ValueError as exc:
        raise _load_error(path, exc) from None


def _box_source(args: argparse.Namespace, path: Path, loaded, ground_truth: Path | None):
    """What makes the person boxes of a model that runs on them (None for one that does not): the
    ``--person-detector``'s people, ``--boxes`` or ``ground_truth``'s people."""
    from openpose_lite.inference.boxes import detection_box_source, pose_box_source

    row = loaded.architecture.branch_row
    if not row.needs_boxes:
        if args.boxes is not None or args.person_detector is not None:
            raise CliError(f"--boxes and --person-detector give person boxes, which {row.title} models do not take")
        return None
    if args.person_detector is not None:
        return lambda codec: pose_box_source(_person_detector(args, loaded))
    source = args.boxes if args.boxes is not None else ground_truth
    if source is None:
        raise CliError(f"{path} is a {row.title} model: it needs person boxes, from --boxes FILE (COCO detections) "
                       "or --person-detector FILE (bottom-up weights)")

    def boxes(codec):
        try:
            if args.boxes is not None:
                return detection_box_source(args.boxes)
            from openpose_lite.data.ground_truth import gt_box_source  # evaluation: the labelled people's boxes

            return gt_box_source(ground_truth, codec.convention, codec.skeleton)
        except (FileNotFoundError, ValueError) as exc:
            raise CliError(str(exc) if str(source) in str(exc) else f"{source}: {exc}") from None

    return boxes


def predictor_setup(args: argparse.Namespace, ground_truth: Path | None = None):
    """(weights file, loaded weights, :class:`~openpose_lite.inference.PredictorOptions`) the model options
        describe, each error naming its option; a model that runs on person boxes takes those the options name,
        else ``ground_truth``'s (eval)."""
    from openpose_lite.inference import PredictorOptions

    _check_options(args)
    path, loaded = load_weights(args)
    boxes = _box_source(args, path, loaded, ground_truth)
    codec_overrides = decoding_options(args, loaded.architecture.branch_row)
    input_size = codec_overrides.pop("input_size", None)
    stride = int(getattr(loaded.model, "stride", 8))
    if input_size is not None and input_size % stride:
        nearest = max(stride, round(input_size / stride) * stride)
        raise CliError(f"--input-size {input_size}: expected a multiple of the model's stride ({stride}), e.g. {nearest}")
    options = PredictorOptions(device=args.device, precision=args.precision, backend=args.backend,
                               calibration=args.calibration, codec_overrides=codec_overrides, flip=args.flip,
                               input_size=input_size, scales=tuple(args.scales), input_bound=input_bound(args),
                               batch_size=max(args.batch_size, 32), boxes=boxes)
    return path, loaded, options


def build_predictor(args: argparse.Namespace, ground_truth: Path | None = None):
    """The predictor the model options describe."""
    from openpose_lite.devices import set_threads
    from openpose_lite.inference import build_predictor as build

    set_threads(args.threads)  # before a runtime is built: the OpenVINO one reads torch's thread count
    path, loaded, options = predictor_setup(args, ground_truth)
    try:
        return build(loaded, options)
    except ValueError as exc:
        raise _load_error(path, exc) from None
