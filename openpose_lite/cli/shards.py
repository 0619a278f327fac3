"""``infer`` split across processes: ``torchrun --nproc_per_node N -m openpose_lite infer ...``.

Under torchrun (``WORLD_SIZE`` > 1) every rank takes its share of the inputs, whole sequences at
a time (a video, or a folder of frames when tracking), writes their per-image files into the
common output folder (their names are fixed for the whole run before any work starts, so ranks
never collide) and its index entries into a shard file; rank 0 then merges the shards into the
run's ``results_coco.json`` and ``images.json``, whose image ids are handed out in input order,
so the merged files equal those of a single-process run. The processes meet through
``torch.distributed`` (the gloo backend: CPU, any number of machines).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from openpose_lite.io import write_json_atomic

__all__ = ["Shard", "current_shard"]


@dataclass(frozen=True)
class Shard:
    """This process's place among the ranks of a run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, unit: int) -> bool:
        """Whether this rank runs work unit ``unit`` (units go round-robin over the ranks)."""
        return unit % self.world_size == self.rank

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def shard_file(self, out_dir: Path, rank: int | None = None) -> Path:
        return out_dir / f".infer-shard-{self.rank if rank is None else rank}-of-{self.world_size}.json"

    def gather(self, out_dir: Path, entries: Sequence[dict], failures: Sequence[str]) -> tuple[list[dict], list[str]] | None:
        """Every rank's entries and failures (on rank 0, after all ranks wrote theirs); None on the other ranks."""
        if not self.distributed:
            return list(entries), list(failures)
        write_json_atomic(self.shard_file(out_dir), {"entries": list(entries), "failures": list(failures)})
        self.barrier()
        if self.rank != 0:
            return None
        all_entries: list[dict] = []
        all_failures: list[str] = []
        for rank in range(self.world_size):
            path = self.shard_file(out_dir, rank)
            data = json.loads(path.read_text(encoding="utf-8"))
            all_entries.extend(data["entries"])
            all_failures.extend(data["failures"])
            path.unlink()
        return all_entries, all_failures

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def current_shard() -> Shard:
    """The shard of this process: torchrun's ``RANK`` / ``WORLD_SIZE``, the process group joined (gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    rank = int(os.environ.get("RANK", "0"))
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Shard(rank, world)
