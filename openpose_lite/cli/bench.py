"""``openpose-lite bench``: top-down vs bottom-up speed and accuracy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openpose_lite.cli.errors import EXIT_OK


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
