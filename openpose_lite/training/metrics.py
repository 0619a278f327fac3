"""The training log: ``metrics.jsonl`` (one JSON object per line) and TensorBoard scalars.

Record types: ``run_start`` (config, device, how the trunk began, ``start_epoch``),
``train_step`` (``epoch``, ``global_step``, losses, lr) and ``epoch`` (``epoch``, ``global_step``,
the epoch's means, validation losses and AP).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from openpose_lite.io import write_text_atomic

__all__ = ["MetricsLogger", "check_tensorboard", "cut_back", "read_jsonl"]

logger = logging.getLogger(__name__)


def check_tensorboard() -> None:
    """Refuse ``--tensorboard`` where TensorBoard cannot be written: ValueError saying what to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - missing, or a broken install (protobuf ...): the same advice
        raise ValueError(f"--tensorboard: TensorBoard cannot be written here ({type(exc).__name__}: {exc}); "
                         "pip install 'openpose-lite[tensorboard]', or leave out --tensorboard") from None


class MetricsLogger:
    """Append-only JSONL metrics log (flushed per record; a resumed run continues the file), rank 0's; with
    ``tensorboard_dir``, every numeric field of a record also becomes a TensorBoard scalar ``<type>/<field>``."""

    def __init__(self, path: str | os.PathLike[str], tensorboard_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard_dir is not None:  # the run checked it can be written (check_tensorboard)
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(tensorboard_dir))

    def log(self, record: Mapping[str, Any], step: int | None = None) -> None:
        """Write ``record`` as one line (OSError naming the file when it cannot); numbers to TensorBoard at ``step``."""
        try:
            self._fh.write(json.dumps(dict(record), allow_nan=True) + "\n")
            self._fh.flush()
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc
        if self._tb is not None and step is not None:
            prefix = str(record.get("type", "metrics"))
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("type", "step", "global_step"):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            logger.warning("%s: the last records could not be written", self.path)
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) pairs of a log; malformed lines (a torn tail) are skipped with a warning."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append((line, json.loads(line)))
            except json.JSONDecodeError:
                logger.warning("%s: skipping a malformed line (a run killed mid-write?)", path)
    return out


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a :class:`MetricsLogger` file (a torn last line from a killed run is skipped)."""
    return [record for _, record in _records(Path(path))]


def _after(record: Mapping[str, Any], epoch: int, global_step: int) -> bool:
    """Whether a record describes training beyond ``epoch`` / ``global_step``."""
    if record.get("type") == "run_start":
        return int(record.get("start_epoch", 0)) > epoch
    return int(record.get("epoch", 0)) > epoch or int(record.get("global_step", 0)) > global_step


def cut_back(path: str | os.PathLike[str], epoch: int, global_step: int) -> int:
    """On ``--resume``: drop the records written after a checkpoint of ``epoch`` epochs and ``global_step``
    steps (so the epochs that run again are logged once): those after that epoch's last ``epoch`` record, or
    without one (a log cut back further since), those beyond ``epoch`` or ``global_step``. Returns how many."""
    p = Path(path)
    if not p.is_file():
        return 0
    rows = _records(p)
    ends = [i for i, (_, r) in enumerate(rows)
            if r.get("type") == "epoch" and r.get("epoch") == epoch and r.get("global_step") == global_step]
    if ends:
        kept = rows[: ends[-1] + 1]
    else:
        kept = [(line, r) for line, r in rows if not _after(r, epoch, global_step)]
    removed = len(rows) - len(kept)
    if removed or len(p.read_bytes().splitlines()) != len(rows):
        write_text_atomic(p, "".join(line + "\n" for line, _ in kept))
    if removed:
        logger.info("%s: cut back to epoch %d (step %d): %d later records removed", p, epoch, global_step, removed)
    return removed
