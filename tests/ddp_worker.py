"""One rank of the DDP test (tests/test_ddp.py), started by ``torch.distributed.run``.

Runs ``train_vgg19.main`` unchanged; the only addition is a wrapper around
``openpose_lite.training.engine.train_one_epoch`` that writes this rank's parameters after every epoch to
``<dump_dir>/rank<R>_epoch<E>.pt``, so the test can compare the ranks.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py DUMP_DIR [train_vgg19 args]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from train_helpers import (
    load_train_script,  # tests/, this script's folder, is on the path
)

from openpose_lite.training import distributed, engine

train_vgg19 = load_train_script()

_train_one_epoch = engine.train_one_epoch


def main() -> int:
    dump_dir = Path(sys.argv[1])
    rank = int(os.environ["RANK"])

    def train_and_dump(model, loader, *args, **kwargs):
        stats = _train_one_epoch(model, loader, *args, **kwargs)
        epoch = args[4] if len(args) > 4 else kwargs["epoch"]
        state = {k: v.detach().clone() for k, v in distributed.unwrap_model(model).state_dict().items()}
        torch.save({"state": state, "steps": stats["steps"], "samples": stats["samples"],
                    "ddp": isinstance(model, torch.nn.parallel.DistributedDataParallel)},
                   dump_dir / f"rank{rank}_epoch{epoch}.pt")
        return stats

    engine.train_one_epoch = train_and_dump
    return train_vgg19.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
