"""``openpose-lite train``: either branch from a YAML config."""

from __future__ import annotations

import argparse



# --------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    # Listed for --help only: main() hands "train ..." to openpose_lite.training, which owns its arguments.
    sub.add_parser("train", add_help=False,
                   help="train either branch from a YAML config (model.arch: vgg19_paf or hrnet); see train --help")


def _run_train(args: argparse.Namespace) -> int:
    from openpose_lite import training

    return training.main(args.train_argv, prog="openpose-lite train")
