"""What a run starts from: :func:`resolve_run` turns the command-line inputs into a :class:`RunSetup`.

A fresh run: the defaults, ``--config``'s deltas, the overrides (:func:`openpose_lite.config.load_config`).
``--resume [FILE]`` (bare: ``<output_dir>/last.pt``): the checkpoint is read and checked *first*; the base
that ``--config`` and the overrides apply to is the config its run was last started with: the
``config.yaml`` beside it (every start writes it before training, so the overrides of a resume stopped
before its first checkpoint are kept), else the checkpoint's own. The run writes into the folder given on
this command line, by default the checkpoint's. Overrides on resume take effect
(:func:`~openpose_lite.training.optim.apply_train_settings`) or are refused (:func:`check_resumable`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from openpose_lite.bounded_yaml import parse_yaml
from openpose_lite.config import Config, config_from_dict, config_to_dict, load_config, parse_override
from openpose_lite.io import MAX_CONFIG_BYTES, read_bounded
from openpose_lite.training.checkpoint import read_training_checkpoint
from openpose_lite.training.run_folder import RunFolder

__all__ = ["AUTO", "RunSetup", "check_resumable", "resolve_run"]

logger = logging.getLogger(__name__)

AUTO = "auto"
"""``resume`` value of a bare ``--resume``: the run folder's ``last.pt``."""

# Settings a checkpoint fixes: its weights are for that model, its optimizer state for that
# optimizer, its scheduler state for that schedule.
_FIXED = {
    "model": "the checkpoint's weights are for its model; train another model in a new run (--output-dir)",
    "train.optimizer": "the optimizer state in the checkpoint belongs to that optimizer",
    "train.scheduler": "the scheduler state in the checkpoint belongs to that schedule",
}


@dataclass(frozen=True)
class RunSetup:
    """A resolved run: ``config``, and when resuming the checkpoint's path, its checked contents and the
    config it was trained with (``stored_config``); ``notes``: the settings resumed, in words;
    ``skeleton_named``: an override names ``data.skeleton`` (:func:`~openpose_lite.training.data.read_source`)."""

    config: Config
    resume: Path | None = None
    checkpoint: Mapping[str, Any] | None = None
    stored_config: Config | None = None
    notes: tuple[str, ...] = ()
    skeleton_named: bool = False


def _names(overrides: Sequence[str], section: str, key: str) -> bool:
    """Whether an override sets ``section.key``."""
    return any(parse_override(text)[:2] == (section, key) for text in overrides)


def _last_started(checkpoint: Path, stored: Config) -> tuple[dict[str, Any], str | None] | None:
    """(config dict, note) of the start the checkpoint's run last made: the ``config.yaml`` beside it, read
    as a checkpoint's stored config is, with a note naming the settings in which it differs from the
    checkpoint's; None without a usable one (missing, unreadable, or another run's: said in a warning)."""
    path = checkpoint.parent / "config.yaml"
    if not path.is_file():
        return None
    try:
        cfg = config_from_dict(parse_yaml(read_bounded(path, "config file", MAX_CONFIG_BYTES).decode("utf-8")),
                               where=str(path))
        check_resumable(stored, cfg, path)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        logger.warning("%s is not used to resume (%s); continuing with the settings in %s", path, exc, checkpoint)
        return None
    last, held = config_to_dict(cfg), config_to_dict(stored)
    changed = [f"{section}.{key}={value!r} (the checkpoint's: {held[section][key]!r})"
               for section, values in last.items() for key, value in values.items()
               if key != "output_dir" and value != held[section][key]]
    note = (f"settings: those the run was last started with ({path}): {', '.join(changed)}" if changed else None)
    return last, note


def check_resumable(stored: Config, cfg: Config, source: str | os.PathLike[str]) -> None:
    """Refuse settings a checkpoint fixes (:data:`_FIXED`) when ``cfg`` changes them, naming the key and both values."""
    before, after = config_to_dict(stored), config_to_dict(cfg)
    for key, why in _FIXED.items():
        section, _, name = key.partition(".")
        old_keys, new_keys = before[section], after[section]
        for field in [name] if name else [*old_keys, *(k for k in new_keys if k not in old_keys)]:
            old, new = old_keys.get(field), new_keys.get(field)
            if old != new:
                raise ValueError(f"{source}: {section}.{field} cannot change on --resume (the checkpoint has {old!r}, "
                                 f"asked for {new!r}): {why}")


def resolve_run(config_path: str | os.PathLike[str] | None, overrides: Sequence[str] = (),
                resume: str | os.PathLike[str] | None = None) -> RunSetup:
    """The config of a run and, for ``resume`` (a checkpoint path or :data:`AUTO`), the checkpoint it continues.
    Raises FileNotFoundError and ValueError naming the file; writes nothing."""
    if resume is None:
        return RunSetup(load_config(config_path, overrides), skeleton_named=_names(overrides, "data", "skeleton"))
    if str(resume) == AUTO:
        folder = Path(load_config(config_path, overrides).train.output_dir)
        checkpoint = folder / "last.pt"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to continue in {folder} (no last.pt); "
                                    "name one with --resume FILE")
    else:
        checkpoint = Path(resume)
        folder = None if _names(overrides, "train", "output_dir") else checkpoint.parent
    data = read_training_checkpoint(checkpoint)
    where = f"{checkpoint} config"
    stored = config_from_dict(data["config"], where=where)
    base, notes = data["config"], ()
    last = _last_started(checkpoint, stored)
    if last is not None:
        base, where = last[0], str(checkpoint.parent / "config.yaml")
        notes = (last[1],) if last[1] else ()
    cfg = load_config(config_path, overrides, base=base, base_where=where)
    if folder is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, output_dir=str(folder)))
    check_resumable(stored, cfg, checkpoint)
    _check_something_to_train(checkpoint, data["epoch"], cfg)
    return RunSetup(cfg, checkpoint, data, stored, notes)


def _check_something_to_train(checkpoint: Path, epoch: int, cfg: Config) -> None:
    """Refuse to resume a complete run (``epoch`` >= ``train.epochs``) into another folder than the
    checkpoint's: no checkpoint would be written there, leaving the start of a run that cannot be resumed."""
    out = cfg.train.output_dir
    if epoch < cfg.train.epochs or RunFolder(out).same_as(checkpoint.parent):
        return
    further = epoch + max(1, epoch // 2)
    raise ValueError(f"--resume {checkpoint}: its run is complete ({epoch} of train.epochs {cfg.train.epochs}), so "
                     f"nothing would be trained into {out}; to train it further there, raise train.epochs: "
                     f"--resume {checkpoint} train.output_dir={out} train.epochs={further}")
