"""Model options shared by ``infer``, ``eval`` and ``export``: which weights, which predictor."""

from __future__ import annotations

import argparse
from pathlib import Path

from openpose_lite.cli.errors import CliError


# ------------------------------------------------------------------- model options (infer, eval, export)
WEIGHTS_HELP = (
    "pass --weights FILE (the public CMU COCO body model, pose_iter_440000, converted to a PyTorch state dict "
    "in the layout of the common PyTorch OpenPose ports, e.g. body_pose_model.pth; or any openpose_lite "
    "checkpoint or state dict) or --checkpoint FILE (a checkpoint written by train_vgg19.py); "
    "top-down: official HRNet pose weights or a checkpoint from 'openpose-lite train'"
)


def _add_weights_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", type=Path, metavar="FILE",
                       help="weights in any supported layout: the CMU COCO body model (PyTorch ports' layouts) or our files")
    group.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint written by train_vgg19.py or openpose-lite train")


def _add_predictor_args(p: argparse.ArgumentParser, input_size: bool = True) -> None:
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], metavar="S",
                   help="input heights input_size * S whose maps are averaged (e.g. 1.0 0.75 0.5 0.25)")
    p.add_argument("--flip", action="store_true", help="also run mirrored images and average (flip test)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--half", action="store_true", help="float16 network on CUDA (ignored on CPU)")
    p.add_argument("--batch-size", type=int, default=1, help="images (or video frames) per network batch")
    p.add_argument("--peak-threshold", type=float, default=None,
                   help="minimum confidence of a keypoint (default: the checkpoint's codec setting, else 0.1)")
    p.add_argument("--boxes", type=Path, metavar="FILE",
                   help="top-down models: person boxes from a COCO detections JSON (image ids as in the annotations "
                   "or the numeric image file names)")
    p.add_argument("--person-detector", type=Path, metavar="FILE",
                   help="top-down models: person boxes from this bottom-up model's people (no external detector)")
    if input_size:
        p.add_argument("--input-size", type=int, default=None,
                       help="network input height at scale 1, a multiple of 8 (default: the checkpoint's, else 368)")


def _weights_path(args: argparse.Namespace) -> Path:
    path = args.checkpoint or args.weights
    if path is None:
        raise CliError(f"no weights given: {WEIGHTS_HELP}")
    if not path.is_file():
        raise CliError(f"weights file not found: {path}; {WEIGHTS_HELP}")
    return path


def _load_error(path: Path, exc: Exception) -> CliError:
    message = str(exc)
    return CliError(message if str(path) in message else f"cannot load {path}: {message}")


def _build_topdown(args: argparse.Namespace, path: Path, model, config):
    """A TopDownPipeline: the loaded HRNet's predictor plus the person boxes the options name."""
    from openpose_lite.inference.boxes import detection_box_source, gt_box_source, pose_box_source
    from openpose_lite.predictor import BottomUpPredictor, TopDownPipeline, TopDownPredictor

    if args.boxes is not None and args.person_detector is not None:
        raise CliError("give --boxes or --person-detector, not both")
    try:
        predictor = TopDownPredictor.from_model(model, config, str(path), flip=args.flip, device=args.device,
                                                half=args.half, refine=getattr(args, "refine", None),
                                                batch_size=max(args.batch_size, 32))
        if args.boxes is not None:
            boxes = detection_box_source(args.boxes)
        elif args.person_detector is not None:
            boxes = pose_box_source(BottomUpPredictor.from_weights(args.person_detector, device=args.device))
        elif getattr(args, "ann", None) is not None:
            boxes = gt_box_source(args.ann, predictor.codec.convention)  # evaluation with the ground-truth boxes
        else:
            raise CliError(f"{path} is a top-down model: it needs person boxes, from --boxes FILE (COCO detections) "
                           "or --person-detector FILE (bottom-up weights)")
    except (FileNotFoundError, ValueError) as exc:
        raise _load_error(path, exc) from None
    return TopDownPipeline(predictor, boxes)


def _describe(predictor) -> str:
    from openpose_lite.predictor import TopDownPipeline

    if isinstance(predictor, TopDownPipeline):
        td = predictor.predictor
        return f"top-down {td.codec.input_hw[0]}x{td.codec.input_hw[1]}, refine {td.codec.refine}, flip {'on' if td.flip else 'off'}"
    return (f"input {predictor.input_size}, scales {' '.join(f'{s:g}' for s in predictor.scales)}, "
            f"flip {'on' if predictor.flip else 'off'}")


def _build_predictor(args: argparse.Namespace):
    """The predictor the model options describe (loads the weights): bottom-up, or a top-down pipeline."""
    from openpose_lite.models.hrnet import HRNet
    from openpose_lite.models.weights import load_model_with_config
    from openpose_lite.predictor import BottomUpPredictor, require_config

    path = _weights_path(args)
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")
    try:  # the file is read once, whichever branch it holds
        model, config = load_model_with_config(path)
        if args.checkpoint:
            require_config(path, config)
    except ValueError as exc:
        raise _load_error(path, exc) from None
    if isinstance(model, HRNet):
        return _build_topdown(args, path, model, config)
    if args.boxes is not None or args.person_detector is not None:
        raise CliError("--boxes and --person-detector are for top-down models; this is a bottom-up one")
    overrides: dict = {}
    if args.peak_threshold is not None:
        overrides["peak_threshold"] = args.peak_threshold
    if getattr(args, "refine", None):
        overrides["refine"] = args.refine
    try:
        return BottomUpPredictor.from_model(model, config, str(path), scales=args.scales, flip=args.flip,
                                            device=args.device, half=args.half, input_size=args.input_size,
                                            codec_overrides=overrides)
    except ValueError as exc:
        raise _load_error(path, exc) from None
