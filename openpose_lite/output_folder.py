"""A run's output folder: which of its files are a run's, and the one rule for a new run into it
(``train`` into its ``--output-dir``, ``infer`` into its ``--output``): a folder that holds an earlier
run's files is refused before anything is written (:class:`FolderHoldsRunError`) unless ``overwrite``
(those files removed first), ``append`` (infer) or ``--resume`` (train); the run holds the folder's
lock from before its first write to its end and checks the folder again under it; temporary files of
interrupted atomic writes are removed by the next run, under the lock. Records about the outputs
(:attr:`OutputFolder.RECORDS`) never make a folder a run's, but are removed with the outputs.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from openpose_lite.io import plural, temp_files_glob
from openpose_lite.run_lock import check_unlocked, folder_lock

__all__ = ["FolderHoldsRunError", "OutputFolder"]

logger = logging.getLogger(__name__)


class FolderHoldsRunError(ValueError):
    """The folder holds an earlier run's files (``held``) and the new run was not told what to do with them."""

    def __init__(self, message: str, held: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.held = list(held)


class OutputFolder:
    """The output folder of one kind of run. Subclasses set :attr:`RUN_FILES` ((glob pattern, what one
    match is; None: name each match)), :attr:`OPTION` (the option that chooses the folder), :attr:`WAYS`
    (the ways on from a folder that holds a run) and :attr:`RECORDS` (files that describe the outputs)."""

    RUN_FILES: ClassVar[tuple[tuple[str, str | None], ...]] = ()
    RECORDS: ClassVar[tuple[str, ...]] = ()
    OPTION: ClassVar[str] = "--output-dir"
    WAYS: ClassVar[tuple[str, ...]] = ("replace it with --overwrite",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def run_files(self) -> list[Path]:
        """The files (and folders) of a run that this folder holds, in :attr:`RUN_FILES` order."""
        if not self.path.is_dir():
            return []
        found: dict[Path, None] = {}
        for pattern, _ in self.RUN_FILES:
            for path in sorted(self.path.glob(pattern)):
                found.setdefault(path)
        return list(found)

    def describe(self, held: Sequence[Path]) -> str:
        """What ``held`` is, in words: ``config.yaml, metrics.jsonl`` or ``12 keypoint files, images.json``."""
        held_set = set(held)
        parts, counted = [], set()
        for pattern, words in self.RUN_FILES:
            matches = [p for p in sorted(self.path.glob(pattern)) if p in held_set and p not in counted]
            counted.update(matches)
            if not matches:
                continue
            if words is None:
                parts += [p.name + ("/" if p.is_dir() else "") for p in matches]
            else:
                parts.append(plural(len(matches), words))
        return ", ".join(parts)

    def refusal(self, held: Sequence[Path], what: str = "already holds a run",
                ways: Sequence[str] | None = None) -> FolderHoldsRunError:
        """The error for a folder that holds ``held``: ``<folder>: <what> (<files>); <ways>, or choose another <option>``."""
        ways = list(self.WAYS if ways is None else ways) + [f"choose another {self.OPTION}"]
        advice = ways[0] if len(ways) == 1 else ", ".join(ways[:-1]) + ", or " + ways[-1]
        return FolderHoldsRunError(f"{self.path}: {what} ({self.describe(held)}); {advice}", held)

    def check_free(self, overwrite: bool, append: bool = False, locked: bool = False) -> list[Path]:
        """Refuse a folder that a live run holds (FolderLockedError; unless ``locked``: this process holds it)
        or that holds a run while neither ``overwrite`` nor ``append`` is given; returns its run files."""
        if not locked:
            check_unlocked(self.path, self.OPTION)
        held = self.run_files()
        if held and not (overwrite or append):
            raise self.refusal(held)
        return held

    def lock(self, description: str) -> contextlib.AbstractContextManager[Path]:
        """The folder's lock for the run (:func:`~openpose_lite.run_lock.folder_lock`; the folder is created)."""
        return folder_lock(self.path, description, self.OPTION)

    def claim(self, overwrite: bool, append: bool = False) -> list[Path]:
        """Make the folder the new run's under its lock (held by the caller): checked free again, stale
        temporary files removed and, with ``overwrite``, the earlier run's files; returns what was removed."""
        held = self.check_free(overwrite, append, locked=True)
        removed = self.remove_stale_temp_files()
        if overwrite:
            removed += self.clear()
        elif not held:  # a record of outputs that are gone (a run killed before its first one) describes nothing
            removed += self._remove_records()
        return removed

    def clear(self) -> list[Path]:
        """Remove the run files this folder holds (``--overwrite``) and the records of them; returns what was removed."""
        removed = self.run_files()
        what = self.describe(removed)
        for path in removed:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        if removed:
            logger.info("%s: removed the previous run's %s", self.path, what)
        return removed + self._remove_records()

    def _remove_records(self) -> list[Path]:
        records = [p for p in (self.path / name for name in self.RECORDS) if p.is_symlink() or p.is_file()]
        for path in records:
            path.unlink(missing_ok=True)
        return records

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temporary files of atomic writes of run files that a kill interrupted; returns them.
        Under the lock only: then no live run can be writing them."""
        if not self.path.is_dir():
            return []
        patterns = [pattern for pattern, _ in self.RUN_FILES] + [glob.escape(name) for name in self.RECORDS]
        stale = sorted({tmp for pattern in patterns for tmp in self.path.glob(temp_files_glob(pattern))})
        for tmp in stale:
            tmp.unlink(missing_ok=True)
        if stale:
            logger.warning("%s: removed %d temporary file(s) left by an interrupted write: %s",
                           self.path, len(stale), ", ".join(p.name for p in stale))
        return stale
