"""Our checkpoints and the training state inside them: plain data written atomically.

:func:`save_checkpoint` is the project's one ``torch.save`` of a checkpoint; every file is read by
:func:`~openpose_lite.models.state_dict.read_torch_file` (the one ``torch.load``, ``weights_only=True``).
A checkpoint is a dict::

    {"format": "openpose_lite.checkpoint", "format_version": 1, "openpose_lite_version": str,
     "model": state_dict, "config": config_to_dict(cfg), **extra}

``extra``: what ``--resume`` needs (optimizer/scheduler states, epoch, best metric, RNG states;
:func:`save_training_state`, :func:`load_training_state`, :func:`restore_rng_state`). Everything is plain
data (tensors, dicts, lists, tuples, str, int, float, bool, None): numpy values and paths are converted,
anything else refused at save time, naming its key.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from openpose_lite import __version__
from openpose_lite.io import atomic_write
from openpose_lite.models.state_dict import load_exact, read_torch_file
from openpose_lite.training.distributed import unwrap_model

__all__ = ["CHECKPOINT_FORMAT", "capture_rng_state", "load_checkpoint", "load_training_state",
           "read_training_checkpoint", "restore_rng_state", "save_checkpoint", "save_training_state",
           "weights_are_finite"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "openpose_lite.checkpoint"
_FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "openpose_lite_version", "model", "config", "skeleton")
# Containers the weights_only unpickler rebuilds (Counter: MultiStepLR keeps its milestones in one).
_MAPPINGS = (dict, collections.OrderedDict, collections.Counter)
_SCALARS = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)
# What a checkpoint needs beyond the model to continue a run.
_TRAINING_KEYS = ("epoch", "optimizer", "rng")


def _to_plain(value: Any, where: str) -> Any:
    """Return ``value`` as plain data the weights_only loader accepts, or raise naming ``where``."""
    if isinstance(value, torch.Tensor):
        # Parameters and tensor subclasses are saved as their data (a plain tensor).
        return value.detach() if type(value) is not torch.Tensor else value
    if type(value) in _SCALARS:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value) in _MAPPINGS:
        out = type(value)()
        for k, v in value.items():
            if type(k) not in _SCALARS:
                k = _to_plain(k, f"{where} key {k!r}")
            out[k] = _to_plain(v, f"{where}[{k!r}]")
        return out
    if type(value) in (list, tuple):
        return type(value)(_to_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise ValueError(
        f"{where}: {type(value).__module__}.{type(value).__qualname__} is not plain data; checkpoints "
        "hold only tensors, dicts, lists, tuples, str, int, float, bool and None (they are loaded "
        "with weights_only=True)"
    )


def _torch_save(payload: Any, fh: Any) -> None:
    """``torch.save`` into an open file, a failed write raised as the OSError it is: torch's zip
    writer reports one (a full disk) as ``RuntimeError: [enforce fail at inline_container.cc]
    ... unexpected pos``, with the OSError only as its context."""
    try:
        torch.save(payload, fh)
    except RuntimeError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror or str(cause)) from exc
        raise


def save_checkpoint(path: str | os.PathLike[str], *, model_state: Mapping[str, torch.Tensor],
                    config: Mapping[str, Any], skeleton: Any = None, **extra: Any) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one intact). ``config``:
    :func:`openpose_lite.config.config_to_dict`'s; ``skeleton``: the network's (None: its branch's person
    skeleton); ``extra``: further plain data. ValueError for data that is not plain, OSError naming ``path``."""
    p = Path(path)
    clash = [k for k in extra if k in _RESERVED]
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved ({', '.join(_RESERVED)})")
    payload: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "format_version": _FORMAT_VERSION,
                               "openpose_lite_version": __version__,
                               "model": _to_plain(dict(model_state), "model_state"),
                               "config": _to_plain(dict(config), "config")}
    if skeleton is not None:
        payload["skeleton"] = _to_plain(skeleton.to_dict(), "skeleton")
    for key, value in extra.items():
        payload[key] = _to_plain(value, key)

    try:
        atomic_write(p, lambda fh: _torch_save(payload, fh), binary=True)
    except OSError as exc:
        # A write into an open file reports no file name; the user needs the checkpoint's.
        raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from exc
    logger.info("saved checkpoint %s", p)
    return p


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict of a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: data only).
    Raises FileNotFoundError, or ValueError naming the file when it is not such a checkpoint."""
    p = Path(path)
    data = read_torch_file(p, "checkpoint", map_location)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: not an openpose_lite checkpoint (a {type(data).__name__}, expected a dict)")
    if "config" not in data:
        raise ValueError(
            f"{p}: not an openpose_lite checkpoint: no 'config' entry (keys: {sorted(map(str, data))[:10]}); "
            "a bare state dict must be loaded through the model's weight loaders"
        )
    if not isinstance(data["config"], dict):
        raise ValueError(f"{p}: the 'config' entry is a {type(data['config']).__name__}, expected a dict")
    if "model" not in data or not isinstance(data["model"], dict):
        raise ValueError(f"{p}: not an openpose_lite checkpoint: no 'model' state dict")
    version = data.get("format_version", _FORMAT_VERSION)
    if isinstance(version, int) and version > _FORMAT_VERSION:
        raise ValueError(f"{p}: checkpoint format_version {version} is newer than this openpose_lite "
                         f"({_FORMAT_VERSION}); upgrade the package")
    return data


def weights_are_finite(model_state: Mapping[str, Any]) -> bool:
    """Whether every floating-point tensor of a state dict is free of NaN and infinity."""
    return all(bool(torch.isfinite(v).all()) for v in model_state.values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


# ---------------------------------------------------------------------------------- RNG
def capture_rng_state() -> dict[str, Any]:
    """The state of every global RNG training touches, as plain data: ``python``, ``numpy`` (the legacy
    global generator), ``torch`` (CPU) and, when CUDA is available, ``cuda`` (one tensor per device)."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next},
        "numpy": {"name": str(name), "keys": [int(v) for v in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNGs from :func:`capture_rng_state`'s output. CUDA states only where the device count
    matches, else with a warning (a GPU run resumed on a CPU continues, not bit-exact)."""
    try:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
        npy = state["numpy"]
        np.random.set_state((str(npy["name"]), np.asarray(npy["keys"], dtype=np.uint32), int(npy["pos"]),
                             int(npy["has_gauss"]), float(npy["cached_gaussian"])))
        torch.set_rng_state(state["torch"].to(device="cpu", dtype=torch.uint8))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"restore_rng_state: malformed RNG state (expected capture_rng_state()'s dict): {exc!r}") from None
    cuda_states = state.get("cuda")
    if cuda_states:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
            torch.cuda.set_rng_state_all([s.to(device="cpu", dtype=torch.uint8) for s in cuda_states])
        else:
            logger.warning("checkpoint holds %d CUDA RNG states but %d CUDA devices are available; not restored",
                           len(cuda_states), torch.cuda.device_count() if torch.cuda.is_available() else 0)


# ------------------------------------------------------------------------ training state
def save_training_state(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any, epoch: int, config: Mapping[str, Any], *, best_metric: float | None = None,
                        best_metric_name: str = "", scaler: torch.amp.GradScaler | None = None, global_step: int = 0,
                        **extra: Any) -> Path:
    """Write an atomic checkpoint holding everything ``--resume`` needs (``epoch``: epochs completed). The
    plain model's state is stored (a DDP wrapper's inner model), so the predictors load it too."""
    model = unwrap_model(model)
    return save_checkpoint(
        path,
        model_state=model.state_dict(),
        config=config,
        skeleton=getattr(model, "skeleton", None),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict() if scheduler is not None else None,
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        epoch=int(epoch),
        global_step=int(global_step),
        best_metric=None if best_metric is None else float(best_metric),
        best_metric_name=str(best_metric_name),
        rng=capture_rng_state(),
        **extra,
    )


def read_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint that can continue a run (:func:`save_training_state`'s), checked; its dict. Raises
    FileNotFoundError / ValueError naming the file (also for one that can initialise a model, not resume a run)."""
    data = load_checkpoint(path)
    missing = [k for k in _TRAINING_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint (no {', '.join(missing)}); it can initialise a model "
                         "but not resume a run")
    epoch, step = data["epoch"], data.get("global_step", 0)
    if not (isinstance(epoch, int) and epoch >= 0 and isinstance(step, int) and step >= 0):
        raise ValueError(f"{path}: epoch and global_step must be integers >= 0, got {epoch!r} and {step!r}")
    if not isinstance(data["optimizer"], dict) or "param_groups" not in data["optimizer"]:
        raise ValueError(f"{path}: the 'optimizer' entry is not an optimizer state dict")
    best = data.get("best_metric")
    if best is not None and not (isinstance(best, float) and math.isfinite(best)):
        raise ValueError(f"{path}: best_metric must be a finite number or null, got {best!r}")
    return data


def _load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any], source: str) -> None:
    """Refuse the state of another optimizer type (it would fail at the first step), then load it."""
    needed = set(optimizer.defaults)
    for group in state["param_groups"]:
        lacking = sorted(needed - set(group))
        if lacking:
            raise ValueError(f"{source}: the optimizer state was saved by another optimizer than "
                             f"{type(optimizer).__name__} (its groups lack {', '.join(lacking)})")
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{source}: the optimizer state does not fit this model's parameters ({exc})") from None


def load_training_state(data: Mapping[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any = None, scaler: torch.amp.GradScaler | None = None, *,
                        where: str = "checkpoint") -> None:
    """Put a training checkpoint (:func:`read_training_checkpoint`'s dict) into the given objects; the RNG
    states are the caller's to restore (:func:`restore_rng_state`), right before the epochs. Raises
    ValueError naming ``where`` when it does not fit the model or optimizer."""
    load_exact(unwrap_model(model), data["model"], f"{where}: the model state does not fit this model")
    _load_optimizer_state(optimizer, data["optimizer"], where)
    if scheduler is not None and data.get("scheduler") is not None:
        scheduler.load_state_dict(data["scheduler"])
    if scaler is not None and scaler.is_enabled() and data.get("scaler") is not None:
        scaler.load_state_dict(data["scaler"])
    logger.info("loaded training state from %s (epoch %s)", where, data.get("epoch"))
