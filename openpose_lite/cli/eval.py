"""``openpose-lite eval``: COCO keypoint AP of a model, or of a codec alone (``--oracle``).

"labelled people" are the annotation file's ground truth that COCO's evaluation scores; "people
detected" / "people decoded" what the model or the codec returned ("instances" for another skeleton).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openpose_lite.branches import BRANCHES, branch
from openpose_lite.cli.errors import EXIT_FAILURE, EXIT_OK, CliError
from openpose_lite.cli.models_args import (
    WEIGHTS_HELP,
    add_model_args,
    build_predictor,
    decoding_options,
    non_negative_int,
    positive_int,
)
from openpose_lite.cli.outputs import print_failures, progress_disabled
from openpose_lite.io import file_problem, write_json_atomic


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="COCO keypoint AP of a model, or of a codec alone (--oracle)",
        description="COCO keypoint metrics. With --oracle, the ground truth is encoded into maps at "
        "model resolution and decoded again: the AP a perfect network would get with this codec.",
    )
    p.add_argument("--ann", type=Path, required=True, help="COCO-format keypoint annotation file")
    p.add_argument("--oracle", choices=[b.name for b in BRANCHES], help="evaluate the codec on ground-truth maps")
    p.add_argument("--refine", choices=("dark", "quarter", "none"), default=None, help="sub-pixel refinement")
    p.add_argument("--blur-kernel", type=int, default=None, metavar="K",
                   help="bottom-up decoding: the blur before DARK refinement, 0 (none) or odd (default: the "
                   "checkpoint's codec.blur_kernel, else the default)")
    p.add_argument("--input-size", type=positive_int, default=None,
                   help="bottom-up network input height (default: the checkpoint's, else 368)")
    p.add_argument("--json-out", type=Path, help="write the COCO results here")
    p.add_argument("--images", type=Path, metavar="DIR", help="folder of the annotation file's images (with a model)")
    p.add_argument("--max-images", type=non_negative_int, default=0, help="evaluate the first N images only (0: all)")
    add_model_args(p, annotations=True, input_size=False)


def _labelled_people(coco, image_ids, scope) -> str:
    """"N labelled people" (or instances, for another skeleton) of the scope among the images."""
    people = scope.labelled_instances(coco)
    count = sum(len(people.get(int(i), [])) for i in image_ids)
    return f"{count} labelled {scope.skeleton.instance_words[1]}"


def _run_eval(args: argparse.Namespace) -> int:
    if file_problem(args.ann) == "not found":  # other kinds (a FIFO, a folder) are named when it is read
        raise CliError(f"annotation file not found: {args.ann}")
    model_given = args.weights is not None or args.checkpoint is not None
    if args.oracle is not None and model_given:
        raise CliError("--oracle evaluates the codec alone; leave out --weights/--checkpoint, or drop --oracle")
    if args.oracle is None:
        if not model_given:
            raise CliError(f"nothing to evaluate: pass --oracle {'|'.join(b.name for b in BRANCHES)} (the codec alone), "
                           f"or a model: {WEIGHTS_HELP}")
        return _run_model_eval(args)
    return _run_oracle(args)


def _run_oracle(args: argparse.Namespace) -> int:
    from openpose_lite.coco.skeleton import skeleton_of_coco
    from openpose_lite.coco.validation import coco_layout
    from openpose_lite.evaluation import format_metrics, load_coco, scoring_scope
    from openpose_lite.oracle import run_oracle

    coco = load_coco(args.ann)  # a malformed file is refused here, before the codec runs
    source = str(args.ann)  # a bad skeleton too, naming the file and the field
    skeleton, _ = skeleton_of_coco(coco.dataset, coco_layout(coco.dataset, source), source)
    metrics, results = run_oracle(args.oracle, args.ann, progress=not progress_disabled(), skeleton=skeleton,
                                  **decoding_options(args, branch(args.oracle)))
    if args.json_out is not None:
        write_json_atomic(args.json_out, results)
    image_ids = coco.getImgIds()
    scope = scoring_scope(coco, skeleton, str(args.ann))
    print(f"{args.oracle} oracle on {args.ann}: {len(image_ids)} images, {_labelled_people(coco, image_ids, scope)}, "
          f"{len(results)} {scope.skeleton.instance_words[1]} decoded")
    print(scope.describe())
    print(format_metrics(metrics, style="markdown"))
    return EXIT_OK


def _run_model_eval(args: argparse.Namespace) -> int:
    """COCO metrics of a model (either branch) on the images of an annotation file."""
    from openpose_lite.evaluation import check_ground_truth, evaluate_predictor, format_metrics, load_coco

    if args.images is None:
        raise CliError("--images DIR is required to evaluate a model (the folder of the annotation file's images)")
    if not args.images.is_dir():
        raise CliError(f"image folder not found: {args.images}")
    coco = load_coco(args.ann)  # read once; a malformed file is refused before the weights are loaded
    check_ground_truth(coco, str(args.ann))  # ... and one that keypoint AP cannot score, before the model runs
    predictor = build_predictor(args, ground_truth=args.ann)  # a top-down model: the labelled people's boxes
    # evaluate_predictor refuses a folder that lacks any of the images before reading one.
    evaluation = evaluate_predictor(predictor, coco, args.images, args.max_images, args.batch_size,
                                    progress=not progress_disabled(), max_image_pixels=args.max_image_pixels,
                                    images_anywhere=args.images_anywhere, source=str(args.ann))
    if args.json_out is not None:
        write_json_atomic(args.json_out, evaluation.results)
    model = args.checkpoint or args.weights
    print(f"{model} on {args.ann}: {len(evaluation.image_ids)} images "
          f"({_labelled_people(coco, evaluation.image_ids, evaluation.scope)}), {len(evaluation.results)} "
          f"{evaluation.scope.skeleton.instance_words[1]} detected, {predictor.describe()}")
    print(evaluation.scope.describe())
    print(format_metrics(evaluation.metrics, style="markdown"))
    print_failures(evaluation.failures)
    if evaluation.failures:
        print(f"{len(evaluation.failures)} images could not be read", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
