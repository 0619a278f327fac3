"""Train the OpenPose VGG19 + PAF model (bottom-up): ``get_args_parser()`` + ``main(argv) -> int``.

Wiring only; the training loop lives in :mod:`openpose_lite.training` (shared with the top-down
branch, which ``openpose-lite train`` runs)::

    python train_vgg19.py --config configs/vgg19_synthetic_cpu.yaml            # CPU, generated scenes
    python train_vgg19.py --config configs/vgg19_coco.yaml --backbone-weights vgg19-dcbb9e9d.pth
    python train_vgg19.py --config configs/vgg19_coco.yaml train.lr=1e-4 train.epochs=20
    python train_vgg19.py --config configs/vgg19_coco.yaml --resume              # <output_dir>/last.pt
    torchrun --nproc_per_node 4 train_vgg19.py --config configs/vgg19_coco.yaml  # DDP

Outputs and exit codes: see :mod:`openpose_lite.training`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from openpose_lite import training
from openpose_lite.training import EXIT_OK, EXIT_STOPPED, EXIT_USAGE  # noqa: F401  (the script's exit codes)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    return training.get_args_parser(add_help)


def main(argv: Sequence[str] | None = None) -> int:
    return training.main(argv, prog="train_vgg19.py", arch="vgg19_paf")


if __name__ == "__main__":
    sys.exit(main())
