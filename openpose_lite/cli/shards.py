"""``infer`` split across processes: ``torchrun --nproc_per_node N -m openpose_lite infer ...``.

Under torchrun (``WORLD_SIZE`` > 1) every rank takes its share of the inputs, whole sequences at
a time (a video, or a folder of frames when tracking), writes their per-image files into the
common output folder (their names are fixed for the whole run before any work starts, so ranks
never collide) and appends each image's index entry, and each failure, to its journal as it
goes (one flushed JSON line each, :class:`Journal`); rank 0 then merges the journals into the
run's ``results_coco.json`` and ``images.json``, whose image ids are handed out in input order,
so the merged files hold what a single-process run's hold. The processes meet through
``torch.distributed`` (the gloo backend: CPU, any number of machines).

A process that is lost (killed, crashed) leaves its journal up to its last image: rank 0 merges
what every journal holds when the wait for the others fails (gloo reports the lost peer) or
when torchrun stops it with SIGTERM, and says which inputs no process finished.

Exit codes: every process ends with 0 when it finished its share, failed inputs included (they
are listed by rank 0): torchrun turns any other code of a process into a ``ChildFailedError``
report with a traceback, which is kept for runs that stopped (1, 130, 143).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Gathered", "Journal", "Shard", "current_shard"]


class Journal:
    """One rank's record of its work, a JSON line per index entry or failure, flushed as written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = open(path, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()

    def entry(self, entry: dict) -> None:
        self.write({"entry": entry})

    def failure(self, message: str, index: int | None) -> None:
        self.write({"failure": message, "input": index})

    def close(self, done: bool) -> None:
        """Close the journal; ``done``: this rank finished its share (the last line says so)."""
        if self._fh is not None:
            if done:
                self.write({"done": True})
            self._fh.close()
            self._fh = None


@dataclass
class Gathered:
    """What rank 0 merged: every rank's entries and failures (message, input index), and the ranks
    whose journal did not end with their share done (lost)."""

    entries: list[dict] = field(default_factory=list)
    failures: list[tuple[str, int | None]] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


def _read_journal(path: Path, into: Gathered) -> bool:
    """Add a journal's records to ``into``; whether it ends with its rank's share done. A line cut
    by a kill is skipped: the image it names has its file, not its index entry."""
    done = False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "entry" in record:
            into.entries.append(record["entry"])
        elif "failure" in record:
            into.failures.append((record["failure"], record.get("input")))
        done = done or bool(record.get("done"))
    return done


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
        """Wait for every rank. Raises RuntimeError when one is lost (gloo: "Connection closed by peer")."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def all_agree(self, ok: bool) -> bool:
        """Whether every rank's ``ok`` is true: a collective, every rank calls it at the same point
        (rank 0 owns the output folder and tells the others whether it could take it)."""
        if not self.distributed:
            return ok
        import torch
        import torch.distributed as dist

        flag = torch.tensor([0 if ok else 1], dtype=torch.int32)
        dist.all_reduce(flag)
        return int(flag.item()) == 0

    def journal_file(self, out_dir: Path, rank: int | None = None) -> Path:
        return out_dir / f".infer-shard-{self.rank if rank is None else rank}-of-{self.world_size}.jsonl"

    def journal(self, out_dir: Path) -> Journal | None:
        """This rank's journal in ``out_dir`` (None without torchrun: the process keeps its own record)."""
        return Journal(self.journal_file(out_dir)) if self.distributed else None

    def merge(self, out_dir: Path) -> Gathered:
        """Rank 0: what every rank's journal holds (whether or not its rank finished)."""
        gathered = Gathered()
        for rank in range(self.world_size):
            if not _read_journal(self.journal_file(out_dir, rank), gathered):
                gathered.lost.append(rank)
        return gathered

    def remove_journals(self, out_dir: Path) -> None:
        """Rank 0, once the index holds what the journals held."""
        for rank in range(self.world_size):
            self.journal_file(out_dir, rank).unlink(missing_ok=True)

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
