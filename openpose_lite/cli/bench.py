"""``openpose-lite bench``: top-down vs bottom-up speed and accuracy; the options are
:class:`~openpose_lite.bench.BenchConfig`'s fields."""

from __future__ import annotations

import argparse
import sys

from openpose_lite.bench.config import BenchConfig
from openpose_lite.cli.errors import EXIT_OK


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
    BenchConfig.add_arguments(p)


def _run_bench(args: argparse.Namespace) -> int:
    from openpose_lite.bench import accuracy_table, markdown_report, run_bench, write_outputs

    config = BenchConfig.from_args(args)
    print(f"openpose-lite bench: {len(config.people)} points x {config.warmup + config.repeats} calls per branch ...",
          file=sys.stderr, flush=True)
    result = run_bench(config)
    written = write_outputs(result)  # without matplotlib it logs the one notice that speed.png was skipped
    print(markdown_report(result).rstrip())
    if accuracy_table(result) is None:
        print("(no --ann: accuracy section skipped)")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return EXIT_OK
