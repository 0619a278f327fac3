"""``openpose-lite``: a thin argparse shell over the public API.

Each sub-command is a pair: ``_add_<name>(subparsers)`` declares its arguments and
``_run_<name>(args) -> int`` calls the library and prints. Only this module (and
train_vgg19.py) prints; the library logs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing error: printed without a traceback, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _write_json_atomic(path: Path, data: object) -> None:
    from openpose_lite.io import write_json_atomic

    write_json_atomic(path, data)


# --------------------------------------------------------------------------------------- synth
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write generated multi-person scenes with COCO keypoint annotations")
    p.add_argument("out_dir", type=Path, help="output folder (images/ and annotations.json)")
    p.add_argument("--num-images", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, nargs=2, default=(368, 368), metavar=("H", "W"), help="image size")
    p.add_argument("--people", type=int, default=None, help="exactly this many people per image")


def _run_synth(args: argparse.Namespace) -> int:
    from openpose_lite.data.synthetic import SceneConfig, write_dataset

    if args.num_images < 1:
        raise CliError("--num-images must be at least 1")
    ann = write_dataset(args.out_dir, args.num_images, args.seed, SceneConfig(image_hw=tuple(args.size)), num_people=args.people)
    print(f"wrote {args.num_images} images and {ann}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- eval
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="COCO keypoint AP of a model, or of a codec alone (--oracle)",
        description="COCO keypoint metrics. With --oracle, the ground truth is encoded into maps at "
        "model resolution and decoded again: the AP a perfect network would get with this codec.",
    )
    p.add_argument("--ann", type=Path, required=True, help="COCO-format keypoint annotation file")
    p.add_argument("--oracle", choices=("bottomup", "topdown"), help="evaluate the codec on ground-truth maps")
    p.add_argument("--refine", choices=("dark", "quarter", "none"), default=None, help="sub-pixel refinement")
    p.add_argument("--input-size", type=int, default=None,
                   help="bottom-up network input height (default: the checkpoint's, else 368)")
    p.add_argument("--json-out", type=Path, help="write the COCO results here")
    _add_weights_args(p)
    p.add_argument("--images", type=Path, metavar="DIR", help="folder of the annotation file's images (with a model)")
    p.add_argument("--max-images", type=int, default=0, help="evaluate the first N images only (0: all)")
    _add_predictor_args(p, input_size=False)


def _run_eval(args: argparse.Namespace) -> int:
    from openpose_lite.evaluation import format_metrics

    if not args.ann.is_file():
        raise CliError(f"annotation file not found: {args.ann}")
    model_given = args.weights is not None or args.checkpoint is not None
    if args.oracle is not None and model_given:
        raise CliError("--oracle evaluates the codec alone; leave out --weights/--checkpoint, or drop --oracle")
    if args.oracle is None:
        if not model_given:
            raise CliError(f"nothing to evaluate: pass --oracle bottomup|topdown (the codec alone), or a model: {WEIGHTS_HELP}")
        return _run_model_eval(args)
    from openpose_lite.oracle import run_oracle

    codec_args: dict = {}
    if args.refine:
        codec_args["refine"] = args.refine
    if args.oracle == "bottomup" and args.input_size:
        codec_args["input_size"] = args.input_size
    metrics, results = run_oracle(args.oracle, args.ann, progress=True, **codec_args)
    if args.json_out:
        _write_json_atomic(args.json_out, results)
    print(f"{args.oracle} oracle on {args.ann} ({len(results)} people)")
    print(format_metrics(metrics, style="markdown"))
    return EXIT_OK


def _run_model_eval(args: argparse.Namespace) -> int:
    """COCO metrics of a model (either branch) on the images of an annotation file."""
    from openpose_lite.evaluation import evaluate_predictor, format_metrics

    if args.images is None:
        raise CliError("--images DIR is required to evaluate a model (the folder of the annotation file's images)")
    if not args.images.is_dir():
        raise CliError(f"image folder not found: {args.images}")
    if args.max_images < 0:
        raise CliError(f"--max-images must be >= 0, got {args.max_images}")
    predictor = _build_predictor(args)
    evaluation = evaluate_predictor(predictor, args.ann, args.images, args.max_images, args.batch_size, progress=True)
    if args.json_out:
        _write_json_atomic(args.json_out, evaluation.results)
    model = args.checkpoint or args.weights
    print(f"{model} on {args.ann}: {len(evaluation.image_ids)} images, {len(evaluation.results)} people, "
          f"{_describe(predictor)}")
    print(format_metrics(evaluation.metrics, style="markdown"))
    for message in evaluation.failures:
        print(f"  failed: {message}", file=sys.stderr)
    if evaluation.failures:
        print(f"{len(evaluation.failures)} images could not be read", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


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


# --------------------------------------------------------------------------------------- infer
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# OpenPose names per-frame outputs <video>_<frame number, 12 digits>_keypoints.json.
_FRAME_DIGITS = 12


def _add_infer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="people in images, folders and videos -> OpenPose JSON, COCO results, drawings",
        description="Runs a model on images, folders of images/videos and video files: the bottom-up model, or a "
        "top-down one (HRNet) on person boxes from --boxes or --person-detector. Writes "
        "<stem>_keypoints.json per image (OpenPose JSON 1.3; video frames: <video stem>_<frame:012d>_keypoints.json), "
        "results_coco.json (COCO keypoint results for the whole run) and images.json (image_id -> file), and "
        "with --render <stem>_rendered.jpg or <video stem>_rendered.mp4. Unreadable inputs are reported and "
        "skipped; the exit code is then 1.",
    )
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files, video files or folders of them")
    _add_weights_args(p)
    _add_predictor_args(p)
    p.add_argument("--output", "-o", type=Path, default=Path("openpose_output"), help="output folder")
    p.add_argument("--render", action="store_true", help="also write the images (or videos) with the people drawn")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class _InferRun:
    """What one infer run has written so far."""

    out_dir: Path
    render: bool
    coco_results: list = field(default_factory=list)
    images: dict = field(default_factory=dict)  # image_id (str) -> {"file", "frame", "json"}
    reserved_ids: set = field(default_factory=set)  # the numeric file stems of the run's images
    used_ids: set = field(default_factory=set)
    used_stems: set = field(default_factory=set)
    next_id: int = 1
    num_images: int = 0
    num_people: int = 0
    failures: list = field(default_factory=list)

    def image_id(self, stem: str | None) -> int:
        """The COCO id when the file name is a number (COCO names its images so), else a running index.

        Running indices skip every numeric stem of the run (:attr:`reserved_ids`), so an image named
        ``1.jpg`` keeps id 1 even when a video frame or ``a.jpg`` comes first.
        """
        if stem is not None and stem.isdigit() and int(stem) not in self.used_ids:
            self.used_ids.add(int(stem))
            return int(stem)
        while self.next_id in self.used_ids or self.next_id in self.reserved_ids:
            self.next_id += 1
        self.used_ids.add(self.next_id)
        return self.next_id

    def unique_stem(self, stem: str) -> str:
        """``stem``, or ``stem-2``, ``stem-3`` ... when two inputs share a name (their outputs would collide)."""
        candidate, n = stem, 1
        while candidate in self.used_stems:
            n += 1
            candidate = f"{stem}-{n}"
        self.used_stems.add(candidate)
        return candidate

    def record(self, poses, name: str, file: Path, frame: int | None) -> None:
        """Write one image's OpenPose JSON and remember its COCO results."""
        json_name = f"{name}_keypoints.json"
        _write_json_atomic(self.out_dir / json_name, poses.to_openpose_json())
        image_id = self.image_id(name if frame is None else None)  # video frames: running index
        self.coco_results.extend(poses.to_coco(image_id))
        self.images[str(image_id)] = {"file": str(file), "frame": frame, "json": json_name}
        self.num_images += 1
        self.num_people += len(poses)

    def fail(self, message: str) -> None:
        from tqdm import tqdm

        self.failures.append(message)
        tqdm.write(f"openpose-lite infer: {message} (skipped)", file=sys.stderr)


def _collect_inputs(paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """(kind, path) for every input, kind "image" or "video"; folders are listed (not recursively) in name order."""
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    inputs: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in known)
            if not files:
                raise CliError(f"{path}: the folder holds no images or videos (looked for {' '.join(known)})")
        elif path.is_file():
            if path.suffix.lower() not in known:
                raise CliError(f"{path}: unsupported file type {path.suffix!r}; images: {' '.join(IMAGE_EXTENSIONS)}; "
                               f"videos: {' '.join(VIDEO_EXTENSIONS)}")
            files = [path]
        else:
            raise CliError(f"input not found: {path}")
        inputs.extend(("video" if f.suffix.lower() in VIDEO_EXTENSIONS else "image", f) for f in files)
    return inputs


def _frame_count(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()


def _write_image_atomic(path: Path, image) -> None:
    import cv2

    from openpose_lite.io import atomic_write

    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"could not encode {path}")
    atomic_write(path, lambda fh: fh.write(data.tobytes()), binary=True)


def _infer_images(predictor, batch: list[tuple[Path, object]], run: _InferRun, progress) -> None:
    from openpose_lite.viz import draw_poses

    # Box files name images by COCO id, which COCO file names carry.
    ids = [int(path.stem) if path.stem.isdigit() else None for path, _ in batch]
    all_poses = predictor.predict_batch([image for _, image in batch], ids)
    for (path, image), poses in zip(batch, all_poses):
        name = run.unique_stem(path.stem)
        run.record(poses, name, path, None)
        if run.render:
            _write_image_atomic(run.out_dir / f"{name}_rendered.jpg", draw_poses(image, poses))
    progress.update(len(batch))


class _NoFrames(Exception):
    pass


def _infer_video(predictor, path: Path, batch_size: int, run: _InferRun, progress) -> None:
    """Every frame of one video, in batches; with --render, an mp4 written to a temporary name and renamed when complete."""
    import cv2

    from openpose_lite.io import atomic_write_path

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        run.fail(f"cannot open video {path}")
        return
    name = run.unique_stem(path.stem)
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and 0 < fps < 1000 else 30.0

    def process(render_path: str | None) -> None:
        writer = None
        frame_index = 0
        try:
            while True:
                frames = []
                while len(frames) < batch_size:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    frames.append(frame)
                if not frames:
                    break
                for frame, poses in zip(frames, predictor.predict_batch(frames, [None] * len(frames))):
                    run.record(poses, f"{name}_{frame_index:0{_FRAME_DIGITS}d}", path, frame_index)
                    if render_path is not None:
                        from openpose_lite.viz import draw_poses

                        if writer is None:
                            size = (frame.shape[1], frame.shape[0])
                            writer = cv2.VideoWriter(render_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                            if not writer.isOpened():
                                raise ValueError(f"cannot write {render_path} with OpenCV's mp4v codec")
                        writer.write(draw_poses(frame, poses))
                    frame_index += 1
                progress.update(len(frames))
        finally:
            if writer is not None:
                writer.release()
        if frame_index == 0:
            raise _NoFrames

    try:
        if run.render:
            atomic_write_path(run.out_dir / f"{name}_rendered.mp4", process)
        else:
            process(None)
    except _NoFrames:
        run.fail(f"no frame could be read from video {path}")
    finally:
        capture.release()


def _run_infer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from openpose_lite.images import ImageReadError, read_image

    _weights_path(args)
    inputs = _collect_inputs(args.paths)  # bad paths fail before the model is loaded
    predictor = _build_predictor(args)
    args.output.mkdir(parents=True, exist_ok=True)
    reserved = {int(path.stem) for kind, path in inputs if kind == "image" and path.stem.isdigit()}
    run = _InferRun(out_dir=args.output, render=args.render, reserved_ids=reserved)
    total = sum(1 if kind == "image" else _frame_count(path) for kind, path in inputs)
    with tqdm(total=total, unit="img", desc="infer", disable=True if args.no_progress else None, file=sys.stderr) as progress:
        batch: list[tuple[Path, object]] = []
        for kind, path in inputs:
            if kind == "video":
                _infer_video(predictor, path, args.batch_size, run, progress)
                continue
            try:
                image = read_image(path)
            except ImageReadError as exc:
                run.fail(str(exc))
                progress.update(1)
                continue
            batch.append((path, image))
            if len(batch) == args.batch_size:
                _infer_images(predictor, batch, run, progress)
                batch = []
        if batch:
            _infer_images(predictor, batch, run, progress)

    _write_json_atomic(args.output / "results_coco.json", run.coco_results)
    _write_json_atomic(args.output / "images.json", run.images)
    print(f"{run.num_images} images, {run.num_people} people, {len(run.failures)} failures; outputs in {args.output}")
    for message in run.failures:
        print(f"  failed: {message}", file=sys.stderr)
    return EXIT_FAILURE if run.failures else EXIT_OK


# --------------------------------------------------------------------------------------- bench
def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="top-down vs bottom-up: speed as people multiply, accuracy on the same images",
        description="Times the bottom-up (OpenPose) and top-down (HRNet) pipelines on generated scenes with more and "
        "more people, and with --ann compares both branches' COCO metrics and codec oracles on one set. Writes "
        "speed.csv, accuracy.csv, table.md and speed.png (needs matplotlib) to --out, prints the tables and the "
        "command line that reproduces them. Without checkpoints the models are the paper's with random weights "
        "(fine for timing).",
    )
    p.add_argument("--people", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], metavar="N", help="people per scene")
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="image size")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per point (the median is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per point before the timed ones")
    p.add_argument("--decode-repeats", type=int, default=20, help="timed decodes of the ground-truth maps per point")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0: torch's default, one per core; 1 by default, the repeatable choice on a "
                   "CPU shared with other jobs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the random weights")
    p.add_argument("--box-source", choices=("gt", "bottomup"), default="gt",
                   help="top-down boxes: the scene's ground truth, or the bottom-up model's people")
    p.add_argument("--bu-width-mult", type=float, default=None, help="random bottom-up model: trunk width multiplier (1.0)")
    p.add_argument("--bu-stages", type=int, default=None, help="random bottom-up model: stages (6)")
    p.add_argument("--bu-input-size", type=int, default=None,
                   help="bottom-up network input height (default: the checkpoint's, else 368)")
    p.add_argument("--hrnet-width", type=int, default=None, help="random top-down model: HRNet width (32)")
    p.add_argument("--td-input-hw", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="random top-down model: crop size, multiples of 32 (256 192)")
    p.add_argument("--bu-checkpoint", type=Path, metavar="FILE", help="bottom-up checkpoint (real weights)")
    p.add_argument("--td-checkpoint", type=Path, metavar="FILE", help="top-down (HRNet) checkpoint or official HRNet weights")
    p.add_argument("--ann", type=Path, help="COCO-format keypoint annotations: accuracy section (oracle rows always)")
    p.add_argument("--images", type=Path, metavar="DIR", help="the annotation file's images: model rows (needs checkpoints)")
    p.add_argument("--flip", action="store_true", help="flip test in the accuracy section (both branches)")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder")


def _bench_config(args: argparse.Namespace):
    """The BenchConfig that the bench options describe (a ValueError names a bad option)."""
    from openpose_lite.bench import BenchConfig

    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    return BenchConfig(
        people=tuple(args.people), image_hw=tuple(args.size), repeats=args.repeats, warmup=args.warmup,
        decode_repeats=args.decode_repeats, device=args.device, threads=args.threads, seed=args.seed,
        box_source=args.box_source, bu_width_mult=args.bu_width_mult, bu_stages=args.bu_stages,
        bu_input_size=args.bu_input_size, hrnet_width=args.hrnet_width,
        td_input_hw=None if args.td_input_hw is None else tuple(args.td_input_hw),
        bu_checkpoint=text(args.bu_checkpoint), td_checkpoint=text(args.td_checkpoint), ann=text(args.ann),
        images=text(args.images), flip=args.flip, out_dir=str(args.out),
    )


def _run_bench(args: argparse.Namespace) -> int:
    from openpose_lite.bench import accuracy_table, markdown_report, run_bench, write_outputs

    config = _bench_config(args)
    print(f"openpose-lite bench: {len(config.people)} points x {config.warmup + config.repeats} calls per branch ...",
          file=sys.stderr, flush=True)
    result = run_bench(config)
    written = write_outputs(result)
    print(markdown_report(result).rstrip())
    if accuracy_table(result) is None:
        print("(no --ann: accuracy section skipped)")
    if "plot" not in written:
        print("speed.png not written: matplotlib is not installed (pip install 'openpose-lite[plot]')")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return EXIT_OK


# --------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    # Listed for --help only: main() hands "train ..." to openpose_lite.training, which owns its arguments.
    sub.add_parser("train", add_help=False,
                   help="train either branch from a YAML config (model.arch: vgg19_paf or hrnet); see train --help")


def _run_train(args: argparse.Namespace) -> int:
    from openpose_lite import training

    return training.main(args.train_argv, prog="openpose-lite train")


# ---------------------------------------------------------------------------------------- main
COMMANDS = {
    "train": (_add_train, _run_train),
    "infer": (_add_infer, _run_infer),
    "eval": (_add_eval, _run_eval),
    "export": (_add_export, _run_export),
    "synth": (_add_synth, _run_synth),
    "bench": (_add_bench, _run_bench),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openpose-lite", description="Multi-person 2D pose estimation (OpenPose, HRNet).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        # Training has its own parser (shared with train_vgg19.py), with config overrides as positionals.
        return _run_train(argparse.Namespace(train_argv=argv[1:]))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command][1](args)
    except CliError as exc:
        print(f"openpose-lite {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except (FileNotFoundError, ValueError) as exc:
        print(f"openpose-lite {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
