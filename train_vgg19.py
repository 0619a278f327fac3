"""Train the OpenPose VGG19 + PAF model (and the other bottom-up models): ``get_args_parser()`` + ``main(argv) -> int``.

The parser, the printing and the exit codes are :mod:`openpose_lite.cli.train`'s (shared with
``openpose-lite train``, which also trains the top-down models); the run is
:class:`openpose_lite.training.Trainer`'s::

    python train_vgg19.py --config configs/vgg19_synthetic_cpu.yaml            # CPU, generated scenes
    python train_vgg19.py --config configs/vgg19_coco.yaml --backbone-weights vgg19-dcbb9e9d.pth
    python train_vgg19.py --config configs/vgg19_coco.yaml train.lr=1e-4 train.epochs=20
    python train_vgg19.py --config configs/vgg19_coco.yaml --resume              # <output_dir>/last.pt
    torchrun --nproc_per_node 4 train_vgg19.py --config configs/vgg19_coco.yaml  # DDP
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from openpose_lite.cli import train as train_cli
# the script's exit codes
from openpose_lite.cli.train import EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, EXIT_TERMINATED, EXIT_USAGE  # noqa: F401

PROG = "train_vgg19.py"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    return train_cli.get_args_parser(PROG, add_help)


def main(argv: Sequence[str] | None = None) -> int:
    return train_cli.main(argv, prog=PROG, branch="bottomup")


if __name__ == "__main__":
    sys.exit(main())
